--- crater check: verify the store (fsck).
return {
  name = "check",
  summary = "Verify the store: re-hash blobs, find orphans and missing blobs, orphan container snapshots",
  description = "Never deletes anything unless --repair is given.  Exit status 1 when problems are found.",
  max_args = 0,
  flags = {
    { name = "quick", help = "hash a sample of blobs instead of all" },
    { name = "repair",
      help = "remove corrupt and orphan blobs, drop records of missing ones, clean stale ingests, remove orphan container snapshots and stale task dirs" },
  },
  run = function(ctx, _, flags)
    local report = ctx:check(ctx:client():check { quick = flags.quick, repair = flags.repair })
    if ctx.format == "json" then
      ctx:record(report)
    else
      ctx.out:write(string.format("checked %d blobs\n", report.checked or 0))
      for _, what in ipairs { "corrupt", "missing", "orphans", "stale_ingests" } do
        for _, item in ipairs(report[what] or {}) do
          local line = type(item) == "table" and (item.digest or item.ref or item.path or "?") .. (item.reason and (": " .. item.reason) or "") or tostring(item)
          ctx.out:write(what:gsub("_", " "), ": ", line, "\n")
        end
      end
      for _, o in ipairs(report.orphan_snapshots or {}) do
        ctx.out:write(string.format("orphan snapshot: %s/%s/%s (container %s never recorded)%s\n", o.namespace,
          o.snapshotter, o.key, tostring(o.container), o.removed and ": removed" or (o.error and (": " .. o.error) or "")))
      end
      for _, d in ipairs(report.stale_task_dirs or {}) do
        ctx.out:write("stale task dir: ", d.dir, flags.repair and ": removed" or "", "\n")
      end
      if report.repaired then ctx.out:write("repaired\n") end
    end
    local problems = #(report.corrupt or {}) + #(report.missing or {}) + #(report.orphans or {}) +
      #(report.orphan_snapshots or {}) + #(report.stale_task_dirs or {})
    if problems > 0 and not flags.repair then return 1 end
  end,
}
