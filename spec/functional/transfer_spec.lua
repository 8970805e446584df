-- Functional: import/export (OCI layout dir, docker-archive, skopeo oci-archive).
local proc = require "support.proc"
local cli = require "support.cli"
local json = require "crater.json"
local core = require "crater.core"
local fx = require "support.fixtures"

describe("crater image import/export", function()
  if type(core.open) ~= "function" then
    it("runs", function() pending("needs store (core.open / l_store.c)") end)
    return
  end
  local env
  before_each(function() env = cli.env() end)

  it("imports an OCI layout directory and exports an oci-archive skopeo reads", function()
    local r = env:crater { "--format", "json", "image", "import", "--base-name", "fixtures/img", fx.layout() }
    assert.equal(0, r.code, r.stderr)
    local out = env.dir .. "/out.tar"
    r = env:crater { "image", "export", out, "docker.io/fixtures/img:busybox", "docker.io/fixtures/img:multiarch" }
    assert.equal(0, r.code, r.stderr)
    local res = proc.run("skopeo inspect --raw " .. proc.quote("oci-archive:" .. out .. ":docker.io/fixtures/img:busybox"))
    assert.is_true(res.ok, res.stderr)
    assert.equal(fx.manifest_digest("busybox"), fx.sha256(res.stdout))
  end)

  it("imports a docker-archive tarball, converting to schema 2", function()
    local r = env:crater { "--format", "json", "image", "import", fx.docker_archive() }
    assert.equal(0, r.code, r.stderr)
    local list = assert(json.decode(r.stdout))
    assert.equal("docker.io/library/busybox:latest", list[1].name)
    r = env:crater { "--format", "json", "image", "inspect", "busybox" }
    local info = assert(json.decode(r.stdout))
    assert.equal(fx.layers("busybox")[1].size > 0, true)
    assert.equal(1, #info.manifests[1].layers)
  end)

  it("refuses archives with unsafe members", function()
    local d = env.dir .. "/evil"
    proc.check("mkdir -p " .. proc.quote(d) .. " && ln -s ../../../etc/passwd " .. proc.quote(d .. "/index.json"))
    proc.check("tar -cf " .. proc.quote(env.dir .. "/evil.tar") .. " -C " .. proc.quote(d) .. " index.json")
    local r = env:crater { "image", "import", env.dir .. "/evil.tar" }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("refusing", 1, true))
  end)
end)
