--- crater.pull: the pull workflow — resolve, choose platform, fetch,
--- verify, record, unpack.  Plain Lua over the C transport (core.remote_*)
--- and the content store; read it, copy it, replace it.
---
--- ```lua
--- local img = assert(client:pull("busybox", { platform = "linux/arm64", unpack = false }))
--- print(img.name, img.target.digest)
--- ```
---
--- Steps:
---  1. parse the reference; pick endpoints (hosts.lua: mirrors, TLS, auth);
---  2. resolve the tag to a descriptor on the first endpoint that answers;
---  3. fetch the manifest (≤ 4 MiB, strict JSON, media type checked against
---     Content-Type and the document, schema 1 refused, digest verified);
---     for an index choose the platform(s) and fetch those manifests;
---  4. hold a lease; fetch every missing config/layer blob concurrently
---     (fetch_blobs, sizes enforced while streaming), straight into
---     content-store ingests; commit each (the store verifies digest and
---     size), labelled with its distribution source;
---  5. commit manifests and index bottom-up with containerd.io/gc.ref.*
---     labels so the graph is walkable; record the image;
---  6. unpack into the snapshotter (unpack.lua) unless unpack = false;
---  7. drop the lease.
--- A failure before 5 leaves no manifest and no image record.
local core = require "crater.core"
local reference = require "crater.reference"
local platforms = require "crater.platforms"
local images = require "crater.images"
local hosts = require "crater.hosts"
local unpack = require "crater.unpack"
local json = require "crater.json"

local M = {}

M.DEFAULT_PARALLEL = 8

local function fail(msg, kind) return nil, msg, kind or "internal" end

-- Remote clients per endpoint host, for one pull.
local function remote_for(cache, ep)
  if not cache[ep.host] then
    local r, err, kind = hosts.connect(ep)
    if not r then return nil, err, kind end
    cache[ep.host] = r
  end
  return cache[ep.host]
end

local RETRY_NEXT = { not_found = true, unavailable = true, unauthenticated = true, permission_denied = true,
  deadline_exceeded = true, internal = true }

-- Calls fn(remote, ep) on each endpoint in turn until one succeeds;
-- errors of kinds that another endpoint might not have move on.
local function on_endpoints(eps, cache, fn)
  local last_err, last_kind
  for _, ep in ipairs(eps) do
    local r, err, kind = remote_for(cache, ep)
    if r then
      local a, b, c = fn(r, ep)
      if a ~= nil then return a, b, c, ep end
      err, kind = b, c
    end
    last_err, last_kind = hosts.describe(ep) .. ": " .. tostring(err), kind
    if not RETRY_NEXT[kind] then break end
  end
  return nil, last_err, last_kind
end

local function source_label_key(domain) return "containerd.io/distribution.source." .. domain end

-- Merges repo into an existing comma-separated source label value.
local function merge_source(existing, repo)
  if not existing or existing == "" then return repo end
  for r in (existing .. ","):gmatch("([^,]*),") do if r == repo then return existing end end
  return existing .. "," .. repo
end

