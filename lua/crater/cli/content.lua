--- crater content ls|get|ingest|rm|label|status|abort|fetch-local
local util = require "crater.util"

local function blob_columns()
  return {
    { title = "DIGEST", key = "digest" },
    { title = "SIZE", get = function(r) return util.human_size(r.size) end },
    { title = "AGE", get = function(r) return util.age(r.created_at) end },
    { title = "LABELS", get = function(r) return util.format_labels(r.labels) end },
  }
end

--- Ingests path (or stdin) and prints the digest.
local function ingest(ctx, path, flags)
  local cs = ctx:client():content()
  local ref = flags.ref or ("ingest-" .. (flags.expected or (path and path:gsub("[^%w._-]", "_")) or "stdin"))
  local dgst, status = ctx:check(cs:ingest(ref, path, {
    expected = flags.expected, size = flags.size, labels = util.parse_labels(flags.label),
  }))
  if ctx.format == "json" then
    ctx:record({ digest = dgst, status = status, ref = ref })
  else
    ctx.out:write(dgst, status == "exists" and " (already exists)\n" or "\n")
  end
end

return {
  name = "content",
  summary = "Manage the content store (blobs addressed by digest)",
  commands = {
    {
      name = "ls", aliases = { "list" }, summary = "List blobs", usage = "[FILTER...]",
      description = "Filters: labels.\"KEY\"==VALUE, labels.\"KEY\" (exists). All must match.",
      flags = { { name = "quiet", short = "q", help = "print only digests" } },
      run = function(ctx, filters)
        local list = ctx:check(ctx:client():content():list(#filters > 0 and filters or nil))
        ctx:list(list, blob_columns(), "digest")
      end,
    },
    {
      name = "get", aliases = { "cat" }, summary = "Write a blob to stdout or a file", usage = "DIGEST",
      min_args = 1, max_args = 1,
      flags = { { name = "output", short = "o", type = "string", arg = "FILE", help = "write to FILE instead of stdout" } },
      run = function(ctx, a, flags)
        local cs = ctx:client():content()
        local info = ctx:check(cs:info(a[1]))
        local out = ctx.out
        if flags.output then out = ctx:check(io.open(flags.output, "wb")) end
        local chunk, off = 4 * 1024 * 1024, 0
        while off < info.size do
          local data = ctx:check(cs:read(a[1], { offset = off, length = math.min(chunk, info.size - off) }))
          out:write(data)
          off = off + #data
          if #data == 0 then break end
        end
        if flags.output then out:close() end
      end,
    },
    {
      name = "ingest", summary = "Add a file (or stdin) to the content store", usage = "[FILE|-]",
      description = "Resumable: rerunning with the same --ref continues an interrupted ingest.\n" ..
        "With --expected the data must hash to DIGEST or nothing is committed.",
      max_args = 1,
      flags = {
        { name = "expected", type = "string", arg = "DIGEST", help = "expected digest" },
        { name = "size", type = "number", arg = "BYTES", help = "expected size" },
        { name = "ref", type = "string", arg = "REF", help = "ingest reference (default derived from --expected or the file)" },
        { name = "label", short = "l", type = "list", arg = "KEY=VALUE", help = "label to set" },
      },
      run = function(ctx, a, flags)
        local path = a[1]
        if path == "-" then path = nil end
        ingest(ctx, path, flags)
      end,
    },
    {
      name = "rm", aliases = { "remove", "delete" }, summary = "Remove blobs from this namespace",
      usage = "DIGEST...", min_args = 1,
      run = function(ctx, a)
        local cs, failed = ctx:client():content(), false
        for _, d in ipairs(a) do
          local ok, err = cs:delete(d)
          if ok then ctx.out:write(d, "\n") else ctx.err:write("crater: ", err, "\n"); failed = true end
        end
        if failed then return 1 end
      end,
    },
    {
      name = "label", summary = "Show, set or clear labels of a blob (KEY= clears)",
      usage = "DIGEST [KEY=VALUE...]", min_args = 1,
      flags = { { name = "replace", help = "replace all labels instead of merging" } },
      run = function(ctx, a, flags)
        local d = table.remove(a, 1)
        local cs = ctx:client():content()
        local labels
        if #a > 0 or flags.replace then
          labels = ctx:check(cs:labels(d, util.parse_labels(a), flags.replace))
        else
          labels = ctx:check(cs:labels(d))
        end
        ctx:record(labels)
      end,
    },
    {
      name = "status", summary = "List in-progress ingests", max_args = 0,
      flags = { { name = "quiet", short = "q", help = "print only refs" } },
      run = function(ctx)
        local list = ctx:check(ctx:client():content():status())
        ctx:list(list, {
          { title = "REF", key = "ref" },
          { title = "OFFSET", get = function(r) return util.human_size(r.offset) end },
          { title = "TOTAL", get = function(r) return r.total and r.total > 0 and util.human_size(r.total) or "-" end },
          { title = "EXPECTED", get = function(r) return r.expected or "-" end },
        }, "ref")
      end,
    },
    {
      name = "abort", summary = "Abort in-progress ingests", usage = "REF...", min_args = 1,
      run = function(ctx, a)
        local cs = ctx:client():content()
        for _, ref in ipairs(a) do ctx:check(cs:abort(ref)) end
      end,
    },
    {
      name = "fetch-local", summary = "Copy blobs from a local OCI image layout into the store",
      usage = "LAYOUT_DIR [DIGEST...]", min_args = 1,
      description = "Copies the named blobs (default: every blob under LAYOUT_DIR/blobs) and\n" ..
        "verifies each against its digest before it becomes visible.",
      run = function(ctx, a)
        local dir = table.remove(a, 1)
        local digests = a
        if #digests == 0 then
          local p = io.popen("find '" .. dir:gsub("'", "'\\''") .. "/blobs' -mindepth 2 -maxdepth 2 -type f 2>/dev/null")
          for line in p:lines() do
            local alg, hex = line:match("/blobs/([%w]+)/([%x]+)$")
            if alg then digests[#digests + 1] = alg .. ":" .. hex end
          end
          p:close()
          if #digests == 0 then ctx:fail("%s: no blobs found (is it an OCI image layout?)", dir) end
        end
        local cs = ctx:client():content()
        for _, d in ipairs(digests) do
          local alg, hex = d:match("^(%w+):(%x+)$")
          if not alg then ctx:fail("invalid digest %q", d) end
          local dgst, status = ctx:check(cs:ingest("fetch-local-" .. d, dir .. "/blobs/" .. alg .. "/" .. hex,
            { expected = d }))
          ctx.out:write(dgst, status == "exists" and " (already exists)\n" or "\n")
        end
      end,
    },
  },
}
