-- crater run / container / task against real containers (as root), with a
-- busybox rootfs built here, for runc and crater-runtime.
-- Every test cleans up (tasks, shims, runtime state, cgroups, dirs) in
-- after_each, also when it fails half-way.
local proc = require "support.proc"
local daemon = require "support.daemon"

local BIN = (os.getenv("CRATER_BUILD") or "build") .. "/bin/crater"
local is_root = proc.run("id -u").stdout:match("^0") ~= nil

local function q(s) return proc.quote(s) end

local M = {}

--- A busybox rootfs in dir (applet links, passwd/group with extra users).
function M.make_rootfs(dir)
  proc.check("mkdir -p " .. q(dir) .. "/bin " .. q(dir) .. "/etc " .. q(dir) .. "/proc " .. q(dir) .. "/sys "
    .. q(dir) .. "/dev " .. q(dir) .. "/tmp " .. q(dir) .. "/root " .. q(dir) .. "/home/app")
  proc.check("cp /bin/busybox " .. q(dir) .. "/bin/busybox && cd " .. q(dir .. "/bin") ..
    " && for a in $(./busybox --list); do [ \"$a\" = busybox ] || ln -sf busybox \"$a\"; done")
  proc.write_file(dir .. "/etc/passwd",
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
  proc.write_file(dir .. "/etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n")
  proc.check("chmod 1777 " .. q(dir .. "/tmp"))
  return dir
end

local Env = {}
Env.__index = Env

--- A fresh root with a busybox rootfs.  With CRATER_SPEC_DAEMON=1 (the
--- "@daemon" ctest runs) a `crater daemon` serves the root, so every
--- command of the spec goes through a warm worker.
function M.env(runtime)
  local dir = proc.check("mktemp -d /tmp/crt.XXXXXX"):gsub("%s+$", "")
  local e = setmetatable({ dir = dir, root = dir .. "/root", runtime = runtime }, Env)
  e.rootfs = M.make_rootfs(dir .. "/rootfs")
  if daemon.enabled then e:start_daemon() end
  return e
end

M.wait_until, M.children = daemon.wait_until, daemon.children
daemon.mixin(Env)

function Env:cmd(args)
  local parts = { q(BIN), "--root", q(self.root) }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end
Env.cmdline = Env.cmd -- as support.cli's envs (support.daemon uses it)

function Env:crater(args, opts)
  return proc.run(self:cmd(args), opts)
end

--- `crater run --rm --rootfs R [flags] ID CMD...` (no --rm with -d)
function Env:run(id, flags, cmd, opts)
  local detach = false
  for _, f in ipairs(flags or {}) do detach = detach or f == "-d" end
  local a = { "run", "--rootfs", self.rootfs }
  if not detach then a[#a + 1] = "--rm" end
  if self.runtime then a[#a + 1] = "--runtime"; a[#a + 1] = self.runtime end
  for _, f in ipairs(flags or {}) do a[#a + 1] = f end
  a[#a + 1] = id
  for _, c in ipairs(cmd) do a[#a + 1] = c end
  return self:crater(a, opts)
end

--- Kills every shim and container under this env, removes cgroups and dirs.
function Env:cleanup()
  self:stop_daemon()
  local state = self.root .. "/run"
  local list = proc.run("ls -1 " .. q(state .. "/tasks/default") .. " 2>/dev/null").stdout
  for id in list:gmatch("%S+") do
    local dir = state .. "/tasks/default/" .. id
    local spid = tonumber(proc.read_file(dir .. "/shim.pid") or "")
    local tj = proc.read_file(dir .. "/task.json") or ""
    local rt = tj:match('"runtime":%s*"([^"]+)"')
    local rroot = tj:match('"runtime_root":%s*"([^"]+)"')
    if rt and rroot then proc.run(q(rt) .. " --root " .. q(rroot) .. " delete --force " .. q(id)) end
    if spid and proc.alive(spid) then proc.run("kill -9 " .. spid) end
    proc.run("umount -l " .. q(dir .. "/rootfs") .. " 2>/dev/null")
    for _, c in ipairs { "memory", "pids", "cpu,cpuacct", "freezer", "cpuset", "devices", "blkio" } do
      proc.run("rmdir /sys/fs/cgroup/" .. c .. "/crater/default/" .. id .. " 2>/dev/null")
    end
  end
  proc.run("rm -rf " .. q(self.dir))
end

M.Env = Env

-- required by the other functional specs for the helpers above
if (...) == "functional.run_spec" then return M end

if not is_root then
  describe("crater run", function() pending("needs root (real containers)") end)
  return M
end

local runtimes = { "runc" }
local crt = (os.getenv("CRATER_BUILD") or "build") .. "/bin/crater-runtime"
if proc.run("test -x " .. q(crt)).ok then runtimes[#runtimes + 1] = "crater" end

for _, rt in ipairs(runtimes) do
  describe("crater run (" .. rt .. ")", function()
    local env
    before_each(function() env = M.env(rt) end)
    after_each(function() env:cleanup() end)

    it("propagates the exit code and keeps stdout and stderr apart", function()
      local r = env:run("exit1", {}, { "sh", "-c", "echo out; echo err >&2; exit 42" })
      assert.are.equal(42, r.code)
      assert.are.equal("out\n", r.stdout)
      assert.are.equal("err\n", r.stderr)
    end)

    it("sets env, cwd, hostname and resolves user names with extra groups", function()
      local r = env:run("who", { "--env", "FOO=bar", "--cwd", "/tmp", "--user", "app", "--hostname", "box" },
        { "sh", "-c", "echo $FOO; pwd; hostname; id -u; id -g; id -G" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("bar\n/tmp\nbox\n1000\n1000\n1000 2000\n", r.stdout)
      r = env:run("who2", { "--user", "1000:2000" }, { "sh", "-c", "id -u; id -g" })
      assert.are.equal("1000\n2000\n", r.stdout)
      r = env:run("who3", { "--user", "nosuch" }, { "true" })
      assert.are_not.equal(0, r.code)
      assert.matches("nosuch", r.stderr)
    end)

    it("starts the container with no signal ignored or blocked (the shim ignores HUP, INT, PIPE)", function()
      -- from a background job too, where the shell ignores INT and QUIT
      local r = proc.run("( " .. env:cmd { "run", "--rm", "--rootfs", env.rootfs, "--runtime", rt, "sigs", "sh", "-c",
        "grep -E '^Sig(Ign|Blk)' /proc/self/status; trap 'echo trapped; exit 4' INT; kill -INT $$; sleep 1" } ..
        " & wait $! )")
      assert.are.equal(4, r.code, r.stderr)
      assert.are.equal("SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\ntrapped\n", r.stdout)
    end)

    it("uses the id as the default hostname", function()
      local r = env:run("myhost", {}, { "hostname" })
      assert.are.equal("myhost\n", r.stdout)
      -- ids go to 76 bytes, host names to 64: cut (it failed at sethostname)
      local long = ("h"):rep(76)
      r = env:run(long, {}, { "hostname" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(("h"):rep(64) .. "\n", r.stdout)
    end)

    it("makes the rootfs read-only with --read-only", function()
      local r = env:run("ro", { "--read-only" }, { "sh", "-c", "touch /x && echo wrote" })
      assert.are_not.equal(0, r.code)
      assert.matches("Read%-only", r.stderr)
      r = env:run("rw", {}, { "sh", "-c", "touch /x && echo wrote && rm /x" })
      assert.are.equal("wrote\n", r.stdout)
    end)

    it("does bind mounts (ro, rw) and tmpfs", function()
      local host = env.dir .. "/shared"
      proc.check("mkdir -p " .. q(host) .. " && echo hello > " .. q(host .. "/f"))
      local r = env:run("bind", { "--mount", "type=bind,src=" .. host .. ",dst=/data,options=rbind:ro",
        "--mount", "type=tmpfs,dst=/scratch" },
        { "sh", "-c", "cat /data/f; touch /data/g 2>/dev/null || echo ro-ok; grep ' /scratch ' /proc/mounts | cut -d' ' -f3; touch /scratch/y && echo tmp-ok" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("hello\nro-ok\ntmpfs\ntmp-ok\n", r.stdout)
      r = env:run("bindrw", { "--mount", "type=bind,src=" .. host .. ",dst=/data" }, { "sh", "-c", "echo new > /data/g" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("new\n", proc.read_file(host .. "/g"))
    end)

    it("enforces the memory limit (OOM kill observed)", function()
      local r = env:run("oom", { "--memory", "16m" },
        { "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done" })
      assert.are.equal(137, r.code, r.stdout .. r.stderr)
    end)

    it("enforces the pids limit", function()
      -- 20, not less: runc's init is a Go program whose threads count
      -- against the limit before the container's process runs (with 5 it
      -- sometimes died before the start handshake: "container process is
      -- already dead")
      local r = env:run("pids", { "--pids-limit", "20" },
        { "sh", "-c", "i=0; while [ $i -lt 30 ]; do sleep 5 & i=$((i+1)); done; echo not-reached" })
      assert.are_not.equal(0, r.code)
      assert.matches("can't fork", r.stderr)
      assert.not_matches("not%-reached", r.stdout)
      r = env:run("pids2", { "--pids-limit", "50" },
        { "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; echo reached" })
      assert.are.equal("reached\n", r.stdout)
    end)

    it("gives containerd's default capabilities, and honours --cap-add/--cap-drop", function()
      local r = env:run("caps", {}, { "sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status" })
      assert.matches("CapEff:%s+00000000a80425fb", r.stdout)
      assert.matches("CapBnd:%s+00000000a80425fb", r.stdout)
      r = env:run("caps2", { "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN" }, { "sh", "-c", "grep CapEff /proc/self/status" })
      assert.matches("CapEff:%s+00000000a80435fa", r.stdout)
    end)

    it("applies the default seccomp profile, also with no policy files around", function()
      -- CRATER_SRC unset: the binary finds no policies/ dir and must use
      -- the profile compiled in (a container was once left unconfined).
      -- unshare -U needs no capability, so only seccomp can refuse it.
      local script = "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?"
      local function run(id, extra)
        local a = { "run", "--rm", "--rootfs", env.rootfs, "--runtime", rt }
        for _, f in ipairs(extra) do a[#a + 1] = f end
        a[#a + 1] = id
        a[#a + 1] = "sh"; a[#a + 1] = "-c"; a[#a + 1] = script
        return proc.run("env -u CRATER_SRC -u CRATER_POLICY_DIR " .. env:cmd(a))
      end
      local r = run("sc", {})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("Seccomp:\t2\nunshare=1\n", r.stdout)
      r = run("sc2", { "--seccomp", "unconfined" })
      assert.are.equal("Seccomp:\t0\nunshare=0\n", r.stdout)
      r = env:run("sc3", {}, { "unshare", "-m", "true" })
      assert.are_not.equal(0, r.code)
      assert.matches("not permitted", r.stderr)
      -- as containerd's and docker's default profiles: a capability added
      -- brings its syscalls (CAP_SYS_ADMIN: mount, unshare), still filtered
      r = run("sc4", { "--cap-add", "SYS_ADMIN" })
      assert.are.equal("Seccomp:\t2\nunshare=0\n", r.stdout)
      r = env:run("sc5", { "--cap-add", "SYS_ADMIN" }, { "sh", "-c", "mkdir -p /m && mount -t tmpfs t /m && echo mounted" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("mounted\n", r.stdout)
    end)

    it("leaks no file descriptors into the container", function()
      local r = env:run("fds", {}, { "ls", "/proc/self/fd" })
      assert.are.equal("0\n1\n2\n3\n", r.stdout)
      r = env:run("fds2", { "-d" }, { "sleep", "10" })
      assert.are.equal(0, r.code, r.stderr)
      local ex = env:crater { "task", "exec", "fds2", "ls", "/proc/self/fd" }
      assert.are.equal("0\n1\n2\n3\n", ex.stdout)
      env:crater { "task", "kill", "-s", "KILL", "fds2" }
    end)

    -- --privileged gives the host's device nodes, as ctr and nerdctl do
    it("gives a --privileged container the host's devices, and no other", function()
      local find = "find /dev \\( -type c -o -type b \\) | sort"
      local host = {}
      for _, d in ipairs(require("crater.core").host_devices("/dev")) do host[#host + 1] = d.path end
      local r = env:run("priv1", { "--privileged" }, { "sh", "-c", find })
      assert.are.equal(0, r.code, r.stderr)
      local inside = {}
      for p in r.stdout:gmatch("[^\n]+") do inside[p] = true end
      for _, p in ipairs(host) do
        if p ~= "/dev/ptmx" then assert.is_true(inside[p], p .. " missing:\n" .. r.stdout) end
      end
      r = env:run("priv2", {}, { "sh", "-c", find })
      assert.are.equal("/dev/full\n/dev/null\n/dev/random\n/dev/tty\n/dev/urandom\n/dev/zero\n", r.stdout:gsub("/dev/pts/ptmx\n", ""))
    end)

    it("has only loopback (up) with --net none and the host's links with --net host", function()
      local r = env:run("net1", {}, { "sh", "-c", "ls /sys/class/net" })
      assert.are.equal("lo\n", r.stdout)
      -- the loopback works: a TCP connection to 127.0.0.1 inside
      r = env:run("net0", {}, { "sh", "-c",
        "(echo pong | nc -l -p 4711 127.0.0.1 >/dev/null &); sleep 0.2; echo ping | nc 127.0.0.1 4711" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("pong\n", r.stdout)
      local host = proc.check("ls /sys/class/net")
      r = env:run("net2", { "--net", "host" }, { "sh", "-c", "ls /sys/class/net" })
      assert.are.equal(host, r.stdout)
      -- and, as ctr run --net-host, the host's /etc/hosts and resolv.conf
      -- (read-only)
      r = env:run("net3", { "--net", "host" }, { "sh", "-c",
        "cat /etc/hosts /etc/resolv.conf; echo x >> /etc/resolv.conf 2>/dev/null || echo ro" })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(proc.check("cat /etc/hosts /etc/resolv.conf") .. "ro\n", r.stdout)
    end)
  end)
end

describe("crater run: flag values", function()
  local env
  setup(function() env = M.env(nil) end)
  teardown(function() env:cleanup() end)

  -- each case {flags, message}: `crater run` refuses with a usage error
  -- (exit 2) whose message has that text, and no internal error
  local function usage_errors(cases)
    for i, c in ipairs(cases) do
      local r = env:run("bad" .. i, c[1], { "true" })
      assert.are.equal(2, r.code, table.concat(c[1], " ") .. ": " .. r.stderr)
      assert.matches(c[2], r.stderr, 1, true)
      assert.is_nil(r.stderr:find("internal error", 1, true), r.stderr)
    end
  end

  it("rejects bad values with a usage error naming the flag, and leaves nothing behind", function()
    local cases = {
      { { "--memory", "abc" }, "--memory abc: cannot parse abc" },
      { { "--cpus", "-1" }, "--cpus -1: expected a positive number" },
      { { "--cpu-shares", "0" }, "--cpu-shares 0: expected a number >= 2" },
      { { "--pids-limit", "-3" }, "--pids-limit -3: expected a positive number" },
      { { "--cap-add", "NOTACAP" }, "unknown capability CAP_NOTACAP" },
      { { "--mount", "type=bind,dst=/m" }, "--mount type=bind,dst=/m: bind mount 1 needs a source" },
      { { "--mount", "type=tmpfs,dst=rel" }, "needs an absolute destination" },
      { { "--cwd", "relative" }, "--cwd relative: expected an absolute path" },
      { { "--env", "=x" }, "--env =x: entries must be K=V" },
      { { "--user", "99999999999" }, "--user 99999999999: id 99999999999 out of range" },
      { { "--user", "0:4294967295" }, "id 4294967295 out of range" },
      { { "--hostname", ("h"):rep(65) }, "expected a name of 1 to 64 bytes" },
    }
    usage_errors(cases)
    assert.are.equal("", env:crater { "container", "ls", "-q" }.stdout)
    assert.are.equal("", proc.run("ls -A " .. q(env.root .. "/run/tasks/default") .. " 2>/dev/null" .. daemon.NO_SPARES).stdout)
  end)

  it("takes -v SRC:DST[:OPTS], --tmpfs, -w and --env-file as docker, nerdctl and podman users write them", function()
    local host = env.dir .. "/vol"
    proc.check("mkdir -p " .. q(host) .. " && echo hostfile > " .. q(host .. "/f"))
    proc.write_file(env.dir .. "/envf", "# comment\nA=1\n\nB=two words\nCRATER_T_FROM_HOST\n")
    local r = env:run("vols", { "-v", host .. ":/data:ro", "-v", host .. ":/rw", "-w", "/data",
      "--env-file", env.dir .. "/envf", "-e", "A=override" },
      { "sh", "-c", "pwd; cat f; echo \"$A|$B|$CRATER_T_FROM_HOST\"; touch x 2>/dev/null || echo ro; touch /rw/y && echo rw" },
      { env = { CRATER_T_FROM_HOST = "h" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("/data\nhostfile\noverride|two words|h\nro\nrw\n", r.stdout)
    assert.is_true(proc.run("test -e " .. q(host .. "/y")).ok)
    usage_errors {
      { { "-v", "named:/data" }, "no named volumes" },
      { { "-v", host }, "expected SRC:DST[:OPTS]" },
      { { "-v", host .. ":/d:bogus" }, "unknown option \"bogus\"" },
      { { "--env-file", env.dir .. "/nonexistent" }, "No such file" },
      { { "--cwd", "/a", "-w", "/b" }, "give one" },
    }
    -- --tmpfs DST[:OPTS], also on a read-only root
    r = env:run("tmpf", { "--read-only", "--tmpfs", "/scratch:size=1m" }, { "sh", "-c",
      "grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4; touch /scratch/x && echo wrote; touch /y 2>/dev/null || echo ro" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("tmpfs rw,nosuid,nodev,relatime,size=1024k\nwrote\nro\n", r.stdout)
    usage_errors { { { "--tmpfs", "rel" }, "expected an absolute DST[:OPTS]" } }
    -- `crater -v` before a command is still the version
    assert.matches("^crater %d", proc.run(q(BIN) .. " -v").stdout)
  end)

  it("pins to --cpuset-cpus and sets --cpu-quota/--cpu-period (cgroup v1 or v2)", function()
    local r = env:run("cpuset", { "--cpuset-cpus", "0", "--cpu-quota", "20000", "--cpu-period", "50000" }, { "sh", "-c",
      "grep Cpus_allowed_list /proc/self/status; " ..
      "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || tr ' ' '\\n' < /sys/fs/cgroup/cpu.max" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("Cpus_allowed_list:\t0\n20000\n50000\n", r.stdout)
    usage_errors {
      { { "--cpuset-cpus", "x" }, "list like 0-2,4" },
      { { "--cpu-period", "50000" }, "goes with --cpu-quota" },
      { { "--cpus", "1", "--cpu-quota", "1000" }, "give one" },
    }
  end)

  it("exits 126 when the program is there but cannot be run, as a shell does", function()
    -- executable bits but no format the kernel knows (no ELF, no #!)
    proc.write_file(env.rootfs .. "/bin/notelf", "just text\n")
    proc.check("chmod 0755 " .. q(env.rootfs .. "/bin/notelf"))
    local r = env:run("e126", {}, { "/bin/notelf" })
    assert.are.equal(126, r.code, r.stderr)
    assert.matches("Exec format error", r.stderr)
  end)

  it("takes relative paths as relative to where it runs: --rootfs, --mount src=, --log", function()
    local parent, base = env.rootfs:match("^(.*)/([^/]+)$")
    local r = proc.run("cd " .. q(parent) .. " && " .. env:cmd { "run", "--rm", "--rootfs", base, "relfs", "echo", "rel" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("rel\n", r.stdout)
    proc.check("mkdir -p " .. q(env.dir .. "/src") .. " && echo m > " .. q(env.dir .. "/src/f"))
    r = proc.run("cd " .. q(env.dir) .. " && " .. env:cmd { "run", "--rm", "--rootfs", env.rootfs,
      "--mount", "type=bind,src=src,dst=/m,options=ro", "relm", "cat", "/m/f" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("m\n", r.stdout)
    r = proc.run("cd " .. q(env.dir) .. " && " .. env:cmd { "run", "-d", "--log", "rel.log", "--rootfs", env.rootfs,
      "rell", "echo", "logged" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(0, env:crater({ "task", "wait", "rell" }).code)
    assert.matches('"log":"logged\\n"', proc.read_file(env.dir .. "/rel.log") or "")
    assert.are.equal(0, env:crater({ "container", "rm", "-f", "rell" }).code) -- the describe shares one root
  end)

  it("names a runtime path that is not there; takes a relative one", function()
    local r = env:run("rtp", { "--runtime", "/nonexistent/runtime" }, { "true" })
    assert.are.equal(1, r.code)
    assert.matches("runtime /nonexistent/runtime not found", r.stderr, 1, true)
    local rel = proc.run("cd /usr && " .. env:cmd { "run", "--rm", "--rootfs", env.rootfs, "--runtime", "sbin/runc", "rtr",
      "echo", "relative" })
    assert.are.equal(0, rel.code, rel.stderr)
    assert.are.equal("relative\n", rel.stdout)
  end)

  it("refuses --rm with -d (nobody would remove it), as ctr", function()
    local r = env:crater { "run", "--rm", "-d", "--rootfs", env.rootfs, "rmd", "true" }
    assert.are.equal(2, r.code)
    assert.matches("--rm and -d cannot be used together", r.stderr, 1, true)
    assert.are.equal("", env:crater { "container", "ls", "-q" }.stdout)
  end)

  it("passes the host's value for --env NAME, and nothing when NAME is unset", function()
    local r = env:run("envh", { "--env", "CRATER_T_SET", "--env", "CRATER_T_UNSET", "--env", "B=2" },
      { "sh", "-c", "echo \"$CRATER_T_SET|${CRATER_T_UNSET-unset}|$B\"" },
      { env = { CRATER_T_SET = "from host" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("from host|unset|2\n", r.stdout)
  end)

  it("names an unknown snapshotter without an internal error", function()
    local r = env:crater { "snapshot", "ls", "--snapshotter", "nosuch" }
    assert.are.equal(2, r.code)
    assert.matches("--snapshotter nosuch: unknown (have: overlayfs, native", r.stderr, 1, true)
    r = env:crater { "run", "--rm", "--snapshotter", "nosuch", "some/image", "s1", "true" }
    assert.are_not.equal(0, r.code)
    assert.is_nil(r.stderr:find("internal error", 1, true), r.stderr)
  end)
end)

return M
