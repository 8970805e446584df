--- crater image ls|inspect|rm|tag|pull|push|export|import|usage|mount|unmount
local util = require "crater.util"
local json = require "crater.json"
local reference = require "crater.reference"
local platforms = require "crater.platforms"

local M = {}

--- Registry flags shared by pull and push.
M.registry_flags = {
  { name = "config", type = "string", arg = "FILE", help = "crater config with hosts/auths (default /etc/crater/config.lua)" },
  { name = "plain-http", help = "use plain HTTP for localhost/127.0.0.1 registries" },
  { name = "skip-verify", help = "do not verify the registry's TLS certificate" },
  { name = "user", short = "u", type = "string", arg = "USER[:PASS]", help = "registry credentials (password from CRATER_PASSWORD when omitted)" },
  { name = "quiet", short = "q", help = "no progress output" },
}

--- Builds pull/push options from flags.
function M.registry_opts(ctx, flags)
  local hosts = require "crater.hosts"
  local cfg, err = hosts.load_config(flags.config)
  if not cfg then ctx:fail("%s", err) end
  local o = { config = cfg, plain_http = flags["plain-http"] or false, insecure_skip_verify = flags["skip-verify"] or nil }
  if flags.user then o.credential = require("crater.auth").from_flag(flags.user) end
  local progress = require "crater.progress"
  o.progress = progress.new { mode = progress.auto_mode(ctx.out, { format = ctx.format, quiet = flags.quiet }), out = ctx.out }
  return o
end

