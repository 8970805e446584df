--- crater.transfer.import: OCI layout (tar or directory) and docker-archive
--- tarballs → content store + image records.
---
--- Tarballs are read once, member by member, by the C reader
--- (core.tar_reader, libarchive): each `blobs/<alg>/<hex>` member streams
--- straight into a content-store ingest and is checked against the digest
--- its name states as it ends; the small JSON members (`index.json`,
--- `oci-layout`, `manifest.json`, `repositories`) come back as strings
--- (at most 4 MiB); docker-archive's other members (per-layer tars,
--- config JSON) stream into ingests too, their digests computed on the way.
--- No ingest is committed until the whole archive was read and every
--- manifest checked, so a bad member (digest mismatch, `..`, hardlink,
--- escaping symlink, absolute name, oversized index) leaves nothing
--- visible.  Symlinks inside the archive (docker-archive's
--- `<id>/layer.tar -> ../<hex>.tar`) are only name aliases: the C reader
--- resolves their target lexically and refuses any that leaves the archive.
--- Directories are read through the content store (content_ingest_file).
local images = require "crater.images"
local reference = require "crater.reference"
local json = require "crater.json"
local core = require "crater.core"

local M = {}
local MT = images.media_types

local SMALL = { ["index.json"] = true, ["oci-layout"] = true, ["manifest.json"] = true, ["repositories"] = true }

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

