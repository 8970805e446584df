-- docs/lua-api.md and docs/cli.md are generated (scripts/gen-docs); this
-- fails when the checked-in copies no longer match the sources.
local function run(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return out
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

describe("generated docs", function()
  local src = os.getenv("CRATER_SRC")
  local build = os.getenv("CRATER_BUILD")
  it("docs/lua-api.md matches the Lua sources (run scripts/gen-docs)", function()
    local out = run("cd '" .. src .. "' && LUA_PATH='" .. src .. "/lua/?.lua;;' luajit scripts/gen-lua-api.lua")
    assert.equal(read(src .. "/docs/lua-api.md"), out)
  end)
  it("docs/cli.md matches crater --help (run scripts/gen-docs)", function()
    local out = run("cd '" .. src .. "' && CRATER_BIN='" .. build .. "/bin/crater' bash scripts/gen-cli-docs.sh")
    assert.equal(read(src .. "/docs/cli.md"), out)
  end)
end)
