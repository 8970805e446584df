-- lua/crater/_meta/core.lua (LuaCATS stubs of crater.core) against the
-- loaded C module: every key of `require "crater.core"` and every method
-- of its metatables has a stub, and every stub names something real.
local core = require "crater.core"

local SRC = os.getenv("CRATER_SRC") or "."
local META = SRC .. "/lua/crater/_meta/core.lua"

-- Parses the stub file: returns {[owner] = {[name] = line}}, where owner is
-- "crater.core" for module entries and the class name (crater.store, ...)
-- for methods, plus a list of problems (methods on unknown tables, stubs
-- without a doc comment or annotation above them).
local function parse_stubs(path)
  local f = assert(io.open(path))
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l end
  f:close()
  local owners = { core = "crater.core" } -- local variable -> class
  local stubs, problems = {}, {}
  local function add(owner, name, n)
    stubs[owner] = stubs[owner] or {}
    if stubs[owner][name] then
      problems[#problems + 1] = ("%s.%s stubbed twice (lines %d and %d)"):format(owner, name, stubs[owner][name], n)
    end
    stubs[owner][name] = n
  end
  for n, l in ipairs(lines) do
    local class = l:match("^%-%-%-@class%s+([%w_.]+)")
    if class then
      local var = (lines[n + 1] or ""):match("^local%s+([%w_]+)%s*=%s*{}")
      if var then owners[var] = class end
    end
    local var, sep, name = l:match("^function%s+([%w_]+)([.:])([%w_]+)%s*%(")
    if not var then
      var, name = l:match("^([%w_]+)%.([%w_]+)%s*=")
      sep = "."
    end
    if var then
      local owner = owners[var]
      if not owner then
        problems[#problems + 1] = ("line %d: %s is not a ---@class table"):format(n, var)
      else
        if (owner == "crater.core") ~= (sep == ".") then
          problems[#problems + 1] = ("line %d: use core.%s for functions, class:%s for methods"):format(n, name, name)
        end
        if not (lines[n - 1] or ""):match("^%-%-%-") then
          problems[#problems + 1] = ("line %d: %s.%s has no ---doc or annotation above it"):format(n, owner, name)
        end
        add(owner, name, n)
      end
    end
  end
  return stubs, problems
end

-- The C surface: module keys and the methods of every crater.* metatable
-- (named metatables live in the registry, luaL_newmetatable).
local function c_surface()
  local surface = { ["crater.core"] = {} }
  for k in pairs(core) do surface["crater.core"][k] = true end
  for tname, mt in pairs(debug.getregistry()) do
    if type(tname) == "string" and tname:match("^crater%.") and type(mt) == "table" then
      surface[tname] = {}
      for k in pairs(mt) do
        if type(k) == "string" and not k:match("^__") then surface[tname][k] = true end
      end
    end
  end
  return surface
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("crater.core stubs (lua/crater/_meta/core.lua)", function()
  local stubs, problems = parse_stubs(META)
  local surface = c_surface()

  it("are well formed", function()
    assert.same({}, problems)
  end)

  it("cover every crater.core function and every userdata method", function()
    local missing = {}
    for _, owner in ipairs(sorted_keys(surface)) do
      for _, name in ipairs(sorted_keys(surface[owner])) do
        if not (stubs[owner] and stubs[owner][name]) then missing[#missing + 1] = owner .. "." .. name end
      end
    end
    assert.same({}, missing)
  end)

  it("name nothing the module lacks", function()
    local stale = {}
    for _, owner in ipairs(sorted_keys(stubs)) do
      for _, name in ipairs(sorted_keys(stubs[owner])) do
        if not (surface[owner] and surface[owner][name]) then stale[#stale + 1] = owner .. "." .. name end
      end
    end
    assert.same({}, stale)
  end)

  it("see the classes the bindings register", function()
    for _, tname in ipairs { "crater.store", "crater.content_writer", "crater.remote", "crater.task_io", "crater.tar_reader" } do
      assert.is_table(surface[tname], tname)
      assert.is_table(stubs[tname], tname)
    end
    -- snapshot and container verbs are store methods (one connection per client)
    assert.is_true(surface["crater.store"].snapshot_prepare)
    assert.is_true(surface["crater.store"].container_create)
    assert.is_nil(surface["crater.core"].snapshot_store)
  end)
end)
