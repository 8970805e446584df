-- The registry transport (crater.core remote_new) against Debian's real
-- docker-registry: plain HTTP, TLS with the harness's CA, htpasswd Basic
-- auth; resolve, manifests, concurrent blob fetch with resume, push
-- (monolithic, chunked, mount) confirmed by skopeo.
-- Digests of fetched blobs are checked here with sha256sum: the transport
-- checks sizes only, the content store verifies digests at commit.
local core = require "crater.core"
local registry = require "support.registry"
local fx = require "support.fixtures"
local proc = require "support.proc"
local cjson = require "cjson"

local function file_digest(path)
  local out = proc.check("sha256sum " .. proc.quote(path))
  return "sha256:" .. out:match("^(%x+)")
end

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local function client(r, extra)
  local o = { host = r.host, plain_http = not r.ca_file, ca_file = r.ca_file,
    username = r.user, password = r.password, backoff_ms = 20 }
  for k, v in pairs(extra or {}) do
    if v == false and k ~= "insecure_skip_verify" and k ~= "plain_http" then o[k] = nil else o[k] = v end
  end
  return assert(core.remote_new(o))
end

describe("remote transport against docker-registry (plain http)", function()
  local r, tmp, c
  setup(function()
    r = registry.start{}
    fx.push(r, "busybox", "library/busybox:latest")
    fx.push(r, "multilayer", "library/multilayer:1")
    fx.push(r, "multiarch", "library/multiarch:1")
    tmp = proc.tmpdir("crater-remote")
  end)
  teardown(function()
    if c then c:close() end
    if r then r:stop() end
    if tmp then proc.rmdir(tmp) end
  end)
  before_each(function() c = client(r) end)

  it("pings and reports its user agent version", function()
    assert.is_true(c:ping())
    assert.matches("^crater%.remote", tostring(c))
    proc.sleep(0.2)
    assert.truthy(r:log():find('useragent=crater/' .. core.version, 1, true), "User-Agent crater/<version> in the access log")
  end)

  it("resolves a tag and a digest", function()
    local img = fx.image("busybox")
    local d = assert(c:resolve("library/busybox", "latest"))
    assert.equals(img.digest, d.digest)
    assert.equals(img.size, d.size)
    assert.equals(img.media_type, d.media_type)
    local d2 = assert(c:resolve("library/busybox", img.digest))
    assert.equals(img.digest, d2.digest)
    local idx = fx.image("multiarch")
    local d3 = assert(c:resolve("library/multiarch", "1"))
    assert.equals(idx.digest, d3.digest)
    assert.equals("application/vnd.oci.image.index.v1+json", d3.media_type)
    -- every platform's manifest is there by digest
    for _, m in ipairs(idx.manifests) do
      local body, mt, dg = assert(c:fetch_manifest("library/multiarch", m.digest))
      assert.equals(m.digest, dg)
      assert.equals(m.digest, fx.sha256(body))
      assert.truthy(mt)
    end
  end)

  it("fetches a manifest by tag and by digest", function()
    local img = fx.image("multilayer")
    local body, mt, dg = c:fetch_manifest("library/multilayer", "1")
    assert.truthy(body, mt)
    assert.equals(img.digest, dg)
    assert.equals(img.media_type, mt)
    assert.equals(img.digest, fx.sha256(body))
    local body2 = assert(c:fetch_manifest("library/multilayer", img.digest,
      { accept = { img.media_type } }))
    assert.equals(body, body2)
    assert.equals(#img.layers, #cjson.decode(body).layers)
  end)

  it("reports not_found and invalid_argument", function()
    local d, msg, kind = c:resolve("library/busybox", "nope")
    assert.is_nil(d)
    assert.equals("not_found", kind)
    assert.matches("127%.0%.0%.1:%d+/library/busybox", msg)
    d, msg, kind = c:resolve("Library/Busybox", "latest")
    assert.is_nil(d)
    assert.equals("invalid_argument", kind)
    assert.has_error(function() c:resolve("library/busybox") end)
  end)

  it("fetches every layer of the multilayer image concurrently", function()
    local img = fx.image("multilayer")
    local items, want = {}, {}
    for i, l in ipairs(img.layers) do
      items[#items + 1] = { digest = l.digest, size = l.size, path = tmp .. "/ml-" .. i }
      want[#want + 1] = l
    end
    items[#items + 1] = { digest = img.config.digest, size = img.config.size, path = tmp .. "/ml-config" }
    want[#want + 1] = img.config
    local last = {}
    local res = c:fetch_blobs("library/multilayer", items, {
      parallel = 4,
      on_progress = function(i, done, total)
        assert.equals(want[i].size, total)
        assert.is_true(done <= total)
        last[i] = done
      end,
    })
    assert.equals(#items, #res)
    for i, it in ipairs(items) do
      assert.is_true(res[i].ok, res[i].err)
      assert.equals(want[i].size, res[i].size)
      assert.equals(want[i].digest, file_digest(it.path))
      assert.equals(want[i].size, last[i])
    end
  end)

  it("resumes a partial file with a Range request", function()
    local l = fx.layers("busybox")[1]
    local path = tmp .. "/partial"
    local data = fx.blob(l.digest)
    proc.write_file(path, data:sub(1, math.floor(#data / 3)))
    local res = c:fetch_blobs("library/busybox", { { digest = l.digest, size = l.size, path = path } })
    assert.is_true(res[1].ok, res[1].err)
    assert.equals(l.digest, file_digest(path))
    -- an already complete file needs no request at all
    local before = c:stats().requests
    res = c:fetch_blobs("library/busybox", { { digest = l.digest, size = l.size, path = path } })
    assert.is_true(res[1].ok)
    assert.equals(before, c:stats().requests)
  end)

  it("reports errors per item: unknown blob, size mismatch", function()
    local l = fx.layers("busybox")[1]
    local missing = "sha256:" .. string.rep("ab", 32)
    local res = c:fetch_blobs("library/busybox", {
      { digest = l.digest, size = l.size, path = tmp .. "/ok" },
      { digest = missing, size = 10, path = tmp .. "/missing" },
      { digest = l.digest, size = l.size - 1, path = tmp .. "/short-desc" },
      { digest = l.digest, size = l.size + 1, path = tmp .. "/long-desc" },
      { digest = "sha256:xyz", size = 1, path = tmp .. "/bad" },
    })
    assert.is_true(res[1].ok)
    assert.equals("not_found", res[2].kind)
    assert.matches("fetch blob sha256:abababababab%.%. from 127%.0%.0%.1:%d+/library/busybox: HTTP 404", res[2].err)
    assert.equals("data_loss", res[3].kind)
    assert.matches("size mismatch", res[3].err)
    assert.equals("data_loss", res[4].kind)
    assert.equals("invalid_argument", res[5].kind)
  end)

  it("pushes blobs monolithic and chunked, mounts, and pushes a manifest", function()
    local img = fx.image("busybox")
    local layer = img.layers[1]
    local lpath, cpath = fx.blob_path(layer.digest), fx.blob_path(img.config.digest)
    -- monolithic into copy/one
    assert.equals("uploaded", c:push_blob("copy/one", layer.digest, layer.size, lpath))
    assert.equals("exists", c:push_blob("copy/one", layer.digest, layer.size, lpath))
    assert.equals("uploaded", c:push_blob("copy/one", img.config.digest, img.config.size, cpath))
    local manifest = fx.blob(img.digest)
    assert.equals(img.digest, c:push_manifest("copy/one", "v1", manifest, img.media_type))
    assert.equals(img.digest, c:push_manifest("copy/one", img.digest, manifest, img.media_type))
    -- chunked into copy/two, in pieces of 64 KiB
    assert.equals("uploaded", c:push_blob("copy/two", layer.digest, layer.size, lpath, { chunk_size = 65536 }))
    assert.is_true(c:blob_exists("copy/two", layer.digest))
    assert.equals("uploaded", c:push_blob("copy/two", img.config.digest, img.config.size, cpath, { chunk_size = 100 }))
    assert.equals(img.digest, c:push_manifest("copy/two", "v2", manifest, img.media_type))
    -- cross-repository mount into copy/three
    assert.is_false(c:blob_exists("copy/three", layer.digest))
    assert.equals("mounted", c:push_blob("copy/three", layer.digest, layer.size, lpath, { mount_from = "copy/one" }))
    -- library/multilayer lacks busybox's config: the mount falls back to an upload
    assert.equals("uploaded", c:push_blob("copy/three", img.config.digest, img.config.size, cpath, { mount_from = "library/multilayer" }))
    assert.equals(img.digest, c:push_manifest("copy/three", "latest", manifest, img.media_type))
    -- skopeo sees what we pushed
    for _, ref in ipairs({ "copy/one:v1", "copy/two:v2", "copy/three:latest" }) do
      local raw = assert(fx.inspect(r, ref))
      assert.equals(img.digest, fx.sha256(raw))
      assert.truthy(fx.inspect(r, ref, { config = true }))
    end
    local tags = assert(c:list_tags("copy/one"))
    assert.same({ "v1" }, tags)
    -- a digest that does not match the body is refused before sending
    local _, msg, kind = c:push_manifest("copy/one", "sha256:" .. string.rep("0", 64), manifest, img.media_type)
    assert.equals("invalid_argument", kind, msg)
  end)

  it("close is idempotent and closed clients raise", function()
    local x = client(r)
    x:close()
    x:close()
    assert.has_error(function() x:ping() end, "crater.remote: client is closed")
  end)
end)

describe("remote transport against docker-registry (TLS + Basic auth)", function()
  local r
  setup(function()
    r = registry.start{ tls = true, auth = { user = "crater", password = "s3cr3t-pw" } }
    fx.push(r, "busybox", "library/busybox:latest")
  end)
  teardown(function() if r then r:stop() end end)

  it("works with the CA file and credentials", function()
    local c = client(r)
    assert.is_true(c:ping())
    local d = assert(c:resolve("library/busybox", "latest"))
    assert.equals(fx.manifest_digest("busybox"), d.digest)
    c:close()
  end)

  it("wrong credentials give permission_denied without the password", function()
    local c = client(r, { password = "wrong-pw-123" })
    local ok, msg, kind = c:resolve("library/busybox", "latest")
    assert.is_nil(ok)
    assert.equals("permission_denied", kind)
    assert.matches("credentials rejected", msg)
    assert.is_nil(msg:find("wrong-pw-123", 1, true))
    c:close()
    c = client(r, { username = false, password = false })
    ok, msg, kind = c:ping()
    assert.equals("permission_denied", kind)
    assert.matches("no credentials", msg)
    c:close()
  end)

  it("refuses an unknown CA unless insecure_skip_verify", function()
    local c = client(r, { ca_file = false })
    local ok, msg = c:ping()
    assert.is_nil(ok)
    assert.truthy(msg:lower():find("certificate", 1, true) or msg:find("SSL", 1, true), msg)
    c:close()
    c = client(r, { ca_file = false, insecure_skip_verify = true })
    assert.is_true(c:ping())
    c:close()
  end)
end)
