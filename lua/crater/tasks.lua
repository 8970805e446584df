--- crater.tasks: running containers through crater-shim.
---
--- A task is the running (or created, or stopped) process tree of a
--- container.  Each task has one crater-shim, started detached, which runs
--- the OCI runtime, keeps the container's stdio and exit status, and
--- answers on <state>/tasks/<ns>/<id>/shim.sock (docs/design/shim.md).
--- Nothing about a task lives only in this process: a new crater finds it
--- through the task dir, so tasks survive crater being killed.
---
--- ```lua
--- local task = assert(ctr:new_task{ stdio = "inherit" })
--- assert(task:start())
--- local code, exited_at = task:wait()
--- task:delete()
--- ```
---
--- Expected failures return nil, msg, kind; kind "unavailable" with a
--- message naming "shim dead" means the shim is gone and no exit status
--- was recorded.
local core = require "crater.core"
local json = require "crater.json"
local oci = require "crater.oci"

local M = {}
local Task = {}
Task.__index = Task
M.Task = Task
local Process = {}
Process.__index = Process
M.Process = Process

M.SIGNALS = {
  HUP = 1, INT = 2, QUIT = 3, KILL = 9, USR1 = 10, USR2 = 12, PIPE = 13, ALRM = 14,
  TERM = 15, CONT = 18, STOP = 19, TSTP = 20, WINCH = 28,
}

--- Parses "TERM", "SIGTERM", "15" or 15 into a number (raises on junk).
function M.signal(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then error("signal: expected a name or number", 3) end
  if tonumber(s) then return tonumber(s) end
  local n = M.SIGNALS[s:upper():gsub("^SIG", "")]
  if not n then error("signal: unknown signal " .. s, 3) end
  return n
end

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end


local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, data, mode)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  if mode then core.chmod(path, tonumber(mode, 8)) end
  return true
end

local exists = core.exists

local function capture(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  local ok, _, code = p:close()
  if ok == true or ok == 0 then return out, 0 end
  return out, code or 1
end

-- ---- binaries ---------------------------------------------------------------------------

-- The directory of this process's executable (read once: a `crater run`
-- looks up the shim and the runtime several times).
local exe_dir_cached
local function exe_dir()
  if exe_dir_cached == nil then
    local exe = core.exe_path()
    exe_dir_cached = exe and exe:match("^(.*)/[^/]+$") or false
  end
  return exe_dir_cached or nil
end

local which = core.which

