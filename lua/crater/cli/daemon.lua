--- crater daemon: serve this root's commands from warm workers (craterd).
---
--- The daemon binds <state>/crater.sock (mode 0600: root only; the same path
--- the `crater` front end looks for) and keeps --workers processes forked
--- from itself, each with the modules loaded and the store open, waiting
--- for a command.  `crater` hands a command to one of them with its stdio,
--- working directory, environment and umask, and gets its exit code back;
--- without a daemon it runs the command itself.  Either way the same code
--- runs the command, in a process of its own (docs/design/daemon.md).
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
  description = "Runs in the foreground until SIGTERM or SIGINT; SIGHUP replaces the idle workers (fresh store\n" ..
    "connections; the config and policies are read by every command anyway).  While it runs, `crater`\n" ..
    "hands every command for this root (--root before the\n" ..
    "command, or CRATER_ROOT / CRATER_STATE / CRATER_SOCKET as the daemon had them) to a worker; with\n" ..
    "CRATER_NO_DAEMON=1, or when the daemon is gone, crater runs commands itself.  Tasks do not depend\n" ..
    "on the daemon: stopping it stops no container and no command being served.",
  max_args = 0,
  flags = {
    { name = "workers", type = "number", arg = "N", help = "idle workers kept ready (default 2)" },
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
      io.stderr:write("crater daemon: stopped\n")
      return 0
    end
    -- a worker: warm up, then serve one command and exit with it
    local ok, backend = pcall(core.open, root)
    if ok and backend then crater._warm = { root = root, backend = backend } end
    -- ... and start a spare shim (and runtime) for the likeliest next
    -- command, `crater run` in the foreground; its `prespawn` takes it
    pcall(require("crater.tasks").spare, { root = root }, os.getenv("CRATER_NAMESPACE") or crater.DEFAULT_NAMESPACE,
      require("crater.containers").default_runtime(), { stdio = "inherit", tty = false, stdin = false, start = true })
    local argv, err = core.daemon_accept(fd)
    if not argv then
      if crater._warm then crater._warm.backend:close() end
      if err and not err:find("another crater build", 1, true) then io.stderr:write("crater daemon: ", err, "\n") end
      os.exit(0)
    end
    -- the log level is the client's (CRATER_LOG, then its --debug)
    core.set_log_level("warn")
    if os.getenv("CRATER_LOG") then core.set_log_level(os.getenv("CRATER_LOG")) end
    crater.served_by = { pid = daemon_pid, socket = path } -- `crater version` shows it
    return require("crater.cli").main(argv)
  end,
}
