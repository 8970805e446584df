--- crater task ls|start|kill|rm|exec|attach|pause|resume|ps|metrics|wait
local run = require "crater.cli.run"
local tasks = require "crater.tasks"

local function get_task(ctx, id)
  local cs = run.containers(ctx)
  local ctr = ctx:check(cs:get(id))
  return ctx:check(ctr:task()), ctr
end

local function simple(name, summary, fn)
  return {
    name = name, summary = summary, usage = "ID", min_args = 1, max_args = 1,
    run = function(ctx, a)
      local t = get_task(ctx, a[1])
      ctx:check(fn(t))
    end,
  }
end

return {
  name = "task",
  aliases = { "tasks", "t" },
  summary = "Manage tasks (the running processes of containers)",
  commands = {
    {
      name = "ls", aliases = { "list" }, summary = "List tasks", max_args = 0,
      flags = { { name = "quiet", short = "q", help = "print only ids" } },
      run = function(ctx)
        local c = run.client(ctx)
        local list = tasks.list(c, ctx.namespace)
        ctx:list(list, {
          { title = "TASK", key = "id" },
          { title = "PID", get = function(r) return r.pid or "-" end },
          { title = "STATUS", get = function(r)
            local s = r.status:upper()
            if r.status == "stopped" then s = s .. " (" .. tostring(r.exit_status) .. ")" end
            if r.note then s = s .. " [" .. r.note .. "]" end
            return s
          end },
        }, "id")
      end,
    },
    {
      name = "start", summary = "Start a container's task (creating it), attach and wait",
      usage = "ID", min_args = 1, max_args = 1,
      flags = {
        { name = "detach", short = "d", help = "do not attach ('task attach' can, later)" },
        { name = "interactive", short = "i", help = "attach stdin" },
        { name = "log", type = "string", arg = "FILE", help = "with -d: log stdout/stderr to FILE" },
        { name = "null-io", help = "with -d: no stdio at all (/dev/null)" },
      },
      run = function(ctx, a, flags)
        local cs = run.containers(ctx)
        local ctr = ctx:check(cs:get(a[1]))
        local terminal = (ctr:info().spec.process or {}).terminal
        if terminal and flags.interactive and not flags.detach then run.need_terminal("-i with a terminal", "drop -i") end
        local t = ctr:task()
        if not t or t:status().status == "stopped" then
          if t then t:delete() end
          local stdio = flags.detach and run.detached_stdio(flags) or "inherit"
          t = ctx:check(ctr:new_task { stdio = stdio, log = require("crater.util").abs_path(flags.log),
            stdin = flags.interactive and true or false })
        end
        ctx:check(t:start())
        if flags.detach then return 0 end
        t:attach { stdin = flags.interactive and true or false, wait = true }
        return ctx:check(t:wait())
      end,
    },
    {
      name = "kill", summary = "Signal a task", usage = "ID", min_args = 1, max_args = 1,
      flags = {
        { name = "signal", short = "s", type = "string", arg = "SIG", help = "signal (default TERM)" },
        { name = "all", short = "a", help = "signal every process of the task" },
        { name = "exec-id", type = "string", arg = "EXEC", help = "signal an exec'd process" },
      },
      run = function(ctx, a, flags)
        if flags.signal and not pcall(tasks.signal, flags.signal) then
          require("crater.cli.args").usage_error("--signal %s: unknown signal", flags.signal)
        end
        local t = get_task(ctx, a[1])
        if flags["exec-id"] then
          local p = setmetatable({ task = t, id = flags["exec-id"] }, tasks.Process)
          ctx:check(p:kill(flags.signal or "TERM"))
        else
          ctx:check(t:kill(flags.signal or "TERM", { all = flags.all }))
        end
      end,
    },
    {
      name = "rm", aliases = { "delete", "remove" }, summary = "Delete tasks (refused while running)",
      usage = "ID...", min_args = 1,
      flags = { { name = "force", short = "f", help = "kill a running task first" } },
      run = function(ctx, a, flags)
        local failed = false
        for _, id in ipairs(a) do
          local cs = run.containers(ctx)
          local ctr, err = cs:get(id)
          local t
          if ctr then t, err = ctr:task() end
          local code
          if t then code, err = t:delete { force = flags.force } end
          if code then ctx.out:write(id, "\n") else ctx.err:write("crater: ", tostring(err), "\n"); failed = true end
        end
        if failed then return 1 end
      end,
    },
    {
      name = "exec", summary = "Run a process in a task", usage = "ID CMD [ARG...]",
      stop_at_positional = true, min_args = 2,
      flags = {
        { name = "exec-id", type = "string", arg = "EXEC", help = "id of the process (default exec-<pid>)" },
        { name = "tty", short = "t", help = "allocate a terminal" },
        { name = "interactive", short = "i", help = "attach stdin" },
        { name = "detach", short = "d", help = "do not wait" },
        { name = "env", short = "e", type = "list", arg = "K=V", help = "environment (NAME alone: the host's value, if set)" },
        { name = "cwd", type = "string", arg = "DIR", help = "working directory" },
        { name = "user", short = "u", type = "string", arg = "USER[:GROUP]", help = "user (name or uid; default: the container's)" },
      },
      run = function(ctx, a, flags)
        local oci = require "crater.oci"
        local args = require "crater.cli.args"
        if flags.tty and flags.interactive and not flags.detach then run.need_terminal("-t -i", "drop -t to pipe input") end
        local id = table.remove(a, 1)
        local t, ctr = get_task(ctx, id)
        local spec = ctr:info().spec
        local proc = oci.copy(spec.process)
        proc.args = a
        proc.terminal = flags.tty and true or false
        proc.env = proc.env or {}
        -- checked and applied as run's (K=V replaces the container's K)
        if flags.env then
          run.option("--env", table.concat(flags.env, " "), oci.with_env, run.env_list(flags.env)) { process = proc }
        end
        if flags.cwd then run.option("--cwd", flags.cwd, oci.with_cwd) { process = proc } end
        -- a name through the running container's own /etc/passwd and
        -- /etc/group; without -u, the container's user (a name in the spec
        -- is resolved the same way, by Task:exec)
        if flags.user then
          local pid = t:pid()
          local r, err = oci.resolve_user(pid and ("/proc/" .. pid .. "/root") or nil, flags.user)
          if not r then args.usage_error("--user %s: %s", flags.user, err) end
          proc.user = r
        end
        local eid = flags["exec-id"]
        if eid and not eid:match("^[%w][%w_.-]*$") then
          args.usage_error("--exec-id %s: letters, digits, _ . - (not first)", eid)
        end
        if not eid then
          local f = io.open("/proc/sys/kernel/random/uuid", "rb")
          eid = "exec-" .. (f and f:read("*l"):sub(1, 8) or tostring(os.time()))
          if f then f:close() end
        end
        local p = ctx:check(t:exec(eid, proc, { tty = flags.tty, stdio = flags.detach and "null" or "inherit",
          stdin = flags.interactive and true or false }))
        if flags.detach then ctx.out:write(eid, "\n"); return 0 end
        p:attach { stdin = flags.interactive and true or false }
        return ctx:check(p:wait())
      end,
    },
    {
      name = "attach", summary = "Attach to a task's stdio", usage = "ID", min_args = 1, max_args = 1,
      flags = { { name = "no-stdin", help = "do not forward stdin" } },
      run = function(ctx, a, flags)
        local t = get_task(ctx, a[1])
        if t.meta.tty and not flags["no-stdin"] then run.need_terminal("attach to a terminal", "use --no-stdin to watch it") end
        ctx:check(t:attach { stdin = not flags["no-stdin"] })
        local code = t:wait(1000)
        return code or 0
      end,
    },
    simple("pause", "Pause (freeze) a task", function(t) return t:pause() end),
    simple("resume", "Resume a paused task", function(t) return t:resume() end),
    {
      name = "ps", summary = "List the processes of a task", usage = "ID", min_args = 1, max_args = 1,
      run = function(ctx, a)
        local t = get_task(ctx, a[1])
        ctx:list(ctx:check(t:pids()), { { title = "PID", key = "pid" }, { title = "COMMAND", key = "command" } }, "pid")
      end,
    },
    {
      name = "metrics", summary = "Show cgroup statistics of a task", usage = "ID", min_args = 1, max_args = 1,
      run = function(ctx, a)
        local t = get_task(ctx, a[1])
        local m = ctx:check(t:metrics())
        if ctx.format == "json" then ctx:record(m); return end
        local util = require "crater.util"
        -- no limit: -1, or the cgroup's "unlimited" (v1 memory: ~2^63)
        local function limit(n, fmt)
          if n == nil then return "-" end
          if n < 0 or n >= 2 ^ 62 then return "max" end
          return fmt and fmt(n) or tostring(n)
        end
        ctx.out:write(string.format("memory.usage     %s\nmemory.max_usage %s\nmemory.limit     %s\ncpu.usage_ns     %s\npids.current     %s\npids.limit       %s\n",
          m.memory.usage and util.human_size(m.memory.usage) or "-", m.memory.max_usage and util.human_size(m.memory.max_usage) or "-",
          limit(m.memory.limit, util.human_size), tostring(m.cpu.usage_ns or "-"),
          tostring(m.pids.current or "-"), limit(m.pids.limit)))
      end,
    },
    {
      name = "wait", summary = "Wait for a task to exit; exits with its status", usage = "ID", min_args = 1, max_args = 1,
      run = function(ctx, a)
        local t = get_task(ctx, a[1])
        local code = ctx:check(t:wait())
        return code
      end,
    },
  },
}
