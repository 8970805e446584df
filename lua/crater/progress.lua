--- crater.progress: progress reporting for pull/push/import.
---
--- Modes:
---   "tty"   live table (one line per item + a total line) redrawn in
---           place with ANSI escapes, at most every 100 ms;
---   "lines" one line per finished step (for pipes and logs);
---   "json"  one JSON object per event and line, for scripts:
---           {"event":"progress","id":..,"state":..,"done":..,"total":..,"time":..};
---   "quiet" nothing.
---
--- ```lua
--- local p = progress.new{ mode = progress.auto_mode(io.stdout, flags) }
--- p:add("sha256:ab..", { name = "layer sha256:ab..", total = 1234 })
--- p:update("sha256:ab..", 512)              -- bytes done so far
--- p:state("sha256:ab..", "done")
--- p:finish()
--- ```
--- States: waiting, downloading, verifying, unpacking, exists, done,
--- skipped, failed.
local core = require "crater.core"
local json = require "crater.json"
local util = require "crater.util"

local M = {}

M.STATES = { waiting = true, downloading = true, resolving = true, verifying = true, unpacking = true,
  exists = true, done = true, skipped = true, failed = true, uploading = true, mounted = true }
local FINAL = { exists = true, done = true, skipped = true, failed = true, mounted = true }

--- Picks the mode from output flags: json with --format json, quiet with
--- --quiet, tty when out is a terminal, else lines.
---@param out file*
---@param flags? table
function M.auto_mode(out, flags)
  flags = flags or {}
  if flags.format == "json" then return "json" end
  if flags.quiet then return "quiet" end
  if out == io.stdout and core.isatty(1) then return "tty" end
  if out == io.stderr and core.isatty(2) then return "tty" end
  return "lines"
end

---@class crater.Progress
local P = {}
P.__index = P

--- Creates a reporter.
---@param opts? {mode?: string, out?: file*, clock?: function, width?: integer}
function M.new(opts)
  opts = opts or {}
  local mode = opts.mode or "lines"
  if mode ~= "tty" and mode ~= "lines" and mode ~= "json" and mode ~= "quiet" then
    error("progress.new: mode must be tty, lines, json or quiet", 2)
  end
  local clock = opts.clock or core.monotonic
  return setmetatable({ mode = mode, out = opts.out or io.stdout, clock = clock, items = {}, order = {},
    started = clock(), drawn = 0, last_draw = -1, width = opts.width or 100 }, P)
end

