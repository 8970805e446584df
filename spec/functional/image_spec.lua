-- Functional: examples/pull-and-inspect.lua against a local registry, and
-- image tag/rm/usage through the CLI.
local proc = require "support.proc"
local cli = require "support.cli"
local core = require "crater.core"
local fx = require "support.fixtures"

describe("examples/pull-and-inspect.lua and image commands", function()
  if type(core.open) ~= "function" then
    it("runs", function() pending("needs store (core.open / l_store.c)") end)
    return
  end
  local registry = require "support.registry"
  local reg
  setup(function()
    reg = registry.start {}
    fx.push(reg, "multilayer", "test/multilayer:1")
  end)
  teardown(function() if reg then reg:stop() end end)

  it("the example pulls and prints layers", function()
    local env = cli.env()
    local src = os.getenv("CRATER_SRC") or "."
    local res = proc.run("luajit " .. proc.quote(src .. "/examples/pull-and-inspect.lua") .. " " ..
      proc.quote(reg.host .. "/test/multilayer:1") .. " " .. proc.quote(env.root), { env = { CRATER_PLAIN_HTTP = "1" } })
    assert.is_true(res.ok, res.stderr)
    assert.truthy(res.stdout:find("layer 5", 1, true), res.stdout)
  end)

  it("tags, lists, shows usage and removes", function()
    local env = cli.env()
    assert.equal(0, env:crater { "pull", "--plain-http", "--no-unpack", reg.host .. "/test/multilayer:1" }.code)
    assert.equal(0, env:crater { "image", "tag", reg.host .. "/test/multilayer:1", "local/ml:2" }.code)
    local r = env:crater { "image", "ls", "-q" }
    assert.truthy(r.stdout:find("docker.io/local/ml:2", 1, true), r.stdout)
    r = env:crater { "image", "ls", "-q", "name==docker.io/local/ml:2" }
    assert.are.equal("docker.io/local/ml:2\n", r.stdout)
    r = env:crater { "image", "ls", "-q", "name!=docker.io/local/ml:2" }
    assert.are.equal(reg.host .. "/test/multilayer:1\n", r.stdout)
    r = env:crater { "image", "usage" }
    assert.equal(0, r.code, r.stderr)
    assert.equal(0, env:crater { "image", "rm", "local/ml:2" }.code)
    r = env:crater { "image", "ls", "-q" }
    assert.falsy(r.stdout:find("local/ml:2", 1, true))
  end)
end)
