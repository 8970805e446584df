--- crater.images: image records (name → target descriptor + labels), media
--- types, strict manifest decoding, and walking an image's content graph.
---
--- ```lua
--- local imgs = client:images()
--- for _, img in ipairs(assert(imgs:list())) do print(img.name, img.target.digest) end
--- local info = assert(imgs:inspect("docker.io/library/busybox:latest"))
--- ```
---
--- Manifests are decoded by `M.decode_manifest(body, content_type)`:
--- at most 4 MiB, strict JSON (duplicate keys rejected), Docker schema 1
--- refused, and the document's own `mediaType` must agree with the
--- Content-Type the registry sent (when that names a manifest type).
local json = require "crater.json"
local core = require "crater.core"
local reference = require "crater.reference"
local platforms = require "crater.platforms"

local M = {}

M.MANIFEST_MAX = 4 * 1024 * 1024

local MT = {
  oci_index = "application/vnd.oci.image.index.v1+json",
  oci_manifest = "application/vnd.oci.image.manifest.v1+json",
  oci_config = "application/vnd.oci.image.config.v1+json",
  oci_layer = "application/vnd.oci.image.layer.v1.tar",
  oci_layer_gzip = "application/vnd.oci.image.layer.v1.tar+gzip",
  oci_layer_zstd = "application/vnd.oci.image.layer.v1.tar+zstd",
  oci_nondist = "application/vnd.oci.image.layer.nondistributable.v1.tar",
  oci_nondist_gzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  oci_nondist_zstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  docker_list = "application/vnd.docker.distribution.manifest.list.v2+json",
  docker_manifest = "application/vnd.docker.distribution.manifest.v2+json",
  docker_schema1 = "application/vnd.docker.distribution.manifest.v1+json",
  docker_schema1_signed = "application/vnd.docker.distribution.manifest.v1+prettyjws",
  docker_config = "application/vnd.docker.container.image.v1+json",
  docker_layer = "application/vnd.docker.image.rootfs.diff.tar",
  docker_layer_gzip = "application/vnd.docker.image.rootfs.diff.tar.gzip",
  docker_foreign_gzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
M.media_types = MT

M.ACCEPT = table.concat({ MT.oci_index, MT.oci_manifest, MT.docker_list, MT.docker_manifest,
  MT.docker_schema1_signed, MT.docker_schema1 }, ", ")

--- "index" | "manifest" | "schema1" | nil for a media type.
function M.kind_of(mt)
  if mt == MT.oci_index or mt == MT.docker_list then return "index" end
  if mt == MT.oci_manifest or mt == MT.docker_manifest then return "manifest" end
  if mt == MT.docker_schema1 or mt == MT.docker_schema1_signed then return "schema1" end
  return nil
end

--- Layer facts: {compression = "gzip"|"zstd"|"none", foreign = bool} or nil
--- for an unknown layer media type.
function M.layer_info(mt)
  local t = {
    [MT.oci_layer] = { "none", false }, [MT.oci_layer_gzip] = { "gzip", false },
    [MT.oci_layer_zstd] = { "zstd", false }, [MT.oci_nondist] = { "none", true },
    [MT.oci_nondist_gzip] = { "gzip", true }, [MT.oci_nondist_zstd] = { "zstd", true },
    [MT.docker_layer] = { "none", false }, [MT.docker_layer_gzip] = { "gzip", false },
    [MT.docker_foreign_gzip] = { "gzip", true },
    ["application/vnd.docker.image.rootfs.diff.tar.zstd"] = { "zstd", false },
  }
  local e = t[mt]
  if not e then return nil end
  return { compression = e[1], foreign = e[2] }
end

local SCHEMA1_MSG = "Docker image manifest schema 1 is not supported (deprecated and removed " ..
  "from Docker); re-push the image with a current docker or skopeo to convert it to schema 2/OCI"

local function invalid(fmt, ...) return nil, string.format(fmt, ...), "invalid_argument" end

local function is_int(n) return type(n) == "number" and n >= 0 and n == math.floor(n) and n < 2 ^ 53 end

--- Checks a descriptor table {mediaType=, digest=, size=}.
---@return true|nil ok, string? err, string? kind
function M.check_descriptor(d, what)
  what = what or "descriptor"
  if type(d) ~= "table" then return invalid("%s: not an object", what) end
  if type(d.mediaType) ~= "string" or d.mediaType == "" then return invalid("%s: missing mediaType", what) end
  local ok, err = reference.valid_digest(d.digest)
  if not ok then return invalid("%s: %s", what, err) end
  if not is_int(d.size) then return invalid("%s %s: size must be a non-negative integer", what, d.digest) end
  if d.urls ~= nil and type(d.urls) ~= "table" then return invalid("%s %s: urls must be an array", what, d.digest) end
  return true
end

local GENERIC = { [""] = true, ["application/json"] = true, ["application/octet-stream"] = true,
  ["text/plain"] = true }

--- Decodes and validates a manifest or index.
---@param body string       the exact bytes
---@param content_type? string  the registry's Content-Type (or the descriptor's media type)
---@param opts? {digest?: string}  when given, the body must hash to it
---@return table|nil m {media_type=, kind="index"|"manifest", doc=, digest=, size=}, string? err, string? kind
function M.decode_manifest(body, content_type, opts)
  if type(body) ~= "string" then error("decode_manifest: body must be a string", 2) end
  opts = opts or {}
  if #body > M.MANIFEST_MAX then
    return nil, string.format("manifest is %d bytes, more than the %d allowed", #body, M.MANIFEST_MAX),
      "resource_exhausted"
  end
  local ct = (content_type or ""):match("^%s*([^;%s]*)") or ""
  ct = ct:lower()
  if M.kind_of(ct) == "schema1" then return nil, SCHEMA1_MSG, "failed_precondition" end
  -- opts.stored (internal): the body was read from the local content store
  -- under opts.digest; blobs are verified at commit and immutable, so it is
  -- not hashed again (the first hash of a process initialises OpenSSL,
  -- ~0.6-1 ms, which `crater run` of a one-layer image otherwise never needs)
  local digest = opts.stored and opts.digest or core.digest_string(body)
  if opts.digest and opts.digest ~= digest then
    if opts.digest:sub(1, 7) == "sha512:" then
      digest = core.digest_string(body, "sha512")
    end
    if opts.digest ~= digest then
      return nil, string.format("manifest digest mismatch: expected %s, got %s", opts.digest, digest), "data_loss"
    end
  end
  local doc, err = json.decode(body)
  if doc == nil then return invalid("manifest is not valid JSON: %s", tostring(err)) end
  if type(doc) ~= "table" or getmetatable(doc) == json.array_mt then return invalid("manifest is not a JSON object") end
  if doc.schemaVersion == 1 then return nil, SCHEMA1_MSG, "failed_precondition" end
  if doc.schemaVersion ~= 2 then return invalid("unsupported manifest schemaVersion %s", tostring(doc.schemaVersion)) end
  local mt = doc.mediaType
  if mt ~= nil and type(mt) ~= "string" then return invalid("manifest mediaType must be a string") end
  if M.kind_of(mt) == "schema1" then return nil, SCHEMA1_MSG, "failed_precondition" end
  if not GENERIC[ct] then
    if not M.kind_of(ct) then return invalid("unsupported manifest media type %q", ct) end
    if mt ~= nil and mt ~= ct then
      return invalid("manifest media type mismatch: Content-Type says %q, document says %q", ct, mt)
    end
    mt = ct
  end
  if mt == nil then
    -- OCI allows omitting mediaType; infer from the shape
    if doc.manifests ~= nil then mt = MT.oci_index
    elseif doc.config ~= nil then mt = MT.oci_manifest
    else return invalid("cannot tell the manifest type (no mediaType, no manifests, no config)") end
  end
  local kind = M.kind_of(mt)
  if not kind then return invalid("unsupported manifest media type %q", mt) end
  if kind == "index" then
    if type(doc.manifests) ~= "table" then return invalid("index without a manifests array") end
    if doc.config ~= nil or doc.layers ~= nil then return invalid("index has config/layers (ambiguous document)") end
    for i, d in ipairs(doc.manifests) do
      local ok, e, k = M.check_descriptor(d, "manifests[" .. (i - 1) .. "]")
      if not ok then return nil, e, k end
      if d.platform ~= nil and (type(d.platform) ~= "table" or type(d.platform.os) ~= "string"
          or type(d.platform.architecture) ~= "string") then
        return invalid("manifests[%d]: platform needs os and architecture", i - 1)
      end
    end
  else
    if doc.manifests ~= nil then return invalid("manifest has a manifests array (ambiguous document)") end
    local ok, e, k = M.check_descriptor(doc.config, "config")
    if not ok then return nil, e, k end
    if type(doc.layers) ~= "table" then return invalid("manifest without a layers array") end
    for i, d in ipairs(doc.layers) do
      ok, e, k = M.check_descriptor(d, "layers[" .. (i - 1) .. "]")
      if not ok then return nil, e, k end
    end
  end
  return { media_type = mt, kind = kind, doc = doc, digest = opts.digest or digest, size = #body, body = body }
end

--- Decodes an image config (strict JSON) and checks rootfs.diff_ids.
---@return table|nil config, string? err, string? kind
function M.decode_config(body, nlayers)
  local doc, err = json.decode(body)
  if type(doc) ~= "table" then return invalid("image config is not a JSON object: %s", tostring(err)) end
  local rootfs = doc.rootfs
  if type(rootfs) ~= "table" or type(rootfs.diff_ids) ~= "table" then
    return invalid("image config has no rootfs.diff_ids")
  end
  for i, d in ipairs(rootfs.diff_ids) do
    local ok, e = reference.valid_digest(d)
    if not ok then return invalid("rootfs.diff_ids[%d]: %s", i - 1, e) end
  end
  if nlayers and #rootfs.diff_ids ~= nlayers then
    return invalid("image config lists %d diff_ids for %d layers", #rootfs.diff_ids, nlayers)
  end
  return doc
end

--- Chain IDs for diff_ids: chain[1] = diff[1], chain[i] =
--- sha256(chain[i-1] .. " " .. diff[i]).
---@param diff_ids string[]
---@return string[]
function M.chain_ids(diff_ids)
  local out = {}
  for i, d in ipairs(diff_ids) do
    out[i] = i == 1 and d or core.digest_string(out[i - 1] .. " " .. d)
  end
  return out
end

--- Reads a whole blob of namespace ns from backend b (nil, msg, kind when
--- missing).
function M.read_blob(b, ns, digest)
  local info, err, kind = b:content_info(ns, digest)
  if not info then return nil, err, kind end
  if info.size == 0 then return "" end
  return b:content_read(ns, digest, 0, info.size)
end

-- ---------------------------------------------------------------------------
-- The client object

local Images = {}
Images.__index = Images

function M.new(client)
  return setmetatable({ client = client, b = client.backend, ns = client.ns }, Images)
end

local function normalize_name(name)
  if type(name) ~= "string" then error("images: name must be a string", 3) end
  local r = reference.parse(name)
  if r then return r:string() end
  return name  -- names need not be references (e.g. "import-2024..."); stored as given
end
M.normalize_name = normalize_name

--- Lists images (optionally filtered, as the store's filters).
function Images:list(filters) return self.b:image_list(self.ns, filters) end

--- Gets an image record by name (normalised: "busybox" finds
--- "docker.io/library/busybox:latest").  `repo@digest` with no record of
--- that name finds the image of that repository whose manifest (or index)
--- has that digest, as docker does locally.
function Images:get(name)
  local img, err, kind = self.b:image_get(self.ns, normalize_name(name))
  if img or kind ~= "not_found" then return img, err, kind end
  local r = reference.parse(name)
  if not (r and r.digest) then return img, err, kind end
  for _, cand in ipairs(self.b:image_list(self.ns, { 'target.digest=="' .. r.digest .. '"' }) or {}) do
    local cr = reference.parse(cand.name)
    if cr and cr.domain == r.domain and cr.path == r.path then return cand end
  end
  return img, err, kind
end

--- Mounts a read-only view of the image's unpacked root filesystem at dir
--- (like `ctr image mount`), unpacking it first when needed.  An index is
--- followed to the host platform's manifest.  The snapshotter comes from
--- crater.snapshotters.select (opts.snapshotter overrides).
---@param name string
---@param dir string  an existing directory
---@param opts? {snapshotter?: string, config?: table}
---@return table|nil {snapshotter=, chain_id=, key=, dir=}, string?, string?
function Images:mount(name, dir, opts)
  if type(dir) ~= "string" or dir == "" then error("images:mount: dir must be a non-empty string", 2) end
  opts = opts or {}
  local containers = require "crater.containers"
  local info, err, kind = containers.image_info(self.client, name)
  if not info then return nil, err, kind end
  if not info.chain_id then return nil, "image " .. name .. " has no layers to mount", "failed_precondition" end
  local sname, serr, skind = require("crater.unpack").select(self.client, opts)
  if not sname then return nil, "mount " .. name .. ": " .. serr, skind end
  local ok
  ok, err, kind = containers.ensure_unpacked(self.client, info, sname)
  if not ok then return nil, err, kind end
  local key
  key, err, kind = self.client:snapshots(sname):mount_view(info.chain_id, dir)
  if not key then return nil, "mount " .. name .. " at " .. dir .. ": " .. tostring(err), kind end
  return { snapshotter = sname, chain_id = info.chain_id, key = key, dir = dir }
end

--- Unpacks the image's layers into a snapshotter (like `ctr image unpack`):
--- committed snapshots keyed by chain ID; layers already unpacked are
--- skipped.  An index is followed to the host platform's manifest.
---@param name string
---@param opts? {snapshotter?: string, config?: table, max_layer_size?: integer}
---@return table|nil {snapshotter=, chain_id=, applied=, skipped=}, string?, string?
function Images:unpack(name, opts)
  opts = opts or {}
  local containers = require "crater.containers"
  local info, err, kind = containers.image_info(self.client, name)
  if not info then return nil, err, kind end
  local unpack = require "crater.unpack"
  local sname, serr, skind = unpack.select(self.client, opts)
  if not sname then return nil, "unpack " .. name .. ": " .. serr, skind end
  if not info.chain_id then return { snapshotter = sname, applied = 0, skipped = 0 } end
  return unpack.unpack(self.client, info.manifest, info.config,
    { snapshotter = sname, config = opts.config, max_layer_size = opts.max_layer_size })
end

--- Undoes Images:mount: unmounts dir and removes its view snapshot, in
--- whichever snapshotter holds it.
---@return true|nil, string?, string?
function Images:unmount(dir, opts)
  if type(dir) ~= "string" or dir == "" then error("images:unmount: dir must be a non-empty string", 2) end
  opts = opts or {}
  local registry = require "crater.snapshotters"
  local names = opts.snapshotter and { opts.snapshotter } or registry.names()
  local abs = require("crater.util").abs_path(dir)
  local filter = 'labels."crater.io/mount-target"=="' .. abs:gsub('[\\"]', '\\%0') .. '"'
  for _, n in ipairs(names) do
    local sn = self.client:snapshots(n)
    local list = sn:walk({ filter })
    if list and #list > 0 then return sn:unmount_view(dir) end
  end
  return nil, "no image mounted at " .. dir, "not_found"
end

--- Creates or updates (when it exists) an image record.
---@param img {name: string, target: {media_type: string, digest: string, size: integer}, labels?: table}
function Images:put(img)
  if type(img) ~= "table" or type(img.name) ~= "string" or type(img.target) ~= "table" then
    error("images:put: expected {name=, target={media_type=, digest=, size=}}", 2)
  end
  local r, err, kind = self.b:image_create(self.ns, img)
  if r == nil and kind == "already_exists" then return self.b:image_update(self.ns, img) end
  return r, err, kind
end

--- Deletes an image record (content goes at the next GC).
function Images:delete(name) return self.b:image_delete(self.ns, normalize_name(name)) end

--- Adds name dst pointing at src's target.
function Images:tag(src, dst)
  local img, err, kind = self:get(src)
  if not img then return nil, err, kind end
  local r
  r, err, kind = reference.parse(dst)
  if not r then return nil, err, kind end
  return self:put { name = r:string(), target = img.target, labels = img.labels }
end

--- Reads a whole blob of this namespace.
function Images:read(digest)
  return M.read_blob(self.b, self.ns, digest)
end

--- Walks an image's content graph from a descriptor.  fn(desc, parsed,
--- parent) is called for every descriptor (index, manifests, config,
--- layers); parsed is the decoded manifest for manifests and indexes.
--- Missing blobs are reported to fn with parsed = nil, missing = true.
---@return true|nil, string?, string?
function Images:walk(target, fn)
  local function visit(d, parent)
    local k = M.kind_of(d.media_type or d.mediaType)
    if not k then return fn(d, nil, parent) end
    local body, err, kind = self:read(d.digest)
    if not body then
      if kind == "not_found" then return fn(d, nil, parent, true) end
      return nil, err, kind
    end
    local m
    m, err, kind = M.decode_manifest(body, d.media_type or d.mediaType, { digest = d.digest })
    if not m then return nil, d.digest .. ": " .. err, kind end
    local stop = fn(d, m, parent)
    if stop == false then return true end
    local children = {}
    if m.kind == "index" then children = m.doc.manifests
    else
      children[1] = m.doc.config
      for _, l in ipairs(m.doc.layers) do children[#children + 1] = l end
    end
    for _, c in ipairs(children) do
      local ok, e, kk = visit({ media_type = c.mediaType, digest = c.digest, size = c.size,
        platform = c.platform, annotations = c.annotations, urls = c.urls }, d)
      if not ok and e then return nil, e, kk end
    end
    return true
  end
  return visit(target, nil)
end

--- Detailed view of an image: target, platforms with config, layers and
--- sizes, content size (present blobs) and unpacked size when known.
function Images:inspect(name)
  local img, err, kind = self:get(name)
  if not img then return nil, err, kind end
  local out = { name = img.name, target = img.target, labels = img.labels, created_at = img.created_at,
    updated_at = img.updated_at, manifests = json.array {} }
  local content_size, seen = 0, {}
  local ok
  ok, err, kind = self:walk(img.target, function(d, m, parent, missing)
    if not seen[d.digest] then
      seen[d.digest] = true
      local info = self.b:content_info(self.ns, d.digest)
      if info then content_size = content_size + info.size end
    end
    if m and m.kind == "manifest" then
      local entry = { digest = d.digest, media_type = m.media_type, size = d.size,
        platform = d.platform and platforms.format(d.platform) or nil, layers = json.array {},
        config = { digest = m.doc.config.digest, size = m.doc.config.size, media_type = m.doc.config.mediaType } }
      local total = 0
      for _, l in ipairs(m.doc.layers) do
        local li = M.layer_info(l.mediaType)
        entry.layers[#entry.layers + 1] = { digest = l.digest, size = l.size, media_type = l.mediaType,
          foreign = li and li.foreign or nil,
          present = self.b:content_info(self.ns, l.digest) ~= nil }
        total = total + l.size
      end
      entry.size = total + m.doc.config.size + d.size
      local cbody = self:read(m.doc.config.digest)
      if cbody then
        local cfg = json.decode(cbody)
        if type(cfg) == "table" then
          entry.config.image = cfg
          entry.platform = entry.platform or platforms.format { os = cfg.os, architecture = cfg.architecture,
            variant = cfg.variant }
          local diff = cfg.rootfs and cfg.rootfs.diff_ids
          if type(diff) == "table" then
            for i, did in ipairs(diff) do
              if entry.layers[i] then entry.layers[i].diff_id = did end
            end
            entry.chain_id = #diff > 0 and M.chain_ids(diff)[#diff] or nil
          end
        end
      else
        entry.config.present = false
      end
      out.manifests[#out.manifests + 1] = entry
    elseif missing and M.kind_of(d.media_type) == "manifest" then
      out.manifests[#out.manifests + 1] = { digest = d.digest, size = d.size, present = false,
        platform = d.platform and platforms.format(d.platform) or nil }
    end
  end)
  if not ok then return nil, err, kind end
  out.content_size = content_size
  out.unpacked_size = self:unpacked_size(out)
  return out
end

--- Sum of unpacked layer sizes recorded by unpack (label
--- "crater.io/unpacked-size" on committed snapshots), nil when unknown.
function Images:unpacked_size(info)
  local ok, sn = pcall(function() return self.client:snapshots() end)
  if not ok or not sn or not sn.usage then return nil end
  local total, any = 0, false
  for _, m in ipairs(info.manifests or {}) do
    if m.chain_id then
      local u = sn:usage(m.chain_id)
      if u and u.size then total = total + u.size; any = true end
    end
  end
  return any and total or nil
end

--- Content size and unpacked size of an image.
function Images:usage(name)
  local info, err, kind = self:inspect(name)
  if not info then return nil, err, kind end
  local plats = {}
  for _, m in ipairs(info.manifests) do plats[#plats + 1] = m.platform end
  return { name = info.name, digest = info.target.digest, content_size = info.content_size,
    unpacked_size = info.unpacked_size, platforms = json.array(plats) }
end

return M
