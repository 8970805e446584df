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
--- Storage: the metadata DB when the store binding offers container_*
--- calls; until then (and for a client without a store) one JSON file per
--- container under <root>/containers/<namespace>/, written atomically.
local json = require "crater.json"
local oci = require "crater.oci"

local M = {}
local Containers = {}
Containers.__index = Containers
local Container = {}
Container.__index = Container
M.Container = Container

local function now_ns()
  local ok, core = pcall(require, "crater.core")
  if ok and core.now_ns then return core.now_ns() end
  return os.time() * 1000000000
end

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function mkdir_p(path)
  return os.execute("mkdir -p " .. sh_quote(path)) == 0 or os.execute("mkdir -p " .. sh_quote(path)) == true
end

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
  local self = setmetatable({ client = client, b = client.backend, ns = client.ns or "default" }, Containers)
  self.use_db = self.b ~= nil and type(self.b) ~= "boolean" and self.b.container_create ~= nil
  self.dir = (client.root or "/var/lib/crater") .. "/containers/" .. self.ns
  return self
end

-- ---- file backend --------------------------------------------------------------

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_atomic(path, data)
  local tmp = path .. ".tmp." .. tostring(math.random(1, 1e9))
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(data)
  f:flush()
  f:close()
  local ok, e = os.rename(tmp, path)
  if not ok then os.remove(tmp); return nil, e end
  return true
end

function Containers:_path(id) return self.dir .. "/" .. id .. ".json" end

function Containers:_load(id)
  if self.use_db then return self.b:container_get(self.ns, id) end
  local text = read_file(self:_path(id))
  if not text then return nil, "container " .. id .. " not found", "not_found" end
  local rec, err = json.decode(text)
  if not rec then return nil, "container " .. id .. ": corrupt record: " .. tostring(err), "data_loss" end
  return rec
end

function Containers:_store(rec, create)
  if self.use_db then
    if create then return self.b:container_create(self.ns, rec) end
    return self.b:container_update(self.ns, rec)
  end
  mkdir_p(self.dir)
  local path = self:_path(rec.id)
  if create then
    -- O_EXCL-like: a second create of the same id loses
    local f = io.open(path, "rb")
    if f then f:close(); return nil, "container " .. rec.id .. " already exists", "already_exists" end
  end
  return write_atomic(path, json.encode(rec))
end

-- ---- image and snapshot helpers -----------------------------------------------------

