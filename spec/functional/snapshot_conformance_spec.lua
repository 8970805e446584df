-- Snapshotter conformance suite (containerd snapshots/testsuite style):
-- the same behaviour checked against every snapshotter — overlayfs,
-- native, btrfs (on a loop-mounted btrfs image made here) and the Lua
-- example snapshotter (examples/lua-snapshotter.lua).  Runs as root; every
-- mount, loop device and temp dir is cleaned up even when a test fails.
local crater = require "crater"
local snapshotters = require "crater.snapshotters"
local mount = require "crater.mount"

local SRC = os.getenv("CRATER_SRC") or "."

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function mktemp_dir(prefix)
  local p = io.popen("mktemp -d /tmp/" .. prefix .. ".XXXXXX")
  local d = p:read("*l")
  p:close()
  return d
end

local function new_client(root)
  if crater.core.open then return assert(crater.open { root = root, namespace = "default" }) end
  -- the store binding is not in this build: a client with only a root
  return setmetatable({ backend = { close = function() end }, ns = "default", root = root,
    mode = "embedded", shared = { closed = false } }, crater.Client)
end

local function write(path, data)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:write(data)
  f:close()
  return true
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local d = f:read("*a")
  f:close()
  return d
end

local function exists(path) return sh("test -e " .. q(path) .. " -o -L " .. q(path)) end

if not snapshotters.get("example") then
  snapshotters.register("example", dofile(SRC .. "/examples/lua-snapshotter.lua"))
end

local is_root = (io.popen("id -u"):read("*l")) == "0"

-- per-snapshotter environment: root dir (btrfs: on its own loop mount)
local envs = {
  overlayfs = {},
  native = {},
  example = {},
  btrfs = {
    setup = function(env)
      env.img = env.base .. "/btrfs.img"
      env.root = env.base .. "/btrfs"
      if not sh("command -v mkfs.btrfs >/dev/null") then return false, "mkfs.btrfs missing" end
      if not sh("mkdir -p " .. q(env.root) .. " && truncate -s 1G " .. q(env.img) ..
        " && mkfs.btrfs -q " .. q(env.img) .. " >/dev/null 2>&1 && mount -o loop " .. q(env.img) .. " " .. q(env.root)) then
        return false, "cannot loop-mount a btrfs image"
      end
      env.mounted = true
      return true
    end,
    teardown = function(env)
      if env.mounted then sh("umount " .. q(env.root) .. " || umount -l " .. q(env.root)) end
    end,
  },
}