-- Writes a small in-memory blob (manifest/index) into the store, verified.
local function put_blob(b, ns, digest, body, labels)
  local w, err, kind = b:content_writer(ns, "pull-" .. digest, { expected = digest, size = #body })
  if not w then return nil, err, kind end
  if w:offset() > 0 then
    -- stale partial write of the same ref: start over
    w:abort()
    w, err, kind = b:content_writer(ns, "pull-" .. digest, { expected = digest, size = #body })
    if not w then return nil, err, kind end
  end
  local ok
  ok, err, kind = w:write(body)
  if not ok then w:abort(); return nil, err, kind end
  local d, st
  d, st, kind = w:commit(#body, digest, labels)
  w:close()
  if not d then return nil, st, kind end
  if st == "exists" and labels then b:content_set_labels(ns, digest, labels, false) end
  return d, st
end

--- Resolves a reference to its top-level descriptor without fetching blobs.
---@return table|nil {ref=, descriptor=, endpoint=}, string?, string?
function M.resolve(ref_string, opts)
  opts = opts or {}
  local ref, err, kind = reference.parse(ref_string)
  if not ref then return nil, err, kind end
  local eps
  eps, err, kind = hosts.endpoints(ref.domain, "resolve", opts)
  if not eps then return nil, err, kind end
  local cache = {}
  local desc, e2, k2, ep = on_endpoints(eps, cache, function(r) return r:resolve(ref.path, ref:object()) end)
  if not desc then return nil, "resolve " .. ref:string() .. ": " .. tostring(e2), k2 end
  return { ref = ref, descriptor = desc, endpoint = ep }
end

--- Pulls an image.
---@param client crater.Client
---@param ref_string string
---@param opts? {platform?: string, all_platforms?: boolean, unpack?: boolean, snapshotter?: string, config?: table, plain_http?: boolean, credential?: table, insecure_skip_verify?: boolean, progress?: crater.Progress, parallel?: integer, labels?: table, name?: string}
---@return table|nil image {name=, target=, manifests=, fetched=, unpacked=}, string? err, string? kind
function M.pull(client, ref_string, opts)
  if type(ref_string) ~= "string" then error("pull: reference must be a string", 2) end
  opts = opts or {}
  local p = opts.progress or require("crater.progress").new { mode = "quiet" }
  local b, ns = client.backend, client.ns
  local ref, err, kind = reference.parse(ref_string)
  if not ref then return nil, err, kind end
  local what = "pull " .. ref:string()
  -- admission: policies may deny the pull or amend the platform
  local pev = { ref = ref:string(), domain = ref.domain, repository = ref.path, tag = ref.tag,
    digest = ref.digest, platform = opts.platform }
  local allowed, why, pkind = client:policy("image.pre_pull", pev)
  if not allowed then return nil, what .. ": " .. tostring(why), pkind end
  if pev.platform ~= opts.platform then
    opts = require("crater.util").copy(opts)
    opts.platform = pev.platform
  end
  local matcher
  if not opts.all_platforms then
    matcher, err, kind = platforms.matcher(opts.platform)
    if not matcher then return nil, err, kind end
  end
  local hopts = { config = opts.config, plain_http = opts.plain_http, credential = opts.credential,
    insecure_skip_verify = opts.insecure_skip_verify, docker_config = opts.docker_config }
  local reps, peps
  reps, err, kind = hosts.endpoints(ref.domain, "resolve", hopts)
  if not reps then return nil, what .. ": " .. err, kind end
  peps, err, kind = hosts.endpoints(ref.domain, "pull", hopts)
  if not peps then return nil, what .. ": " .. err, kind end
  local cache = {}
  local repo = ref.path

  -- 2. resolve
  local top, ep
  top, err, kind, ep = on_endpoints(reps, cache, function(r) return r:resolve(repo, ref:object()) end)
  if not top then return nil, what .. ": resolve: " .. tostring(err), kind end
  if ref.digest and top.digest ~= ref.digest then
    return fail(what .. ": registry resolved " .. top.digest .. " for a reference by digest", "data_loss")
  end
  p:message("resolved", ref:string() .. " -> " .. top.digest, { digest = top.digest, media_type = top.media_type })

  -- 3. manifests (in memory until every blob is in)
  local function get_manifest(desc)
    local have = b:content_info(ns, desc.digest)
    local body, ct
    if have then
      body = images.read_blob(b, ns, desc.digest)
      ct = desc.media_type
    end
    if not body then
      local e, k
      local eps = { ep }
      for _, x in ipairs(peps) do if x.host ~= ep.host then eps[#eps + 1] = x end end
      body, e, k = on_endpoints(eps, cache, function(r)
        local bd, mt, third = r:fetch_manifest(repo, desc.digest, { accept = images.ACCEPT })
        if bd == nil then return nil, mt, third end
        ct = mt
        return bd
      end)
      if not body then return nil, "fetch manifest " .. desc.digest .. ": " .. tostring(e), k end
    end
    if desc.size and desc.size ~= #body then
      return nil, string.format("manifest %s is %d bytes, descriptor says %d", desc.digest, #body, desc.size), "data_loss"
    end
    local m, e, k = images.decode_manifest(body, ct or desc.media_type, { digest = desc.digest })
    if not m then return nil, "manifest " .. desc.digest .. ": " .. e, k end
    if desc.media_type and images.kind_of(desc.media_type) and desc.media_type ~= m.media_type then
      return nil, string.format("manifest %s: descriptor says %s, document is %s", desc.digest, desc.media_type,
        m.media_type), "invalid_argument"
    end
    m.present = have ~= nil
    return m
  end

  local top_m
  top_m, err, kind = get_manifest(top)
  if not top_m then return nil, what .. ": " .. err, kind end
  top.media_type = top_m.media_type
  local chosen = {}   -- { {desc=, m=} } platform manifests to fetch
  local index_chain = {}  -- indexes to commit (top first)
  local function choose(desc, m)
    if m.kind == "manifest" then
      chosen[#chosen + 1] = { desc = desc, m = m }
      return true
    end
    index_chain[#index_chain + 1] = { desc = desc, m = m }
    local picks
    if opts.all_platforms then
      picks = m.doc.manifests
    else
      local d, e, k = platforms.select(m.doc.manifests, matcher)
      if not d then return nil, e, k end
      picks = { d }
    end
    for _, d in ipairs(picks) do
      local cd = { media_type = d.mediaType, digest = d.digest, size = d.size, platform = d.platform }
      local cm, e, k = get_manifest(cd)
      if not cm then return nil, e, k end
      local ok, e2, k2 = choose(cd, cm)
      if not ok then return nil, e2, k2 end
    end
    return true
  end
  local ok
  ok, err, kind = choose(top, top_m)
  if not ok then return nil, what .. ": " .. err, kind end

  -- 4. blobs
  local lease_id
  if b.lease_create then
    lease_id = string.format("pull-%d-%d", core.getpid(), math.floor(core.now() * 1000))
    local l, le = b:lease_create(ns, lease_id, { ["crater.io/purpose"] = what }, 24 * 3600)
    if not l and le then lease_id = nil end
  end
  local function lease_add(digest)
    if lease_id and b.lease_add_resource then b:lease_add_resource(ns, lease_id, "content", digest) end
  end
  local function release()
    if lease_id and b.lease_delete then b:lease_delete(ns, lease_id) end
  end

  local src_key = source_label_key(ref.domain)
  local want, by_digest, skipped = {}, {}, {}
  local function want_blob(d, role)
    if by_digest[d.digest] then return true end
    local li = role == "layer" and images.layer_info(d.mediaType)
    if role == "layer" and not li then
      return nil, string.format("layer %s: unsupported media type %q", d.digest, d.mediaType), "invalid_argument"
    end
    by_digest[d.digest] = true
    local info = b:content_info(ns, d.digest)
    if info then
      if info.size ~= d.size then
        return nil, string.format("blob %s in the store is %d bytes, descriptor says %d", d.digest, info.size, d.size),
          "data_loss"
      end
      lease_add(d.digest)
      local labels = { [src_key] = merge_source(info.labels and info.labels[src_key], repo) }
      b:content_set_labels(ns, d.digest, labels, false)
      p:add(d.digest, { name = role .. " " .. d.digest, total = d.size })
      p:state(d.digest, "exists")
      return true
    end
    if li and li.foreign then
      skipped[#skipped + 1] = d.digest
      p:add(d.digest, { name = role .. " " .. d.digest, total = d.size })
      p:state(d.digest, "skipped", "foreign layer, not downloaded")
      return true
    end
    want[#want + 1] = { digest = d.digest, size = d.size, role = role, ref = "pull-" .. d.digest }
    p:add(d.digest, { name = role .. " " .. d.digest, total = d.size })
    return true
  end
  for _, c in ipairs(chosen) do
    ok, err, kind = want_blob(c.m.doc.config, "config")
    if not ok then release(); return nil, what .. ": " .. err, kind end
    for _, l in ipairs(c.m.doc.layers) do
      ok, err, kind = want_blob(l, "layer")
      if not ok then release(); return nil, what .. ": " .. err, kind end
    end
  end

  local fetch_eps = { ep }
  for _, x in ipairs(peps) do if x.host ~= ep.host then fetch_eps[#fetch_eps + 1] = x end end
  local src_labels = { [src_key] = repo }
  -- Downloads items straight into content writers (core.fetch_apply),
  -- applying layers that have it.apply into their scratch snapshots while
  -- they stream; commits each blob (the store verifies digest and size).
  local function fetch_round(items)
    for _, it in ipairs(items) do
      local w, e, k = b:content_writer(ns, it.ref, { expected = it.digest, size = it.size })
      if not w then return nil, string.format("%s: blob %s: %s", what, it.digest, tostring(e)), k end
      it.w = w
    end
    local function drop_all(list) for _, it in ipairs(list) do if it.w then it.w:close(); it.w = nil end end end
    local remaining, last_err = items, nil
    for _, fep in ipairs(fetch_eps) do
      if #remaining == 0 then break end
      local r, rerr = remote_for(cache, fep)
      if r then
        local req = {}
        for i, it in ipairs(remaining) do
          req[i] = { digest = it.digest, size = it.size, writer = it.w, apply = it.w:offset() == 0 and it.apply or nil }
          if req[i].apply then p:state(it.digest, "unpacking") end
        end
        local results = core.fetch_apply(r, repo, req, {
          parallel = opts.parallel or M.DEFAULT_PARALLEL,
          on_progress = function(i, done, total) p:update(remaining[i].digest, done, total) end,
        })
        local next_round = {}
        for i, it in ipairs(remaining) do
          local res = results[i]
          if res.apply then it.applied = res.apply elseif res.apply_err then it.apply_err = res.apply_err end
          if res.ok then
            p:state(it.digest, "verifying")
            local d, st, ck = it.w:commit(it.size, it.digest, src_labels)
            if not d then
              it.w:abort(); it.w = nil
              p:state(it.digest, "failed", st)
              drop_all(items)
              return nil, string.format("%s: blob %s: %s", what, it.digest, tostring(st)), ck
            end
            it.w:close(); it.w = nil
            lease_add(it.digest)
            p:state(it.digest, "done")
          else
            local ek = res.kind or "internal"
            last_err = { string.format("blob %s from %s: %s", it.digest, hosts.describe(fep), res.err or "failed"), ek }
            if ek == "data_loss" or ek == "invalid_argument" or ek == "resource_exhausted" or ek == "failed_precondition" then
              p:state(it.digest, "failed", res.err)
              it.w:abort(); it.w = nil -- keep nothing of a bad download
              drop_all(items)
              return nil, what .. ": " .. last_err[1], ek
            end
            next_round[#next_round + 1] = it
          end
        end
        remaining = next_round
      else
        last_err = { hosts.describe(fep) .. ": " .. tostring(rerr), "unavailable" }
      end
    end
    if #remaining > 0 then
      for _, it in ipairs(remaining) do p:state(it.digest, "failed") end
      drop_all(items)
      return nil, what .. ": " .. (last_err and last_err[1] or "fetch failed"), last_err and last_err[2] or "unavailable"
    end
    return true
  end

  -- 4a. configs first (small): the unpack plan needs their diff_ids
  local cfg_items, layer_items = {}, {}
  for _, it in ipairs(want) do
    if it.role == "config" then cfg_items[#cfg_items + 1] = it else layer_items[#layer_items + 1] = it end
  end
  ok, err, kind = fetch_round(cfg_items)
  if not ok then release(); return nil, err, kind end
  local configs = {}
  for i, c in ipairs(chosen) do
    local cbody = images.read_blob(b, ns, c.m.doc.config.digest)
    local cfg, ce, ck = images.decode_config(cbody or "", #c.m.doc.layers)
    if not cfg then release(); return nil, what .. ": config " .. c.m.doc.config.digest .. ": " .. ce, ck end
    configs[i] = cfg
  end
  -- 4b. which platform is unpacked; its layers apply while they download
  local umatch = matcher or platforms.matcher()
  local want_unpack = opts.unpack == true or (opts.unpack == nil and unpack.available(client))
  local unpack_i
  if want_unpack then
    for i, c in ipairs(chosen) do
      local cfg = configs[i]
      local plat = c.desc.platform or { os = cfg.os, architecture = cfg.architecture, variant = cfg.variant }
      if #chosen == 1 or umatch:match(plat) then unpack_i = i; break end
    end
  end
  local plan
  if unpack_i then
    local by = {}
    for _, it in ipairs(layer_items) do by[it.digest] = it end
    plan = unpack.plan_streaming(client, chosen[unpack_i].m, configs[unpack_i], by,
      { snapshotter = opts.snapshotter, config = opts.config })
  end
  -- 4c. layers
  ok, err, kind = fetch_round(layer_items)
  if not ok then
    if plan then unpack.discard_plan(plan) end
    release(); return nil, err, kind
  end

  -- a failure from here on drops the streamed (uncommitted) snapshots too
  local function abandon(msg, k)
    if plan then unpack.discard_plan(plan) end
    release()
    return nil, msg, k
  end

  -- 5. manifests and indexes, children first, with gc references
  for _, c in ipairs(chosen) do
    local labels = { [src_key] = repo, ["containerd.io/gc.ref.content.config"] = c.m.doc.config.digest }
    for i, l in ipairs(c.m.doc.layers) do labels["containerd.io/gc.ref.content.l." .. (i - 1)] = l.digest end
    local d, st, k = put_blob(b, ns, c.desc.digest, c.m.body, labels)
    if not d then return abandon(what .. ": commit manifest " .. c.desc.digest .. ": " .. tostring(st), k) end
    lease_add(c.desc.digest)
  end
  for i = #index_chain, 1, -1 do
    local x = index_chain[i]
    local labels = { [src_key] = repo }
    for j, d in ipairs(x.m.doc.manifests) do labels["containerd.io/gc.ref.content.m." .. (j - 1)] = d.digest end
    local d, st, k = put_blob(b, ns, x.desc.digest, x.m.body, labels)
    if not d then return abandon(what .. ": commit index " .. x.desc.digest .. ": " .. tostring(st), k) end
    lease_add(x.desc.digest)
  end

  local name = opts.name or ref:string()
  local target = { media_type = top_m.media_type, digest = top.digest, size = top_m.size }
  local rec
  rec, err, kind = images.new(client):put { name = name, target = target, labels = opts.labels or {} }
  if not rec then return abandon(what .. ": record image: " .. tostring(err), kind) end
  p:message("recorded", name .. " -> " .. top.digest, { name = name, digest = top.digest })

  -- 6. unpack the platform(s) matching this host / the requested platform
  local result = { name = name, target = target, manifests = json.array {}, skipped = json.array(skipped),
    fetched = #want }
  for i, c in ipairs(chosen) do
    local cfg = configs[i]
    local plat = c.desc.platform or { os = cfg.os, architecture = cfg.architecture, variant = cfg.variant }
    local entry = { digest = c.desc.digest, platform = platforms.format(platforms.normalize(plat)), layers = #c.m.doc.layers }
    result.manifests[#result.manifests + 1] = entry
    if opts.unpack == nil and not unpack.available(client) and i == 1 then
      p:message("warning", "not unpacked: this build has no snapshotter support yet", {})
      result.unpack_skipped = "no snapshotter support"
    end
    if i == unpack_i then
      local u, ue, uk = unpack.unpack(client, c.m, cfg, { snapshotter = opts.snapshotter, config = opts.config,
        progress = p, plan = plan })
      if not u then release(); return nil, what .. ": " .. ue, uk end
      entry.chain_id = u.chain_id
      entry.snapshotter = u.snapshotter
      entry.streamed = u.streamed
      result.unpacked = entry
    end
  end
  release()
  p:finish()
  client:policy("image.post_pull", { ref = ref:string(), name = name, digest = top.digest, size = top_m.size })
  return result
end

return M
