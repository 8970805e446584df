-- crater-runtime on a cgroup-v2-only host: the build hosts are v1/v2 hybrid
-- (no controllers on the unified hierarchy), so this spec boots one small
-- VM (scripts/v2vm: the host's kernel, the host's / over 9p, cgroup2 alone
-- at /sys/fs/cgroup with every controller enabled) and runs this same file
-- inside it as a plain LuaJIT script.  The guest half (guest() below) drives
-- crater-runtime, Debian's crun and the crater CLI on busybox bundles,
-- records what it sees (cgroup files, exit codes, output, state) and prints
-- it as one JSON line; the busted half asserts on it one check at a time.
-- One boot serves the whole file.  Pending only when the VM cannot run
-- (no qemu, no usable kernel: scripts/v2vm exits 77).

-- ------------------------------------------------------------------------
-- guest half: plain luajit inside the VM, as root, cgroup2 at /sys/fs/cgroup
-- ------------------------------------------------------------------------
local function guest()
  local cjson = require "cjson"
  local ffi = require "ffi"
  local B = require "support.bundle"
  local build = assert(os.getenv("CRATER_BUILD"), "CRATER_BUILD not set")
  local RT = build .. "/bin/crater-runtime"
  local CRATER = build .. "/bin/crater"
  local CRUN = "/usr/bin/crun"
  local ROOTFS = assert(os.getenv("V2_ROOTFS"), "V2_ROOTFS not set")
  local LAYOUT = os.getenv("V2_LAYOUT")
  local T = "/var/lib/crater/v2"     -- a fresh tmpfs in the guest (overlay snapshots need one)
  local CG = "/sys/fs/cgroup"
  local R = {}
  local names = { [RT] = "crater", [CRUN] = "crun" }

  -- Processes are spawned directly (posix_spawn), not through /bin/sh:
  -- under TCG every exec costs 20-70 ms, and the guest makes hundreds.
  ffi.cdef [[
    typedef struct { int allocated, used; void *actions; int pad[16]; } v2_spawn_actions_t;
    int posix_spawn_file_actions_init(v2_spawn_actions_t *);
    int posix_spawn_file_actions_destroy(v2_spawn_actions_t *);
    int posix_spawn_file_actions_addopen(v2_spawn_actions_t *, int, const char *, int, unsigned);
    int posix_spawn(int *, const char *, const v2_spawn_actions_t *, const void *, char *const *, char *const *);
    int waitpid(int, int *, int);
    int kill(int, int);
    int usleep(unsigned);
    int mkdir(const char *, unsigned);
    extern char **environ;
  ]]
  local O_WRONLY, O_CREAT, O_TRUNC = 1, 64, 512
  local function sleep(s) ffi.C.usleep(s * 1e6) end
  local function mkdir(p) ffi.C.mkdir(p, 493) end
  local spawned = 0
  -- Runs argv[1] (a path) with argv; stdout and stderr go to files read back.
  -- Killed after 60 s so no single command hangs the run.
  local function x(argv)
    spawned = spawned + 1
    local out, err = T .. "/.out", T .. "/.err"
    local cargv = ffi.new("char *[?]", #argv + 1)
    local keep = {}
    for i, a in ipairs(argv) do
      keep[i] = ffi.new("char[?]", #a + 1, a)
      cargv[i - 1] = keep[i]
    end
    local fa = ffi.new("v2_spawn_actions_t")
    ffi.C.posix_spawn_file_actions_init(fa)
    ffi.C.posix_spawn_file_actions_addopen(fa, 0, "/dev/null", 0, 0)
    ffi.C.posix_spawn_file_actions_addopen(fa, 1, out, O_WRONLY + O_CREAT + O_TRUNC, 420)
    ffi.C.posix_spawn_file_actions_addopen(fa, 2, err, O_WRONLY + O_CREAT + O_TRUNC, 420)
    local pid = ffi.new("int[1]")
    local rc = ffi.C.posix_spawn(pid, argv[1], fa, nil, cargv, ffi.C.environ)
    ffi.C.posix_spawn_file_actions_destroy(fa)
    if rc ~= 0 then return { code = 127, stdout = "", stderr = "spawn " .. argv[1] .. ": errno " .. rc } end
    local st = ffi.new("int[1]")
    local waited = 0
    while ffi.C.waitpid(pid[0], st, 1) == 0 do        -- WNOHANG
      if waited > 60 then ffi.C.kill(pid[0], 9) end
      ffi.C.usleep(2000)
      waited = waited + 0.002
    end
    local w = st[0]
    local code = bit.band(w, 0x7f) == 0 and bit.band(bit.rshift(w, 8), 0xff) or 128 + bit.band(w, 0x7f)
    return { code = code, stdout = B.read(out) or "", stderr = B.read(err) or "" }
  end

  local function trim(s) return s and (s:gsub("%s+$", "")) end
  local function exists(p)
    local f = io.open(p)
    if f then f:close() end
    return f ~= nil
  end
  local function cgread(rel, file) return trim(B.read(CG .. rel .. "/" .. file)) end
  local function cgwrite(path, v)
    local f = io.open(path, "w")
    if not f then return false end
    f:setvbuf("no")
    local ok = f:write(v)
    f:close()
    return ok ~= nil
  end
  local function count(s) return select(2, (s or ""):gsub("%d+", "")) end
  local have_crun = exists(CRUN)

  local merge = B.merge

  local live = {}     -- [bin .. " " .. id] = {bin, id} not yet deleted
  -- `<runtime> --root <T>/<name>-root ARGS...`
  local function rt(bin, ...)
    return x { bin, "--root", T .. "/" .. names[bin] .. "-root", ... }
  end
  local seq = 0
  -- a bundle using the shared read-only rootfs; returns id, dir, cgroup path
  local function bundle(tag, bin, args, overrides, edit)
    seq = seq + 1
    local id = string.format("%s-%s-%d", names[bin], tag, seq)
    local dir = T .. "/" .. id
    mkdir(dir)
    local cfg = B.default_config()
    cfg.root = { path = ROOTFS, readonly = true }
    cfg.process.args = args
    cfg.linux.cgroupsPath = "/crater-test/" .. id
    if overrides then merge(cfg, overrides) end
    if edit then edit(cfg) end
    B.write(dir .. "/config.json", cjson.encode(cfg))
    return id, dir, "/crater-test/" .. id
  end
  local function create(bin, id, dir)
    live[bin .. " " .. id] = { bin, id }
    return rt(bin, "create", "--bundle", dir, "--pid-file", dir .. "/pid", id)
  end
  local function run(bin, id, dir)
    live[bin .. " " .. id] = { bin, id }
    return rt(bin, "run", "--bundle", dir, id)
  end
  local function delete(bin, id, force)
    local r = force and rt(bin, "delete", "--force", id) or rt(bin, "delete", id)
    if r.code == 0 then live[bin .. " " .. id] = nil end
    return r
  end
  local function state(bin, id)
    local r = rt(bin, "state", id)
    local ok, st = pcall(cjson.decode, r.stdout)
    return ok and st or { status = "error: " .. r.stderr }
  end
  local function wait_status(bin, id, want)
    local st
    for _ = 1, 100 do
      st = state(bin, id).status
      if st == want then break end
      sleep(0.05)
    end
    return st
  end
  -- creates a container (its init waits in the cgroup for start);
  -- returns id, dir, cgroup path, pid
  local function created(tag, bin, args, overrides, edit)
    local id, dir, rel = bundle(tag, bin, args, overrides, edit)
    local c = create(bin, id, dir)
    assert(c.code == 0, names[bin] .. " create: " .. c.stderr)
    return id, dir, rel, tonumber(B.read(dir .. "/pid"))
  end
  -- creates and starts a container
  local function started(tag, bin, args, overrides, edit)
    local id, dir, rel, pid = created(tag, bin, args, overrides, edit)
    local s = rt(bin, "start", id)
    assert(s.code == 0, names[bin] .. " start: " .. s.stderr)
    return id, dir, rel, pid
  end
  -- the same function for crater-runtime and crun: {crater=, crun=}
  local function both(fn)
    local out = { crater = fn(RT) }
    if have_crun then out.crun = fn(CRUN) end
    return out
  end
  -- one bundle per runtime run to completion: {crater=, crun=} of
  -- {code, stdout, stderr}
  local function both_ran(tag, args, overrides, edit)
    return both(function(bin)
      local id, dir = bundle(tag, bin, args, overrides, edit)
      local r = run(bin, id, dir)
      return { code = r.code, stdout = r.stdout, stderr = r.stderr }
    end)
  end
  -- output with the container id replaced, for crater/crun comparisons
  local function norm(s, id) return (s:gsub(id:gsub("%p", "%%%0"), "<id>")) end
  local function cpu_ticks(pid)
    local s = B.read("/proc/" .. pid .. "/stat") or ""
    local f = {}
    for w in (s:match("%) (.*)") or ""):gmatch("%S+") do f[#f + 1] = w end
    return (tonumber(f[12]) or 0) + (tonumber(f[13]) or 0)   -- utime + stime
  end
  local function now() return tonumber(B.read("/proc/uptime"):match("^%S+")) end
  local function check(name, fn)
    local t0, n0 = now(), spawned
    local ok, res = xpcall(fn, debug.traceback)
    R[name] = ok and res or { error = tostring(res) }
    for k, c in pairs(live) do
      delete(c[1], c[2], true)
      live[k] = nil
    end
    io.stderr:write(string.format("v2 check %s: %s, %.1fs, %d processes\n", name, ok and "done" or "error",
      now() - t0, spawned - n0))
  end
  -- A shell line finding the container's own cgroup dir from inside: crater
  -- binds it on /sys/fs/cgroup, crun mounts the whole cgroup2 tree there.
  local OWN = [[d=/sys/fs/cgroup; [ -f $d/cgroup.procs ] && [ ! -f $d/memory.max ] && ]] ..
              [[{ IFS=: read -r _ _ p </proc/self/cgroup; d=$d$p; }; ]]

  mkdir(T)
  R.meta = {
    kernel = trim(B.read("/proc/sys/kernel/osrelease")),
    fstype = trim(x({ "/usr/bin/stat", "-f", "-c", "%T", CG }).stdout),
    root_controllers = cgread("", "cgroup.subtree_control"),
    nproc = select(2, (B.read("/sys/fs/cgroup/cpuset.cpus.effective") or ""):gsub("%d+", "")),
    online = trim(B.read("/sys/devices/system/cpu/online")),
    crun = have_crun and trim(x({ CRUN, "--version" }).stdout:match("[^\n]+")) or nil,
  }

  check("features", function()
    local r = rt(RT, "features")
    local f = cjson.decode(r.stdout)
    return { code = r.code, mode = f.annotations and f.annotations["io.crater.runtime.cgroup.mode"],
             v2 = f.linux and f.linux.cgroup and f.linux.cgroup.v2 }
  end)

  -- A host where nobody enabled controllers at the root (no systemd): the
  -- runtime must enable them on the whole path, the root included (runc does).
  check("root_controllers", function()
    local before = cgread("", "cgroup.subtree_control")
    for c in before:gmatch("%S+") do cgwrite(CG .. "/cgroup.subtree_control", "-" .. c) end
    local out = { off = cgread("", "cgroup.subtree_control") }
    local id, dir, rel = bundle("rootctl", RT, { "sleep", "100" },
      { linux = { resources = { memory = { limit = 33554432 }, pids = { limit = 20 },
                                cpu = { shares = 512, quota = 20000, period = 100000, cpus = "0" } } } })
    local c = create(RT, id, dir)
    out.code, out.stderr = c.code, c.stderr
    out.root = cgread("", "cgroup.subtree_control")
    out.controllers = cgread(rel, "cgroup.controllers")
    out.memory_max, out.pids_max, out.cpu_max = cgread(rel, "memory.max"), cgread(rel, "pids.max"), cgread(rel, "cpu.max")
    delete(RT, id, true)
    for ctl in before:gmatch("%S+") do cgwrite(CG .. "/cgroup.subtree_control", "+" .. ctl) end
    out.restored = cgread("", "cgroup.subtree_control")
    return out
  end)

  check("own_cgroup", function()
    return both(function(bin)
      local id, _, rel, pid = started("own", bin, { "sleep", "1000" })
      local out = {
        dir = exists(CG .. rel),
        host_view = norm(trim(B.read("/proc/" .. pid .. "/cgroup")), id),
        procs = cgread(rel, "cgroup.procs"),
        pid = pid,
        controllers = cgread(rel, "cgroup.controllers"),
      }
      out.exec_view = norm(trim(rt(bin, "exec", id, "cat", "/proc/self/cgroup").stdout), id)
      local ps = rt(bin, "ps", "--format", "json", id)
      local pok, pids = pcall(cjson.decode, ps.stdout)
      out.ps = pok and pids or ps.stderr
      local inside = rt(bin, "exec", id, "sh", "-c", "test -f /sys/fs/cgroup/memory.max && echo own; " ..
        "test -f /sys/fs/cgroup/cgroup.controllers && echo cgroup2; " ..
        "(echo 1 >/sys/fs/cgroup/cgroup.freeze) 2>/dev/null && echo writable || echo readonly")
      out.inside = trim(inside.stdout)
      out.inside_err = inside.stderr
      assert(rt(bin, "kill", id, "KILL").code == 0, "kill")
      out.stopped = wait_status(bin, id, "stopped")
      out.deleted = delete(bin, id).code
      out.gone = not exists(CG .. rel)
      return out
    end)
  end)

  -- The init, and a process exec'd later, are cloned into their cgroup
  -- (clone3 CLONE_INTO_CGROUP, as crun does): no pid is ever written to a
  -- cgroup.procs, which on v2 waits for an RCU grace period (cgroup.c).
  -- Seen through strace; the processes still land in the cgroup.
  check("clone_into_cgroup", function()
    local STRACE = "/usr/bin/strace"
    if not exists(STRACE) then return { skip = "strace not installed" } end
    local id, dir, rel = bundle("into", RT, { "sleep", "1000" })
    live[RT .. " " .. id] = { RT, id }
    local trace = T .. "/" .. id .. ".strace"
    local function traced(...)
      -- not -f: the runtime itself clones (and used to move) the processes;
      -- following the init would keep strace waiting for it
      return x { STRACE, "-qq", "-e", "trace=clone3,openat", "-o", trace,
                 RT, "--root", T .. "/crater-root", ... }
    end
    local out = {}
    local c = traced("create", "--bundle", dir, "--pid-file", dir .. "/pid", id)
    out.create = c.code
    out.create_err = c.stderr
    local t = B.read(trace) or ""
    out.create_into = t:find("CLONE_INTO_CGROUP", 1, true) ~= nil
    out.create_moves = t:find('cgroup.procs", O_WRONLY', 1, true) ~= nil
    rt(RT, "start", id)
    local pid = B.read(dir .. "/pid")
    out.init_procs = trim(cgread(rel, "cgroup.procs")) == trim(pid)
    local e = traced("exec", id, "cat", "/proc/self/cgroup")
    out.exec = e.code
    out.exec_view = norm(trim(e.stdout), id)
    t = B.read(trace) or ""
    out.exec_into = t:find("CLONE_INTO_CGROUP", 1, true) ~= nil
    out.exec_moves = t:find('cgroup.procs", O_WRONLY', 1, true) ~= nil
    rt(RT, "kill", id, "KILL")
    wait_status(RT, id, "stopped")
    out.deleted = delete(RT, id).code
    return out
  end)

  -- Joining a namespace by path: the process that joins it is the one
  -- cloned into the cgroup, and the init it forks inherits the cgroup.
  check("join_into_cgroup", function()
    return both(function(bin)
      local id1 = started("owner", bin, { "sleep", "1000" }, { hostname = "shared-uts" })
      local pid = state(bin, id1).pid
      local id2, dir2 = bundle("joiner", bin, { "sh", "-c", "hostname; cat /proc/self/cgroup" }, nil,
        function(cfg)
          cfg.hostname = nil   -- a joined UTS namespace keeps its own
          for _, ns in ipairs(cfg.linux.namespaces) do
            if ns.type == "uts" then ns.path = "/proc/" .. tostring(pid) .. "/ns/uts" end
          end
        end)
      local r = run(bin, id2, dir2)
      return { code = r.code, stdout = norm(r.stdout, id2), stderr = r.stderr }
    end)
  end)

  check("cgroupns", function()
    return both_ran("cgns",
      { "sh", "-c", "cat /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mounts | cut -d' ' -f1,3; cat /sys/fs/cgroup/pids.max" },
      { linux = { resources = { pids = { limit = 9 } } } },
      function(cfg) table.insert(cfg.linux.namespaces, { type = "cgroup" }) end)
  end)

  -- A user namespace: the parent moves the init (it cannot itself), and the
  -- cgroup bind's read-only remount must keep the flags the user namespace
  -- locks on the source mount.
  check("userns", function()
    return both(function(bin)
      local id, dir = bundle("userns", bin,
        { "sh", "-c", "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; id -u" },
        { linux = { resources = { memory = { limit = 20971520 } },
                    uidMappings = { { containerID = 0, hostID = 100000, size = 65536 } },
                    gidMappings = { { containerID = 0, hostID = 100000, size = 65536 } } } },
        function(cfg) table.insert(cfg.linux.namespaces, { type = "user" }) end)
      local r = run(bin, id, dir)
      return { code = r.code, stdout = norm(r.stdout, id), stderr = r.stderr }
    end)
  end)

  -- Sub-cgroups made by the container itself (cgroup namespace, writable
  -- cgroup mount) go with it on delete.
  check("nested", function()
    return both(function(bin)
      local id, _, rel = started("nested", bin, { "sh", "-c",
        "mkdir /sys/fs/cgroup/sub && echo $$ >/sys/fs/cgroup/sub/cgroup.procs && exec sleep 1000" }, nil,
        function(cfg)
          table.insert(cfg.linux.namespaces, { type = "cgroup" })
          for _, m in ipairs(cfg.mounts) do
            if m.destination == "/sys/fs/cgroup" then m.options = { "nosuid", "noexec", "nodev", "relatime" } end
          end
        end)
      for _ = 1, 100 do   -- until the shell has moved itself (mkdir comes first)
        if count(cgread(rel .. "/sub", "cgroup.procs")) > 0 then break end
        sleep(0.05)
      end
      local out = { sub_procs = count(cgread(rel .. "/sub", "cgroup.procs")), top_procs = count(cgread(rel, "cgroup.procs")) }
      out.deleted = delete(bin, id, true).code
      out.gone = not exists(CG .. rel)
      return out
    end)
  end)

  check("memory", function()
    local cases = {
      { limit = 16777216, swap = 33554432, reservation = 8388608 },
      { limit = 33554432, swap = -1 },
      { limit = 25165824, swap = 25165824 },
    }
    local out = {}
    for i, m in ipairs(cases) do
      out[i] = both(function(bin)
        local id, _, rel = created("mem", bin, { "sleep", "1000" }, { linux = { resources = { memory = m } } })
        local r = { max = cgread(rel, "memory.max"), swap_max = cgread(rel, "memory.swap.max"),
                    low = cgread(rel, "memory.low") }
        delete(bin, id, true)
        return r
      end)
    end
    return out
  end)

  check("oom", function()
    local mem = { linux = { resources = { memory = { limit = 16777216, swap = 16777216 } } } }
    return both(function(bin)
      local id, dir = bundle("oom", bin, { "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1" }, mem)
      local init = run(bin, id, dir)
      local id2, dir2 = bundle("oomev", bin, { "sh", "-c", OWN ..
        "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?; grep oom $d/memory.events" }, mem)
      local child = run(bin, id2, dir2)
      return { init_code = init.code, init_stderr = init.stderr, code = child.code, stdout = child.stdout,
               stderr = child.stderr }
    end)
  end)

  check("pids", function()
    local lim = { linux = { resources = { pids = { limit = 5 } } } }
    return both(function(bin)
      local id, _, rel = created("pidsmax", bin, { "sleep", "1000" }, lim)
      local max = cgread(rel, "pids.max")
      delete(bin, id, true)
      -- a failed fork ends busybox sh, hence the subshell (one pid while it
      -- lives); after it only builtins, as every process counts
      local id2, dir2 = bundle("pids", bin, { "sh", "-c", OWN .. [[
        (for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done) 2>/dev/null
        read cur <$d/pids.current; echo current=$cur
        read max <$d/pids.max; echo max=$max
        while read k v; do [ "$k" = max ] && [ "$v" -gt 0 ] && echo fork-failed; done <$d/pids.events
        true]] }, lim)
      local r = run(bin, id2, dir2)
      return { max = max, code = r.code, stdout = r.stdout, stderr = r.stderr }
    end)
  end)

  check("cpu", function()
    local cases = {
      { shares = 1024, quota = 50000, period = 100000 },
      { shares = 2 },
      { shares = 262144, quota = -1, period = 50000 },
      { shares = 512, quota = 25000 },
      { shares = 100, quota = 150000, period = 200000 },
    }
    local out = {}
    for i, c in ipairs(cases) do
      out[i] = both(function(bin)
        local id, _, rel = created("cpu", bin, { "sleep", "1000" }, { linux = { resources = { cpu = c } } })
        local r = { weight = cgread(rel, "cpu.weight"), max = cgread(rel, "cpu.max") }
        delete(bin, id, true)
        return r
      end)
    end
    return out
  end)

  check("cpuset", function()
    return both(function(bin)
      local id, _, rel, pid = created("cpuset", bin, { "sleep", "1000" },
        { linux = { resources = { cpu = { cpus = "1", mems = "0" } } } })
      local status = B.read("/proc/" .. pid .. "/status") or ""
      local r = { cpus = cgread(rel, "cpuset.cpus"), mems = cgread(rel, "cpuset.mems"),
                  effective = cgread(rel, "cpuset.cpus.effective"),
                  allowed = status:match("Cpus_allowed_list:%s*(%S+)") }
      delete(bin, id, true)
      return r
    end)
  end)

  check("unified", function()
    return both(function(bin)
      local id, _, rel = created("unified", bin, { "sleep", "1000" },
        { linux = { resources = { unified = { ["memory.high"] = "50331648", ["pids.max"] = "42",
                                              ["cpu.weight"] = "77" } } } })
      local r = { high = cgread(rel, "memory.high"), pids = cgread(rel, "pids.max"), weight = cgread(rel, "cpu.weight") }
      delete(bin, id, true)
      return r
    end)
  end)

  check("freeze", function()
    return both(function(bin)
      local id, _, rel, pid = started("freeze", bin, { "sh", "-c", "while :; do :; done" })
      local out = { running = state(bin, id).status }
      out.pause = rt(bin, "pause", id).code
      out.paused = state(bin, id).status
      out.freeze = cgread(rel, "cgroup.freeze")
      out.events = (cgread(rel, "cgroup.events") or ""):match("frozen (%d)")
      local t0 = cpu_ticks(pid)
      sleep(0.5)
      out.frozen_ticks = cpu_ticks(pid) - t0
      out.resume = rt(bin, "resume", id).code
      out.resumed = state(bin, id).status
      out.thawed = cgread(rel, "cgroup.freeze")
      t0 = cpu_ticks(pid)
      sleep(0.5)
      out.running_ticks = cpu_ticks(pid) - t0
      -- a paused container can be force-deleted, cgroup and all
      out.pause2 = rt(bin, "pause", id).code
      out.force_delete = delete(bin, id, true).code
      out.gone = not exists(CG .. rel)
      return out
    end)
  end)

  check("kill_all", function()
    local id, _, rel = started("killall", RT, { "sh", "-c", "sleep 1000 & sleep 1000 & wait" })
    for _ = 1, 100 do
      if count(cgread(rel, "cgroup.procs")) >= 3 then break end
      sleep(0.05)
    end
    local out = { nprocs = count(cgread(rel, "cgroup.procs")) }
    out.kill = rt(RT, "kill", "--all", id, "KILL").code
    out.stopped = wait_status(RT, id, "stopped")
    out.left = count(cgread(rel, "cgroup.procs"))
    out.deleted = delete(RT, id).code
    out.gone = not exists(CG .. rel)
    return out
  end)

  check("stats", function()
    local id, _, rel = started("stats", RT,
      { "sh", "-c", "dd if=/dev/zero of=/dev/shm/x bs=1M count=8 2>/dev/null; exec sleep 1000" },
      { linux = { resources = { memory = { limit = 67108864 }, pids = { limit = 50 },
                                cpu = { quota = 50000, period = 100000 } } } })
    for _ = 1, 100 do
      if (tonumber(cgread(rel, "memory.current")) or 0) > 8 * 1048576 and
         cgread(rel, "pids.current") == "1" then break end
      sleep(0.05)
    end
    local r = rt(RT, "events", "--stats", id)
    local out = { code = r.code, stderr = r.stderr,
                  files = { memory_current = tonumber(cgread(rel, "memory.current")),
                            pids_current = tonumber(cgread(rel, "pids.current")) } }
    local ok, ev = pcall(cjson.decode, r.stdout:match("[^\n]+") or "")
    if ok then out.event = ev else out.stdout = r.stdout end
    out.deleted = delete(RT, id, true).code
    return out
  end)

  -- The crater CLI (shim + crater-runtime) with --rootfs and with an image.
  local CROOT = T .. "/crater-cli"
  local function crater(...)
    return x { CRATER, "--root", CROOT, ... }
  end

  check("cli_metrics", function()
    local r = crater("run", "-d", "--runtime", "crater", "--rootfs", ROOTFS, "--memory", "64m", "--cpus", "0.5",
      "--cpu-shares", "512", "--pids-limit", "20", "m1", "sleep", "1000")
    local out = { run = r.code, run_stderr = r.stderr }
    local rel = "/crater/default/m1"
    out.files = { memory_max = cgread(rel, "memory.max"), cpu_max = cgread(rel, "cpu.max"),
                  weight = cgread(rel, "cpu.weight"), pids_max = cgread(rel, "pids.max") }
    local m = crater("--format", "json", "task", "metrics", "m1")
    out.metrics_code, out.metrics_stderr = m.code, m.stderr
    local ok, mj = pcall(cjson.decode, m.stdout)
    if ok then out.metrics = mj else out.metrics_stdout = m.stdout end
    out.kill = crater("task", "kill", "-s", "KILL", "m1").code   -- sleep as pid 1 ignores TERM
    out.wait = crater("task", "wait", "m1").code
    local rm = crater("container", "rm", "m1")
    out.rm = { code = rm.code, stderr = rm.stderr }
    out.gone = not exists(CG .. rel)
    local oom = crater("run", "--rm", "--runtime", "crater", "--rootfs", ROOTFS, "--memory", "16m", "oomc",
      "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    out.oom_code, out.oom_stderr = oom.code, oom.stderr
    out.oom_gone = not exists(CG .. "/crater/default/oomc")
    return out
  end)

  -- overlayfs on the guest's 6.1 kernel: fsconfig takes "lowerdir+" and
  -- only the create refuses it (EINVAL), so the mount falls back to
  -- mount(2) (src/snapshot/mount.c); the rootfs is mounted by the runtime
  -- inside the container's namespace and volatile (--rm)
  check("cli_image", function()
    if not LAYOUT then return { skipped = "no fixture layout" } end
    local imp = crater("image", "import", LAYOUT)
    local out = { import = imp.code, import_stderr = imp.stderr }
    local r = crater("run", "--rm", "--runtime", "crater", "--snapshotter", "overlayfs", "--memory", "32m",
      "--pids-limit", "7", "--cpus", "0.25", "busybox", "img1", "sh", "-c",
      "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; cat /proc/self/cgroup")
    out.code, out.stdout, out.stderr = r.code, r.stdout, r.stderr
    out.gone = not exists(CG .. "/crater/default/img1")
    return out
  end)

  -- device rules on v2 are an eBPF program on the cgroup: the default
  -- deny-all plus the default devices.  /dev/kmsg (c 1:11) is bound in
  -- from the host: opening it must fail (EPERM from the filter, not a
  -- missing node); with CAP_MKNOD, mknod of any node works (as under
  -- runc and crun: opening is what the rules decide).
  check("devices", function()
    local caps = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_MKNOD" }
    local function edit(cfg)
      cfg.process.capabilities = { bounding = caps, effective = caps, permitted = caps }
      cfg.mounts[#cfg.mounts + 1] = { destination = "/dev/kmsg", type = "bind", source = "/dev/kmsg",
        options = { "rbind", "rw" } }
    end
    return both_ran("dev", { "sh", "-c",
      "(: </dev/kmsg) 2>/dev/null; echo kmsg=$?; mknod /dev/k c 1 11 2>/dev/null; echo mknod_kmsg=$?; " ..
      "mknod /dev/n c 1 3; echo mknod_null=$?; echo x >/dev/n; echo write_null=$?; " ..
      "head -c 4 /dev/zero | wc -c" }, nil, edit)
  end)

  check("blkio", function()
    return both(function(bin)
      local id, _, rel = created("bio", bin, { "sleep", "1000" },
        { linux = { resources = { blockIO = { weight = 500 } } } })
      local r = { weight = cgread(rel, "io.weight"), bfq = cgread(rel, "io.bfq.weight") }
      delete(bin, id, true)
      return r
    end)
  end)

  check("ten", function()
    local ids, rels = {}, {}
    for i = 1, 10 do
      local id, dir, rel = bundle("ten" .. i, RT, { "sleep", "1000" })
      local c = create(RT, id, dir)
      assert(c.code == 0, "create " .. id .. ": " .. c.stderr)
      ids[i], rels[i] = id, rel
    end
    local out = { made = 0, deleted = 0, left = {} }
    for i = 1, 10 do
      if exists(CG .. rels[i]) then out.made = out.made + 1 end
      if i % 2 == 0 then rt(RT, "start", ids[i]) end   -- half running, half created
    end
    for i = 1, 10 do
      if delete(RT, ids[i], true).code == 0 then out.deleted = out.deleted + 1 end
    end
    for i = 1, 10 do
      if exists(CG .. rels[i]) then out.left[#out.left + 1] = rels[i] end
    end
    return out
  end)

  check("leftovers", function()
    local r = x { "/usr/bin/find", CG, "-mindepth", "1", "-type", "d" }
    local dirs = {}
    for l in r.stdout:gmatch("[^\n]+") do dirs[#dirs + 1] = l:sub(#CG + 1) end
    table.sort(dirs)
    return { dirs = dirs }
  end)

  io.stderr:write(string.format("v2 guest: %d processes spawned\n", spawned))
  io.stdout:write("V2RESULTS ", cjson.encode(R), "\n")
end

if describe == nil then
  guest()
  return
end

-- ------------------------------------------------------------------------
-- host half: busted
-- ------------------------------------------------------------------------
local cjson = require "cjson"
local v2vm = require "support.v2vm"

local SRC = os.getenv("CRATER_SRC") or "."

describe("cgroup v2 (in a VM)", function()
  local R, skip, failure, run_info, tmp

  setup(function()
    tmp = v2vm.tmpdir("cgv2")
    os.execute("chmod 755 " .. tmp)   -- a user-namespaced root (host uid 100000) must reach the rootfs
    -- one busybox rootfs for every container: read-only roots can share it
    local rootfs = tmp .. "/rootfs"
    local ok = os.execute(string.format(
      "mkdir -p %s/bin %s/etc %s/tmp %s/root %s/proc %s/dev %s/sys %s/mnt && chmod 1777 %s/tmp && " ..
      "cp /bin/busybox %s/bin/busybox && cd %s/bin && for a in $(./busybox --list); do [ -e $a ] || ln -s busybox $a; done",
      rootfs, rootfs, rootfs, rootfs, rootfs, rootfs, rootfs, rootfs, rootfs, rootfs, rootfs))
    assert(ok == true or ok == 0, "rootfs")
    local f = assert(io.open(rootfs .. "/etc/passwd", "w"))
    f:write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    f:close()
    f = assert(io.open(rootfs .. "/etc/group", "w"))
    f:write("root:x:0:\nnogroup:x:65534:\n")
    f:close()
    local env = { V2_ROOTFS = rootfs }
    local fok, fx = pcall(require, "support.fixtures")
    if fok then
      local lok, layout = pcall(fx.layout)
      if lok then env.V2_LAYOUT = layout end
    end
    local r = v2vm.run({ "luajit", SRC .. "/spec/functional/cgroup_v2_spec.lua" },
      { mem = "1G", cpus = 2, timeout = 240, env = env })
    run_info = r
    if r.skip then skip = r.skip return end
    local line = r.stdout:match("V2RESULTS ([^\n]+)")
    if not line then
      failure = string.format("guest run failed (exit %s)\nstdout:\n%s\nstderr:\n%s", tostring(r.code), r.stdout, r.stderr)
      return
    end
    R = cjson.decode(line)
    -- kept for reading after the run (what crun did, the raw stats...)
    local keep = io.open((os.getenv("CRATER_BUILD") or "build") .. "/testtmp/cgroup_v2-results.json", "w")
    if keep then keep:write(line, "\n") keep:close() end
    io.stderr:write(string.format("\ncgroup_v2: guest %s, %s, boot %.1fs, total %.1fs\n",
      R.meta.kernel, r.accel or "?", r.boot or -1, r.total or -1))
    for l in r.stderr:gmatch("v2 check [^\n]*: [^\n]*") do io.stderr:write("  ", l, "\n") end
  end)

  teardown(function() v2vm.rmdir(tmp) end)

  -- the result of one guest check; nil when the spec is pending
  local function result(name)
    if skip then pending(skip) return nil end
    assert(failure == nil, failure)
    local r = R[name]
    assert(r ~= nil, "no result for " .. name)
    assert(r.error == nil, name .. " failed in the guest: " .. tostring(r.error))
    return r
  end
  local function show(t) return cjson.encode(t) end
  -- crater and crun gave the same observation
  local function same_as_crun(r, what)
    if R.meta.crun == nil then return end
    assert.are.same(r.crun, r.crater, (what or "") .. ": crater vs crun: " .. show(r))
  end

  it("boots a guest whose only hierarchy is cgroup2 with the controllers enabled", function()
    local meta = result("meta")
    if not meta then return end
    assert.equal("cgroup2fs", meta.fstype)
    for _, c in ipairs { "cpuset", "cpu", "io", "memory", "pids" } do
      assert.matches("%f[%w]" .. c .. "%f[%W]", meta.root_controllers)
    end
    assert.is_true(meta.nproc >= 2, "cpuset checks need 2 vCPUs")
    local f = result("features")
    assert.equal(0, f.code)
    assert.equal("v2", f.mode)
    assert.is_true(f.v2)
  end)

  it("enables the controllers from the root down when nobody did", function()
    local r = result("root_controllers")
    if not r then return end
    assert.equal("", r.off)
    assert.equal(0, r.code, r.stderr)
    for _, c in ipairs { "cpu", "memory", "pids" } do
      assert.matches("%f[%w]" .. c .. "%f[%W]", r.root, show(r))
      assert.matches("%f[%w]" .. c .. "%f[%W]", r.controllers, show(r))
    end
    assert.equal("33554432", r.memory_max)
    assert.equal("20", r.pids_max)
    assert.equal("20000 100000", r.cpu_max)
  end)

  it("puts the container (and exec'd processes) in its own cgroup", function()
    local r = result("own_cgroup")
    if not r then return end
    local c = r.crater
    assert.is_true(c.dir)
    assert.equal("0::/crater-test/<id>", c.host_view)
    assert.equal(tostring(c.pid), c.procs)
    assert.are.same({ c.pid }, c.ps)
    assert.equal("0::/crater-test/<id>", c.exec_view)
    for _, ctl in ipairs { "cpuset", "cpu", "io", "memory", "pids" } do
      assert.matches("%f[%w]" .. ctl .. "%f[%W]", c.controllers)
    end
    -- without a cgroup namespace /sys/fs/cgroup is the container's own dir,
    -- read-only (crun mounts the whole cgroup2 tree there instead)
    assert.equal("own\ncgroup2\nreadonly", c.inside, c.inside_err)
    assert.equal("stopped", c.stopped)
    assert.equal(0, c.deleted)
    assert.is_true(c.gone, "cgroup dir left after delete")
    if r.crun then
      for _, k in ipairs { "host_view", "exec_view", "stopped", "gone" } do
        assert.are.same(r.crun[k], c[k], k .. ": crater vs crun: " .. show(r))
      end
    end
  end)

  it("clones the init and exec'd processes into their cgroup (no cgroup.procs write)", function()
    local r = result("clone_into_cgroup")
    if not r then return end
    if r.skip then pending(r.skip) return end
    assert.equal(0, r.create, r.create_err)
    assert.is_true(r.create_into, show(r))
    assert.is_false(r.create_moves, show(r))
    assert.is_true(r.init_procs, show(r))
    assert.equal(0, r.exec)
    assert.equal("0::/crater-test/<id>", r.exec_view)
    assert.is_true(r.exec_into, show(r))
    assert.is_false(r.exec_moves, show(r))
    assert.equal(0, r.deleted)
  end)

  it("joins a namespace by path and still starts in its own cgroup", function()
    local r = result("join_into_cgroup")
    if not r then return end
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("shared-uts\n0::/crater-test/<id>\n", r.crater.stdout)
    same_as_crun(r)
  end)

  it("mounts the container's cgroup as / of a cgroup namespace", function()
    local r = result("cgroupns")
    if not r then return end
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("0::/\ncgroup2 cgroup2\n9\n", r.crater.stdout)
    same_as_crun(r)
  end)

  it("runs a user-namespaced container in its v2 cgroup", function()
    local r = result("userns")
    if not r then return end
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("0::/crater-test/<id>\n20971520\n0\n", r.crater.stdout)
    if r.crun then
      assert.equal(r.crun.code, r.crater.code)
      assert.matches("^0::/crater%-test/<id>\n", r.crun.stdout, "crun: " .. show(r.crun))
    end
  end)

  it("removes sub-cgroups the container made itself on delete", function()
    local r = result("nested")
    if not r then return end
    assert.are.same({ sub_procs = 1, top_procs = 0, deleted = 0, gone = true }, r.crater)
    same_as_crun(r)
  end)

  it("writes memory.max, memory.swap.max and memory.low as crun does", function()
    local r = result("memory")
    if not r then return end
    assert.are.same({ max = "16777216", swap_max = "16777216", low = "8388608" }, r[1].crater)
    assert.are.same({ max = "33554432", swap_max = "max", low = "0" }, r[2].crater)
    assert.are.same({ max = "25165824", swap_max = "0", low = "0" }, r[3].crater)
    for i = 1, 3 do same_as_crun(r[i], "memory case " .. i) end
  end)

  it("OOM-kills past memory.max (exit 137, oom_kill in memory.events)", function()
    local r = result("oom")
    if not r then return end
    assert.equal(137, r.crater.init_code, r.crater.init_stderr)
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.matches("dd=137\n", r.crater.stdout)
    assert.matches("oom_kill [1-9]", r.crater.stdout)
    if r.crun then
      assert.equal(r.crun.init_code, r.crater.init_code)
      assert.equal(r.crun.stdout, r.crater.stdout)
    end
  end)

  it("writes pids.max and fork fails beyond it", function()
    local r = result("pids")
    if not r then return end
    assert.equal("5", r.crater.max)
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("current=4\nmax=5\nfork-failed\n", r.crater.stdout)
    if r.crun then
      assert.equal(r.crun.max, r.crater.max)
      assert.equal(r.crun.stdout, r.crater.stdout)
    end
  end)

  it("converts cpu shares to cpu.weight and quota/period to cpu.max like runc/crun", function()
    local r = result("cpu")
    if not r then return end
    -- runc: weight = 1 + ((shares - 2) * 9999) / 262142
    local want = {
      { weight = "39", max = "50000 100000" },
      { weight = "1", max = "max 100000" },
      { weight = "10000", max = "max 50000" },
      { weight = "20", max = "25000 100000" },
      { weight = "4", max = "150000 200000" },
    }
    for i, w in ipairs(want) do
      assert.are.same(w, r[i].crater, "cpu case " .. i .. ": " .. show(r[i]))
      same_as_crun(r[i], "cpu case " .. i)
    end
  end)

  it("writes cpuset.cpus/mems and the container runs only there", function()
    local r = result("cpuset")
    if not r then return end
    assert.are.same({ cpus = "1", mems = "0", effective = "1", allowed = "1" }, r.crater)
    same_as_crun(r)
  end)

  it("writes linux.resources.unified verbatim", function()
    local r = result("unified")
    if not r then return end
    assert.are.same({ high = "50331648", pids = "42", weight = "77" }, r.crater)
    same_as_crun(r)
  end)

  it("pauses and resumes through cgroup.freeze", function()
    local r = result("freeze")
    if not r then return end
    local c = r.crater
    assert.equal("running", c.running)
    assert.equal(0, c.pause)
    assert.equal("paused", c.paused)
    assert.equal("1", c.freeze)
    assert.equal("1", c.events)
    assert.equal(0, c.frozen_ticks, "the frozen process still used CPU")
    assert.equal(0, c.resume)
    assert.equal("running", c.resumed)
    assert.equal("0", c.thawed)
    assert.is_true(c.running_ticks > 0, "the resumed process used no CPU")
    assert.equal(0, c.pause2)
    assert.equal(0, c.force_delete)
    assert.is_true(c.gone, "cgroup dir left after delete --force of a paused container")
    if r.crun then
      for _, k in ipairs { "running", "paused", "freeze", "events", "resumed", "thawed", "force_delete", "gone" } do
        assert.are.same(r.crun[k], c[k], k .. ": crater vs crun: " .. show(r))
      end
    end
  end)

  it("kill --all signals every process of the cgroup", function()
    local r = result("kill_all")
    if not r then return end
    assert.equal(3, r.nprocs)
    assert.equal(0, r.kill)
    assert.equal("stopped", r.stopped)
    assert.equal(0, r.left)
    assert.equal(0, r.deleted)
    assert.is_true(r.gone)
  end)

  it("reports memory, cpu and pids stats from the v2 files (events --stats)", function()
    local r = result("stats")
    if not r then return end
    assert.equal(0, r.code, r.stderr)
    local d = r.event.data
    assert.equal("stats", r.event.type)
    assert.equal(67108864, d.memory.usage.limit)
    assert.is_true(d.memory.usage.usage > 8 * 1048576, show(d.memory.usage))
    assert.is_true(math.abs(d.memory.usage.usage - r.files.memory_current) < 4 * 1048576)
    assert.is_true(d.memory.usage.max >= d.memory.usage.usage, "max (memory.peak) < usage")
    assert.is_number(d.memory.raw.anon)
    assert.is_true(d.memory.raw.shmem >= 8 * 1048576, "shmem " .. tostring(d.memory.raw.shmem))
    assert.equal(1, d.pids.current)
    assert.equal(50, d.pids.limit)
    assert.is_true(d.cpu.usage.total > 0)
    assert.is_true(d.cpu.usage.user + d.cpu.usage.kernel > 0)
    assert.is_number(d.cpu.throttling.periods)
    assert.equal(0, r.deleted)
  end)

  it("crater run --rootfs: limits in the cgroup, task metrics, OOM, cleanup", function()
    local r = result("cli_metrics")
    if not r then return end
    assert.equal(0, r.run, r.run_stderr)
    assert.are.same({ memory_max = "67108864", cpu_max = "50000 100000", weight = "20", pids_max = "20" }, r.files)
    assert.equal(0, r.metrics_code, r.metrics_stderr)
    assert.equal(67108864, r.metrics.memory.limit)
    assert.is_true(r.metrics.memory.usage > 0)
    assert.equal(1, r.metrics.pids.current)
    assert.equal(20, r.metrics.pids.limit)
    assert.is_number(r.metrics.cpu.usage_ns)
    assert.equal(0, r.kill)
    assert.equal(0, r.rm.code, r.rm.stderr)
    assert.is_true(r.gone, "cgroup left after container rm")
    assert.equal(137, r.oom_code, r.oom_stderr)
    assert.is_true(r.oom_gone)
  end)

  it("crater run IMAGE: limits seen from inside the container", function()
    local r = result("cli_image")
    if not r then return end
    if r.skipped then pending(r.skipped) return end
    assert.equal(0, r.import, r.import_stderr)
    assert.equal(0, r.code, r.stderr)
    -- the CLI's spec has no cgroup namespace: the full path shows
    assert.equal("33554432\n7\n25000 100000\n0::/crater/default/img1\n", r.stdout)
    assert.is_true(r.gone)
  end)

  it("enforces device rules with an eBPF filter (deny-all + defaults), like crun", function()
    local r = result("devices")
    if not r then return end
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("kmsg=1\nmknod_kmsg=0\nmknod_null=0\nwrite_null=0\n4\n", r.crater.stdout)
    same_as_crun({ crater = r.crater.stdout, crun = r.crun and r.crun.stdout }, "devices")
  end)

  it("sets the block I/O weight (io.weight or io.bfq.weight) like crun", function()
    local r = result("blkio")
    if not r then return end
    assert.is_truthy(r.crater.weight or r.crater.bfq, show(r))
    same_as_crun(r, "blkio")
  end)

  it("deletes 10 containers and leaves no cgroup behind", function()
    local r = result("ten")
    if not r then return end
    assert.equal(10, r.made)
    assert.equal(10, r.deleted)
    assert.are.same({}, r.left)
    local left = result("leftovers")
    -- only the parents stay (like runc): /crater-test, /crater, /crater/default
    for _, d in ipairs(left.dirs) do
      assert.matches("^/crater[%-a-z]*$", (d:gsub("/default$", "")), "left behind: " .. show(left.dirs))
    end
  end)

  it("boots within a minute", function()
    if skip then pending(skip) return end
    assert(failure == nil, failure)
    assert.is_true(run_info.boot < 60, "boot took " .. tostring(run_info.boot) .. " s")
  end)
end)