for _, name in ipairs { "overlayfs", "native", "btrfs", "example" } do
  describe("snapshotter " .. name, function()
    local env, client, sn, mnts, skip

    setup(function()
      if not is_root then skip = "needs root"; return end
      env = { base = mktemp_dir("crater-snapconf") }
      env.root = env.base .. "/root"
      local spec = envs[name]
      if spec.setup then
        local ok, why = spec.setup(env)
        if not ok then skip = why end
      end
      if name == "overlayfs" and not skip then
        local ok, why = crater.core.overlay_supported(env.base .. "/probe")
        if not ok then skip = "overlayfs unsupported: " .. tostring(why) end
      end
    end)

    teardown(function()
      if not env then return end
      if client then
        -- the client's store holds metadata.db open (btrfs: on the loop mount)
        client:close()
      end
      if envs[name].teardown then envs[name].teardown(env) end
      sh("rm -rf " .. q(env.base))
    end)

    before_each(function()
      if skip then return end
      client = client or new_client(env.root)
      sn = client:snapshots(name)
      mnts = {}
    end)

    after_each(function()
      for i = #mnts, 1, -1 do mount.unmount_all(mnts[i], { detach = true }) end
      if sn and not skip then
        -- remove everything, children first
        for _ = 1, 200 do
          local list = sn:walk() or {}
          if #list == 0 then break end
          for _, info in ipairs(list) do sn:remove(info.name) end
        end
      end
    end)

    local function target()
      local d = env.base .. "/mnt" .. (#mnts + 1)
      assert(sh("mkdir -p " .. q(d)))
      return d
    end

    local function do_mount(mounts)
      local d = target()
      assert(mount.all(mounts, d))
      mnts[#mnts + 1] = d
      return d
    end

    local function undo(d)
      assert(mount.unmount_all(d))
      for i, m in ipairs(mnts) do if m == d then table.remove(mnts, i) break end end
    end

    local function guard()
      if skip then pending(name .. ": " .. skip) return true end
    end

    it("prepares, commits and views a chain through real mounts", function()
      if guard() then return end
      local d = do_mount(assert(sn:prepare("a")))
      assert(write(d .. "/one", "1"))
      undo(d)
      assert(sn:commit("A", "a"))
      local _, _, kind = sn:stat("a")
      assert.equal("not_found", kind) -- the active key is gone
      assert.equal("committed", assert(sn:stat("A")).kind)

      d = do_mount(assert(sn:prepare("b", "A")))
      assert.equal("1", read(d .. "/one"))
      assert(write(d .. "/two", "2"))
      assert(write(d .. "/one", "1b"))
      undo(d)
      assert(sn:commit("B", "b"))

      local v = do_mount(assert(sn:view("v", "B")))
      assert.equal("1b", read(v .. "/one"))
      assert.equal("2", read(v .. "/two"))
      local ok, err = write(v .. "/three", "3")
      assert.is_nil(ok)
      assert.matches("Read%-only file system", err)
      assert.equal("view", assert(sn:stat("v")).kind)
      assert.equal("B", assert(sn:stat("v")).parent)
      -- A is unchanged by b's writes
      local va = do_mount(assert(sn:view("va", "A")))
      assert.equal("1", read(va .. "/one"))
      assert.is_false(exists(va .. "/two"))
      local ok2, err2 = write(va .. "/x", "x")
      assert.is_nil(ok2)
      assert.matches("Read%-only file system", err2)
    end)

    it("enforces the model's rules with error kinds", function()
      if guard() then return end
      assert(sn:prepare("a"))
      local _, err, kind = sn:prepare("a")
      assert.equal("already_exists", kind, err)
      _, err, kind = sn:prepare("x", "nope")
      assert.equal("not_found", kind, err)
      _, err, kind = sn:prepare("x", "a")
      assert.equal("failed_precondition", kind, err)
      assert.matches("not committed", err)
      assert(sn:commit("A", "a"))
      _, err, kind = sn:commit("A2", "A")
      assert.equal("failed_precondition", kind, err)
      assert(sn:prepare("b", "A"))
      assert(sn:view("v", "A"))
      _, err, kind = sn:commit("A", "b")
      assert.equal("already_exists", kind, err)
      _, err, kind = sn:remove("A")
      assert.equal("failed_precondition", kind, err)
      assert(sn:remove("b"))
      _, err, kind = sn:remove("A")
      assert.equal("failed_precondition", kind, err) -- the view is a child too
      assert(sn:remove("v"))
      assert(sn:remove("A"))
      _, err, kind = sn:remove("A")
      assert.equal("not_found", kind, err)
      assert.has_error(function() sn:prepare("") end)
      assert.has_error(function() sn:prepare("k", nil, { k = 1 }) end)
    end)

    it("keeps keys per namespace", function()
      if guard() then return end
      assert(sn:prepare("shared-key"))
      local other = client:with_namespace("other"):snapshots(name)
      local _, _, kind = other:stat("shared-key")
      assert.equal("not_found", kind)
      assert(other:prepare("shared-key"))
      assert(other:remove("shared-key"))
    end)

    it("stores, merges and replaces labels", function()
      if guard() then return end
      assert(sn:prepare("a", nil, { ["x"] = "1", ["y"] = "2" }))
      assert.same({ x = "1", y = "2" }, assert(sn:stat("a")).labels)
      local info = assert(sn:update("a", { y = "", z = "3" }))
      assert.same({ x = "1", z = "3" }, info.labels)
      info = assert(sn:update("a", { only = "me" }, true))
      assert.same({ only = "me" }, info.labels)
      assert(sn:commit("A", "a", { committed = "yes" }))
      assert.same({ committed = "yes" }, assert(sn:stat("A")).labels)
    end)

    it("walks with filters", function()
      if guard() then return end
      assert(sn:prepare("a", nil, { tier = "base" }))
      assert(sn:commit("A", "a", { tier = "base" }))
      assert(sn:prepare("b", "A", { tier = "app" }))
      assert(sn:view("v", "A"))
      local names = function(list)
        local out = {}
        for _, i in ipairs(list) do out[#out + 1] = i.name end
        return table.concat(out, " ")
      end
      assert.equal("A b v", names(assert(sn:walk())))
      assert.equal("A", names(assert(sn:walk("kind==committed"))))
      assert.equal("b", names(assert(sn:walk('labels."tier"==app'))))
      assert.equal("A b", names(assert(sn:walk("labels.tier"))))
      assert.equal("b v", names(assert(sn:walk("parent==A"))))
      assert.equal("A v", names(assert(sn:walk({ "kind==committed", "kind==view" }))))
      assert.equal("v", names(assert(sn:walk("parent==A,kind!=active"))))
      local seen = 0
      assert(sn:walk(nil, function() seen = seen + 1 end))
      assert.equal(3, seen)
    end)

    it("reports usage", function()
      if guard() then return end
      local d = do_mount(assert(sn:prepare("a")))
      assert(write(d .. "/big", string.rep("x", 1024 * 1024)))
      assert(sh("mkdir " .. q(d .. "/dir") .. " && touch " .. q(d .. "/dir/f")))
      undo(d)
      local u = assert(sn:usage("a"))
      assert.is_true(u.size >= 1024 * 1024, "size " .. tostring(u.size))
      assert.is_true(u.inodes >= 4, "inodes " .. tostring(u.inodes))
      assert(sn:commit("A", "a"))
      assert(sn:prepare("b", "A"))
      if name == "overlayfs" then
        -- an overlay child adds nothing until written
        assert.is_true(assert(sn:usage("b")).size < 1024 * 1024)
      end
    end)

    it("applies deletions through the mount", function()
      if guard() then return end
      local d = do_mount(assert(sn:prepare("a")))
      assert(write(d .. "/gone", "x"))
      assert(sh("mkdir -p " .. q(d .. "/dir") .. " && touch " .. q(d .. "/dir/old")))
      undo(d)
      assert(sn:commit("A", "a"))
      assert(sn:prepare("b", "A"))
      local dir, whiteouts = assert(sn:apply_dir("b"))
      if name == "overlayfs" then
        assert.equal("overlay", whiteouts)
        -- what a layer with .wh.gone and an opaque dir/ becomes
        assert(sh("mknod " .. q(dir .. "/gone") .. " c 0 0"))
        assert(sh("mkdir " .. q(dir .. "/dir") .. " && python3 -c 'import os,sys; os.setxattr(sys.argv[1], \"trusted.overlay.opaque\", b\"y\")' " .. q(dir .. "/dir")))
      else
        assert.equal("delete", whiteouts)
        assert(sh("rm -rf " .. q(dir .. "/gone") .. " " .. q(dir .. "/dir") .. " && mkdir " .. q(dir .. "/dir")))
      end
      assert(sh("touch " .. q(dir .. "/dir/new")))
      d = do_mount(assert(sn:mounts("b")))
      assert.is_false(exists(d .. "/gone"))
      assert.is_false(exists(d .. "/dir/old"))
      assert.is_true(exists(d .. "/dir/new"))
    end)

    it("applies a layer tarball with whiteouts when archive apply is built", function()
      if guard() then return end
      if type(crater.core.archive_apply) ~= "function" then pending("core.archive_apply not in this build") return end
      local src = env.base .. "/layer-src"
      assert(sh("rm -rf " .. q(src) .. " && mkdir -p " .. q(src .. "/etc") .. " && echo hi > " .. q(src .. "/etc/motd") ..
        " && touch " .. q(src .. "/etc/.wh.passwd") .. " && tar -C " .. q(src) .. " -cf " .. q(env.base .. "/l2.tar") .. " etc"))
      local d = do_mount(assert(sn:prepare("a")))
      assert(sh("mkdir -p " .. q(d .. "/etc") .. " && echo root > " .. q(d .. "/etc/passwd")))
      undo(d)
      assert(sn:commit("A", "a"))
      assert(sn:prepare("b", "A"))
      assert(sn:apply_layer("b", env.base .. "/l2.tar"))
      assert(sn:commit("B", "b"))
      local v = do_mount(assert(sn:view("v", "B")))
      assert.equal("hi\n", read(v .. "/etc/motd"))
      assert.is_false(exists(v .. "/etc/passwd"))
    end)

    it("removes unreferenced data on cleanup", function()
      if guard() then return end
      assert(sn:prepare("keep"))
      local snapdir = env.root .. "/snapshots/" .. name .. "/snapshots"
      assert(sh("mkdir -p " .. q(snapdir .. "/987654/fs") .. " && touch " .. q(snapdir .. "/987654/fs/junk")))
      -- and (the built-in ones) what a cleanup killed after renaming it
      -- out of the way left
      local builtin = snapshotters.is_builtin(name)
      if builtin then
        assert(sh("mkdir -p " .. q(snapdir .. "/.trash-987655/fs") .. " && touch " .. q(snapdir .. "/.trash-987655/fs/junk")))
        -- ... of an id that is garbage again (given again after a
        -- rolled-back creation)
        assert(sh("mkdir -p " .. q(snapdir .. "/.trash-987654/fs")))
      end
      local n = assert(sn:cleanup())
      assert.is_true(n >= (builtin and 3 or 1))
      assert.is_false(exists(snapdir .. "/987654"))
      local p = io.popen("ls -A " .. q(snapdir) .. " | grep -c '^\\.trash-'")
      assert.equal("0", p:read("*l"))
      p:close()
      assert(sn:stat("keep"))
      local d = do_mount(assert(sn:mounts("keep")))
      assert(write(d .. "/still-works", "y"))
    end)

    -- a process that defers removals (a `crater daemon` worker) drops the
    -- metadata at once and leaves the data to cleanup
    it("leaves a removed snapshot's data to cleanup when removals are deferred", function()
      if guard() then return end
      local core = crater.core
      if not core.snapshot_defer_removals then pending("no store binding in this build") return end
      local snapdir = env.root .. "/snapshots/" .. name .. "/snapshots"
      local function count()
        local p = io.popen("ls -A " .. q(snapdir) .. " 2>/dev/null | grep -c '^[0-9]'")
        local n = tonumber(p:read("*l"))
        p:close()
        return n
      end
      assert(sn:prepare("d1"))
      local before, deferred = count(), core.snapshot_deferred()
      core.snapshot_defer_removals(true)
      local ok, err = sn:remove("d1")
      core.snapshot_defer_removals(false)
      assert(ok, err)
      assert.is_nil(sn:stat("d1"))
      if snapshotters.is_builtin(name) then
        assert.equal(deferred + 1, core.snapshot_deferred())
        assert.equal(before, count())
        assert(sn:cleanup())
        assert.equal(before - 1, count())
      end
    end)

    if name == "overlayfs" then
      it("mounts a 100-layer chain (beyond the mount option page limit)", function()
        if guard() then return end
        local parent
        for i = 1, 100 do
          local key = "extract-" .. i
          assert(sn:prepare(key, parent))
          local dir = assert(sn:apply_dir(key))
          assert(write(dir .. "/layer" .. i, tostring(i)))
          local committed = string.format("layer-%03d-with-a-long-name-like-a-chain-id-%s", i, string.rep("f", 40))
          assert(sn:commit(committed, key))
          parent = committed
        end
        local mounts = assert(sn:prepare("top", parent))
        local d = do_mount(mounts)
        assert.equal("1", read(d .. "/layer1"))
        assert.equal("57", read(d .. "/layer57"))
        assert.equal("100", read(d .. "/layer100"))
        assert(write(d .. "/upper", "u"))
        local v = do_mount(assert(sn:view("top-view", parent)))
        assert.equal("100", read(v .. "/layer100"))
        assert.is_nil((write(v .. "/x", "x")))
      end)

      it("describes single-layer views and parentless actives as bind mounts", function()
        if guard() then return end
        local m = assert(sn:prepare("solo"))
        assert.equal("bind", m[1].type)
        assert(sn:commit("S", "solo"))
        m = assert(sn:view("sv", "S"))
        assert.equal("bind", m[1].type)
        local has_ro = false
        for _, o in ipairs(m[1].options) do has_ro = has_ro or o == "ro" end
        assert.is_true(has_ro)
        m = assert(sn:prepare("child", "S"))
        assert.equal("overlay", m[1].type)
      end)
    end
  end)
end

describe("snapshotters.select", function()
  it("honours override and config, else probes", function()
    assert.equal("native", (snapshotters.select { root = "/tmp", override = "native" }))
    assert.equal("example", (snapshotters.select { root = "/tmp", config = { snapshotter = "example" } }))
    assert.has_error(function() snapshotters.select { root = "/tmp", override = "nope" } end)
    local base = mktemp_dir("crater-select")
    local name, why = snapshotters.select { root = base }
    assert.is_string(why)
    local ok = snapshotters.overlay_supported(base)
    assert.equal(ok and "overlayfs" or "native", name)
    sh("rm -rf " .. q(base))
  end)
end)
