-- crater.auth: base64, docker config.json parsing, lookup order, no leaks.
local auth = require "crater.auth"
local json = require "crater.json"

local function tmpfile(text)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb")); f:write(text); f:close()
  return p
end

describe("crater.auth", function()
  it("round-trips base64", function()
    for _, s in ipairs { "", "a", "ab", "abc", "user:pa:ss", string.rep("\0\255x", 7) } do
      assert.equal(s, auth.base64_decode(auth.base64_encode(s)))
    end
    assert.equal("dXNlcjpwYXNz", auth.base64_encode("user:pass"))
    assert.equal("user:pass", auth.base64_decode("dXNlcjpwYXNz"))
    assert.is_nil(auth.base64_decode("not base64!"))
  end)

  it("parses docker config.json auths", function()
    local text = json.encode { auths = {
      ["https://index.docker.io/v1/"] = { auth = auth.base64_encode("hubuser:hubpass") },
      ["127.0.0.1:5000"] = { auth = auth.base64_encode("local:pw:with:colons") },
      ["https://reg.example.com"] = { username = "u2", password = "p2" },
      ["empty.example"] = {},
    }, credsStore = "desktop" }
    local t = assert(auth.parse_docker_config(text))
    assert.equal("hubuser", t["index.docker.io"].username)
    assert.equal("hubpass", t["index.docker.io"].password)
    assert.equal("pw:with:colons", t["127.0.0.1:5000"].password)
    assert.equal("u2", t["reg.example.com"].username)
    assert.is_nil(t["empty.example"])
  end)

  it("rejects malformed docker config", function()
    assert.is_nil(auth.parse_docker_config("{"))
    assert.is_nil(auth.parse_docker_config('{"auths":{},"auths":{}}'))
  end)

  it("looks up crater config first, then docker's file; Docker Hub aliases", function()
    local path = tmpfile(json.encode { auths = {
      ["https://index.docker.io/v1/"] = { auth = auth.base64_encode("hub:1") },
      ["127.0.0.1:5000"] = { auth = auth.base64_encode("dock:2") } } })
    local cfg = { auths = { ["127.0.0.1:5000"] = { username = "cfg", password = "3" } } }
    assert.equal("cfg", auth.lookup("127.0.0.1:5000", cfg, { docker_config = path }).username)
    assert.equal("dock", auth.lookup("127.0.0.1:5000", {}, { docker_config = path }).username)
    assert.equal("hub", auth.lookup("registry-1.docker.io", nil, { docker_config = path }).username)
    assert.is_nil(auth.lookup("other:1", nil, { docker_config = path }))
    assert.is_nil(auth.lookup("127.0.0.1:5000", nil, { docker_config = false }))
    os.remove(path)
  end)

  it("never shows the secret in tostring", function()
    local c = auth.credential("bob", "s3cr3t", "test")
    assert.falsy(tostring(c):find("s3cr3t", 1, true))
    assert.has_error(function() auth.credential("bob", nil) end)
  end)

  it("parses --user", function()
    local c = auth.from_flag("a:b:c")
    assert.equal("a", c.username)
    assert.equal("b:c", c.password)
  end)
end)
