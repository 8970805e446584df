-- Process, port and temp-dir helpers for busted specs.
--
-- Plain LuaJIT has no sockets and no process control beyond io.popen and
-- os.execute, so everything here goes through /bin/sh (and python3 for the
-- socket bits).  Spawned servers are tracked: proc.cleanup() kills every
-- process still running and removes every temp dir made here.  Specs must
-- still stop what they start in `teardown` (or `finally`); cleanup() is the
-- safety net, run when the Lua state closes (busted exits with
-- os.exit(code, true)) and by a per-process watchdog that kills a server
-- when the Lua process that spawned it is gone (ctest timeout, ^C, crash).
--
--   local proc = require "support.proc"
--   local res = proc.run("skopeo inspect --raw oci:" .. dir .. ":busybox")
--   assert(res.ok, res.stderr)            -- res.code, res.stdout, res.stderr
--   local p = proc.spawn("docker-registry serve cfg.yml", {dir = tmp})
--   assert(proc.wait_port("127.0.0.1", port, 10))
--   proc.kill(p.pid)                       -- TERM the group, wait, KILL
local M = {}

local tracked_pids = {}   -- pid -> true while we believe it is running
local tracked_dirs = {}   -- path -> true until removed

---Quotes a string for /bin/sh.
---@param s string|number
---@return string
function M.quote(s)
  s = tostring(s)
  if s:match("^[%w%._/:=@%%+,-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

---Reads a whole file; nil, msg if it cannot be opened.
function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

---Writes (replaces) a file.
function M.write_file(path, data, mode)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  if mode then M.run("chmod " .. mode .. " " .. M.quote(path)) end
  return path
end

local function tmpname()
  local t = os.tmpname()  -- creates the file; we only want a unique name
  return t
end

---Runs a shell command and waits for it.
---@param cmd string shell command line (run by /bin/sh)
---@param opts? {stdin?:string, env?:table<string,string>, cwd?:string}
---@return {ok:boolean, code:integer, stdout:string, stderr:string}
function M.run(cmd, opts)
  opts = opts or {}
  local out, err, rc = tmpname(), tmpname(), tmpname()
  local prefix = ""
  for k, v in pairs(opts.env or {}) do
    prefix = prefix .. "export " .. k .. "=" .. M.quote(v) .. "; "
  end
  if opts.cwd then prefix = prefix .. "cd " .. M.quote(opts.cwd) .. " && " end
  local stdin = "/dev/null"
  local infile
  if opts.stdin then
    infile = tmpname()
    M.write_file(infile, opts.stdin)
    stdin = infile
  end
  local line = string.format("( %s%s\n) <%s >%s 2>%s; echo $? >%s",
    prefix, cmd, stdin, out, err, rc)
  os.execute(line)
  local res = {
    stdout = M.read_file(out) or "",
    stderr = M.read_file(err) or "",
    code = tonumber((M.read_file(rc) or ""):match("%d+")) or -1,
  }
  res.ok = res.code == 0
  os.remove(out); os.remove(err); os.remove(rc)
  if infile then os.remove(infile) end
  return res
end

---Runs a command that must succeed; raises with its stderr otherwise.
---@return string stdout
function M.check(cmd, opts)
  local res = M.run(cmd, opts)
  if not res.ok then
    error(string.format("command failed (exit %d): %s\n%s%s", res.code, cmd,
      res.stdout, res.stderr), 2)
  end
  return res.stdout
end

-- Our own pid (the luajit process), for the watchdogs.
local self_pid
local function owner_pid()
  if not self_pid then
    -- popen runs `sh -c`; its parent is this Lua process.
    local f = io.popen("echo $PPID")
    self_pid = tonumber(f:read("*l"))
    f:close()
  end
  return self_pid
end
M.owner_pid = owner_pid

---Tells whether a process exists and is not a zombie.
---@param pid integer
function M.alive(pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

---Tells whether /proc still has an entry for pid (zombies included).
function M.exists(pid)
  return M.read_file("/proc/" .. pid .. "/stat") ~= nil
end

---Sleeps (fractional seconds allowed).
function M.sleep(s)
  os.execute("sleep " .. tostring(s))
end

---Starts a command in the background in its own session (so its pid is
---also its process group id) with stdout/stderr going to files.
---@param cmd string shell command line
---@param opts? {dir?:string, stdout?:string, stderr?:string, cwd?:string, env?:table<string,string>, name?:string}
---@return {pid:integer, stdout:string, stderr:string}
function M.spawn(cmd, opts)
  opts = opts or {}
  local dir = opts.dir or M.tmpdir("crater-spawn")
  local name = opts.name or "proc"
  local out = opts.stdout or (dir .. "/" .. name .. ".out")
  local err = opts.stderr or (dir .. "/" .. name .. ".err")
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. M.quote(v) .. " " end
  if env ~= "" then env = "export " .. env .. "; " end
  local cd = opts.cwd and ("cd " .. M.quote(opts.cwd) .. " && ") or ""
  local inner = cd .. env .. "exec " .. cmd
  -- The background job is not a process-group leader, so setsid execs in
  -- place and $! is the server's pid (= its pgid and sid).
  local line = string.format("setsid sh -c %s </dev/null >%s 2>%s & echo $!",
    M.quote(inner), M.quote(out), M.quote(err))
  local f = io.popen(line)
  local pid = tonumber(f:read("*l"))
  f:close()
  assert(pid, "spawn failed: " .. cmd)
  tracked_pids[pid] = true
  -- Watchdog: kills the server's group once the Lua process is gone, so
  -- nothing outlives an interrupted busted run; it exits with the server.
  local owner = owner_pid()
  local dog = string.format(
    "while kill -0 %d 2>/dev/null && kill -0 %d 2>/dev/null; do sleep 1; done; " ..
    "if kill -0 %d 2>/dev/null; then kill -TERM -%d %d 2>/dev/null; sleep 3; kill -KILL -%d %d 2>/dev/null; fi",
    owner, pid, pid, pid, pid, pid, pid)
  os.execute(string.format("setsid sh -c %s </dev/null >/dev/null 2>&1 &", M.quote(dog)))
  return { pid = pid, stdout = out, stderr = err, dir = dir }
end

---Stops a process (and its process group): SIGTERM, wait up to
---opts.timeout seconds (default 10), then SIGKILL and wait again.  Returns
---true once the process is gone (a zombie awaiting init counts as gone).
---@param pid integer
---@param opts? {signal?:string, timeout?:number}
function M.kill(pid, opts)
  opts = opts or {}
  local sig = opts.signal or "TERM"
  local timeout = opts.timeout or 10
  if M.alive(pid) then
    os.execute(string.format("kill -%s -%d %d 2>/dev/null", sig, pid, pid))
    if not M.wait_gone(pid, timeout) then
      os.execute(string.format("kill -KILL -%d %d 2>/dev/null", pid, pid))
      M.wait_gone(pid, 5)
    end
  end
  tracked_pids[pid] = nil
  return not M.alive(pid)
end

---Waits until pid is gone; true if it went within timeout seconds.
function M.wait_gone(pid, timeout)
  local deadline = os.time() + (timeout or 10) + 1
  local delay = 0.02
  while M.alive(pid) do
    if os.time() > deadline then return false end
    M.sleep(delay)
    if delay < 0.2 then delay = delay * 2 end
  end
  return true
end

local python
---The python3 interpreter to use (the system one: no pyenv shim latency).
function M.python()
  if not python then
    python = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"
  end
  return python
end

---Returns a TCP port on host (default 127.0.0.1) that is free right now.
---The kernel picks it (bind to port 0); there is a small race until the
---caller binds it, which is why servers that can bind port 0 themselves
---(fakereg.py) report their port instead.
---@param host? string
---@return integer
function M.free_port(host)
  local out = M.check(M.python() .. " -c " .. M.quote(
    "import socket;s=socket.socket();s.bind(('" .. (host or "127.0.0.1") ..
    "',0));print(s.getsockname()[1]);s.close()"))
  return assert(tonumber(out:match("%d+")))
end

---Tells whether nothing listens on host:port (we can bind it).
function M.port_free(port, host)
  local res = M.run(M.python() .. " -c " .. M.quote(
    "import socket,sys\ns=socket.socket()\n" ..
    "try:\n s.bind(('" .. (host or "127.0.0.1") .. "'," .. port .. "))\n" ..
    "except OSError:\n sys.exit(1)\n"))
  return res.ok
end

---Waits until a TCP connect to host:port succeeds.
---@return boolean|nil ok, string? err
function M.wait_port(host, port, timeout)
  local script = string.format([[
import socket,sys,time
end=time.time()+%f
while True:
    try:
        socket.create_connection((%q,%d),timeout=1).close(); sys.exit(0)
    except OSError:
        if time.time()>end: sys.exit(1)
        time.sleep(0.05)
]], timeout or 10, host, port)
  local res = M.run(M.python() .. " -c " .. M.quote(script))
  if res.ok then return true end
  return nil, string.format("%s:%d did not accept connections within %ss", host, port, timeout or 10)
end

---Makes a fresh temp dir (tracked: removed by proc.cleanup()).
---@param prefix? string
---@return string path
function M.tmpdir(prefix)
  local base = os.getenv("TMPDIR") or "/tmp"
  local out = M.check("mktemp -d " .. M.quote(base .. "/" .. (prefix or "crater-spec") .. ".XXXXXX"))
  local path = out:gsub("%s+$", "")
  tracked_dirs[path] = true
  return path
end

---Removes a dir made by tmpdir() (refuses anything else).
function M.rmdir(path)
  if not path then return end
  assert(tracked_dirs[path] or path:match("^/tmp/") , "rmdir: not a temp dir: " .. path)
  os.execute("rm -rf " .. M.quote(path))
  tracked_dirs[path] = nil
end

---Stops tracking a temp dir so cleanup() leaves it (for debugging).
function M.keep(path)
  tracked_dirs[path] = nil
end

---Kills every tracked process and removes every tracked temp dir.
---Idempotent; specs call their own stop() first, this is the safety net.
function M.cleanup()
  for pid in pairs(tracked_pids) do M.kill(pid, { timeout = 3 }) end
  for path in pairs(tracked_dirs) do M.rmdir(path) end
end

---Pids still tracked (started and not yet killed), for assertions.
function M.running()
  local t = {}
  for pid in pairs(tracked_pids) do
    if M.alive(pid) then t[#t + 1] = pid end
  end
  return t
end

-- Run cleanup() when the Lua state closes (busted exits through
-- os.exit(code, true), which closes the state and runs finalizers).
local sentinel = newproxy(true)
getmetatable(sentinel).__gc = function() pcall(M.cleanup) end
M._sentinel = sentinel

return M
