-- Tasks through crater-shim: exec, pause/resume, ps/metrics, tty, survival
-- of the task when crater is SIGKILLed, a dead shim reported as such, and
-- 50 containers started and removed without leaks.
local proc = require "support.proc"
local NO_SPARES = require("support.daemon").NO_SPARES
local R = require "functional.run_spec"

local q = proc.quote
local is_root = proc.run("id -u").stdout:match("^0") ~= nil
if not is_root then
  describe("tasks", function() pending("needs root (real containers)") end)
  return
end

local function task_dir(env, id) return env.root .. "/run/tasks/default/" .. id end

-- cgroup paths are /crater/<namespace>/<id> on the host, shared by every
-- crater root: ids that several builds' specs run at the same time would
-- share a cgroup, so the many-container tests tag theirs with this run's pid.
local tag = tostring(proc.owner_pid())

--- cgroup dirs named `pattern` left under crater/default in any v1 hierarchy
--- (or the v2 tree).
local function cgroups_left(pattern)
  return proc.run("ls -d /sys/fs/cgroup/*/crater/default/" .. pattern .. " /sys/fs/cgroup/crater/default/" ..
    pattern .. " 2>/dev/null").stdout
end

local wait_until = R.wait_until

-- Runs cmd on a fresh pty, types a line into its shell, prints what came
-- back and "RC=<exit code>".
local PTY_SCRIPT = [[
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
time.sleep(0.3)
os.write(fd, b"echo $((6*7)); tty; exit 3\n")
out, end = b"", time.time() + 15
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nRC=%d\n" % os.waitstatus_to_exitcode(st))
]]

local function pty_run(env, cmd)
  local script = env.dir .. "/ptyrun.py"
  proc.write_file(script, PTY_SCRIPT)
  return proc.run("python3 " .. q(script) .. " " .. cmd)
end

