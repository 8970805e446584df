--- crater namespace ls|create|rm|label
local util = require "crater.util"

local function labels_col(r) return util.format_labels(r.labels) end

return {
  name = "namespace",
  aliases = { "namespaces", "ns" },
  summary = "Manage namespaces",
  commands = {
    {
      name = "ls", aliases = { "list" }, summary = "List namespaces", max_args = 0,
      flags = { { name = "quiet", short = "q", help = "print only names" } },
      run = function(ctx)
        local list = ctx:check(ctx:client():namespaces():list())
        ctx:list(list, { { title = "NAME", key = "name" }, { title = "LABELS", get = labels_col } }, "name")
      end,
    },
    {
      name = "create", summary = "Create a namespace", usage = "NAME [KEY=VALUE...]", min_args = 1,
      run = function(ctx, a)
        local name = table.remove(a, 1)
        ctx:check(ctx:client():namespaces():create(name, util.parse_labels(a)))
      end,
    },
    {
      name = "rm", aliases = { "remove", "delete" }, summary = "Remove empty namespaces",
      usage = "NAME...", min_args = 1,
      run = function(ctx, a)
        local ns, failed = ctx:client():namespaces(), false
        for _, name in ipairs(a) do
          local ok, err = ns:remove(name)
          if ok then ctx.out:write(name, "\n") else ctx.err:write("crater: ", err, "\n"); failed = true end
        end
        if failed then return 1 end
      end,
    },
    {
      name = "label", summary = "Set or clear labels on a namespace (KEY= clears)",
      usage = "NAME [KEY=VALUE...]", min_args = 1,
      flags = { { name = "replace", help = "replace all labels instead of merging" } },
      run = function(ctx, a, flags)
        local name = table.remove(a, 1)
        local ns = ctx:client():namespaces()
        if #a > 0 or flags.replace then ctx:check(ns:labels(name, util.parse_labels(a), flags.replace)) end
        local info = ctx:check(ns:get(name))
        ctx:record(info.labels)
      end,
    },
  },
}
