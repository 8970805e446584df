--- crater.unpack: applies an image's layers to a snapshotter.
---
--- For a manifest with layers L1..Ln and config rootfs.diff_ids D1..Dn the
--- committed snapshot of layer i is keyed by its chain ID
--- (C1 = D1, Ci = sha256(C(i-1) .. " " .. Di)), exactly as containerd, so
--- images sharing a base share its snapshots.  A layer whose chain ID is
--- already committed is skipped.  Each layer is applied into a fresh active
--- snapshot (`extract-<pid>-<n> <chain>`), its uncompressed digest checked
--- against Di while it streams (the archive layer computes it), then
--- committed under Ci; on any failure the active snapshot is removed.
---
--- With a plan from plan_streaming (pull, overlayfs), layers were already
--- applied while downloading, each into its own scratch snapshot; unpack
--- then only moves each directory into its chain-ordered snapshot and
--- commits.  For native/btrfs the plan streams only the first layer to
--- unpack (its parent committed), straight into its real snapshot; the
--- other layers (and any whose streamed apply failed) apply from the
--- stored blob, in chain order.
local images = require "crater.images"
local core = require "crater.core"

local M = {}

--- Tells whether this build has snapshot support (client:snapshots).
function M.available(client)
  local C = getmetatable(client)
  return C ~= nil and type(C.snapshots) == "function"
end

--- The snapshotter an unpack uses: crater.snapshotters.select is the only
--- rule (opts.snapshotter overrides, then CRATER_SNAPSHOTTER, then
--- config.snapshotter, then btrfs / overlayfs when the root supports them,
--- else native), the same as client:snapshots() without a name.  An unknown
--- name gives nil, message, "invalid_argument".
---@param opts? {snapshotter?: string, config?: table}
---@return string|nil name, string? err, string? kind
function M.select(client, opts)
  opts = opts or {}
  local registry = require "crater.snapshotters"
  if opts.snapshotter and opts.snapshotter ~= "" then
    local unknown = registry.unknown(opts.snapshotter)
    if unknown then return nil, unknown, "invalid_argument" end
    return (registry.select { root = client.root, config = opts.config, override = opts.snapshotter })
  end
  -- select{}, honouring CRATER_SNAPSHOTTER and the snapshotter.select hook
  return (registry.default(client.root, opts.config, client:policies()))
end

