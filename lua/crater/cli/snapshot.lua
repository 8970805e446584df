--- crater snapshot ls|tree|info|prepare|view|commit|rm|mounts|usage|label|mount|unmount|cleanup
---
--- Every subcommand takes --snapshotter NAME (default: the selection rules
--- of crater.snapshotters, or CRATER_SNAPSHOTTER).  Listings honour
--- --format json.
local util = require "crater.util"

local SNAP_FLAG = { name = "snapshotter", short = "s", type = "string", arg = "NAME",
  help = "snapshotter (overlayfs, native, btrfs or a registered Lua one; default: selected)" }

local function snaps(ctx, flags)
  local c = ctx:client()
  local name = flags.snapshotter
  local reg = require("crater.snapshotters")
  if not name then name = (reg.default(c.root, nil, c:policies())) end
  if not reg.exists(name) then
    require("crater.cli.args").usage_error("--snapshotter %s: unknown (have: %s)", name, table.concat(reg.names(), ", "))
  end
  return c:snapshots(name)
end

local function with(flags)
  local out = { SNAP_FLAG }
  for _, f in ipairs(flags or {}) do out[#out + 1] = f end
  return out
end

local function print_mounts(ctx, mounts)
  if ctx.format == "json" then return ctx:record(mounts) end
  for _, m in ipairs(mounts) do
    ctx.out:write(string.format("%s %s %s%s\n", m.type, m.source, table.concat(m.options or {}, ","),
      m.target and (" (at " .. m.target .. ")") or ""))
  end
end

-- `snapshot prepare` and `snapshot view`: the snapshotter method of the
-- same name, optionally mounting the result
local function creator(method, summary)
  return {
    name = method, summary = summary, usage = "KEY [PARENT]",
    min_args = 1, max_args = 2,
    flags = with {
      { name = "label", short = "l", type = "list", arg = "KEY=VALUE", help = "label to set" },
      { name = "mount", type = "string", arg = "DIR", help = "also mount it at DIR" },
    },
    run = function(ctx, a, flags)
      local sn = snaps(ctx, flags)
      local mounts = ctx:check(sn[method](sn, a[1], a[2], util.parse_labels(flags.label)))
      if flags.mount then ctx:check(require("crater.mount").all(mounts, flags.mount)) end
      print_mounts(ctx, mounts)
    end,
  }
end

local function info_columns()
  return {
    { title = "KEY", key = "name" },
    { title = "PARENT", get = function(r) return r.parent or "" end },
    { title = "KIND", key = "kind" },
    { title = "AGE", get = function(r) return util.age(r.created_at) end },
    { title = "LABELS", get = function(r) return util.format_labels(r.labels) end },
  }
end

return {
  name = "snapshot",
  aliases = { "snapshots", "snap" },
  summary = "Manage snapshots (container root filesystems and image layers)",
  commands = {
    {
      name = "ls", aliases = { "list" }, summary = "List snapshots", usage = "[FILTER...]",
      description = "Filters: name==K, parent==K, kind==active|view|committed, labels.\"KEY\"==VALUE,\n" ..
        "labels.\"KEY\" (exists); comma-separated clauses AND, several filters OR.",
      flags = with { { name = "quiet", short = "q", help = "print only keys" } },
      run = function(ctx, filters, flags)
        local list = ctx:check(snaps(ctx, flags):walk(#filters > 0 and filters or nil))
        ctx:list(list, info_columns(), "name")
      end,
    },
    {
      name = "tree", summary = "Show snapshots as parent/child trees", max_args = 0, flags = with(),
      run = function(ctx, _, flags)
        local list = ctx:check(snaps(ctx, flags):walk())
        if ctx.format == "json" then return ctx:list(list, info_columns()) end
        local children, roots = {}, {}
        for _, i in ipairs(list) do
          if i.parent then
            children[i.parent] = children[i.parent] or {}
            table.insert(children[i.parent], i)
          else
            roots[#roots + 1] = i
          end
        end
        local function show(i, depth)
          ctx.out:write(string.rep("  ", depth), depth > 0 and "\\_ " or "", i.name, " (", i.kind, ")\n")
          for _, c in ipairs(children[i.name] or {}) do show(c, depth + 1) end
        end
        for _, r in ipairs(roots) do show(r, 0) end
      end,
    },
    {
      name = "info", aliases = { "stat" }, summary = "Show a snapshot", usage = "KEY", min_args = 1, max_args = 1,
      flags = with(),
      run = function(ctx, a, flags)
        local info = ctx:check(snaps(ctx, flags):stat(a[1]))
        ctx:record(info, { "name", "parent", "kind", "created_at", "updated_at", "labels" })
      end,
    },
    creator("prepare", "Create an active (writable) snapshot"),
    creator("view", "Create a read-only view of a committed snapshot"),
    {
      name = "commit", summary = "Commit an active snapshot under a new name", usage = "NAME KEY",
      min_args = 2, max_args = 2,
      flags = with { { name = "label", short = "l", type = "list", arg = "KEY=VALUE", help = "labels of the committed snapshot" } },
      run = function(ctx, a, flags)
        ctx:check(snaps(ctx, flags):commit(a[1], a[2], util.parse_labels(flags.label)))
      end,
    },
    {
      name = "rm", aliases = { "remove", "delete" }, summary = "Remove snapshots (children first)",
      usage = "KEY...", min_args = 1, flags = with(),
      run = function(ctx, a, flags)
        local sn, failed = snaps(ctx, flags), false
        for _, k in ipairs(a) do
          local ok, err = sn:remove(k)
          if ok then ctx.out:write(k, "\n") else ctx.err:write("crater: ", err, "\n"); failed = true end
        end
        if failed then return 1 end
      end,
    },
    {
      name = "mounts", summary = "Print the mounts of an active snapshot or view", usage = "KEY",
      min_args = 1, max_args = 1, flags = with(),
      run = function(ctx, a, flags) print_mounts(ctx, ctx:check(snaps(ctx, flags):mounts(a[1]))) end,
    },
    {
      name = "usage", aliases = { "du" }, summary = "Disk usage of snapshots (default: all)", usage = "[KEY...]",
      flags = with(),
      run = function(ctx, a, flags)
        local sn = snaps(ctx, flags)
        local keys = a
        if #keys == 0 then
          for _, i in ipairs(ctx:check(sn:walk())) do keys[#keys + 1] = i.name end
        end
        local rows = {}
        for _, k in ipairs(keys) do
          local u = ctx:check(sn:usage(k))
          rows[#rows + 1] = { name = k, size = u.size, inodes = u.inodes }
        end
        ctx:list(rows, {
          { title = "KEY", key = "name" },
          { title = "SIZE", get = function(r) return util.human_size(r.size) end },
          { title = "INODES", key = "inodes" },
        }, "name")
      end,
    },
    {
      name = "label", summary = "Show, set or clear labels of a snapshot (KEY= clears)",
      usage = "SNAPSHOT [KEY=VALUE...]", min_args = 1,
      flags = with { { name = "replace", help = "replace all labels instead of merging" } },
      run = function(ctx, a, flags)
        local key = table.remove(a, 1)
        local sn = snaps(ctx, flags)
        local info
        if #a > 0 or flags.replace then
          info = ctx:check(sn:update(key, util.parse_labels(a), flags.replace))
        else
          info = ctx:check(sn:stat(key))
        end
        ctx:record(info.labels)
      end,
    },
    {
      name = "mount", summary = "Mount an active snapshot or view at DIR", usage = "KEY DIR",
      min_args = 2, max_args = 2, flags = with(),
      run = function(ctx, a, flags) ctx:check(snaps(ctx, flags):mount(a[1], a[2])) end,
    },
    {
      name = "unmount", aliases = { "umount" }, summary = "Unmount everything at DIR", usage = "DIR",
      min_args = 1, max_args = 1,
      run = function(ctx, a) ctx:check(require("crater.mount").unmount_all(a[1])) end,
    },
    {
      name = "cleanup", summary = "Remove snapshotter data no snapshot references", max_args = 0, flags = with(),
      run = function(ctx, _, flags)
        local n = ctx:check(snaps(ctx, flags):cleanup())
        if ctx.format == "json" then ctx:record({ removed = n }) else ctx.out:write("removed ", n, "\n") end
      end,
    },
  },
}
