--- crater.transfer.import: OCI layout (tar or directory) and docker-archive
--- tarballs → content store + image records.
local images = require "crater.images"
local reference = require "crater.reference"
local json = require "crater.json"
local core = require "crater.core"
local T = require "crater.transfer"

local M = {}
local MT = images.media_types

-- Lists a tar and refuses unsafe members.  Returns true or nil, msg.
function M.check_tar(path)
  local ok0, listing = T.sh("tar --quoting-style=escape -tvf " .. T.quote(path))
  if not ok0 then return nil, "tar: cannot list " .. path .. ": " .. tostring(listing) end
  local f = { close = function() return true end }
  local n = 0
  for line in listing:gmatch("[^\n]+") do
    n = n + 1
    local typ = line:sub(1, 1)
    -- "-rw-r--r-- user/group size date time name"
    local name = line:match("^%S+%s+%S+%s+%d+%s+%S+%s+%S+%s+(.*)$")
    if not name then f:close(); return nil, "tar: cannot parse listing line: " .. line end
    if typ == "l" then
      -- symlinks (docker-archive links duplicate layers) must stay inside
      local lname, target = name:match("^(.-) %-> (.*)$")
      if not lname or target:find(" -> ", 1, true) then f:close(); return nil, "refusing ambiguous symlink member " .. name end
      if target:sub(1, 1) == "/" then f:close(); return nil, string.format("refusing absolute symlink %q", name) end
      local depth = 0
      for comp in (lname:match("^(.*)/") or ""):gmatch("[^/]+") do if comp ~= "." then depth = depth + 1 end end
      for comp in target:gmatch("[^/]+") do
        if comp == ".." then depth = depth - 1 elseif comp ~= "." then depth = depth + 1 end
        if depth < 0 then f:close(); return nil, string.format("refusing symlink leaving the archive %q", name) end
      end
      name = lname
    elseif typ ~= "-" and typ ~= "d" then
      f:close()
      return nil, string.format("refusing archive member %q: only regular files, directories and inner symlinks are allowed", name)
    end
    if name:sub(1, 1) == "/" then f:close(); return nil, string.format("refusing absolute member name %q", name) end
    for comp in (name .. "/"):gmatch("([^/]*)/") do
      if comp == ".." then f:close(); return nil, string.format("refusing member name with '..': %q", name) end
    end
  end
  if n == 0 then return nil, path .. ": empty archive" end
  return true
end

