-- crater daemon: commands handed by the `crater` front end to warm workers
-- behave as the embedded ones (stdio, exit codes, working directory,
-- environment, signals, terminal), a killed client takes its command with
-- it, and crater runs commands itself when no daemon answers.  Real
-- containers, as root.
local proc = require "support.proc"
local R = require "functional.run_spec"

local q = proc.quote
local BUILD = os.getenv("CRATER_BUILD") or "build"
local PTYRUN = (os.getenv("CRATER_SRC") or ".") .. "/spec/support/ptyrun.py"
local is_root = proc.run("id -u").stdout:match("^0") ~= nil
if not is_root then
  describe("crater daemon", function() pending("needs root (real containers, a root-only socket)") end)
  return
end

local wait_until, children = R.wait_until, R.children

describe("crater daemon", function()
  local env, daemon, sock

  -- the daemon that served `crater version` (its pid), or nil when crater
  -- ran it itself; and the worker
  local function served_by(opts)
    local out = env:crater({ "version" }, opts).stdout
    return tonumber(out:match("served by crater daemon (%d+)")), tonumber(out:match("%(worker (%d+)%)"))
  end

  -- the worker serving the command whose stderr is the file err (idle
  -- workers have the daemon's working directory, env.dir too, so that
  -- alone picked an idle one at times)
  local function busy_worker(err)
    for _, c in ipairs(children(daemon)) do
      if proc.run("readlink /proc/" .. c .. "/fd/2").stdout == err .. "\n" then return c end
    end
    return nil
  end

  -- whether the background command writing OUT.rc has: the shell creates
  -- the file before it writes the status into it
  local function exited(out)
    return (proc.read_file(out .. ".rc") or ""):match("\n$") ~= nil
  end

  -- starts `crater ARGS` in the background in env.dir, its exit status to
  -- NAME.rc and stderr to NAME.err; returns the worker serving it
  local function background(name, args)
    local out = env.dir .. "/" .. name
    proc.run("cd " .. q(env.dir) .. " && ( " .. env:cmd(args) .. " >/dev/null 2>" .. q(out .. ".err") ..
      "; echo $? >" .. q(out .. ".rc") .. " ) &")
    local worker
    assert.is_true(wait_until(function() worker = busy_worker(out .. ".err"); return worker ~= nil end))
    return worker, out
  end

  before_each(function()
    env = R.env("crater")
    sock = env.root .. "/run/crater.sock"
    daemon = env:start_daemon()
  end)
  after_each(function() env:cleanup() end) -- stops the daemon too

  it("serves commands from its workers through a root-only socket", function()
    local st = proc.check("stat -c '%a %U %F' " .. q(sock))
    assert.are.equal("600 root socket\n", st)
    assert.are.equal(daemon, served_by())
    assert.is_nil(served_by { env = { CRATER_NO_DAEMON = "1" } })
    local r = env:crater { "run", "-d", "--rootfs", env.rootfs, "c1", "sleep", "30" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("c1\n", r.stdout)
    assert.matches("c1%s+%d+%s+RUNNING", env:crater({ "task", "ls" }).stdout)
    env:crater { "task", "kill", "-s", "KILL", "c1" }
    assert.are.equal(137, env:crater({ "task", "wait", "c1" }).code)
    assert.are.equal(0, env:crater({ "container", "rm", "c1" }).code)
  end)

  it("gives the command the client's stdio, exit code, directory and environment", function()
    local r = env:run("io", {}, { "sh", "-c", "echo out; echo err >&2; exit 42" })
    assert.are.equal(42, r.code)
    assert.are.equal("out\n", r.stdout)
    assert.are.equal("err\n", r.stderr)
    r = env:run("in", { "-i" }, { "sh", "-c", "wc -c; cat" }, { stdin = ("x"):rep(100000) .. "tail" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^%s*100004\n$", r.stdout)
    -- a closed stdin is an empty one (not the daemon's socket, which took
    -- the free descriptor 0 and hung `cat` in the container)
    r = proc.run("timeout -k 5 20 " .. env:cmd { "run", "--rm", "-i", "--rootfs", env.rootfs, "closed", "cat" } .. " <&-")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
    -- a relative --env-file and -e NAME are the client's
    proc.write_file(env.dir .. "/vars.env", "FROM_FILE=1\n")
    r = proc.run("cd " .. q(env.dir) .. " && " .. env:cmd { "run", "--rm", "--rootfs", env.rootfs, "--env-file",
      "vars.env", "-e", "FROM_HOST", "envs", "sh", "-c", "echo $FROM_FILE $FROM_HOST" }, { env = { FROM_HOST = "h" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1 h\n", r.stdout)
    -- usage errors and their exit code
    r = env:crater { "run", "--memory", "abc", "--rootfs", env.rootfs, "bad", "true" }
    assert.are.equal(2, r.code)
    assert.matches("%-%-memory", r.stderr)
  end)

  -- a worker serves command after command: each becomes the client's
  -- (stdio, directory, environment), and between them the worker is its
  -- own again, so that nothing of one command reaches the next, nor the
  -- spare shim it starts meanwhile
  it("serves command after command from one worker, none with anything of the last one's", function()
    env:stop_daemon()
    daemon = env:start_daemon("--workers 1")
    local _, w = served_by()
    assert.is_not_nil(w)
    local dir_a, dir_b = env.dir .. "/a", env.dir .. "/b"
    proc.check("mkdir -p " .. q(dir_a) .. " " .. q(dir_b))
    proc.write_file(dir_a .. "/vars.env", "FROM=a\n")
    proc.write_file(dir_b .. "/vars.env", "FROM=b\n")
    local function run_in(dir, name, envs, stdin)
      return proc.run("cd " .. q(dir) .. " && " .. env:cmd { "run", "--rm", "-i", "--rootfs", env.rootfs, "--env-file",
        "vars.env", "-e", "LEAK", name, "sh", "-c", "echo $FROM ${LEAK:-none}; cat" }, { env = envs, stdin = stdin })
    end
    local r = run_in(dir_a, "one", { LEAK = "from-one" }, "in-one")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("a from-one\nin-one", r.stdout)
    r = run_in(dir_b, "two", {}, "in-two")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("b none\nin-two", r.stdout)
    -- stdin read to its end by one command, then another's
    for _, text in ipairs { "first blob", "second blob" } do
      r = env:crater({ "content", "ingest", "-" }, { stdin = text })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("sha256:" .. proc.check("printf %s " .. q(text) .. " | sha256sum"):match("^(%x+)") .. "\n", r.stdout)
    end
    -- all served by that one worker, which is idle again in the daemon's
    -- directory, with the daemon's environment: the spare shim it starts
    -- after a `crater run` has it
    assert.are.same({ daemon, w }, { served_by() })
    r = run_in(dir_a, "three", { LEAK = "from-three" }, "")
    assert.are.equal("a from-three\n", r.stdout)
    assert.are.same({ w }, children(daemon))
    local cwd = proc.check("readlink /proc/" .. daemon .. "/cwd")
    assert.is_true(wait_until(function() return proc.run("readlink /proc/" .. w .. "/cwd").stdout == cwd end))
    local spare
    assert.is_true(wait_until(function()
      local d = proc.run("ls -d " .. q(env.root .. "/run/tasks/default") .. "/.prespawn--spare.*-" .. w .. " 2>/dev/null")
        .stdout:match("[^\n]+")
      spare = d and tonumber(proc.read_file(d .. "/shim.pid") or "")
      return spare ~= nil and proc.alive(spare)
    end))
    local senv = proc.check("tr '\\0' '\\n' < /proc/" .. spare .. "/environ")
    assert.is_nil(senv:match("LEAK="), senv)
    assert.are.equal(cwd, proc.check("readlink /proc/" .. w .. "/cwd"))
  end)

  it("forks no worker for commands one after another; keeps at most --workers idle", function()
    local before = children(daemon)
    assert.are.equal(2, #before)
    for i = 1, 6 do
      local r = env:crater { "run", "--rm", "--rootfs", env.rootfs, "seq" .. i, "true" }
      assert.are.equal(0, r.code, r.stderr)
    end
    assert.are.equal(0, env:crater({ "container", "ls" }).code)
    assert.is_true(wait_until(function() return #children(daemon) == 2 end))
    assert.are.same(before, children(daemon))
    -- a burst: workers forked for it, then no more than two idle again
    local pids = {}
    for i = 1, 6 do
      pids[#pids + 1] = proc.spawn(env:cmdline { "run", "--rm", "--rootfs", env.rootfs, "burst" .. i, "sleep", "1" },
        { dir = env.dir, name = "burst" .. i }).pid
    end
    assert.is_true(wait_until(function() return #children(daemon) >= 6 end), "workers: " .. #children(daemon))
    for _, p in ipairs(pids) do assert.is_true(wait_until(function() return not proc.alive(p) end)) end
    assert.is_true(wait_until(function() return #children(daemon) == 2 end), "workers: " .. #children(daemon))
    assert.are.equal("", env:crater({ "container", "ls", "-q" }).stdout)
  end)

  it("forwards the client's signals to the command", function()
    local r = proc.run("( " .. env:cmd { "run", "--rm", "--rootfs", env.rootfs, "sig", "sh", "-c",
      "trap 'echo got TERM; exit 3' TERM; echo ready; sleep 20 & wait" } .. " & p=$!; sleep 1; kill -TERM $p; wait $p )")
    assert.are.equal(3, r.code, r.stderr)
    assert.are.equal("ready\ngot TERM\n", r.stdout)
  end)

  it("runs a terminal session through a worker", function()
    local r = proc.run("python3 " .. q(PTYRUN) .. " " .. env:cmd { "run", "--rm", "-t", "-i", "--rootfs", env.rootfs,
      "tty1", "sh", "-c", "tty; read x; echo \"got $x\"; stty size; exit 5" })
    assert.are.equal(5, r.code, r.stderr)
    assert.matches("/dev/pts/%d+\n.*got hello\n33 101\n", r.stdout)
  end)

  it("ends the command of a killed client; its task survives", function()
    local worker, out = background("k1", { "run", "--rootfs", env.rootfs, "k1", "sleep", "60" })
    assert.is_true(wait_until(function() return env:crater({ "task", "ls", "-q" }).stdout:match("k1") ~= nil end))
    -- the front end (its shell's command line says the same)
    local client = tonumber(proc.check("for p in $(pgrep -f " .. q("rootfs " .. env.rootfs .. " k1 sleep") ..
      "); do [ \"$(cat /proc/$p/comm)\" = crater ] && echo $p; done; true"):match("%d+"))
    assert.are_not.equal(worker, client)
    proc.run("kill -9 " .. client)
    -- an embedded crater would have died with the client: so does the worker
    assert.is_true(wait_until(function() return not proc.alive(worker) end))
    assert.is_true(wait_until(function() return exited(out) end))
    assert.are.equal("137\n", proc.read_file(out .. ".rc"))
    assert.matches("k1%s+%d+%s+RUNNING", env:crater({ "task", "ls" }).stdout)
    env:crater { "task", "kill", "-s", "KILL", "k1" }
    assert.are.equal(137, env:crater({ "task", "wait", "k1" }).code)
  end)

  it("passes on the death of a worker by a signal, or its loss", function()
    -- the client's exit status, as its shell sees it, and its stderr
    local function served(sig)
      local id = "w" .. sig
      local worker, out = background(id, { "run", "--rootfs", env.rootfs, id, "sleep", "60" })
      proc.run("kill -" .. sig .. " " .. worker)
      assert.is_true(wait_until(function() return exited(out) end))
      env:crater { "task", "kill", "-s", "KILL", id }
      env:crater { "task", "rm", "-f", id }
      env:crater { "container", "rm", id }
      return proc.read_file(out .. ".rc"), proc.read_file(out .. ".err")
    end
    -- dying of a signal, the worker tells its client, which dies of it too
    local rc = served("QUIT")
    assert.are.equal("131\n", rc)
    -- gone without a word (SIGKILL): the client says so
    local err
    rc, err = served("KILL")
    assert.are.equal("1\n", rc)
    assert.matches("without an exit status", err)
  end)

  it("lets crater run commands itself when no daemon answers; tasks outlive a killed daemon", function()
    -- stopped: the socket goes, commands run embedded
    env:stop_daemon()
    assert.is_false(proc.run("test -e " .. q(sock)).ok)
    assert.is_nil(served_by())
    local r = env:run("e1", {}, { "echo", "alone" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("alone\n", r.stdout)
    -- killed: the socket stays and nobody answers: crater runs embedded;
    -- the idle workers went with the daemon, a task started through it
    -- keeps running and is found and waited for without it
    daemon = env:start_daemon()
    r = env:crater { "run", "-d", "--rootfs", env.rootfs, "kept", "sh", "-c", "sleep 1; exit 7" }
    assert.are.equal(0, r.code, r.stderr)
    local workers = children(daemon)
    env:stop_daemon("KILL")
    assert.is_true(wait_until(function()
      for _, w in ipairs(workers) do if proc.alive(w) then return false end end
      return true
    end))
    assert.is_true(proc.run("test -S " .. q(sock)).ok)
    assert.is_nil(served_by())
    r = env:run("e2", {}, { "echo", "still" })
    assert.are.equal("still\n", r.stdout)
    assert.matches("kept%s+%d+%s+RUNNING", env:crater({ "task", "ls" }).stdout)
    assert.are.equal(7, env:crater({ "task", "wait", "kept" }).code)
    assert.are.equal(0, env:crater({ "task", "rm", "kept" }).code)
    assert.are.equal(0, env:crater({ "container", "rm", "kept" }).code)
    -- a new daemon takes the socket over
    daemon = env:start_daemon()
    assert.are.equal(daemon, served_by())
  end)

  it("runs a command itself when the daemon goes before a worker took it", function()
    -- no worker accepts (stopped), so the request waits in the backlog
    -- until the daemon stops: nothing of it ran, and crater runs it
    local workers = children(daemon)
    for _, w in ipairs(workers) do proc.run("kill -STOP " .. w) end
    local out = env.dir .. "/backlog"
    proc.run("( " .. env:cmd { "run", "--rm", "--rootfs", env.rootfs, "bl", "echo", "ran once" } .. " >" .. q(out) ..
      " 2>&1; echo $? >>" .. q(out) .. " ) &")
    proc.sleep(0.5)
    assert.are.equal("", proc.read_file(out) or "")
    env:stop_daemon() -- also kills the stopped workers
    assert.is_true(wait_until(function() return (proc.read_file(out) or ""):match("\n%d+\n$") ~= nil end))
    assert.are.equal("ran once\n0\n", proc.read_file(out))
  end)

  it("survives requests that are not crater's and says what was wrong", function()
    -- raw connections: wrong magic, no descriptors, a cut-short payload, an
    -- absurd length, a malformed payload, nothing at all
    local script = [[
import array, os, socket, struct, sys
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s
def fds():
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2, os.open("/", os.O_RDONLY)]))]
def send(data, with_fds=True, close=True):
    s = conn()
    if with_fds:
        s.sendmsg([data], fds())
    else:
        s.sendall(data)
    if close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        try:
            d = s.recv(100)
        except ConnectionResetError:  # closed with our bytes unread
            break
        if not d:
            break
        out += d
    s.close()
    return out
head = lambda n: b"CRATRCL1" + struct.pack("=I", n)
print(send(b"GET / HTTP/1.1\r\n\r\n"))
print(send(head(5) + b"a\0b\0c", with_fds=False))
print(send(head(100) + b"1:2\0"))
print(send(head(1 << 30)))
print(send(head(6) + b"x\0y\0z\0"))
print(send(b""))
]]
    proc.write_file(env.dir .. "/raw.py", script)
    local r = proc.run("python3 " .. q(env.dir .. "/raw.py") .. " " .. q(sock))
    assert.are.equal(0, r.code, r.stderr)
    -- nothing ran: no "run" and no "exit" came back to any of them
    assert.is_nil(r.stdout:find("run", 1, true))
    assert.is_nil(r.stdout:find("exit", 1, true))
    -- the daemon still serves, and its log says what each was
    assert.are.equal(daemon, served_by())
    local log = proc.read_file(env.dir .. "/daemon.log") or ""
    assert.matches("not a crater request", log)
    assert.matches("a request without its 4 descriptors", log)
    assert.matches("a request cut short", log)
    assert.matches("a malformed request", log)
  end)

  it("refuses a second daemon, and clients that are not root or of another build", function()
    local r = env:crater { "daemon" }
    assert.are.equal(1, r.code)
    assert.matches("already serves", r.stderr)
    -- three started at once: one serves, the others say so and exit (each
    -- could find nobody answering; the lock beside the socket decides)
    env:stop_daemon()
    local log = env.dir .. "/race.log"
    local pids = {}
    for p in proc.check("for i in 1 2 3; do " .. env:cmdline { "daemon" } .. " </dev/null >>" .. q(log) ..
      " 2>&1 & echo $!; done"):gmatch("%d+") do pids[#pids + 1] = tonumber(p) end
    finally(function() -- the losers, should any be left
      for _, p in ipairs(pids) do if p ~= env.daemon and proc.alive(p) then proc.run("kill -9 " .. p) end end
    end)
    assert.is_true(wait_until(function()
      local alive = 0
      for _, p in ipairs(pids) do if proc.alive(p) then alive = alive + 1 end end
      return alive == 1
    end))
    proc.sleep(0.3)
    local alive = {}
    for _, p in ipairs(pids) do if proc.alive(p) then alive[#alive + 1] = p end end
    assert.are.equal(1, #alive, proc.read_file(log))
    assert.are.equal(alive[1], served_by())
    local _, refused = (proc.read_file(log) or ""):gsub("already serves", "")
    assert.are.equal(2, refused, proc.read_file(log))
    env.daemon, daemon = alive[1], alive[1]
    -- the socket is root's: another user cannot even connect
    r = proc.run("setpriv --reuid 65534 --regid 65534 --clear-groups python3 -c " ..
      q("import socket; s = socket.socket(socket.AF_UNIX); s.connect('" .. sock .. "')"))
    assert.are_not.equal(0, r.code)
    assert.matches("Permission denied", r.stderr)
    -- a front end whose crater-embedded is another file runs that one itself
    local copy = env.dir .. "/crater-embedded"
    proc.check("cp " .. q(BUILD .. "/bin/crater-embedded") .. " " .. q(copy))
    assert.is_nil(served_by { env = { CRATER_EMBEDDED = copy } })
    -- and so does one that brings Lua sources of its own (a worker has the
    -- daemon's loaded)
    assert.is_nil(served_by { env = { CRATER_LUA_DIR = (os.getenv("CRATER_SRC") or ".") .. "/lua" } })
    r = env:crater({ "version" }, { env = { CRATER_EMBEDDED = copy } })
    assert.are.equal(0, r.code, r.stderr)
  end)

  -- each idle worker keeps a spare shim (and crater-runtime, waiting for
  -- "go") for the next foreground `crater run`, which takes it and gives
  -- it the container's id; another command stops it, and so does the end
  -- of the worker
  it("keeps a spare shim for the next `crater run`, which takes it", function()
    local tasks = env.root .. "/run/tasks/default"
    -- the dirs of worker w's spares (.prespawn--spare.N-W)
    local function spare_dirs(w)
      local out = {}
      for name in proc.run("ls -A " .. q(tasks) .. " 2>/dev/null").stdout:gmatch("[^\n]+") do
        if name:match("^%.prespawn%-%-spare%.%d+%-" .. w .. "$") then out[#out + 1] = tasks .. "/" .. name end
      end
      return out
    end
    -- the spares' shim pids (and dirs), by the worker keeping them
    local function spares()
      local out, dirs, n = {}, {}, 0
      for _, w in ipairs(children(daemon)) do
        for _, d in ipairs(spare_dirs(w)) do
          local pid = tonumber(proc.read_file(d .. "/shim.pid") or "")
          if pid and proc.alive(pid) then out[w] = pid; dirs[w] = d; n = n + 1 end
        end
      end
      return out, n, dirs
    end
    -- while the last command served is not a `crater run` (here `crater
    -- version`, from start_daemon), fresh workers keep no spare: its start
    -- would only slow the next command down
    -- new workers, once the last command served has said what it was
    -- (SOCKET.spare: a worker writes it after its exit code went)
    local function fresh_workers(wanted, stdio)
      assert.is_true(wait_until(function()
        local ok, sp = pcall(require("crater.json").decode, proc.read_file(sock .. ".spare") or "")
        return ok and type(sp) == "table" and sp.wanted == wanted and (stdio == nil or sp.stdio == stdio)
      end), "SOCKET.spare: " .. tostring(proc.read_file(sock .. ".spare")))
      local old = children(daemon)
      proc.run("kill -HUP " .. daemon)
      assert.is_true(wait_until(function()
        local now = children(daemon)
        if #now ~= 2 then return false end
        for _, w in ipairs(now) do for _, o in ipairs(old) do if w == o then return false end end end
        return true
      end))
    end
    assert.are.equal(daemon, served_by())
    fresh_workers(false)
    proc.sleep(0.5)
    local _, none = spares()
    assert.are.equal(0, none)
    assert.are.equal("", proc.run("ls -a " .. q(tasks) .. " 2>/dev/null | grep prespawn").stdout)
    -- after a `crater run` they do
    local r0 = env:crater { "run", "--rm", "--rootfs", env.rootfs, "first", "true" }
    assert.are.equal(0, r0.code, r0.stderr)
    fresh_workers(true, "inherit")
    local before, before_dirs
    assert.is_true(wait_until(function() local n; before, n, before_dirs = spares(); return n == 2 end))
    local shims = {}
    for _, pid in pairs(before) do shims[pid] = true end
    -- a foreground run (not -d: stdio through FIFOs, no terminal) takes one
    local worker, out = background("fg", { "run", "--rootfs", env.rootfs, "fg", "sh", "-c", "sleep 30; exit 3" })
    local shim
    assert.is_true(wait_until(function()
      shim = tonumber(proc.read_file(tasks .. "/fg/shim.pid") or "")
      return shim ~= nil
    end))
    assert.is_true(shims[shim] ~= nil, "the task's shim " .. shim .. " is not a spare")
    assert.are.equal(shim, before[worker])
    assert.is_nil(proc.read_file(before_dirs[worker] .. "/shim.pid"))
    -- it got the id: the task and its runtime state are the container's
    assert.matches("fg%s+%d+%s+RUNNING", env:crater({ "task", "ls" }).stdout)
    assert.are.equal("", proc.run("ls -d " .. q(env.root .. "/run/runtime/crater-runtime/default/-") .. " 2>/dev/null").stdout)
    env:crater { "task", "kill", "-s", "KILL", "fg" }
    assert.is_true(wait_until(function() return exited(out) end))
    assert.are.equal("137\n", proc.read_file(out .. ".rc"))
    assert.are.equal(0, env:crater({ "container", "rm", "fg" }).code)
    -- a command of another shape (-d: stdio for a later attach) stops the
    -- spare it finds and starts its own shim.  (The workers that served
    -- `task kill` and `container rm` dropped theirs: fresh ones, after a
    -- `crater run`.)
    assert.are.equal(0, env:crater({ "run", "--rm", "--rootfs", env.rootfs, "again", "true" }).code)
    fresh_workers(true, "inherit")
    local now, now_dirs
    assert.is_true(wait_until(function() local n; now, n, now_dirs = spares(); return n == 2 end))
    local r = env:crater { "run", "-d", "--rootfs", env.rootfs, "bg", "sleep", "30" }
    assert.are.equal(0, r.code, r.stderr)
    local bgshim = tonumber(proc.read_file(tasks .. "/bg/shim.pid") or "")
    local stopped = 0
    assert.is_true(wait_until(function()
      stopped = 0
      for _, pid in pairs(now) do stopped = stopped + (proc.alive(pid) and 0 or 1) end
      return stopped == 1
    end))
    for w, pid in pairs(now) do
      assert.are_not.equal(pid, bgshim)
      if not proc.alive(pid) then -- the worker that served it: its spare is gone, dir and all
        assert.is_true(wait_until(function() return proc.read_file(now_dirs[w] .. "/shim.pid") == nil end))
      end
    end
    -- ... and the spares after it are shaped as that last `crater run`:
    -- the next `run -d` takes one
    fresh_workers(true, "attach")
    local dspares
    assert.is_true(wait_until(function()
      local n
      dspares, n = spares()
      return n == 2
    end))
    r = env:crater { "run", "-d", "--rootfs", env.rootfs, "bg2", "sleep", "30" }
    assert.are.equal(0, r.code, r.stderr)
    local bg2shim = tonumber(proc.read_file(tasks .. "/bg2/shim.pid") or "")
    local taken = false
    for _, pid in pairs(dspares) do taken = taken or pid == bg2shim end
    assert.is_true(taken, "run -d did not take a spare")
    for _, id in ipairs { "bg", "bg2" } do
      assert.are.equal(0, env:crater({ "task", "rm", "-f", id }).code)
      assert.are.equal(0, env:crater({ "container", "rm", id }).code)
    end
    -- stopping the daemon stops the spares of its idle workers: no process
    -- or dir left
    local last = spares()
    env:stop_daemon()
    for _, pid in pairs(last) do assert.is_true(wait_until(function() return not proc.alive(pid) end)) end
    assert.is_true(wait_until(function()
      return proc.run("ls -a " .. q(tasks) .. " | grep -c prespawn").stdout == "0\n"
    end))
    assert.are.equal("", proc.run("pgrep -f -- " .. q(env.root .. "/run/.*--go-fd 3 run .* -$")).stdout)
  end)

  -- a worker prepares, while it waits, the SQL statements the last
  -- commands used (SOCKET.sql, learned after each command's exit code went)
  -- a worker removes a removed snapshot's metadata at once and leaves its
  -- data to the daemon's janitor, which runs once the daemon is idle (and
  -- when it stops): containerd leaves it to its GC likewise
  it("leaves a removed container's snapshot data to its janitor", function()
    local layout = env.dir .. "/layout"
    proc.check(q((os.getenv("CRATER_SRC") or ".") .. "/scripts/make-busybox-layout") .. " " .. q(layout))
    assert.are.equal(0, env:crater({ "image", "import", "--name", "t/bb:1", layout }).code)
    local snapdir = env.root .. "/snapshots/overlayfs/snapshots"
    local function dirs()
      local n = 0
      for name in proc.run("ls -A " .. q(snapdir)).stdout:gmatch("[^\n]+") do
        if name:match("^%d+$") or name:match("^%.trash%-") then n = n + 1 end
      end
      return n
    end
    local function keys() return env:crater({ "snapshot", "ls", "-q" }).stdout end
    -- the first run unpacks the image: its layer stays
    assert.are.equal(0, env:crater({ "run", "--rm", "t/bb:1", "j0", "true" }).code)
    assert.is_true(wait_until(function() return dirs() == 1 end), "dirs: " .. dirs())
    local base = dirs()
    -- with the daemon stopped (SIGSTOP), no janitor can run; an idle
    -- worker still serves
    proc.check("kill -STOP " .. daemon)
    local ok, r = pcall(env.crater, env, { "run", "--rm", "t/bb:1", "j1", "true" })
    local left, ks = dirs(), keys()
    proc.check("kill -CONT " .. daemon)
    assert.is_true(ok, tostring(r))
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(ks:find("j1", 1, true), ks) -- the snapshot is gone ...
    assert.are.equal("", env:crater({ "container", "ls", "-q" }).stdout)
    assert.are.equal(base + 1, left) -- ... its data is left
    -- the janitor, once the daemon has been idle
    assert.is_true(wait_until(function() return dirs() == base end), "left: " .. dirs())
    -- ... which checkpoints the metadata WAL too, which the workers leave
    -- to it, once the WAL is 1000 frames long (a writer that defers
    -- checkpoints as workers do makes it so)
    local wal = env.root .. "/metadata.db-wal"
    local function wal_size() return tonumber(proc.run("stat -c %s " .. q(wal)).stdout) end
    local small = wal_size()
    assert.is_true(small > 0 and small < 1000 * 4096, tostring(small)) -- left alone
    proc.check("luajit -e " .. q(string.format([[
      local crater = require "crater"
      crater.core.db_defer_checkpoints(true)
      local c = assert(crater.open { root = %q })
      for i = 1, 500 do assert(c:namespaces():create("wal" .. i, { k = string.rep("v", 2000) })) end
      c:close()]], env.root)))
    assert.is_true(wal_size() > 1000 * 4120, tostring(wal_size()))
    assert.are.equal(0, env:crater({ "run", "--rm", "t/bb:1", "j3", "true" }).code) -- work for a janitor
    assert.is_true(wait_until(function() return wal_size() == 0 end), "WAL: " .. wal_size())
    -- what a stopping daemon was told of is removed before it exits
    proc.check("kill -STOP " .. daemon)
    ok, r = pcall(env.crater, env, { "run", "--rm", "t/bb:1", "j2", "true" })
    left = dirs()
    proc.run("kill -CONT " .. daemon)
    assert.is_true(ok, tostring(r))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(base + 1, left)
    -- (the dir of a spare whose worker was killed while it warmed up, as
    -- a stop can do to a fresh worker: the stopping daemon removes it)
    local gone_pid = proc.check("sh -c 'echo $$'"):match("%d+")
    local stale = env.root .. "/run/tasks/default/.prespawn--spare.1-" .. gone_pid
    proc.check("mkdir -p " .. q(stale))
    env:stop_daemon()
    assert.are.equal(base, dirs())
    assert.are_not.equal(0, proc.run("test -e " .. q(stale)).code, "left: " .. stale .. " " ..
      proc.run("ls -la " .. q(stale) .. "; cat " .. q(env.dir .. "/daemon.log")).stdout)
    assert.is_true(wait_until(function()
      return not proc.run("ls -A " .. q(env.root .. "/run/tasks/default")).stdout:find(".prespawn", 1, true)
    end), proc.run("ls -A " .. q(env.root .. "/run/tasks/default")).stdout)
    local c = env:crater { "check" }
    assert.are.equal(0, c.code, c.stdout .. c.stderr)
  end)

  it("remembers the statements its commands used, for the next workers", function()
    local sqlf = sock .. ".sql"
    local r = env:crater { "container", "create", "--rootfs", env.rootfs, "kept", "true" }
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(wait_until(function() return proc.read_file(sqlf) ~= nil end))
    assert.are.equal("600\n", proc.check("stat -c %a " .. q(sqlf)))
    local list = require("crater.json").decode(proc.read_file(sqlf))
    assert.is_true(#list > 0)
    local inserts = false
    for _, sql in ipairs(list) do inserts = inserts or sql:match("^INSERT INTO containers") ~= nil end
    assert.is_true(inserts, table.concat(list, "\n"))
    -- what is in the file is prepared, never run; a file that is not a
    -- list is ignored
    for _, text in ipairs { '["DELETE FROM containers"]', "not json", '{"a": 1}' } do
      proc.check("printf %s " .. q(text) .. " > " .. q(sqlf))
      proc.run("kill -HUP " .. daemon) -- fresh workers read it
      proc.sleep(0.3)
      assert.are.equal(daemon, served_by())
      assert.are.equal("kept\n", env:crater({ "container", "ls", "-q" }).stdout)
    end
    assert.are.equal(0, env:crater({ "container", "rm", "kept" }).code)
  end)

  it("replaces its idle workers on SIGHUP and lets a served command finish when stopped", function()
    local before = children(daemon)
    assert.are.equal(2, #before)
    proc.run("kill -HUP " .. daemon)
    assert.is_true(wait_until(function()
      local now = children(daemon)
      return #now == 2 and now[1] ~= before[1] and now[2] ~= before[2] and now[1] ~= before[2]
    end))
    -- a worker busy when SIGHUP came ends after its command
    local busy, bout = background("during", { "run", "--rm", "--rootfs", env.rootfs, "during", "sleep", "1" })
    local others = children(daemon)
    proc.run("kill -HUP " .. daemon)
    assert.is_true(wait_until(function() return exited(bout) end))
    assert.are.equal("0\n", proc.read_file(bout .. ".rc"))
    assert.is_true(wait_until(function() return not proc.alive(busy) end))
    assert.is_true(wait_until(function() return #children(daemon) == 2 end))
    for _, w in ipairs(children(daemon)) do
      for _, o in ipairs(others) do assert.are_not.equal(o, w) end
    end
    local worker, out = background("late", { "run", "--rm", "--rootfs", env.rootfs, "late", "sleep", "1" })
    env:stop_daemon()
    assert.is_false(proc.alive(daemon))
    assert.is_true(proc.alive(worker))
    assert.is_true(wait_until(function() return exited(out) end))
    assert.are.equal("0\n", proc.read_file(out .. ".rc"))
    -- ... and one busy when the daemon stopped ends after its command
    assert.is_true(wait_until(function() return not proc.alive(worker) end))
  end)
end)
