--- crater.snapshots: the namespaced snapshot service of a client,
--- `client:snapshots(name)`, for built-in (C) and Lua snapshotters alike.
---
--- ```lua
--- local sn = c:snapshots("overlayfs")
--- assert(sn:prepare("extract-1"))                 -- active, no parent
--- assert(sn:apply_layer("extract-1", "layer.tar")) -- needs core.archive_apply
--- assert(sn:commit("layer-1", "extract-1"))
--- local mounts = assert(sn:prepare("rootfs", "layer-1"))
--- assert(require("crater.mount").all(mounts, "/mnt/x"))
--- ```
---
--- Keys are per namespace; kinds "active" / "view" / "committed"; parents
--- must be committed; views are read-only; remove is refused (kind
--- "failed_precondition") while children exist.  Methods return
--- `nil, msg, kind` on expected failures and raise on misuse.
---
--- Built-in snapshotters are served by the client's backend through the
--- flat `snapshot_<verb>(ns, snapshotter, ...)` calls: methods of the
--- `crater.store` userdata (one SQLite connection per client) for embedded
--- clients, the same calls over the daemon API for remote ones.
local core = require "crater.core"
local registry = require "crater.snapshotters"

local M = {}
local Snapshots = {}
Snapshots.__index = Snapshots
M.Snapshots = Snapshots

-- ---------------------------------------------------------------------------
-- filters (same syntax as the C side: OR of strings, AND of comma clauses;
-- fields name, parent, kind, labels."k" / labels.k; ==, !=, presence)

local function parse_clause(s)
  local field, rest
  local q = s:match('^labels%."')
  if q then
    local key, after = s:match('^labels%."(.-)"(.*)$')
    if not key then return nil end
    field, rest = "labels." .. key, after
  else
    field, rest = s:match("^([%w_%.%-/]+)(.*)$")
    if not field then return nil end
  end
  rest = rest:match("^%s*(.-)%s*$")
  if rest == "" then return { field = field, op = "exists" } end
  local op, val = rest:match("^([!=]=)%s*(.*)$")
  if not op then return nil end
  val = val:match('^"(.*)"$') or val
  return { field = field, op = op, value = val }
end

