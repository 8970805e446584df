-- crater.unpack's settings: the call's option, then the crater config's
-- `unpack` table, then the environment, then the default; bad values are
-- errors naming where they came from.
local unpack = require "crater.unpack"

describe("unpack settings", function()
  local function setenv(k, v) -- LuaJIT has no setenv: shadow os.getenv
    local orig = os.getenv
    os.getenv = function(name) if name == k then return v end return orig(name) end -- luacheck: ignore
  end
  local real_getenv = os.getenv
  after_each(function() os.getenv = real_getenv end) -- luacheck: ignore

  it("defaults: 64 GiB per layer, parallel 0 (= CPUs)", function()
    assert.equal(64 * 1024 * 1024 * 1024, unpack.max_layer_size({}, {}))
    assert.equal(0, unpack.parallel({}, {}))
  end)

  it("prefers the option, then the config, then the environment", function()
    setenv("CRATER_UNPACK_PARALLEL", "7")
    assert.equal(7, unpack.parallel({}, {}))
    assert.equal(3, unpack.parallel({ config = { unpack = { parallel = 3 } } }, {}))
    assert.equal(2, unpack.parallel({ config = { unpack = { parallel = 3 } } }, { parallel = 2 }))
    assert.equal(5, unpack.max_layer_size({}, { config = { unpack = { max_layer_size = 5 } } }))
  end)

  it("names the source of a bad value", function()
    local v, err = unpack.parallel({}, { parallel = -1 })
    assert.is_nil(v)
    assert.equal("parallel must be an integer in 0..256 (0 = CPUs), got -1", err)
    v, err = unpack.max_layer_size({ config = { unpack = { max_layer_size = 1.5 } } }, {})
    assert.is_nil(v)
    assert.equal("config unpack.max_layer_size must be a non-negative integer (bytes), got 1.5", err)
    v, err = unpack.max_layer_size({}, { config = { unpack = 5 } })
    assert.is_nil(v)
    assert.equal("config: unpack must be a table", err)
    setenv("CRATER_UNPACK_PARALLEL", "abc")
    v, err = unpack.parallel({}, {})
    assert.is_nil(v)
    assert.equal("CRATER_UNPACK_PARALLEL must be an integer in 0..256 (0 = CPUs), got abc", err)
  end)
end)
