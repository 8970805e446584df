--- crater lease ls|create|rm: leases protect resources from GC while work
--- is in progress (a pull holds one until the image is recorded).
local util = require "crater.util"
local json = require "crater.json"

return {
  name = "lease",
  aliases = { "leases" },
  summary = "Manage leases (protect content and snapshots from GC)",
  commands = {
    {
      name = "ls", aliases = { "list" }, summary = "List leases", max_args = 0,
      flags = { { name = "quiet", short = "q", help = "print only ids" } },
      run = function(ctx)
        local c = ctx:client()
        local list = ctx:check(c.backend:lease_list(c.ns))
        for _, l in ipairs(list) do l.resources = json.array(l.resources or {}) end
        ctx:list(list, {
          { title = "ID", key = "id" },
          { title = "CREATED", get = function(r) return util.age(r.created_at) end },
          { title = "EXPIRES", get = function(r) return r.expire_at and util.rfc3339(r.expire_at) or "-" end },
          { title = "RESOURCES", get = function(r) return #r.resources end },
          { title = "LABELS", get = function(r) return util.format_labels(r.labels) end },
        }, "id")
      end,
    },
    {
      name = "create", summary = "Create a lease", usage = "ID [KEY=VALUE...]", min_args = 1,
      flags = { { name = "expire", type = "number", arg = "SECONDS", help = "expire after this many seconds" } },
      run = function(ctx, a, flags)
        local c = ctx:client()
        local id = table.remove(a, 1)
        ctx:check(c.backend:lease_create(c.ns, id, util.parse_labels(a), flags.expire))
        ctx.out:write(id, "\n")
      end,
    },
    {
      name = "rm", aliases = { "remove", "delete" }, summary = "Remove leases", usage = "ID...", min_args = 1,
      run = function(ctx, a)
        local c, failed = ctx:client(), false
        for _, id in ipairs(a) do
          local ok, err = c.backend:lease_delete(c.ns, id)
          if ok then ctx.out:write(id, "\n") else ctx.err:write("crater: ", err, "\n"); failed = true end
        end
        if failed then return 1 end
      end,
    },
  },
}
