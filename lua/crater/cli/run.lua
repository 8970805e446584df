--- crater run: create a container and its task, start it, attach, wait
--- (ctr run).  The container's exit code becomes crater's.
local oci = require "crater.oci"

local M = {}

--- Flags shared by `run` and `container create`.
M.spec_flags = {
  { name = "env", short = "e", type = "list", arg = "K=V", help = "environment variable (NAME alone: the host's value, if set)" },
  { name = "env-file", type = "list", arg = "FILE", help = "environment variables from FILE: K=V lines (# comments)" },
  { name = "mount", type = "list", arg = "SPEC", help = "mount: type=bind,src=/a,dst=/b,options=ro:rprivate (or type=tmpfs,dst=/t)" },
  { name = "volume", short = "v", type = "list", arg = "SRC:DST[:OPTS]", help = "bind mount a host path (OPTS: ro, rw, [r]private, [r]shared, [r]slave)" },
  { name = "tmpfs", type = "list", arg = "DST[:OPTS]", help = "mount a tmpfs (OPTS as mount(8): size=64m,mode=1777,...)" },
  { name = "memory", type = "string", arg = "SIZE", help = "memory limit (128m, 1g)" },
  { name = "cpus", type = "number", arg = "N", help = "CPU limit in CPUs (0.5)" },
  { name = "cpu-shares", type = "number", arg = "N", help = "CPU shares" },
  { name = "cpu-quota", type = "number", arg = "US", help = "CPU time per period in microseconds (with --cpu-period)" },
  { name = "cpu-period", type = "number", arg = "US", help = "CPU period in microseconds (default 100000)" },
  { name = "cpuset-cpus", type = "string", arg = "LIST", help = "CPUs the container may use (0-2,4)" },
  { name = "cpuset-mems", type = "string", arg = "LIST", help = "memory nodes the container may use" },
  { name = "pids-limit", type = "number", arg = "N", help = "maximum number of processes" },
  { name = "user", short = "u", type = "string", arg = "USER[:GROUP]", help = "user (name or uid)" },
  { name = "entrypoint", type = "string", arg = "CMD", help = "replaces the image's Entrypoint (\"\" clears it; without CMD args the image's Cmd is dropped too)" },
  { name = "cwd", type = "string", arg = "DIR", help = "working directory" },
  { name = "workdir", short = "w", type = "string", arg = "DIR", help = "working directory (as --cwd)" },
  { name = "hostname", type = "string", arg = "NAME", help = "hostname (default: the id)" },
  { name = "net", type = "string", arg = "MODE", help = "network: none (loopback only, default) or host (with the host's /etc/hosts and /etc/resolv.conf)" },
  { name = "read-only", help = "read-only root filesystem" },
  { name = "privileged", help = "all capabilities, no seccomp, the host's devices" },
  { name = "cap-add", type = "list", arg = "CAP", help = "add a capability" },
  { name = "cap-drop", type = "list", arg = "CAP", help = "drop a capability" },
  { name = "seccomp", type = "string", arg = "default|unconfined", help = "seccomp profile (default: default)" },
  { name = "no-new-privileges", help = "set no_new_privileges" },
  { name = "tty", short = "t", help = "allocate a terminal" },
  { name = "runtime", type = "string", arg = "NAME", help = "OCI runtime: runc, crun, crater or a path" },
  { name = "snapshotter", type = "string", arg = "NAME", help = "snapshotter for the rootfs" },
  { name = "rootfs", type = "string", arg = "DIR", help = "use DIR as the rootfs (no image; args are ID [CMD...])" },
  { name = "label", short = "l", type = "list", arg = "K=V", help = "container label" },
}

local abs_path = require("crater.util").abs_path

