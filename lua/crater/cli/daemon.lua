--- crater daemon: serve this root's commands from warm workers (craterd).
---
--- The daemon binds <state>/crater.sock (mode 0600: root only; the same path
--- the `crater` front end looks for) and keeps --workers processes forked
--- from itself, each with the modules loaded and the store open, waiting
--- for a command.  `crater` hands a command to one of them with its stdio,
--- working directory, environment and umask, and gets its exit code back;
--- without a daemon it runs the command itself.  Either way the same code
--- runs the command.  A worker then puts its own state back and waits for
--- the next one, while the daemon has room for it among its idle workers
--- (docs/design/daemon.md).
local core = require "crater.core"

-- what a worker would otherwise load per command: loaded once, before the
-- workers are forked, so every worker starts with them
local PRELOAD = {
  "crater", "crater.util", "crater.json", "crater.hosts", "crater.policy", "crater.oci", "crater.images",
  "crater.containers", "crater.tasks", "crater.snapshots", "crater.snapshotters", "crater.content",
  "crater.namespaces", "crater.reference", "crater.platforms", "crater.mount", "crater.cli.output",
}

local function preload()
  local cli = require "crater.cli"
  for _, m in ipairs(PRELOAD) do require(m) end
  for _, g in ipairs(cli.groups) do pcall(require, "crater.cli." .. g) end
end

-- Replaces file with data, mode 0600 (a temp file renamed over it).
local function write_private(file, data)
  local tmp = string.format("%s.%d", file, core.getpid())
  local f = io.open(tmp, "wb")
  if not f then return end
  f:write(data)
  f:close()
  core.chmod(tmp, 384) -- 0600
  if not os.rename(tmp, file) then os.remove(tmp) end
end

-- A learned file's content: at most 256 kB (nothing this daemon writes
-- comes near), nil when missing.
local function read_learned(file)
  local f = io.open(file, "rb")
  if not f then return nil end
  local data = f:read(262144)
  f:close()
  return data
end

-- The SQL statements commands used, kept beside the socket (PATH.sql, a
-- JSON list, the daemon's alone): a worker prepares them while it waits,
-- instead of its command preparing them one by one (~30,000 instructions
-- each; a `crater run` prepares ~28, ~0.4 ms).  Learned from use, so it
-- follows the code: text no code asks for any more is prepared, never run.
local MAX_STATEMENTS = 64 -- half the connection's cache (src/metadata/db.c)

local function read_statements(path)
  local data = read_learned(path .. ".sql")
  if not data then return {} end
  local ok, list = pcall(require("crater.json").decode, data)
  local out = {}
  for _, s in ipairs((ok and type(list) == "table") and list or {}) do
    if type(s) == "string" and #out < MAX_STATEMENTS then out[#out + 1] = s end
  end
  return out
end

-- Rewrites PATH.sql when the command used statements it lacks: those it
-- used first, then the others it had, up to MAX_STATEMENTS (what no
-- command uses any more drops out in time).  Returns the list now known.
local function learn_statements(path, known, used)
  local have = {}
  for _, s in ipairs(known) do have[s] = true end
  local new = false
  for _, s in ipairs(used) do new = new or not have[s] end
  if not new then return known end
  local all, seen = {}, {}
  for _, list in ipairs { used, known } do
    for _, s in ipairs(list) do
      if not seen[s] and #all < MAX_STATEMENTS then seen[s] = true; all[#all + 1] = s end
    end
  end
  write_private(path .. ".sql", require("crater.json").encode(all))
  return all
end

-- The shape of the spare shim a worker starts (tasks.spare): the last
-- `crater run`'s (PATH.spare, JSON), at first the foreground one, with
-- the image it ran (resolved while the worker waits).  A
-- `run -d` workload gets spares it can take, instead of spares each of its
-- commands stops.  `wanted` is false while the last command served was
-- not a `crater run`: a spare's start (two execs, a network namespace,
-- ~2 ms of CPU) then only slows the next command down (`crater version`
-- back to back: 2.1 ms with spares, 1.2 without).
local SHAPE_KEYS = { namespace = "string", runtime = "string", stdio = "string", tty = "boolean", stdin = "boolean",
  start = "boolean", wanted = "boolean" }

