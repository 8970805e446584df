--- crater.snapshotters: the registry of snapshotters by name, and the
--- selection rules.
---
--- Built-in snapshotters are the C backends ("overlayfs", "native",
--- "btrfs"); Lua snapshotters are tables registered at start-up with
--- `snapshotters.register(name, impl)` and used exactly like the built-in
--- ones through `client:snapshots(name)` (containerd's proxy plugins, in
--- process).  An impl provides, each returning `nil, msg, kind` on
--- expected failures (kinds: "not_found", "already_exists",
--- "failed_precondition", "invalid_argument", ...):
---
---   impl:open(root)                          -> instance (optional; else impl itself)
---   inst:prepare(ns, key, parent, labels)    -> mounts
---   inst:view(ns, key, parent, labels)       -> mounts
---   inst:commit(ns, name, key, labels)       -> true
---   inst:remove(ns, key)                     -> true
---   inst:mounts(ns, key)                     -> mounts
---   inst:stat(ns, key)                       -> info {name, parent, kind, labels, created_at, updated_at}
---   inst:update(ns, key, labels, replace)    -> info
---   inst:usage(ns, key)                      -> {size=, inodes=}
---   inst:walk(ns, filters)                   -> {info...} (filters may be ignored: applied again by the caller)
---   inst:cleanup()                           -> number removed
---   inst:apply_dir(ns, key)                  -> dir, "overlay"|"delete" (optional: apply_layer)
---
--- Selection (`select{root=, config=, override=}`): an override (the
--- `--snapshotter` flag) wins, then `config.snapshotter`; otherwise btrfs
--- when the root is on btrfs and `config.btrfs` is true, overlayfs when the
--- backing filesystem passes the overlay probe (once per root, cached),
--- else native.
local core = require "crater.core"

local M = {}

M.METHODS = { "prepare", "view", "commit", "remove", "mounts", "stat", "update", "usage", "walk", "cleanup" }

local registry = {}   -- name -> impl (Lua snapshotters)
local builtin = {}
for _, n in ipairs(core.snapshotters()) do builtin[n] = true end
local probe_cache = {}

--- Registers a Lua snapshotter.  Raises on a bad impl or a taken name.
---@param name string
---@param impl table
function M.register(name, impl)
  if type(name) ~= "string" or not name:match("^[%w][%w._-]*$") then
    error("snapshotters.register: invalid name " .. tostring(name), 2)
  end
  if builtin[name] or registry[name] then
    error("snapshotters.register: " .. name .. " is already registered", 2)
  end
  if type(impl) ~= "table" then error("snapshotters.register: impl must be a table", 2) end
  for _, m in ipairs(M.METHODS) do
    if type(impl[m]) ~= "function" and type(impl.open) ~= "function" then
      error("snapshotters.register: " .. name .. " lacks method " .. m, 2)
    end
  end
  registry[name] = impl
end

--- Removes a Lua snapshotter (no-op when absent).
function M.unregister(name) registry[name] = nil end

--- True for the C snapshotters.
function M.is_builtin(name) return builtin[name] == true end

--- The Lua impl registered as name, or nil.
function M.get(name) return registry[name] end

--- Every known name, built-in ones first.
function M.names()
  local out = {}
  for _, n in ipairs(core.snapshotters()) do out[#out + 1] = n end
  local extra = {}
  for n in pairs(registry) do extra[#extra + 1] = n end
  table.sort(extra)
  for _, n in ipairs(extra) do out[#out + 1] = n end
  return out
end

--- True when name is registered (built-in or Lua).
function M.exists(name) return builtin[name] == true or registry[name] ~= nil end

--- nil for a known snapshotter name, else "unknown snapshotter NAME (have:
--- ...)": the one message every caller gives.
function M.unknown(name)
  if M.exists(name) then return nil end
  return "unknown snapshotter " .. tostring(name) .. " (have: " .. table.concat(M.names(), ", ") .. ")"
end

--- Whether overlayfs works under root (probe once per root, cached).
---@return boolean ok, string? why
function M.overlay_supported(root)
  local c = probe_cache[root]
  if c == nil then
    local ok, why = core.overlay_supported(root .. "/snapshots/overlayfs")
    c = { ok = ok and true or false, why = why }
    probe_cache[root] = c
  end
  return c.ok, c.why
end

--- Picks the snapshotter name: an explicit override, then the config's
--- `snapshotter`, then the `snapshotter.select` policy hook (first policy
--- returning a known name wins), then the built-in rules (btrfs when the
--- root is on btrfs and `config.btrfs` is set, overlayfs when the probe
--- passes, else native).
---@param opts {root: string, config?: table, override?: string, policies?: crater.PolicyHost}
---@return string name, string reason
function M.select(opts)
  opts = opts or {}
  if opts.override and opts.override ~= "" then
    local unknown = M.unknown(opts.override)
    if unknown then error(unknown, 2) end
    return opts.override, "override"
  end
  local cfg = opts.config or {}
  if cfg.snapshotter then
    if not M.exists(cfg.snapshotter) then error("config: unknown snapshotter " .. cfg.snapshotter, 2) end
    return cfg.snapshotter, "config"
  end
  local root = opts.root or "/var/lib/crater"
  if opts.policies then
    local choice, by = opts.policies:run("snapshotter.select", {
      root = root, fs_type = core.fs_type(root), available = M.names(),
      overlay_supported = (M.overlay_supported(root)),
    })
    if choice ~= nil then
      if type(choice) == "string" and M.exists(choice) then return choice, "policy " .. tostring(by) end
      -- selection is optional policy: report and fall back to the rules
      io.stderr:write(string.format("[policy] %s: snapshotter.select returned unknown snapshotter %s; using the default rules\n",
        tostring(by), tostring(choice)))
    end
  end
  if cfg.btrfs and core.fs_type(root) == "btrfs" then return "btrfs", "root is on btrfs" end
  local ok = M.overlay_supported(root)
  if ok then return "overlayfs", "overlay probe passed" end
  return "native", "overlay unavailable"
end

--- The default-ish name for a client: CRATER_SNAPSHOTTER env, else select
--- (with the client's policies, when given, for the snapshotter.select hook).
---@param policies? crater.PolicyHost
function M.default(root, config, policies)
  local env = os.getenv("CRATER_SNAPSHOTTER")
  return (M.select { root = root, config = config, override = env ~= "" and env or nil, policies = policies })
end

return M