local function parse_mount(s)
  local m = {}
  for kv in s:gmatch("[^,]+") do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then k, v = kv, "true" end
    if k == "type" then m.type = v
    elseif k == "src" or k == "source" then m.source = v
    elseif k == "dst" or k == "destination" or k == "target" then m.destination = v
    elseif k == "options" then
      m.options = {}
      for o in v:gmatch("[^:]+") do m.options[#m.options + 1] = o end
    elseif k == "ro" or k == "readonly" then m.ro = v ~= "false"
    elseif k == "size" then m.size = v
    else require("crater.cli.args").usage_error("--mount: unknown key %q", k) end
  end
  if (m.type or "bind") == "bind" or m.type == "rbind" then m.source = abs_path(m.source) end
  return m
end

-- -v SRC:DST[:OPTS] (docker, nerdctl, podman) as a --mount table: a host
-- path bound recursively; named volumes do not exist here
local function parse_volume(v)
  local usage = require("crater.cli.args").usage_error
  local src, dst, opts = v:match("^([^:]+):([^:]+):?(.*)$")
  if not src then usage("--volume %s: expected SRC:DST[:OPTS]", v) end
  if src:sub(1, 1) ~= "/" then usage("--volume %s: the source must be an absolute host path (no named volumes)", v) end
  local m = { type = "bind", source = src, destination = dst, options = { "rbind" } }
  local props = { private = 1, rprivate = 1, shared = 1, rshared = 1, slave = 1, rslave = 1 }
  for o in opts:gmatch("[^,]+") do
    if o == "ro" or o == "rw" then m.options[#m.options + 1] = o
    elseif props[o] then m.propagation = o
    elseif o ~= "z" and o ~= "Z" then usage("--volume %s: unknown option %q", v, o) end -- z, Z: SELinux labels, none here
  end
  return m
end

-- --tmpfs DST[:OPTS] (docker, podman): a tmpfs with mount(8) options
local function parse_tmpfs(v)
  local dst, opts = v:match("^([^:]+):?(.*)$")
  if not dst or dst:sub(1, 1) ~= "/" then
    require("crater.cli.args").usage_error("--tmpfs %s: expected an absolute DST[:OPTS]", v)
  end
  local m = { type = "tmpfs", source = "tmpfs", destination = dst, options = { "nosuid", "nodev" } }
  for o in opts:gmatch("[^,]+") do m.options[#m.options + 1] = o end
  return m
end

-- K=V lines of --env-file (blank lines and # comments skipped; a NAME alone
-- takes the host's value, as -e NAME)
local function env_file_lines(path)
  local f, err = io.open(path, "rb")
  if not f then require("crater.cli.args").usage_error("--env-file %s: %s", path, tostring(err)) end
  local out = {}
  for line in f:lines() do
    line = line:gsub("\r$", "")
    if line:match("%S") and not line:match("^%s*#") then out[#out + 1] = line end
  end
  f:close()
  return out
end

-- `-e NAME` without a value passes the host's NAME, if set (docker, nerdctl)
function M.env_list(list)
  local out = {}
  for _, e in ipairs(list) do
    if e:find("=", 1, true) then
      out[#out + 1] = e
    elseif e ~= "" then
      local v = os.getenv(e)
      if v then out[#out + 1] = e .. "=" .. v end
    end
  end
  return out
end

--- The stdio of a task started with -d: --log's file, --null-io's nothing,
--- else FIFOs a later `task attach` connects to.
function M.detached_stdio(flags)
  return (flags.log and "log") or (flags["null-io"] and "null") or "attach"
end

--- A terminal forwarded from our stdin needs a terminal there (docker:
--- "the input device is not a TTY"): piped input would reach a pty whose
--- line discipline turns the final ^D into nothing once the program
--- switches to raw mode, and the client would wait forever.
function M.need_terminal(what, instead)
  if not require("crater.core").isatty(0) then
    require("crater.cli.args").usage_error("%s: stdin is not a terminal (%s)", what, instead)
  end
end

--- The spec option builder(arg, or value) makes for flag.  The builders
--- check their arguments and raise on bad ones (the Lua API's way); from
--- the command line those are the user's values, so a usage error naming
--- the flag, not an internal error.
function M.option(flag, value, builder, arg)
  local ok, r = pcall(builder, arg == nil and value or arg)
  if not ok then
    local why = tostring(r):gsub("^[^:]*:%d+: ", ""):gsub("^[%w_]+: ", "")
    require("crater.cli.args").usage_error("%s %s: %s", flag, tostring(value), why)
  end
  return r
end

--- Builds the list of spec options from flags.
function M.spec_opts(flags, args)
  local o = {}
  local function add(flag, value, builder, arg) o[#o + 1] = M.option(flag, value, builder, arg) end
  if args and #args > 0 then o[#o + 1] = oci.with_process_args(args) end
  local env = {}
  for _, path in ipairs(flags["env-file"] or {}) do
    for _, e in ipairs(env_file_lines(path)) do env[#env + 1] = e end
  end
  for _, e in ipairs(flags.env or {}) do env[#env + 1] = e end -- -e wins over --env-file
  if #env > 0 then add("--env", table.concat(env, " "), oci.with_env, M.env_list(env)) end
  if flags.cwd and flags.workdir then require("crater.cli.args").usage_error("--cwd and --workdir are the same flag: give one") end
  if flags.cwd or flags.workdir then add(flags.cwd and "--cwd" or "--workdir", flags.cwd or flags.workdir, oci.with_cwd) end
  if flags.user then add("--user", flags.user, oci.with_user) end
  if flags.hostname then add("--hostname", flags.hostname, oci.with_hostname) end
  if flags.mount or flags.volume or flags.tmpfs then
    local ms, given = {}, {}
    for _, s in ipairs(flags.mount or {}) do ms[#ms + 1] = parse_mount(s); given[#given + 1] = s end
    for _, v in ipairs(flags.volume or {}) do ms[#ms + 1] = parse_volume(v); given[#given + 1] = v end
    for _, v in ipairs(flags.tmpfs or {}) do ms[#ms + 1] = parse_tmpfs(v); given[#given + 1] = v end
    add((flags.mount and "--mount") or (flags.volume and "--volume") or "--tmpfs", table.concat(given, " "), oci.with_mounts, ms)
  end
  if flags.memory then add("--memory", flags.memory, oci.with_memory_limit) end
  if flags.cpus then add("--cpus", flags.cpus, oci.with_cpus) end
  if flags["cpu-shares"] then add("--cpu-shares", flags["cpu-shares"], oci.with_cpu_shares) end
  if flags["pids-limit"] then add("--pids-limit", flags["pids-limit"], oci.with_pids_limit) end
  if flags["cpu-period"] and not flags["cpu-quota"] then
    require("crater.cli.args").usage_error("--cpu-period goes with --cpu-quota")
  end
  if flags["cpu-quota"] then
    if flags.cpus then require("crater.cli.args").usage_error("--cpus and --cpu-quota set the same limit: give one") end
    add("--cpu-quota", flags["cpu-quota"], function(q) return oci.with_cpu_quota(q, flags["cpu-period"]) end)
  end
  if flags["cpuset-cpus"] or flags["cpuset-mems"] then
    add("--cpuset-cpus/--cpuset-mems", (flags["cpuset-cpus"] or "") .. " " .. (flags["cpuset-mems"] or ""),
      function() return oci.with_cpuset(flags["cpuset-cpus"], flags["cpuset-mems"]) end)
  end
  local net = flags.net or "none"
  if net == "host" then
    -- as ctr run --net-host: the host's names and name servers too
    o[#o + 1] = oci.with_host_namespaces { "net" }
    o[#o + 1] = oci.with_host_hosts_file()
    o[#o + 1] = oci.with_host_resolvconf()
  elseif net ~= "none" then require("crater.cli.args").usage_error("--net must be none or host, got %q", net) end
  if flags["read-only"] then o[#o + 1] = oci.with_readonly_rootfs() end
  if flags.privileged then
    o[#o + 1] = oci.with_privileged()
    o[#o + 1] = oci.with_host_devices()
  end
  if flags["cap-add"] or flags["cap-drop"] then
    local given = {}
    for _, c in ipairs(flags["cap-add"] or {}) do given[#given + 1] = c end
    for _, c in ipairs(flags["cap-drop"] or {}) do given[#given + 1] = c end
    add("--cap-add/--cap-drop", table.concat(given, " "), oci.with_capabilities,
      { add = flags["cap-add"], drop = flags["cap-drop"] })
  end
  if flags.seccomp == "unconfined" then o[#o + 1] = oci.with_seccomp_unconfined()
  elseif flags.seccomp and flags.seccomp ~= "default" then
    require("crater.cli.args").usage_error("--seccomp must be default or unconfined")
  end
  if flags["no-new-privileges"] then o[#o + 1] = oci.with_no_new_privileges() end
  if flags.tty then o[#o + 1] = oci.with_tty() end
  return o
end

--- The client for a command.
function M.client(ctx) return ctx:client() end

--- The container service of the command's client (and the client).
function M.containers(ctx)
  local c = ctx:client()
  return c:containers(), c
end

--- Creates the container described by flags and positional args
--- (IMAGE ID [CMD...], or ID [CMD...] with --rootfs).  Returns ctr, id.
function M.create_container(ctx, a, flags)
  local image, id
  if flags.rootfs then
    id = table.remove(a, 1)
  else
    image = table.remove(a, 1)
    id = table.remove(a, 1)
  end
  if not id then require("crater.cli.args").usage_error("expected %s", flags.rootfs and "ID [CMD...]" or "IMAGE ID [CMD...]") end
  if not require("crater.containers").valid_id(id) then
    require("crater.cli.args").usage_error("invalid container id %q (letters, digits, _ . -; at most 76)", id)
  end
  local cs = M.containers(ctx)
  local args = a
  local entrypoint
  if flags.entrypoint then entrypoint = flags.entrypoint == "" and {} or { flags.entrypoint } end
  if flags.rootfs and entrypoint then
    local all = {}
    for _, x in ipairs(entrypoint) do all[#all + 1] = x end
    for _, x in ipairs(args) do all[#all + 1] = x end
    args = all
  end
  if flags.rootfs and #args == 0 then args = { "sh" } end
  local labels = flags.label and require("crater.util").parse_labels(flags.label) or nil
  local runtime = flags.runtime
  if runtime and runtime:find("/", 1, true) then
    runtime = abs_path(runtime) -- recorded: later commands run elsewhere
  end
  local ctr = ctx:check(cs:create(id, {
    image = image, rootfs = flags.rootfs, args = (not flags.rootfs) and args or nil,
    entrypoint = (not flags.rootfs) and entrypoint or nil,
    spec = M.spec_opts(flags, flags.rootfs and args or nil),
    runtime = runtime, snapshotter = flags.snapshotter, labels = labels,
    -- --read-only on an image: a read-only view instead of an active
    -- snapshot, unless mounts may need mount points made in the root (a
    -- view has no upper layer; the runtime then remounts the root
    -- read-only): --mount, --volume or --tmpfs, and --net host's /etc/hosts and resolv.conf
    snapshot = (image and flags["read-only"] and not flags.mount and not flags.volume and not flags.tmpfs and flags.net ~= "host")
      and { view = id } or nil,
  }))
  return ctr, id, cs
end

--- Starts the shim of the task `run` is about to create (crater.tasks
--- prespawn), before the container exists; nil when it cannot tell the
--- id yet or the task dir exists (new_task then starts the shim itself).
function M.prespawn(ctx, a, flags, topts)
  local id = flags.rootfs and a[1] or a[2]
  if not (id and require("crater.containers").valid_id(id)) then return nil end
  local client = ctx:client()
  local runtime = flags.runtime or require("crater.containers").default_runtime()
  return require("crater.tasks").prespawn(client, client.ns or "default", id, runtime, topts)
end

M.command = {
  name = "run",
  summary = "Run a container (create, start, attach, wait)",
  usage = "IMAGE ID [CMD [ARG...]]  |  --rootfs DIR ID [CMD [ARG...]]",
  stop_at_positional = true,
  min_args = 1,
  flags = (function()
    local f = {
      { name = "rm", help = "remove the container and task when done" },
      { name = "detach", short = "d",
        help = "start and return; 'task attach' connects to its stdio later (output is dropped while nobody is attached), or see --log, --null-io" },
      { name = "interactive", short = "i", help = "keep stdin open" },
      { name = "log", type = "string", arg = "FILE", help = "with -d: json-lines log of stdout/stderr" },
      { name = "null-io", help = "with -d: no stdio at all (/dev/null)" },
    }
    for _, x in ipairs(M.spec_flags) do f[#f + 1] = x end
    return f
  end)(),
  examples = "  crater run --rm -t -i busybox sh1 sh\n  crater run --rm --rootfs /tmp/rootfs c1 echo hi\n" ..
    "  crater run -d --log /tmp/c2.log busybox c2 sleep 100\n  crater run -d -t -i busybox c3 sh; crater task attach c3",
  run = function(ctx, a, flags)
    local stdio = "inherit"
    if flags.detach then stdio = M.detached_stdio(flags) end
    if (flags.log or flags["null-io"]) and not flags.detach then
      require("crater.cli.args").usage_error("--log and --null-io go with -d")
    end
    -- as ctr: nobody would be there to remove it when it exits
    if flags.rm and flags.detach then require("crater.cli.args").usage_error("--rm and -d cannot be used together") end
    if flags.tty and flags.interactive and not flags.detach then M.need_terminal("-t -i", "drop -t to pipe input") end
    -- created and started in one runtime call, except with a terminal:
    -- there the client attaches (raw mode, window size) before the start
    local topts = { stdio = stdio, log = abs_path(flags.log), tty = flags.tty and true or false,
      stdin = flags.interactive and true or false, start = not flags.tty, transient = flags.rm and true or false,
      -- a daemon's worker lets go of it once the front end has the exit
      -- code: the container's mount namespace is torn down then, not
      -- before its exit is reported (crater.tasks)
      hold_mntns = (require("crater").served_by and not flags.detach) and true or nil }
    -- the task's shim (and runtime) start first, while the container is
    -- created: new_task adopts them
    local early = M.prespawn(ctx, a, flags, topts)
    local made, ctr, id, cs = pcall(M.create_container, ctx, a, flags)
    if not made then
      if early then early:abort() end
      error(ctr, 0)
    end
    local function cleanup()
      if flags.rm then cs:delete(id, { force = true }) end
    end
    topts.shim = early
    local task, err = ctr:new_task(topts)
    if not task then cleanup(); ctx:fail("%s", err) end
    local ok, e2 = task:start()
    if not ok then task:delete { force = true }; cleanup(); ctx:fail("%s", e2) end
    if flags.detach then
      ctx.out:write(id, "\n")
      return 0
    end
    task:attach { stdin = flags.interactive and true or false, wait = true }
    local code, e3 = task:wait()
    if flags.rm then cs:delete(id, { force = true, task = task }) end
    if not code then ctx:fail("%s", e3) end
    return code
  end,
}

return setmetatable(M.command, { __index = M })