local function read_file(path, max)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read(max or "*a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close(); return true end
  return false
end

-- Ingests a file as digest (verified by the store at commit).
local function ingest(client, path, digest, size, labels)
  local d, st, kind = client.backend:content_ingest_file(client.ns, "import-" .. digest, path,
    { expected = digest, size = size, labels = labels })
  if not d then return nil, string.format("import blob %s: %s", digest, tostring(st)), kind end
  return d
end

local function blob_path(dir, digest)
  local ok, err = reference.valid_digest(digest)
  if not ok then return nil, err end
  local alg, hex = digest:match("^(%w+):(%x+)$")
  return dir .. "/blobs/" .. alg .. "/" .. hex
end

-- OCI layout directory: walk every image in index.json, ingest children
-- first, create image records.
local function import_oci(client, dir, opts)
  local idx_text = read_file(dir .. "/index.json", images.MANIFEST_MAX + 1)
  if not idx_text then return nil, dir .. ": no index.json", "invalid_argument" end
  local idx, err, kind = images.decode_manifest(idx_text, MT.oci_index)
  if not idx then return nil, "index.json: " .. err, kind end
  local b, ns = client.backend, client.ns
  local done = {}
  local function load(d)
    if done[d.digest] then return true end
    local path, perr = blob_path(dir, d.digest)
    if not path then return nil, perr, "invalid_argument" end
    if not exists(path) then
      local li = images.layer_info(d.mediaType)
      if li and li.foreign then done[d.digest] = true; return true end
      if b:content_info(ns, d.digest) then done[d.digest] = true; return true end
      return nil, "blob " .. d.digest .. " is missing from the layout", "not_found"
    end
    local k = images.kind_of(d.mediaType)
    local labels
    if k then
      local body = read_file(path, images.MANIFEST_MAX + 1)
      local m, e, kk = images.decode_manifest(body, d.mediaType, { digest = d.digest })
      if not m then return nil, "manifest " .. d.digest .. ": " .. e, kk end
      labels = {}
      if m.kind == "index" then
        for i, c in ipairs(m.doc.manifests) do
          local cp = blob_path(dir, c.digest)
          if cp and (exists(cp) or b:content_info(ns, c.digest)) then
            local ok, e2, k2 = load(c)
            if not ok then return nil, e2, k2 end
          end
          labels["containerd.io/gc.ref.content.m." .. (i - 1)] = c.digest
        end
      else
        local ok, e2, k2 = load(m.doc.config)
        if not ok then return nil, e2, k2 end
        labels["containerd.io/gc.ref.content.config"] = m.doc.config.digest
        for i, l in ipairs(m.doc.layers) do
          ok, e2, k2 = load(l)
          if not ok then return nil, e2, k2 end
          labels["containerd.io/gc.ref.content.l." .. (i - 1)] = l.digest
        end
      end
    end
    local ok, e, kk = ingest(client, path, d.digest, d.size, labels)
    if not ok then return nil, e, kk end
    done[d.digest] = true
    return true
  end
  local out = json.array {}
  for i, d in ipairs(idx.doc.manifests) do
    local ok, e, k = load(d)
    if not ok then return nil, e, k end
    local ann = d.annotations or {}
    local name = ann["io.containerd.image.name"]
    local rn = ann["org.opencontainers.image.ref.name"]
    if not name and rn then
      if reference.parse(rn) and (rn:find("[/:]") ) then name = rn
      elseif opts.base_name then name = opts.base_name .. ":" .. rn
      else name = rn end
    end
    if opts.name and #idx.doc.manifests == 1 then name = opts.name end
    if not name then name = (opts.base_name or "import") .. "@" .. d.digest end
    local r = reference.parse(name)
    if r then name = r:string() end
    local rec, re, rk = images.new(client):put { name = name, target = { media_type = d.mediaType, digest = d.digest,
      size = d.size }, labels = opts.labels or {} }
    if not rec then return nil, "record " .. name .. ": " .. tostring(re), rk end
    out[#out + 1] = { name = name, digest = d.digest, media_type = d.mediaType, index = i - 1 }
  end
  return out
end

-- docker-archive: manifest.json [{Config, RepoTags, Layers}] → Docker
-- schema 2 manifests.
local function import_docker(client, dir, opts)
  local text = read_file(dir .. "/manifest.json", images.MANIFEST_MAX + 1)
  local doc, err = json.decode(text or "")
  if type(doc) ~= "table" then return nil, "manifest.json: " .. tostring(err or "not JSON"), "invalid_argument" end
  local out = json.array {}
  for n, entry in ipairs(doc) do
    if type(entry) ~= "table" or type(entry.Config) ~= "string" or type(entry.Layers) ~= "table" then
      return nil, string.format("manifest.json[%d]: needs Config and Layers", n - 1), "invalid_argument"
    end
    local function member(rel)
      if rel:sub(1, 1) == "/" or ("/" .. rel .. "/"):find("/%.%./") then return nil end
      return dir .. "/" .. rel
    end
    local cpath = member(entry.Config)
    if not cpath or not exists(cpath) then return nil, "config " .. entry.Config .. " missing", "invalid_argument" end
    local cbody = read_file(cpath)
    local cfg, ce, ck = images.decode_config(cbody, #entry.Layers)
    if not cfg then return nil, entry.Config .. ": " .. ce, ck end
    local cdigest = core.digest_string(cbody)
    local layers = json.array {}
    local labels = { ["containerd.io/gc.ref.content.config"] = cdigest }
    for i, l in ipairs(entry.Layers) do
      local lp = type(l) == "string" and member(l)
      if not lp or not exists(lp) then return nil, "layer " .. tostring(l) .. " missing", "invalid_argument" end
      local ld, lsize = core.digest_file(lp)
      if not ld then return nil, lsize, "internal" end
      local head = read_file(lp, 4) or ""
      local mt = MT.docker_layer
      if head:sub(1, 2) == "\31\139" then mt = MT.docker_layer_gzip
      elseif head == "\40\181\47\253" then mt = "application/vnd.docker.image.rootfs.diff.tar.zstd"
      elseif ld ~= cfg.rootfs.diff_ids[i] then
        return nil, string.format("layer %s: digest %s does not match rootfs.diff_ids[%d] %s", l, ld, i - 1,
          cfg.rootfs.diff_ids[i]), "data_loss"
      end
      local ok, ie, ik = ingest(client, lp, ld, lsize)
      if not ok then return nil, ie, ik end
      if mt == MT.docker_layer then
        client.backend:content_set_labels(client.ns, ld, { ["containerd.io/uncompressed"] = ld }, false)
      end
      layers[i] = { mediaType = mt, digest = ld, size = lsize }
      labels["containerd.io/gc.ref.content.l." .. (i - 1)] = ld
    end
    local ok, ie, ik = ingest(client, cpath, cdigest, #cbody)
    if not ok then return nil, ie, ik end
    local mbody = json.encode { schemaVersion = 2, mediaType = MT.docker_manifest,
      config = { mediaType = MT.docker_config, digest = cdigest, size = #cbody }, layers = layers }
    local mdigest = core.digest_string(mbody)
    local w, we, wk = client.backend:content_writer(client.ns, "import-" .. mdigest, { expected = mdigest, size = #mbody })
    if not w then return nil, we, wk end
    w:write(mbody)
    local d, st, k = w:commit(#mbody, mdigest, labels)
    w:close()
    if not d then return nil, "commit manifest: " .. tostring(st), k end
    local names = {}
    for _, t in ipairs(type(entry.RepoTags) == "table" and entry.RepoTags or {}) do
      local r = reference.parse(t)
      if r then names[#names + 1] = r:string() end
    end
    if opts.name then names = { opts.name } end
    if #names == 0 then names = { (opts.base_name or "import") .. "@" .. mdigest } end
    for _, name in ipairs(names) do
      local rec, re, rk = images.new(client):put { name = name, target = { media_type = MT.docker_manifest,
        digest = mdigest, size = #mbody }, labels = opts.labels or {} }
      if not rec then return nil, "record " .. name .. ": " .. tostring(re), rk end
      out[#out + 1] = { name = name, digest = mdigest, media_type = MT.docker_manifest }
    end
  end
  return out
end

--- Imports an OCI layout (tar or directory) or a docker-archive tar.
---@param client crater.Client
---@param path string
---@param opts? {name?: string, base_name?: string, labels?: table}
---@return table[]|nil imported {{name=, digest=, media_type=}...}, string?, string?
function M.import(client, path, opts)
  if type(path) ~= "string" then error("import: path must be a string", 2) end
  opts = opts or {}
  local dir, tmp = path, nil
  local isdir = T.sh("test -d " .. T.quote(path))
  if not isdir then
    if not exists(path) then return nil, "import " .. path .. ": no such file", "not_found" end
    local ok, err = M.check_tar(path)
    if not ok then return nil, "import " .. path .. ": " .. err, "invalid_argument" end
    local kind
    tmp, err, kind = T.tempdir(client.root and (client.root .. "/tmp") or nil)
    if not tmp then tmp, err, kind = T.tempdir() end
    if not tmp then return nil, err, kind end
    local xok, xerr = T.sh("tar --no-same-owner --no-same-permissions --no-overwrite-dir -xf " ..
      T.quote(path) .. " -C " .. T.quote(tmp))
    if not xok then T.rmrf(tmp); return nil, "import " .. path .. ": tar: " .. tostring(xerr), "invalid_argument" end
    dir = tmp
  end
  local res, err, kind
  if exists(dir .. "/index.json") and exists(dir .. "/oci-layout") then
    res, err, kind = import_oci(client, dir, opts)
  elseif exists(dir .. "/manifest.json") then
    res, err, kind = import_docker(client, dir, opts)
  else
    err, kind = "not an OCI image layout (oci-layout + index.json) or docker archive (manifest.json)", "invalid_argument"
  end
  if tmp then T.rmrf(tmp) end
  if not res then return nil, "import " .. path .. ": " .. err, kind end
  return res
end

return M
