--- examples/lua-snapshotter.lua: a snapshotter written in Lua.
---
--- "example" keeps every snapshot as a plain directory
--- <root>/snapshots/example/snapshots/<id>/fs, made by copying its parent
--- with `cp -a` (like the native snapshotter, slower), and its metadata in
--- one JSON file <root>/snapshots/example/state.json rewritten atomically
--- (write + rename) after every change.  Mounts are bind mounts (read-only
--- for views), so the crater mount helper performs them like any other.
---
--- Load it at start-up (a config file or a script) and use it like a
--- built-in snapshotter:
---
---     require("crater.snapshotters").register("example", dofile("examples/lua-snapshotter.lua"))
---     local sn = client:snapshots("example")
---     local mounts = assert(sn:prepare("k1"))
---
--- Every method gets the namespace first and returns `nil, msg, kind` on
--- expected failures, the same contract as the C snapshotters (see
--- lua/crater/snapshotters.lua).  Not safe for concurrent processes: a
--- real one would lock state.json (or keep its state in SQLite).
local json = require "crater.json"

local Example = {}
Example.__index = Example

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

local function now() return os.time() end

--- Opens the snapshotter under a crater root (called once per root).
function Example:open(root)
  local dir = root .. "/snapshots/example"
  if not run("mkdir -p " .. sh_quote(dir .. "/snapshots")) then
    return nil, "example snapshotter: cannot create " .. dir, "internal"
  end
  local inst = setmetatable({ dir = dir, state_path = dir .. "/state.json" }, Example)
  local f = io.open(inst.state_path, "r")
  if f then
    local text = f:read("*a")
    f:close()
    local ok, st = pcall(json.decode, text)
    if not ok or type(st) ~= "table" then
      return nil, "example snapshotter: corrupt " .. inst.state_path, "data_loss"
    end
    inst.state = st
  else
    inst.state = { next_id = 1, namespaces = {} }
  end
  return inst
end

function Example:save()
  local tmp = self.state_path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(json.encode(self.state))
  f:close()
  assert(os.rename(tmp, self.state_path))
end

function Example:ns(ns)
  local t = self.state.namespaces[ns]
  if not t then t = {}; self.state.namespaces[ns] = t end
  return t
end

function Example:fs(id) return self.dir .. "/snapshots/" .. id .. "/fs" end

local function info_of(key, s)
  local labels = {}
  for k, v in pairs(s.labels or {}) do labels[k] = v end
  return { name = key, parent = s.parent, kind = s.kind, labels = labels,
    created_at = s.created_at, updated_at = s.updated_at }
end

function Example:mounts_of(s)
  local opts = s.kind == "active" and { "rw", "rbind" } or { "ro", "rbind" }
  return { { type = "bind", source = self:fs(s.id), options = opts } }
end

function Example:create(ns, kind, key, parent, labels)
  local snaps = self:ns(ns)
  if snaps[key] then return nil, "snapshot " .. key .. ": already exists", "already_exists" end
  local p
  if parent then
    p = snaps[parent]
    if not p then return nil, "parent " .. parent .. ": not found", "not_found" end
    if p.kind ~= "committed" then
      return nil, "parent " .. parent .. " is not committed (" .. p.kind .. ")", "failed_precondition"
    end
  end
  local id = tostring(self.state.next_id)
  self.state.next_id = self.state.next_id + 1
  local base = self.dir .. "/snapshots/" .. id
  local ok
  if p then
    ok = run("mkdir -p " .. sh_quote(base) .. " && cp -a " .. sh_quote(self:fs(p.id)) .. " " .. sh_quote(base .. "/fs"))
  else
    ok = run("mkdir -p " .. sh_quote(base .. "/fs"))
  end
  if not ok then
    run("rm -rf " .. sh_quote(base))
    return nil, "create snapshot " .. key .. ": copy failed", "internal"
  end
  local l = {}
  for k, v in pairs(labels or {}) do l[k] = v end
  local s = { id = id, kind = kind, parent = parent, labels = l, created_at = now(), updated_at = now() }
  snaps[key] = s
  self:save()
  return self:mounts_of(s)