--- Adds an item (idempotent: a second add updates name/total).
---@param id string
---@param opts? {name?: string, total?: integer, state?: string}
function P:add(id, opts)
  opts = opts or {}
  local it = self.items[id]
  if not it then
    it = { id = id, name = opts.name or id, total = opts.total, done = 0, state = opts.state or "waiting",
      t0 = nil }
    self.items[id] = it
    self.order[#self.order + 1] = id
  else
    it.name = opts.name or it.name
    it.total = opts.total or it.total
  end
  self:_event(it)
  return it
end

--- Records bytes done for an item (state becomes downloading unless given).
function P:update(id, done, total, state)
  local it = self.items[id] or self:add(id)
  if total and total >= 0 then it.total = total end
  it.done = done or it.done
  if not it.t0 then it.t0 = self.clock() end
  if state then it.state = state
  elseif not FINAL[it.state] then it.state = "downloading" end
  if self.mode == "json" then
    local now = self.clock()
    if FINAL[it.state] or not it.last_ev or now - it.last_ev >= 0.1 then
      it.last_ev = now
      self:_event(it)
    end
  elseif self.mode == "tty" then
    self:_draw(false)
  end
end

--- Sets an item's state (messages for failed items go in msg).
function P:state(id, state, msg)
  if not M.STATES[state] then error("progress: unknown state " .. tostring(state), 2) end
  local it = self.items[id] or self:add(id)
  if it.state == state and not msg then return end
  it.state = state
  it.msg = msg
  if state == "done" and it.total then it.done = it.total end
  if FINAL[state] then it.t1 = self.clock() end
  if self.mode == "lines" and (FINAL[state] or state == "unpacking" or state == "verifying") then
    local extra = ""
    if state == "done" and it.total and it.t0 and it.t1 and it.t1 > it.t0 then
      extra = string.format(" %s in %.1fs (%s/s)", util.human_size(it.total), it.t1 - it.t0,
        util.human_size(math.floor(it.total / (it.t1 - it.t0))))
    elseif state == "done" and it.total then
      extra = " " .. util.human_size(it.total)
    end
    self.out:write(string.format("%-11s %s%s%s\n", state, it.name, extra, msg and (": " .. msg) or ""))
    self.out:flush()
  elseif self.mode == "json" then
    self:_event(it)
  elseif self.mode == "tty" then
    self:_draw(FINAL[state] ~= nil)
  end
end

--- Prints a one-off message (a step without bytes, e.g. "resolved ...").
function P:message(event, text, fields)
  if self.mode == "quiet" then return end
  if self.mode == "json" then
    local o = { event = event, message = text, time = self.clock() - self.started }
    for k, v in pairs(fields or {}) do o[k] = v end
    self.out:write(json.encode(o), "\n")
  elseif self.mode == "lines" then
    self.out:write(string.format("%-11s %s\n", event, text))
  else
    self:_clear()
    self.out:write(text, "\n")
    self:_draw(true)
  end
  self.out:flush()
end

function P:_event(it)
  if self.mode ~= "json" then return end
  self.out:write(json.encode { event = "progress", id = it.id, name = it.name, state = it.state,
    done = it.done, total = it.total, message = it.msg, time = self.clock() - self.started }, "\n")
  self.out:flush()
end

local function bar(done, total, width)
  if not total or total <= 0 then return string.rep(" ", width) end
  local n = math.floor(width * math.min(done / total, 1))
  return string.rep("=", n) .. (n < width and ">" or "") .. string.rep(" ", math.max(width - n - 1, 0))
end

function P:_line(it, now)
  local speed = ""
  if it.state == "downloading" and it.t0 and now > it.t0 then
    speed = util.human_size(math.floor(it.done / (now - it.t0))) .. "/s"
  end
  local size = it.total and (util.human_size(it.done) .. "/" .. util.human_size(it.total)) or util.human_size(it.done)
  local name = it.name
  if #name > 40 then name = name:sub(1, 37) .. "..." end
  return string.format("%-40s %-11s |%s| %21s %11s", name, it.state, bar(it.done, it.total, 20), size, speed)
end

function P:_clear()
  if self.drawn > 0 then
    self.out:write(string.format("\27[%dA", self.drawn))
    for _ = 1, self.drawn do self.out:write("\27[2K\n") end
    self.out:write(string.format("\27[%dA", self.drawn))
    self.drawn = 0
  end
end

function P:_draw(force)
  if self.mode ~= "tty" then return end
  local now = self.clock()
  if not force and now - self.last_draw < 0.1 then return end
  self.last_draw = now
  local lines = {}
  local done, total = 0, 0
  for _, id in ipairs(self.order) do
    local it = self.items[id]
    lines[#lines + 1] = self:_line(it, now)
    done = done + (it.done or 0)
    total = total + (it.total or 0)
  end
  local elapsed = now - self.started
  lines[#lines + 1] = string.format("total: %s/%s, %.1fs%s", util.human_size(done), util.human_size(total), elapsed,
    elapsed > 0 and (", " .. util.human_size(math.floor(done / elapsed)) .. "/s") or "")
  if self.drawn > 0 then self.out:write(string.format("\27[%dA", self.drawn)) end
  for _, l in ipairs(lines) do self.out:write("\27[2K", l, "\n") end
  self.drawn = #lines
  self.out:flush()
end

--- Totals: {done=, total=, elapsed=, items=n}.
function P:totals()
  local done, total = 0, 0
  for _, id in ipairs(self.order) do
    local it = self.items[id]
    done = done + (it.done or 0); total = total + (it.total or 0)
  end
  return { done = done, total = total, elapsed = self.clock() - self.started, items = #self.order }
end

--- Final redraw (tty) / nothing else.
function P:finish()
  if self.mode == "tty" then self:_draw(true) end
end

return M
