-- crater.platforms: normalisation, matching and selection.
local platforms = require "crater.platforms"

describe("crater.platforms", function()
  it("normalises names", function()
    local cases = {
      { { os = "Linux", architecture = "x86_64" }, "linux/amd64" },
      { { os = "linux", architecture = "aarch64" }, "linux/arm64" },
      { { os = "linux", architecture = "arm64", variant = "v8" }, "linux/arm64" },
      { { os = "linux", architecture = "arm" }, "linux/arm/v7" },
      { { os = "linux", architecture = "armhf" }, "linux/arm/v7" },
      { { os = "linux", architecture = "armel" }, "linux/arm/v6" },
      { { os = "linux", architecture = "arm", variant = "6" }, "linux/arm/v6" },
      { { os = "linux", architecture = "armv7l" }, "linux/arm/v7" },
      { { os = "linux", architecture = "i686" }, "linux/386" },
      { { os = "linux", architecture = "s390x" }, "linux/s390x" },
      { { os = "macos", architecture = "arm64" }, "darwin/arm64" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], platforms.format(platforms.normalize(c[1])))
    end
  end)

  it("parses strings", function()
    assert.equal("linux/arm/v7", platforms.format(assert(platforms.parse("linux/arm/v7"))))
    assert.equal("linux/amd64", platforms.format(assert(platforms.parse("amd64"))))
    assert.equal("linux/arm64", platforms.format(assert(platforms.parse("linux/aarch64"))))
    assert.equal("linux", assert(platforms.parse("linux")).os)
    for _, bad in ipairs { "", "a/b/c/d", "linux//v7", "linux/a b" } do
      local p, err, kind = platforms.parse(bad)
      assert.is_nil(p)
      assert.equal("invalid_argument", kind)
      assert.truthy(err:find("invalid platform", 1, true))
    end
    assert.has_error(function() platforms.parse(nil) end)
  end)

  it("knows the host", function()
    local h = platforms.host()
    assert.equal("linux", h.os)
    assert.is_string(h.architecture)
    assert.not_equal("x86_64", h.architecture)
  end)

  it("amd64 matches amd64 only", function()
    local m = assert(platforms.matcher("linux/amd64"))
    assert.is_true(m:match { os = "linux", architecture = "amd64" })
    assert.is_false(m:match { os = "linux", architecture = "386" })
    assert.is_false(m:match { os = "linux", architecture = "arm64" })
    assert.is_false(m:match { os = "windows", architecture = "amd64" })
    assert.is_false(m:match(nil))
  end)

  it("orders arm variants v8 > v7 > v6 > v5", function()
    local m = assert(platforms.matcher("linux/arm/v8"))
    local list = {
      { digest = "v5", platform = { os = "linux", architecture = "arm", variant = "v5" } },
      { digest = "v7", platform = { os = "linux", architecture = "arm", variant = "v7" } },
      { digest = "v6", platform = { os = "linux", architecture = "arm", variant = "v6" } },
      { digest = "a64", platform = { os = "linux", architecture = "arm64" } },
    }
    assert.equal("v7", platforms.select(list, m).digest)
    table.insert(list, { digest = "v8", platform = { os = "linux", architecture = "arm", variant = "v8" } })
    assert.equal("v8", platforms.select(list, m).digest)
    local m6 = assert(platforms.matcher("linux/arm/v6"))
    assert.equal("v6", platforms.select(list, m6).digest)
    assert.is_false(m6:match { os = "linux", architecture = "arm", variant = "v7" })
    local m5 = assert(platforms.matcher("linux/arm/v5"))
    assert.equal("v5", platforms.select(list, m5).digest)
  end)

  it("arm64 matches with or without v8", function()
    local m = assert(platforms.matcher("linux/arm64"))
    assert.is_true(m:match { os = "linux", architecture = "arm64", variant = "v8" })
    assert.is_true(m:match { os = "linux", architecture = "aarch64" })
    assert.is_false(m:match { os = "linux", architecture = "arm", variant = "v7" })
  end)

  it("select reports what is available", function()
    local m = assert(platforms.matcher("linux/s390x"))
    local d, err, kind = platforms.select({
      { digest = "x", platform = { os = "linux", architecture = "amd64" } },
      { digest = "y" },
    }, m)
    assert.is_nil(d)
    assert.equal("not_found", kind)
    assert.truthy(err:find("linux/s390x", 1, true))
    assert.truthy(err:find("available: linux/amd64", 1, true))
  end)

  it("uses CRATER_HOST_ARCH-free default matcher", function()
    local m = assert(platforms.matcher())
    assert.is_true(m:match(platforms.host()))
  end)
end)