end

function Example:prepare(ns, key, parent, labels) return self:create(ns, "active", key, parent, labels) end
function Example:view(ns, key, parent, labels) return self:create(ns, "view", key, parent, labels) end

function Example:commit(ns, name, key, labels)
  local snaps = self:ns(ns)
  local s = snaps[key]
  if not s then return nil, "snapshot " .. key .. ": not found", "not_found" end
  if s.kind ~= "active" then return nil, "snapshot " .. key .. " is " .. s.kind .. ", not active", "failed_precondition" end
  if snaps[name] then return nil, "snapshot " .. name .. ": already exists", "already_exists" end
  snaps[key] = nil
  s.kind = "committed"
  s.updated_at = now()
  if labels and next(labels) then s.labels = labels end
  snaps[name] = s
  -- children refer to parents by key: nothing can have key as parent (active)
  self:save()
  return true
end

function Example:remove(ns, key)
  local snaps = self:ns(ns)
  local s = snaps[key]
  if not s then return nil, "snapshot " .. key .. ": not found", "not_found" end
  local n = 0
  for _, o in pairs(snaps) do if o.parent == key then n = n + 1 end end
  if n > 0 then
    return nil, "remove snapshot " .. key .. ": has " .. n .. " child" .. (n == 1 and "" or "ren"), "failed_precondition"
  end
  snaps[key] = nil
  self:save()
  run("rm -rf " .. sh_quote(self.dir .. "/snapshots/" .. s.id))
  return true
end

function Example:mounts(ns, key)
  local s = self:ns(ns)[key]
  if not s then return nil, "snapshot " .. key .. ": not found", "not_found" end
  if s.kind == "committed" then
    return nil, "mounts of snapshot " .. key .. ": committed snapshots are not mounted", "failed_precondition"
  end
  return self:mounts_of(s)
end

function Example:stat(ns, key)
  local s = self:ns(ns)[key]
  if not s then return nil, "snapshot " .. key .. ": not found", "not_found" end
  return info_of(key, s)
end

function Example:update(ns, key, labels, replace)
  local s = self:ns(ns)[key]
  if not s then return nil, "snapshot " .. key .. ": not found", "not_found" end
  if replace then s.labels = {} end
  for k, v in pairs(labels or {}) do
    if v == "" then s.labels[k] = nil else s.labels[k] = v end
  end
  s.updated_at = now()
  self:save()
  return info_of(key, s)
end

function Example:usage(ns, key)
  local s = self:ns(ns)[key]
  if not s then return nil, "snapshot " .. key .. ": not found", "not_found" end
  local p = io.popen("du -s -B1 " .. sh_quote(self:fs(s.id)) .. " 2>/dev/null; du -s --inodes " ..
    sh_quote(self:fs(s.id)) .. " 2>/dev/null")
  local size = tonumber((p:read("*l") or ""):match("^(%d+)")) or 0
  local inodes = tonumber((p:read("*l") or ""):match("^(%d+)")) or 0
  p:close()
  return { size = size, inodes = inodes }
end

function Example:walk(ns, filters)
  local out = {}
  for key, s in pairs(self:ns(ns)) do out[#out + 1] = info_of(key, s) end
  return out -- the caller applies filters and sorts
end

function Example:cleanup()
  local used = {}
  for _, snaps in pairs(self.state.namespaces) do
    for _, s in pairs(snaps) do used[s.id] = true end
  end
  local removed = 0
  local p = io.popen("ls -1 " .. sh_quote(self.dir .. "/snapshots"))
  for name in p:lines() do
    if not used[name] then
      run("rm -rf " .. sh_quote(self.dir .. "/snapshots/" .. name))
      removed = removed + 1
    end
  end
  p:close()
  return removed
end

function Example:apply_dir(ns, key)
  local s = self:ns(ns)[key]
  if not s then return nil, "snapshot " .. key .. ": not found", "not_found" end
  if s.kind ~= "active" then return nil, "apply into snapshot " .. key .. ": not active", "failed_precondition" end
  return self:fs(s.id), "delete"
end

return Example
