--- crater.containers: container metadata (containerd's containers service).
---
--- A container is metadata only: id, image, snapshotter + snapshot key (or
--- a plain rootfs directory), the OCI runtime spec, the runtime name,
--- labels, extensions and timestamps.  Running it is a task
--- (`ctr:new_task{...}`, crater.tasks).
---
--- ```lua
--- local cs = client:containers()
--- local ctr = assert(cs:create("web", {
---   image = "docker.io/library/busybox:latest", snapshot = { new = "web" },
---   spec = { oci.with_process_args("sleep", "60") }, runtime = "runc",
--- }))
--- local task = assert(ctr:new_task{ stdio = "null" })
--- ```
---
--- Storage: the `containers` tables of metadata.db through the store's
--- container_* methods (src/lua/l_container.c, src/metadata/containers.c).
--- spec, runtime options and extensions are kept as JSON text there and
--- decoded here; a container whose rootfs is a plain directory has no
--- snapshot and an absolute `spec.root.path`.
local json = require "crater.json"
local oci = require "crater.oci"

local M = {}
local Containers = {}
Containers.__index = Containers
local Container = {}
Container.__index = Container
M.Container = Container

local function valid_id(id)
  return type(id) == "string" and #id > 0 and #id <= 76 and id:match("^[%w][%w_.-]*$") ~= nil
end
M.valid_id = valid_id

--- Directory for runtime state (task dirs): client.state, $CRATER_STATE,
--- /run/crater for the default root, else <root>/run.
function M.state_dir(client)
  if client.state then return client.state end
  if os.getenv("CRATER_STATE") then return os.getenv("CRATER_STATE") end
  local root = client.root or "/var/lib/crater"
  if root == "/var/lib/crater" then return "/run/crater" end
  return root .. "/run"
end

function M.new(client)
  local b = client.backend
  if b == nil or b.container_create == nil then
    error("containers: this client has no metadata store with container support", 3)
  end
  return setmetatable({ client = client, b = b, ns = client.ns or "default" }, Containers)
end

-- ---- records ---------------------------------------------------------------------

local function decode_field(rec, k)
  local v = rec[k]
  if type(v) ~= "string" then return nil end
  local t, err = json.decode(v)
  if t == nil then error("container " .. tostring(rec.id) .. ": corrupt " .. k .. ": " .. tostring(err), 0) end
  return t
end

--- Turns a row from the store into the record users see (JSON decoded,
--- rootfs derived).
local function from_row(row)
  local ok, err = pcall(function()
    row.spec = decode_field(row, "spec")
    row.runtime_options = decode_field(row, "runtime_options")
    row.extensions = decode_field(row, "extensions") or {}
  end)
  if not ok then return nil, err, "data_loss" end
  local root = type(row.spec) == "table" and row.spec.root
  if not row.snapshot_key and root and type(root.path) == "string" and root.path:sub(1, 1) == "/" then
    row.rootfs = root.path
  end
  row.labels = row.labels or {}
  return row
end
M._from_row = from_row

local function to_row(rec)
  local ext = rec.extensions
  if ext ~= nil and next(ext) == nil then ext = nil end
  return {
    id = rec.id, image = rec.image, snapshotter = rec.snapshotter, snapshot_key = rec.snapshot_key,
    spec = json.encode(rec.spec), runtime = rec.runtime,
    runtime_options = rec.runtime_options and json.encode(rec.runtime_options) or nil,
    extensions = ext and json.encode(ext) or nil, labels = rec.labels,
  }
end

function Containers:_load(id)
  local row, err, kind = self.b:container_get(self.ns, id)
  if not row then return nil, err, kind end
  return from_row(row)
end

-- ---- image and snapshot helpers -----------------------------------------------------

-- Images this process resolved, by namespace, name, target digest and
-- host platform: what a digest names never changes, and the image record
-- is read every time.  A `crater daemon` worker resolves the last `crater
-- run`'s image while it waits (cli/daemon.lua), so that its command does
-- not read and decode the manifest and config again.
local resolved = {}

local function resolve(client, name, img)
  local images = require "crater.images"
  local cs = client:content()
  local digest, mt = img.target.digest, img.target.media_type or img.target.mediaType
  for _ = 1, 4 do
    local body, e2, k2 = cs:read(digest)
    if not body then return nil, e2, k2 end
    local m, e3, k3 = images.decode_manifest(body, mt, { digest = digest, stored = true })
    if not m then return nil, e3, k3 end
    if m.kind == "index" then
      local platforms = require "crater.platforms"
      local pick, e4, k4 = platforms.select(m.doc.manifests, platforms.matcher())
      if not pick then return nil, e4, k4 end
      digest, mt = pick.digest, pick.mediaType
    else
      local cbody, e5, k5 = cs:read(m.doc.config.digest)
      if not cbody then return nil, e5, k5 end
      local config, e6, k6 = images.decode_config(cbody, #m.doc.layers)
      if not config then return nil, e6, k6 end
      local chain = images.chain_ids(config.rootfs.diff_ids)
      return { name = img.name, config = config, chain_id = chain[#chain], manifest = m }
    end
  end
  return nil, "image " .. name .. ": index nesting too deep", "invalid_argument"
end

--- Resolves an image name to {name, config (image config), chain_id,
--- manifest (images.decode_manifest result)}, following an index to the
--- host platform's manifest.  The result is the caller's (a copy).
function M.image_info(client, name)
  local imgs = client:images()
  local img, err, kind = imgs:get(name)
  if not img then return nil, err, kind end
  local key = table.concat({ client.ns or "", img.name, img.target.digest, os.getenv("CRATER_HOST_ARCH") or "" }, "\0")
  if not resolved[key] then
    local info, e2, k2 = resolve(client, name, img)
    if not info then return nil, e2, k2 end
    resolved[key] = info
  end
  return oci.copy(resolved[key])
end

--- Makes sure the image's layers are unpacked in snapshotter (as ctr run
--- does): a no-op when the top chain ID is committed, else crater.unpack.
function M.ensure_unpacked(client, info, snapshotter)
  if info.chain_id == nil then return true end -- no layers: empty rootfs
  local sn = client:snapshots(snapshotter)
  if sn:stat(info.chain_id) then return true end
  local res, err, kind = require("crater.unpack").unpack(client, info.manifest, info.config,
    { snapshotter = snapshotter })
  if not res then return nil, err, kind end
  return true
end

-- Start time of process pid ("self" too): field 22 of /proc/PID/stat,
-- counted after the command name, which may hold anything.  nil when the
-- process is gone.
local function start_time(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "rb")
  if not f then return nil end
  local stat = f:read("*a") or ""
  f:close()
  local n = 2
  for v in (stat:match("%) (.*)$") or ""):gmatch("%S+") do
    n = n + 1
    if n == 22 then return v end
  end
  return nil
end

-- This process as "pid:starttime" (field 22 of /proc/self/stat): who is
-- making a container's snapshot, so that `crater check` can tell a
-- snapshot whose creator died before the container row existed from one
-- still being made.
local function creator_id()
  return tostring(require("crater.core").getpid()) .. ":" .. tostring(start_time("self") or "?")
end
M.creator_id = creator_id

-- Whether the process a creator label names ("pid:starttime") still runs.
local function creator_alive(label)
  local pid, start = tostring(label):match("^(%d+):(%d+)$")
  return pid ~= nil and start_time(pid) == start
end

--- Snapshots made for a container that was never recorded: the process
--- making it died between the snapshot and the container row (a killed
--- client).  Found by the snapshot's crater.io/container label, no
--- container of that namespace using it, and its creator gone.  With
--- `remove`, they are removed.  Returns a list of {namespace, snapshotter,
--- key, container}.  (The GC of DESIGN.md would collect these; there is
--- no GC yet.)
---@return table[]
function M.orphan_snapshots(client, remove)
  local out = {}
  local b = client.backend
  local names = require("crater.snapshotters").names()
  for _, nsrec in ipairs(b:namespace_list() or {}) do
    local ns = nsrec.name
    local c = client:with_namespace(ns)
    for _, sname in ipairs(names) do
      local okc, sn = pcall(c.snapshots, c, sname)
      local list = okc and sn and sn:walk { 'labels."' .. M.CONTAINER_LABEL .. '"' } or nil
      for _, info in ipairs(list or {}) do
        local used = b:container_list(ns, { "snapshotter==" .. sname .. ",snapshot_key==\"" ..
          info.name:gsub('[\\"]', "\\%0") .. "\"" }) or {}
        if #used == 0 and not creator_alive((info.labels or {})[M.CREATOR_LABEL]) then
          local o = { namespace = ns, snapshotter = sname, key = info.name,
            container = info.labels[M.CONTAINER_LABEL] }
          if remove then
            local ok, err = sn:remove(info.name)
            o.removed = ok and true or false
            if not ok then o.error = err end
          end
          out[#out + 1] = o
        end
      end
    end
  end
  return out
end

M.CONTAINER_LABEL, M.CREATOR_LABEL = "crater.io/container", "crater.io/creator"

-- Prepares the container's snapshot: {new=key} (RW) or {view=key} (RO),
-- parent = the image's top chain id.  A view that exists already is
-- shared (many containers may use one view).  Returns true, created.
local function make_snapshot(client, snapshotter, snap, parent, id)
  local sn = client:snapshots(snapshotter)
  local labels = {}
  for k, v in pairs(snap.labels or {}) do labels[k] = v end
  labels[M.CONTAINER_LABEL], labels[M.CREATOR_LABEL] = id, creator_id()
  if snap.new then
    local ok, err, kind = sn:prepare(snap.new, parent, labels)
    if not ok then return nil, err, kind end
    return true, true
  end
  if snap.view then
    local st = sn:stat(snap.view)
    if st then
      if st.kind ~= "view" or st.parent ~= parent then
        return nil, "snapshot " .. snap.view .. " exists and is not a view of " .. tostring(parent), "already_exists"
      end
      return true, false
    end
    local ok, err, kind = sn:view(snap.view, parent, labels)
    if not ok then return nil, err, kind end
    return true, true
  end
  return nil, "snapshot: expected {new=key} or {view=key}", "invalid_argument"
end

-- ---- API ------------------------------------------------------------------------------

--- The runtime a container gets when create names none: $CRATER_RUNTIME,
--- else crater-runtime where it is installed, else runc.
function M.default_runtime()
  local env = os.getenv("CRATER_RUNTIME")
  if env and env ~= "" then return env end
  return require("crater.tasks").runtime_path(M.DEFAULT_RUNTIME) and M.DEFAULT_RUNTIME or "runc"
end

--- Creates a container.  With `image`, its snapshot is made from the
--- image's top layer: `snapshot = {new = key}` (default `{new = id}`,
--- read-write) or `{view = key}` (read-only, shareable); the image config
--- (Entrypoint, Cmd, Env, WorkingDir, User) is applied first, then `spec`
--- options (`args` replace Cmd; `entrypoint`, a list, replaces Entrypoint
--- and, without `args`, drops Cmd, as `docker run --entrypoint`).  With
--- `rootfs`, that directory is the root.  `spec` may also be a finished
--- spec table (has ociVersion).
---@param id string
---@param opts {image?: string, rootfs?: string, snapshotter?: string, snapshot?: {new?: string, view?: string, labels?: table}, spec?: table|function[], runtime?: string, runtime_options?: table, labels?: table<string,string>, extensions?: table, args?: string[], entrypoint?: string[]}
---@return table|nil container, string? err, string? kind
function Containers:create(id, opts)
  if not valid_id(id) then error("containers:create: invalid container id " .. tostring(id), 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("containers:create: opts must be a table", 2) end
  if opts.image and opts.rootfs then error("containers:create: image and rootfs are exclusive", 2) end
  -- recorded, and used by the runtime from the bundle: absolute
  local rootfs = require("crater.util").abs_path(opts.rootfs)
  local rec = {
    id = id, runtime = opts.runtime or M.default_runtime(), runtime_options = opts.runtime_options,
    labels = opts.labels or {}, extensions = opts.extensions or {},
  }
  local ctx = { id = id, namespace = self.ns, rootfs = rootfs }
  local image_config, snap, made
  if opts.image then
    local info, err, kind = M.image_info(self.client, opts.image)
    if not info then return nil, "container " .. id .. ": image " .. opts.image .. ": " .. tostring(err), kind end
    rec.image = info.name
    M.last_image = { namespace = self.ns, name = opts.image } -- for a `crater daemon` worker's next one
    image_config = info.config
    rec.snapshotter = opts.snapshotter or os.getenv("CRATER_SNAPSHOTTER") or
      require("crater.snapshotters").default(self.client.root, nil, self.client:policies())
    local unknown = require("crater.snapshotters").unknown(rec.snapshotter)
    if unknown then return nil, "container " .. id .. ": " .. unknown, "invalid_argument" end
    snap = opts.snapshot or { new = id }
    rec.snapshot_key = snap.new or snap.view
    -- fail before making the snapshot when the id is taken
    if self.b:container_get(self.ns, id) then
      return nil, "container " .. id .. ": already exists in namespace " .. self.ns, "already_exists"
    end
    local ok, e2, k2 = M.ensure_unpacked(self.client, info, rec.snapshotter)
    if not ok then return nil, "container " .. id .. ": image " .. opts.image .. ": " .. tostring(e2), k2 end
    ok, e2, k2 = make_snapshot(self.client, rec.snapshotter, snap, info.chain_id, id)
    if not ok then return nil, "container " .. id .. ": snapshot: " .. tostring(e2), k2 end
    made = e2
  elseif not rootfs then
    return nil, "container " .. id .. ": needs an image or a rootfs", "invalid_argument"
  end
  local spec = opts.spec
  if spec == nil or (type(spec) == "table" and spec.ociVersion == nil) then
    local list = {}
    if image_config then list[#list + 1] = oci.with_image_config(image_config, opts.args, opts.entrypoint) end
    for _, o in ipairs(spec or {}) do list[#list + 1] = o end
    -- an option that raises (misuse) must not leave the snapshot behind
    local ok, built = pcall(oci.spec, list, ctx)
    if not ok then
      if made then self.client:snapshots(rec.snapshotter):remove(rec.snapshot_key) end
      error(built, 0)
    end
    spec = built
  end
  if rootfs then spec.root.path = rootfs end
  if snap and snap.view then spec.root.readonly = true end
  rec.spec = spec
  -- admission: policies may deny, or amend the spec, labels and runtime
  local pev = { id = id, image = rec.image, runtime = rec.runtime, snapshotter = rec.snapshotter,
    spec = spec, labels = rec.labels }
  local allowed, why, pkind = self.client:policy("container.pre_create", pev)
  if not allowed then
    if made then self.client:snapshots(rec.snapshotter):remove(rec.snapshot_key) end
    return nil, "container " .. id .. ": " .. tostring(why), pkind
  end
  rec.spec, rec.labels, rec.runtime = pev.spec, pev.labels, pev.runtime
  local row = to_row(rec)
  local ok, at, kind = self.b:container_create(self.ns, row)
  if not ok then
    if made then self.client:snapshots(rec.snapshotter):remove(rec.snapshot_key) end
    return nil, at, kind
  end
  self.client:policy("container.post_create", { id = id, image = rec.image })
  -- the record as get() would read it back, without reading it back: the
  -- spec is decoded from the text stored (a policy may still hold the
  -- table it amended)
  row.created_at, row.updated_at = at, at
  local loaded, e2, k2 = from_row(row)
  if not loaded then return nil, e2, k2 end
  return setmetatable({ containers = self, rec = loaded, id = id }, Container)
end

--- Gets a container.
function Containers:get(id)
  if type(id) ~= "string" then error("containers:get: id must be a string", 2) end
  local rec, err, kind = self:_load(id)
  if not rec then return nil, err, kind end
  return setmetatable({ containers = self, rec = rec, id = id }, Container)
end

--- Lists container records (plain tables, spec decoded), sorted by id.
---@param filters? string[] store filter syntax: "labels.k==v", "image==...", "runtime==..."
function Containers:list(filters)
  local rows, err, kind = self.b:container_list(self.ns, filters)
  if not rows then return nil, err, kind end
  local out = {}
  for _, row in ipairs(rows) do
    local rec, e2, k2 = from_row(row)
    if not rec then return nil, e2, k2 end
    out[#out + 1] = rec
  end
  return out
end

--- Whether another container of this namespace uses (snapshotter, key).
function Containers:_snapshot_shared(rec)
  local rows = self.b:container_list(self.ns, { "snapshotter==" .. rec.snapshotter ..
    ",snapshot_key==\"" .. rec.snapshot_key:gsub('[\\"]', "\\%0") .. "\"" }) or {}
  for _, r in ipairs(rows) do
    if r.id ~= rec.id then return true end
  end
  return false
end

--- Deletes a container and its snapshot (a shared view only with its last
--- container).  Refused while it has a task that is not stopped unless
--- opts.force; opts.snapshot = false keeps the snapshot.  opts.task: the
--- container's Task object when the caller holds it (crater run --rm), so
--- an exited task is not asked for its state again.
---@param opts? {force?: boolean, snapshot?: boolean, task?: table}
function Containers:delete(id, opts)
  opts = opts or {}
  -- the record the caller's task was made from, else the stored one
  local rec = opts.task and opts.task.rec
  if not (rec and rec.id == id and rec.created_at) then
    local err, kind
    rec, err, kind = self:_load(id)
    if not rec then return nil, err, kind end
  end
  local removed = false
  local function remove_snapshot()
    removed = true
    if rec.snapshot_key and rec.snapshotter and opts.snapshot ~= false and not self:_snapshot_shared(rec) then
      local sn = self.client:snapshots(rec.snapshotter)
      local ok, e3, k3 = sn:remove(rec.snapshot_key)
      if not ok and k3 ~= "not_found" then return nil, "container " .. id .. ": remove snapshot: " .. tostring(e3), k3 end
    end
    return true
  end
  local t = opts.task or require("crater.tasks").load(self.client, self.ns, rec)
  if t then
    if not t._exited then
      local st = t:status()
      if st.status ~= "stopped" and st.status ~= "unknown" and not opts.force then
        return nil, "container " .. id .. " has a " .. st.status .. " task (delete it first)", "failed_precondition"
      end
    end
    -- the snapshot goes while the runtime deletes the task, when the init
    -- is known to be gone with everything it started
    local ok, e2, k2 = t:delete { force = true, during = t._exited and oci.owns_namespace(rec.spec, "pid") and remove_snapshot or nil }
    if not ok then return nil, e2, k2 end
  end
  if not removed then
    local ok, e3, k3 = remove_snapshot()
    if not ok then return nil, e3, k3 end
  end
  return self.b:container_delete(self.ns, id)
end

--- Gets labels (no second argument) or sets them (merge; "" removes;
--- replace = true drops the others).  Returns the labels after the change.
function Containers:labels(id, set, replace)
  if set == nil then
    local rec, err, kind = self:_load(id)
    if not rec then return nil, err, kind end
    return rec.labels
  end
  if type(set) ~= "table" then error("containers:labels: expected a table of labels", 2) end
  local fields, labels = {}, {}
  if replace then
    fields[1] = "labels"
    for k, v in pairs(set) do if v ~= "" then labels[k] = v end end
  else
    for k, v in pairs(set) do fields[#fields + 1] = "labels." .. k; labels[k] = v end
  end
  if #fields == 0 then return self:labels(id) end
  local ok, err, kind = self.b:container_update(self.ns, { id = id, labels = labels }, fields)
  if not ok then return nil, err, kind end
  return self:labels(id)
end

--- Updates mutable fields of a container: {image=, spec=, runtime_options=,
--- extensions=, labels=} (labels replace).  Only the fields given change.
function Containers:update(id, changes)
  if type(changes) ~= "table" then error("containers:update: expected a table of changes", 2) end
  local row, fields = { id = id }, {}
  for _, k in ipairs { "image", "spec", "runtime_options", "extensions", "labels" } do
    if changes[k] ~= nil then
      fields[#fields + 1] = k
      local v = changes[k]
      if k ~= "image" and k ~= "labels" then v = json.encode(v) end
      row[k] = v
    end
  end
  for k in pairs(changes) do
    if row[k] == nil then error("containers:update: field " .. tostring(k) .. " cannot be changed", 2) end
  end
  if #fields == 0 then return self:get(id) end
  local ok, err, kind = self.b:container_update(self.ns, row, fields)
  if not ok then return nil, err, kind end
  return self:get(id)
end

-- ---- Container ---------------------------------------------------------------------

--- The stored record: {id, image, snapshotter, snapshot_key, rootfs, spec, runtime, labels, ...}.
function Container:info() return self.rec end
function Container:spec() return self.rec.spec end

--- Creates the task (a shim running `<runtime> create`); see crater.tasks.
function Container:new_task(opts)
  return require("crater.tasks").create(self.containers.client, self.containers.ns, self.rec, opts or {})
end

--- The existing task, or nil, msg, "not_found".
function Container:task()
  local t = require("crater.tasks").load(self.containers.client, self.containers.ns, self.rec)
  if not t then return nil, "container " .. self.id .. " has no task", "not_found" end
  return t
end

--- Deletes the container (see Containers:delete).
function Container:delete(opts) return self.containers:delete(self.id, opts) end

--- Snapshot options for create (containerd's WithNewSnapshot): a new
--- read-write snapshot `key` on top of the image.
---@param key string
---@param labels? table<string,string>
function M.with_new_snapshot(key, labels) return { new = key, labels = labels } end

--- A read-only view `key` of the image (WithNewSnapshotView); containers
--- naming the same key share the view, removed with the last of them.
function M.with_new_snapshot_view(key, labels) return { view = key, labels = labels } end

--- The built-in runtime (crater-runtime) when it is installed, else runc.
M.DEFAULT_RUNTIME = "crater"

return M
