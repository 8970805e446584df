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
    assert.truthy(text:find("total:", 1, true))
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
