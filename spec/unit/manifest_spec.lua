-- Manifest validation (crater.images.decode_manifest / decode_config).
local images = require "crater.images"
local json = require "crater.json"
local core = require "crater.core"
local MT = images.media_types

local D1 = "sha256:" .. string.rep("1", 64)
local D2 = "sha256:" .. string.rep("2", 64)

local function manifest(extra)
  local t = { schemaVersion = 2, mediaType = MT.oci_manifest,
    config = { mediaType = MT.oci_config, digest = D1, size = 10 },
    layers = json.array { { mediaType = MT.oci_layer_gzip, digest = D2, size = 20 } } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return json.encode(t)
end

describe("manifest validation", function()
  it("accepts an OCI manifest and reports its digest", function()
    local body = manifest()
    local m = assert(images.decode_manifest(body, MT.oci_manifest))
    assert.equal("manifest", m.kind)
    assert.equal(MT.oci_manifest, m.media_type)
    assert.equal(core.digest_string(body), m.digest)
    assert.equal(#body, m.size)
    assert.equal(D2, m.doc.layers[1].digest)
  end)

  it("accepts Content-Type with parameters and generic types", function()
    assert.truthy(images.decode_manifest(manifest(), MT.oci_manifest .. "; charset=utf-8"))
    assert.truthy(images.decode_manifest(manifest(), "application/json"))
    assert.truthy(images.decode_manifest(manifest(), nil))
  end)

  it("infers the type when mediaType is absent", function()
    local body = manifest():gsub('"mediaType":"' .. MT.oci_manifest:gsub("%p", "%%%0") .. '",?', "")
    assert.falsy(body:find(MT.oci_manifest, 1, true))
    local m = assert(images.decode_manifest(body, ""))
    assert.equal(MT.oci_manifest, m.media_type)
    local idx = json.encode { schemaVersion = 2, manifests = json.array {} }
    assert.equal("index", assert(images.decode_manifest(idx, "")).kind)
  end)

  it("accepts a docker manifest list with platforms", function()
    local body = json.encode { schemaVersion = 2, mediaType = MT.docker_list, manifests = json.array {
      { mediaType = MT.docker_manifest, digest = D1, size = 5, platform = { os = "linux", architecture = "amd64" } } } }
    local m = assert(images.decode_manifest(body, MT.docker_list))
    assert.equal("index", m.kind)
  end)

  it("rejects duplicate keys", function()
    local body = '{"schemaVersion":2,"schemaVersion":2,"mediaType":"' .. MT.oci_index .. '","manifests":[]}'
    local m, err, kind = images.decode_manifest(body, MT.oci_index)
    assert.is_nil(m)
    assert.equal("invalid_argument", kind)
    assert.truthy(err:find("not valid JSON", 1, true), err)
  end)

  it("refuses schema 1 with a message saying so", function()
    local body = json.encode { schemaVersion = 1, name = "x", tag = "y", fsLayers = json.array {} }
    for _, ct in ipairs { MT.docker_schema1_signed, MT.docker_schema1, "application/json" } do
      local m, err, kind = images.decode_manifest(body, ct)
      assert.is_nil(m)
      assert.equal("failed_precondition", kind)
      assert.truthy(err:find("schema 1 is not supported", 1, true), err)
    end
  end)

  it("rejects a Content-Type that disagrees with the document", function()
    local m, err, kind = images.decode_manifest(manifest(), MT.docker_manifest)
    assert.is_nil(m)
    assert.equal("invalid_argument", kind)
    assert.truthy(err:find("media type mismatch", 1, true), err)
    m, err = images.decode_manifest(manifest(), "text/html")
    assert.is_nil(m)
    assert.truthy(err:find("unsupported manifest media type", 1, true), err)
  end)

  it("rejects oversize manifests", function()
    local body = manifest { annotations = { pad = string.rep("x", 4 * 1024 * 1024) } }
    local m, err, kind = images.decode_manifest(body, MT.oci_manifest)
    assert.is_nil(m)
    assert.equal("resource_exhausted", kind)
    assert.truthy(err:find("more than", 1, true))
  end)

  it("checks the body against an expected digest", function()
    local m, err, kind = images.decode_manifest(manifest(), MT.oci_manifest, { digest = D1 })
    assert.is_nil(m)
    assert.equal("data_loss", kind)
    assert.truthy(err:find("digest mismatch", 1, true))
  end)

  it("rejects bad descriptors", function()
    local cases = {
      { config = { mediaType = MT.oci_config, digest = "sha256:../../etc/passwd", size = 1 } },
      { config = { mediaType = MT.oci_config, digest = D1, size = -1 } },
      { config = { mediaType = MT.oci_config, digest = D1, size = 1.5 } },
      { config = { digest = D1, size = 1 } },
      { layers = json.array { { mediaType = MT.oci_layer, digest = "sha256:ABC", size = 1 } } },
      { layers = "nope" },
      { manifests = json.array {} },
      { schemaVersion = 3 },
    }
    for _, extra in ipairs(cases) do
      local m, err, kind = images.decode_manifest(manifest(extra), MT.oci_manifest)
      assert.is_nil(m, json.encode(extra))
      assert.equal("invalid_argument", kind)
      assert.is_string(err)
    end
    local m = images.decode_manifest("[1,2]", "")
    assert.is_nil(m)
    m = images.decode_manifest("{not json", "")
    assert.is_nil(m)
  end)

  it("decodes configs and checks diff_ids", function()
    local cfg = json.encode { architecture = "amd64", os = "linux", rootfs = { type = "layers", diff_ids = json.array { D1 } } }
    assert.truthy(images.decode_config(cfg, 1))
    local c, err = images.decode_config(cfg, 2)
    assert.is_nil(c)
    assert.truthy(err:find("1 diff_ids for 2 layers", 1, true))
    assert.is_nil(images.decode_config('{"rootfs":{"diff_ids":["sha256:x"]}}', 1))
  end)

  it("computes chain ids", function()
    local c = images.chain_ids { D1, D2 }
    assert.equal(D1, c[1])
    assert.equal(core.digest_string(D1 .. " " .. D2), c[2])
  end)

  it("knows layer media types", function()
    assert.same({ compression = "gzip", foreign = false }, images.layer_info(MT.docker_layer_gzip))
    assert.same({ compression = "gzip", foreign = true }, images.layer_info(MT.docker_foreign_gzip))
    assert.same({ compression = "zstd", foreign = false }, images.layer_info(MT.oci_layer_zstd))
    assert.same({ compression = "none", foreign = true }, images.layer_info(MT.oci_nondist))
    assert.is_nil(images.layer_info("application/x-unknown"))
  end)
end)
