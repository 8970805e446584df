-- Policies driving the real workflows through the crater binary:
-- image.pre_pull (deny, exemption), container.pre_create (amend + deny),
-- task.pre_start (deny) and snapshotter.select.
local cli = require "support.cli"
local proc = require "support.proc"
local registry = require "support.registry"
local fx = require "support.fixtures"
local json = require "crater.json"

describe("policy hooks in workflows", function()
  local env, src
  before_each(function()
    env = cli.env()
    src = os.getenv("CRATER_SRC")
  end)
  after_each(function() env:cleanup() end)

  local function config(files, conf)
    local list = {}
    for _, f in ipairs(files) do list[#list + 1] = string.format("%q", f) end
    return env:file("config.lua", string.format("return { policies = { dir = %q, files = { %s }, config = %s } }",
      env.dir .. "/no-policies", table.concat(list, ", "), conf or "{}"))
  end

  it("image.pre_pull: no-latest denies a :latest pull and records nothing; exempt repos pass", function()
    local r = registry.start {}
    finally(function() r:stop() end)
    fx.push(r, "busybox", "library/busybox:latest")
    local cfg = config({ src .. "/policies/no-latest.lua" })
    local res = env:crater { "--config", cfg, "pull", "--plain-http", "-q", r.host .. "/library/busybox:latest" }
    assert.equal(1, res.code)
    assert.matches("denied by policy no%-latest", res.stderr)
    assert.equal("", env:crater { "image", "ls", "-q" }.stdout)
    assert.equal("", env:crater { "content", "ls", "-q" }.stdout)
    cfg = config({ src .. "/policies/no-latest.lua" },
      string.format('{ ["no-latest"] = { allow = { %q } } }', r.host .. "/library/busybox"))
    res = env:crater { "--config", cfg, "pull", "--plain-http", "-q", r.host .. "/library/busybox:latest" }
    assert.equal(0, res.code, res.stderr)
    assert.matches("library/busybox:latest", env:crater { "image", "ls", "-q" }.stdout)
  end)

  it("container.pre_create amends the spec and denies; task.pre_start denies", function()
    local deny = env:file("deny.lua", [[return { name = "deny-sleepers", api = 1, hooks = {
      ["container.pre_create"] = function(ev)
        if ev.spec.process.args[1] == "sleep" then return false, "no sleeping on the job" end
        ev.labels["policy.example/checked"] = "yes"
      end,
      ["task.pre_start"] = function(ev) if ev.id == "blocked" then return false, "blocked by policy" end end } }]])
    local cfg = config({ src .. "/policies/default-limits.lua", deny }, '{ ["default-limits"] = { memory = 100663296 } }')
    local layout = env.dir .. "/layout"
    proc.check(proc.quote(src .. "/scripts/make-busybox-layout") .. " " .. proc.quote(layout))
    assert.equal(0, env:crater { "image", "import", "--name", "bb", layout }.code)
    local res = env:crater { "--config", cfg, "run", "--rm", "bb", "t1", "sh", "-c",
      "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max" }
    assert.equal(0, res.code, res.stderr)
    assert.equal("100663296", res.stdout:match("%d+"))
    assert.equal(0, env:crater { "--config", cfg, "container", "create", "bb", "kept", "true" }.code)
    local info = assert(json.decode(env:crater { "container", "info", "kept", "--format", "json" }.stdout))
    assert.equal("yes", info.labels["policy.example/checked"])
    assert.equal(0, env:crater { "container", "rm", "kept" }.code)
    res = env:crater { "--config", cfg, "run", "--rm", "bb", "t2", "sleep", "1" }
    assert.equal(1, res.code)
    assert.matches("denied by policy deny%-sleepers: no sleeping on the job", res.stderr)
    res = env:crater { "--config", cfg, "run", "--rm", "bb", "blocked", "true" }
    assert.equal(1, res.code)
    assert.matches("blocked by policy", res.stderr)
    assert.equal("", env:crater { "container", "ls", "-q" }.stdout)
    assert.equal("", proc.run("grep " .. proc.quote(env.dir) .. " /proc/mounts").stdout)
  end)

  it("snapshotter.select picks the snapshotter a policy names", function()
    local pick = env:file("pick.lua", [[return { name = "pick-native", api = 1, hooks = {
      ["snapshotter.select"] = function(ev) return "native" end } }]])
    local cfg = config({ pick })
    local layout = env.dir .. "/layout"
    proc.check(proc.quote(src .. "/scripts/make-busybox-layout") .. " " .. proc.quote(layout))
    assert.equal(0, env:crater { "--config", cfg, "image", "import", "--name", "bb", layout }.code)
    local res = env:crater { "--config", cfg, "run", "--rm", "bb", "sel", "true" }
    assert.equal(0, res.code, res.stderr)
    local native = assert(json.decode(env:crater { "snapshot", "ls", "-s", "native", "--format", "json" }.stdout))
    assert.is_true(#native >= 1)
    local overlay = assert(json.decode(env:crater { "snapshot", "ls", "-s", "overlayfs", "--format", "json" }.stdout))
    assert.equal(0, #overlay)
  end)
end)