local function is_dir(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local _, _, code = f:read(1)
  f:close()
  return code == 21 -- EISDIR
end

local function blob_rel(digest)
  local ok, err = reference.valid_digest(digest)
  if not ok then return nil, err end
  local alg, hex = digest:match("^(%w+):(%x+)$")
  return "blobs/" .. alg .. "/" .. hex
end

-- A blob source for the OCI walk:
--   has(digest) -> bool; read(digest) -> body|nil, err; commit(desc, labels) -> ok|nil, err, kind
local function dir_source(client, dir)
  return {
    has = function(d) local rel = blob_rel(d); return rel ~= nil and exists(dir .. "/" .. rel) end,
    read = function(d)
      local rel, e = blob_rel(d)
      if not rel then return nil, e end
      return read_file(dir .. "/" .. rel, images.MANIFEST_MAX + 1)
    end,
    commit = function(d, labels)
      local rel, e = blob_rel(d.digest)
      if not rel then return nil, e, "invalid_argument" end
      local r, st, kind = client.backend:content_ingest_file(client.ns, "import-" .. d.digest, dir .. "/" .. rel,
        { expected = d.digest, size = d.size, labels = labels })
      if not r then return nil, string.format("import blob %s: %s", d.digest, tostring(st)), kind end
      return true
    end,
    index = function() return read_file(dir .. "/index.json", images.MANIFEST_MAX + 1) end,
  }
end

-- Reads the whole tar: small members as strings, everything else into
-- uncommitted ingests.  Returns {smalls=, blobs= digest->item, members= name->item, abort=fn}.
local function read_tar(client, path)
  local b, ns = client.backend, client.ns
  local r, err, kind = core.tar_reader(path)
  if not r then return nil, err, kind end
  local st = { smalls = {}, blobs = {}, members = {} }
  local open = {}
  function st.abort()
    for _, it in ipairs(open) do if not it.done then it.w:abort() end end
    open = {}
  end
  local function new_writer(ref, wopts)
    local w, e, k = b:content_writer(ns, ref, wopts)
    if w and w:offset() > 0 then  -- stale partial ingest of the same ref
      w:abort()
      w, e, k = b:content_writer(ns, ref, wopts)
    end
    return w, e, k
  end
  local seq = 0
  local aliases = {}  -- symlink member -> member it names (docker-archive layer dedup)
  local function fail(msg, k) r:close(); st.abort(); return nil, msg, k end
  while true do
    local e, ne, nk = r:next()
    if e == nil then return fail(ne, nk) end
    if e == false then break end
    if e.type == "symlink" then
      if SMALL[e.name] or e.name:match("^blobs/") then
        return fail("refusing archive member " .. e.name .. ": symlink", "invalid_argument")
      end
      aliases[e.name] = e.link
    elseif e.type == "file" then
      if SMALL[e.name] then
        local s, re, rk = r:read(images.MANIFEST_MAX)
        if not s then return fail("archive member " .. e.name .. ": " .. tostring(re), rk) end
        st.smalls[e.name] = s
      else
        local alg, hex = e.name:match("^blobs/([^/]+)/([^/]+)$")
        local digest = alg and (alg .. ":" .. hex)
        local item
        if digest then
          local ok, ve = reference.valid_digest(digest)
          if not ok then return fail("archive member " .. e.name .. ": " .. ve, "invalid_argument") end
          if not st.blobs[digest] and not b:content_info(ns, digest) then
            local w, we, wk = new_writer("import-" .. digest, { expected = digest, size = e.size })
            if not w then return fail("import " .. e.name .. ": " .. tostring(we), wk) end
            item = { w = w, member = e.name }
            open[#open + 1] = item
            local res, ce, ck = r:copy_to(w, { expected = digest, keep = images.MANIFEST_MAX })
            if not res then return fail("archive member " .. e.name .. ": " .. tostring(ce), ck) end
            item.digest, item.size, item.data, item.head = res.digest, res.size, res.data, res.head
            st.blobs[digest] = item
          end
        else
          seq = seq + 1
          local w, we, wk = new_writer(string.format("import-%d-%d", core.getpid(), seq), { size = e.size })
          if not w then return fail("import " .. e.name .. ": " .. tostring(we), wk) end
          item = { w = w, member = e.name }
          open[#open + 1] = item
          local res, ce, ck = r:copy_to(w, { keep = images.MANIFEST_MAX })
          if not res then return fail("archive member " .. e.name .. ": " .. tostring(ce), ck) end
          item.digest, item.size, item.data, item.head = res.digest, res.size, res.data, res.head
          st.members[e.name] = item
        end
      end
    end
  end
  r:close()
  for name, target in pairs(aliases) do
    local t, hops = target, 0
    while aliases[t] and hops < 8 do t, hops = aliases[t], hops + 1 end
    if not st.members[name] then st.members[name] = st.members[t] end
  end
  return st
end

local function commit_item(it, labels)
  if it.done then return true end
  local d, stt, k = it.w:commit(it.size, it.digest, labels)
  it.w:close()
  it.done = true
  if not d then return nil, string.format("import %s: %s", it.member, tostring(stt)), k end
  return true
end

local function tar_source(client, st)
  return {
    has = function(d) return st.blobs[d] ~= nil end,
    read = function(d)
      local it = st.blobs[d]
      if not it then return nil end
      if not it.data then return nil, "manifest " .. d .. " is not JSON or larger than 4 MiB" end
      return it.data
    end,
    commit = function(d, labels)
      local it = st.blobs[d.digest]
      if d.size and it.size ~= d.size then
        return nil, string.format("blob %s is %d bytes in the archive, its descriptor says %d", d.digest, it.size, d.size),
          "data_loss"
      end
      return commit_item(it, labels)
    end,
    index = function() return st.smalls["index.json"] end,
  }
end

-- OCI layout: walk every image in index.json, check every manifest, then
-- commit children first and create image records.
local function import_oci(client, src, opts)
  local idx_text = src.index()
  if not idx_text then return nil, "no index.json", "invalid_argument" end
  local idx, err, kind = images.decode_manifest(idx_text, MT.oci_index)
  if not idx then return nil, "index.json: " .. err, kind end
  local b, ns = client.backend, client.ns
  local plan, planned = {}, {}   -- commit order (children first): {desc=, labels=}
  local function load(d)
    if planned[d.digest] then return true end
    local ok, verr = reference.valid_digest(d.digest)
    if not ok then return nil, verr, "invalid_argument" end
    if not src.has(d.digest) then
      local li = images.layer_info(d.mediaType)
      if (li and li.foreign) or b:content_info(ns, d.digest) then planned[d.digest] = true; return true end
      return nil, "blob " .. d.digest .. " is missing from the layout", "not_found"
    end
    local labels
    if images.kind_of(d.mediaType) then
      local body, re = src.read(d.digest)
      if not body then return nil, "manifest " .. d.digest .. ": " .. tostring(re or "unreadable"), "invalid_argument" end
      local m, e, kk = images.decode_manifest(body, d.mediaType, { digest = d.digest })
      if not m then return nil, "manifest " .. d.digest .. ": " .. e, kk end
      labels = {}
      if m.kind == "index" then
        for i, c in ipairs(m.doc.manifests) do
          if src.has(c.digest) or b:content_info(ns, c.digest) then
            local ok2, e2, k2 = load(c)
            if not ok2 then return nil, e2, k2 end
          end
          labels["containerd.io/gc.ref.content.m." .. (i - 1)] = c.digest
        end
      else
        local ok2, e2, k2 = load(m.doc.config)
        if not ok2 then return nil, e2, k2 end
        labels["containerd.io/gc.ref.content.config"] = m.doc.config.digest
        for i, l in ipairs(m.doc.layers) do
          ok2, e2, k2 = load(l)
          if not ok2 then return nil, e2, k2 end
          labels["containerd.io/gc.ref.content.l." .. (i - 1)] = l.digest
        end
      end
    end
    planned[d.digest] = true
    plan[#plan + 1] = { desc = d, labels = labels }
    return true
  end
  for _, d in ipairs(idx.doc.manifests) do
    local ok, e, k = load(d)
    if not ok then return nil, e, k end
  end
  for _, p in ipairs(plan) do
    local ok, e, k = src.commit(p.desc, p.labels)
    if not ok then return nil, e, k end
  end
  local out = json.array {}
  for i, d in ipairs(idx.doc.manifests) do
    local ann = d.annotations or {}
    local name = ann["io.containerd.image.name"]
    local rn = ann["org.opencontainers.image.ref.name"]
    if not name and rn then
      if reference.parse(rn) and rn:find("[/:]") then name = rn
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

local function norm_member(rel)
  if type(rel) ~= "string" then return nil end
  while rel:sub(1, 2) == "./" do rel = rel:sub(3) end
  return rel
end

-- docker-archive: manifest.json [{Config, RepoTags, Layers}] → Docker
-- schema 2 manifests over the members already streamed into ingests.
local function import_docker(client, st, opts)
  local text = st.smalls["manifest.json"]
  local doc, err = json.decode(text or "")
  if type(doc) ~= "table" then return nil, "manifest.json: " .. tostring(err or "not JSON"), "invalid_argument" end
  local out = json.array {}
  local records = {}
  local function member(rel)
    local it = st.members[norm_member(rel) or ""]
    if not it and type(rel) == "string" then
      -- docker 25+ writes OCI-style blobs/ paths into manifest.json
      local alg, hex = rel:match("^blobs/([^/]+)/([^/]+)$")
      if alg then it = st.blobs[alg .. ":" .. hex] end
    end
    return it
  end
  local plan = {}
  for n, entry in ipairs(doc) do
    if type(entry) ~= "table" or type(entry.Config) ~= "string" or type(entry.Layers) ~= "table" then
      return nil, string.format("manifest.json[%d]: needs Config and Layers", n - 1), "invalid_argument"
    end
    local cit = member(entry.Config)
    if not cit then return nil, "config " .. entry.Config .. " is not in the archive", "invalid_argument" end
    if not cit.data then return nil, "config " .. entry.Config .. " is not JSON or larger than 4 MiB", "invalid_argument" end
    local cfg, ce, ck = images.decode_config(cit.data, #entry.Layers)
    if not cfg then return nil, entry.Config .. ": " .. ce, ck end
    local layers = json.array {}
    local labels = { ["containerd.io/gc.ref.content.config"] = cit.digest }
    for i, l in ipairs(entry.Layers) do
      local lit = member(l)
      if not lit then return nil, "layer " .. tostring(l) .. " is not in the archive", "invalid_argument" end
      local head = lit.head or ""
      local mt = MT.docker_layer
      if head:sub(1, 2) == "\31\139" then mt = MT.docker_layer_gzip
      elseif head == "\40\181\47\253" then mt = "application/vnd.docker.image.rootfs.diff.tar.zstd"
      elseif lit.digest ~= cfg.rootfs.diff_ids[i] then
        return nil, string.format("layer %s: digest %s does not match rootfs.diff_ids[%d] %s", l, lit.digest, i - 1,
          cfg.rootfs.diff_ids[i]), "data_loss"
      end
      layers[i] = { mediaType = mt, digest = lit.digest, size = lit.size }
      labels["containerd.io/gc.ref.content.l." .. (i - 1)] = lit.digest
      plan[#plan + 1] = { it = lit, uncompressed = mt == MT.docker_layer }
    end
    plan[#plan + 1] = { it = cit }
    local mbody = json.encode { schemaVersion = 2, mediaType = MT.docker_manifest,
      config = { mediaType = MT.docker_config, digest = cit.digest, size = cit.size }, layers = layers }
    local names = {}
    for _, t in ipairs(type(entry.RepoTags) == "table" and entry.RepoTags or {}) do
      local r = reference.parse(t)
      if r then names[#names + 1] = r:string() end
    end
    records[#records + 1] = { body = mbody, labels = labels, names = names }
  end
  -- everything checked: commit layers, configs, manifests, then records
  local b, ns = client.backend, client.ns
  for _, p in ipairs(plan) do
    local ok, e, k = commit_item(p.it)
    if not ok then return nil, e, k end
    if p.uncompressed then b:content_set_labels(ns, p.it.digest, { ["containerd.io/uncompressed"] = p.it.digest }, false) end
  end
  for _, rec in ipairs(records) do
    local mdigest = core.digest_string(rec.body)
    local w, we, wk = b:content_writer(ns, "import-" .. mdigest, { expected = mdigest, size = #rec.body })
    if not w then return nil, we, wk end
    if w:offset() > 0 then w:abort(); w, we, wk = b:content_writer(ns, "import-" .. mdigest, { expected = mdigest, size = #rec.body }) end
    if not w then return nil, we, wk end
    w:write(rec.body)
    local d, stt, k = w:commit(#rec.body, mdigest, rec.labels)
    w:close()
    if not d then return nil, "commit manifest: " .. tostring(stt), k end
    local names = rec.names
    if opts.name then names = { opts.name } end
    if #names == 0 then names = { (opts.base_name or "import") .. "@" .. mdigest } end
    for _, name in ipairs(names) do
      local r, re, rk = images.new(client):put { name = name, target = { media_type = MT.docker_manifest,
        digest = mdigest, size = #rec.body }, labels = opts.labels or {} }
      if not r then return nil, "record " .. name .. ": " .. tostring(re), rk end
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
  local res, err, kind
  if is_dir(path) then
    if exists(path .. "/index.json") and exists(path .. "/oci-layout") then
      res, err, kind = import_oci(client, dir_source(client, path), opts)
    else
      err, kind = "not an OCI image layout directory (oci-layout + index.json)", "invalid_argument"
    end
  else
    if not exists(path) then return nil, "import " .. path .. ": no such file", "not_found" end
    local st
    st, err, kind = read_tar(client, path)
    if st then
      if st.smalls["index.json"] and st.smalls["oci-layout"] then
        res, err, kind = import_oci(client, tar_source(client, st), opts)
      elseif st.smalls["manifest.json"] then
        res, err, kind = import_docker(client, st, opts)
      else
        err, kind = "not an OCI image layout (oci-layout + index.json) or docker archive (manifest.json)",
          "invalid_argument"
      end
      st.abort() -- whatever was not committed (unreferenced members, or all after a failure)
    end
  end
  if not res then return nil, "import " .. path .. ": " .. err, kind end
  return res
end

return M
