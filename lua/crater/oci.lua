--- crater.oci: OCI runtime spec builders (containerd's `oci.SpecOpts`).
---
--- A spec is a plain Lua table shaped like config.json.  `oci.spec{...}`
--- starts from `oci.default_spec()` (containerd's defaults for Linux) and
--- applies each option in order; an option is a function `(spec, ctx)`
--- that edits the spec in place, so users can write their own:
---
--- ```lua
--- local oci = require "crater.oci"
--- local spec = oci.spec({
---   oci.with_image_config(img_config),
---   oci.with_process_args("sh", "-c", "echo hi"),
---   oci.with_memory_limit(64 * 1024 * 1024),
---   function(s) s.process.env[#s.process.env + 1] = "X=1" end,
--- }, { rootfs = "/path/to/rootfs", id = "web", namespace = "default" })
--- ```
---
--- ctx (optional): `rootfs` lets user and group names resolve through the
--- image's /etc/passwd and /etc/group; without it, names are kept in
--- `process.user.username` and resolved by `oci.finalize(spec, rootfs)`
--- when the task's rootfs is mounted (tasks.lua does that).
---
--- Misuse (wrong argument types, unknown namespaces or capabilities)
--- raises; user resolution failures raise from `finalize` as
--- `nil, msg, "not_found"`.
local json = require "crater.json"

local M = {}

local arr = json.array

--- containerd's default capability set (oci/spec.go defaultUnixCaps).
M.DEFAULT_CAPS = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
  "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

--- Every capability the kernel knows (for with_privileged).
M.ALL_CAPS = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
  "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
  "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
  "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
  "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}
local known_caps = {}
for _, c in ipairs(M.ALL_CAPS) do known_caps[c] = true end

M.DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

M.MASKED_PATHS = {
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
  "/sys/devices/virtual/powercap", "/proc/scsi",
}
M.READONLY_PATHS = {
  "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

local function copy(t)
  if type(t) ~= "table" then return t end
  local r = {}
  for k, v in pairs(t) do r[k] = copy(v) end
  return setmetatable(r, getmetatable(t))
end
M.copy = copy

local function caps_list(list) return arr(copy(list)) end

--- Default devices every container may use (c = char device).
local function default_device_rules()
  local function allow(major, minor)
    return { allow = true, type = "c", major = major, minor = minor, access = "rwm" }
  end
  return arr {
    { allow = false, access = "rwm" },
    allow(1, 3), allow(1, 8), allow(1, 7), allow(5, 0), allow(1, 5), allow(1, 9), -- null random full tty zero urandom
    allow(5, 1), allow(136, -1), allow(5, 2), allow(10, 200),                   -- console pts ptmx tun
  }
end
-- minor -1 stands for "*" (any): encoded by leaving minor out
local function fix_device_rules(rules)
  for _, r in ipairs(rules) do if r.minor == -1 then r.minor = nil end end
  return rules
end

--- containerd's default Linux spec (oci.populateDefaultUnixSpec), with a
--- cgroup mount, the default seccomp profile (policies/seccomp-default.json,
--- or the copy compiled into crater.core) and
--- cgroupsPath /crater/<namespace>/<id>.
---@param ctx? {id?: string, namespace?: string}
function M.default_spec(ctx)
  ctx = ctx or {}
  local spec = {
    ociVersion = "1.0.2",
    root = { path = "rootfs", readonly = false },
    process = {
      terminal = false,
      user = { uid = 0, gid = 0 },
      args = arr {},
      env = arr { M.DEFAULT_PATH },
      cwd = "/",
      capabilities = {
        bounding = caps_list(M.DEFAULT_CAPS),
        permitted = caps_list(M.DEFAULT_CAPS),
        effective = caps_list(M.DEFAULT_CAPS),
      },
      rlimits = arr { { type = "RLIMIT_NOFILE", hard = 1024, soft = 1024 } },
      noNewPrivileges = false,
    },
    -- the id, cut to the 64 bytes a host name may have (ids go to 76)
    hostname = ctx.id and ctx.id:sub(1, 64),
    mounts = arr {
      { destination = "/proc", type = "proc", source = "proc", options = arr { "nosuid", "noexec", "nodev" } },
      { destination = "/dev", type = "tmpfs", source = "tmpfs", options = arr { "nosuid", "strictatime", "mode=755", "size=65536k" } },
      { destination = "/dev/pts", type = "devpts", source = "devpts",
        options = arr { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" } },
      { destination = "/dev/shm", type = "tmpfs", source = "shm", options = arr { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" } },
      { destination = "/dev/mqueue", type = "mqueue", source = "mqueue", options = arr { "nosuid", "noexec", "nodev" } },
      { destination = "/sys", type = "sysfs", source = "sysfs", options = arr { "nosuid", "noexec", "nodev", "ro" } },
      { destination = "/sys/fs/cgroup", type = "cgroup", source = "cgroup", options = arr { "ro", "nosuid", "noexec", "nodev" } },
      { destination = "/run", type = "tmpfs", source = "tmpfs", options = arr { "nosuid", "strictatime", "mode=755", "size=65536k" } },
    },
    linux = {
      maskedPaths = arr(copy(M.MASKED_PATHS)),
      readonlyPaths = arr(copy(M.READONLY_PATHS)),
      resources = { devices = fix_device_rules(default_device_rules()) },
      namespaces = arr {
        { type = "pid" }, { type = "ipc" }, { type = "uts" }, { type = "mount" }, { type = "network" },
      },
    },
    annotations = {},
  }
  if ctx.id then
    spec.linux.cgroupsPath = "/crater/" .. (ctx.namespace or "default") .. "/" .. ctx.id
  end
  spec.linux.seccomp = M.default_seccomp()
  return spec
end

--- Paths searched for policies/seccomp-default.json.
function M.policy_dirs()
  local dirs = {}
  if os.getenv("CRATER_POLICY_DIR") then dirs[#dirs + 1] = os.getenv("CRATER_POLICY_DIR") end
  if os.getenv("CRATER_SRC") then dirs[#dirs + 1] = os.getenv("CRATER_SRC") .. "/policies" end
  dirs[#dirs + 1] = "/etc/crater/policies"
  dirs[#dirs + 1] = "/usr/local/share/crater/policies"
  -- next to the sources of this module (a source checkout)
  local src = debug.getinfo(1, "S").source
  if src:sub(1, 1) == "@" then
    local d = src:sub(2):match("^(.*)/lua/crater/oci%.lua$")
    if d then dirs[#dirs + 1] = d .. "/policies" end
  end
  return dirs
end

-- Syscalls the default profile allows only with a capability, as
-- containerd's and docker's default profiles do (their lists, by
-- capability): the shipped file is the profile for the default set.
local CAP_SYSCALLS = {
  CAP_DAC_READ_SEARCH = { "open_by_handle_at" },
  CAP_SYS_ADMIN = { "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
    "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree",
    "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog",
    "umount", "umount2", "unshare" },
  CAP_SYS_BOOT = { "reboot" },
  CAP_SYS_MODULE = { "delete_module", "init_module", "finit_module" },
  CAP_SYS_PACCT = { "acct" },
  CAP_SYS_PTRACE = { "kcmp", "process_madvise", "process_vm_readv", "process_vm_writev" },
  CAP_SYS_RAWIO = { "iopl", "ioperm" },
  CAP_SYS_TIME = { "settimeofday", "stime", "clock_settime", "clock_settime64" },
  CAP_SYS_TTY_CONFIG = { "vhangup" },
  CAP_SYS_NICE = { "get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node" },
  CAP_SYSLOG = { "syslog" },
  CAP_BPF = { "bpf" },
  CAP_PERFMON = { "perf_event_open" },
}
M.SECCOMP_CAP_SYSCALLS = CAP_SYSCALLS

-- profiles handed out by default_seccomp, so that spec() can tell the
-- default profile from one a user installed
local default_profiles = setmetatable({}, { __mode = "k" })

-- The default profile widened for the capabilities the spec grants
-- (bounding set), as containerd builds its default profile from the
-- spec's capabilities: with CAP_SYS_ADMIN, mount, unshare, setns, and
-- clone/clone3 with any flags.
local function seccomp_for_caps(spec)
  local sc = spec.linux and spec.linux.seccomp
  local caps = spec.process and spec.process.capabilities and spec.process.capabilities.bounding
  if not (sc and default_profiles[sc] and caps) then return end
  local extra, seen = {}, {}
  for _, c in ipairs(caps) do
    for _, name in ipairs(CAP_SYSCALLS[c] or {}) do
      if not seen[name] then seen[name] = true; extra[#extra + 1] = name end
    end
  end
  if #extra == 0 then return end
  if seen.clone then
    -- the flag-masked clone rule and clone3's ENOSYS go: any flags now
    for i = #sc.syscalls, 1, -1 do
      local names = sc.syscalls[i].names or {}
      if #names == 1 and (names[1] == "clone" or names[1] == "clone3") then table.remove(sc.syscalls, i) end
    end
  end
  sc.syscalls[#sc.syscalls + 1] = { names = arr(extra), action = "SCMP_ACT_ALLOW" }
end

local seccomp_cache

--- Forgets the default seccomp profile read (`default_seccomp`), so that
--- the next call reads the policy dirs again (a `crater daemon` worker
--- does between commands).
function M.clear_cache() seccomp_cache = nil end

--- The default seccomp profile (a fresh copy): policies/seccomp-default.json
--- from the first policy dir that has one (an administrator's copy in
--- /etc/crater/policies wins), else the copy compiled into crater.core, so
--- a container is never left unconfined for want of a file.
function M.default_seccomp()
  if seccomp_cache == nil then
    for _, d in ipairs(M.policy_dirs()) do
      local f = io.open(d .. "/seccomp-default.json", "rb")
      if f then
        local text = f:read("*a")
        f:close()
        local v = json.decode(text)
        if type(v) == "table" then seccomp_cache = v; break end
      end
    end
    if seccomp_cache == nil then
      seccomp_cache = assert(json.decode(require("crater.core").default_seccomp_json()))
    end
  end
  local sc = copy(seccomp_cache)
  default_profiles[sc] = true
  return sc
end

--- Builds a spec: default_spec(ctx) then every option in order.
---@param opts? function[]
---@param ctx? {rootfs?: string, id?: string, namespace?: string}
function M.spec(opts, ctx)
  if opts ~= nil and type(opts) ~= "table" then error("oci.spec: expected a list of options", 2) end
  ctx = ctx or {}
  local spec = M.default_spec(ctx)
  M.apply(spec, opts or {}, ctx)
  seccomp_for_caps(spec)
  return spec
end

--- Applies options to an existing spec.
function M.apply(spec, opts, ctx)
  for i, o in ipairs(opts) do
    if type(o) ~= "function" then error("oci.spec: option " .. i .. " is not a function", 3) end
    o(spec, ctx or {})
  end
  return spec
end

-- ---- helpers -----------------------------------------------------------------

local function check(cond, msg) if not cond then error(msg, 3) end end

local function set_env(env, kv)
  local k = kv:match("^([^=]*)")
  for i, e in ipairs(env) do
    if e:match("^([^=]*)") == k then env[i] = kv; return end
  end
  env[#env + 1] = kv
end

local function read_lines(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local t = {}
  for l in f:lines() do t[#t + 1] = l end
  f:close()
  return t
end

--- Looks up a user (name or uid) in rootfs/etc/passwd: uid, gid or nil.
function M.lookup_user(rootfs, who)
  for _, l in ipairs(read_lines(rootfs .. "/etc/passwd") or {}) do
    local name, uid, gid = l:match("^([^:]*):[^:]*:(%d+):(%d+):")
    if name and (name == who or uid == tostring(who)) then
      return tonumber(uid), tonumber(gid), name
    end
  end
  return nil
end

--- Looks up a group (name or gid) in rootfs/etc/group: gid or nil.
function M.lookup_group(rootfs, who)
  for _, l in ipairs(read_lines(rootfs .. "/etc/group") or {}) do
    local name, gid = l:match("^([^:]*):[^:]*:(%d+)")
    if name and (name == who or gid == tostring(who)) then return tonumber(gid) end
  end
  return nil
end

--- Supplementary gids of a user name from rootfs/etc/group.
function M.additional_gids(rootfs, name, primary)
  local gids = {}
  for _, l in ipairs(read_lines(rootfs .. "/etc/group") or {}) do
    local gid, members = l:match("^[^:]*:[^:]*:(%d+):(.*)$")
    if gid and tonumber(gid) ~= primary then
      for m in (members or ""):gmatch("[^,%s]+") do
        if m == name then gids[#gids + 1] = tonumber(gid) end
      end
    end
  end
  return gids
end

-- the largest uid or gid: (uid_t) -1 means "no change" to the kernel
local MAX_ID = 4294967294

-- A numeric user or group id beyond MAX_ID (a name is never).
local function id_out_of_range(s)
  return s:match("^%d+$") ~= nil and tonumber(s) > MAX_ID
end

--- Resolves "user", "uid", "user:group", "uid:gid" against rootfs into
--- {uid, gid, additionalGids}.  nil, msg, "not_found" when a name is unknown.
function M.resolve_user(rootfs, spec_user)
  local u, g = spec_user:match("^([^:]*):(.*)$")
  if not u then u = spec_user end
  local uid, gid, name
  for _, id in ipairs { u, g or "" } do
    if id_out_of_range(id) then
      return nil, "user " .. spec_user .. ": id " .. id .. " out of range", "invalid_argument"
    end
  end
  if u:match("^%d+$") then
    uid = tonumber(u)
    if rootfs then
      local _, pg, n = M.lookup_user(rootfs, u)
      gid, name = pg, n
    end
    gid = gid or 0
  else
    if not rootfs then return nil, "cannot resolve user " .. u .. " without a rootfs", "failed_precondition" end
    uid, gid, name = M.lookup_user(rootfs, u)
    if not uid then return nil, "user " .. u .. " not found in /etc/passwd", "not_found" end
  end
  if g and g ~= "" then
    if g:match("^%d+$") then
      gid = tonumber(g)
    else
      if not rootfs then return nil, "cannot resolve group " .. g .. " without a rootfs", "failed_precondition" end
      gid = M.lookup_group(rootfs, g)
      if not gid then return nil, "group " .. g .. " not found in /etc/group", "not_found" end
    end
  end
  local extra = (name and rootfs and not g) and M.additional_gids(rootfs, name, gid) or {}
  local r = { uid = uid, gid = gid }
  if #extra > 0 then r.additionalGids = arr(extra) end
  return r
end

--- Resolves what was left for the rootfs (user names) and strips crater's
--- private fields.  Returns spec or nil, msg, kind.
function M.finalize(spec, rootfs)
  local user = spec.process and spec.process.user
  if user and user.username then
    local r, err, kind = M.resolve_user(rootfs, user.username)
    if not r then return nil, err, kind end
    spec.process.user = r
  end
  return spec
end

-- ---- options -------------------------------------------------------------------

--- Sets process.args.
function M.with_process_args(...)
  local args = { ... }
  if #args == 1 and type(args[1]) == "table" then args = args[1] end
  check(#args > 0, "with_process_args: no arguments")
  for _, a in ipairs(args) do check(type(a) == "string", "with_process_args: arguments must be strings") end
  return function(s) s.process.args = arr(copy(args)) end
end

--- Sets (or overrides) environment variables: {"K=V", ...} or {K="V"}.
function M.with_env(env)
  check(type(env) == "table", "with_env: expected a table")
  local list = {}
  for k, v in pairs(env) do
    if type(k) == "number" then
      check(type(v) == "string" and v:find("^[^=]+="), "with_env: entries must be K=V")
      list[#list + 1] = { k, v }
    else
      list[#list + 1] = { 1e9, k .. "=" .. tostring(v) }
    end
  end
  table.sort(list, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
  return function(s)
    for _, e in ipairs(list) do set_env(s.process.env, e[2]) end
  end
end

--- Sets the working directory (absolute).
function M.with_cwd(cwd)
  check(type(cwd) == "string" and cwd:sub(1, 1) == "/", "with_cwd: expected an absolute path")
  return function(s) s.process.cwd = cwd end
end

--- Sets the user: "name", "uid", "name:group", "uid:gid" or {uid=, gid=, additional_gids=}.
function M.with_user(user)
  if type(user) == "number" then user = tostring(user) end
  if type(user) == "table" then
    for _, k in ipairs { "uid", "gid" } do
      local v = user[k]
      check((k == "gid" and v == nil) or (type(v) == "number" and v >= 0 and v <= MAX_ID and v % 1 == 0),
        "with_user: " .. k .. " must be an id from 0 to " .. MAX_ID)
    end
    return function(s)
      s.process.user = { uid = user.uid, gid = user.gid or 0 }
      if user.additional_gids then s.process.user.additionalGids = arr(copy(user.additional_gids)) end
    end
  end
  check(type(user) == "string" and user ~= "", "with_user: expected a user string or table")
  for part in (user .. ":"):gmatch("([^:]*):") do
    check(not id_out_of_range(part), "with_user: id " .. part .. " out of range")
  end
  return function(s, ctx)
    local r = M.resolve_user(ctx.rootfs, user)
    if r then s.process.user = r
    else s.process.user = { uid = 0, gid = 0, username = user } end -- resolved by finalize
  end
end

--- Sets the hostname (and a new uts namespace).
function M.with_hostname(name)
  check(type(name) == "string" and #name >= 1 and #name <= 64, "with_hostname: expected a name of 1 to 64 bytes")
  return function(s) s.hostname = name end
end

--- Applies an image config (the "config" object of an OCI image config,
--- or the whole image config with a `config` field): Entrypoint + Cmd, Env,
--- WorkingDir, User.  Extra args replace Cmd (like `ctr run IMAGE ID ARGS`);
--- an entrypoint list replaces Entrypoint and, without args, drops Cmd
--- (like `docker run --entrypoint`).
---@param image_config table
---@param args? string[]
---@param entrypoint? string[]
function M.with_image_config(image_config, args, entrypoint)
  check(type(image_config) == "table", "with_image_config: expected the image config table")
  check(entrypoint == nil or type(entrypoint) == "table", "with_image_config: entrypoint must be a list")
  local c = image_config.config or image_config.Config or image_config
  return function(s, ctx)
    s.process.env = arr { M.DEFAULT_PATH }
    for _, e in ipairs(c.Env or {}) do set_env(s.process.env, e) end
    local argv = {}
    for _, a in ipairs(entrypoint or c.Entrypoint or {}) do argv[#argv + 1] = a end
    if args and #args > 0 then
      for _, a in ipairs(args) do argv[#argv + 1] = a end
    elseif entrypoint == nil then -- a new entrypoint drops the image's Cmd (docker)
      for _, a in ipairs(c.Cmd or {}) do argv[#argv + 1] = a end
    end
    if #argv > 0 then s.process.args = arr(argv) end
    s.process.cwd = (c.WorkingDir and c.WorkingDir ~= "") and c.WorkingDir or "/"
    if c.User and c.User ~= "" then
      M.with_user(c.User)(s, ctx)
    elseif ctx.rootfs then
      local extra = M.additional_gids(ctx.rootfs, "root", 0)
      if #extra > 0 then s.process.user.additionalGids = arr(extra) end
    end
  end
end

--- Adds mounts: {type="bind"|"tmpfs", source=, destination=, options={...}}
--- or shorthand {type="bind", src=, dst=, ro=true, propagation="rprivate"}.
function M.with_mounts(mounts)
  check(type(mounts) == "table", "with_mounts: expected a list")
  local list = {}
  for i, m in ipairs(mounts) do
    check(type(m) == "table", "with_mounts: mount " .. i .. " must be a table")
    local typ = m.type or "bind"
    local dst = m.destination or m.dst or m.target
    check(type(dst) == "string" and dst:sub(1, 1) == "/", "with_mounts: mount " .. i .. " needs an absolute destination")
    local opts = {}
    for _, o in ipairs(m.options or {}) do opts[#opts + 1] = o end
    local src = m.source or m.src
    if typ == "bind" or typ == "rbind" then
      check(type(src) == "string", "with_mounts: bind mount " .. i .. " needs a source")
      typ = "bind"
      local has_bind = false
      for _, o in ipairs(opts) do if o == "bind" or o == "rbind" then has_bind = true end end
      if not has_bind then table.insert(opts, 1, "rbind") end
    elseif typ == "tmpfs" then
      src = src or "tmpfs"
    else
      src = src or typ
    end
    if m.ro ~= nil or m.readonly ~= nil then opts[#opts + 1] = (m.ro or m.readonly) and "ro" or "rw" end
    if m.propagation then
      local ok = { private = 1, rprivate = 1, shared = 1, rshared = 1, slave = 1, rslave = 1 }
      check(ok[m.propagation], "with_mounts: bad propagation " .. tostring(m.propagation))
      opts[#opts + 1] = m.propagation
    end
    if m.size then opts[#opts + 1] = "size=" .. tostring(m.size) end
    list[#list + 1] = { destination = dst, type = typ, source = src, options = arr(opts) }
  end
  return function(s)
    for _, m in ipairs(list) do
      -- a mount on the same destination replaces the earlier one
      for j = #s.mounts, 1, -1 do
        if s.mounts[j].destination == m.destination then table.remove(s.mounts, j) end
      end
      s.mounts[#s.mounts + 1] = copy(m)
    end
  end
end

--- Allocates a terminal for the process.
function M.with_tty(on)
  if on == nil then on = true end
  return function(s)
    s.process.terminal = on and true or false
    if on then set_env(s.process.env, "TERM=xterm") end
  end
end

--- Makes the root filesystem read-only.
function M.with_readonly_rootfs(on)
  if on == nil then on = true end
  return function(s) s.root.readonly = on and true or false end
end

local function resources(s)
  s.linux.resources = s.linux.resources or {}
  return s.linux.resources
end

--- Parses "128m", "1g", "512k", "100" (bytes) into bytes.
function M.parse_size(v)
  if type(v) == "number" then return math.floor(v) end
  check(type(v) == "string", "size: expected a number or a string like 128m")
  local n, unit = v:lower():match("^(%d+%.?%d*)%s*([kmgt]?)i?b?$")
  check(n, "size: cannot parse " .. v)
  local mul = ({ [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4 })[unit]
  return math.floor(tonumber(n) * mul)
end

--- Sets the memory limit (bytes or "128m"); swap is limited to the same.
function M.with_memory_limit(limit)
  local bytes = M.parse_size(limit)
  check(bytes > 0, "with_memory_limit: limit must be positive")
  return function(s)
    local r = resources(s)
    r.memory = r.memory or {}
    r.memory.limit = bytes
    r.memory.swap = bytes
  end
end

--- CPU limit as a number of CPUs (0.5 = half a CPU), via quota/period.
function M.with_cpus(cpus)
  check(type(cpus) == "number" and cpus > 0, "with_cpus: expected a positive number")
  return function(s)
    local r = resources(s)
    r.cpu = r.cpu or {}
    r.cpu.period = 100000
    r.cpu.quota = math.floor(cpus * 100000)
  end
end

--- CPU shares (relative weight, cgroup v1 semantics).
function M.with_cpu_shares(shares)
  check(type(shares) == "number" and shares >= 2, "with_cpu_shares: expected a number >= 2")
  return function(s)
    local r = resources(s)
    r.cpu = r.cpu or {}
    r.cpu.shares = math.floor(shares)
  end
end

--- CPU quota and period in microseconds.
function M.with_cpu_quota(quota, period)
  check(type(quota) == "number" and (quota > 0 or quota == -1), "with_cpu_quota: expected a positive number (or -1: none)")
  check(period == nil or (type(period) == "number" and period >= 1000 and period <= 1000000),
    "with_cpu_quota: period must be 1000 to 1000000 microseconds")
  return function(s)
    local r = resources(s)
    r.cpu = r.cpu or {}
    r.cpu.quota = math.floor(quota)
    r.cpu.period = math.floor(period or 100000)
  end
end

--- CPUs and memory nodes the container may use: cpuset lists such as
--- "0-2,4" (either may be nil).
function M.with_cpuset(cpus, mems)
  local function list(v, what)
    check(v == nil or (type(v) == "string" and v:match("^%d+[%d,-]*$") and not v:match("[,-][,-]") and
      not v:match("[,-]$")), "with_cpuset: " .. what .. " must be a list like 0-2,4")
    return v
  end
  list(cpus, "cpus"); list(mems, "mems")
  check(cpus ~= nil or mems ~= nil, "with_cpuset: expected cpus or mems")
  return function(s)
    local r = resources(s)
    r.cpu = r.cpu or {}
    r.cpu.cpus = cpus or r.cpu.cpus
    r.cpu.mems = mems or r.cpu.mems
  end
end

--- Limits the number of processes.
function M.with_pids_limit(n)
  check(type(n) == "number" and n > 0, "with_pids_limit: expected a positive number")
  return function(s)
    resources(s).pids = { limit = math.floor(n) }
  end
end

local cap_sets = { "bounding", "permitted", "effective" }

local function normcap(c)
  check(type(c) == "string", "with_capabilities: capability names must be strings")
  c = c:upper()
  if c:sub(1, 4) ~= "CAP_" then c = "CAP_" .. c end
  check(known_caps[c] or c == "CAP_ALL", "with_capabilities: unknown capability " .. c)
  return c
end

--- Adds and drops capabilities: {add={"NET_ADMIN"}, drop={"CHOWN"}} ("ALL" allowed).
function M.with_capabilities(t)
  check(type(t) == "table", "with_capabilities: expected {add=, drop=}")
  local add, drop = {}, {}
  for _, c in ipairs(t.add or {}) do add[#add + 1] = normcap(c) end
  for _, c in ipairs(t.drop or {}) do drop[#drop + 1] = normcap(c) end
  return function(s)
    s.process.capabilities = s.process.capabilities or {}
    for _, set in ipairs(cap_sets) do
      local cur = s.process.capabilities[set] or arr {}
      local have = {}
      for _, c in ipairs(cur) do have[c] = true end
      for _, c in ipairs(drop) do
        if c == "CAP_ALL" then have = {} else have[c] = nil end
      end
      for _, c in ipairs(add) do
        if c == "CAP_ALL" then for _, k in ipairs(M.ALL_CAPS) do have[k] = true end
        else have[c] = true end
      end
      local out = {}
      for _, c in ipairs(M.ALL_CAPS) do if have[c] then out[#out + 1] = c end end
      s.process.capabilities[set] = arr(out)
    end
  end
end

--- Privileged: all capabilities, no seccomp, no masked/readonly paths,
--- all devices, /sys and cgroup read-write.
--- The capabilities of this process's bounding set (ALL_CAPS is in
--- kernel bit order), as containerd's WithPrivileged uses cap.Current():
--- asking for a capability the host lacks fails the container.
function M.host_caps()
  local f = io.open("/proc/self/status", "r")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  local hex = text:match("CapBnd:%s*(%x+)")
  if not hex then return copy(M.ALL_CAPS) end
  local v = tonumber(hex, 16)
  local out = {}
  for i, c in ipairs(M.ALL_CAPS) do
    if math.floor(v / 2 ^ (i - 1)) % 2 == 1 then out[#out + 1] = c end
  end
  return out
end

function M.with_privileged()
  return function(s)
    local caps = M.host_caps()
    for _, set in ipairs(cap_sets) do s.process.capabilities[set] = caps_list(caps) end
    s.linux.seccomp = nil
    s.linux.maskedPaths = arr {}
    s.linux.readonlyPaths = arr {}
    resources(s).devices = arr { { allow = true, access = "rwm" } }
    for _, m in ipairs(s.mounts) do
      if m.destination == "/sys" or m.destination == "/sys/fs/cgroup" then
        local o = {}
        for _, x in ipairs(m.options) do if x ~= "ro" then o[#o + 1] = x end end
        o[#o + 1] = "rw"
        m.options = arr(o)
      end
    end
  end
end

--- Adds the host's device nodes (those under /dev, as containerd's
--- WithHostDevices lists them: not pts, shm, mqueue, the console or
--- /dev/ptmx, which the runtime makes the container's own) to
--- linux.devices, with their modes and owners, so that a privileged
--- container sees loop devices, fuse, ...  `crater run --privileged`
--- applies it after `with_privileged`, as ctr and nerdctl do.
function M.with_host_devices()
  return function(s)
    local devs = require("crater.core").host_devices("/dev") or {}
    s.linux.devices = s.linux.devices or arr {}
    local have = {}
    for _, d in ipairs(s.linux.devices) do have[d.path] = true end
    for _, d in ipairs(devs) do
      if not have[d.path] and d.path ~= "/dev/ptmx" then
        have[d.path] = true
        s.linux.devices[#s.linux.devices + 1] = { path = d.path, type = d.type, major = d.major,
          minor = d.minor, fileMode = d.mode, uid = d.uid, gid = d.gid }
      end
    end
  end
end

local ns_names = { net = "network", network = "network", pid = "pid", ipc = "ipc", uts = "uts",
  mount = "mount", mnt = "mount", user = "user", cgroup = "cgroup" }

-- A read-only bind of the host's file path at the same place (replacing a
-- mount there); nothing when the host has no such file.
local function bind_host_file(path)
  return function(s)
    local f = io.open(path, "r")
    if not f then return end
    f:close()
    local keep = {}
    for _, m in ipairs(s.mounts) do if m.destination ~= path then keep[#keep + 1] = m end end
    keep[#keep + 1] = { destination = path, type = "bind", source = path, options = arr { "rbind", "ro" } }
    s.mounts = arr(keep)
  end
end

--- Binds the host's /etc/hosts read-only (containerd's WithHostHostsFile).
function M.with_host_hosts_file() return bind_host_file("/etc/hosts") end

--- Binds the host's /etc/resolv.conf read-only (containerd's
--- WithHostResolvconf): with the host's network, its name servers.
function M.with_host_resolvconf() return bind_host_file("/etc/resolv.conf") end

--- Shares the host's namespaces: {"net", "pid", "ipc", "uts"}.  With the
--- host network the rootfs keeps its own /etc/hosts and /etc/resolv.conf;
--- `crater run --net host` adds with_host_hosts_file and
--- with_host_resolvconf, as `ctr run --net-host` does.
function M.with_host_namespaces(list)
  check(type(list) == "table", "with_host_namespaces: expected a list")
  local drop = {}
  for _, n in ipairs(list) do
    local t = ns_names[n]
    check(t, "with_host_namespaces: unknown namespace " .. tostring(n))
    check(t ~= "mount", "with_host_namespaces: the mount namespace cannot be shared")
    drop[t] = true
  end
  return function(s)
    local out = {}
    for _, n in ipairs(s.linux.namespaces) do if not drop[n.type] then out[#out + 1] = n end end
    s.linux.namespaces = arr(out)
    if drop.uts then s.hostname = nil end
    if drop.network then
      -- sysfs cannot be mounted fresh without a netns of our own: bind it
      for _, m in ipairs(s.mounts) do
        if m.destination == "/sys" then
          m.type, m.source, m.options = "bind", "/sys", arr { "rbind", "nosuid", "noexec", "nodev", "ro" }
        end
      end
    end
  end
end

--- The spec's linux.namespaces entry of type typ ("pid", "user"...), or nil.
---@param spec table
---@param typ string
function M.namespace(spec, typ)
  for _, n in ipairs((spec and spec.linux and spec.linux.namespaces) or {}) do
    if n.type == typ then return n end
  end
  return nil
end

--- True when the spec gives the container a namespace of type typ of its
--- own (a new one, not one joined by path).  For "pid": nothing of the
--- container outlives its init.
---@param spec table
---@param typ string
function M.owns_namespace(spec, typ)
  local n = M.namespace(spec, typ)
  return n ~= nil and not n.path
end

--- Joins an existing namespace by path (for CNI later): ("network", "/var/run/netns/x").
function M.with_namespace_path(typ, path)
  local t = ns_names[typ]
  check(t, "with_namespace_path: unknown namespace " .. tostring(typ))
  check(type(path) == "string", "with_namespace_path: path must be a string")
  return function(s)
    local n = M.namespace(s, t)
    if n then n.path = path; return end
    s.linux.namespaces[#s.linux.namespaces + 1] = { type = t, path = path }
  end
end

--- Installs the default seccomp profile (policies/seccomp-default.json).
function M.with_seccomp_default()
  return function(s)
    local sc = M.default_seccomp()
    s.linux.seccomp = sc
  end
end

--- Runs without seccomp filtering.
function M.with_seccomp_unconfined()
  return function(s) s.linux.seccomp = nil end
end

--- Sets noNewPrivileges.
function M.with_no_new_privileges(on)
  if on == nil then on = true end
  return function(s) s.process.noNewPrivileges = on and true or false end
end

local function check_maps(maps, what)
  check(type(maps) == "table" and #maps > 0, "with_user_namespace: " .. what .. " must be a non-empty list")
  local out = {}
  for _, m in ipairs(maps) do
    local c, h, sz = m.container_id or m.containerID or m[1], m.host_id or m.hostID or m[2], m.size or m[3]
    check(type(c) == "number" and type(h) == "number" and type(sz) == "number",
      "with_user_namespace: each mapping is {container_id, host_id, size}")
    out[#out + 1] = { containerID = c, hostID = h, size = sz }
  end
  return arr(out)
end

--- A new user namespace with the given uid and gid mappings
--- ({container_id, host_id, size} each).
function M.with_user_namespace(uidmap, gidmap)
  local u, g = check_maps(uidmap, "uidmap"), check_maps(gidmap or uidmap, "gidmap")
  return function(s)
    if not M.namespace(s, "user") then s.linux.namespaces[#s.linux.namespaces + 1] = { type = "user" } end
    s.linux.uidMappings = copy(u)
    s.linux.gidMappings = copy(g)
    -- sysfs and cgroup cannot be mounted from a user namespace without netns
    -- ownership on old kernels; keep them, runtimes handle it
  end
end

--- Sets rlimits: {NOFILE={soft=, hard=}, NPROC=...} or {{type=, soft=, hard=}}.
function M.with_rlimits(limits)
  check(type(limits) == "table", "with_rlimits: expected a table")
  local list = {}
  for k, v in pairs(limits) do
    local t, soft, hard
    if type(k) == "number" then t, soft, hard = v.type, v.soft, v.hard
    else t, soft, hard = k, v.soft or v[1], v.hard or v[2] or v.soft or v[1] end
    check(type(t) == "string", "with_rlimits: rlimit type must be a string")
    t = t:upper()
    if t:sub(1, 7) ~= "RLIMIT_" then t = "RLIMIT_" .. t end
    check(type(soft) == "number" and type(hard) == "number", "with_rlimits: soft and hard must be numbers")
    list[#list + 1] = { type = t, soft = soft, hard = hard }
  end
  table.sort(list, function(a, b) return a.type < b.type end)
  return function(s)
    for _, l in ipairs(list) do
      local found = false
      for _, r in ipairs(s.process.rlimits) do
        if r.type == l.type then r.soft, r.hard, found = l.soft, l.hard, true end
      end
      if not found then s.process.rlimits[#s.process.rlimits + 1] = copy(l) end
    end
  end
end

--- Adds annotations (string -> string).
function M.with_annotations(t)
  check(type(t) == "table", "with_annotations: expected a table")
  for k, v in pairs(t) do
    check(type(k) == "string" and type(v) == "string", "with_annotations: keys and values must be strings")
  end
  return function(s)
    s.annotations = s.annotations or {}
    for k, v in pairs(t) do s.annotations[k] = v end
  end
end

--- Sets the root path (default "rootfs" inside the bundle).
function M.with_root_path(path)
  check(type(path) == "string", "with_root_path: expected a string")
  return function(s) s.root.path = path end
end

--- Sets the cgroups path.
function M.with_cgroup(path)
  check(type(path) == "string", "with_cgroup: expected a string")
  return function(s) s.linux.cgroupsPath = path end
end

--- Encodes a spec as config.json text.
function M.encode(spec)
  return json.encode(spec, { pretty = true })
end

return M
