-- examples/run-container.lua, run as a user would: import the fixture OCI
-- layout (and, when docker-registry is installed, pull from the harness
-- registry), create a container with spec options, run it, print its
-- output and exit code, clean up.  The example removes its own temp root;
-- this spec checks that nothing is left (root dir, shims, mounts).
local proc = require "support.proc"
local fx = require "support.fixtures"

local is_root = proc.run("id -u").stdout:match("^0") ~= nil
local src = os.getenv("CRATER_SRC") or "."
local example = src .. "/examples/run-container.lua"

describe("examples/run-container.lua", function()
  if not is_root then
    it("runs", function() pending("needs root (real containers)") end)
    return
  end

  local function check_output(res)
    assert.are.equal(0, res.code, res.stdout .. res.stderr)
    assert.matches("container: example%-%d+ %(runtime %S+, snapshotter %S+%)", res.stdout)
    assert.matches("%[stdout%] hello from example in /tmp, GREETING=hi\n", res.stdout)
    assert.matches("%[stdout%] 67108864\n", res.stdout)
    assert.matches("%[stdout%] scratch\n", res.stdout)
    assert.matches("exit code: 3\n", res.stdout)
  end

  it("imports an OCI layout, runs a container and cleans up", function()
    local before = proc.run("ls -d /tmp/run-container.* 2>/dev/null").stdout
    local res = proc.run("luajit " .. proc.quote(example) .. " " .. proc.quote(fx.layout()))
    check_output(res)
    assert.matches("image: docker.io/library/busybox:latest", res.stdout, 1, true)
    assert.are.equal(before, proc.run("ls -d /tmp/run-container.* 2>/dev/null").stdout)
    assert.is_false(proc.run("grep -q /tmp/run-container. /proc/mounts").ok)
  end)

  it("keeps a given root and leaves no container in it", function()
    local dir = proc.tmpdir("run-example")
    local root = dir .. "/root"
    local res = proc.run("luajit " .. proc.quote(example) .. " " .. proc.quote(fx.layout()) .. " " .. proc.quote(root))
    check_output(res)
    local c = require("crater").open { root = root, namespace = "examples" }
    local ok, list = pcall(function() return c:containers():list() end)
    c:close()
    assert.is_true(ok, tostring(list))
    assert.are.equal(0, #list)
    assert.are.equal("", proc.run("ls " .. proc.quote(root .. "/run/tasks/examples") .. " 2>/dev/null").stdout)
    proc.rmdir(dir)
  end)

  it("pulls from a registry when given a reference", function()
    local ok, registry = pcall(require, "support.registry")
    local reg
    ok = ok and pcall(function() reg = registry.start {} end)
    if not ok or not reg then pending("docker-registry not available"); return end
    local pok, perr = pcall(function()
      fx.push(reg, "busybox", "library/busybox:latest")
      local res = proc.run("luajit " .. proc.quote(example) .. " " .. proc.quote(reg.host .. "/library/busybox:latest"),
        { env = { CRATER_PLAIN_HTTP = "1" } })
      check_output(res)
    end)
    reg:stop()
    assert(pok, perr)
  end)
end)
