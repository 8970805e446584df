-- examples/lua-snapshotter.lua used through client:snapshots("example"):
-- registered at start-up, state in a JSON file that survives a reopen,
-- real bind mounts.
local crater = require "crater"
local snapshotters = require "crater.snapshotters"
local mount = require "crater.mount"

local SRC = os.getenv("CRATER_SRC") or "."
local function sh(cmd) local ok = os.execute(cmd); return ok == true or ok == 0 end

local function new_client(root)
  if crater.core.open then return assert(crater.open { root = root }) end
  return setmetatable({ backend = { close = function() end }, ns = "default", root = root,
    mode = "embedded", shared = { closed = false } }, crater.Client)
end

describe("example Lua snapshotter", function()
  local base, mnt
  setup(function()
    base = io.popen("mktemp -d /tmp/crater-example-snap.XXXXXX"):read("*l")
    mnt = base .. "/mnt"
    sh("mkdir -p '" .. mnt .. "'")
    if not snapshotters.get("example") then
      snapshotters.register("example", dofile(SRC .. "/examples/lua-snapshotter.lua"))
    end
  end)
  teardown(function()
    mount.unmount_all(mnt, { detach = true })
    sh("rm -rf '" .. base .. "'")
  end)

  it("prepares, mounts, commits and views like a built-in one", function()
    if (io.popen("id -u"):read("*l")) ~= "0" then pending("needs root") return end
    local c = new_client(base .. "/root")
    local sn = c:snapshots("example")
    local m = assert(sn:prepare("k1", nil, { owner = "example" }))
    assert.equal("bind", m[1].type)
    assert(mount.all(m, mnt))
    local f = assert(io.open(mnt .. "/hello", "w")); f:write("world"); f:close()
    assert(mount.unmount_all(mnt))
    assert(sn:commit("c1", "k1"))
    assert(sn:view("v1", "c1"))
    assert(sn:mount("v1", mnt))
    local r = assert(io.open(mnt .. "/hello"))
    assert.equal("world", r:read("*a"))
    r:close()
    assert.is_nil(io.open(mnt .. "/nope", "w"))
    assert(sn:unmount(mnt))
    local _, _, kind = sn:remove("c1")
    assert.equal("failed_precondition", kind)
    assert.same({ "c1", "v1" }, (function()
      local t = {}
      for _, i in ipairs(assert(sn:walk())) do t[#t + 1] = i.name end
      return t
    end)())
    -- state is on disk: a fresh instance (new process) sees the same snapshots
    local fresh = assert(dofile(SRC .. "/examples/lua-snapshotter.lua"):open(base .. "/root"))
    assert.equal("committed", assert(fresh:stat("default", "c1")).kind)
    assert.same({ owner = "example" }, assert(sn:stat("c1")).labels)
    assert(sn:remove("v1"))
    assert(sn:remove("c1"))
    c:close()
  end)
end)
