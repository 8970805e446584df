-- crater-runtime against runc: the same bundles run by both runtimes must
-- give the same observable results (exit codes, output, state JSON), and
-- some results are also checked absolutely (OOM kill, seccomp EPERM...).
-- Runs as root with real containers; each bundle is removed in after_each,
-- and anything left over in teardown.
local B = require "support.bundle"

local build = os.getenv("CRATER_BUILD")
local CRATER = build .. "/bin/crater-runtime"
local RUNC = "/usr/sbin/runc"
local SRC = os.getenv("CRATER_SRC") or "."

local function file_exists(p) local f = io.open(p) if f then f:close() return true end return false end
local is_root = B.sh("id -u").stdout:match("^0") ~= nil
local have_runc = file_exists(RUNC)

local seq = 0
local function newid(tag)
  seq = seq + 1
  return string.format("crt-%s-%d-%d", tag, B.sh("echo $$").stdout:match("%d+") or 0, seq)
end

local runtimes = { CRATER }
if have_runc then runtimes[#runtimes + 1] = RUNC end

-- Runs fn(runtime) for crater and runc, returning {crater=r1, runc=r2}.
local function both(fn)
  local out = {}
  for _, rt in ipairs(runtimes) do
    out[rt == CRATER and "crater" or "runc"] = fn(rt)
  end
  return out
end

local function same(res, field)
  if res.runc then
    assert.are.same(res.runc[field], res.crater[field],
      field .. " differs (runc vs crater):\nrunc stderr: " .. res.runc.stderr .. "\ncrater stderr: " .. res.crater.stderr)
  end
end

local bundles = {}
local function bundle(opts)
  local b = B.new(opts)
  bundles[#bundles + 1] = b
  return b
end

-- runs args in a fresh bundle per runtime; returns both results
local function run_both(opts)
  return both(function(rt)
    local b = bundle(opts)
    local id = newid("run")
    b:use_cgroup(id)
    return b:run(rt, id)
  end)
end

describe("crater-runtime vs runc", function()
  if not is_root then
    it("needs root", function() pending("functional runtime specs need root") end)
    return
  end
  if not have_runc then
    it("compares with runc", function() pending("runc not installed at " .. RUNC .. ": crater-only checks") end)
  end

  after_each(function()
    for _, b in ipairs(bundles) do b:cleanup() end
    bundles = {}
  end)
  teardown(function() B.cleanup_all() end)

  it("propagates exit codes", function()
    local r = run_both{ args = { "sh", "-c", "echo out; echo err >&2; exit 3" } }
    assert.equal(3, r.crater.code)
    assert.equal("out\n", r.crater.stdout)
    assert.equal("err\n", r.crater.stderr)
    same(r, "code"); same(r, "stdout")
  end)

  it("run: an init that has run and exited before its state was written counts as started", function()
    -- `run` releases the init before writing the state; under strace the
    -- init is done long before the parent gets to start
    if not B.sh("command -v strace").stdout:match("strace") then return pending("strace not installed") end
    for i = 1, 3 do
      local b = bundle { args = { "true" } }
      local id = newid("quick" .. i)
      b:use_cgroup(id)
      local r = B.sh("strace -f -qq -o /dev/null " .. B.q(CRATER) .. " --root " .. B.q(b.dir .. "/crater-runtime-root") ..
        " run --detach --bundle " .. B.q(b.dir) .. " " .. id)
      b.containers[#b.containers + 1] = { CRATER, b.dir .. "/crater-runtime-root", id }
      assert.equal(0, r.code, r.stderr)
    end
  end)

  it("reports a missing executable at create time", function()
    local r = run_both{ args = { "/no/such/binary" } }
    assert.is_not.equal(0, r.crater.code)
    if r.runc then assert.is_not.equal(0, r.runc.code) end
    -- and, as runc, a path that is no executable file (before: refused by
    -- execve only, after start, with 127)
    for _, path in ipairs { "/etc/passwd", "/etc" } do
      r = both(function(rt)
        local b = bundle{ args = { path } }
        local id = newid("noexec")
        b:use_cgroup(id)
        return b:rt(rt, { "create", "--bundle", b.dir, id })
      end)
      assert.is_not.equal(0, r.crater.code)
      assert.matches("exec: " .. path .. ".*Permission denied", r.crater.stderr)
      if r.runc then assert.is_not.equal(0, r.runc.code) end
    end
  end)

  it("turns a kill from outside into 128+signal", function()
    local r = both(function(rt)
      local b = bundle{ args = { "sleep", "100" } }
      local id = newid("sig")
      b:use_cgroup(id)
      b.containers[#b.containers + 1] = { rt, b.dir .. "/" .. rt:match("[^/]+$") .. "-root", id }
      local root = b.dir .. "/" .. rt:match("[^/]+$") .. "-root"
      return B.sh(string.format(
        "%s --root %s run -b %s %s & p=$!; i=0; until %s --root %s state %s 2>/dev/null | grep -q running; do sleep 0.05; i=$((i+1)); [ $i -gt 100 ] && break; done; %s --root %s kill %s KILL; wait $p; echo rc=$?",
        B.q(rt), B.q(root), B.q(b.dir), id, B.q(rt), B.q(root), id, B.q(rt), B.q(root), id))
    end)
    assert.matches("rc=137", r.crater.stdout)
    same(r, "stdout")
  end)

  it("applies env, cwd, user and additional gids", function()
    local r = run_both{
      args = { "sh", "-c", "id; pwd; echo $FOO; echo $HOME; umask" },
      config = { process = { env = { "PATH=/bin", "FOO=bar baz" }, cwd = "/tmp",
                             user = { uid = 1000, gid = 1000, additionalGids = { 10, 20 } } } },
    }
    assert.equal(0, r.crater.code)
    assert.matches("uid=1000%(user%) gid=1000%(user%) groups=10%(wheel%),20%(dialout%)", r.crater.stdout)
    assert.matches("\n/tmp\nbar baz\n", r.crater.stdout)
    same(r, "stdout")
  end)

  -- the default devices get their modes whatever the runtime's umask
  -- (crater-runtime's mknod once took 022 off them: a non-root user could
  -- not write /dev/null)
  it("creates the default devices with their modes; a non-root user writes /dev/null", function()
    local r = both(function(rt)
      local b = bundle{ args = { "sh", "-c", "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty" ..
        " | cut -c1-10; echo x > /dev/null && echo wrote" }, config = { process = { user = { uid = 1000, gid = 1000 } } } }
      local id = newid("dev")
      b:use_cgroup(id)
      return b:rt(rt, string.format("run -b %s %s", B.q(b.dir), id), { stdin = "" })
    end)
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal(string.rep("crw-rw-rw-\n", 6) .. "wrote\n", r.crater.stdout)
    same(r, "stdout")
  end)

  -- the init makes the mounts before the first cgroup one while the
  -- parent makes its cgroup: a failure there is still reported as such
  it("reports a mount that fails before the cgroup is made", function()
    local b = bundle{ args = { "true" }, edit = function(c)
      table.insert(c.mounts, 1, { destination = "/x", type = "bind", source = "/no/such/source", options = { "rbind" } })
    end }
    local id = newid("early")
    b:use_cgroup(id)
    local r = b:run(CRATER, id)
    assert.are_not.equal(0, r.code)
    assert.matches("mount /x: bind mount source /no/such/source: No such file or directory", r.stderr)
    assert.is_false(file_exists(b.dir .. "/crater-runtime-root/" .. id))
    assert.equal("", B.sh("ls -d /sys/fs/cgroup/*/crater-test/" .. id .. " /sys/fs/cgroup/crater-test/" .. id ..
      " 2>/dev/null").stdout)
  end)

  it("creates a missing cwd inside the root", function()
    local r = run_both{ args = { "pwd" }, config = { root = { readonly = false }, process = { cwd = "/new/dir" } } }
    assert.equal("/new/dir\n", r.crater.stdout)
    same(r, "stdout")
  end)

  -- runc brings the loopback of a new network namespace up (its spec
  -- conversion adds a "loopback" network); so does crater-runtime
  it("brings up the loopback of a new network namespace", function()
    local r = run_both{ args = { "sh", "-c", "cat /sys/class/net/lo/flags; ip -4 addr show lo | grep -o 'inet [0-9./]*'" } }
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("0x9\ninet 127.0.0.1/8\n", r.crater.stdout)
    same(r, "stdout")
  end)

  it("sets hostname and domainname", function()
    local r = run_both{ args = { "sh", "-c", "hostname; cat /proc/sys/kernel/domainname" },
                        config = { hostname = "crater-box", domainname = "example.org" } }
    assert.equal("crater-box\nexample.org\n", r.crater.stdout)
    -- runc 1.1 ignores domainname (added in runc 1.2): compare the hostname only
    if r.runc then assert.equal(r.runc.stdout:match("^[^\n]*"), "crater-box") end
  end)

  it("makes the root read-only", function()
    local r = run_both{ args = { "sh", "-c", "touch /x 2>/dev/null && echo rw || echo ro; touch /tmp/x 2>/dev/null && echo tmp-rw || echo tmp-ro" } }
    assert.equal("ro\ntmp-ro\n", r.crater.stdout)
    same(r, "stdout")
  end)

  it("bind mounts host directories ro and rw, and tmpfs", function()
    local host = B.sh("mktemp -d").stdout:gsub("%s+$", "")
    B.write(host .. "/hello", "from host\n")
    local r = run_both{
      args = { "sh", "-c", "cat /mnt/ro/hello; touch /mnt/ro/x 2>/dev/null && echo ro-writable || echo ro-denied; " ..
               "touch /mnt/rw/y && echo rw-ok; grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4; touch /scratch/z && echo tmpfs-ok" },
      config = { mounts = (function()
        local m = B.default_config().mounts
        m[#m + 1] = { destination = "/mnt/ro", type = "bind", source = host, options = { "rbind", "ro" } }
        m[#m + 1] = { destination = "/mnt/rw", type = "bind", source = host, options = { "rbind", "rw" } }
        m[#m + 1] = { destination = "/scratch", type = "tmpfs", source = "tmpfs", options = { "nosuid", "nodev", "size=1m", "mode=1777" } }
        return m
      end)() },
    }
    B.sh("rm -rf " .. B.q(host))
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.matches("from host\nro%-denied\nrw%-ok\ntmpfs rw,nosuid,nodev,relatime,size=1024k", r.crater.stdout)
    assert.matches("tmpfs%-ok", r.crater.stdout)
    same(r, "stdout")
  end)

  it("sets the capability sets", function()
    local r = run_both{ args = { "grep", "^Cap", "/proc/self/status" },
      config = { process = { capabilities = {
        bounding = { "CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW" }, effective = { "CAP_CHOWN", "CAP_KILL" },
        permitted = { "CAP_CHOWN", "CAP_KILL" }, ambient = { "CAP_KILL" } } } } }
    assert.matches("CapBnd:%s+0000000000002021", r.crater.stdout)
    same(r, "stdout")
  end)

  it("keeps capabilities for a non-root user via ambient", function()
    local caps = { "CAP_CHOWN", "CAP_KILL" }
    local r = run_both{ args = { "grep", "^Cap", "/proc/self/status" },
      config = { process = { user = { uid = 1000, gid = 1000 }, capabilities = {
        bounding = caps, effective = caps, permitted = caps, inheritable = caps, ambient = caps } } } }
    assert.matches("CapEff:%s+0000000000000021", r.crater.stdout)
    assert.matches("CapAmb:%s+0000000000000021", r.crater.stdout)
    same(r, "stdout")
  end)

  it("applies the default seccomp profile (unshare and mount get EPERM)", function()
    local prof = B.sh(B.q(CRATER) .. " default-seccomp").stdout
    local sc = B.json.decode(prof)
    local caps = { "CAP_SYS_ADMIN", "CAP_KILL", "CAP_CHOWN" }
    local r = run_both{
      args = { "sh", "-c", "unshare -m true; echo unshare=$?; mount -t tmpfs t /mnt; echo mount=$?; echo ok" },
      config = { root = { readonly = false }, process = { capabilities = { bounding = caps, effective = caps, permitted = caps } },
                 linux = { seccomp = sc } },
    }
    assert.matches("unshare=1", r.crater.stdout)
    assert.matches("mount=[1-9]", r.crater.stdout)
    assert.matches("Operation not permitted", r.crater.stderr)
    same(r, "stdout")
    -- control: without the profile CAP_SYS_ADMIN can unshare
    local ctl = run_both{ args = { "sh", "-c", "unshare -m true; echo unshare=$?" },
      config = { process = { capabilities = { bounding = caps, effective = caps, permitted = caps } } } }
    assert.matches("unshare=0", ctl.crater.stdout)
  end)

  it("compiles seccomp rules with errnoRet and argument conditions", function()
    local r = run_both{
      args = { "sh", "-c", "mkdir /tmp/a; echo mkdir=$?; chmod 600 /tmp; echo chmod=$?" },
      config = { root = { readonly = false }, linux = { seccomp = {
        defaultAction = "SCMP_ACT_ALLOW", architectures = { "SCMP_ARCH_X86_64" },
        syscalls = {
          { names = { "mkdir", "mkdirat" }, action = "SCMP_ACT_ERRNO", errnoRet = 13 },
          { names = { "chmod", "fchmodat" }, action = "SCMP_ACT_ERRNO",
            args = { { index = 1, value = 384, op = "SCMP_CMP_EQ" } } },
        } } } },
    }
    assert.matches("Permission denied", r.crater.stderr)
    assert.matches("mkdir=1\nchmod=1", r.crater.stdout)
    same(r, "stdout")
  end)

  it("sets no_new_privileges", function()
    local r = run_both{ args = { "grep", "NoNewPrivs", "/proc/self/status" } }
    assert.matches("NoNewPrivs:%s+1", r.crater.stdout)
    same(r, "stdout")
    local r2 = run_both{ args = { "grep", "NoNewPrivs", "/proc/self/status" },
                         config = { process = { noNewPrivileges = false } } }
    assert.matches("NoNewPrivs:%s+0", r2.crater.stdout)
  end)

  it("restricts devices like runc: open denied outside the defaults, mknod allowed", function()
    local caps = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_MKNOD" }
    local r = run_both{ args = { "sh", "-c",
      "(: </dev/kmsg) 2>/dev/null; echo kmsg=$?; mknod /dev/k c 1 11; echo mknod_kmsg=$?; " ..
      "echo x >/dev/null; echo null=$?; head -c 4 /dev/zero | wc -c" },
      edit = function(cfg)
        cfg.process.capabilities = { bounding = caps, effective = caps, permitted = caps }
        cfg.mounts[#cfg.mounts + 1] = { destination = "/dev/kmsg", type = "bind", source = "/dev/kmsg",
          options = { "rbind", "rw" } }
      end }
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("kmsg=1\nmknod_kmsg=0\nnull=0\n4\n", r.crater.stdout)
    same(r, "stdout")
  end)

  it("leaks no file descriptors", function()
    local r = both(function(rt)
      local b = bundle{ args = { "ls", "/proc/self/fd" } }
      local id = newid("fd")
      b:use_cgroup(id)
      return b:rt(rt, string.format("run -b %s %s 7</etc/hostname 9>/dev/null", B.q(b.dir), id))
    end)
    assert.equal("0\n1\n2\n3\n", r.crater.stdout)
    same(r, "stdout")
  end)

  -- crater's own global flag, for crater-shim: the runtime starts, then
  -- waits for one byte on the fd before it reads the bundle; EOF instead
  -- and it exits 125 having created nothing
  it("waits for the go byte on --go-fd, and leaves nothing on EOF", function()
    local b = bundle{ args = { "sh", "-c", "echo started; ls /proc/self/fd" } }
    local id = newid("go")
    b:use_cgroup(id)
    local root = b.dir .. "/crater-runtime-root"
    local r = b:rt(CRATER, string.format("--go-fd 3 run -b %s %s 3</dev/null", B.q(b.dir), id))
    assert.equal(125, r.code)
    assert.equal("", r.stdout)
    assert.is_false(file_exists(root .. "/" .. id .. "/state.json"))
    assert.equal("", B.sh("ls -d /sys/fs/cgroup/*/crater-test/" .. id .. " /sys/fs/cgroup/crater-test/" .. id ..
      " 2>/dev/null").stdout)
    -- the byte comes a little later: the container runs then, and only
    -- fds 0-2 reach it (ls's own directory fd is 3), not the go fd
    r = B.sh(string.format("(sleep 0.2; printf g) | %s --root %s --go-fd 3 run -b %s %s 3<&0 </dev/null",
      B.q(CRATER), B.q(root), B.q(b.dir), id))
    b.containers[#b.containers + 1] = { CRATER, root, id }
    assert.equal(0, r.code, r.stderr)
    assert.equal("started\n0\n1\n2\n3\n", r.stdout)
    -- while it waits it makes the network namespace the init will need (its
    -- loopback up); an init sharing the host's network does not use it
    local host_net = B.sh("readlink /proc/self/ns/net").stdout
    for _, shared in ipairs { false, true } do
      local nb = bundle{ args = { "sh", "-c", "readlink /proc/self/ns/net; cat /sys/class/net/lo/flags; ls /sys/class/net | wc -l" },
        edit = function(c)
          if not shared then return end
          local keep = {}
          for _, n in ipairs(c.linux.namespaces) do if n.type ~= "network" then keep[#keep + 1] = n end end
          c.linux.namespaces = keep
          for _, m in ipairs(c.mounts) do
            if m.destination == "/sys" then m.type, m.source, m.options = "bind", "/sys", { "rbind", "ro" } end
          end
        end }
      local nid = newid("gonet")
      nb:use_cgroup(nid)
      local nroot = nb.dir .. "/crater-runtime-root"
      r = B.sh(string.format("printf g | %s --root %s --go-fd 3 run -b %s %s 3<&0 </dev/null",
        B.q(CRATER), B.q(nroot), B.q(nb.dir), nid))
      nb.containers[#nb.containers + 1] = { CRATER, nroot, nid }
      assert.equal(0, r.code, r.stderr)
      local ns, flags, links = r.stdout:match("^(%S+)\n(%S+)\n(%d+)\n$")
      assert.equal("0x9", flags, r.stdout)
      if shared then
        assert.equal(host_net, ns .. "\n")
      else
        assert.are_not.equal(host_net, ns .. "\n")
        assert.equal("1", links) -- lo only
      end
    end
    r = b:rt(CRATER, "--go-fd 1 state x")
    assert.equal(2, r.code)
    assert.matches("%-%-go%-fd", r.stderr)
  end)

  -- a spare shim's runtime starts before its container has an id: "-"
  -- stands for it, and the go byte brings it
  it("takes the container id from the go byte when its ID is -", function()
    local b = bundle{ args = { "cat", "/proc/self/cgroup" } }
    local id = newid("goid")
    b:use_cgroup(id)
    local root = b.dir .. "/crater-runtime-root"
    local run = "printf %s | " .. B.q(CRATER) .. " --root " .. B.q(root) .. " --go-fd 3 run -b " .. B.q(b.dir) ..
      " %s 3<&0 </dev/null"
    local r = B.sh(string.format(run, "g" .. id, "-"))
    b.containers[#b.containers + 1] = { CRATER, root, id }
    assert.equal(0, r.code, r.stderr)
    assert.matches("/" .. id:gsub("%p", "%%%0") .. "\n", r.stdout) -- its cgroup is named by the id
    assert.is_false(file_exists(root .. "/-"))
    -- "-" with a plain go byte, or an id with an ID of its own: refused, nothing made
    r = B.sh(string.format(run, "g", "-"))
    assert.equal(2, r.code)
    assert.matches("did not bring one", r.stderr)
    r = B.sh(string.format(run, "gother", id .. "x"))
    assert.equal(2, r.code)
    assert.matches("has its own", r.stderr)
    assert.is_false(file_exists(root .. "/-") or file_exists(root .. "/other") or file_exists(root .. "/" .. id .. "x"))
  end)

  it("masks and write-protects paths", function()
    local r = run_both{ args = { "sh", "-c",
      "wc -c < /proc/keys; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-rw || echo sys-ro" } }
    assert.equal("0\n0\nsys-ro\n", r.crater.stdout)
    same(r, "stdout")
  end)

  it("sets rlimits and sysctls", function()
    local r = run_both{ args = { "sh", "-c", "ulimit -n; cat /proc/sys/net/ipv4/ip_forward" },
      config = { process = { rlimits = { { type = "RLIMIT_NOFILE", soft = 321, hard = 654 } } },
                 linux = { sysctl = { ["net.ipv4.ip_forward"] = "1" } } } }
    assert.equal("321\n1\n", r.crater.stdout)
    same(r, "stdout")
  end)

  it("enforces the memory limit (OOM kill)", function()
    local r = run_both{ args = { "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1" },
      config = { linux = { resources = { memory = { limit = 16 * 1024 * 1024, swap = 16 * 1024 * 1024 } } } } }
    assert.equal(137, r.crater.code, r.crater.stdout .. r.crater.stderr)
    same(r, "code")
  end)

  it("enforces the pids limit", function()
    local r = run_both{ args = { "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done 2>&1 | grep -c 'fork' ; true" },
      config = { linux = { resources = { pids = { limit = 5 } } } } }
    assert.is_true(tonumber(r.crater.stdout:match("%d+")) > 0, r.crater.stdout .. r.crater.stderr)
    same(r, "stdout")
  end)

  -- create -> state -> start -> exec -> ps -> pause/resume -> kill -> delete
  it("walks the lifecycle like runc", function()
    local r = both(function(rt)
      local b = bundle{ args = { "sleep", "1000" } }
      local id = newid("life")
      b:use_cgroup(id)
      local res = { stderr = "" }
      local c = b:rt(rt, { "create", "--bundle", b.dir, "--pid-file", b.dir .. "/pid", id })
      assert.equal(0, c.code, c.stderr)
      local st = B.json.decode(b:rt(rt, { "state", id }).stdout)
      res.created = st.status
      res.keys = {}
      for k in pairs(st) do res.keys[#res.keys + 1] = k end
      table.sort(res.keys)
      res.pid_ok = tonumber(B.read(b.dir .. "/pid")) == st.pid
      assert.equal(0, b:rt(rt, { "start", id }).code)
      res.running = B.json.decode(b:rt(rt, { "state", id }).stdout).status
      local ex = b:rt(rt, { "exec", id, "sh", "-c", "echo in-exec; exit 5" })
      res.exec = ex.code .. ":" .. ex.stdout
      local ps = b:rt(rt, { "ps", "--format", "json", id })
      res.nps = #B.json.decode(ps.stdout)
      assert.equal(0, b:rt(rt, { "pause", id }).code)
      res.paused = B.json.decode(b:rt(rt, { "state", id }).stdout).status
      assert.equal(0, b:rt(rt, { "resume", id }).code)
      res.resumed = B.json.decode(b:rt(rt, { "state", id }).stdout).status
      res.refuse_delete = b:rt(rt, { "delete", id }).code ~= 0
      assert.equal(0, b:rt(rt, { "kill", id, "KILL" }).code)
      for _ = 1, 50 do
        local s = B.json.decode(b:rt(rt, { "state", id }).stdout)
        if s.status == "stopped" then break end
        B.sh("sleep 0.05")
      end
      res.stopped = B.json.decode(b:rt(rt, { "state", id }).stdout).status
      res.deleted = b:rt(rt, { "delete", id }).code
      res.gone = b:rt(rt, { "state", id }).code ~= 0
      return res
    end)
    local c = r.crater
    assert.equal("created", c.created)
    assert.equal("running", c.running)
    assert.equal("5:in-exec\n", c.exec)
    assert.equal(1, c.nps)
    assert.equal("paused", c.paused)
    assert.equal("running", c.resumed)
    assert.is_true(c.refuse_delete)
    assert.equal("stopped", c.stopped)
    assert.equal(0, c.deleted)
    assert.is_true(c.gone and c.pid_ok)
    if r.runc then
      r.runc.stderr, c.stderr = nil, nil
      assert.are.same(r.runc, c)
    end
  end)

  it("keeps the config beside a small state.json, and reads state written with it embedded", function()
    local b = bundle{ args = { "sleep", "1000" }, config = { annotations = { ["org.example/k"] = "v" } } }
    local id = newid("st")
    b:use_cgroup(id)
    assert.equal(0, b:rt(CRATER, { "create", "--bundle", b.dir, id }).code)
    local dir = b.dir .. "/crater-runtime-root/" .. id
    local state = B.json.decode(B.read(dir .. "/state.json"))
    assert.is_nil(state.config)
    assert.equal("v", state.annotations["org.example/k"])
    assert.are.same({ "sleep", "1000" }, B.json.decode(B.read(dir .. "/config.json")).process.args)
    assert.equal("v", B.json.decode(b:rt(CRATER, { "state", id }).stdout).annotations["org.example/k"])
    -- the layout of earlier versions: the config inside state.json
    state.config = B.json.decode(B.read(dir .. "/config.json"))
    state.annotations, state.hooks = nil, nil
    local f = assert(io.open(dir .. "/state.json", "w"))
    f:write(B.json.encode(state))
    f:close()
    os.remove(dir .. "/config.json")
    assert.equal(0, b:rt(CRATER, { "start", id }).code)
    local st = B.json.decode(b:rt(CRATER, { "state", id }).stdout)
    assert.equal("running", st.status)
    assert.equal("v", st.annotations["org.example/k"])
    local ex = b:rt(CRATER, { "exec", id, "sh", "-c", "echo from-exec" })
    assert.equal(0, ex.code, ex.stderr)
    assert.equal("from-exec\n", ex.stdout)
    assert.equal(0, b:rt(CRATER, { "delete", "--force", id }).code)
    assert.is_false(file_exists(dir .. "/state.json"))
  end)

  -- every hierarchy the host has, a hybrid host's unified one included
  -- (where systemd tracks processes), as runc does
  it("puts the init in the container's cgroup in every hierarchy", function()
    local r = run_both{ args = { "cat", "/proc/self/cgroup" } }
    assert.equal(0, r.crater.code, r.crater.stderr)
    local host = select(2, B.sh("cat /proc/self/cgroup").stdout:gsub("\n", ""))
    for _, res in pairs(r) do
      local n = 0
      for line in res.stdout:gmatch("[^\n]+") do
        n = n + 1
        assert.matches(":/crater%-test/crt%-run%-[%d-]+$", line)
      end
      assert.equal(host, n, res.stdout)
    end
  end)

  it("reports cgroup stats through events --stats", function()
    local b = bundle{ args = { "sleep", "100" },
                      config = { linux = { resources = { memory = { limit = 64 * 1024 * 1024 }, pids = { limit = 50 } } } } }
    local id = newid("stats")
    b:use_cgroup(id)
    assert.equal(0, b:rt(CRATER, { "run", "-d", "--bundle", b.dir, id }).code)
    local ev = B.json.decode(b:rt(CRATER, { "events", "--stats", id }).stdout)
    assert.equal("stats", ev.type)
    assert.equal(64 * 1024 * 1024, ev.data.memory.usage.limit)
    assert.is_true(ev.data.memory.usage.usage > 0)
    assert.equal(1, ev.data.pids.current)
    assert.equal(50, ev.data.pids.limit)
    assert.is_number(ev.data.cpu.usage.total)
    b:rt(CRATER, { "delete", "-f", id })
  end)

  it("runs hooks with the state on stdin", function()
    local r = both(function(rt)
      local b = bundle{ args = { "true" } }
      local id = newid("hook")
      b:use_cgroup(id)
      local out = b.dir .. "/hooks.out"
      local function hook(tag)
        return { path = "/bin/sh", args = { "sh", "-c", "echo " .. tag .. " $(grep -o '\"status\":\"[a-z]*\"') >> " .. out }, timeout = 5 }
      end
      b.config.hooks = { prestart = { hook("prestart") }, createRuntime = { hook("createRuntime") },
                         poststart = { hook("poststart") }, poststop = { hook("poststop") } }
      b:write_config()
      local res = b:run(rt, id)
      res.hooks = B.read(out)
      return res
    end)
    assert.matches("prestart", r.crater.hooks)
    assert.matches("createRuntime", r.crater.hooks)
    assert.matches("poststart \"status\":\"running\"", r.crater.hooks)
    assert.matches("poststop \"status\":\"stopped\"", r.crater.hooks)
    if r.runc then
      -- the set of hooks that ran, in order
      local function names(s) return (s or ""):gsub(" [^\n]*", "") end
      assert.equal(names(r.runc.hooks), names(r.crater.hooks))
    end
  end)

  -- without prestart or createRuntime hooks the init does not wait for its
  -- parent after the mounts; the hooks it runs itself still run
  it("runs createContainer and startContainer hooks without runtime ones", function()
    local r = both(function(rt)
      local b = bundle{ args = { "true" } }
      local id = newid("hookc")
      b:use_cgroup(id)
      local out = b.dir .. "/hooks.out"
      os.remove(b.rootfs .. "/start.out")
      b.config.root.readonly = false
      b.config.hooks = {
        -- in the container's namespaces, before pivot_root: the host's paths
        createContainer = { { path = "/bin/sh", args = { "sh", "-c", "echo create >> " .. out }, timeout = 5 } },
        -- after pivot_root: the container's
        startContainer = { { path = "/bin/sh", args = { "sh", "-c", "echo start > /start.out" }, timeout = 5 } },
      }
      b:write_config()
      local res = b:run(rt, id)
      res.create, res.start = B.read(out), B.read(b.rootfs .. "/start.out")
      os.remove(b.rootfs .. "/start.out")
      return res
    end)
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.equal("create\n", r.crater.create)
    assert.equal("start\n", r.crater.start)
    if r.runc then
      assert.equal(r.runc.create, r.crater.create)
      assert.equal(r.runc.start, r.crater.start)
    end
  end)

  it("fails create when a hook fails, and times hooks out", function()
    local r = both(function(rt)
      local b = bundle{ args = { "true" } }
      local id = newid("hookfail")
      b:use_cgroup(id)
      b.config.hooks = { createRuntime = { { path = "/bin/sh", args = { "sh", "-c", "sleep 5" }, timeout = 1 } } }
      b:write_config()
      return b:run(rt, id)
    end)
    assert.is_not.equal(0, r.crater.code)
    if r.runc then assert.is_not.equal(0, r.runc.code) end
  end)

  it("maps users in a user namespace", function()
    local r = run_both{ args = { "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/x && ls -n /tmp/x | awk '{print $3}'" },
      edit = function(cfg)
        table.insert(cfg.linux.namespaces, { type = "user" })
        cfg.linux.uidMappings = { { containerID = 0, hostID = 100000, size = 65536 } }
        cfg.linux.gidMappings = { { containerID = 0, hostID = 100000, size = 65536 } }
        cfg.root.readonly = false
        table.insert(cfg.mounts, { destination = "/tmp", type = "tmpfs", source = "tmpfs", options = { "nosuid", "nodev" } })
      end }
    assert.equal(0, r.crater.code, r.crater.stderr)
    assert.matches("^%s+0%s+100000%s+65536\n%s+0%s+100000%s+65536\n0\n0\n$", r.crater.stdout)
    same(r, "stdout")
  end)

  it("joins an existing namespace by path", function()
    local r = both(function(rt)
      local b1 = bundle{ args = { "sleep", "100" }, config = { hostname = "shared-uts" } }
      local id1 = newid("nsowner")
      b1:use_cgroup(id1)
      assert.equal(0, b1:rt(rt, { "run", "-d", "--bundle", b1.dir, id1 }).code)
      local pid = B.json.decode(b1:rt(rt, { "state", id1 }).stdout).pid
      local b2 = bundle{ args = { "hostname" }, edit = function(cfg)
        cfg.hostname = nil
        for _, ns in ipairs(cfg.linux.namespaces) do
          if ns.type == "uts" then ns.path = "/proc/" .. pid .. "/ns/uts" end
        end
      end }
      local id2 = newid("nsjoin")
      b2:use_cgroup(id2)
      return b2:run(rt, id2)
    end)
    assert.equal("shared-uts\n", r.crater.stdout)
    same(r, "stdout")
  end)

  it("pivots, or moves the root with --no-pivot", function()
    local r = both(function(rt)
      local b = bundle{ args = { "sh", "-c", "ls / | tr '\\n' ' '" } }
      local id = newid("nopivot")
      b:use_cgroup(id)
      return b:rt(rt, { "run", "--no-pivot", "--bundle", b.dir, id })
    end)
    assert.equal(0, r.crater.code, r.crater.stderr)
    same(r, "stdout")
  end)

  it("mounts the rootfs named by io.crater.rootfs.mounts in the container's namespace only", function()
    local src = bundle{}
    local b = bundle{ args = { "sh", "-c", "ls /bin/busybox; cat /proc/self/mountinfo" } }
    assert(B.sh("rm -rf " .. B.q(b.rootfs) .. "/*").code == 0)
    b.config.annotations = { ["io.crater.rootfs.mounts"] =
      require("crater.json").encode { { type = "bind", source = src.rootfs, options = { "rbind", "rw" } } } }
    local id = newid("annot")
    b:use_cgroup(id)
    local r = b:rt(CRATER, { "run", "--bundle", b.dir, id })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^/bin/busybox\n", r.stdout)
    assert.equal("", B.sh("grep -F " .. B.q(b.rootfs) .. " /proc/self/mountinfo").stdout)
    -- a malformed annotation fails create, naming it
    b.config.annotations["io.crater.rootfs.mounts"] = "[{\"type\": 1}"
    b:write_config()
    r = b:rt(CRATER, { "run", "--bundle", b.dir, newid("annot") })
    assert.is_not.equal(0, r.code)
    assert.matches("io.crater.rootfs.mounts", r.stderr, 1, true)
  end)

  it("caches the compiled seccomp filter per profile and still enforces it", function()
    local prof = require("crater.json").decode(B.sh("cat " .. B.q(SRC .. "/policies/seccomp-default.json")).stdout)
    local b = bundle{ args = { "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?" },
      edit = function(cfg) cfg.linux.seccomp = prof end }
    local root = b.dir .. "/crater-runtime-root"
    local function run()
      local id = newid("sccache")
      b:use_cgroup(id)
      return b:rt(CRATER, { "run", "--bundle", b.dir, id })
    end
    local function cached()
      return B.sh("ls " .. B.q(root .. "/seccomp-cache") .. " 2>/dev/null").stdout
    end
    for round = 1, 2 do -- compiled and cached, then loaded from the cache
      local r = run()
      assert.equal(0, r.code, r.stderr)
      assert.equal("Seccomp:\t2\nunshare=1\n", r.stdout, "round " .. round)
      assert.matches("^%x+%.bpf\n$", cached())
    end
    -- a damaged cache file is not trusted: rebuilt, and the filter holds
    local file = root .. "/seccomp-cache/" .. cached():match("^(%S+)")
    assert(B.sh("printf 'garbage' > " .. B.q(file)).code == 0)
    local r = run()
    assert.equal("Seccomp:\t2\nunshare=1\n", r.stdout, r.stderr)
    assert.equal(0, B.sh("test $(stat -c %s " .. B.q(file) .. ") -gt 100").code)
  end)

  it("runs a terminal in the foreground without --console-socket (run and exec -t)", function()
    local pty = B.q(SRC .. "/spec/support/ptyrun.py")
    -- /dev/console is the terminal too (the OCI runtime spec binds the
    -- pty's slave there): same device numbers as stdin's
    local script = "tty; stty size; [ \"$(stat -Lc %t:%T /dev/console)\" = \"$(stat -Lc %t:%T /proc/self/fd/0)\" ]" ..
      " && echo console-is-tty; read x; echo got:$x; exit 3"
    local r = both(function(rt)
      local b = bundle{ args = { "sh", "-c", script }, config = { process = { terminal = true } } }
      local id = newid("fgtty")
      b:use_cgroup(id)
      local root = b.dir .. "/" .. rt:match("([^/]+)$") .. "-root"
      b.containers[#b.containers + 1] = { rt, root, id } -- for cleanup
      return B.sh(string.format("python3 %s %s --root %s run --bundle %s %s", pty, B.q(rt), B.q(root),
        B.q(b.dir), B.q(id)))
    end)
    assert.equal(3, r.crater.code, r.crater.stdout .. r.crater.stderr)
    assert.matches("^/dev/pts/0\n", r.crater.stdout)
    assert.matches("\n33 101\n", r.crater.stdout)   -- the window size was copied
    assert.matches("\nconsole%-is%-tty\n", r.crater.stdout)
    assert.matches("got:hello\n", r.crater.stdout)   -- stdin reached the container
    if r.runc then
      assert.equal(r.runc.code, r.crater.code)
      assert.matches("^/dev/pts/0\n", r.runc.stdout)
      assert.matches("\nconsole%-is%-tty\n", r.runc.stdout)
      assert.matches("got:hello\n", r.runc.stdout)
    end
    -- exec -t into a running container, same proxy
    local b = bundle{ args = { "sleep", "60" } }
    local id = newid("fgexec")
    b:use_cgroup(id)
    assert.equal(0, b:rt(CRATER, { "run", "-d", "--bundle", b.dir, id }, { stdin = "" }).code)
    local e = B.sh(string.format("python3 %s %s --root %s exec -t %s sh -c %s", pty, B.q(CRATER),
      B.q(b.dir .. "/crater-runtime-root"), B.q(id), B.q(script:gsub("exit 3", "exit 4"))))
    assert.equal(4, e.code, e.stdout .. e.stderr)
    assert.matches("^/dev/pts/0\n33 101\n", e.stdout)
    assert.matches("got:hello\n", e.stdout)
    assert.not_matches("console%-is%-tty", e.stdout) -- the init's terminal only
  end)

  it("sends the pty master over --console-socket (terminal: true)", function()
    local recv = [[
import socket, array, os, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
open(sys.argv[2], "w").close()
s.settimeout(20); c, _ = s.accept()
msg, anc, _, _ = c.recvmsg(1024, socket.CMSG_SPACE(4))
fds = array.array("i")
for lvl, typ, data in anc: fds.frombytes(data[:4])
out = b""
while True:
    try: d = os.read(fds[0], 4096)
    except OSError: break
    if not d: break
    out += d
sys.stdout.write("name=" + msg.decode() + "\n" + out.decode().replace("\r", ""))
]]
    local r = both(function(rt)
      local b = bundle{ args = { "sh", "-c", "tty; echo hello; stty size" },
                        config = { process = { terminal = true, consoleSize = { height = 30, width = 100 } } } }
      local id = newid("tty")
      b:use_cgroup(id)
      B.write(b.dir .. "/recv.py", recv)
      local sock, ready = b.dir .. "/console.sock", b.dir .. "/ready"
      return B.sh(string.format(
        "python3 %s %s %s > %s/tty.out & p=$!; while [ ! -e %s ]; do sleep 0.02; done; %s --root %s/rt run -d --console-socket %s --bundle %s %s || kill $p; wait $p; cat %s/tty.out; %s --root %s/rt delete -f %s",
        B.q(b.dir .. "/recv.py"), B.q(sock), B.q(ready), B.q(b.dir), B.q(ready), B.q(rt), B.q(b.dir), B.q(sock), B.q(b.dir), id,
        B.q(b.dir), B.q(rt), B.q(b.dir), id))
    end)
    assert.matches("/dev/pts/0\nhello\n", r.crater.stdout, nil, r.crater.stderr)
    same(r, "stdout")
  end)

  it("prints features and the default seccomp profile", function()
    local f = B.json.decode(B.sh(B.q(CRATER) .. " features").stdout)
    assert.equal("1.0.0", f.ociVersionMin)
    assert.is_true(f.linux.seccomp.enabled)
    local shipped = B.json.decode(B.read(SRC .. "/policies/seccomp-default.json"))
    local printed = B.json.decode(B.sh(B.q(CRATER) .. " default-seccomp").stdout)
    assert.are.same(shipped, printed)
    assert.equal("SCMP_ACT_ERRNO", printed.defaultAction)
  end)

  it("never exposes the host binary as the container's /proc/<pid>/exe", function()
    local b = bundle{ args = { "sleep", "100" } }
    local id = newid("exe")
    b:use_cgroup(id)
    assert.equal(0, b:rt(CRATER, { "create", "--bundle", b.dir, id }).code)
    local pid = B.json.decode(b:rt(CRATER, { "state", id }).stdout).pid
    -- the init waiting for start runs from a sealed memfd copy
    local exe = B.sh("readlink /proc/" .. pid .. "/exe").stdout
    assert.matches("memfd:crater%-runtime", exe)
    b:rt(CRATER, { "delete", "-f", id })
  end)
  -- cgroup v2 (controllers, freezer, the eBPF device filter) is tested in
  -- a v2-only VM by cgroup_v2_spec.lua, against crun
end)
