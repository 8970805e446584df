--- crater policy ls|check|hooks|eval
local policy = require "crater.policy"
local hosts = require "crater.hosts"
local json = require "crater.json"

--- A policy host from the given files, or from the crater config.
local function load_host(ctx, files)
  local cfg = ctx:check(hosts.load_config(ctx.flags.config))
  local pc = cfg.policies or {}
  local host = policy.new { config = pc }
  if #files > 0 then
    for _, f in ipairs(files) do host:load_file(f) end
  else
    host:load_configured()
  end
  return host
end

return {
  name = "policy",
  aliases = { "policies" },
  summary = "Inspect, check and try policies (Lua hooks)",
  commands = {
    {
      name = "ls", aliases = { "list" }, summary = "List loaded policies in the order they run",
      usage = "[FILE...]",
      flags = { { name = "quiet", short = "q", help = "print only names" } },
      run = function(ctx, files)
        local host = load_host(ctx, files)
        ctx:list(host:list(), {
          { title = "NAME", key = "name" },
          { title = "PRIORITY", key = "priority" },
          { title = "HOOKS", get = function(r) return table.concat(r.hooks, ",") end },
          { title = "FILE", key = "path" },
        }, "name")
        for _, e in ipairs(host.errors) do ctx.err:write("crater: ", e.msg, "\n") end
        if #host.errors > 0 then return 1 end
      end,
    },
    {
      name = "check", summary = "Load policies (configured, or FILEs) and report every error",
      usage = "[FILE...]",
      description = "Exit status 1 when any policy fails to load.  Policies are loaded exactly as\n" ..
        "commands load them: sandboxed, under the instruction budget, config checked against\n" ..
        "each policy's schema.",
      run = function(ctx, files)
        local host = load_host(ctx, files)
        if ctx.format == "json" then
          ctx:record({ policies = json.array(host:list()), errors = json.array(host.errors) })
        else
          for _, p in ipairs(host:list()) do ctx.out:write("ok     ", p.name, "  ", p.path, "\n") end
          for _, e in ipairs(host.errors) do ctx.out:write("error  ", e.msg, "\n") end
        end
        if #host.errors > 0 then return 1 end
      end,
    },
    {
      name = "hooks", summary = "List the hooks policies can implement, with their event fields",
      max_args = 0,
      run = function(ctx)
        local rows = {}
        for name, h in pairs(policy.HOOKS) do
          rows[#rows + 1] = { name = name, kind = h.kind, fields = json.array(h.fields), amend = json.array(h.amend or {}) }
        end
        table.sort(rows, function(a, b) return a.name < b.name end)
        ctx:list(rows, {
          { title = "HOOK", key = "name" },
          { title = "KIND", key = "kind" },
          { title = "EVENT FIELDS", get = function(r) return table.concat(r.fields, ",") end },
          { title = "AMENDABLE", get = function(r) return table.concat(r.amend, ",") end },
        }, "name")
      end,
    },
    {
      name = "eval", summary = "Run one hook of the loaded policies on an event given as JSON",
      usage = "HOOK EVENT_JSON [FILE...]", min_args = 2,
      description = "Prints the decision (and the amended event).  Exit status 1 when denied.",
      examples = "  crater policy eval image.pre_pull '{\"ref\":\"docker.io/library/redis:latest\",\"tag\":\"latest\"}' policies/no-latest.lua",
      run = function(ctx, a)
        local hook, evtext = table.remove(a, 1), table.remove(a, 1)
        if not policy.HOOKS[hook] then ctx:fail("unknown hook %q (see 'crater policy hooks')", hook) end
        local ev = ctx:check(json.decode(evtext))
        local host = load_host(ctx, a)
        ev.namespace = ev.namespace or ctx.namespace
        local r, why, kind = host:run(hook, ev)
        local out = { hook = hook, event = ev }
        if policy.HOOKS[hook].kind == "select" then
          out.result, out.policy = r, why
        else
          out.allowed = r == true
          out.reason = why
          out.kind = kind
        end
        ctx:record(out)
        if policy.HOOKS[hook].kind == "admission" and r ~= true then return 1 end
      end,
    },
  },
}
