--- crater: the Lua module.
---
--- ```lua
--- local crater = require "crater"
--- local c = assert(crater.open{root = "/var/lib/crater", namespace = "default"})
--- for _, b in ipairs(assert(c:content():list())) do print(b.digest, b.size) end
--- c:close()
--- ```
---
--- Embedded clients (`crater.open`) run the C core in this process; remote
--- clients (`crater.connect(socket)`, served by craterd) expose the same
--- methods over the daemon API.  Every method goes through `self.backend`,
--- whose functions take the namespace explicitly, so a remote backend only
--- has to serve the same flat calls.
---
--- Error convention (docs/design/errors.md): misuse (wrong argument types,
--- a closed client) raises; expected failures return `nil, msg, kind`, with
--- kind one of "not_found", "already_exists", "invalid_argument",
--- "failed_precondition", "unavailable", "data_loss", "permission_denied",
--- "resource_exhausted", "internal", ...  Write `assert(x:info(d))` when a
--- failure cannot be handled.
local core = require "crater.core"

local ABI = 1
if core.abi ~= ABI then
  error(string.format("crater: C core ABI %s does not match Lua module ABI %d (rebuild?)",
    tostring(core.abi), ABI), 2)
end

local M = {
  version = core.version,
  core = core,
  DEFAULT_ROOT = "/var/lib/crater",
  DEFAULT_NAMESPACE = "default",
}

---@class crater.Client
---@field backend any   the core store (embedded) or a remote proxy
---@field ns string     the namespace every call is scoped to
---@field root string
local Client = {}
Client.__index = Client
M.Client = Client

local function check_client(self)
  if getmetatable(self) ~= Client then
    error("crater: method called without ':' or on a non-client", 3)
  end
  if self.shared.closed then
    error("crater: client is closed", 3)
  end
end
M._check_client = check_client

--- Opens an embedded client on a root directory (created if missing).
---@param opts? {root?: string, namespace?: string, policies?: crater.PolicyHost}
---@return crater.Client|nil client, string? err, string? kind
function M.open(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("crater.open: expected a table of options", 2) end
  local root = opts.root or os.getenv("CRATER_ROOT") or M.DEFAULT_ROOT
  local ns = opts.namespace or os.getenv("CRATER_NAMESPACE") or M.DEFAULT_NAMESPACE
  local backend, err, kind
  -- a `crater daemon` worker opened its root before the command came
  -- (lua/crater/cli/daemon.lua): the first open of that root takes it
  local warm = M._warm
  if warm and warm.root == require("crater.util").abs_path(root) then
    M._warm = nil
    backend = warm.backend
  else
    backend, err, kind = core.open(root)
  end
  if not backend then return nil, err, kind end
  if opts.policies ~= nil and getmetatable(opts.policies) ~= require("crater.policy").Host then
    error("crater.open: policies must be a crater.policy host", 2)
  end
  return M._client(backend, ns, opts.policies)
end

-- A client on an open backend: crater.open's, and a `crater daemon`
-- worker's on its warm backend (it resolves an image before its command).
function M._client(backend, ns, policies)
  return setmetatable({
    backend = backend, ns = ns, root = backend:root(), mode = "embedded",
    shared = { closed = false, policies = policies },
  }, Client)
end

--- Returns a client for another namespace sharing this one's backend.
---@param ns string
---@return crater.Client
function Client:with_namespace(ns)
  check_client(self)
  if type(ns) ~= "string" then error("with_namespace: namespace must be a string", 2) end
  local c = setmetatable({}, Client)
  for k, v in pairs(self) do c[k] = v end
  c.ns = ns
  return c
end

--- The namespace this client is scoped to.
function Client:namespace() return self.ns end

--- Namespace administration (list/create/remove/labels).
function Client:namespaces()
  check_client(self)
  return require("crater.namespaces").new(self)
end

--- The namespaced content store (info/list/read/writer/ingest/delete/labels).
function Client:content()
  check_client(self)
  return require("crater.content").new(self)
end

--- Snapshots of one snapshotter (prepare/view/commit/remove/mounts/stat/
--- update/usage/walk/cleanup/apply_layer); name defaults to the selection
--- rules of crater.snapshotters.  Lua snapshotters registered with
--- crater.snapshotters.register work the same way.
---@param name? string
function Client:snapshots(name)
  check_client(self)
  return require("crater.snapshots").new(self, name)
end

--- Image records and inspection (list/get/put/delete/tag/inspect/usage).
function Client:images()
  check_client(self)
  return require("crater.images").new(self)
end

--- Pulls an image (lua/crater/pull.lua): resolve, fetch, verify, record,
--- unpack.  Returns {name=, target=, manifests=, ...} or nil, msg, kind.
function Client:pull(ref, opts)
  check_client(self)
  return require("crater.pull").pull(self, ref, opts)
end

--- Pushes an image (lua/crater/push.lua) to ref (default: its own name).
function Client:push(name, ref, opts)
  check_client(self)
  return require("crater.push").push(self, name, ref, opts)
end

--- Container metadata of this namespace (create/get/list/delete/labels);
--- containers make tasks (crater.containers, crater.tasks).
function Client:containers()
  check_client(self)
  return require("crater.containers").new(self)
end

--- The policy host whose hooks this client's workflows run (an empty host
--- when none was given to crater.open).
---@return crater.PolicyHost
function Client:policies()
  check_client(self)
  if not self.shared.policies then self.shared.policies = require("crater.policy").empty() end
  return self.shared.policies
end

--- Runs policy hook `name` with event ev (see crater.policy): admission
--- hooks return true or nil, reason, kind; selection hooks their choice.
---@param name string
---@param ev table
function Client:policy(name, ev)
  ev.namespace = ev.namespace or self.ns
  return self:policies():run(name, ev)
end

--- Checks the store (fsck): re-hashes blobs and reports corrupt, orphan and
--- missing blobs and stale ingests, and `orphan_snapshots`: snapshots made
--- for a container whose creator died before recording it
--- (crater.containers.orphan_snapshots), and `stale_task_dirs`: a task's
--- early shim dir left by a client that died (crater.tasks.stale_prespawn).
--- Deletes only with `repair = true`.
---@param opts? {quick?: boolean, repair?: boolean}
function Client:check(opts)
  check_client(self)
  opts = opts or {}
  local report, err, kind = self.backend:check(opts)
  if not report then return nil, err, kind end
  report.orphan_snapshots = require("crater.containers").orphan_snapshots(self, opts.repair)
  report.stale_task_dirs = require("crater.tasks").stale_prespawn(self, opts.repair)
  return report
end

--- Closes the client (and every view sharing its backend).  Idempotent.
function Client:close()
  if self.shared.closed then return end
  self.shared.closed = true
  self.backend:close()
end

return M