local function find_bin(name, envvar)
  if os.getenv(envvar) then return os.getenv(envvar) end
  local dirs = {}
  if os.getenv("CRATER_BUILD") then dirs[#dirs + 1] = os.getenv("CRATER_BUILD") .. "/bin" end
  local ed = exe_dir()
  if ed then dirs[#dirs + 1] = ed end
  for _, d in ipairs(dirs) do
    if core.executable(d .. "/" .. name) then return d .. "/" .. name end
  end
  return which(name)
end

--- Path of crater-shim ($CRATER_SHIM, $CRATER_BUILD/bin, next to crater, PATH).
function M.shim_path() return find_bin("crater-shim", "CRATER_SHIM") end

--- Resolves a runtime name: "crater" → crater-runtime, "runc", "crun" (in
--- PATH), or a path (made absolute); nil when there is no such executable.
function M.runtime_path(name)
  name = name or "runc"
  if name:find("/", 1, true) then
    -- a path: it must be there (the shim execs it from the task dir, so a
    -- relative one is made absolute here)
    name = require("crater.util").abs_path(name)
    return core.executable(name) and name or nil
  end
  if name == "crater" or name == "crater-runtime" then
    return find_bin("crater-runtime", "CRATER_RUNTIME_BIN")
  end
  return which(name)
end

-- ---- task dirs -----------------------------------------------------------------------

local function task_dir(client, ns, id)
  return require("crater.containers").state_dir(client) .. "/tasks/" .. ns .. "/" .. id
end
M.task_dir = task_dir

local function runtime_root(client, ns, runtime)
  local base = require("crater.containers").state_dir(client) .. "/runtime/"
  local rname = (runtime or "runc"):gsub("^.*/", "")
  return base .. rname .. "/" .. ns
end

-- mount namespaces held for hold_mntns (fds), until release_held
local held_mntns = {}

--- Lets go of the mount namespaces this process held for `hold_mntns`:
--- the last holder's close tears each down (a `crater daemon` worker,
--- once its command's exit code has gone).
function M.release_held()
  for i = #held_mntns, 1, -1 do
    core.close_fd(held_mntns[i])
    held_mntns[i] = nil
  end
end

local function parse_reply(line)
  local status, rest = line:match("^(%S+)%s*(.*)$")
  if status == "ok" then return true, rest end
  local kind, msg = rest:match("^(%S+)%s+(.*)$")
  return nil, msg or rest, kind or "internal"
end

-- A shim's reply (or a request that failed) as task methods return it:
-- what follows "ok", or nil, msg, kind.
local function shim_result(self, r, err, kind)
  if not r then
    if kind == "unavailable" then return nil, "task " .. self.id .. ": shim dead (" .. tostring(err) .. ")", kind end
    return nil, "task " .. self.id .. ": " .. tostring(err), kind
  end
  local ok, rest, k2 = parse_reply(r)
  if not ok then return nil, rest, k2 end
  return rest
end

function Task:_req(line, timeout) return shim_result(self, core.shim_request(self.dir, line, timeout)) end

-- The reply to a request sent with core.shim_send on fd (closed here).
function Task:_recv(fd, timeout) return shim_result(self, core.shim_recv(fd, timeout)) end

local function unmount_rootfs(dir)
  -- lazy (MNT_DETACH), so a straggler cannot keep the mount under the task
  -- dir that remove_dir then deletes (remove_all crosses mount points)
  core.unmount_all(dir .. "/rootfs", { detach = true })
end

local function remove_dir(dir)
  unmount_rootfs(dir)
  core.remove_all(dir)
end

M.ROOTFS_MOUNTS_ANNOTATION = "io.crater.rootfs.mounts"

-- ---- volatile overlays for transient containers ---------------------------------------
--
-- The rootfs of a container that is removed after one run (`crater run
-- --rm`, or `new_task{transient = true}`) is mounted with overlayfs's
-- `volatile` option: no syncs of the upper filesystem, above all none at
-- unmount, where syncing the whole upper filesystem cost 4-5 ms of every
-- container exit (docs/design/shim.md).  Like podman's transient mounts.
-- The kernel refuses to mount a volatile upper again; the mount helper
-- (src/snapshot/mount.c) records the boot and clears that marker only in
-- the same boot.  Kernel 5.10 or later.

local function volatile_supported()
  local maj, min = (read_file("/proc/sys/kernel/osrelease") or ""):match("^(%d+)%.(%d+)")
  maj, min = tonumber(maj), tonumber(min)
  return maj ~= nil and (maj > 5 or (maj == 5 and min >= 10))
end

--- Makes a single overlay mount with an upper layer volatile (for a
--- transient task).  mounts is changed in place.
function M.make_volatile(mounts)
  local m = mounts[1]
  if #mounts ~= 1 or m.type ~= "overlay" or not volatile_supported() then return end
  for _, o in ipairs(m.options or {}) do
    if o:match("^workdir=") then
      m.options[#m.options + 1] = "volatile"
      return
    end
  end
end

-- The rootfs can be mounted by crater-runtime inside the container's own
-- mount namespace (annotation io.crater.rootfs.mounts) when nothing on the
-- host needs to see it: crater-runtime (runc/crun know nothing of the
-- annotation), an active snapshot (a view's mounts are checked below), no
-- hooks (they expect the rootfs mounted), no user namespace (the mount
-- would be made inside it) and no user name left to resolve from the
-- rootfs's /etc/passwd.  It then goes with the namespace: no host mount,
-- no host unmount (an RCU grace period) at delete.
local function is_crater_runtime(rt) return rt ~= nil and rt:match("crater%-runtime$") ~= nil end

local function rootfs_in_container(rt, spec, snap)
  if not is_crater_runtime(rt) or (snap and snap.kind == "view") then return false end
  if spec.hooks and next(spec.hooks) then return false end
  if spec.process and spec.process.user and spec.process.user.username then return false end
  return oci.namespace(spec, "user") == nil
end

--- Mounts the container's snapshot on dir/rootfs (or has the runtime mount
--- it in the container's namespace), or points the spec at its rootfs
--- directory.  Returns the rootfs path.
local function setup_rootfs(client, ns, rec, dir, spec, rt, transient)
  if rec.rootfs then
    spec.root.path = rec.rootfs
    return rec.rootfs
  end
  if not (rec.snapshot_key and client.snapshots and core.mount_all) then
    return nil, "container " .. rec.id .. ": no rootfs and no snapshot support", "failed_precondition"
  end
  local sn = client:snapshots(rec.snapshotter)
  local mounts, err, kind = sn:mounts(rec.snapshot_key)
  if not mounts then return nil, "container " .. rec.id .. ": snapshot mounts: " .. tostring(err), kind end
  local target = dir .. "/rootfs"
  local mk, e1, k1 = core.mkdir_p(target, 493)
  if not mk then return nil, "container " .. rec.id .. ": " .. tostring(e1), k1 end
  local st = sn:stat(rec.snapshot_key)
  if transient then M.make_volatile(mounts) end
  if rootfs_in_container(rt, spec, st) then
    spec.root.path = "rootfs"
    spec.annotations = spec.annotations or {}
    spec.annotations[M.ROOTFS_MOUNTS_ANNOTATION] = json.encode(mounts)
    return target
  end
  local ok, e2, k2 = core.mount_all(mounts, target)
  if not ok then return nil, "container " .. rec.id .. ": mount rootfs: " .. tostring(e2), k2 end
  spec.root.path = "rootfs"
  -- A view is read-only all the way down, so the runtime cannot make mount
  -- points the image lacks: drop default mounts (/run, /dev/mqueue...) whose
  -- destination is missing, as they are conveniences, not requirements.
  -- One below a mount kept before it is on that mount, not the view
  -- (/dev/pts on the /dev tmpfs, /sys/fs/cgroup on sysfs): kept.
  if st and st.kind == "view" then
    local defaults = {}
    for _, m in ipairs(oci.default_spec().mounts) do defaults[m.destination] = true end
    local keep = {}
    local function on_kept(dest)
      for _, k in ipairs(keep) do
        local d = k.destination:gsub("/+$", "")
        if dest:sub(1, #d + 1) == d .. "/" then return true end
      end
      return false
    end
    for _, m in ipairs(spec.mounts or {}) do
      local here = not defaults[m.destination] or on_kept(m.destination)
      if not here then
        local f = io.open(target .. m.destination, "r")
        if f then f:close(); here = true end
      end
      if here then keep[#keep + 1] = m end
    end
    spec.mounts = json.array(keep)
  end
  return target
end

local function pre_start(client, id, rec)
  if not (client and client.policy) then return true end
  local allowed, why, kind = client:policy("task.pre_start", { id = id, image = rec.image, spec = rec.spec })
  if not allowed then return nil, "task " .. id .. ": " .. tostring(why), kind end
  return true
end

-- What a task's shim is started with: the task dir, the runtime and its
-- root, the stdio mode and FIFOs, and the shim's argv.  spec_tty: the
-- spec's process.terminal, used when opts.tty is nil.
local function shim_plan(client, ns, id, runtime, opts, spec_tty, dir)
  local shim = M.shim_path()
  if not shim then return nil, "crater-shim not found (set CRATER_SHIM or PATH)", "not_found" end
  local rt = M.runtime_path(runtime)
  if not rt then return nil, "runtime " .. tostring(runtime) .. " not found", "not_found" end
  dir = dir or task_dir(client, ns, id)
  local tty = opts.tty
  if tty == nil then tty = spec_tty end
  tty = tty and true or false
  local stdio = opts.stdio or (opts.log and "log") or "null"
  local mode, io_paths = "null", nil
  if stdio == "inherit" or stdio == "fifo" or stdio == "attach" then
    -- attach: a detached task's FIFOs, written only while a client is
    -- attached (Task:attach); its output is dropped meanwhile
    mode = stdio == "attach" and "attach" or "fifo"
    io_paths = { stdout = dir .. "/stdout" }
    if not tty then io_paths.stderr = dir .. "/stderr" end
    if opts.stdin ~= false then io_paths.stdin = dir .. "/stdin" end
  elseif stdio == "log" then
    mode = "log"
  elseif type(stdio) == "table" then
    mode = "fifo"
    io_paths = {}
    for _, k in ipairs { "stdin", "stdout", "stderr" } do
      if stdio[k] then io_paths[k] = dir .. "/" .. k end
    end
  end
  local rroot = runtime_root(client, ns, rt)
  local argv = { shim, "--dir", dir, "--id", id, "--runtime", rt, "--runtime-root", rroot, "--stdio", mode }
  if mode == "log" then
    -- relative to the caller, not to the task dir the shim works in
    local log = require("crater.util").abs_path(opts.log)
    argv[#argv + 1] = "--log"; argv[#argv + 1] = log or (dir .. "/log.json")
    argv[#argv + 1] = "--log-format"; argv[#argv + 1] = opts.log_format or "json"
  end
  if tty then argv[#argv + 1] = "--tty" end
  if opts.start then argv[#argv + 1] = "--start" end
  if is_crater_runtime(rt) then
    -- crater-runtime runs only from a sealed copy of itself; the shim
    -- makes it, saving the runtime's own re-exec
    argv[#argv + 1] = "--seal-runtime"
    -- ... and, created and started in one step, it starts before "go"
    -- too and waits for it (its exec overlaps the bundle being written)
    if opts.start and not tty then argv[#argv + 1] = "--prestart" end
  end
  return { dir = dir, rt = rt, rroot = rroot, tty = tty, mode = mode, io_paths = io_paths, argv = argv }
end

-- Makes the runtime root and the task dir's FIFOs (the shim opens them
-- as soon as it starts, with --prestart) and spawns the shim, which waits
-- for "go".  The task dir exists.
local function spawn_shim(plan)
  core.mkdir_p(plan.rroot, 448) -- 0700
  for _, p in pairs(plan.io_paths or {}) do
    local r, e, k = core.mkfifo(p, 384)
    if not r then return nil, e, k end
  end
  return core.shim_spawn(plan.argv, { stderr = plan.dir .. "/shim.log", dir = plan.dir })
end

local Early = {}
Early.__index = Early

--- Stops a shim started by `prespawn` and removes its dir.
function Early:abort()
  if not self.pending then return end
  self.pending:abort() -- returns once the shim has gone
  self.pending = nil
  core.remove_all(self.plan.dir)
end

-- Stops it without waiting: it removes its dir itself, off the caller's path.
function Early:release()
  if not self.pending then return end
  self.pending:release()
  self.pending = nil
end

-- Starts a shim for task id (or "-": a spare, told its id at go) in a
-- private dir beside the task dirs, .prespawn-<name>-<pid>.  want: the
-- shim's plan in the task dir, when the caller has it.
local function early_shim(client, ns, id, runtime, opts, name, want)
  want = want or shim_plan(client, ns, id, runtime, opts, false)
  if not want then return nil end
  local parent = want.dir:match("^(.*)/[^/]+$")
  local dir = string.format("%s/.prespawn-%s-%d", parent, name, core.getpid())
  local plan = shim_plan(client, ns, id, runtime, opts, false, dir)
  if not (core.mkdir_p(parent, 457) and core.mkdir(dir, 457)) then return nil end
  core.chmod(dir, 457) -- 0711 whatever the umask
  local pending = spawn_shim(plan)
  if not pending then core.remove_all(dir); return nil end
  return setmetatable({ plan = plan, want = want.argv, pending = pending }, Early)
end

-- Whether a spare's plan is the one a task would get: the same argv but
-- for the values of --dir and --id (a spare's own), and the same FIFOs
-- (the shim uses those it finds).
local function spare_fits(spare, want)
  local a, b = spare.argv, want.argv
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] and a[i - 1] ~= "--dir" and a[i - 1] ~= "--id" then return false end
  end
  local fa, fb = spare.io_paths or {}, want.io_paths or {}
  for k in pairs(fa) do if not fb[k] then return false end end
  for k in pairs(fb) do if not fa[k] then return false end end
  return true
end

local spares = 0 -- started by this process (their dirs' N)

--- Starts a spare shim: one for a task nobody has asked for yet (opts as
--- for `new_task`; a `crater daemon` worker gives the last `crater run`'s,
--- `spare_shape`).  A worker keeps one while it waits for a command, so
--- the shim's start (and crater-runtime's, which with `start = true` waits
--- for "go" too) is off that command's path.  The next `prespawn` of this
--- process takes it when its task would get the same shim, and the
--- container's id goes to the shim (and the runtime) with "go"; otherwise
--- it is released.  The process's end releases an unused one (EOF: it
--- removes its dir and exits, and so does its runtime).  A spare this
--- process still has (no command took it) is kept when it fits and lives,
--- else stopped.  Returns the handle, or nil when none could be started.
---@param runtime string
---@param opts {stdio?: "inherit"|"attach"|"null"|table, log?: string, tty?: boolean, stdin?: boolean, start?: boolean}
function M.spare(client, ns, runtime, opts)
  opts = opts or {}
  local want = shim_plan(client, ns, "-", runtime, opts, false)
  if M._spare and want and spare_fits(M._spare.plan, want) and M._spare.pending:alive() then return M._spare end
  M.drop_spare()
  if not want then return nil end
  -- ".prespawn--spare.N-PID": no id starts with "-", so no prespawn of
  -- this process for a container named "spare" meets a released spare's
  -- dir; N: the one a released spare is still removing is not this one's
  spares = spares + 1
  M._spare = early_shim(client, ns, "-", runtime, opts, "-spare." .. spares, want)
  if M._spare then M._spare.pending:reap() end -- it may wait long: no zombie meanwhile
  return M._spare
end

--- Stops this process's spare shim, if it keeps one (see `spare`).
function M.drop_spare()
  if M._spare then M._spare:abort() end
  M._spare = nil
end

--- Starts the shim of a task whose container is still being created, so
--- that its start (and crater-runtime's, with `start = true`) overlaps
--- the container's creation: `crater run` does this first.  runtime:
--- the container's runtime name; opts: as for `new_task`.  The shim
--- starts in a private dir beside the task dirs, which `new_task{shim =
--- handle, ...}` renames into place when it adopts the shim (the shim
--- holds the dir open, so it does not mind): only then, with the
--- container created, is the task dir taken, and a concurrent `run` of
--- the same id never shares a dir with this shim.  new_task adopts it
--- when the container and opts turn out as expected, else stops it and
--- starts another.  A spare shim of this process (`spare`) is taken
--- instead when it fits.  Returns nil when none was started (no shim
--- binary): new_task then starts one itself.  `handle:abort()` stops it
--- and removes its dir, for a container that could not be created.
---@param runtime string
---@param opts {stdio?: "inherit"|"attach"|"null"|table, log?: string, log_format?: "json"|"raw", tty?: boolean, stdin?: boolean, start?: boolean, transient?: boolean}
function M.prespawn(client, ns, id, runtime, opts)
  opts = opts or {}
  -- the shape of this task's shim, for the next spare (`spare_shape`)
  if not opts.log and (opts.stdio == nil or opts.stdio == "inherit" or opts.stdio == "attach" or opts.stdio == "null") then
    M._last_shape = { namespace = ns, runtime = runtime, stdio = opts.stdio or "null", tty = opts.tty and true or false,
      stdin = opts.stdin ~= false, start = opts.start and true or false }
  end
  -- what the shim would be started with in the task dir
  local want = shim_plan(client, ns, id, runtime, opts, false)
  local spare = M._spare
  M._spare = nil
  if spare then
    if want and spare_fits(spare.plan, want) then
      spare.want, spare.go_id = want.argv, id
      return spare
    end
    spare:release()
  end
  return want and early_shim(client, ns, id, runtime, opts, id, want)
end

--- The shape of the last task `prespawn` started a shim for in this
--- process ({namespace, runtime, stdio, tty, stdin, start}, the arguments
--- `spare` takes), or nil: a `crater daemon` worker passes it on, so that
--- the next spares are shaped as the last `crater run` (`-d` or not).
function M.spare_shape() return M._last_shape end

--- Forgets that shape (a `crater daemon` worker, between commands).
function M.forget_shape() M._last_shape = nil end

--- Private dirs of `prespawn` left by a client that died before its shim
--- could clean up (killed between making the dir and spawning the shim):
--- `.prespawn-<id>-<pid>` whose client pid and shim (if any) are gone.
--- With `remove`, they are removed.  Returns {namespace, dir} records.
---@return table[]
function M.stale_prespawn(client, remove)
  local out = {}
  local base = require("crater.containers").state_dir(client) .. "/tasks/"
  for _, ns in ipairs(core.listdir(base) or {}) do
    for _, name in ipairs(core.listdir(base .. ns) or {}) do
      local pid = name:match("^%.prespawn%-.+%-(%d+)$")
      if pid and not core.pid_alive(tonumber(pid)) then
        local dir = base .. ns .. "/" .. name
        local spid = tonumber(read_file(dir .. "/shim.pid") or "")
        if not (spid and core.pid_alive(spid)) then
          if remove then core.remove_all(dir) end
          out[#out + 1] = { namespace = ns, dir = dir }
        end
      end
    end
  end
  return out
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- Creates the task for container record rec.  With `start = true` the
--- task is created and started in one step (the runtime's `run --detach`:
--- one runtime process instead of two; the `task.pre_start` policy is
--- asked first) and `Task:start` has nothing left to do.  `transient =
--- true` says the container goes after this run (`crater run --rm`): its
--- overlay rootfs is mounted volatile (no syncs), and with a pid namespace
--- of its own the runtime deletes it as soon as the init exits (the shim's
--- --delete-on-exit; `Task:delete` then only waits for that).  `shim`: a
--- handle from `prespawn`, adopted when it was started for this task.
--- `stdio = "attach"`: a detached task that `Task:attach` connects to
--- later; its output is dropped while nobody is attached (`crater run -d`).
--- `hold_mntns = true`: this process holds the init's mount namespace
--- until it exits or calls `release_held`, so that the namespace's
--- teardown (its mounts and the rootfs overlay: RCU grace periods, ~0.4
--- ms) happens then, not in the init's exit, before the exit is reported:
--- for a process that has answered by then (a `crater daemon` worker
--- running `crater run`; src/shim/shim.c).
---@param opts {stdio?: "inherit"|"attach"|"null"|table, log?: string, log_format?: "json"|"raw", tty?: boolean, stdin?: boolean, start?: boolean, transient?: boolean, shim?: table, hold_mntns?: boolean}
function M.create(client, ns, rec, opts)
  local early = opts.shim
  local plan, perr, pkind = shim_plan(client, ns, rec.id, rec.runtime, opts, (rec.spec.process or {}).terminal)
  -- adopted: the dir becomes the task dir, unless one is there already
  -- (a stale empty dir is replaced); else another shim is started
  if early and not (plan and same_list(early.want, plan.argv) and os.rename(early.plan.dir, plan.dir)) then
    early:abort()
    early = nil
  elseif early then
    early.plan.dir = plan.dir
  end
  if not plan then return nil, perr, pkind end
  local dir = plan.dir
  if not early and (exists(dir .. "/shim.pid") or exists(dir .. "/config.json")) then
    local t = M.load(client, ns, rec)
    if t then
      local st = t:status()
      return nil, "task " .. rec.id .. " already exists (" .. st.status .. ")", "already_exists"
    end
  end
  if opts.start then
    local allowed, why, kind = pre_start(client, rec.id, rec)
    if not allowed then
      if early then early:abort() end
      return nil, why, kind
    end
  end
  local pending
  if early then
    pending = early.pending
    early.pending = nil -- ours now
  else
    local mk, merr, mkind = core.mkdir_p(dir, 457) -- 0711
    if not mk then return nil, "task " .. rec.id .. ": " .. tostring(merr), mkind end
    core.chmod(dir, 457)
    -- The shim starts now and waits for "go": its exec and set-up overlap
    -- the rest of the bundle (rootfs, config.json) being written.
    local e0, k0
    pending, e0, k0 = spawn_shim(plan)
    if not pending then remove_dir(dir); return nil, "task " .. rec.id .. ": " .. tostring(e0), k0 end
  end
  local io_handle
  local function fail(err, kind)
    if io_handle then io_handle:close() end
    pending:abort() -- returns once the shim has gone, leaving nothing in dir
    remove_dir(dir)
    return nil, err, kind
  end

  local rt, tty = plan.rt, plan.tty
  local spec = oci.copy(rec.spec)
  local rootfs, err, kind = setup_rootfs(client, ns, rec, dir, spec, rt, opts.transient)
  if not rootfs then return fail(err, kind) end
  spec.process.terminal = tty
  local ok
  ok, err, kind = oci.finalize(spec, rootfs)
  if not ok then return fail("task " .. rec.id .. ": " .. tostring(err), kind) end
  write_file(dir .. "/config.json", json.encode(spec))
  if plan.io_paths then
    local h, e, k = core.io_open(plan.io_paths)
    if not h then return fail(e, k) end
    io_handle = h
  end
  local meta = {
    id = rec.id, namespace = ns, runtime = rt, runtime_root = plan.rroot, tty = tty,
    stdio = plan.mode, log = opts.log, created_at = os.time(),
  }
  write_file(dir .. "/task.json", json.encode(meta))
  -- a transient task whose init has its own pid namespace is deleted as
  -- soon as the init exits, while the client hears of it
  local words = (opts.transient and oci.owns_namespace(rec.spec, "pid")) and "delete-on-exit" or nil
  -- a spare shim (and its runtime) learns the id now
  if early and early.go_id then words = "id=" .. early.go_id .. (words and " " .. words or "") end
  if opts.hold_mntns then words = (words and words .. " " or "") .. "mntns" end
  local res, e, k = pending:go(words)
  -- held until release_held (or this process's end): see hold_mntns
  if type(e) == "number" then held_mntns[#held_mntns + 1] = e; e = nil end
  if not res then
    if io_handle then io_handle:close() end
    remove_dir(dir)
    return nil, "task " .. rec.id .. ": " .. tostring(e), k
  end
  local good, rest, k2 = parse_reply(res)
  if not good then
    if io_handle then io_handle:close() end
    remove_dir(dir)
    return nil, rest, k2
  end
  local t = setmetatable({ id = rec.id, ns = ns, dir = dir, meta = meta, rec = rec, client = client,
    io = io_handle, _pid = tonumber(rest:match("^%d+")), _started = opts.start and true or nil }, Task)
  return t
end

--- Loads the task of container record rec from its task dir, or nil.
function M.load(client, ns, rec)
  local dir = task_dir(client, ns, rec.id)
  local text = read_file(dir .. "/task.json")
  if not text then return nil end
  local meta = json.decode(text) or {}
  return setmetatable({ id = rec.id, ns = ns, dir = dir, meta = meta, rec = rec, client = client }, Task)
end

--- Lists tasks of a namespace: {id=, pid=, status=, exit_status=}.
function M.list(client, ns)
  local base = require("crater.containers").state_dir(client) .. "/tasks/" .. ns
  local out = {}
  for _, id in ipairs(core.listdir(base) or {}) do
    local t = M.load(client, ns, { id = id })
    if t then
      local st = t:status()
      st.id = id
      out[#out + 1] = st
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

-- ---- Task methods ----------------------------------------------------------------------

local function read_exit(path)
  local s = read_file(path)
  if not s then return nil end
  local code, at = s:match("^(%-?%d+)%s+(%d+)")
  return tonumber(code), tonumber(at)
end

--- Status: {status="created"|"running"|"paused"|"stopped"|"unknown",
--- pid=, exit_status=, exited_at=, shim=("alive"|"dead")}.
function Task:status()
  local r = self:_req("state", 5000)
  if r then
    local st, pid, code, at = r:match("^(%S+)%s+(%-?%d+)%s+(%-?%d+)%s+(%-?%d+)")
    return { status = st, pid = tonumber(pid), exit_status = st == "stopped" and tonumber(code) or nil,
      exited_at = st == "stopped" and tonumber(at) or nil, shim = "alive" }
  end
  local code, at = read_exit(self.dir .. "/exit")
  local pid = tonumber(read_file(self.dir .. "/pid") or "")
  if code then return { status = "stopped", pid = pid, exit_status = code, exited_at = at, shim = "dead" } end
  local st = { status = "unknown", pid = pid, shim = "dead", note = "shim dead" }
  if pid and core.pid_alive(pid) then st.note = "shim dead, init still running" end
  return st
end

--- The pid of the container's init.
function Task:pid()
  if self._pid then return self._pid end
  local st = self:status()
  self._pid = st.pid
  return st.pid
end

--- Starts the task's init process (nothing to do for a task created
--- with `start = true`).
function Task:start()
  if self._started then return true end
  local allowed, why, pkind = pre_start(self.client, self.id, self.rec or {})
  if not allowed then return nil, why, pkind end
  local r, err, kind = self:_req("start", 60000)
  if not r then return nil, err, kind end
  self._pid = tonumber(r) or self._pid
  return true
end

--- Waits for the init to exit: exit status, exited_at (ns since epoch).
--- A dead shim with a recorded status still answers; without one: nil, "shim dead".
---@param timeout_ms? integer
function Task:wait(timeout_ms)
  local forever = timeout_ms == nil or timeout_ms < 0
  if self.io and forever then
    -- stdio = "inherit": nobody else reads the FIFOs, so copy the
    -- container's output here until it ends (a full FIFO would stall it)
    self:attach { stdin = false, signals = false, wait = true }
  end
  local r, err, kind
  local fd = self._wait_fd
  self._wait_fd = nil
  if fd and forever then
    -- asked before attaching (attach{wait = true}): answered at the exit
    r, err, kind = self:_recv(fd, -1)
  else
    if fd then core.shim_recv(fd, 0) end -- closes it
    r, err, kind = self:_req("wait", timeout_ms or -1)
  end
  if r then
    local code, at = r:match("^(%-?%d+)%s+(%d+)")
    self._exited = true
    return tonumber(code), tonumber(at)
  end
  if kind == "unavailable" then
    local code, at = read_exit(self.dir .. "/exit")
    if code then return code, at end
  end
  return nil, err, kind
end

--- Sends a signal to the init (opts.all: to every process of the container).
function Task:kill(sig, opts)
  sig = M.signal(sig or "TERM")
  local r, err, kind = self:_req("kill " .. sig .. ((opts and opts.all) and " all" or ""), 30000)
  if not r then return nil, err, kind end
  return true
end

--- Pauses (freezes) every process of the task.
function Task:pause()
  local r, err, kind = self:_req("pause", 30000)
  if not r then return nil, err, kind end
  return true
end

--- Resumes a paused task.
function Task:resume()
  local r, err, kind = self:_req("resume", 30000)
  if not r then return nil, err, kind end
  return true
end

--- Resizes the task's pty.
function Task:resize(w, h)
  local r, err, kind = self:_req(string.format("resize - %d %d", w, h))
  if not r then return nil, err, kind end
  return true
end

--- Closes the task's stdin (EOF for the process).
function Task:close_stdin()
  local r, err, kind = self:_req("close_stdin -")
  if not r then return nil, err, kind end
  return true
end

local function runtime_cmd(self, args)
  local m = self.meta
  return sh_quote(m.runtime) .. " --root " .. sh_quote(m.runtime_root) .. " " .. args
end

--- The task's processes (host pids): {{pid=, command=}, ...}.
function Task:pids()
  local out, code = capture(runtime_cmd(self, "ps --format json " .. sh_quote(self.id)))
  if code ~= 0 then return nil, "task " .. self.id .. ": ps: " .. out:gsub("%s+$", ""), "failed_precondition" end
  local list = json.decode(out)
  if type(list) ~= "table" then return nil, "task " .. self.id .. ": ps: bad output", "internal" end
  local r = {}
  for _, p in ipairs(list) do
    -- the command line as the host sees it (empty once the process is gone)
    local cmd = (read_file("/proc/" .. tostring(p) .. "/cmdline") or ""):gsub("%z$", ""):gsub("%z", " ")
    r[#r + 1] = { pid = p, command = cmd }
  end
  return r
end

--- Cgroup statistics: {memory={usage=, max_usage=, limit=}, cpu={usage_ns=}, pids={current=, limit=}}.
function Task:metrics()
  local out, code = capture(runtime_cmd(self, "events --stats " .. sh_quote(self.id)))
  if code ~= 0 then return nil, "task " .. self.id .. ": stats: " .. out:gsub("%s+$", ""), "failed_precondition" end
  local ev = json.decode(out:match("[^\n]+") or "")
  if type(ev) ~= "table" or type(ev.data) ~= "table" then return nil, "task " .. self.id .. ": stats: bad output", "internal" end
  local d = ev.data
  local mem = d.memory or {}
  local usage = mem.usage or {}
  return {
    memory = { usage = usage.usage, max_usage = usage.max, limit = usage.limit },
    cpu = { usage_ns = d.cpu and d.cpu.usage and d.cpu.usage.total },
    pids = { current = d.pids and d.pids.current, limit = d.pids and d.pids.limit },
    raw = d,
  }
end

--- Copies stdio between this process and the task (stdio "inherit"/"fifo",
--- or "attach": a detached task, whose output then comes here until this
--- returns) until the task's output ends; forwards signals and, with a
--- tty, resizes.
--- `wait = true`: the caller will `wait` next; the request is sent before
--- attaching, so the shim answers it the moment the init exits, before
--- its clean-up of a transient task.
---@param opts? {stdin?: boolean, signals?: boolean, wait?: boolean}
function Task:attach(opts)
  opts = opts or {}
  if opts.wait and not self._wait_fd and core.shim_send then
    self._wait_fd = core.shim_send(self.dir, "wait")
  end
  local h = self.io
  local lazy = self.meta.stdio == "attach"
  if not h then
    if self.meta.stdio ~= "fifo" and not lazy then
      return nil, "task " .. self.id .. " has no attachable stdio (started with " .. tostring(self.meta.stdio) .. ")",
        "failed_precondition"
    end
    local paths = {}
    for _, k in ipairs { "stdin", "stdout", "stderr" } do
      if exists(self.dir .. "/" .. k) then paths[k] = self.dir .. "/" .. k end
    end
    if opts.stdin == false then paths.stdin = nil end
    local e, k
    h, e, k = core.io_open(paths)
    if not h then return nil, e, k end
    self.io = h
  end
  if lazy then
    -- our read ends are open: the shim now writes the output there
    local r, e, k = self:_req("attach -")
    if not r then h:close(); self.io = nil; return nil, e, k end
    if r == "0" then h:close(); self.io = nil; return true end -- exited: nothing to stream
  end
  local stdin = opts.stdin
  if stdin == nil then stdin = true end
  h:run { taskdir = self.dir, tty = self.meta.tty, stdin = stdin, signals = opts.signals ~= false }
  h:close()
  self.io = nil
  return true
end

--- Runs another process in the task.  A `process.user.username` (as
--- `crater.oci.with_user("name")` leaves it without a rootfs) is resolved
--- in the running container's /etc/passwd and /etc/group.
---@param exec_id string
---@param process table OCI process (args, env, cwd, user, terminal...)
---@param opts? {tty?: boolean, stdio?: "inherit"|"null"}
function Task:exec(exec_id, process, opts)
  opts = opts or {}
  if type(exec_id) ~= "string" or not exec_id:match("^[%w][%w_.-]*$") then error("task:exec: invalid exec id", 2) end
  if type(process) ~= "table" or type(process.args) ~= "table" then error("task:exec: process needs args", 2) end
  local p = oci.copy(process)
  local tty = opts.tty
  if tty == nil then tty = p.terminal end
  p.terminal = tty and true or false
  p.cwd = p.cwd or "/"
  p.env = p.env or json.array { oci.DEFAULT_PATH }
  p.user = p.user or { uid = 0, gid = 0 }
  if p.user.username then
    -- a name (crater.oci.with_user without a rootfs): resolved in the
    -- running container's own /etc/passwd and /etc/group
    local pid = self:pid()
    local r, err, kind = oci.resolve_user(pid and ("/proc/" .. pid .. "/root") or nil, p.user.username)
    if not r then return nil, "exec " .. exec_id .. " in " .. self.id .. ": " .. tostring(err), kind end
    p.user = r
  end
  setmetatable(p.args, json.array_mt)
  local prefix = self.dir .. "/exec-" .. exec_id
  write_file(prefix .. ".json", json.encode(p))
  local mode, h = "null", nil
  if opts.stdio == "inherit" then
    mode = "fifo"
    local paths = { stdin = prefix .. ".stdin", stdout = prefix .. ".stdout" }
    if not tty then paths.stderr = prefix .. ".stderr" end
    if opts.stdin == false then paths.stdin = nil end
    for _, f in pairs(paths) do core.mkfifo(f, 384) end
    local e, k
    h, e, k = core.io_open(paths)
    if not h then return nil, e, k end
  end
  local r, err, kind = self:_req(string.format("exec %s %d %s", exec_id, tty and 1 or 0, mode), 60000)
  if not r then
    if h then h:close() end
    return nil, err, kind
  end
  return setmetatable({ task = self, id = exec_id, pid = tonumber(r), io = h, tty = tty }, Process)
end

--- Deletes the task: refused while running unless opts.force.  Removes the
--- task dir (and unmounts the rootfs).  Returns the exit status.
--- opts.during: for a task whose init is known to have exited, a function
--- run once the rootfs is unmounted, while the shim runs `<runtime>
--- delete` (Containers:delete removes the snapshot there); its failure
--- (nil, msg, kind) is returned after the task is gone.
---@param opts? {force?: boolean, during?: fun(): any, string?, string?}
function Task:delete(opts)
  opts = opts or {}
  if self._wait_fd then core.shim_recv(self._wait_fd, 0); self._wait_fd = nil end
  local req = "delete" .. (opts.force and " force" or "")
  local r, err, kind, during
  local fd = self._exited and core.shim_send and core.shim_send(self.dir, req)
  if fd then
    -- The init has exited (wait answered), so nothing runs from the rootfs
    -- any more (or only stragglers of a shared pid namespace, which the
    -- lazy unmount leaves their view): unmount it while the shim runs
    -- `<runtime> delete`, instead of after (docs/design/shim.md).
    unmount_rootfs(self.dir)
    if opts.during then during = { opts.during() } end
    r, err, kind = self:_recv(fd, 60000)
  else
    r, err, kind = self:_req(req, 60000)
  end
  local code
  if r then
    code = tonumber(r:match("^(%-?%d+)"))
    -- wait for the shim to go (it exits right after answering)
    local spid = tonumber(read_file(self.dir .. "/shim.pid") or "")
    if spid then core.wait_pid_gone(spid, 2000) end
  elseif kind == "unavailable" then
    -- shim dead: clean up with the runtime directly
    local st = self:status()
    if st.pid and core.pid_alive(st.pid) and not opts.force then
      return nil, "task " .. self.id .. ": shim dead but init still running (use force)", "failed_precondition"
    end
    capture(runtime_cmd(self, "delete --force " .. sh_quote(self.id)))
    code = st.exit_status
  else
    return nil, err, kind
  end
  if self.io then self.io:close(); self.io = nil end
  remove_dir(self.dir)
  if during and not during[1] then return nil, during[2], during[3] end
  return code or 0
end

-- ---- exec'd processes ------------------------------------------------------------------

function Process:wait(timeout_ms)
  local r, err, kind = self.task:_req("wait " .. self.id, timeout_ms or -1)
  if r then
    local code, at = r:match("^(%-?%d+)%s+(%d+)")
    return tonumber(code), tonumber(at)
  end
  if kind == "unavailable" then
    local s = read_file(self.task.dir .. "/exec-" .. self.id .. ".exit")
    if s then
      local code, at = s:match("^(%-?%d+)%s+(%d+)")
      return tonumber(code), tonumber(at)
    end
  end
  return nil, err, kind
end

function Process:kill(sig)
  local r, err, kind = self.task:_req("kill " .. M.signal(sig or "TERM") .. " exec " .. self.id)
  if not r then return nil, err, kind end
  return true
end

function Process:resize(w, h)
  local r, err, kind = self.task:_req(string.format("resize %s %d %d", self.id, w, h))
  if not r then return nil, err, kind end
  return true
end

function Process:close_stdin()
  local r, err, kind = self.task:_req("close_stdin " .. self.id)
  if not r then return nil, err, kind end
  return true
end

--- Copies stdio until the process's output ends (stdio="inherit" only).
function Process:attach(opts)
  opts = opts or {}
  if not self.io then return nil, "exec " .. self.id .. " has no attachable stdio", "failed_precondition" end
  local stdin = opts.stdin
  if stdin == nil then stdin = true end
  self.io:run { taskdir = self.task.dir, exec = self.id, tty = self.tty, stdin = stdin, signals = opts.signals ~= false }
  self.io:close()
  self.io = nil
  return true
end

return M
