--- crater container create|ls|info|rm|label
local run = require "crater.cli.run"
local util = require "crater.util"

local function age(ns)
  if not ns then return "-" end
  return util.age and util.age(ns) or tostring(ns)
end

return {
  name = "container",
  aliases = { "containers", "c" },
  summary = "Manage containers (metadata: image, snapshot, spec, runtime, labels)",
  commands = {
    {
      name = "create", summary = "Create a container (no task)",
      usage = "IMAGE ID [CMD [ARG...]]  |  --rootfs DIR ID [CMD [ARG...]]",
      stop_at_positional = true, min_args = 1, flags = run.spec_flags,
      run = function(ctx, a, flags)
        local _, id = run.create_container(ctx, a, flags)
        ctx.out:write(id, "\n")
      end,
    },
    {
      name = "ls", aliases = { "list" }, summary = "List containers", usage = "[FILTER...]",
      description = "Filters (as ctr's): id==ID, image==NAME, runtime==R, snapshotter==S, labels.\"KEY\"==VALUE,\n" ..
        "labels.\"KEY\" (exists), != too; comma-separated clauses AND, several filters OR.",
      flags = { { name = "quiet", short = "q", help = "print only ids" } },
      run = function(ctx, filters)
        local cs = run.containers(ctx)
        local list = ctx:check(cs:list(#filters > 0 and filters or nil))
        ctx:list(list, {
          { title = "CONTAINER", key = "id" },
          { title = "IMAGE", get = function(r) return r.image or (r.rootfs and ("rootfs:" .. r.rootfs)) or "-" end },
          { title = "RUNTIME", key = "runtime" },
          { title = "CREATED", get = function(r) return age(r.created_at) end },
          { title = "LABELS", get = function(r) return util.format_labels(r.labels or {}) end },
        }, "id")
      end,
    },
    {
      name = "info", summary = "Show a container (with its spec)", usage = "ID", min_args = 1, max_args = 1,
      flags = { { name = "spec", help = "print only the OCI spec" } },
      run = function(ctx, a, flags)
        local cs = run.containers(ctx)
        local ctr = ctx:check(cs:get(a[1]))
        local rec = ctr:info()
        require("crater.cli.output").json(ctx.out, flags.spec and rec.spec or rec)
      end,
    },
    {
      name = "rm", aliases = { "delete", "remove" }, summary = "Delete containers (and their snapshots)",
      usage = "ID...", min_args = 1,
      flags = { { name = "force", short = "f", help = "also kill and delete a running task" } },
      run = function(ctx, a, flags)
        local cs, failed = run.containers(ctx), false
        for _, id in ipairs(a) do
          local ok, err = cs:delete(id, { force = flags.force })
          if ok then ctx.out:write(id, "\n") else ctx.err:write("crater: ", tostring(err), "\n"); failed = true end
        end
        if failed then return 1 end
      end,
    },
    {
      name = "label", summary = "Show, set or clear labels (KEY= clears)", usage = "ID [KEY=VALUE...]", min_args = 1,
      flags = { { name = "replace", help = "replace all labels instead of merging" } },
      run = function(ctx, a, flags)
        local id = table.remove(a, 1)
        local cs = run.containers(ctx)
        local set = (#a > 0 or flags.replace) and util.parse_labels(a) or nil
        ctx:record(ctx:check(cs:labels(id, set, flags.replace)))
      end,
    },
  },
}
