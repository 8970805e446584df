-- crater.oci: the default spec and every option.
local oci = require "crater.oci"
local json = require "crater.json"

local function has(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function mount_at(spec, dst)
  for _, m in ipairs(spec.mounts) do if m.destination == dst then return m end end
end

local function ns_types(spec)
  local t = {}
  for _, n in ipairs(spec.linux.namespaces) do t[n.type] = n.path or true end
  return t
end

describe("crater.oci", function()
  local rootfs
  setup(function()
    rootfs = os.tmpname()
    os.remove(rootfs)
    os.execute("mkdir -p " .. rootfs .. "/etc")
    local f = io.open(rootfs .. "/etc/passwd", "w")
    f:write("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    f:close()
    f = io.open(rootfs .. "/etc/group", "w")
    f:write("root:x:0:\napp:x:1001:\nextra:x:2000:app,other\nwheel:x:10:root\n")
    f:close()
  end)
  teardown(function() os.execute("rm -rf " .. rootfs) end)

  it("builds containerd's default Linux spec", function()
    local s = oci.spec({}, { id = "c1", namespace = "ns1" })
    assert.are.equal("c1", s.hostname)
    assert.are.equal("/crater/ns1/c1", s.linux.cgroupsPath)
    for _, d in ipairs { "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup" } do
      assert.truthy(mount_at(s, d), d)
    end
    assert.truthy(has(mount_at(s, "/sys").options, "ro"))
    assert.truthy(has(mount_at(s, "/sys/fs/cgroup").options, "ro"))
    assert.are.equal(14, #s.process.capabilities.bounding)
    assert.truthy(has(s.process.capabilities.effective, "CAP_NET_BIND_SERVICE"))
    assert.falsy(has(s.process.capabilities.effective, "CAP_SYS_ADMIN"))
    assert.truthy(has(s.linux.maskedPaths, "/proc/kcore"))
    assert.truthy(has(s.linux.readonlyPaths, "/proc/sys"))
    assert.are.same({ type = "RLIMIT_NOFILE", hard = 1024, soft = 1024 }, s.process.rlimits[1])
    assert.is_false(s.process.noNewPrivileges)
    assert.are.equal(false, s.linux.resources.devices[1].allow)
    local t = ns_types(s)
    assert.truthy(t.pid and t.ipc and t.uts and t.mount and t.network)
    assert.is_nil(t.user)
    -- encodes to JSON with arrays kept as arrays
    local back = json.decode(oci.encode(s))
    assert.are.equal("rootfs", back.root.path)
  end)

  it("installs the default seccomp profile when policies/ has one", function()
    local sc = oci.default_seccomp()
    if not sc then pending("no seccomp-default.json found"); return end
    assert.are.same(sc, oci.spec({}).linux.seccomp)
    assert.is_nil(oci.spec({ oci.with_seccomp_unconfined() }).linux.seccomp)
    assert.are.same(sc, oci.spec({ oci.with_seccomp_unconfined(), oci.with_seccomp_default() }).linux.seccomp)
    -- a capability added brings its syscalls; the flag-masked clone rule
    -- goes with CAP_SYS_ADMIN (any flags then)
    local function allowed(profile)
      local set = {}
      for _, r in ipairs(profile.syscalls) do
        if r.action == "SCMP_ACT_ALLOW" and not r.args then for _, n in ipairs(r.names) do set[n] = true end end
      end
      return set
    end
    local function rules_for(profile, name)
      local n = 0
      for _, r in ipairs(profile.syscalls) do for _, x in ipairs(r.names) do if x == name then n = n + 1 end end end
      return n
    end
    local base = allowed(sc)
    assert.is_nil(base.mount)
    local admin = oci.spec({ oci.with_capabilities { add = { "SYS_ADMIN", "SYS_TIME" } } }).linux.seccomp
    local a = allowed(admin)
    for _, n in ipairs { "mount", "umount2", "unshare", "setns", "clone", "clone3", "settimeofday" } do
      assert.is_true(a[n], n)
    end
    assert.are.equal(1, rules_for(admin, "clone"))
    assert.are.equal(1, rules_for(admin, "clone3"))
    assert.is_nil(a.reboot)
    -- a profile of the user's own is left as it is
    local own = { defaultAction = "SCMP_ACT_ERRNO", syscalls = { { names = { "read" }, action = "SCMP_ACT_ALLOW" } } }
    local s2 = oci.spec { function(sp) sp.linux.seccomp = own end, oci.with_capabilities { add = { "SYS_ADMIN" } } }
    assert.are.equal(1, #s2.linux.seccomp.syscalls)
  end)

  it("with_process_args, with_env, with_cwd, with_hostname", function()
    local s = oci.spec { oci.with_process_args("sh", "-c", "x"), oci.with_env { "A=1", "PATH=/bin" },
      oci.with_env { B = "2" }, oci.with_cwd("/w"), oci.with_hostname("h") }
    assert.are.same({ "sh", "-c", "x" }, { unpack(s.process.args) })
    assert.truthy(has(s.process.env, "A=1"))
    assert.truthy(has(s.process.env, "B=2"))
    assert.truthy(has(s.process.env, "PATH=/bin"))
    assert.falsy(has(s.process.env, oci.DEFAULT_PATH))
    assert.are.equal("/w", s.process.cwd)
    assert.are.equal("h", s.hostname)
    assert.has_error(function() oci.with_cwd("rel") end)
    assert.has_error(function() oci.with_process_args() end)
    assert.has_error(function() oci.with_env { "NOEQUALS" } end)
    assert.has_error(function() oci.with_env { "=novar" } end)
    assert.has_error(function() oci.with_hostname(("h"):rep(65)) end)
    assert.has_error(function() oci.with_hostname("") end)
  end)

  it("with_user resolves names, groups and additional gids through the rootfs", function()
    local s = oci.spec({ oci.with_user("app") }, { rootfs = rootfs })
    assert.are.equal(1000, s.process.user.uid)
    assert.are.equal(1001, s.process.user.gid)
    assert.are.same({ 2000 }, { unpack(s.process.user.additionalGids) })
    s = oci.spec({ oci.with_user("app:extra") }, { rootfs = rootfs })
    assert.are.same({ uid = 1000, gid = 2000 }, s.process.user)
    s = oci.spec({ oci.with_user("5:6") })
    assert.are.same({ uid = 5, gid = 6 }, s.process.user)
    -- deferred without a rootfs, resolved by finalize
    s = oci.spec({ oci.with_user("app") })
    assert.are.equal("app", s.process.user.username)
    assert.truthy(oci.finalize(s, rootfs))
    assert.are.equal(1000, s.process.user.uid)
    assert.is_nil(s.process.user.username)
    s = oci.spec({ oci.with_user("ghost") })
    local ok, err, kind = oci.finalize(s, rootfs)
    assert.is_nil(ok); assert.matches("ghost", err); assert.are.equal("not_found", kind)
    -- ids beyond 2^32 - 2 are refused, not wrapped ((uid_t) -1 is "no change")
    s = oci.spec({ oci.with_user("4294967294:4294967294") })
    assert.are.same({ uid = 4294967294, gid = 4294967294 }, s.process.user)
    assert.has_error(function() oci.with_user("4294967295") end)
    assert.has_error(function() oci.with_user("0:99999999999") end)
    assert.has_error(function() oci.with_user { uid = -1 } end)
    assert.has_error(function() oci.with_user { uid = 0, gid = 1.5 } end)
    ok, err, kind = oci.resolve_user(rootfs, "99999999999")
    assert.is_nil(ok); assert.matches("out of range", err); assert.are.equal("invalid_argument", kind)
  end)

  it("with_image_config applies Entrypoint, Cmd, Env, WorkingDir, User", function()
    local cfg = { config = { Entrypoint = { "/bin/ep" }, Cmd = { "a", "b" }, Env = { "PATH=/x", "K=v" },
      WorkingDir = "/srv", User = "app" } }
    local s = oci.spec({ oci.with_image_config(cfg) }, { rootfs = rootfs })
    assert.are.same({ "/bin/ep", "a", "b" }, { unpack(s.process.args) })
    assert.truthy(has(s.process.env, "PATH=/x"))
    assert.truthy(has(s.process.env, "K=v"))
    assert.are.equal("/srv", s.process.cwd)
    assert.are.equal(1000, s.process.user.uid)
    s = oci.spec({ oci.with_image_config(cfg, { "c" }) }, { rootfs = rootfs })
    assert.are.same({ "/bin/ep", "c" }, { unpack(s.process.args) })
    -- a new entrypoint replaces Entrypoint; without args it drops Cmd too
    s = oci.spec({ oci.with_image_config(cfg, { "c" }, { "/bin/new" }) }, { rootfs = rootfs })
    assert.are.same({ "/bin/new", "c" }, { unpack(s.process.args) })
    s = oci.spec({ oci.with_image_config(cfg, nil, { "/bin/new" }) }, { rootfs = rootfs })
    assert.are.same({ "/bin/new" }, { unpack(s.process.args) })
    s = oci.spec({ oci.with_image_config(cfg, { "x", "y" }, {}) }, { rootfs = rootfs })
    assert.are.same({ "x", "y" }, { unpack(s.process.args) })
    s = oci.spec({ oci.with_image_config({ Cmd = { "sh" } }) }, { rootfs = rootfs })
    assert.are.same({ 10 }, { unpack(s.process.user.additionalGids) })
  end)

  it("with_mounts does bind (ro, propagation) and tmpfs, replacing same destinations", function()
    local s = oci.spec { oci.with_mounts {
      { type = "bind", src = "/host", dst = "/data", ro = true, propagation = "rslave" },
      { type = "tmpfs", dst = "/dev/shm", size = "1m" },
    } }
    local b = mount_at(s, "/data")
    assert.are.equal("bind", b.type)
    assert.are.equal("/host", b.source)
    assert.truthy(has(b.options, "rbind") and has(b.options, "ro") and has(b.options, "rslave"))
    local t = mount_at(s, "/dev/shm")
    assert.are.equal("tmpfs", t.type)
    assert.truthy(has(t.options, "size=1m"))
    local n = 0
    for _, m in ipairs(s.mounts) do if m.destination == "/dev/shm" then n = n + 1 end end
    assert.are.equal(1, n)
    assert.has_error(function() oci.with_mounts { { type = "bind", dst = "/x" } } end)
    assert.has_error(function() oci.with_mounts { { type = "bind", src = "/a", dst = "/x", propagation = "bogus" } } end)
  end)

  it("with_tty, with_readonly_rootfs, with_no_new_privileges", function()
    local s = oci.spec { oci.with_tty(), oci.with_readonly_rootfs(), oci.with_no_new_privileges() }
    assert.is_true(s.process.terminal)
    assert.truthy(has(s.process.env, "TERM=xterm"))
    assert.is_true(s.root.readonly)
    assert.is_true(s.process.noNewPrivileges)
  end)

  it("resource limits: memory, cpus, shares, quota, pids", function()
    local s = oci.spec { oci.with_memory_limit("128m"), oci.with_cpus(0.5), oci.with_cpu_shares(512), oci.with_pids_limit(20) }
    local r = s.linux.resources
    assert.are.equal(128 * 1024 * 1024, r.memory.limit)
    assert.are.equal(50000, r.cpu.quota)
    assert.are.equal(100000, r.cpu.period)
    assert.are.equal(512, r.cpu.shares)
    assert.are.equal(20, r.pids.limit)
    s = oci.spec { oci.with_cpu_quota(20000, 50000) }
    assert.are.equal(20000, s.linux.resources.cpu.quota)
    assert.are.equal(50000, s.linux.resources.cpu.period)
    assert.are.equal(1024, oci.parse_size("1k"))
    assert.are.equal(3 * 1024 ^ 3, oci.parse_size("3G"))
    assert.has_error(function() oci.with_memory_limit("lots") end)
    assert.has_error(function() oci.with_pids_limit(0) end)
    assert.has_error(function() oci.with_cpu_quota(0) end)
    assert.has_error(function() oci.with_cpu_quota(1000, 10) end)
    s = oci.spec { oci.with_cpus(1), oci.with_cpuset("0-2,4", "0") }
    assert.are.equal("0-2,4", s.linux.resources.cpu.cpus)
    assert.are.equal("0", s.linux.resources.cpu.mems)
    assert.are.equal(100000, s.linux.resources.cpu.quota) -- kept
    s = oci.spec { oci.with_cpuset(nil, "1") }
    assert.is_nil(s.linux.resources.cpu.cpus)
    for _, bad in ipairs { "x", "0-", "1,,2", "" } do
      assert.has_error(function() oci.with_cpuset(bad) end)
    end
    assert.has_error(function() oci.with_cpuset() end)
  end)

  it("with_capabilities adds and drops, with_privileged grants everything", function()
    local s = oci.spec { oci.with_capabilities { add = { "NET_ADMIN" }, drop = { "CAP_CHOWN" } } }
    for _, set in ipairs { "bounding", "permitted", "effective" } do
      assert.truthy(has(s.process.capabilities[set], "CAP_NET_ADMIN"))
      assert.falsy(has(s.process.capabilities[set], "CAP_CHOWN"))
    end
    s = oci.spec { oci.with_capabilities { drop = { "ALL" }, add = { "KILL" } } }
    assert.are.same({ "CAP_KILL" }, { unpack(s.process.capabilities.effective) })
    assert.has_error(function() oci.with_capabilities { add = { "NOPE" } } end)
    s = oci.spec { oci.with_privileged() }
    assert.truthy(has(s.process.capabilities.effective, "CAP_SYS_ADMIN"))
    assert.is_nil(s.linux.seccomp)
    assert.are.equal(0, #s.linux.maskedPaths)
    assert.is_true(s.linux.resources.devices[1].allow)
    assert.falsy(has(mount_at(s, "/sys").options, "ro"))
  end)

  it("with_host_devices adds the host's device nodes once each, not /dev/ptmx", function()
    local host = require("crater.core").host_devices("/dev")
    local s = oci.spec { oci.with_host_devices(), oci.with_host_devices() }
    local by = {}
    for _, d in ipairs(s.linux.devices or {}) do
      assert.is_nil(by[d.path], "twice: " .. d.path)
      by[d.path] = d
    end
    assert.is_nil(by["/dev/ptmx"])
    for _, h in ipairs(host) do
      if h.path ~= "/dev/ptmx" then
        local d = by[h.path]
        assert.truthy(d, h.path)
        assert.are.same({ h.type, h.major, h.minor, h.mode, h.uid, h.gid },
          { d.type, d.major, d.minor, d.fileMode, d.uid, d.gid })
      end
    end
    -- a directory without device nodes, or none at all, gives none
    local dir = os.tmpname()
    os.remove(dir)
    assert(require("crater.core").mkdir(dir))
    assert.are.same({}, require("crater.core").host_devices(dir))
    os.remove(dir)
    assert.are.same({}, require("crater.core").host_devices(dir))
  end)

  it("with_host_hosts_file and with_host_resolvconf bind the host's files read-only, once", function()
    local s = oci.spec { oci.with_host_resolvconf(), oci.with_host_hosts_file(), oci.with_host_resolvconf() }
    local n = 0
    for _, m in ipairs(s.mounts) do if m.destination == "/etc/resolv.conf" then n = n + 1 end end
    assert.are.equal(1, n)
    for _, p in ipairs { "/etc/hosts", "/etc/resolv.conf" } do
      local m = mount_at(s, p)
      assert.are.same({ "bind", p, { "rbind", "ro" } }, { m.type, m.source, { unpack(m.options) } })
    end
  end)

  it("with_host_namespaces and with_namespace_path", function()
    local s = oci.spec({ oci.with_host_namespaces { "net", "pid", "ipc", "uts" } }, { id = "x" })
    local t = ns_types(s)
    assert.is_nil(t.network); assert.is_nil(t.pid); assert.is_nil(t.ipc); assert.is_nil(t.uts)
    assert.truthy(t.mount)
    assert.is_nil(s.hostname)
    assert.are.equal("bind", mount_at(s, "/sys").type)
    assert.has_error(function() oci.with_host_namespaces { "mount" } end)
    assert.has_error(function() oci.with_host_namespaces { "bogus" } end)
    assert.is_false(oci.owns_namespace(s, "pid")) -- the host's
    s = oci.spec { oci.with_namespace_path("net", "/var/run/netns/a") }
    assert.are.equal("/var/run/netns/a", ns_types(s).network)
    assert.is_true(oci.owns_namespace(s, "pid"))
    assert.is_false(oci.owns_namespace(s, "network")) -- joined by path
  end)

  it("with_user_namespace, with_rlimits, with_annotations", function()
    local s = oci.spec { oci.with_user_namespace({ { 0, 100000, 65536 } }),
      oci.with_rlimits { NOFILE = { soft = 10, hard = 20 }, nproc = { 5, 6 } },
      oci.with_annotations { ["a.b"] = "c" } }
    assert.truthy(ns_types(s).user)
    assert.are.same({ containerID = 0, hostID = 100000, size = 65536 }, s.linux.uidMappings[1])
    assert.are.same(s.linux.uidMappings, s.linux.gidMappings)
    local lim = {}
    for _, r in ipairs(s.process.rlimits) do lim[r.type] = r end
    assert.are.equal(10, lim.RLIMIT_NOFILE.soft)
    assert.are.equal(20, lim.RLIMIT_NOFILE.hard)
    assert.are.equal(6, lim.RLIMIT_NPROC.hard)
    assert.are.equal("c", s.annotations["a.b"])
    assert.has_error(function() oci.with_user_namespace({}) end)
    assert.has_error(function() oci.with_annotations { a = 1 } end)
  end)

  it("accepts user-written options and rejects non-functions", function()
    local s = oci.spec { function(sp) sp.process.cwd = "/custom" end }
    assert.are.equal("/custom", s.process.cwd)
    assert.has_error(function() oci.spec { 42 } end)
  end)
end)