--- Resolves an image name to {name, config (image config), chain_id}.
function M.image_info(client, name)
  if not client.images then return nil, "image support needs the image store (use a rootfs directory)", "not_implemented" end
  local images = require "crater.images"
  local imgs = client:images()
  local img, err, kind = imgs:get(name)
  if not img then return nil, err, kind end
  local cs = client:content()
  local digest, mt = img.target.digest, img.target.media_type or img.target.mediaType
  -- follow an index to the linux/amd64 manifest
  for _ = 1, 4 do
    local body, e2, k2 = cs:read(digest)
    if not body then return nil, e2, k2 end
    local m, e3, k3 = images.decode_manifest(body, mt)
    if not m then return nil, e3, k3 end
    if m.manifests then
      local pick
      for _, d in ipairs(m.manifests) do
        local p = d.platform or {}
        if (p.os == nil or p.os == "linux") and (p.architecture == nil or p.architecture == "amd64") then pick = d; break end
      end
      if not pick then return nil, "image " .. name .. ": no linux/amd64 manifest", "not_found" end
      digest, mt = pick.digest, pick.mediaType
    else
      local cbody, e4, k4 = cs:read(m.config.digest)
      if not cbody then return nil, e4, k4 end
      local config, e5, k5 = images.decode_config(cbody, #m.layers)
      if not config then return nil, e5, k5 end
      local chain = images.chain_ids(config.rootfs.diff_ids)
      return { name = img.name, config = config, chain_id = chain[#chain] }
    end
  end
  return nil, "image " .. name .. ": index nesting too deep", "invalid_argument"
end

--- Prepares the container's snapshot: {new=key} (RW) or {view=key} (RO),
--- parent = the image's top chain id.
local function make_snapshot(client, snapshotter, snap, parent)
  if not client.snapshots then return nil, "snapshots are not available in this build", "not_implemented" end
  local sn = client:snapshots(snapshotter)
  if snap.new then return sn:prepare(snap.new, parent, { labels = snap.labels }) end
  if snap.view then
    if sn:stat(snap.view) then return true end -- many containers may share one view
    return sn:view(snap.view, parent, { labels = snap.labels })
  end
  return nil, "snapshot: expected {new=key} or {view=key}", "invalid_argument"
end

-- ---- API ------------------------------------------------------------------------------

--- Creates a container.
---@param id string
---@param opts {image?: string, rootfs?: string, snapshotter?: string, snapshot?: {new?: string, view?: string}, spec?: table|function[], runtime?: string, labels?: table<string,string>, extensions?: table, args?: string[]}
---@return table|nil container, string? err, string? kind
function Containers:create(id, opts)
  if not valid_id(id) then error("containers:create: invalid container id " .. tostring(id), 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("containers:create: opts must be a table", 2) end
  if self:_load(id) then return nil, "container " .. id .. " already exists", "already_exists" end
  local rec = {
    id = id, image = opts.image, runtime = opts.runtime or os.getenv("CRATER_RUNTIME") or
      (require("crater.tasks").runtime_path(M.DEFAULT_RUNTIME) and M.DEFAULT_RUNTIME or "runc"),
    labels = opts.labels or {}, extensions = opts.extensions or {},
    created_at = now_ns(), snapshotter = opts.snapshotter,
  }
  local ctx = { id = id, namespace = self.ns, rootfs = opts.rootfs }
  local image_config
  if opts.image then
    local info, err, kind = M.image_info(self.client, opts.image)
    if not info then return nil, "container " .. id .. ": image " .. opts.image .. ": " .. tostring(err), kind end
    rec.image = info.name
    image_config = info.config
    rec.snapshotter = opts.snapshotter or os.getenv("CRATER_SNAPSHOTTER") or "overlayfs"
    local snap = opts.snapshot or { new = id }
    local ok, e2, k2 = make_snapshot(self.client, rec.snapshotter, snap, info.chain_id)
    if not ok then return nil, "container " .. id .. ": snapshot: " .. tostring(e2), k2 end
    rec.snapshot_key = snap.new or snap.view
    rec.snapshot_readonly = snap.view ~= nil
  elseif opts.rootfs then
    rec.rootfs = opts.rootfs
  else
    return nil, "container " .. id .. ": needs an image or a rootfs", "invalid_argument"
  end
  local spec = opts.spec
  if spec == nil or (type(spec) == "table" and spec.ociVersion == nil) then
    local list = {}
    if image_config then list[#list + 1] = oci.with_image_config(image_config, opts.args) end
    for _, o in ipairs(spec or {}) do list[#list + 1] = o end
    if ctx.rootfs == nil then ctx.deferred = true end
    spec = oci.spec(list, ctx)
  end
  if rec.snapshot_readonly then spec.root.readonly = true end
  rec.spec = spec
  rec.updated_at = rec.created_at
  local ok, err, kind = self:_store(rec, true)
  if not ok then return nil, err, kind end
  return setmetatable({ containers = self, rec = rec, id = id }, Container)
end

--- Gets a container.
function Containers:get(id)
  if type(id) ~= "string" then error("containers:get: id must be a string", 2) end
  local rec, err, kind = self:_load(id)
  if not rec then return nil, err, kind end
  return setmetatable({ containers = self, rec = rec, id = id }, Container)
end

--- Lists container records (plain tables, spec included), sorted by id.
function Containers:list()
  if self.use_db then return self.b:container_list(self.ns) end
  local out = {}
  local p = io.popen("ls -1 " .. sh_quote(self.dir) .. " 2>/dev/null")
  for name in p:lines() do
    local id = name:match("^(.+)%.json$")
    if id then
      local rec = self:_load(id)
      if rec then out[#out + 1] = rec end
    end
  end
  p:close()
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

--- Deletes a container (and its snapshot).  Refused while it has a task
--- that is not stopped.
function Containers:delete(id, opts)
  opts = opts or {}
  local rec, err, kind = self:_load(id)
  if not rec then return nil, err, kind end
  local tasks = require "crater.tasks"
  local t = tasks.load(self.client, self.ns, rec)
  if t then
    local st = t:status()
    if st.status ~= "stopped" and st.status ~= "unknown" and not opts.force then
      return nil, "container " .. id .. " has a " .. st.status .. " task (delete it first)", "failed_precondition"
    end
    local ok, e2, k2 = t:delete { force = true }
    if not ok then return nil, e2, k2 end
  end
  if rec.snapshot_key and rec.snapshotter and self.client.snapshots and opts.snapshot ~= false and not rec.snapshot_readonly then
    local sn = self.client:snapshots(rec.snapshotter)
    local ok, e3, k3 = sn:remove(rec.snapshot_key)
    if not ok and k3 ~= "not_found" then return nil, "container " .. id .. ": remove snapshot: " .. tostring(e3), k3 end
  end
  if self.use_db then return self.b:container_delete(self.ns, id) end
  local ok, e4 = os.remove(self:_path(id))
  if not ok then return nil, "container " .. id .. ": " .. tostring(e4), "internal" end
  return true
end

--- Gets labels (no second argument) or sets them (merge; "" removes).
function Containers:labels(id, set, replace)
  local rec, err, kind = self:_load(id)
  if not rec then return nil, err, kind end
  if set == nil then return rec.labels or {} end
  local l = replace and {} or (rec.labels or {})
  for k, v in pairs(set) do
    if v == "" then l[k] = nil else l[k] = v end
  end
  rec.labels = l
  rec.updated_at = now_ns()
  local ok, e2, k2 = self:_store(rec, false)
  if not ok then return nil, e2, k2 end
  return l
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

--- The built-in runtime (crater-runtime) when it is installed, else runc.
M.DEFAULT_RUNTIME = "crater"

return M
