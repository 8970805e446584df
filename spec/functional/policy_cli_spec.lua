-- crater policy ls|check|hooks|eval through the real binary, with a crater
-- config that enables the shipped policies.
local cli = require "support.cli"
local json = require "crater.json"

describe("crater policy", function()
  local env, src
  before_each(function()
    env = cli.env()
    src = os.getenv("CRATER_SRC")
  end)
  after_each(function() env:cleanup() end)

  local function config(text) return env:file("config.lua", text) end

  it("lists the hooks with their kinds", function()
    local r = env:crater { "policy", "hooks", "--format", "json" }
    assert.equal(0, r.code)
    local hooks = {}
    for _, h in ipairs(assert(json.decode(r.stdout))) do hooks[h.name] = h.kind end
    assert.equal("admission", hooks["image.pre_pull"])
    assert.equal("select", hooks["snapshotter.select"])
  end)

  it("checks configured policies and reports errors with file and line", function()
    local bad = env:file("bad.lua", "return { name = 'bad', api = 1, hooks = { ['image.pre_pull'] = 42 } }")
    local cfg = config(string.format([[return { policies = {
      dir = %q, files = { %q, %q },
      config = { ["no-latest"] = { allow = { "docker.io/library/busybox" } } } } }]],
      env.dir .. "/none", src .. "/policies/no-latest.lua", bad))
    local r = env:crater { "--config", cfg, "policy", "check" }
    assert.equal(1, r.code)
    assert.matches("ok%s+no%-latest", r.stdout)
    assert.matches('hook "image.pre_pull" must be a function', r.stdout, 1, true)
    r = env:crater { "--config", cfg, "policy", "ls", "--format", "json" }
    assert.equal(1, r.code)
    local list = assert(json.decode(r.stdout))
    assert.equal("no-latest", list[1].name)
  end)

  it("evaluates a hook on an event", function()
    local p = src .. "/policies/no-latest.lua"
    local r = env:crater { "policy", "eval", "image.pre_pull",
      '{"ref":"docker.io/library/redis:latest","domain":"docker.io","repository":"library/redis","tag":"latest"}', p }
    assert.equal(1, r.code)
    local out = assert(json.decode(r.stdout))
    assert.is_false(out.allowed)
    assert.matches("pin a version tag", out.reason)
    r = env:crater { "policy", "eval", "image.pre_pull",
      '{"ref":"docker.io/library/redis:7","domain":"docker.io","repository":"library/redis","tag":"7"}', p }
    assert.equal(0, r.code)
    assert.is_true(assert(json.decode(r.stdout)).allowed)
  end)
end)