describe("tasks", function()
  local env
  before_each(function() env = R.env(os.getenv("CRATER_TEST_RUNTIME")) end)
  after_each(function() env:cleanup() end)

  it("execs processes with their own exit codes and stdio", function()
    assert.are.equal(0, env:run("ex", { "-d" }, { "sleep", "30" }).code)
    local r = env:crater { "task", "exec", "ex", "sh", "-c", "echo in-exec; echo e >&2; exit 5" }
    assert.are.equal(5, r.code)
    assert.are.equal("in-exec\n", r.stdout)
    assert.are.equal("e\n", r.stderr)
    r = env:crater({ "task", "exec", "-i", "ex", "sh", "-c", "cat; exit 4" }, { stdin = "fed through stdin\n" })
    assert.are.equal(4, r.code)
    assert.are.equal("fed through stdin\n", r.stdout)
    -- in the container's cgroup in every hierarchy (a hybrid's unified too)
    r = env:crater { "task", "exec", "ex", "cat", "/proc/self/cgroup" }
    assert.are.equal(0, r.code, r.stderr)
    local host = select(2, proc.check("cat /proc/self/cgroup"):gsub("\n", ""))
    assert.are.equal(host, select(2, r.stdout:gsub(":/crater/default/ex\n", "")), r.stdout)
    -- -e replaces the container's value; -u takes names from the
    -- container's own /etc/passwd and /etc/group
    r = env:crater { "task", "exec", "-e", "HOME=/x", "-e", "NEW=1", "ex", "sh", "-c", "env | grep -cE '^HOME='; echo $HOME $NEW" }
    assert.are.equal("1\n/x 1\n", r.stdout)
    r = env:crater { "task", "exec", "-u", "app", "ex", "sh", "-c", "id -u; id -g; id -G" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1000\n1000\n1000 2000\n", r.stdout)
    r = env:crater { "task", "exec", "-u", "nobody:extra", "ex", "sh", "-c", "id -u; id -g" }
    assert.are.equal("65534\n2000\n", r.stdout)
    for _, bad in ipairs { { "-u", "ghost" }, { "-u", "99999999999" }, { "-e", "=x" }, { "--cwd", "rel" },
                           { "--exec-id", "../x" } } do
      r = env:crater { "task", "exec", bad[1], bad[2], "ex", "true" }
      assert.are.equal(2, r.code, bad[2] .. ": " .. r.stderr)
      assert.matches(bad[2], r.stderr, 1, true)
    end
    -- nothing of the shim's ignored signals (HUP, INT, PIPE)
    r = env:crater { "task", "exec", "ex", "grep", "^SigIgn", "/proc/self/status" }
    assert.are.equal("SigIgn:\t0000000000000000\n", r.stdout)
    r = env:crater { "task", "kill", "-s", "FOO", "ex" }
    assert.are.equal(2, r.code, r.stderr)
    assert.matches("--signal FOO: unknown signal", r.stderr, 1, true)
    r = env:crater { "task", "ps", "ex" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^PID%s+COMMAND\n%d+%s+sleep 30\n", r.stdout)
    r = env:crater { "--format", "json", "task", "metrics", "ex" }
    assert.are.equal(0, r.code, r.stderr)
    local m = require("crater.json").decode(r.stdout)
    assert.is_true(m.pids.current >= 1, r.stdout)
    assert.is_true(m.memory.usage > 0, r.stdout)
    assert.is_true(m.cpu.usage_ns > 0, r.stdout)
    -- no limits set: "max" in the table, not a huge number or -1
    r = env:crater { "task", "metrics", "ex" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("memory.limit     max\n", r.stdout, 1, true)
    assert.matches("pids.limit       max\n", r.stdout, 1, true)
    assert.are.equal(0, env:run("lim", { "-d", "--memory", "64m", "--pids-limit", "20" }, { "sleep", "30" }).code)
    r = env:crater { "task", "metrics", "lim" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("memory.limit     64.0 MiB\n", r.stdout, 1, true)
    assert.matches("pids.limit       20\n", r.stdout, 1, true)
  end)

  it("execs as the container's user by default (a name in the spec resolved in the container)", function()
    assert.are.equal(0, env:run("usr", { "-d", "--user", "app" }, { "sleep", "30" }).code)
    local r = env:crater { "task", "exec", "usr", "sh", "-c", "id -u; id -G" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1000\n1000 2000\n", r.stdout)
    r = env:crater { "task", "exec", "-u", "0", "usr", "id", "-u" }
    assert.are.equal("0\n", r.stdout)
  end)

  it("pauses and resumes (freezer), kill and delete rules", function()
    assert.are.equal(0, env:run("pz", { "-d" }, { "sleep", "30" }).code)
    assert.are.equal(0, env:crater({ "task", "pause", "pz" }).code)
    assert.matches("PAUSED", env:crater({ "task", "ls" }).stdout)
    local fz = proc.read_file("/sys/fs/cgroup/freezer/crater/default/pz/freezer.state")
    if fz then assert.matches("FROZEN", fz) end
    assert.are.equal(0, env:crater({ "task", "resume", "pz" }).code)
    assert.matches("RUNNING", env:crater({ "task", "ls" }).stdout)
    local r = env:crater { "task", "rm", "pz" }
    assert.are.equal(1, r.code)
    assert.matches("running", r.stderr)
    assert.are.equal(0, env:crater({ "task", "kill", "-s", "KILL", "pz" }).code)
    r = env:crater { "task", "wait", "pz" }
    assert.are.equal(137, r.code)
    assert.matches("STOPPED %(137%)", env:crater({ "task", "ls" }).stdout)
    assert.are.equal(0, env:crater({ "task", "rm", "pz" }).code)
    assert.are.equal(0, env:crater({ "container", "rm", "pz" }).code)
    assert.are.equal("", env:crater({ "container", "ls", "-q" }).stdout)
  end)

  it("runs interactively with a tty (pty, raw mode, exit code)", function()
    local r = pty_run(env, env:cmd { "run", "--rm", "-t", "-i", "--rootfs", env.rootfs, "ttyc", "sh" })
    assert.matches("42", r.stdout)
    assert.matches("/dev/pts/%d", r.stdout)
    assert.matches("RC=3", r.stdout)
  end)

  it("run -d: task attach streams the output from then on; unattached output never blocks the container", function()
    local function crater(args, opts)
      local a = { "run", "-d", "--rootfs", env.rootfs }
      for _, x in ipairs(args) do a[#a + 1] = x end
      return env:crater(a, opts)
    end
    -- 20 MB written while nobody is attached: dropped, the writer goes on
    assert.are.equal(0, crater({ "flood", "sh", "-c", "head -c 20000000 /dev/zero; echo done > /tmp/m; sleep 30" }).code)
    assert.is_true(wait_until(function()
      return env:crater({ "task", "exec", "flood", "cat", "/tmp/m" }).stdout == "done\n"
    end, 10))
    -- attach in the middle: later lines arrive, stdout and stderr apart,
    -- and the exit code becomes attach's
    assert.are.equal(0, crater({ "ticks", "sh", "-c",
      "i=0; while [ $i -lt 30 ]; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.1; done; exit 7" }).code)
    proc.sleep(0.5)
    local r = env:crater { "task", "attach", "ticks" }
    assert.are.equal(7, r.code, r.stderr)
    assert.matches("out 29\n$", r.stdout)
    assert.matches("err 29\n$", r.stderr)
    assert.is_nil(r.stdout:find("out 0\n", 1, true), r.stdout) -- before the attach: dropped
    assert.is_nil(r.stdout:find("err", 1, true))
    -- attaching to a stopped task returns at once
    r = env:crater { "task", "attach", "ticks" }
    assert.are.equal(7, r.code, r.stderr)
    -- -i: stdin through the attach, its EOF closes the container's stdin
    assert.are.equal(0, crater({ "-i", "cat1", "sh", "-c", "while read l; do echo \"got $l\"; done; echo eof" }).code)
    r = env:crater({ "task", "attach", "cat1" }, { stdin = "a\nb\n" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("got a\ngot b\neof\n", r.stdout)
    -- --null-io: nothing to attach to
    assert.are.equal(0, crater({ "--null-io", "nul", "sleep", "30" }).code)
    r = env:crater { "task", "attach", "nul" }
    assert.are.equal(1, r.code)
    assert.matches("no attachable stdio", r.stderr)
    r = env:crater { "run", "--null-io", "--rootfs", env.rootfs, "nul2", "true" }
    assert.are.equal(2, r.code)
    -- task start -d leaves the same kind of task
    assert.are.equal(0, env:crater({ "container", "create", "--rootfs", env.rootfs, "st1", "sh", "-c",
      "sleep 1; echo late; exit 4" }).code)
    assert.are.equal(0, env:crater({ "task", "start", "-d", "st1" }).code)
    r = env:crater { "task", "attach", "st1" }
    assert.are.equal(4, r.code, r.stderr)
    assert.are.equal("late\n", r.stdout)
  end)

  it("run -d -t -i: task attach gets the terminal", function()
    local r = env:crater { "run", "-d", "-t", "-i", "--rootfs", env.rootfs, "ttyd", "sh" }
    assert.are.equal(0, r.code, r.stderr)
    -- stdin not a terminal: refused (as docker), unless only watching
    r = env:crater({ "task", "attach", "ttyd" }, { stdin = "exit 0\n" })
    assert.are.equal(2, r.code)
    assert.matches("stdin is not a terminal", r.stderr, 1, true)
    r = pty_run(env, env:cmd { "task", "attach", "ttyd" })
    assert.matches("\n42\r?\n", r.stdout)
    assert.matches("/dev/pts/%d", r.stdout)
    assert.matches("RC=3", r.stdout)
    -- run -t -i and exec -t -i from a pipe: refused, not a client waiting
    -- forever on a shell that never sees the end of its input
    r = env:crater({ "run", "--rm", "-t", "-i", "--rootfs", env.rootfs, "ttyp", "sh" }, { stdin = "echo x\n" })
    assert.are.equal(2, r.code)
    assert.matches("-t -i: stdin is not a terminal", r.stderr, 1, true)
    assert.are.equal("ttyd\n", env:crater({ "container", "ls", "-q" }).stdout)
    assert.are.equal(0, env:crater({ "container", "create", "-t", "--rootfs", env.rootfs, "ttys", "sh" }).code)
    r = env:crater({ "task", "start", "-i", "ttys" }, { stdin = "echo x\n" })
    assert.are.equal(2, r.code)
    assert.matches("stdin is not a terminal", r.stderr, 1, true)
    -- -t alone, output to a file or pipe: fine, as docker's
    r = env:crater { "run", "--rm", "-t", "--rootfs", env.rootfs, "ttyo", "sh", "-c", "tty; echo out" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^/dev/pts/%d+\r\nout\r\n$", r.stdout)
  end)

  it("delivers all of stdin before closing it (run -i, exec -i), also to a process slow to read", function()
    -- 150 kB: all of it fits in the container's stdin pipe, the shim's
    -- buffer and the FIFO while the process sleeps, so the client is done
    -- and asks to close stdin with data still in the FIFO
    local data = env.dir .. "/stdin.bin"
    proc.check("head -c 150000 /dev/urandom > " .. q(data))
    local want = proc.check("sha256sum < " .. q(data))
    local r = proc.run(env:cmd { "run", "--rm", "-i", "--rootfs", env.rootfs, "in1", "sh", "-c", "sleep 1; cat" } ..
      " < " .. q(data) .. " | sha256sum")
    assert.are.equal(want, r.stdout, r.stderr)
    assert.are.equal(0, env:run("in2", { "-d" }, { "sleep", "30" }).code)
    r = proc.run(env:cmd { "task", "exec", "-i", "in2", "sh", "-c", "sleep 1; cat" } .. " < " .. q(data) .. " | sha256sum")
    assert.are.equal(want, r.stdout, r.stderr)
  end)

  it("delivers all output to a reader slower than the container, stdout and stderr", function()
    local want = proc.check("seq 1 500000 | sha256sum")
    local r = proc.run(env:cmd { "run", "--rm", "--rootfs", env.rootfs, "out1", "seq", "1", "500000" } ..
      " | (sleep 0.5; cat) | sha256sum")
    assert.are.equal(want, r.stdout, r.stderr)
    r = proc.run(env:cmd { "run", "--rm", "--rootfs", env.rootfs, "out2", "sh", "-c", "seq 1 500000 >&2" } ..
      " 2>&1 >/dev/null | (sleep 0.5; cat) | sha256sum")
    assert.are.equal(want, r.stdout, r.stderr)
  end)

  it("passes the terminal's size, and its changes (SIGWINCH), to the container's pty", function()
    local script = env.dir .. "/winch.py"
    proc.write_file(script, [[
import os, pty, sys, time, select, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
out = b""
def pump(until, secs=10):
    global out
    end = time.time() + secs
    while time.time() < end and until not in out:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try: d = os.read(fd, 4096)
            except OSError: return
            if not d: return
            out += d
time.sleep(0.5)
os.write(fd, b"stty size\n")
pump(b"33 101")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
time.sleep(0.5)
os.write(fd, b"stty size; exit 0\n")
pump(b"40 120")
pump(b"\x00", 3)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.stdout.write("\nRC=%d\n" % os.waitstatus_to_exitcode(st))
]])
    local r = proc.run("python3 " .. q(script) .. " " .. env:cmd { "run", "--rm", "-t", "-i", "--rootfs", env.rootfs, "winch", "sh" })
    assert.matches("\n33 101\n", r.stdout)
    assert.matches("\n40 120\n", r.stdout)
    assert.matches("RC=0", r.stdout)
  end)

  it("keeps the task running when crater is SIGKILLed; a new crater waits for it", function()
    local p = proc.spawn(env:cmd { "run", "--rootfs", env.rootfs, "surv", "sh", "-c", "sleep 2; exit 9" },
      { dir = env.dir, name = "crater" })
    assert.is_true(wait_until(function()
      return env:crater({ "task", "ls" }).stdout:match("surv%s+%d+%s+RUNNING") ~= nil
    end))
    proc.run("kill -9 " .. p.pid)
    assert.is_true(wait_until(function() return not proc.alive(p.pid) end))
    assert.matches("surv%s+%d+%s+RUNNING", env:crater({ "task", "ls" }).stdout)
    local r = env:crater { "task", "wait", "surv" }
    assert.are.equal(9, r.code, r.stderr)
    -- the status is on disk: it survives the shim too
    local exit = proc.read_file(task_dir(env, "surv") .. "/exit")
    assert.matches("^9 %d+", exit)
  end)

  it("reports a task whose shim died, and still cleans it up", function()
    assert.are.equal(0, env:run("dead", { "-d" }, { "sleep", "30" }).code)
    local spid = tonumber(proc.read_file(task_dir(env, "dead") .. "/shim.pid"))
    proc.run("kill -9 " .. spid)
    assert.is_true(wait_until(function() return not proc.alive(spid) end))
    local r = env:crater { "task", "ls" }
    assert.matches("dead%s+%d+%s+UNKNOWN %[shim dead", r.stdout)
    r = env:crater { "task", "wait", "dead" }
    assert.are.equal(1, r.code)
    assert.matches("shim dead", r.stderr)
    assert.are.equal(1, env:crater({ "task", "rm", "dead" }).code)
    assert.are.equal(0, env:crater({ "task", "rm", "-f", "dead" }).code)
    -- a stopped task whose shim died still reports its status
    assert.are.equal(0, env:run("done", { "-d" }, { "sh", "-c", "exit 6" }).code)
    assert.are.equal(6, env:crater({ "task", "wait", "done" }).code)
    spid = tonumber(proc.read_file(task_dir(env, "done") .. "/shim.pid"))
    proc.run("kill -9 " .. spid)
    assert.is_true(wait_until(function() return not proc.alive(spid) end))
    assert.are.equal(6, env:crater({ "task", "wait", "done" }).code)
    assert.matches("STOPPED %(6%)", env:crater({ "task", "ls" }).stdout)
  end)

  it("deletes 20 running containers concurrently and leaves no cgroup in any controller", function()
    local ids = {}
    for i = 1, 20 do
      ids[i] = "par" .. i .. "-" .. tag
      -- a child process too, so delete has more than the init to kill
      local r = env:run(ids[i], { "-d" }, { "sh", "-c", "sleep 60 & sleep 60" })
      assert.are.equal(0, r.code, r.stderr)
    end
    assert.are_not.equal("", cgroups_left("par1-" .. tag))
    -- all 20 `task rm -f` at once, each exit code kept
    local script = {}
    for i, cid in ipairs(ids) do
      script[#script + 1] = "(" .. env:cmd { "task", "rm", "-f", cid } .. " >/dev/null 2>" .. q(env.dir .. "/rm" .. i .. ".err") ..
        "; echo $? >" .. q(env.dir .. "/rm" .. i .. ".rc") .. ") &"
    end
    script[#script + 1] = "wait"
    proc.check(table.concat(script, "\n"))
    for i = 1, 20 do
      assert.are.equal("0", (proc.read_file(env.dir .. "/rm" .. i .. ".rc") or ""):gsub("%s+", ""),
        proc.read_file(env.dir .. "/rm" .. i .. ".err"))
    end
    assert.are.equal("", cgroups_left("par*-" .. tag))
    assert.are.equal("", proc.run("ls " .. q(env.root .. "/run/tasks/default")).stdout)
    for _, cid in ipairs(ids) do assert.are.equal(0, env:crater({ "container", "rm", cid }).code) end
  end)

  it("starts and removes 50 containers without leaking processes, mounts, cgroups or fds", function()
    -- file handles of earlier tests are closed by the GC: settle it first
    collectgarbage("collect"); collectgarbage("collect")
    local fds_before = #proc.check("ls /proc/" .. proc.owner_pid() .. "/fd"):gsub("%S+", "x")
    local function id(i) return "c" .. i .. "-" .. tag end
    for i = 1, 50 do
      local r = env:run(id(i), { "-d" }, { "sleep", "60" })
      assert.are.equal(0, r.code, r.stderr)
    end
    local shim_pids = {}
    for i = 1, 50 do
      local spid = tonumber(proc.read_file(task_dir(env, id(i)) .. "/shim.pid"))
      assert.is_true(spid ~= nil and proc.alive(spid))
      shim_pids[#shim_pids + 1] = spid
    end
    for i = 1, 50 do
      assert.are.equal(0, env:crater({ "task", "rm", "-f", id(i) }).code)
      assert.are.equal(0, env:crater({ "container", "rm", id(i) }).code)
    end
    for _, spid in ipairs(shim_pids) do assert.is_false(proc.alive(spid)) end
    assert.are.equal("", proc.run("grep " .. q(env.dir) .. " /proc/mounts").stdout)
    assert.are.equal("", proc.run("ls " .. q(env.root .. "/run/tasks/default")).stdout)
    assert.are.equal("", cgroups_left("c*-" .. tag))
    collectgarbage("collect"); collectgarbage("collect")
    local fds_after = #proc.check("ls /proc/" .. proc.owner_pid() .. "/fd"):gsub("%S+", "x")
    assert.are.equal(fds_before, fds_after)
  end)
  it("a task that fails after its shim started (bad user) leaves no shim, task dir or runtime state", function()
    -- the shim is started before the bundle is complete (it waits for
    -- "go"); resolving the user fails after that, so the shim is told to
    -- go away instead
    local r = env:run("badu", { "--rm", "--user", "nosuchuser" }, { "true" })
    assert.are_not.equal(0, r.code)
    assert.matches("nosuchuser", r.stderr)
    assert.is_true(wait_until(function()
      return proc.run("pgrep -f -- 'crater-shi[m] .*--id badu '").stdout == ""
    end), "no shim left for badu")
    assert.is_false(proc.run("test -e " .. q(task_dir(env, "badu"))).ok)
    assert.are.equal("", proc.run("ls -d " .. q(env.root) .. "/run/runtime/*/default/badu 2>/dev/null").stdout)
    assert.are.equal("", env:crater({ "container", "ls", "-q" }).stdout)
    -- and the id is free for a task that works
    assert.are.equal(0, env:run("badu", { "--rm" }, { "true" }).code)
  end)
  it("Lua API: new_task{start = true} creates and starts in one runtime call; pre_start still asked", function()
    local script = env.dir .. "/start.lua"
    proc.write_file(script, [[
local crater = require "crater"
local oci = require "crater.oci"
local root, rootfs, runtime, policy = arg[1], arg[2], arg[3], arg[4]
local host = require("crater.policy").new()
assert(host:load_file(policy))
local c = assert(crater.open { root = root, policies = host })
local cs = c:containers()
local function make(id)
  return assert(cs:create(id, { rootfs = rootfs, runtime = runtime, spec = { oci.with_process_args("sleep", "30") } }))
end
local ctr = make("one-step")
local task = assert(ctr:new_task { stdio = "null", start = true })
print("status", task:status().status)
print("start", tostring(task:start()))
assert(task:kill("KILL"))
print("exit", (task:wait()))
print("delete", tostring(cs:delete("one-step", { force = true, task = task })))
local blocked = make("blocked")
local t2, err = blocked:new_task { stdio = "null", start = true }
print("blocked", tostring(t2), err)
assert(cs:delete("blocked"))
c:close()
]])
    local pol = env.dir .. "/deny.lua"
    proc.write_file(pol, [[return { name = "deny-blocked", api = 1, hooks = {
      ["task.pre_start"] = function(ev) if ev.id == "blocked" then return false, "not this one" end end } }]])
    local r = proc.run("luajit " .. q(script) .. " " .. q(env.root) .. " " .. q(env.rootfs) .. " " ..
      q(env.runtime or "runc") .. " " .. q(pol))
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("status\trunning\n", r.stdout)
    assert.matches("start\ttrue\n", r.stdout)
    assert.matches("exit\t137\n", r.stdout)
    assert.matches("delete\ttrue\n", r.stdout)
    assert.matches("blocked\tnil\ttask blocked: denied by policy deny%-blocked: not this one", r.stdout)
    -- the denied task never got a shim, a task dir or a cgroup
    assert.are.equal("", proc.run("ls " .. q(env.root .. "/run/tasks/default") .. " 2>/dev/null").stdout)
    assert.are.equal("", env:crater({ "container", "ls", "-q" }).stdout)
  end)
  it("Lua API: a transient task's runtime state goes when its init exits, before delete", function()
    local script = env.dir .. "/transient.lua"
    proc.write_file(script, [[
local crater = require "crater"
local oci = require "crater.oci"
local root, rootfs, runtime = arg[1], arg[2], arg[3]
local c = assert(crater.open { root = root })
local cs = c:containers()
local function present(id) -- the runtime's state dir of the container
  local p = io.popen("ls -d " .. root .. "/run/runtime/*/default/" .. id .. " 2>/dev/null")
  local out = p:read("*a"); p:close()
  return out ~= ""
end
local function gone(id, tries)
  for _ = 1, tries do
    if not present(id) then return true end
    os.execute("sleep 0.05")
  end
  return false
end
for _, transient in ipairs { true, false } do
  local id = transient and "transient" or "kept"
  local ctr = assert(cs:create(id, { rootfs = rootfs, runtime = runtime,
    spec = { oci.with_process_args("sh", "-c", "exit 7") } }))
  local task = assert(ctr:new_task { stdio = "null", start = true, transient = transient })
  print(id, "exit", (task:wait()))
  -- transient: gone within 5 s; kept: still there after 0.5 s
  print(id, "state gone", gone(id, transient and 100 or 10))
  print(id, "status", task:status().status, task:status().exit_status)
  print(id, "delete", (task:delete()))
  assert(cs:delete(id))
end
c:close()
]])
    local r = proc.run("luajit " .. q(script) .. " " .. q(env.root) .. " " .. q(env.rootfs) .. " " ..
      q(env.runtime or "runc"))
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("transient\texit\t7\n", r.stdout)
    assert.matches("transient\tstate gone\ttrue\n", r.stdout)
    assert.matches("transient\tstatus\tstopped\t7\n", r.stdout)
    assert.matches("transient\tdelete\t7\n", r.stdout)
    -- without transient the state stays until delete
    assert.matches("kept\texit\t7\n", r.stdout)
    assert.matches("kept\tstate gone\tfalse\n", r.stdout)
    assert.matches("kept\tdelete\t7\n", r.stdout)
    assert.are.equal("", proc.run("find " .. q(env.root .. "/run/runtime") .. "/*/default -mindepth 1 2>/dev/null").stdout)
  end)

  -- a `crater daemon` worker asks for a spare shim before each command; one
  -- still waiting from before (no command took it) is kept when it fits
  it("Lua API: tasks.spare keeps a spare that still fits and lives, and replaces a dead one", function()
    local script = env.dir .. "/spare.lua"
    proc.write_file(script, [[
local crater = require "crater"
local tasks = require "crater.tasks"
local root, runtime = arg[1], arg[2]
local c = assert(crater.open { root = root })
local function shim_pid(sp) -- written by the shim once it has started
  for _ = 1, 250 do
    local f = io.open(sp.plan.dir .. "/shim.pid")
    local pid = f and f:read("*l")
    if f then f:close() end
    if pid and pid ~= "" then return pid end
    os.execute("sleep 0.02")
  end
end
local opts = { stdio = "inherit", start = true }
local a = assert(tasks.spare(c, "default", runtime, opts))
local pa = shim_pid(a)
print("alive", a.pending:alive())
local b = assert(tasks.spare(c, "default", runtime, opts))
print("kept", b == a and shim_pid(b) == pa)
local d = assert(tasks.spare(c, "default", runtime, { stdio = "null", start = true }))
print("other shape", d ~= a, a.pending == nil)
local pd = shim_pid(d)
os.execute("kill -KILL " .. pd)
for _ = 1, 100 do if not d.pending:alive() then break end os.execute("sleep 0.02") end
print("dead", d.pending:alive())
local e = assert(tasks.spare(c, "default", runtime, { stdio = "null", start = true }))
print("replaced", e ~= d, shim_pid(e) ~= pd and shim_pid(e) ~= nil)
tasks.drop_spare()
print("dropped", tasks._spare == nil)
print("pid", require("crater.core").getpid())
c:close()
]])
    local r = proc.run("luajit " .. q(script) .. " " .. q(env.root) .. " " .. q(env.runtime or "runc"))
    assert.are.equal(0, r.code, r.stderr)
    local pid = r.stdout:match("\npid\t(%d+)\n$")
    assert.are.equal("alive\ttrue\nkept\ttrue\nother shape\ttrue\ttrue\ndead\tfalse\nreplaced\ttrue\ttrue\n" ..
      "dropped\ttrue\npid\t" .. tostring(pid) .. "\n", r.stdout)
    -- no spare shim or dir of that process is left (a daemon's workers, in
    -- the @daemon run, keep theirs)
    local function left()
      return proc.run("ls -A " .. q(env.root .. "/run/tasks/default") .. " 2>/dev/null | grep -- '-" .. pid .. "$'").stdout
    end
    assert.is_true(wait_until(function() return left() == "" end), left())
  end)

  -- The kernel tears an exited init's mount namespace down (its mounts, the
  -- rootfs overlay: RCU grace periods) before its exit is reported, unless
  -- somebody holds it: the shim does until it has reported the exit, and
  -- with hold_mntns the caller gets a copy it holds until it ends.
  it("Lua API: hold_mntns hands the caller the init's mount namespace; the shim lets its copy go at the exit",
    function()
    local script = env.dir .. "/hold.lua"
    proc.write_file(script, [[
local crater = require "crater"
local oci = require "crater.oci"
local core = require "crater.core"
local root, rootfs, runtime = arg[1], arg[2], arg[3]
local c = assert(crater.open { root = root })
local cs = c:containers()
local function links(pid) -- the targets of pid's descriptors
  local p = io.popen("readlink /proc/" .. pid .. "/fd/* 2>/dev/null")
  local out = p:read("*a"); p:close()
  return out
end
local function has(pid, ns) return links(pid):find(ns, 1, true) ~= nil end
for _, hold in ipairs { true, false } do
  local id = hold and "held" or "plain"
  local ctr = assert(cs:create(id, { rootfs = rootfs, runtime = runtime, spec = { oci.with_process_args("sleep", "30") } }))
  local task = assert(ctr:new_task { stdio = "null", start = true, hold_mntns = hold })
  local function ns_of(pid)
    local p = io.popen("readlink /proc/" .. pid .. "/ns/mnt")
    local ns = p:read("*l"); p:close()
    return ns
  end
  local ns = ns_of(task:pid())
  local f = io.open(task.dir .. "/shim.pid"); local shim = f:read("*l"); f:close()
  print(id, "own ns", ns ~= nil and ns:match("^mnt:") ~= nil and ns ~= ns_of(core.getpid()))
  print(id, "caller holds", has(core.getpid(), ns))
  print(id, "shim holds", has(shim, ns))
  assert(task:kill("KILL"))
  print(id, "exit", (task:wait()))
  print(id, "shim holds after exit", has(shim, ns))
  print(id, "caller holds after exit", has(core.getpid(), ns))
  assert(cs:delete(id, { force = true, task = task }))
end
c:close()
]])
    local r = proc.run("luajit " .. q(script) .. " " .. q(env.root) .. " " .. q(env.rootfs) .. " " ..
      q(env.runtime or "runc"))
    assert.are.equal(0, r.code, r.stderr)
    for _, id in ipairs { "held", "plain" } do
      assert.matches(id .. "\town ns\ttrue\n", r.stdout)
      assert.matches(id .. "\tshim holds\ttrue\n", r.stdout)
      assert.matches(id .. "\texit\t137\n", r.stdout)
      assert.matches(id .. "\tshim holds after exit\tfalse\n", r.stdout)
    end
    assert.matches("held\tcaller holds\ttrue\n", r.stdout)
    assert.matches("held\tcaller holds after exit\ttrue\n", r.stdout)
    assert.matches("plain\tcaller holds\tfalse\n", r.stdout)
    assert.matches("plain\tcaller holds after exit\tfalse\n", r.stdout)
  end)

  -- `crater run` starts the task's shim, and with crater-runtime the
  -- runtime too (waiting on its --go-fd), before the container is created,
  -- so their start overlaps the client's work; a create that fails stops
  -- them and leaves nothing.  Through the Lua API, a shim started for
  -- another runtime than the container's is not adopted.
  it("crater run: the shim and crater-runtime start before the container exists; a failed create leaves nothing",
    function()
    if not proc.run("command -v strace").ok then return pending("strace not installed") end
    local trace = env.dir .. "/execs"
    -- strace follows the process that runs the command: not a daemon's
    -- worker (the @daemon run), so this one runs embedded
    local r = proc.run("strace -f -qq -e trace=execve,execveat,unshare,setns -o " .. q(trace) .. " " ..
      env:cmd { "run", "--rm", "--rootfs", env.rootfs, "--runtime", "crater", "early", "echo", "hi" },
      { env = { CRATER_NO_DAEMON = "1" } })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("hi\n", r.stdout)
    local execs = proc.read_file(trace) or ""
    assert.matches('"%-%-go%-fd", "3", "run", "%-%-bundle"', execs)
    -- the network namespace was made while waiting, and the init joined it
    assert.matches("unshare%(CLONE_NEWNET%)", execs)
    assert.matches("setns%(%d+, CLONE_NEWNET%)", execs)
    -- no such image: the container is never created
    r = env:crater { "run", "--rm", "--runtime", "crater", "no/such:image", "early2", "true" }
    assert.are_not.equal(0, r.code)
    assert.matches("no/such", r.stderr)
    assert.are.equal("", proc.run("pgrep -f -- 'crater-shi[m] .*--id early2 '").stdout)
    assert.are.equal("", proc.run("pgrep -f -- '[-]-go-fd 3 run .* early2$'").stdout)
    assert.are.equal("", proc.run("ls -A " .. q(env.root .. "/run/tasks/default") .. NO_SPARES).stdout)
    assert.are.equal("", proc.run("ls -d " .. q(env.root) .. "/run/runtime/*/default/early2 2>/dev/null").stdout)
    assert.are.equal("", env:crater({ "container", "ls", "-q" }).stdout)

    local script = env.dir .. "/early.lua"
    proc.write_file(script, [[
local crater = require "crater"
local oci = require "crater.oci"
local tasks = require "crater.tasks"
local root, rootfs = arg[1], arg[2]
local c = assert(crater.open { root = root })
local cs = c:containers()
local opts = { stdio = "null", start = true, transient = true }
-- started, then given up: nothing left
local early = assert(tasks.prespawn(c, "default", "given-up", "crater", opts))
local function ls(pat)
  local p = io.popen("ls -d " .. tasks.task_dir(c, "default", pat) .. " 2>/dev/null")
  local out = p:read("*a"); p:close()
  return out ~= ""
end
-- the shim waits in a private dir; the task dir is taken on adoption only
print("while waiting", ls("given-up"), ls(".prespawn-given-up-*"))
early:abort()
print("after abort", ls("given-up"), ls(".prespawn-given-up-*"))
-- another process creates the same id meanwhile and wins: its task is not
-- disturbed when this early shim is given up
early = assert(tasks.prespawn(c, "default", "raced", "crater", opts))
local c2 = assert(crater.open { root = root })
local won = assert(c2:containers():create("raced", { rootfs = rootfs, runtime = "crater",
  spec = { oci.with_process_args("sleep", "30") } }))
local t2 = assert(won:new_task { stdio = "null", start = true })
early:abort()
print("raced", t2:status().status, io.open(tasks.task_dir(c, "default", "raced") .. "/config.json") ~= nil)
assert(t2:kill("KILL"))
print("raced exit", (t2:wait()))
assert(c2:containers():delete("raced", { force = true, task = t2 }))
c2:close()
-- started for crater-runtime, the container runs with runc: a new shim
early = assert(tasks.prespawn(c, "default", "other", "crater", opts))
local ctr = assert(cs:create("other", { rootfs = rootfs, runtime = "runc",
  spec = { oci.with_process_args("sh", "-c", "exit 5") } }))
opts.shim = early
local task = assert(ctr:new_task(opts))
print("other exit", (task:wait()), task.meta.runtime:match("[^/]+$"))
assert(cs:delete("other", { force = true, task = task }))
c:close()
]])
    r = proc.run("luajit " .. q(script) .. " " .. q(env.root) .. " " .. q(env.rootfs))
    assert.are.equal(0, r.code, r.stderr)
    -- a client that dies while it makes the task (here: exits without a
    -- word after the shim started) leaves nothing: the shim and the
    -- runtime waiting in it see EOF and remove the dir
    local crash = env.dir .. "/crash.lua"
    proc.write_file(crash, [[
local crater = require "crater"
local tasks = require "crater.tasks"
local c = assert(crater.open { root = arg[1] })
assert(tasks.prespawn(c, "default", "crashed", "crater", { stdio = "fifo", start = true }))
os.exit(0)
]])
    assert.are.equal(0, proc.run("luajit " .. q(crash) .. " " .. q(env.root)).code)
    assert.is_true(wait_until(function()
      return proc.run("ls -A " .. q(env.root .. "/run/tasks/default") .. NO_SPARES).stdout == ""
    end), "left: " .. proc.run("ls -AR " .. q(env.root .. "/run/tasks/default")).stdout)
    assert.are.equal("", proc.run("pgrep -f -- 'crater-shi[m] .*--id crashed '").stdout)
    assert.are.equal("", proc.run("pgrep -f -- '[-]-go-fd 3 run .* crashed$'").stdout)
    assert.matches("while waiting\tfalse\ttrue\n", r.stdout)
    assert.matches("after abort\tfalse\tfalse\n", r.stdout)
    assert.matches("raced\trunning\ttrue\n", r.stdout)
    assert.matches("raced exit\t137\n", r.stdout)
    assert.matches("other exit\t5\trunc\n", r.stdout)
    assert.are.equal("", proc.run("pgrep -f -- '[-]-go-fd 3 run .* (given-up|other|raced)$'").stdout)
    assert.are.equal("", proc.run("ls -A " .. q(env.root .. "/run/tasks/default") .. " 2>/dev/null" .. NO_SPARES).stdout)
    local rdir = q(env.root .. "/run/runtime") .. "/*/default/"
    assert.are.equal("", proc.run("ls -d " .. rdir .. "given-up " .. rdir .. "other " .. rdir .. "raced 2>/dev/null").stdout)
  end)

  -- `crater run` asks for the exit status before it attaches, so the shim
  -- answers at the init's exit, before it cleans up after the runtime
  it("crater run: the wait request goes out before the container exits", function()
    if not proc.run("command -v strace").ok then return pending("strace not installed") end
    local trace = env.dir .. "/waits"
    local r = proc.run("strace -f -qq -e trace=sendto,exit_group -o " .. q(trace) .. " " ..
      env:cmd { "run", "--rm", "--rootfs", env.rootfs, "waitfirst", "sh", "-c", "sleep 0.3; exit 42" },
      { env = { CRATER_NO_DAEMON = "1" } }) -- strace: as above
    assert.are.equal(42, r.code, r.stderr)
    local lines, sent, exited = {}, nil, nil
    for l in (proc.read_file(trace) or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
    for i, l in ipairs(lines) do
      if not sent and l:match('sendto%(%d+, "wait\\n"') then sent = i end
      if not exited and l:match("exit_group%(42%)") then exited = i end
    end
    assert.is_not_nil(sent, "no wait request:\n" .. table.concat(lines, "\n"))
    assert.is_not_nil(exited, "no exit_group(42):\n" .. table.concat(lines, "\n"))
    assert.is_true(sent < exited, "wait sent after the exit:\n" .. table.concat(lines, "\n"))
  end)

  -- crater-runtime lists what its delete of a stopped container removes
  -- (cgroups, state dir) and the shim of a transient task does that itself:
  -- no `crater-runtime delete` process.  With a poststop hook there is no
  -- list and the runtime's delete runs (and runs the hook).
  it("crater run --rm: the shim cleans up after crater-runtime itself, hooks still run", function()
    if not proc.run("command -v strace").ok then return pending("strace not installed") end
    local script = env.dir .. "/inline.lua"
    local mark = env.dir .. "/poststop-ran"
    proc.write_file(script, [[
local crater = require "crater"
local oci = require "crater.oci"
local root, rootfs, mark = arg[1], arg[2], arg[3]
local c = assert(crater.open { root = root })
local cs = c:containers()
for _, id in ipairs { "plain", "hooked" } do
  local opts = { oci.with_process_args("true") }
  if id == "hooked" then
    opts[2] = function(s)
      s.hooks = { poststop = { { path = "/bin/sh", args = { "sh", "-c", "echo ran > " .. mark } } } }
    end
  end
  local ctr = assert(cs:create(id, { rootfs = rootfs, runtime = "crater", spec = opts }))
  local task = assert(ctr:new_task { stdio = "null", start = true, transient = true })
  print(id, "exit", (task:wait()))
  print(id, "delete", (task:delete()))
  assert(cs:delete(id))
end
c:close()
]])
    local trace = env.dir .. "/execs"
    local r = proc.run("strace -f -qq -e trace=execve -o " .. q(trace) .. " luajit " .. q(script) .. " " ..
      q(env.root) .. " " .. q(env.rootfs) .. " " .. q(mark))
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("plain\texit\t0\n", r.stdout)
    assert.matches("plain\tdelete\t0\n", r.stdout)
    assert.matches("hooked\tdelete\t0\n", r.stdout)
    local execs = proc.read_file(trace) or ""
    local deletes = 0
    for _ in execs:gmatch('crater%-runtime"[^\n]*"delete"') do deletes = deletes + 1 end
    -- one delete: the hooked container's (the plain one's cleanup was the shim's)
    assert.are.equal(1, deletes, execs)
    assert.matches('"delete", "%-%-force", "hooked"', execs)
    assert.are.equal("ran\n", proc.read_file(mark))
    -- nothing left of either: runtime state, cgroups
    local rdir = q(env.root .. "/run/runtime") .. "/*/default/"
    assert.are.equal("", proc.run("ls -d " .. rdir .. "plain " .. rdir .. "hooked 2>/dev/null").stdout)
    assert.are.equal("", cgroups_left("plain") .. cgroups_left("hooked"))
  end)
end)