-- An unpack setting: opts[key], else the crater config's unpack[key]
-- (opts.config or the client's config), else the environment variable.
-- Returns value (nil when unset) and where it came from, or nil, nil, err.
local function setting(client, opts, key, env)
  local v, where = opts[key], key
  if v == nil then
    local cfg = opts.config or client.config
    local u = type(cfg) == "table" and cfg.unpack or nil
    if u ~= nil and type(u) ~= "table" then return nil, nil, "config: unpack must be a table" end
    if u then v, where = u[key], "config unpack." .. key end
  end
  if v == nil then
    local e = os.getenv(env)
    if e and e ~= "" then v, where = tonumber(e) or e, env end
  end
  return v, where
end

--- Default cap on one layer's uncompressed size (decompression bombs).
M.DEFAULT_MAX_LAYER_SIZE = 64 * 1024 * 1024 * 1024

--- The uncompressed size limit for one layer: opts.max_layer_size, else
--- the crater config's `unpack = { max_layer_size = N }` (opts.config or
--- the client's config), else CRATER_UNPACK_MAX_LAYER_SIZE, else
--- DEFAULT_MAX_LAYER_SIZE (64 GiB).  0 means unlimited.  Returns nil, err
--- for a value that is not a non-negative integer.
function M.max_layer_size(client, opts)
  local v, where, err = setting(client, opts or {}, "max_layer_size", "CRATER_UNPACK_MAX_LAYER_SIZE")
  if err then return nil, err end
  if v == nil then return M.DEFAULT_MAX_LAYER_SIZE end
  if type(v) ~= "number" or v < 0 or v ~= math.floor(v) then
    return nil, where .. " must be a non-negative integer (bytes), got " .. tostring(v)
  end
  return v
end

--- How many stored layers apply at once on a snapshotter whose layers are
--- independent directories (overlayfs): opts.parallel, else the crater
--- config's `unpack = { parallel = N }`, else CRATER_UNPACK_PARALLEL, else
--- 0 = the number of online CPUs.  1 applies one layer at a time.  Returns
--- nil, err for a value that is not an integer in 0..256.
function M.parallel(client, opts)
  local v, where, err = setting(client, opts or {}, "parallel", "CRATER_UNPACK_PARALLEL")
  if err then return nil, err end
  if v == nil then return 0 end
  if type(v) ~= "number" or v < 0 or v > 256 or v ~= math.floor(v) then
    return nil, where .. " must be an integer in 0..256 (0 = CPUs), got " .. tostring(v)
  end
  return v
end

local function open_sn(client, opts)
  local ok, sname, serr, skind = pcall(M.select, client, opts)
  if not ok then return nil, "unpack: " .. tostring(sname), "invalid_argument" end
  if not sname then return nil, "unpack: " .. tostring(serr), skind end
  local sn
  ok, sn, serr, skind = pcall(client.snapshots, client, sname)
  if not ok then return nil, "unpack: " .. tostring(sn), "internal" end
  if not sn then return nil, "unpack: " .. tostring(serr), skind end
  return sn, sname
end

--- Prepares streaming apply for the layers of m that are being downloaded
--- (downloading[digest] = pull item): when the snapshotter applies into
--- independent directories (overlay whiteouts: overlayfs), each such layer
--- not yet unpacked gets a scratch active snapshot with no parent
--- (`extract-<pid>-<i>-stream`), and item.apply = {dir=, compression=,
--- whiteouts=, expected_diff_id=} for core.fetch_apply, so every layer
--- applies in parallel while it downloads.  unpack() later moves each
--- scratch directory into the real snapshot (parent chain) and commits in
--- chain order.  Returns a plan, or nil when streaming does not apply
--- (native/btrfs apply onto a copy of the parent, so they unpack after the
--- download).
function M.plan_streaming(client, m, config, downloading, opts)
  if not M.available(client) then return nil end
  local sn = open_sn(client, opts)
  if not sn or not sn.builtin then return nil end
  local diff_ids = config.rootfs.diff_ids
  if #diff_ids ~= #m.doc.layers then return nil end
  local chain = images.chain_ids(diff_ids)
  local max = M.max_layer_size(client, opts)
  if not max then return nil end
  local plan = { sn = sn, keys = {} }
  local ref_label = function(i) return { ["containerd.io/snapshot.ref"] = chain[i] } end
  for i, l in ipairs(m.doc.layers) do
    local it = downloading[l.digest]
    local li = images.layer_info(l.mediaType)
    if it and li and not li.foreign and not sn:stat(chain[i]) then
      local key = string.format("extract-%d-%d-stream %s", core.getpid(), i, chain[i])
      sn:remove(key)
      if sn:prepare(key, nil, ref_label(i)) then
        local dir, wh = sn:apply_dir(key)
        if dir and wh == "overlay" then
          it.apply = { dir = dir, compression = li.compression, whiteouts = wh, expected_diff_id = diff_ids[i],
            max_size = max }
          plan.keys[i] = { key = key, dir = dir, item = it }
        else
          sn:remove(key)
          -- A snapshotter that applies onto a copy of the parent (native,
          -- btrfs: "delete" whiteouts): only the first layer to unpack can
          -- stream, and only when its parent is already committed; it goes
          -- straight into its real chain-ordered snapshot (inplace).
          if wh == "delete" and (i == 1 or sn:stat(chain[i - 1])) then
            local rkey = string.format("extract-%d-%d %s", core.getpid(), i, chain[i])
            sn:remove(rkey)
            if sn:prepare(rkey, chain[i - 1], ref_label(i)) then
              local rdir, rwh = sn:apply_dir(rkey)
              if rdir and rwh == "delete" then
                it.apply = { dir = rdir, compression = li.compression, whiteouts = rwh, expected_diff_id = diff_ids[i] }
                plan.keys[i] = { key = rkey, dir = rdir, item = it, inplace = true }
              else
                sn:remove(rkey)
              end
            end
          end
          if wh ~= "overlay" then break end
        end
      end
    end
  end
  if next(plan.keys) == nil then return nil end
  return plan
end

--- Removes a plan's scratch snapshots (after a failed download).
function M.discard_plan(plan)
  for _, k in pairs(plan.keys) do plan.sn:remove(k.key) end
end

-- Error kinds of an isolated apply that a re-apply with lowers cannot fix
-- (anything else, e.g. not_found for a hardlink to a lower file, falls
-- back to the sequential apply from the blob).
local FINAL_KINDS = { resource_exhausted = true, data_loss = true, invalid_argument = true,
  permission_denied = true }

-- Overlayfs: applies the stored layers still to unpack (not committed, not
-- streamed by a pull plan) in parallel, each on its own thread into a
-- parentless scratch snapshot (`extract-<pid>-<i>-par`), recording the
-- parent dirs each creates implicitly; adds them to plan (created when nil)
-- for unpack's loop to move into chain-ordered snapshots, fix up against
-- their lowers and commit, exactly as pull's streamed layers.  Returns the
-- plan.
local function apply_parallel(client, sn, m, diff_ids, chain, plan, max, parallel, p)
  if not sn.builtin or parallel == 1 or type(core.archive_apply_many) ~= "function" then return plan end
  local b, ns = client.backend, client.ns
  local todo = {}
  for i, l in ipairs(m.doc.layers) do
    local li = images.layer_info(l.mediaType)
    if not (plan and plan.keys[i]) and li and not sn:stat(chain[i]) then
      local path = b:content_path(ns, l.digest)
      if path then todo[#todo + 1] = { i = i, layer = l, li = li, path = path } end
    end
  end
  if #todo < 2 then return plan end
  local items, metas = {}, {}
  for _, t in ipairs(todo) do
    local key = string.format("extract-%d-%d-par %s", core.getpid(), t.i, chain[t.i])
    sn:remove(key)
    if sn:prepare(key, nil, { ["containerd.io/snapshot.ref"] = chain[t.i] }) then
      local dir, wh = sn:apply_dir(key)
      if dir and wh == "overlay" then
        items[#items + 1] = { dir = dir, layer = t.path, compression = t.li.compression, whiteouts = "overlay",
          expected_diff_id = diff_ids[t.i], max_size = max, record_implicit = true }
        metas[#items] = { i = t.i, key = key, dir = dir, size = t.layer.size or 0, digest = t.layer.digest }
      else
        sn:remove(key)
        if wh ~= "overlay" then break end -- native/btrfs: layers depend on their parent
      end
    end
  end
  if #items < 2 then
    for _, mt in pairs(metas) do sn:remove(mt.key) end
    return plan
  end
  -- biggest first: the shortest makespan on a small pool
  local idx = {}
  for k = 1, #items do idx[k] = k end
  table.sort(idx, function(x, y) return metas[x].size > metas[y].size end)
  local sitems = {}
  for k, j in ipairs(idx) do sitems[k] = items[j] end
  if p then for _, mt in pairs(metas) do p:state(mt.digest, "unpacking") end end
  local results = core.archive_apply_many(sitems, { parallel = parallel })
  plan = plan or { sn = sn, keys = {} }
  for k, j in ipairs(idx) do
    local mt, r = metas[j], results[k]
    local item = {}
    if r.err then
      item.apply_err, item.apply_kind = r.err, r.kind
    else
      item.applied, item.implicit = { diff_id = r.diff_id, size = r.size, entries = r.entries }, r.implicit
    end
    plan.keys[mt.i] = { key = mt.key, dir = mt.dir, item = item, parallel = true }
  end
  return plan
end

--- Unpacks one platform manifest.
---@param client crater.Client
---@param m table    decoded manifest (images.decode_manifest result)
---@param config table decoded image config
---@param opts? {snapshotter?: string, config?: table, progress?: crater.Progress, labels?: table}
---@return table|nil result {chain_id=, snapshotter=, applied=n, skipped=n}, string? err, string? kind
function M.unpack(client, m, config, opts)
  opts = opts or {}
  if not M.available(client) then
    return nil, "unpack: this build has no snapshotter support yet (use --no-unpack)", "failed_precondition"
  end
  local max, merr = M.max_layer_size(client, opts)
  if not max then return nil, "unpack: " .. merr, "invalid_argument" end
  local sn, sname, skind = open_sn(client, opts)
  if not sn then return nil, sname, skind end
  local plan = opts.plan
  local function drop_plan() if plan then M.discard_plan(plan) end end
  local layers = m.doc.layers
  local diff_ids = config.rootfs.diff_ids
  if #diff_ids ~= #layers then
    return nil, string.format("unpack: config lists %d diff_ids for %d layers", #diff_ids, #layers), "invalid_argument"
  end
  local chain = images.chain_ids(diff_ids)
  local p = opts.progress
  local b, ns = client.backend, client.ns
  local par, parerr = M.parallel(client, opts)
  if not par then drop_plan(); return nil, "unpack: " .. parerr, "invalid_argument" end
  plan = apply_parallel(client, sn, m, diff_ids, chain, plan, max, par, p)
  local parent
  local res = { applied = 0, skipped = 0, chain_id = chain[#chain], snapshotter = sname }
  for i, l in ipairs(layers) do
    local id = l.digest
    if sn:stat(chain[i]) then
      res.skipped = res.skipped + 1
      if p then p:state(id, "done", "already unpacked") end
    else
      local li = images.layer_info(l.mediaType)
      if not li then return nil, string.format("unpack: layer %s has unsupported media type %q", l.digest, l.mediaType), "invalid_argument" end
      local path, perr, pkind = b:content_path(ns, l.digest)
      if not path then
        if li.foreign then
          return nil, string.format("unpack: foreign layer %s is not in the content store (it is never downloaded)", l.digest),
            "failed_precondition"
        end
        return nil, "unpack: " .. tostring(perr), pkind
      end
      local pk = plan and plan.keys[i]
      if p and not (pk and pk.parallel) then p:state(id, "unpacking") end
      local key = string.format("extract-%d-%d %s", core.getpid(), i, chain[i])
      local applied, err, kind
      local final -- an error no re-apply can fix
      if pk and pk.inplace then
        -- streamed into its real snapshot (parent already committed):
        -- commit it as is, or start that snapshot over from the blob
        plan.keys[i] = nil
        if pk.item.applied and pk.item.applied.diff_id == diff_ids[i] then
          applied = pk.item.applied
          res.streamed = (res.streamed or 0) + 1
        end
        if not applied then sn:remove(pk.key) end
        key = pk.key
        pk = nil
      end
      if not applied then
        local prep
        prep, err, kind = sn:prepare(key, parent, { ["containerd.io/snapshot.ref"] = chain[i] })
        if not prep then drop_plan(); return nil, string.format("unpack: prepare %s: %s", chain[i], err), kind end
      end
      if pk and pk.item.applied and pk.item.applied.diff_id == diff_ids[i] then
        -- applied while downloading into the scratch snapshot: move its
        -- directory into this one (same snapshotter root, an atomic rename
        -- onto the fresh empty directory)
        local dir = sn:apply_dir(key)
        local rok, rerr
        if dir then rok, rerr = os.rename(pk.dir, dir) end
        local implicit = pk.item.implicit or pk.item.applied.implicit
        if rok and implicit then
          -- implicit parents take the metadata of the lower directories,
          -- which exist now (the lowers are committed)
          local lowers = require("crater.snapshots").lower_dirs(sn:mounts(key))
          local fok, ferr, fkind = core.archive_fix_parents(dir, implicit, lowers)
          if not fok then rok, rerr, kind, final = nil, "apply layer to snapshot " .. key .. ": " .. tostring(ferr), fkind, true end
        end
        if rok then
          applied = pk.item.applied
          if pk.parallel then
            res.parallel = (res.parallel or 0) + 1
          else
            res.streamed = (res.streamed or 0) + 1
          end
        else
          err = rerr
        end
      elseif pk and pk.parallel and FINAL_KINDS[pk.item.apply_kind] then
        err, kind, final = "apply layer to snapshot " .. key .. ": " .. tostring(pk.item.apply_err), pk.item.apply_kind, true
      end
      if pk then sn:remove(pk.key); plan.keys[i] = nil end
      if not applied and not final then
        applied, err, kind = sn:apply_layer(key, path, { compression = li.compression, expected_diff_id = diff_ids[i],
          max_size = max })
      end
      if not applied then
        sn:remove(key)
        drop_plan()
        if kind == "resource_exhausted" then
          return nil, string.format("unpack: layer %s expands beyond the limit of %d bytes (unpack.max_layer_size); "
            .. "its snapshot was discarded: %s", l.digest, max, tostring(err)), kind
        end
        return nil, string.format("unpack: apply layer %s: %s", l.digest, tostring(err)), kind
      end
      if applied.diff_id and applied.diff_id ~= diff_ids[i] then
        sn:remove(key)
        return nil, string.format("unpack: layer %s: uncompressed digest %s does not match diff_id %s",
          l.digest, applied.diff_id, diff_ids[i]), "data_loss"
      end
      local c
      c, err, kind = sn:commit(chain[i], key, { ["crater.io/unpacked-size"] = tostring(applied.size or 0) })
      if not c then
        sn:remove(key)
        if kind ~= "already_exists" then drop_plan(); return nil, string.format("unpack: commit %s: %s", chain[i], err), kind end
      end
      b:content_set_labels(ns, l.digest, { ["containerd.io/uncompressed"] = diff_ids[i] }, false)
      res.applied = res.applied + 1
      if p then p:state(id, "done") end
    end
    parent = chain[i]
  end
  if res.snapshotter and chain[#chain] then
    b:content_set_labels(ns, m.doc.config.digest,
      { ["containerd.io/gc.ref.snapshot." .. res.snapshotter] = chain[#chain] }, false)
  end
  drop_plan()
  return res
end

return M
