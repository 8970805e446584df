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

  it("exports deterministically and imports its own oci-archive back", function()
    assert.equal(0, env:crater { "image", "import", "--base-name", "fixtures/img", fx.layout() }.code)
    local a, b = env.dir .. "/a.tar", env.dir .. "/b.tar"
    assert.equal(0, env:crater { "image", "export", a, "docker.io/fixtures/img:multilayer" }.code)
    assert.equal(0, env:crater { "image", "export", b, "docker.io/fixtures/img:multilayer" }.code)
    assert.is_true(proc.run("cmp " .. proc.quote(a) .. " " .. proc.quote(b)).ok)
    local env2 = cli.env()
    local r = env2:crater { "--format", "json", "image", "import", a }
    assert.equal(0, r.code, r.stderr)
    assert.equal(fx.manifest_digest("multilayer"), assert(json.decode(r.stdout))[1].digest)
    r = env2:crater { "--format", "json", "image", "inspect", "docker.io/fixtures/img:multilayer" }
    assert.equal(0, r.code, r.stderr)
    env2:cleanup()
  end)

  -- builds env.dir/<name>.tar from a copy of the fixture layout after fn(dir)
  local function layout_tar(name, fn)
    local d = env.dir .. "/" .. name
    proc.check("cp -r " .. proc.quote(fx.layout()) .. " " .. proc.quote(d))
    if fn then fn(d) end
    proc.check("tar -cf " .. proc.quote(d .. ".tar") .. " -C " .. proc.quote(d) .. " .")
    return d .. ".tar"
  end

  local function nothing_visible()
    local r = env:crater { "image", "ls", "-q" }
    assert.equal("", r.stdout)
    r = env:crater { "content", "ls", "-q" }
    assert.equal("", (r.stdout:gsub("%s+", "")))
  end

  it("refuses a blob member whose bytes do not match its digest, leaving nothing", function()
    local cfg = fx.config_digest("busybox")
    local tar = layout_tar("baddigest", function(d)
      local p = d .. "/blobs/sha256/" .. cfg:match(":(%x+)$")
      proc.check("chmod u+w " .. proc.quote(p) .. " && printf '{\"tampered\":1}' > " .. proc.quote(p))
    end)
    local r = env:crater { "image", "import", tar }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find(cfg, 1, true), r.stderr)
    assert.truthy(r.stderr:find("blobs/sha256/", 1, true), r.stderr)
    nothing_visible()
  end)

  it("refuses a ../ member, naming it", function()
    local tar = env.dir .. "/dotdot.tar"
    proc.check(proc.python() .. " -c " .. proc.quote([[
import tarfile, io, sys
t = tarfile.open(sys.argv[1], "w")
for n, d in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("../escape", b"x")):
    i = tarfile.TarInfo(n); i.size = len(d); t.addfile(i, io.BytesIO(d))
t.close()
]]) .. " " .. proc.quote(tar))
    local r = env:crater { "image", "import", tar }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("../escape", 1, true), r.stderr)
    assert.truthy(r.stderr:find("refusing", 1, true), r.stderr)
    nothing_visible()
  end)

  it("refuses an index.json over 4 MiB", function()
    local tar = layout_tar("hugeindex", function(d)
      proc.check("chmod u+w " .. proc.quote(d .. "/index.json") .. " && head -c 5000000 /dev/zero | tr '\\0' ' ' >> " ..
        proc.quote(d .. "/index.json"))
    end)
    local r = env:crater { "image", "import", tar }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("index.json", 1, true), r.stderr)
    assert.truthy(r.stderr:find("more than", 1, true), r.stderr)
    nothing_visible()
  end)
end)