local function read_shape(path)
  local shape = { namespace = os.getenv("CRATER_NAMESPACE") or require("crater").DEFAULT_NAMESPACE,
    runtime = require("crater.containers").default_runtime(), stdio = "inherit", tty = false, stdin = false,
    start = true, wanted = true }
  local data = read_learned(path .. ".spare")
  if not data then return shape end
  local ok, got = pcall(require("crater.json").decode, data)
  if not (ok and type(got) == "table") then return shape end
  for k, t in pairs(SHAPE_KEYS) do
    if type(got[k]) ~= t then return shape end
  end
  if not (got.stdio == "inherit" or got.stdio == "attach" or got.stdio == "null") then return shape end
  if got.image ~= nil and type(got.image) ~= "string" then got.image = nil end
  return got
end

local function learn_shape(path, had, now)
  if now then
    now.wanted = true
    local last = require("crater.containers").last_image
    now.image = last and last.namespace == now.namespace and last.name or nil
  elseif had.wanted then
    now = {}
    for k in pairs(SHAPE_KEYS) do now[k] = had[k] end
    now.image, now.wanted = had.image, false
  else
    return
  end
  local same = had.image == now.image
  for k in pairs(SHAPE_KEYS) do same = same and had[k] == now[k] end
  if same then return end
  write_private(path .. ".spare", require("crater.json").encode(now))
end

-- A worker serves this many commands at most, and goes once its Lua heap
-- has grown past this (KB): a fresh one from the daemon costs ~1.6 ms of
-- CPU, nothing next to what a slow leak would cost in the long run.
local MAX_COMMANDS = 1000
local MAX_HEAP_KB = 64 * 1024

-- Whether the globals are still those: a command that set one (crater's
-- code sets none; luacheck checks) leaves its worker to end with it.
local function same_globals(before)
  for k, v in pairs(_G) do
    if before[k] ~= v then return false end
  end
  for k in pairs(before) do
    if rawget(_G, k) == nil then return false end
  end
  return true
end

--- The socket a daemon of this root serves, as the front end finds it:
--- $CRATER_SOCKET, else <state dir>/crater.sock.
local function socket_path(root)
  local s = os.getenv("CRATER_SOCKET")
  if s and s ~= "" then return s end
  return require("crater.containers").state_dir { root = root } .. "/crater.sock"
end

