--- crater.push: pushes an image (every platform of an index that is
--- present locally) to a registry.
---
--- ```lua
--- assert(client:push("docker.io/library/busybox:latest", "127.0.0.1:5000/mirror/busybox:1",
---   { plain_http = true }))
--- ```
---
--- Order: for each platform manifest its config and layers (HEAD first:
--- blobs the registry has are skipped; a blob whose
--- `containerd.io/distribution.source.<host>` label names another repository
--- on the same registry is mounted instead of uploaded), then the manifest
--- PUT by digest; finally the top manifest/index PUT by tag (or by digest
--- when the reference has no tag).  Manifests are sent byte for byte, so
--- digests do not change.
local reference = require "crater.reference"
local images = require "crater.images"
local hosts = require "crater.hosts"
local json = require "crater.json"
local platforms = require "crater.platforms"

local M = {}

--- Pushes local image `name` to `ref_string` (default: name itself).
---@param client crater.Client
---@param name string
---@param ref_string? string
---@param opts? {config?: table, plain_http?: boolean, credential?: table, insecure_skip_verify?: boolean, progress?: crater.Progress, chunk_size?: integer}
---@return table|nil {name=, digest=, media_type=, endpoint=, blobs={uploaded=,exists=,mounted=,skipped=}, platforms={{digest=, platform=}...}}, string? err, string? kind
function M.push(client, name, ref_string, opts)
  if type(name) ~= "string" then error("push: image name must be a string", 2) end
  opts = opts or {}
  local p = opts.progress or require("crater.progress").new { mode = "quiet" }
  local b, ns = client.backend, client.ns
  local imgs = images.new(client)
  local img, err, kind = imgs:get(name)
  if not img then return nil, "push " .. name .. ": " .. tostring(err), kind end
  local ref
  ref, err, kind = reference.parse(ref_string or img.name)
  if not ref then return nil, err, kind end
  local what = "push " .. ref:string()
  local allowed, why, deny_kind = client:policy("image.pre_push", { name = name, ref = ref:string(),
    domain = ref.domain, repository = ref.path })
  if not allowed then return nil, what .. ": " .. tostring(why), deny_kind end
  local eps
  eps, err, kind = hosts.endpoints(ref.domain, "push", { config = opts.config, plain_http = opts.plain_http,
    credential = opts.credential, insecure_skip_verify = opts.insecure_skip_verify, docker_config = opts.docker_config })
  if not eps then return nil, what .. ": " .. err, kind end
  local ep = eps[1]
  local r
  r, err, kind = hosts.connect(ep)
  if not r then return nil, what .. ": " .. tostring(err), kind end
  local src_key = "containerd.io/distribution.source." .. ref.domain
  local counts = { uploaded = 0, exists = 0, mounted = 0, skipped = 0 }

  local pushed = {}
  local function push_blob(d, role)
    if pushed[d.digest] then return true end
    pushed[d.digest] = true
    local info = b:content_info(ns, d.digest)
    if not info then
      local li = images.layer_info(d.mediaType or d.media_type)
      if li and li.foreign then counts.skipped = counts.skipped + 1; return true end
      return nil, string.format("%s %s is not in the content store (pull it with --all-platforms?)", role, d.digest),
        "not_found"
    end
    local mount_from
    local src = info.labels and info.labels[src_key]
    if src then
      for repo in (src .. ","):gmatch("([^,]*),") do
        if repo ~= "" and repo ~= ref.path then mount_from = repo; break end
      end
    end
    local path, perr, pkind = b:content_path(ns, d.digest)
    if not path then return nil, perr, pkind end
    p:add(d.digest, { name = role .. " " .. d.digest, total = d.size, state = "uploading" })
    local st, e, k = r:push_blob(ref.path, d.digest, d.size, path, { mount_from = mount_from, chunk_size = opts.chunk_size })
    if not st then
      p:state(d.digest, "failed", e)
      return nil, string.format("%s %s: %s", role, d.digest, tostring(e)), k
    end
    counts[st] = (counts[st] or 0) + 1
    p:state(d.digest, st == "uploaded" and "done" or (st == "mounted" and "mounted" or "exists"))
    local listed = false
    for repo in ((src or "") .. ","):gmatch("([^,]*),") do
      if repo == ref.path then listed = true; break end
    end
    -- exact match: "a/b" is not listed in "a/bc"
    local labels = { [src_key] = src and src ~= "" and (listed and src or src .. "," .. ref.path) or ref.path }
    b:content_set_labels(ns, d.digest, labels, false)
    return true
  end

  -- {digest=, platform="os/arch[/variant]"} per platform manifest PUT,
  -- in push order: from the index entry's platform, else the config's.
  local pushed_platforms = json.array {}
  local function platform_of(d, m)
    local plat = d.platform
    if not plat then
      local cbody = images.read_blob(b, ns, m.doc.config.digest)
      local cfg = cbody and images.decode_config(cbody, #m.doc.layers)
      if cfg then plat = { os = cfg.os, architecture = cfg.architecture, variant = cfg.variant } end
    end
    if not plat or not plat.os or not plat.architecture then return "unknown" end
    return platforms.format(platforms.normalize(plat))
  end

  local function push_manifest(d, tag)
    local body, e, k = images.read_blob(b, ns, d.digest)
    if not body then return nil, e, k end
    local m
    m, e, k = images.decode_manifest(body, d.media_type, { digest = d.digest })
    if not m then return nil, "manifest " .. d.digest .. ": " .. e, k end
    if m.kind == "index" then
      for _, c in ipairs(m.doc.manifests) do
        if b:content_info(ns, c.digest) then
          local ok, e2, k2 = push_manifest({ digest = c.digest, media_type = c.mediaType, size = c.size,
            platform = c.platform })
          if not ok then return nil, e2, k2 end
        else
          -- platform not pulled: the destination repository must have it
          -- already (a manifest HEAD: registries do not serve manifests as
          -- blobs), or the index would point at nothing.
          counts.skipped = counts.skipped + 1
          local has, e2, k2 = r:resolve(ref.path, c.digest)
          if not has then
            if k2 ~= "not_found" then return nil, "platform manifest " .. c.digest .. ": " .. tostring(e2), k2 end
            local plat = c.platform and (tostring(c.platform.os) .. "/" .. tostring(c.platform.architecture)
              .. (c.platform.variant and ("/" .. c.platform.variant) or "")) or "unknown platform"
            return nil, string.format("platform manifest %s (%s) is neither in the content store nor in %s/%s;"
              .. " pull the image with --all-platforms first", c.digest, plat, ref.domain, ref.path),
              "failed_precondition"
          end
        end
      end
    else
      local ok, e2, k2 = push_blob(m.doc.config, "config")
      if not ok then return nil, e2, k2 end
      for _, l in ipairs(m.doc.layers) do
        ok, e2, k2 = push_blob(l, "layer")
        if not ok then return nil, e2, k2 end
      end
    end
    local dg
    dg, e, k = r:push_manifest(ref.path, tag or d.digest, body, m.media_type)
    if not dg then return nil, "put manifest " .. d.digest .. ": " .. tostring(e), k end
    if dg ~= d.digest and d.digest:sub(1, 7) == "sha256:" then
      return nil, string.format("registry computed %s for manifest %s", dg, d.digest), "data_loss"
    end
    if m.kind ~= "index" then
      pushed_platforms[#pushed_platforms + 1] = { digest = d.digest, platform = platform_of(d, m) }
    end
    p:message("manifest", (tag and (ref.path .. ":" .. tag) or d.digest) .. " pushed", { digest = d.digest })
    return true
  end

  local ok
  ok, err, kind = push_manifest(img.target, ref.tag)
  if not ok then return nil, what .. ": " .. tostring(err), kind end
  p:finish()
  return { name = ref:string(), digest = img.target.digest, media_type = img.target.media_type,
    endpoint = hosts.describe(ep), blobs = counts, platforms = pushed_platforms }
end

return M