M.pull_flags = {
  { name = "platform", type = "string", arg = "OS/ARCH[/VARIANT]", help = "platform to pull (default: this host)" },
  { name = "all-platforms", help = "pull every platform of an index" },
  { name = "unpack", help = "unpack into the snapshotter (default on; --no-unpack to skip)", default = nil },
  { name = "snapshotter", type = "string", arg = "NAME", help = "snapshotter to unpack into (default: selected by policy)" },
  { name = "parallel", type = "number", arg = "N", help = "concurrent blob downloads (default 8)" },
}
for _, f in ipairs(M.registry_flags) do M.pull_flags[#M.pull_flags + 1] = f end

function M.run_pull(ctx, a, flags)
  local o = M.registry_opts(ctx, flags)
  o.platform = flags.platform
  o.all_platforms = flags["all-platforms"]
  o.unpack = flags.unpack
  o.snapshotter = flags.snapshotter
  o.parallel = flags.parallel
  local res, err, kind = ctx:client():pull(a[1], o)
  if not res then o.progress:finish() end -- tty: erase the live table, keep failed items
  ctx:check(res, err, kind)
  if ctx.format == "json" then
    ctx.out:write(json.encode { event = "done", image = res }, "\n")
  elseif not flags.quiet then
    ctx.out:write(string.format("pulled %s (%s)%s\n", reference.familiar(res.name), res.target.digest,
      res.unpacked and (" unpacked " .. res.unpacked.platform) or ""))
  else
    ctx.out:write(res.target.digest, "\n")
  end
end

M.push_flags = {
  { name = "chunk-size", type = "number", arg = "BYTES", help = "upload in chunks (PATCH) of this size" },
}
for _, f in ipairs(M.registry_flags) do M.push_flags[#M.push_flags + 1] = f end

function M.run_push(ctx, a, flags)
  local o = M.registry_opts(ctx, flags)
  o.chunk_size = flags["chunk-size"]
  local res, err, kind = ctx:client():push(a[1], a[2], o)
  if not res then o.progress:finish() end
  ctx:check(res, err, kind)
  if ctx.format == "json" then
    ctx.out:write(json.encode { event = "done", push = res }, "\n")
  elseif not flags.quiet then
    ctx.out:write(string.format("pushed %s (%s): %d uploaded, %d mounted, %d already there\n", res.name, res.digest,
      res.blobs.uploaded, res.blobs.mounted, res.blobs.exists))
  end
end

local function image_rows(ctx, filters)
  local imgs = ctx:client():images()
  local list = ctx:check(imgs:list(filters and #filters > 0 and filters or nil))
  local rows = {}
  for _, img in ipairs(list) do
    local row = { name = img.name, digest = img.target.digest, media_type = img.target.media_type,
      size = img.target.size, labels = img.labels, created_at = img.created_at, platforms = json.array {} }
    local info = imgs:inspect(img.name)
    if info then
      row.size = info.content_size
      for _, m in ipairs(info.manifests) do
        if m.platform and m.present ~= false then row.platforms[#row.platforms + 1] = m.platform end
      end
    end
    rows[#rows + 1] = row
  end
  table.sort(rows, function(x, y) return x.name < y.name end)
  return rows
end

M.group = {
  name = "image",
  aliases = { "images", "i" },
  summary = "Manage images (pull, push, list, inspect, import, export)",
  commands = {
    {
      name = "ls", aliases = { "list" }, summary = "List images", usage = "[FILTER...]",
      description = "Filters (as ctr's): name==NAME, target.digest==D, target.media_type==T, labels.\"KEY\"==VALUE,\n" ..
        "labels.\"KEY\" (exists), != too; comma-separated clauses AND, several filters OR.",
      flags = { { name = "quiet", short = "q", help = "print only names" } },
      run = function(ctx, filters)
        ctx:list(image_rows(ctx, filters), {
          { title = "NAME", get = function(r) return reference.familiar(r.name) end },
          { title = "TYPE", get = function(r)
            local k = require("crater.images").kind_of(r.media_type)
            return k == "index" and "index" or (k or r.media_type) end },
          { title = "DIGEST", get = function(r) return util.short_digest(r.digest) end },
          { title = "SIZE", get = function(r) return util.human_size(r.size) end },
          { title = "PLATFORMS", get = function(r) return table.concat(r.platforms, ",") end },
          { title = "AGE", get = function(r) return util.age(r.created_at) end },
        }, "name")
      end,
    },
    {
      name = "inspect", summary = "Show an image: target, platforms, config, layers, sizes",
      usage = "NAME", min_args = 1, max_args = 1,
      run = function(ctx, a)
        local info = ctx:check(ctx:client():images():inspect(a[1]))
        if ctx.format == "json" then return ctx:record(info) end
        local o = ctx.out
        o:write(string.format("Name:        %s\nDigest:      %s\nMedia type:  %s\nContent:     %s\nUnpacked:    %s\n",
          info.name, info.target.digest, info.target.media_type, util.human_size(info.content_size),
          info.unpacked_size and util.human_size(info.unpacked_size) or "-"))
        if info.labels and next(info.labels) then o:write("Labels:      ", util.format_labels(info.labels), "\n") end
        for _, m in ipairs(info.manifests) do
          o:write(string.format("\nPlatform %s  manifest %s%s\n", m.platform or "?", m.digest,
            m.present == false and " (not pulled)" or ""))
          if m.config then
            o:write(string.format("  config  %s  %s\n", m.config.digest, util.human_size(m.config.size)))
            local c = m.config.image
            if c and c.config then
              local cc = c.config
              if cc.Entrypoint then o:write("  entrypoint ", json.encode(cc.Entrypoint), "\n") end
              if cc.Cmd then o:write("  cmd     ", json.encode(cc.Cmd), "\n") end
              if cc.Env then o:write("  env     ", table.concat(cc.Env, " "), "\n") end
              if cc.WorkingDir and cc.WorkingDir ~= "" then o:write("  workdir ", cc.WorkingDir, "\n") end
              if cc.User and cc.User ~= "" then o:write("  user    ", cc.User, "\n") end
            end
            if c and c.created then o:write("  created ", tostring(c.created), "\n") end
          end
          for i, l in ipairs(m.layers or {}) do
            o:write(string.format("  layer %d %s  %9s  %s%s\n", i, l.digest, util.human_size(l.size), l.media_type,
              l.foreign and " (foreign)" or (l.present and "" or " (missing)")))
          end
          if m.chain_id then o:write("  chain   ", m.chain_id, "\n") end
        end
      end,
    },
    {
      name = "rm", aliases = { "remove", "delete" }, summary = "Remove image records (content goes at the next GC)",
      usage = "NAME...", min_args = 1,
      run = function(ctx, a)
        local imgs, failed = ctx:client():images(), false
        for _, n in ipairs(a) do
          local ok, err = imgs:delete(n)
          if ok then ctx.out:write(n, "\n") else ctx.err:write("crater: ", tostring(err), "\n"); failed = true end
        end
        if failed then return 1 end
      end,
    },
    {
      name = "tag", summary = "Give an image another name", usage = "SOURCE TARGET...", min_args = 2,
      run = function(ctx, a)
        local imgs = ctx:client():images()
        for i = 2, #a do
          ctx:check(imgs:tag(a[1], a[i]))
          ctx.out:write(reference.normalize(a[i]) or a[i], "\n")
        end
      end,
    },
    {
      name = "pull", summary = "Pull an image from a registry", usage = "REF", min_args = 1, max_args = 1,
      flags = M.pull_flags, run = M.run_pull,
      examples = "  crater image pull busybox\n  crater image pull --plain-http 127.0.0.1:5000/app:1 --platform linux/arm64",
    },
    {
      name = "push", summary = "Push an image to a registry", usage = "NAME [REF]", min_args = 1, max_args = 2,
      flags = M.push_flags, run = M.run_push,
    },
    {
      name = "export", summary = "Write images to an OCI image layout tarball", usage = "OUTPUT NAME...",
      min_args = 2,
      flags = { { name = "ref-name", type = "string", arg = "name|tag",
        help = "what org.opencontainers.image.ref.name holds (default name)" } },
      run = function(ctx, a, flags)
        local out = table.remove(a, 1)
        local res = ctx:check(require("crater.transfer").export(ctx:client(), a, out, { ref_name = flags["ref-name"] }))
        if ctx.format == "json" then ctx:record(res) else
          ctx.out:write(string.format("exported %d image(s), %d blobs, %s to %s\n", res.images, res.blobs,
            util.human_size(res.size), out))
        end
      end,
    },
    {
      name = "import", summary = "Import an OCI layout (tar or dir) or a docker-archive tar", usage = "PATH",
      min_args = 1, max_args = 1,
      flags = {
        { name = "name", type = "string", arg = "NAME", help = "name for the (single) imported image" },
        { name = "base-name", type = "string", arg = "NAME", help = "repository for images named only by a tag" },
        { name = "label", short = "l", type = "list", arg = "KEY=VALUE", help = "label the image records" },
      },
      run = function(ctx, a, flags)
        local name = flags.name and (reference.normalize(flags.name) or ctx:fail("invalid --name %q", flags.name))
        local res = ctx:check(require("crater.transfer").import(ctx:client(), a[1], { name = name,
          base_name = flags["base-name"], labels = util.parse_labels(flags.label) }))
        ctx:list(res, { { title = "NAME", key = "name" }, { title = "DIGEST", key = "digest" } }, "name")
      end,
    },
    {
      name = "mount", summary = "Mount an image's root filesystem read-only at DIR (unpacks it if needed)",
      usage = "IMAGE DIR", min_args = 2, max_args = 2,
      flags = { { name = "snapshotter", type = "string", arg = "NAME", help = "snapshotter (default: selected by policy)" } },
      run = function(ctx, a, flags)
        local res = ctx:check(ctx:client():images():mount(a[1], a[2], { snapshotter = flags.snapshotter }))
        if ctx.format == "json" then ctx:record(res) else ctx.out:write(res.dir, "\n") end
      end,
    },
    {
      name = "unpack", summary = "Unpack an image's layers into a snapshotter (skips layers already unpacked)",
      usage = "IMAGE", min_args = 1, max_args = 1,
      flags = { { name = "snapshotter", type = "string", arg = "NAME", help = "snapshotter (default: selected by policy)" } },
      run = function(ctx, a, flags)
        local res = ctx:check(ctx:client():images():unpack(a[1], { snapshotter = flags.snapshotter }))
        if ctx.format == "json" then ctx:record(res) else
          ctx.out:write(string.format("%s: %d layer(s) unpacked, %d already there, snapshotter %s, chain %s\n", a[1],
            res.applied, res.skipped, tostring(res.snapshotter), tostring(res.chain_id)))
        end
      end,
    },
    {
      name = "unmount", aliases = { "umount" }, summary = "Unmount an image mounted with `image mount`",
      usage = "DIR", min_args = 1, max_args = 1,
      flags = { { name = "snapshotter", type = "string", arg = "NAME", help = "snapshotter holding the view" } },
      run = function(ctx, a, flags)
        ctx:check(ctx:client():images():unmount(a[1], { snapshotter = flags.snapshotter }))
        if ctx.format ~= "json" then ctx.out:write(a[1], "\n") end
      end,
    },
    {
      name = "usage", summary = "Content size and unpacked size of images", usage = "[NAME...]",
      run = function(ctx, a)
        local imgs = ctx:client():images()
        local names = a
        if #names == 0 then for _, r in ipairs(ctx:check(imgs:list())) do names[#names + 1] = r.name end end
        local rows = {}
        for _, n in ipairs(names) do rows[#rows + 1] = ctx:check(imgs:usage(n)) end
        ctx:list(rows, {
          { title = "NAME", get = function(r) return reference.familiar(r.name) end },
          { title = "CONTENT", get = function(r) return util.human_size(r.content_size) end },
          { title = "UNPACKED", get = function(r) return r.unpacked_size and util.human_size(r.unpacked_size) or "-" end },
          { title = "PLATFORMS", get = function(r) return table.concat(r.platforms, ",") end },
        }, "name")
      end,
    },
  },
}

-- keep platforms referenced for --platform validation at parse time
M.validate_platform = platforms.parse

local group = M.group
group.shared = M
return group
