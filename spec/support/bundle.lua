-- OCI bundle builder for functional specs.  Builds a busybox rootfs (with
-- applet symlinks, /etc/passwd and /etc/group) and a config.json like
-- `runc spec` in a fresh temp dir, lets a spec override any part of it, and
-- runs a runtime binary (crater-runtime or runc) on it, collecting the exit
-- code, stdout and stderr.  Every bundle records what it created so
-- bundle.cleanup_all() can remove containers, cgroups and dirs even when a
-- spec fails half-way.
local cjson = require "cjson"

local M = {}

local live = {}          -- bundles not yet cleaned up
local BUSYBOX = "/bin/busybox"

--- Quotes s for /bin/sh.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read = read

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
M.write = write

--- Runs a shell command line; returns {code=, stdout=, stderr=}.
-- opts.stdin: string fed to stdin.
function M.sh(cmdline, opts)
  opts = opts or {}
  local tmp = os.tmpname()
  local inp = "/dev/null"
  if opts.stdin then inp = tmp .. ".in"; write(inp, opts.stdin) end
  local full = string.format("( %s ) <%s >%s.out 2>%s.err; echo $? >%s.rc",
    cmdline, inp, tmp, tmp, tmp)
  sh(full)
  local r = {
    code = tonumber((read(tmp .. ".rc") or ""):match("%d+")),
    stdout = read(tmp .. ".out") or "",
    stderr = read(tmp .. ".err") or "",
  }
  os.remove(tmp); os.remove(tmp .. ".out"); os.remove(tmp .. ".err"); os.remove(tmp .. ".rc")
  if opts.stdin then os.remove(inp) end
  return r
end

