-- `crater daemon` for the functional specs: start one on an env's root
-- (its socket: ROOT/run/crater.sock), stop it.  With CRATER_SPEC_DAEMON=1
-- (the "@daemon" ctest runs) support.cli's and run_spec's envs start one
-- each, so every command of those specs goes through a worker.
local proc = require "support.proc"

local q = proc.quote
local M = {}

M.enabled = os.getenv("CRATER_SPEC_DAEMON") == "1"

--- A shell filter for a listing of a tasks dir: drops the spare shims'
--- dirs (.prespawn--spare.N-PID) that a daemon's idle workers keep, which
--- are no task's leftovers.
M.NO_SPARES = " | grep -v '^\\.prespawn--spare\\.'"

function M.wait_until(fn, secs)
  for _ = 1, (secs or 5) * 20 do
    if fn() then return true end
    proc.sleep(0.05)
  end
  return false
end

--- Pids of pid's children, sorted (a daemon's: its workers).
function M.children(pid)
  local out = {}
  for c in proc.run("pgrep -P " .. pid).stdout:gmatch("%d+") do
    -- not the daemon's janitor (it cleans up while the daemon is idle)
    if (proc.read_file("/proc/" .. c .. "/comm") or "") ~= "crater-janitor\n" then out[#out + 1] = tonumber(c) end
  end
  table.sort(out)
  return out
end

--- Starts `crater daemon` on env's root (env: :cmdline(args), :crater(args),
--- .dir, .root; its stderr: DIR/daemon.log), waits for its socket and
--- workers and checks that it serves the env's commands.  Returns its pid
--- (env.daemon).  Started with proc.spawn: tracked, so a spec that never
--- cleans its env up still leaves no daemon behind (proc.cleanup, and the
--- watchdog when busted itself dies).
function M.start(env, extra)
  local log = env.dir .. "/daemon.log"
  local pid = proc.spawn(env:cmdline { "daemon" } .. " " .. (extra or ""),
    { dir = env.dir, name = "daemon", stderr = log }).pid
  assert(M.wait_until(function() return proc.run("test -S " .. q(env.root .. "/run/crater.sock")).ok end),
    "crater daemon did not start: " .. (proc.read_file(log) or ""))
  local workers = tonumber((extra or ""):match("%-%-workers[ =](%d+)") or 2)
  M.wait_until(function() return #M.children(pid) >= workers end)
  local v = env:crater { "version" } -- it says who served it
  assert(v.stdout:match("served by crater daemon " .. pid .. " "), "not served by the daemon: " .. v.stdout .. v.stderr)
  env.daemon = pid
  return pid
end

--- Stops env's daemon (SIGTERM, or sig) and waits for it to go.
function M.stop(env, sig)
  if env.daemon then proc.kill(env.daemon, { signal = sig or "TERM" }) end
  env.daemon = nil
end

--- Gives an Env class start_daemon and stop_daemon.
function M.mixin(Env)
  Env.start_daemon, Env.stop_daemon = M.start, M.stop
end

return M
