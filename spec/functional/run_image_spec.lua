-- `crater run IMAGE ID [CMD...]` from an image in the store, end to end:
-- the fixture OCI layout is imported with `crater image import` (no
-- unpack), `crater run` unpacks it on demand into the snapshotter, makes
-- the container's snapshot (RW with_new_snapshot, or a read-only view with
-- --read-only), mounts it as the task rootfs and applies the image config.
-- A second image ("app") is made here through the Lua API: the busybox
-- layer with a config that sets Entrypoint, Cmd, Env, WorkingDir and User,
-- to check that the config reaches the process.
-- Runs for overlayfs and native.  Every test removes its containers; the
-- root (snapshots, content) goes in teardown, also after failures.
local proc = require "support.proc"
local fx = require "support.fixtures"

local BUILD = os.getenv("CRATER_BUILD") or "build"
local BIN = BUILD .. "/bin/crater"
local q = proc.quote
local is_root = proc.run("id -u").stdout:match("^0") ~= nil

if not is_root then
  describe("crater run IMAGE", function() pending("needs root (real containers)") end)
  return
end

local runner = require "functional.run_spec" -- Env with cleanup of tasks, shims, cgroups

--- Adds image `name` to root: busybox's layer with the given config fields.
local function make_config_image(root, name, cfg_fields)
  local crater = require "crater"
  local json = require "crater.json"
  local c = assert(crater.open { root = root })
  local ok, err = pcall(function()
    local man = json.decode(assert(io.open(fx.blob_path(fx.manifest_digest("busybox")))):read("*a"))
    local cfg = json.decode(assert(io.open(fx.blob_path(man.config.digest))):read("*a"))
    for k, v in pairs(cfg_fields) do cfg.config[k] = v end
    local cbody = json.encode(cfg)
    local cs = c:content()
    local function put(body, ref)
      local w = assert(cs:writer(ref))
      assert(w:write(body))
      local d = assert(w:commit(#body))
      w:close()
      return d
    end
    man.config.digest = put(cbody, "cfg-" .. name)
    man.config.size = #cbody
    man.mediaType = "application/vnd.oci.image.manifest.v1+json"
    local mbody = json.encode(man)
    local md = put(mbody, "man-" .. name)
    assert(c:images():put { name = name,
      target = { media_type = "application/vnd.oci.image.manifest.v1+json", digest = md, size = #mbody } })
  end)
  c:close()
  assert(ok, err)
end

for _, snapshotter in ipairs { "overlayfs", "native" } do
  describe("crater run IMAGE (" .. snapshotter .. ")", function()
    local env
    local ids = {}

    local function crater(args, opts)
      local parts = { q(BIN), "--root", q(env.root) }
      for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
      return proc.run(table.concat(parts, " "), opts)
    end

    local function run(id, flags, image, cmd)
      ids[#ids + 1] = id
      local a = { "run", "--snapshotter", snapshotter }
      for _, f in ipairs(flags) do a[#a + 1] = f end
      a[#a + 1] = image
      a[#a + 1] = id
      for _, c in ipairs(cmd or {}) do a[#a + 1] = c end
      return crater(a)
    end

    local function snapshots()
      local r = crater { "--format", "json", "snapshot", "ls", "--snapshotter", snapshotter }
      assert.are.equal(0, r.code, r.stderr)
      local list = require("crater.json").decode(r.stdout)
      local by = {}
      for _, s in ipairs(list) do by[s.key or s.name] = s end
      return by, list
    end

    local function mounts_under_root()
      local n = 0
      for line in io.lines("/proc/self/mounts") do
        if line:find(env.root, 1, true) then n = n + 1 end
      end
      return n
    end

    setup(function()
      env = runner.env(nil)
      local r = proc.run(q(BIN) .. " --root " .. q(env.root) .. " image import " .. q(fx.layout()))
      assert.are.equal(0, r.code, r.stderr)
      make_config_image(env.root, "docker.io/test/app:1", {
        Entrypoint = { "/bin/sh", "-c" }, Cmd = { "echo default-cmd" },
        Env = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello from config" },
        WorkingDir = "/home", User = "app",
      })
    end)

    after_each(function()
      for _, id in ipairs(ids) do
        crater { "task", "rm", "-f", id }
        crater { "container", "rm", "-f", id }
      end
      ids = {}
    end)

    teardown(function()
      if env then
        env:cleanup() -- tasks, shims, cgroups, rootfs mounts, then the dir
      end
    end)

    it("runs busybox from the image and propagates the exit code", function()
      local r = run("exit7", { "--rm" }, "busybox", { "sh", "-c", "echo out; echo err >&2; exit 7" })
      assert.are.equal(7, r.code, r.stderr)
      assert.are.equal("out\n", r.stdout)
      assert.are.equal("err\n", r.stderr)
      r = run("zero", { "--rm" }, "docker.io/library/busybox:latest", { "true" })
      assert.are.equal(0, r.code, r.stderr)
    end)

    it("runs the image's layers as the rootfs (overlay or copy of the committed layer)", function()
      local r = run("rootfs", { "--rm" }, "busybox",
        { "sh", "-c", "ls /bin/busybox && cat /etc/group | grep -c extra && awk '$2==\"/\"{print $3}' /proc/mounts" })
      assert.are.equal(0, r.code, r.stderr)
      local fstype = r.stdout:match("([%w]+)\n$")
      if snapshotter == "overlayfs" then assert.are.equal("overlay", fstype) else assert.are_not.equal("overlay", fstype) end
      assert.matches("/bin/busybox\n1\n", r.stdout, 1, true)
    end)

    it("applies Entrypoint, Cmd, Env, WorkingDir and User from the image config", function()
      local r = run("cfg1", { "--rm" }, "test/app:1")
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("default-cmd\n", r.stdout)
      r = run("cfg2", { "--rm" }, "test/app:1", { 'echo "$GREETING"; pwd; id -u; id -g; id -G' })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("hello from config\n/home\n1000\n1000\n1000 1001\n", r.stdout)
      -- flags override the config
      r = run("cfg3", { "--rm", "--user", "0", "--cwd", "/tmp", "--env", "GREETING=flag" }, "test/app:1",
        { 'echo "$GREETING"; pwd; id -u' })
      assert.are.equal("flag\n/tmp\n0\n", r.stdout)
    end)

    -- an image resolved once (a `crater daemon` worker resolves the last
    -- run's image before its command comes) is read again when its name
    -- points at another manifest
    it("runs what an image name points at now, after it was moved", function()
      local function greeting(id)
        local r = run(id, { "--rm" }, "test/moved:1", { "sh", "-c", 'echo "$WHO"' })
        assert.are.equal(0, r.code, r.stderr)
        return r.stdout
      end
      make_config_image(env.root, "docker.io/test/moved:1", { Env = { "WHO=first" }, Entrypoint = {}, Cmd = {} })
      -- three runs: a daemon's idle workers take commands in turn, and the
      -- one serving the fourth started after the first had ended
      for i = 1, 3 do assert.are.equal("first\n", greeting("mv" .. i)) end
      -- moved by the Lua API, not by a command: a command that is not a
      -- run would leave the next worker nothing resolved to test
      make_config_image(env.root, "docker.io/test/moved:1", { Env = { "WHO=second" }, Entrypoint = {}, Cmd = {} })
      assert.are.equal("second\n", greeting("mv4"))
    end)

    it("runs repo@digest from the local image of that repository with that digest, as docker", function()
      local list = require("crater.json").decode(crater { "--format", "json", "image", "ls" }.stdout)
      local digest
      for _, i in ipairs(list) do if i.name == "docker.io/library/busybox:latest" then digest = i.digest end end
      assert.is_string(digest)
      local r = run("dig1", { "--rm" }, "busybox@" .. digest, { "echo", "by digest" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("by digest\n", r.stdout)
      r = run("dig2", { "--rm" }, "library/other@" .. digest, { "true" })
      assert.are.equal(1, r.code)
      assert.matches("not found", r.stderr)
      r = run("dig3", { "--rm" }, "busybox@sha256:" .. ("0"):rep(64), { "true" })
      assert.are.equal(1, r.code)
    end)

    it("--entrypoint replaces the image's Entrypoint (and, without args, its Cmd), as docker's", function()
      local r = run("ep1", { "--rm", "--entrypoint", "/bin/echo" }, "test/app:1", { "from", "echo" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("from echo\n", r.stdout)
      r = run("ep2", { "--rm", "--entrypoint", "/bin/pwd" }, "test/app:1")
      assert.are.equal("/home\n", r.stdout) -- Cmd dropped: pwd got no "echo default-cmd"
      r = run("ep3", { "--rm", "--entrypoint", "" }, "test/app:1", { "sh", "-c", "echo cleared" })
      assert.are.equal("cleared\n", r.stdout)
    end)

    it("Lua API: a spec option that raises leaves no snapshot behind", function()
      local _, before = snapshots()
      local c = assert(require("crater").open { root = env.root })
      local ok, err = pcall(function()
        return c:containers():create("raises", { image = "busybox", snapshotter = snapshotter,
          spec = { function() error("option failed") end } })
      end)
      c:close()
      assert.is_false(ok)
      assert.matches("option failed", tostring(err))
      local by, after = snapshots()
      assert.is_nil(by["raises"])
      -- (the image's layer may have been unpacked on the way: committed)
      local function active(list)
        local n = 0
        for _, x in ipairs(list) do if x.kind ~= "committed" then n = n + 1 end end
        return n
      end
      assert.are.equal(active(before), active(after))
    end)

    it("check finds a snapshot whose creator died before the container was recorded, and a dead client's early shim dir; --repair removes them", function()
      -- what a client SIGKILLed between the snapshot and the container row
      -- leaves (seen with 2 of 30 clients killed at random moments)
      local containers = require "crater.containers"
      local c = assert(require("crater").open { root = env.root })
      local parent
      for _, x in ipairs(select(2, snapshots())) do if x.kind == "committed" then parent = x.name end end
      if not parent then -- the image's layer in this snapshotter
        assert.are.equal(0, crater { "image", "unpack", "--snapshotter", snapshotter, "busybox" }.code)
        for _, x in ipairs(select(2, snapshots())) do if x.kind == "committed" then parent = x.name end end
      end
      local sn = c:snapshots(snapshotter)
      -- a creator that is gone (pid 1 with another start time), one alive (us)
      assert(sn:prepare("orphan1", parent, { [containers.CONTAINER_LABEL] = "orphan1",
        [containers.CREATOR_LABEL] = "1:1" }))
      assert(sn:prepare("inflight", parent, { [containers.CONTAINER_LABEL] = "inflight",
        [containers.CREATOR_LABEL] = containers.creator_id() }))
      c:close()
      ids[#ids + 1] = "kept1"
      assert.are.equal(0, crater { "container", "create", "--snapshotter", snapshotter, "busybox", "kept1", "true" }.code)
      -- a container's snapshot says whose it is and who made it
      local kept = snapshots()["kept1"]
      assert.are.equal("kept1", kept.labels[containers.CONTAINER_LABEL])
      assert.matches("^%d+:%d+$", kept.labels[containers.CREATOR_LABEL])
      local r = crater { "check", "--quick" }
      assert.are.equal(1, r.code, r.stderr)
      assert.matches("orphan snapshot: default/" .. snapshotter .. "/orphan1 (container orphan1 never recorded)", r.stdout, 1, true)
      assert.is_nil(r.stdout:find("inflight", 1, true))
      assert.is_nil(r.stdout:find("kept1", 1, true))
      r = crater { "check", "--quick", "--repair" }
      assert.are.equal(0, r.code, r.stderr)
      local by = snapshots()
      assert.is_nil(by["orphan1"])
      assert.is_not_nil(by["inflight"])
      assert.is_not_nil(by["kept1"])
      assert.are.equal(0, crater { "snapshot", "rm", "--snapshotter", snapshotter, "inflight" }.code)
      -- the early shim's private dir of a client killed before the shim
      -- started (its pid gone); one of a live client stays
      local tdir = env.root .. "/run/tasks/default"
      local live = proc.spawn("sleep 30", { name = "live-client" })
      finally(function() proc.run("kill " .. live.pid) end)
      local dead = proc.check("sh -c 'echo $$'"):match("%d+") -- exited already
      proc.check("mkdir -p " .. q(tdir .. "/.prespawn-gone-" .. dead) .. " " .. q(tdir .. "/.prespawn-busy-" .. live.pid) ..
        " && mkfifo " .. q(tdir .. "/.prespawn-gone-" .. dead .. "/stdout"))
      r = crater { "check", "--quick" }
      assert.are.equal(1, r.code)
      assert.matches("stale task dir: " .. tdir .. "/.prespawn-gone-" .. dead, r.stdout, 1, true)
      assert.is_nil(r.stdout:find("prespawn-busy", 1, true))
      assert.are.equal(0, crater({ "check", "--quick", "--repair" }).code)
      assert.is_false(proc.run("test -e " .. q(tdir .. "/.prespawn-gone-" .. dead)).ok)
      assert.is_true(proc.run("test -d " .. q(tdir .. "/.prespawn-busy-" .. live.pid)).ok)
      proc.run("rm -rf " .. q(tdir .. "/.prespawn-busy-" .. live.pid))
    end)

    it("--rm leaves no container, snapshot, task dir or mount", function()
      local before = mounts_under_root()
      local r = run("gone", { "--rm" }, "busybox", { "sh", "-c", "echo x > /written" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", crater { "container", "ls", "-q" }.stdout)
      assert.is_nil((snapshots())["gone"])
      assert.is_false(proc.run("test -e " .. q(env.root .. "/run/tasks/default/gone")).ok)
      assert.are.equal(before, mounts_under_root())
      -- the committed layer stays (it belongs to the image)
      local _, list = snapshots()
      assert.are.equal(1, #list)
      assert.are.equal("committed", list[1].kind)
    end)

    it("runs with a relative --root (the shim and the runtime work from other directories)", function()
      ids[#ids + 1] = "relroot"
      local bin = BIN:sub(1, 1) == "/" and BIN or assert(os.getenv("PWD")) .. "/" .. BIN
      local parent, base = env.root:match("^(.*)/([^/]+)$")
      local r = proc.run("cd " .. q(parent) .. " && " .. q(bin) .. " --root " .. q(base) ..
        " run --rm --snapshotter " .. snapshotter .. " busybox relroot sh -c 'echo in; exit 3'")
      assert.are.equal(3, r.code, r.stderr)
      assert.are.equal("in\n", r.stdout)
      assert.are.equal("", crater { "container", "ls", "-q" }.stdout)
    end)

    it("crater-runtime mounts the rootfs in the container's namespace only; runc gets a host mount", function()
      local function host_mounted(id)
        return proc.run("grep -c " .. q(env.root .. "/run/tasks/default/" .. id .. "/rootfs") .. " /proc/self/mounts")
          .stdout:match("^(%d+)") ~= "0"
      end
      local expect_fs = snapshotter == "overlayfs" and "overlay" or nil
      for _, rt in ipairs { "crater", "runc" } do
        local id = "ns-" .. rt
        local r = run(id, { "-d", "--runtime", rt }, "busybox", { "sleep", "30" })
        assert.are.equal(0, r.code, r.stderr)
        r = crater { "task", "exec", id, "sh", "-c", "ls /bin/busybox && awk '$2==\"/\"{print $3}' /proc/mounts" }
        assert.are.equal(0, r.code, r.stderr)
        assert.matches("/bin/busybox\n", r.stdout, 1, true)
        if expect_fs then assert.matches(expect_fs .. "\n$", r.stdout) end
        assert.are.equal(rt == "runc", host_mounted(id))
        assert.are.equal(0, crater { "task", "rm", "-f", id }.code)
        assert.are.equal(0, crater { "container", "rm", id }.code)
        assert.is_false(host_mounted(id))
      end
    end)

    it("mounts the rootfs volatile for --rm only; a volatile upper is mounted again only in the same boot", function()
      local r = run("vol1", { "--rm" }, "busybox", { "grep", " / ", "/proc/mounts" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(snapshotter == "overlayfs", r.stdout:find("volatile", 1, true) ~= nil)
      r = run("vol2", {}, "busybox", { "grep", " / ", "/proc/mounts" })
      assert.are.equal(0, r.code, r.stderr)
      assert.is_nil(r.stdout:find("volatile", 1, true))
      assert.are.equal(0, crater { "task", "rm", "vol2" }.code)
      if snapshotter ~= "overlayfs" then return end
      -- a transient task through the Lua API, then the same snapshot mounted again
      local script = env.dir .. "/vol.lua"
      proc.write_file(script, [[
local crater = require "crater"
local oci = require "crater.oci"
local c = assert(crater.open { root = arg[1] })
local ctr = assert(c:containers():create("vol3", { image = "docker.io/library/busybox:latest",
  snapshotter = "overlayfs", spec = { oci.with_process_args("true") } }))
for _, transient in ipairs { true, false } do
  local t = assert(ctr:new_task { stdio = "null", start = true, transient = transient })
  print("exit", (assert(t:wait())))
  assert(t:delete())
end
c:close()
]])
      ids[#ids + 1] = "vol3"
      r = proc.run("luajit " .. q(script) .. " " .. q(env.root))
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("exit\t0\nexit\t0\n", r.stdout)
      -- after a restart (another boot id) the volatile upper is refused, with the reason
      assert.are.equal(0, run("vol4", {}, "busybox", { "true" }).code)
      assert.are.equal(0, crater { "task", "rm", "vol4" }.code)
      local snapdir = crater({ "snapshot", "mounts", "-s", "overlayfs", "vol4" }).stdout:match("workdir=([^,]+)/work,")
      assert.is_string(snapdir)
      proc.check("mkdir -p " .. q(snapdir .. "/work/work/incompat/volatile") .. " && echo old-boot > " .. q(snapdir .. "/volatile-boot-id"))
      r = crater { "task", "start", "vol4" }
      assert.are_not.equal(0, r.code)
      assert.matches("mounted volatile", r.stderr)
    end)

    it("keeps the container and its snapshot without --rm; container rm removes both", function()
      local r = run("kept", {}, "busybox", { "sh", "-c", "echo data > /file" })
      assert.are.equal(0, r.code, r.stderr)
      assert.matches("kept", crater { "container", "ls", "-q" }.stdout)
      assert.are.equal("active", (snapshots())["kept"].kind)
      local info = require("crater.json").decode(crater { "container", "info", "kept" }.stdout)
      assert.are.equal("docker.io/library/busybox:latest", info.image)
      assert.are.equal(snapshotter, info.snapshotter)
      assert.are.equal("kept", info.snapshot_key)
      assert.are.equal(0, crater { "task", "rm", "kept" }.code)
      assert.are.equal(0, crater { "container", "rm", "kept" }.code)
      assert.is_nil((snapshots())["kept"])
    end)

    it("--read-only runs on a view, removed with the container", function()
      local r = run("ro", { "--rm", "--read-only" }, "busybox", { "sh", "-c", "cat /etc/passwd >/dev/null && touch /x" })
      assert.are_not.equal(0, r.code)
      assert.matches("Read%-only", r.stderr)
      assert.is_nil((snapshots())["ro"])
      r = run("ro2", { "--read-only" }, "busybox", { "true" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("view", (snapshots())["ro2"].kind)
      -- the image has no /dev/pts, /dev/shm...: their mount points are
      -- made on the /dev tmpfs (and /sys/fs/cgroup is on sysfs), so the
      -- mounts stay (a terminal needs /dev/pts)
      r = run("ro3", { "--rm", "--read-only" }, "busybox", { "sh", "-c",
        "awk '{print $5}' /proc/self/mountinfo | grep -x -e /dev/pts -e /dev/shm -e /dev/mqueue -e /sys/fs/cgroup" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("/dev/pts\n/dev/shm\n/dev/mqueue\n/sys/fs/cgroup\n", r.stdout)
    end)

    -- a view has no upper layer to make mount points in: with --mount, a
    -- read-only root is an active snapshot the runtime remounts read-only
    it("--read-only with a --mount onto a new directory", function()
      local src = os.tmpname()
      os.remove(src)
      assert(os.execute("mkdir -p " .. src .. " && echo hi > " .. src .. "/f") == 0)
      local r = run("romnt", { "--read-only", "--mount", "type=bind,src=" .. src .. ",dst=/newdir,options=ro" },
        "busybox", { "sh", "-c", "cat /newdir/f; touch /x 2>/dev/null || echo root-ro" })
      os.execute("rm -rf " .. src)
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("hi\nroot-ro\n", r.stdout)
      assert.are.equal("active", (snapshots())["romnt"].kind)
    end)

    it("two containers from one image share the committed layers", function()
      for _, id in ipairs { "share1", "share2" } do
        ids[#ids + 1] = id
        local r = crater { "container", "create", "--snapshotter", snapshotter, "busybox", id, "sleep", "30" }
        assert.are.equal(0, r.code, r.stderr)
      end
      local by, list = snapshots()
      local committed = {}
      for _, s in ipairs(list) do if s.kind == "committed" then committed[#committed + 1] = s end end
      assert.are.equal(1, #committed)
      local chain = committed[1].key or committed[1].name
      assert.are.equal(chain, by.share1.parent)
      assert.are.equal(chain, by.share2.parent)
      -- both run at once, each writing its own upper layer
      for _, id in ipairs { "share1", "share2" } do
        assert.are.equal(0, crater { "task", "start", "-d", id }.code)
      end
      local a = crater { "task", "exec", "share1", "sh", "-c", "echo one > /mine; cat /mine" }
      local b = crater { "task", "exec", "share2", "sh", "-c", "test -e /mine && echo leaked || echo clean" }
      assert.are.equal("one\n", a.stdout, a.stderr)
      assert.are.equal("clean\n", b.stdout, b.stderr)
      for _, id in ipairs { "share1", "share2" } do
        crater { "task", "kill", "-s", "KILL", id }
        crater { "task", "wait", id }
        assert.are.equal(0, crater { "task", "rm", id }.code)
        assert.are.equal(0, crater { "container", "rm", id }.code)
      end
      local _, after = snapshots()
      assert.are.equal(1, #after)
    end)

    it("refuses a missing image and a taken id without leaking a snapshot", function()
      local r = run("noimg", { "--rm" }, "nosuch:latest", { "true" })
      assert.are_not.equal(0, r.code)
      assert.matches("not found", r.stderr)
      r = run("dup", {}, "busybox", { "true" })
      assert.are.equal(0, r.code, r.stderr)
      r = run("dup", {}, "busybox", { "true" })
      assert.are_not.equal(0, r.code)
      assert.matches("already exists", r.stderr)
      assert.are.equal("active", (snapshots())["dup"].kind)
    end)
  end)
end
