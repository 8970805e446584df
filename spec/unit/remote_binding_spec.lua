-- crater.core.remote_new and the crater.remote methods: argument checking
-- and error conventions that need no registry (misuse raises; expected
-- failures return nil, msg, kind).
local core = require "crater.core"

describe("crater.remote binding", function()
  it("validates options", function()
    assert.has_error(function() core.remote_new() end)
    assert.has_error(function() core.remote_new{} end)
    assert.has_error(function() core.remote_new{ host = 5000 } end)
    local r, msg, kind = core.remote_new{ host = "user:pw@example.com" }
    assert.is_nil(r)
    assert.equals("invalid_argument", kind)
    assert.is_nil(msg:find("pw", 1, true))
    r, msg, kind = core.remote_new{ host = "example.com", username = "u" }
    assert.is_nil(r)
    assert.equals("invalid_argument", kind)
    r, msg, kind = core.remote_new{ host = "example.com", cert_file = "/x" }
    assert.equals("invalid_argument", kind)
  end)

  it("checks names before any request", function()
    local r = assert(core.remote_new{ host = "127.0.0.1:1", plain_http = true, retries = 0 })
    local ok, msg, kind = r:resolve("UPPER/case", "latest")
    assert.is_nil(ok)
    assert.equals("invalid_argument", kind)
    ok, msg, kind = r:resolve("a/b", "bad tag")
    assert.equals("invalid_argument", kind)
    ok, msg, kind = r:blob_exists("a/b", "sha256:1234")
    assert.equals("invalid_argument", kind)
    ok, msg, kind = r:push_manifest("a/b", "v1", "{}", "bad\r\ntype")
    assert.equals("invalid_argument", kind)
    assert.has_error(function() r:fetch_blobs("a/b", { { digest = 1 } }) end)
    assert.has_error(function() r:fetch_blobs("a/b", {}, { parallel = 0 }) end)
    assert.has_error(function() r:fetch_manifest("a/b", "v1", { accept = { 1 } }) end)
    assert.same({}, r:fetch_blobs("a/b", {}))
    r:close()
  end)

  it("reports an unreachable registry as unavailable", function()
    local r = assert(core.remote_new{ host = "127.0.0.1:1", plain_http = true, retries = 0 })
    local ok, msg, kind = r:ping()
    assert.is_nil(ok)
    assert.equals("unavailable", kind)
    assert.matches("ping 127%.0%.0%.1:1", msg)
    local path = os.tmpname()
    local res = r:fetch_blobs("a/b", { { digest = "sha256:" .. string.rep("0", 64), size = 1,
      path = path } })
    os.remove(path)
    assert.equals("unavailable", res[1].kind)
    r:close()
    r:close()
    assert.has_error(function() r:ping() end)
  end)
end)
