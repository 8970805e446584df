--- crater.policy: the policy host.
---
--- A policy is one Lua file returning a table (docs/policies.md):
---
--- ```lua
--- return {
---   name = "no-latest", api = 1, priority = 900,
---   description = "Refuse pulls of :latest",
---   schema = { fields = { allow = { type = "array", default = {}, description = "repos exempted" } } },
---   hooks = {
---     ["image.pre_pull"] = function(ev, conf)
---       if ev.tag == "latest" then return false, "pin a tag or digest" end
---     end,
---   },
--- }
--- ```
---
--- Hooks are named events in the life of an object (`HOOKS` below lists
--- them with their event fields).  Three kinds:
---
--- * admission (`<object>.pre_<verb>`): hooks run in priority order; a hook
---   returning `false, reason` denies and stops the chain (first deny wins);
---   a hook may amend the event's amendable fields in place, and the next
---   hook sees the change (amend: chained);
--- * notification (`<object>.post_<verb>`): every hook runs; results ignored;
--- * selection (`snapshotter.select`, `gc.keep`): the first non-nil result
---   wins.
---
--- Policies run sandboxed: loaded from text only (never bytecode) into an
--- environment built from an allow-list (no `os.execute`, `io`, `ffi`,
--- `debug`, `load*`, `require` except allow-listed `crater.*` modules),
--- global writes and reads of unknown globals raise, and every load and
--- hook call runs under an instruction budget (a count hook; JIT is turned
--- off for policy code so the hook fires under LuaJIT).  Errors are
--- reported as `[policy] file:line: msg`.  Policies whose `fail` is
--- "closed" (the default for admission hooks) deny when they error;
--- `fail = "open"` ones are skipped and reported.
local M = {}

M.API = 1
M.DEFAULT_DIR = "/etc/crater/policies"
M.DEFAULT_BUDGET = 1000000   -- instructions per hook call (and per load)

--- Known hooks: kind and event fields (documented in docs/policies.md).
M.HOOKS = {
  ["image.pre_pull"] = { kind = "admission",
    fields = { "ref", "domain", "repository", "tag", "digest", "platform", "namespace" },
    amend = { "platform" } },
  ["image.post_pull"] = { kind = "notify", fields = { "ref", "name", "digest", "size", "namespace" } },
  ["image.pre_push"] = { kind = "admission", fields = { "name", "ref", "domain", "repository", "namespace" } },
  ["container.pre_create"] = { kind = "admission",
    fields = { "id", "image", "runtime", "snapshotter", "spec", "labels", "namespace" },
    amend = { "spec", "labels", "runtime" } },
  ["container.post_create"] = { kind = "notify", fields = { "id", "image", "namespace" } },
  ["task.pre_start"] = { kind = "admission", fields = { "id", "image", "spec", "namespace" } },
  ["task.post_exit"] = { kind = "notify", fields = { "id", "exit_status", "namespace" } },
  ["snapshotter.select"] = { kind = "select",
    fields = { "root", "fs_type", "overlay_supported", "available", "namespace" } },
  ["gc.keep"] = { kind = "select", fields = { "kind", "key", "labels", "namespace" } },
}

-- Modules a policy may require (pure helpers; no I/O).
local ALLOWED_REQUIRES = {
  ["crater.reference"] = true, ["crater.platforms"] = true, ["crater.util"] = true, ["crater.json"] = true,
}

local FIELD_TYPES = { string = true, number = true, boolean = true, array = true, map = true, any = true }
local POLICY_KEYS = { name = true, api = true, priority = true, description = true, schema = true,
  hooks = true, fail = true }

local copy_table = require("crater.util").copy

-- The modules policies may require, as they see them: read-only views, so
-- that a policy cannot change them for the rest of the process (a `crater
-- daemon` worker serves command after command).
local views = {}
local function read_only(name, mod)
  if type(mod) ~= "table" then return mod end
  if not views[name] then
    views[name] = setmetatable({}, {
      __index = mod,
      __newindex = function(_, k)
        error(string.format("module %s is read-only in policies (assignment to %q)", name, tostring(k)), 2)
      end,
      __metatable = false,
    })
  end
  return views[name]
end

--- Builds a fresh sandbox environment for one policy file.
local function sandbox_env(path)
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
    select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
    xpcall = xpcall, setmetatable = setmetatable, rawequal = rawequal, rawget = rawget, rawlen = nil,
    string = copy_table(string), table = copy_table(table), math = copy_table(math),
    os = { time = os.time, clock = os.clock, date = os.date },
  }
  env.require = function(name)
    if not ALLOWED_REQUIRES[name] then
      error(string.format("require %q is not allowed in policies", tostring(name)), 2)
    end
    return read_only(name, require(name))
  end
  env._G = env
  return setmetatable(env, {
    __newindex = function(_, k)
      error(string.format("policy %s: assignment to global %q (use local)", path, tostring(k)), 2)
    end,
    __index = function(_, k)
      error(string.format("policy %s: undefined global %q", path, tostring(k)), 2)
    end,
    __metatable = false,
  })
