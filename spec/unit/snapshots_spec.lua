-- Unit specs of crater.snapshotters (registry, selection) and the
-- crater.snapshots filter matcher; no mounts, no root needed.
local snapshotters = require "crater.snapshotters"
local snapshots = require "crater.snapshots"
local mount = require "crater.mount"

describe("crater.snapshotters", function()
  it("lists the built-in C snapshotters", function()
    local names = table.concat(snapshotters.names(), " ")
    assert.matches("overlayfs", names)
    assert.matches("native", names)
    assert.matches("btrfs", names)
    assert.is_true(snapshotters.is_builtin("native"))
  end)

  it("registers Lua snapshotters and refuses bad ones", function()
    local impl = {}
    for _, m in ipairs(snapshotters.METHODS) do impl[m] = function() end end
    snapshotters.register("unit-test", impl)
    assert.equal(impl, snapshotters.get("unit-test"))
    assert.is_true(snapshotters.exists("unit-test"))
    assert.has_error(function() snapshotters.register("unit-test", impl) end)
    assert.has_error(function() snapshotters.register("native", impl) end)
    assert.has_error(function() snapshotters.register("bad name", impl) end)
    assert.has_error(function() snapshotters.register("partial", { prepare = function() end }) end)
    snapshotters.unregister("unit-test")
    assert.is_nil(snapshotters.get("unit-test"))
  end)

  it("selects by override, then config", function()
    assert.equal("native", (snapshotters.select { root = "/nonexistent", override = "native" }))
    assert.equal("btrfs", (snapshotters.select { root = "/nonexistent", config = { snapshotter = "btrfs" } }))
    assert.has_error(function() snapshotters.select { override = "nope" } end)
  end)
end)

describe("crater.snapshots filters", function()
  local infos = {
    { name = "a", kind = "committed", labels = { tier = "base" } },
    { name = "b", kind = "active", parent = "a", labels = { tier = "app", ["x/y"] = "1" } },
    { name = "c", kind = "view", parent = "a", labels = {} },
  }
  local function run(f)
    local m = assert(snapshots.compile_filters(f))
    local out = {}
    for _, i in ipairs(infos) do if m(i) then out[#out + 1] = i.name end end
    return table.concat(out, " ")
  end
  it("matches fields, labels, presence, AND and OR", function()
    assert.equal("a b c", run(nil))
    assert.equal("a", run("kind==committed"))
    assert.equal("b c", run("parent==a"))
    assert.equal("a b", run("labels.tier"))
    assert.equal("b", run('labels."x/y"==1'))
    assert.equal("b", run('labels.tier=="app"'))
    assert.equal("c", run("parent==a,kind!=active"))
    assert.equal("a c", run({ "kind==committed", "kind==view" }))
    assert.equal("a", run("name==a"))
  end)
  it("rejects malformed filters", function()
    local m, err = snapshots.compile_filters("kind=committed")
    assert.is_nil(m)
    assert.matches("invalid filter", err)
  end)
end)

describe("crater.mount", function()
  it("tells portable mounts from helper-only ones", function()
    assert.is_true(mount.portable { { type = "bind", source = "/x", options = { "ro", "rbind" } } })
    assert.is_false(mount.portable { { type = "overlay", source = "overlay",
      options = { "lowerdir=1/fs", "X-crater.mount-dir=/s" } } })
  end)
  it("raises on misuse", function()
    assert.has_error(function() mount.all("x", "/tmp") end)
    assert.has_error(function() mount.unmount_all(nil) end)
  end)
end)
