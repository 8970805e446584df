-- crater.progress: lines, json and tty output.
local progress = require "crater.progress"
local json = require "crater.json"

local function sink()
  local buf = {}
  return { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end end,
    flush = function() end, text = function() return table.concat(buf) end }
end

local function clock()
  local t = 0
  return function() t = t + 0.5; return t end
end

describe("crater.progress", function()
  it("prints one line per finished step in lines mode", function()
    local out = sink()
    local p = progress.new { mode = "lines", out = out, clock = clock() }
    p:add("a", { name = "layer a", total = 2048 })
    p:update("a", 1024)
    p:update("a", 2048)
    p:state("a", "verifying")
    p:state("a", "done")
    p:add("b", { name = "layer b", total = 1 })
    p:state("b", "exists")
    local text = out.text()
    assert.truthy(text:find("verifying   layer a\n", 1, true), text)
    assert.truthy(text:find("done        layer a 2.0 KiB in", 1, true), text)
    assert.truthy(text:find("exists      layer b\n", 1, true), text)
    assert.falsy(text:find("downloading", 1, true))
  end)

  it("emits one JSON object per line in json mode", function()
    local out = sink()
    local p = progress.new { mode = "json", out = out, clock = clock() }
    p:add("a", { total = 10 })
    p:update("a", 5)
    p:state("a", "done")
    p:message("resolved", "x resolved", { digest = "sha256:x" })
    local n = 0
    for line in out.text():gmatch("[^\n]+") do
      local ev = assert(json.decode(line))
      assert.is_string(ev.event)
      n = n + 1
    end
    assert.is_true(n >= 4)
    assert.truthy(out.text():find('"state":"done"', 1, true))
  end)

  it("redraws in place in tty mode", function()
    local out = sink()
    local p = progress.new { mode = "tty", out = out, clock = clock() }
    p:add("a", { name = "a", total = 100 })
    p:update("a", 50)
    p:update("a", 100)
    p:state("a", "done")
    p:finish()
    local text = out.text()
    assert.truthy(text:find("\27[2A", 1, true))
    assert.truthy(text:find("total (1)", 1, true))
  end)

  it("has one documented state set for pull and push", function()
    assert.same({ "waiting", "downloading", "uploading", "verifying", "unpacking", "exists", "mounted", "skipped",
      "done", "failed" }, progress.STATE_LIST)
    for _, st in ipairs(progress.STATE_LIST) do assert.is_true(progress.STATES[st]) end
    for st in pairs(progress.STATES) do
      local listed = false
      for _, x in ipairs(progress.STATE_LIST) do if x == st then listed = true end end
      assert.is_true(listed, st)
    end
    -- the design doc lists exactly these
    local src = os.getenv("CRATER_SRC") or "."
    local f = assert(io.open(src .. "/docs/design/distribution.md"))
    local doc = f:read("*a"); f:close()
    local line = assert(doc:match("\nStates, in order: ([^\n]+)"), "no 'States, in order:' line in distribution.md")
    local listed = {}
    for st in line:gmatch("`(%l+)`") do listed[#listed + 1] = st end
    assert.same(progress.STATE_LIST, listed)
    -- unknown states are refused everywhere
    local p = progress.new { mode = "quiet" }
    assert.has_error(function() p:add("a", { state = "resolving" }) end)
    assert.has_error(function() p:update("a", 1, 2, "flying") end)
    assert.has_error(function() p:state("a", "uploaded") end)
  end)

  it("reports a push with the shared states (uploading, exists, mounted, done) in json", function()
    local out = sink()
    local p = progress.new { mode = "json", out = out, clock = clock() }
    p:add("a", { name = "layer a", total = 10, state = "uploading" })
    p:update("a", 5) -- bytes while uploading stay uploading
    p:state("a", "done")
    p:add("b", { name = "layer b", total = 3, state = "uploading" })
    p:state("b", "mounted")
    p:add("c", { name = "config c", total = 2, state = "uploading" })
    p:state("c", "exists")
    local states = {}
    for line in out.text():gmatch("[^\n]+") do
      local ev = assert(json.decode(line))
      if ev.event == "progress" then
        states[ev.id] = states[ev.id] or {}
        table.insert(states[ev.id], ev.state)
        assert.is_true(progress.STATES[ev.state], ev.state)
      end
    end
    assert.same({ "uploading", "uploading", "done" }, states.a)
    assert.same({ "uploading", "mounted" }, states.b)
    assert.same({ "uploading", "exists" }, states.c)
  end)

  it("tty: per-item lines and a total line with bytes, speed and state; finish erases them", function()
    local out = sink()
    local p = progress.new { mode = "tty", out = out, clock = clock() }
    local a = "sha256:" .. string.rep("ab", 32)
    local b = "sha256:" .. string.rep("cd", 32)
    p:add(a, { name = "layer " .. a, total = 4 * 1048576 })
    p:add(b, { name = "layer " .. b, total = 2 * 1048576 })
    p:update(a, 1048576)
    p:update(b, 1048576)
    local live = out.text()
    -- short names, states, sizes, speeds
    assert.truthy(live:find("layer abababababab", 1, true), live)
    assert.falsy(live:find(string.rep("ab", 32), 1, true), live)
    assert.truthy(live:find("downloading", 1, true), live)
    assert.truthy(live:find("1.0 MiB/4.0 MiB", 1, true), live)
    assert.truthy(live:find("MiB/s", 1, true), live)
    local total
    for l in live:gmatch("total %(2%)[^\n]*") do total = l end -- the last drawn
    assert.truthy(total, live)
    assert.truthy(total:find("downloading", 1, true), total)
    assert.truthy(total:find("2.0 MiB/6.0 MiB", 1, true), total)
    assert.truthy(total:find("/s", 1, true), total)
    assert.equal("downloading", p:overall_state())
    p:state(a, "unpacking")
    p:state(b, "done")
    assert.equal("unpacking", p:overall_state())
    p:state(a, "failed", "boom")
    assert.equal("failed", p:overall_state())
    local before = #out.text()
    p:finish()
    local tail = out.text():sub(before + 1)
    -- cursor up over the 3 drawn lines, each erased, then the summary
    assert.truthy(tail:find("\27[3A", 1, true), tail)
    local _, erased = tail:gsub("\27%[2K", "")
    assert.equal(3, erased)
    assert.truthy(tail:find("failed      layer " .. a .. ": boom\n", 1, true), tail)
    assert.truthy(tail:find("failed: 2 items, ", 1, true), tail)
    p:finish() -- idempotent
    assert.equal(before + #tail, #out.text())
    p:update(b, 1) -- no drawing after finish
    assert.equal(before + #tail, #out.text())
  end)

  it("tty: shows uploading with speed, and done totals on finish", function()
    local out = sink()
    local p = progress.new { mode = "tty", out = out, clock = clock() }
    p:add("x", { name = "layer x", total = 2048, state = "uploading" })
    p:update("x", 1024)
    assert.truthy(out.text():find("uploading", 1, true))
    assert.truthy(out.text():find("KiB/s", 1, true), out.text())
    p:state("x", "done")
    p:finish()
    assert.truthy(out.text():find("done: 1 item, 2.0 KiB in", 1, true), out.text())
  end)

  it("is silent when quiet", function()
    local out = sink()
    local p = progress.new { mode = "quiet", out = out }
    p:add("a"); p:update("a", 1); p:state("a", "done"); p:message("x", "y"); p:finish()
    assert.equal("", out.text())
  end)

  it("raises on misuse", function()
    assert.has_error(function() progress.new { mode = "fancy" } end)
    local p = progress.new { mode = "quiet" }
    assert.has_error(function() p:state("a", "flying") end)
  end)
end)