end

local SELF_SOURCE = debug.getinfo(1, "S").source
local BudgetExceeded = setmetatable({}, { __tostring = function() return "instruction budget exceeded" end })

--- Calls fn(...) under an instruction budget; returns pcall-style results,
--- with errors formatted "[policy] file:line: msg".
local function budgeted_call(budget, fn, ...)
  local steps, per = 0, 1000
  local limit = math.max(1, math.floor(budget / per))
  local prev_hook, prev_mask, prev_count = debug.gethook()
  debug.sethook(function()
    steps = steps + 1
    if steps > limit then
      debug.sethook()
      error(BudgetExceeded, 2)
    end
  end, "", per)
  local res = { xpcall(fn, function(e)
    if e == BudgetExceeded then
      local where = "?"
      for level = 2, 20 do -- the innermost Lua frame: where the policy spun
        local info = debug.getinfo(level, "Sl")
        if not info then break end
        if info.what ~= "C" and info.source ~= SELF_SOURCE then where = info.short_src .. ":" .. (info.currentline or 0); break end
      end
      return string.format("%s: instruction budget of %d exceeded", where, budget)
    end
    return tostring(e)
  end, ...) }
  debug.sethook(prev_hook, prev_mask, prev_count)
  return unpack(res, 1, table.maxn(res))
end

--- Validates conf against schema.fields and fills defaults; returns the
--- resolved config or nil, msg.
local function resolve_config(p, conf)
  local fields = p.schema and p.schema.fields or {}
  conf = conf or {}
  if type(conf) ~= "table" then return nil, "config must be a table" end
  local out = {}
  for k in pairs(conf) do
    if fields[k] == nil then return nil, string.format("unknown field %q", tostring(k)) end
  end
  for name, f in pairs(fields) do
    local v = conf[name]
    if v == nil then
      if f.required then return nil, string.format("field %q is required", name) end
      v = f.default
      if type(v) == "table" then v = copy_table(v) end
    end
    if v ~= nil and f.type ~= "any" then
      local t = type(v)
      local ok = (f.type == t) or ((f.type == "array" or f.type == "map") and t == "table")
      if not ok then return nil, string.format("field %q must be of type %s, got %s", name, f.type, t) end
    end
    out[name] = v
  end
  return out
end

--- Checks the shape of a policy table; returns true or nil, msg.
local function validate_policy(p)
  if type(p) ~= "table" then return nil, "must return a table" end
  for k in pairs(p) do
    if not POLICY_KEYS[k] then return nil, string.format("unknown key %q", tostring(k)) end
  end
  if type(p.name) ~= "string" or not p.name:match("^[%w][%w._-]*$") then
    return nil, "name must be a string of letters, digits, '.', '_' or '-'"
  end
  if p.api ~= M.API then return nil, string.format("api must be %d (got %s)", M.API, tostring(p.api)) end
  if p.priority ~= nil and (type(p.priority) ~= "number" or p.priority ~= p.priority
      or p.priority ~= math.floor(p.priority)) then
    return nil, "priority must be an integer"
  end
  if p.fail ~= nil and p.fail ~= "open" and p.fail ~= "closed" then
    return nil, 'fail must be "open" or "closed"'
  end
  if type(p.hooks) ~= "table" then return nil, "hooks must be a table" end
  for name, fn in pairs(p.hooks) do
    if not M.HOOKS[name] then return nil, string.format("unknown hook %q", tostring(name)) end
    if type(fn) ~= "function" then return nil, string.format("hook %q must be a function", name) end
  end
  if p.schema ~= nil then
    if type(p.schema) ~= "table" or type(p.schema.fields or {}) ~= "table" then
      return nil, "schema must be { fields = { ... } }"
    end
    for fname, f in pairs(p.schema.fields or {}) do
      if type(f) ~= "table" or not FIELD_TYPES[f.type] then
        return nil, string.format("schema field %q: type must be one of string, number, boolean, array, map, any",
          tostring(fname))
      end
      for k in pairs(f) do
        if k ~= "type" and k ~= "default" and k ~= "required" and k ~= "description" then
          return nil, string.format("schema field %q: unknown key %q", fname, tostring(k))
        end
      end
    end
  end
  return true
end

---@class crater.PolicyHost
local Host = {}
Host.__index = Host
M.Host = Host

--- Creates a policy host.
---@param opts? {config?: table, budget?: integer}  config: the `policies` table of the crater config
---@return crater.PolicyHost
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    policies = {}, errors = {}, warnings = {}, sources = {},
    config = opts.config or {}, budget = opts.budget or M.DEFAULT_BUDGET,
  }, Host)
end