--- Parses filter strings into a matcher; nil, msg on a bad filter.
function M.compile_filters(filters)
  if filters == nil then return function() return true end end
  if type(filters) == "string" then filters = { filters } end
  local alts = {}
  for _, f in ipairs(filters) do
    local conj = {}
    for part in (f .. ","):gmatch("([^,]*),") do
      part = part:match("^%s*(.-)%s*$")
      if part ~= "" then
        local c = parse_clause(part)
        if not c then return nil, "invalid filter " .. string.format("%q", f) end
        conj[#conj + 1] = c
      end
    end
    alts[#alts + 1] = conj
  end
  if #alts == 0 then return function() return true end end
  return function(info)
    for _, conj in ipairs(alts) do
      local all = true
      for _, c in ipairs(conj) do
        local v
        if c.field:sub(1, 7) == "labels." then v = (info.labels or {})[c.field:sub(8)]
        elseif c.field == "name" or c.field == "key" then v = info.name
        else v = info[c.field] end
        if c.op == "exists" then all = v ~= nil
        elseif c.op == "==" then all = v == c.value
        else all = v ~= c.value end
        if not all then break end
      end
      if all then return true end
    end
    return false
  end
end

-- ---------------------------------------------------------------------------
-- backends

-- the backend serving the flat snapshot_<verb> calls
local function flat_handle(client)
  local b = client.backend
  if b and b.snapshot_prepare then return b end
  return nil, "snapshots: this client's backend does not serve snapshots", "not_implemented"
end

--- Adapter giving a C snapshotter the Lua impl interface.
local function builtin_instance(h, name)
  local B = {}
  function B:prepare(ns, key, parent, labels) return h:snapshot_prepare(ns, name, key, parent, labels) end
  function B:view(ns, key, parent, labels) return h:snapshot_view(ns, name, key, parent, labels) end
  function B:commit(ns, nm, key, labels) return h:snapshot_commit(ns, name, nm, key, labels) end
  function B:remove(ns, key) return h:snapshot_remove(ns, name, key) end
  function B:mounts(ns, key) return h:snapshot_mounts(ns, name, key) end
  function B:stat(ns, key) return h:snapshot_stat(ns, name, key) end
  function B:update(ns, key, labels, replace) return h:snapshot_update(ns, name, key, labels, replace) end
  function B:usage(ns, key) return h:snapshot_usage(ns, name, key) end
  function B:walk(ns, filters) return h:snapshot_walk(ns, name, filters) end
  function B:cleanup() return h:snapshot_cleanup(name) end
  function B:apply_dir(ns, key) return h:snapshot_apply_dir(ns, name, key) end
  return B
end

local lua_instances = setmetatable({}, { __mode = "k" }) -- impl -> {root -> inst}

local function lua_instance(impl, root)
  if type(impl.open) ~= "function" then return impl end
  local per = lua_instances[impl]
  if not per then per = {}; lua_instances[impl] = per end
  if not per[root] then
    local inst, err, kind = impl:open(root)
    if not inst then return nil, err, kind end
    per[root] = inst
  end
  return per[root]
end

--- Builds the snapshot service of client for snapshotter name (default:
--- the selection rules).
function M.new(client, name)
  if name ~= nil and type(name) ~= "string" then error("snapshots: name must be a string", 3) end
  name = name or registry.default(client.root)
  local inst, err, kind
  if registry.is_builtin(name) then
    local h
    h, err, kind = flat_handle(client)
    if h then inst = builtin_instance(h, name) end
  elseif registry.get(name) then
    inst, err, kind = lua_instance(registry.get(name), client.root)
  else
    error("snapshots: " .. registry.unknown(name), 3)
  end
  return setmetatable({ client = client, ns = client.ns, name = name, inst = inst,
    open_err = err, open_kind = kind, builtin = registry.is_builtin(name) }, Snapshots)
end

local function I(self)
  if getmetatable(self) ~= Snapshots then error("snapshots: method called without ':'", 3) end
  return self.inst
end

local function check_key(v, what)
  if type(v) ~= "string" or v == "" then error("snapshots: " .. what .. " must be a non-empty string", 3) end
end

local function check_labels(l)
  if l == nil then return end
  if type(l) ~= "table" then error("snapshots: labels must be a table", 3) end
  for k, v in pairs(l) do
    if type(k) ~= "string" or type(v) ~= "string" then error("snapshots: labels must map strings to strings", 3) end
  end
end

-- every public method: check args, then call the instance (or report why
-- there is none)
local function call(self, method, ...)
  local inst = self.inst
  if not inst then return nil, self.open_err or "snapshotter unavailable", self.open_kind or "unavailable" end
  return inst[method](inst, ...)
end

--- Creates an active snapshot on top of parent (committed; nil: empty).
---@return table[]|nil mounts, string? err, string? kind
function Snapshots:prepare(key, parent, labels)
  I(self); check_key(key, "key"); if parent ~= nil then check_key(parent, "parent") end; check_labels(labels)
  return call(self, "prepare", self.ns, key, parent, labels)
end

--- Creates a read-only view of parent (nil: empty).
function Snapshots:view(key, parent, labels)
  I(self); check_key(key, "key"); if parent ~= nil then check_key(parent, "parent") end; check_labels(labels)
  return call(self, "view", self.ns, key, parent, labels)
end

--- Commits active key as name (key disappears).  labels, when non-empty,
--- replace the active snapshot's labels.
function Snapshots:commit(name, key, labels)
  I(self); check_key(name, "name"); check_key(key, "key"); check_labels(labels)
  return call(self, "commit", self.ns, name, key, labels)
end

--- Removes key (refused with "failed_precondition" while it has children).
function Snapshots:remove(key)
  I(self); check_key(key, "key")
  return call(self, "remove", self.ns, key)
end

--- Mount descriptions of an active snapshot or a view.
function Snapshots:mounts(key)
  I(self); check_key(key, "key")
  return call(self, "mounts", self.ns, key)
end

--- {name=, parent=, kind=, labels=, created_at=, updated_at=}
function Snapshots:stat(key)
  I(self); check_key(key, "key")
  return call(self, "stat", self.ns, key)
end

--- Merges labels ("" removes a key) or replaces them; returns the info.
function Snapshots:update(key, labels, replace)
  I(self); check_key(key, "key"); check_labels(labels)
  return call(self, "update", self.ns, key, labels or {}, replace and true or false)
end

--- {size=, inodes=} of what key adds over its parent.
function Snapshots:usage(key)
  I(self); check_key(key, "key")
  return call(self, "usage", self.ns, key)
end

--- Snapshots matching filters (string or array of strings), sorted by
--- name; with fn, calls fn(info) for each too.
function Snapshots:walk(filters, fn)
  I(self)
  if type(filters) == "function" then filters, fn = nil, filters end
  local match, ferr = M.compile_filters(filters)
  if not match then return nil, ferr, "invalid_argument" end
  local list, err, kind = call(self, "walk", self.ns, filters)
  if not list then return nil, err, kind end
  local out = {}
  for _, info in ipairs(list) do
    if match(info) then out[#out + 1] = info end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  if fn then for _, info in ipairs(out) do fn(info) end end
  return out
end

--- Removes backend data nothing references; returns the count removed.
function Snapshots:cleanup()
  I(self)
  return call(self, "cleanup")
end

--- Directory a layer is applied into for active key, and its whiteout style.
function Snapshots:apply_dir(key)
  I(self); check_key(key, "key")
  if not self.inst then return call(self, "apply_dir") end
  if type(self.inst.apply_dir) ~= "function" then
    return nil, "snapshotter " .. self.name .. " has no apply dir", "not_implemented"
  end
  return self.inst:apply_dir(self.ns, key)
end

--- The lower directories (nearest first, absolute) of an overlay mount
--- description, for apply's copy-up (hardlinks to lower files, metadata of
--- implicitly created parents); {} for a bind mount or no mounts.
function M.lower_dirs(mounts)
  local out = {}
  for _, m in ipairs(type(mounts) == "table" and mounts or {}) do
    if m.type == "overlay" then
      local lower, base
      for _, opt in ipairs(m.options or {}) do
        lower = lower or opt:match("^lowerdir=(.*)$")
        base = base or opt:match("^X%-crater%.mount%-dir=(.*)$")
      end
      for d in (lower or ""):gmatch("[^:]+") do
        if d:sub(1, 1) ~= "/" and base then d = base .. "/" .. d end
        out[#out + 1] = d
      end
    end
  end
  return out
end

--- Applies an OCI layer (tar, optionally compressed) into active key,
--- mount-free: overlayfs applies into the snapshot's fs/ with overlay
--- whiteouts, native/btrfs into their tree with real deletions.
--- opts go to core.archive_apply (compression, max_size, expected_diff_id).
---@return table|nil result {diff_id=, size=}, string? err, string? kind
function Snapshots:apply_layer(key, layer_path, opts)
  I(self); check_key(key, "key"); check_key(layer_path, "layer_path")
  if opts ~= nil and type(opts) ~= "table" then error("snapshots: opts must be a table", 2) end
  if type(core.archive_apply) ~= "function" then
    return nil, "layer apply is not available in this build", "not_implemented"
  end
  local dir, wh, kind = self:apply_dir(key)
  if not dir then return nil, wh, kind end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.whiteouts = wh
  if wh == "overlay" and o.lowers == nil then o.lowers = M.lower_dirs(self:mounts(key)) end
  local res, err, k2 = core.archive_apply(dir, layer_path, o)
  if not res then return nil, "apply layer to snapshot " .. key .. ": " .. tostring(err), k2 end
  return res
end

--- Mounts key (active or view) at target with the mount helper.
function Snapshots:mount(key, target)
  I(self); check_key(key, "key"); check_key(target, "target")
  local mounts, err, kind = self:mounts(key)
  if not mounts then return nil, err, kind end
  return require("crater.mount").all(mounts, target)
end

--- Unmounts everything on target.
function Snapshots:unmount(target)
  check_key(target, "target")
  return require("crater.mount").unmount_all(target)
end

local VIEW_LABEL = "crater.io/mount-target"

local abspath = require("crater.util").abs_path

--- Mounts a read-only view of committed snapshot `parent` (an image's
--- chain id, or any committed key) at dir: creates view "mount:<dir>"
--- labelled crater.io/mount-target=<dir>.  Used by `crater image mount`.
function Snapshots:mount_view(parent, dir)
  I(self); check_key(parent, "parent"); check_key(dir, "dir")
  dir = abspath(dir)
  local key = "mount:" .. dir
  local mounts, err, kind = self:view(key, parent, { [VIEW_LABEL] = dir })
  if not mounts then return nil, err, kind end
  local ok
  ok, err, kind = require("crater.mount").all(mounts, dir)
  if not ok then
    self:remove(key)
    return nil, err, kind
  end
  return key
end

--- Undoes mount_view: unmounts dir and removes its view.
function Snapshots:unmount_view(dir)
  I(self); check_key(dir, "dir")
  dir = abspath(dir)
  local ok, err, kind = require("crater.mount").unmount_all(dir)
  if not ok then return nil, err, kind end
  local list = self:walk({ 'labels."' .. VIEW_LABEL .. '"=="' .. dir:gsub('[\\"]', '\\%0') .. '"' })
  local removed = 0
  for _, info in ipairs(list or {}) do
    if info.kind == "view" then
      ok, err, kind = self:remove(info.name)
      if not ok then return nil, err, kind end
      removed = removed + 1
    end
  end
  if removed == 0 then return nil, "no mounted view at " .. dir, "not_found" end
  return true
end

return M