return {
  name = "daemon",
  summary = "Serve this root's crater commands from warm workers (craterd)",
  description = "Runs in the foreground until SIGTERM or SIGINT; SIGHUP replaces the idle workers, and the busy ones\n" ..
    "after their command (fresh store connections; the config and policies are read by every command\n" ..
    "anyway).  While it runs, `crater` hands every command for this root (--root before the\n" ..
    "command, or CRATER_ROOT / CRATER_STATE / CRATER_SOCKET as the daemon had them) to a worker; with\n" ..
    "CRATER_NO_DAEMON=1, or when the daemon is gone, crater runs commands itself.  Tasks do not depend\n" ..
    "on the daemon: stopping it stops no container and no command being served.\n\n" ..
    "A worker serves command after command: after each it puts its own environment, working directory,\n" ..
    "umask and signal state back and waits for the next, while at most --workers are idle (one more is\n" ..
    "forked when a command finds none).  It ends instead when the command left something that could\n" ..
    "reach the next one (a child still running, a controlling terminal, descriptors or a transaction\n" ..
    "open, a global variable), after 1000 commands, or once its Lua heap passed 64 MB.\n\n" ..
    "An idle worker keeps a spare task shim (and crater-runtime) shaped as the last `crater run`, which\n" ..
    "the next such run takes, and prepares the SQL statements the last commands used; both are learned\n" ..
    "into files beside the socket (SOCKET.spare, SOCKET.sql).  The data of the snapshots its commands\n" ..
    "remove (their metadata goes at once) is removed by a janitor process once the daemon has been idle\n" ..
    "for 200 ms (at the latest after 5 s), and when it stops; the janitor also checkpoints the metadata\n" ..
    "WAL, which the workers leave to it, once it is 1000 frames long.",
  max_args = 0,
  flags = {
    { name = "workers", type = "number", arg = "N",
      help = "idle workers: N at start, then N - 1 kept ready, at most N (default 2)" },
    { name = "socket", type = "string", arg = "PATH", help = "socket to serve (default STATE/crater.sock)" },
  },
  run = function(ctx, _, flags)
    local workers = flags.workers or 2
    if workers ~= math.floor(workers) or workers < 1 or workers > 64 then
      require("crater.cli.args").usage_error("--workers must be a whole number from 1 to 64, got %s", tostring(flags.workers))
    end
    if core.geteuid() ~= 0 then ctx:fail("crater daemon must run as root (its socket is root's)") end
    local crater = require "crater"
    local util = require "crater.util"
    -- the root must open; it is opened again in each worker (a SQLite
    -- connection must not cross a fork)
    local root = util.abs_path(ctx.root or crater.DEFAULT_ROOT)
    local probe = ctx:check(core.open(root))
    root = probe:root()
    probe:close()
    local path = util.abs_path(flags.socket) or socket_path(root)
    ctx:check(core.mkdir_p(path:match("^(.*)/[^/]*$") or ".", 457))
    local fd = ctx:check(core.daemon_listen(path))
    preload()
    local daemon_pid = core.getpid()
    io.stderr:write(string.format("crater daemon: serving %s on %s (%d workers, pid %d)\n", root, path, workers,
      daemon_pid))
    local role = ctx:check(core.daemon_serve(fd, path, workers))
    if role == "stopped" then
      -- a worker killed while it started its spare shim (an idle one,
      -- warming up) can leave the spare's dir with no shim to remove it
      pcall(require("crater.tasks").stale_prespawn, { root = root }, true)
      io.stderr:write("crater daemon: stopped\n")
      return 0
    end
    if role == "janitor" then
      -- the snapshot data the workers' commands removed (they leave it,
      -- as containerd leaves it to its GC: see the workers below), once
      -- the daemon is idle
      local ok, store = pcall(core.open, root)
      if ok and store then
        local client = crater._client(store, "default")
        -- those with data here (opening another would make its dirs)
        for _, name in ipairs(core.listdir(root .. "/snapshots") or {}) do
          local okc, sn = pcall(client.snapshots, client, name)
          if okc and sn then
            local n, err = sn:cleanup()
            if not n and err then io.stderr:write("crater daemon: cleanup ", name, ": ", tostring(err), "\n") end
          end
        end
        -- ... and the metadata WAL the workers leave (core.db_defer_checkpoints),
        -- once it is as long as SQLite's autocheckpoint lets it grow: the
        -- checkpoint syncs the database, and a command coming meanwhile
        -- waited (one every 0.2 s: 10.8 -> 15.2 ms when it ran every time)
        pcall(store.checkpoint, store, 1000)
        store:close()
      end
      os.exit(0)
    end
    -- a worker: warm up, then serve commands, one after another, until
    -- the daemon has enough idle workers (core.daemon_rejoin).  Its
    -- commits leave the WAL to the janitor, which checkpoints it while the
    -- daemon is idle (a checkpoint blocks all writers for 5-8 ms)
    core.db_defer_checkpoints(true)
    local ok, backend = pcall(core.open, root)
    if not (ok and backend) then backend = nil end
    -- ... with the statements the last commands used already prepared
    -- (the connection keeps them from one command to the next)
    local known = backend and read_statements(path) or {}
    if backend then backend:warm_statements(known) end
    local tasks, containers = require "crater.tasks", require "crater.containers"
    local served, deferred, globals = 0, 0, nil
    while true do
      if backend then crater._warm = { root = root, backend = backend } end
      -- ... and a spare shim (and runtime) for the likeliest next command,
      -- a `crater run` shaped as the last one; its `prespawn` takes it
      local shape = read_shape(path)
      if shape.wanted then
        pcall(tasks.spare, { root = root }, shape.namespace, shape.runtime, shape)
        -- ... and resolve that run's image (containers.image_info keeps
        -- it), and open the snapshotter it would be unpacked in (its
        -- probes, kept per process)
        if backend and shape.image then
          pcall(function()
            local client = crater._client(backend, shape.namespace)
            local info = containers.image_info(client, shape.image)
            local sname = require("crater.snapshotters").default(root, nil, client:policies())
            if info and info.chain_id then client:snapshots(sname):stat(info.chain_id) end
          end)
        end
      else
        tasks.drop_spare()
      end
      -- the global variables (a worker's, before its first command)
      if not globals then globals = require("crater.util").copy(_G) end
      local argv, err = core.daemon_accept(fd)
      if not argv then
        if backend then backend:close() end
        if err and not err:find("another crater build", 1, true) then io.stderr:write("crater daemon: ", err, "\n") end
        os.exit(0)
      end
      -- a removed snapshot's data stays until the janitor runs: removing
      -- it right away cost the next command on a busy host more than it
      -- saved (docs/design/daemon.md)
      core.snapshot_defer_removals(true)
      -- the log level is the client's (CRATER_LOG, then its --debug)
      core.set_log_level("warn")
      if os.getenv("CRATER_LOG") then core.set_log_level(os.getenv("CRATER_LOG")) end
      crater.served_by = { pid = daemon_pid, socket = path, worker = core.getpid() } -- `crater version` shows it
      local rc = require("crater.cli").main(argv)
      core.daemon_finish(rc)
      served = served + 1
      if core.snapshot_deferred() > deferred then
        deferred = core.snapshot_deferred()
        core.daemon_note_cleanup()
      end
      -- the client has its exit code: learn the statements this command
      -- prepared that the next workers do not know yet
      if backend then known = learn_statements(path, known, backend:statements()) end
      learn_shape(path, shape, tasks.spare_shape())
      -- back to idle for the next command (counted idle at once, so that
      -- the daemon forks none in its place), with nothing of this one
      -- kept: what it learned for learn_shape, the caches of files it may
      -- have changed (docker config, the seccomp profile), its mount
      -- namespaces (held past the exit code: crater.tasks; let go after,
      -- each close waits for RCU grace periods).  Unless it left something
      -- that could reach the next one: global variables, an open
      -- transaction (or a closed store); or it is time for a fresh worker
      -- (memory, count)
      tasks.forget_shape()
      containers.last_image = nil
      require("crater.auth").clear_cache()
      require("crater.oci").clear_cache()
      crater.served_by = nil
      local reuse = served < MAX_COMMANDS and collectgarbage("count") < MAX_HEAP_KB and
        same_globals(globals) and not (backend and (not pcall(backend.root, backend) or backend:in_transaction()))
      reuse = reuse and core.daemon_rejoin()
      tasks.release_held()
      if not reuse then
        -- leave without closing the Lua state: that would free, page by
        -- page, the heap inherited from the daemon (~1 ms of copy-on-write
        -- faults, taken from the next command on a busy host).  The store
        -- is closed first (its checkpoint when one is due); anything else
        -- ends with the process (an unused spare shim gets EOF and removes
        -- itself).
        if backend then pcall(backend.close, backend) end
        os.exit(rc)
      end
    end
  end,
}