--- The default config, modelled on `runc spec` (runc 1.1).
function M.default_config()
  local caps = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" }
  return {
    ociVersion = "1.0.2",
    process = {
      terminal = false,
      user = { uid = 0, gid = 0 },
      args = { "sh" },
      env = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm" },
      cwd = "/",
      capabilities = { bounding = caps, effective = caps, permitted = caps, ambient = caps },
      rlimits = { { type = "RLIMIT_NOFILE", hard = 1024, soft = 1024 } },
      noNewPrivileges = true,
    },
    root = { path = "rootfs", readonly = true },
    hostname = "runc",
    mounts = {
      { destination = "/proc", type = "proc", source = "proc" },
      { destination = "/dev", type = "tmpfs", source = "tmpfs",
        options = { "nosuid", "strictatime", "mode=755", "size=65536k" } },
      { destination = "/dev/pts", type = "devpts", source = "devpts",
        options = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" } },
      { destination = "/dev/shm", type = "tmpfs", source = "shm",
        options = { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" } },
      { destination = "/dev/mqueue", type = "mqueue", source = "mqueue",
        options = { "nosuid", "noexec", "nodev" } },
      { destination = "/sys", type = "sysfs", source = "sysfs",
        options = { "nosuid", "noexec", "nodev", "ro" } },
      { destination = "/sys/fs/cgroup", type = "cgroup", source = "cgroup",
        options = { "nosuid", "noexec", "nodev", "relatime", "ro" } },
    },
    linux = {
      resources = { devices = { { allow = false, access = "rwm" } } },
      namespaces = { { type = "pid" }, { type = "network" }, { type = "ipc" }, { type = "uts" },
                     { type = "mount" } },
      maskedPaths = { "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi" },
      readonlyPaths = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" },
    },
  }
end

--- Merges src into dst: maps merge, arrays (and scalars) replace.
local function merge(dst, src)
  for k, v in pairs(src) do
    if type(v) == "table" and type(dst[k]) == "table" and #v == 0 and next(v) ~= nil then
      merge(dst[k], v)
    else
      dst[k] = v
    end
  end
end
M.merge = merge

local Bundle = {}
Bundle.__index = Bundle

--- Creates a bundle.  opts.args: process args; opts.config: table merged
-- into the default config (maps merge, arrays replace); opts.edit(cfg): a
-- function for anything else.
function M.new(opts)
  opts = opts or {}
  local base = os.getenv("CRATER_TEST_TMP") or "/tmp"
  sh("mkdir -p " .. M.q(base))
  local dir = M.sh("mktemp -d " .. M.q(base .. "/bundle.XXXXXX")).stdout:gsub("%s+$", "")
  assert(dir ~= "", "mktemp failed")
  local self = setmetatable({ dir = dir, rootfs = dir .. "/rootfs", containers = {} }, Bundle)
  live[self] = true
  -- 0755 so a user-namespaced root (an unprivileged host uid) can reach it
  assert(sh("chmod 755 " .. M.q(dir)))
  local r = self.rootfs
  assert(sh(string.format("mkdir -p %s/bin %s/etc %s/tmp %s/root %s/proc %s/dev %s/sys %s/mnt && chmod 1777 %s/tmp",
    M.q(r), M.q(r), M.q(r), M.q(r), M.q(r), M.q(r), M.q(r), M.q(r), M.q(r))))
  assert(sh(string.format("cp %s %s/bin/busybox", BUSYBOX, M.q(r))))
  assert(sh(string.format("for a in $(%s --list); do [ -e %s/bin/$a ] || ln -s busybox %s/bin/$a; done",
    BUSYBOX, M.q(r), M.q(r))))
  write(r .. "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
    .. "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
  write(r .. "/etc/group", "root:x:0:\nwheel:x:10:user\nuser:x:1000:\ndialout:x:20:user\nnogroup:x:65534:\n")
  self.config = M.default_config()
  if opts.args then self.config.process.args = opts.args end
  if opts.config then merge(self.config, opts.config) end
  if opts.edit then opts.edit(self.config) end
  self:write_config()
  return self
end

function Bundle:write_config()
  write(self.dir .. "/config.json", cjson.encode(self.config))
end

--- Sets linux.cgroupsPath for a container id (so runtimes agree on it).
function Bundle:use_cgroup(id)
  self.config.linux.cgroupsPath = "/crater-test/" .. id
  self:write_config()
end

--- Runs `<runtime> --root <dir>/<name>-root <args...>`; args are quoted
-- unless given as a raw string.  Returns {code, stdout, stderr}.
function Bundle:rt(runtime, args, opts)
  local name = runtime:match("([^/]+)$")
  local root = self.dir .. "/" .. name .. "-root"
  local argv = args
  if type(args) == "table" then
    local t = {}
    for _, a in ipairs(args) do t[#t + 1] = M.q(a) end
    argv = table.concat(t, " ")
  end
  local ids = type(args) == "table" and args or {}
  for i, a in ipairs(ids) do
    if (a == "run" or a == "create") then self.containers[#self.containers + 1] = { runtime, root, ids[#ids] } end
    _ = i
  end
  return M.sh(string.format("%s --root %s %s", M.q(runtime), M.q(root), argv), opts)
end

--- `run --bundle <dir> <id>` in the foreground.
function Bundle:run(runtime, id, opts)
  return self:rt(runtime, { "run", "--bundle", self.dir, id }, opts)
end

--- Force-deletes every container made through this bundle, then removes it.
function Bundle:cleanup()
  for _, c in ipairs(self.containers) do
    M.sh(string.format("%s --root %s delete --force %s", M.q(c[1]), M.q(c[2]), M.q(c[3])))
    M.remove_cgroups("crater-test/" .. c[3])
  end
  self.containers = {}
  sh("umount -R " .. M.q(self.rootfs) .. " 2>/dev/null")
  sh("rm -rf " .. M.q(self.dir))
  live[self] = nil
end

--- Kills what is left in a test cgroup (v1 hierarchies or v2) and removes
-- it with its children, deepest first.
function M.remove_cgroups(rel)
  local dirs = "/sys/fs/cgroup/" .. rel .. " /sys/fs/cgroup/*/" .. rel
  M.sh(string.format([[for d in %s; do [ -d "$d" ] || continue;
    for p in $(cat $(find "$d" -name cgroup.procs) 2>/dev/null); do kill -9 $p 2>/dev/null; done; done;
    sleep 0.1; for d in %s; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done; true]],
    dirs, dirs))
end

function M.cleanup_all()
  for b in pairs(live) do b:cleanup() end
  M.remove_cgroups("crater-test")
end

M.json = cjson
return M