--- Loads one policy file (sandboxed, text only, under the budget) and
--- registers it.  Returns the policy or nil, msg (also kept in
--- host.errors for `crater policy check`).
---@param path string
function Host:load_file(path)
  local function fail(msg)
    local m = "[policy] " .. msg
    self.errors[#self.errors + 1] = { path = path, msg = m }
    return nil, m, "invalid_argument"
  end
  local env = sandbox_env(path)
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return fail(tostring(err)) end
  jit.off(chunk, true) -- count hooks must fire: interpret policy code
  local ok, p = budgeted_call(self.budget, chunk)
  if not ok then return fail(p) end
  local vok, verr = validate_policy(p)
  if not vok then return fail(path .. ": " .. verr) end
  for _, q in ipairs(self.policies) do
    if q.name == p.name then return fail(string.format("%s: policy %q already loaded from %s", path, p.name, q.path)) end
  end
  local conf, cerr = resolve_config(p, (self.config.config or {})[p.name])
  if not conf then return fail(string.format("%s: config for %q: %s", path, p.name, cerr)) end
  local entry = {
    name = p.name, path = path, priority = p.priority or 0, description = p.description,
    hooks = p.hooks, conf = conf, fail = p.fail,
  }
  self.policies[#self.policies + 1] = entry
  table.sort(self.policies, function(a, b)
    if a.priority ~= b.priority then return a.priority > b.priority end
    return a.name < b.name
  end)
  return entry
end

--- Loads every `*.lua` file of dir in name order.  A missing dir is not an
--- error.  Returns the number loaded.
function Host:load_dir(dir)
  local names = {}
  for _, name in ipairs(require("crater.core").listdir(dir) or {}) do
    if name:match("%.lua$") then names[#names + 1] = name end
  end
  table.sort(names)
  local n = 0
  for _, name in ipairs(names) do
    if self:load_file(dir .. "/" .. name) then n = n + 1 end
  end
  self.sources[#self.sources + 1] = dir
  return n
end

--- Loads the policies named by the crater config's `policies` table:
--- `{ dir = DIR (default /etc/crater/policies), files = { ... }, config = { [name] = {...} } }`.
function Host:load_configured()
  local c = self.config
  if c.files then
    for _, f in ipairs(c.files) do self:load_file(f) end
  end
  self:load_dir(c.dir or M.DEFAULT_DIR)
  return self
end

--- Drops every policy and loads them again (SIGHUP in the daemon).
function Host:reload()
  local sources, files = self.sources, self.config.files
  self.policies, self.errors, self.warnings, self.sources = {}, {}, {}, {}
  if files then for _, f in ipairs(files) do self:load_file(f) end end
  for _, d in ipairs(sources) do self:load_dir(d) end
  return self
end

local function warn(self, msg)
  self.warnings[#self.warnings + 1] = msg
  io.stderr:write(msg, "\n")
end

--- Runs hook `name` with event ev (a plain table; amendable fields may be
--- changed in place by admission hooks).
---
--- * admission: returns true, or nil, reason, "permission_denied"
--- * notify: returns true
--- * select: returns the first non-nil result (or nil)
---@param name string
---@param ev table
function Host:run(name, ev)
  local spec = M.HOOKS[name]
  if not spec then error("policy: unknown hook " .. tostring(name), 2) end
  if #self.errors > 0 and spec.kind == "admission" and self.config.on_error ~= "warn" then
    -- fail closed: a policy that did not load may be the one that denies
    return nil, string.format("denied: %d policy file(s) failed to load (first: %s); see 'crater policy check'",
      #self.errors, self.errors[1].msg), "failed_precondition"
  end
  for _, p in ipairs(self.policies) do
    local fn = p.hooks[name]
    if fn then
      local ok, r1, r2 = budgeted_call(self.budget, fn, ev, p.conf)
      if not ok then
        local msg = string.format("[policy] %s (%s): %s", p.name, name, tostring(r1))
        local closed = p.fail == "closed" or (p.fail == nil and spec.kind == "admission")
        if closed and spec.kind == "admission" then
          return nil, string.format("denied by policy %s: hook failed: %s", p.name, tostring(r1)), "permission_denied"
        end
        warn(self, msg)
      elseif spec.kind == "admission" then
        if r1 == false then
          return nil, string.format("denied by policy %s: %s", p.name, tostring(r2 or "no reason given")),
            "permission_denied"
        end
      elseif spec.kind == "select" then
        if r1 ~= nil then return r1, p.name end
      end
    end
  end
  if spec.kind == "select" then return nil end
  return true
end

--- Lists loaded policies: {name=, path=, priority=, hooks={...}, description=}.
function Host:list()
  local out = {}
  for _, p in ipairs(self.policies) do
    local hooks = {}
    for h in pairs(p.hooks) do hooks[#hooks + 1] = h end
    table.sort(hooks)
    out[#out + 1] = { name = p.name, path = p.path, priority = p.priority, hooks = hooks,
      description = p.description }
  end
  return out
end

--- A host with no policies (what clients get when none are configured).
function M.empty()
  return M.new {}
end

return M
