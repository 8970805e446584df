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
--- States (one set for pull, push and import; M.STATE_LIST, in order):
---   waiting      queued, no bytes yet
---   downloading  bytes arriving (pull); a layer may be applied meanwhile
---   uploading    bytes leaving (push)
---   verifying    digest and size checked at commit
---   unpacking    layer being applied into a snapshot
---   exists       already there: in the local store (pull) or the
---                registry (push, after HEAD)                    final
---   mounted      push: cross-repository mount, nothing uploaded final
---   skipped      foreign/non-distributable layer, not fetched   final
---   done         finished                                       final
---   failed       error (the message is in `message`)           final
--- tty: per-item lines and a total line (bytes, speed, aggregate state),
--- redrawn in place; finish() erases them and leaves one summary line
--- (plus a line per failed item).
local core = require "crater.core"
local json = require "crater.json"
local util = require "crater.util"

local M = {}

M.STATE_LIST = { "waiting", "downloading", "uploading", "verifying", "unpacking", "exists", "mounted", "skipped",
  "done", "failed" }
M.STATES = {}
for _, st in ipairs(M.STATE_LIST) do M.STATES[st] = true end
--- Final states (an item in one of them no longer changes).
M.FINAL = { exists = true, mounted = true, skipped = true, done = true, failed = true }
local FINAL = M.FINAL
-- states that move bytes (speed shown)
local MOVING = { downloading = true, uploading = true }

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
  if opts.state and not M.STATES[opts.state] then error("progress: unknown state " .. tostring(opts.state), 2) end
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

--- Records bytes done for an item.  Its state becomes `state` when given,
--- else stays uploading for an uploading item, else becomes downloading
--- (final states are kept).
function P:update(id, done, total, state)
  if state and not M.STATES[state] then error("progress: unknown state " .. tostring(state), 2) end
  local it = self.items[id] or self:add(id)
  if total and total >= 0 then it.total = total end
  it.done = done or it.done
  if not it.t0 then it.t0 = self.clock() end
  if state then it.state = state
  elseif not FINAL[it.state] and it.state ~= "uploading" then it.state = "downloading" end
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
  if MOVING[state] and not it.t0 then it.t0 = self.clock() end
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
    self:_clear() -- above the live table, labelled as in lines mode
    self.out:write(string.format("%-11s %s\n", event, text))
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

-- "layer sha256:<64 hex>" -> "layer <12 hex>" for the live table
local function short_name(name)
  name = name:gsub("sha256:(%x%x%x%x%x%x%x%x%x%x%x%x)%x+", "%1")
  if #name > 24 then name = name:sub(1, 21) .. "..." end
  return name
end

local function speed_of(done, t0, now)
  if not t0 or now <= t0 then return "" end
  return util.human_size(math.floor(done / (now - t0))) .. "/s"
end

function P:_line(it, now)
  local speed = MOVING[it.state] and speed_of(it.done, it.t0, now) or ""
  local size = it.total and (util.human_size(it.done) .. "/" .. util.human_size(it.total)) or util.human_size(it.done)
  return string.format("%-24s %-11s |%s| %21s %11s", short_name(it.name), it.state, bar(it.done, it.total, 20), size,
    speed)
end

--- The aggregate state of all items: the busiest state any item is in
--- (uploading/downloading > unpacking > verifying > waiting), else
--- failed when any failed, else done.
function P:overall_state()
  local rank = { downloading = 5, uploading = 5, unpacking = 4, verifying = 3, waiting = 2 }
  local best, failed = nil, false
  for _, id in ipairs(self.order) do
    local st = self.items[id].state
    if rank[st] and (not best or rank[st] > rank[best]) then best = st end
    if st == "failed" then failed = true end
  end
  return best or (failed and "failed") or "done"
end

function P:_total_line(now)
  local t = self:totals()
  local elapsed = now - self.started
  return string.format("%-24s %-11s |%s| %21s %11s %6.1fs", string.format("total (%d)", t.items),
    self:overall_state(), bar(t.done, t.total, 20), util.human_size(t.done) .. "/" .. util.human_size(t.total),
    speed_of(t.done, self.started, now), elapsed)
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
  if self.mode ~= "tty" or self.finished then return end
  local now = self.clock()
  if not force and now - self.last_draw < 0.1 then return end
  self.last_draw = now
  local lines = {}
  for _, id in ipairs(self.order) do lines[#lines + 1] = self:_line(self.items[id], now) end
  lines[#lines + 1] = self:_total_line(now)
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

--- Ends the display.  tty: erases the live table and leaves one summary
--- line (items, bytes, speed, state, time), after a line per failed item.
--- Idempotent; other modes print nothing.
function P:finish()
  if self.mode ~= "tty" or self.finished then return end
  self:_clear()
  local now = self.clock()
  for _, id in ipairs(self.order) do
    local it = self.items[id]
    if it.state == "failed" then
      self.out:write(string.format("failed      %s%s\n", it.name, it.msg and (": " .. it.msg) or ""))
    end
  end
  local t = self:totals()
  local elapsed = now - self.started
  self.out:write(string.format("%s: %d item%s, %s in %.1fs%s\n", self:overall_state(), t.items, t.items == 1 and "" or "s",
    util.human_size(t.done), elapsed, elapsed > 0 and (" (" .. util.human_size(math.floor(t.done / elapsed)) .. "/s)") or ""))
  self.out:flush()
  self.finished = true
end

return M
