--- crater.mount: performs mount descriptions returned as data by
--- snapshotters (`{type=, source=, target=?, options={...}}` arrays) and
--- undoes them.  Options starting with "X-crater." are understood only by
--- this helper (X-crater.mount-dir=DIR: overlay paths are relative to DIR,
--- used for long layer chains); hand mounts to another tool only after
--- checking it understands them (`mount.portable(mounts)`).
local core = require "crater.core"

local M = {}

--- Mounts every description in order at target (an existing directory);
--- on failure what was mounted is undone.
---@param mounts table[]
---@param target string
---@return true|nil ok, string? err, string? kind
function M.all(mounts, target)
  if type(mounts) ~= "table" then error("mount.all: mounts must be an array", 2) end
  if type(target) ~= "string" then error("mount.all: target must be a string", 2) end
  return core.mount_all(mounts, target)
end

--- Unmounts everything stacked on target.  opts.detach: lazy unmount.
---@param target string
---@param opts? {detach?: boolean}
function M.unmount_all(target, opts)
  if type(target) ~= "string" then error("mount.unmount_all: target must be a string", 2) end
  return core.unmount_all(target, opts or {})
end

local function pack(...) return { n = select("#", ...), ... } end

--- Mounts at target, calls fn(target), always unmounts; returns fn's results.
function M.with(mounts, target, fn)
  local ok, err, kind = M.all(mounts, target)
  if not ok then return nil, err, kind end
  local res = pack(pcall(fn, target))
  M.unmount_all(target, { detach = true })
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n or #res)
end

--- True when no mount needs this helper's private options.
function M.portable(mounts)
  for _, m in ipairs(mounts) do
    for _, o in ipairs(m.options or {}) do
      if o:find("^X%-crater%.") then return false end
    end
  end
  return true
end

return M
