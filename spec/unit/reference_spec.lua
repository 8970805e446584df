-- crater.reference: normalisation like docker/containerd, strict errors.
local reference = require "crater.reference"

local D = "sha256:" .. string.rep("ab", 32)

describe("crater.reference", function()
  local ok_cases = {
    { "busybox", "docker.io/library/busybox:latest", "busybox:latest" },
    { "busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36" },
    { "library/busybox", "docker.io/library/busybox:latest", "busybox:latest" },
    { "docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest" },
    { "index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest" },
    { "user/app:v1", "docker.io/user/app:v1", "user/app:v1" },
    { "docker.io/user/app", "docker.io/user/app:latest", "user/app:latest" },
    { "localhost/app", "localhost/app:latest", "localhost/app:latest" },
    { "localhost:5000/app:dev", "localhost:5000/app:dev", "localhost:5000/app:dev" },
    { "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t" },
    { "quay.io/coreos/etcd", "quay.io/coreos/etcd:latest", "quay.io/coreos/etcd:latest" },
    { "Registry.Example/app", "Registry.Example/app:latest", "Registry.Example/app:latest" },
    { "myhost:443/x", "myhost:443/x:latest", "myhost:443/x:latest" },
    { "[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest" },
    { "busybox@" .. D, "docker.io/library/busybox@" .. D, "busybox@" .. D },
    { "busybox:1@" .. D, "docker.io/library/busybox:1@" .. D, "busybox:1@" .. D },
    { "a_b/c__d/e-f/g--h/i.j", "docker.io/a_b/c__d/e-f/g--h/i.j:latest", "a_b/c__d/e-f/g--h/i.j:latest" },
    { "x:_tag.with-chars", "docker.io/library/x:_tag.with-chars", "x:_tag.with-chars" },
    { "x:" .. string.rep("t", 128), "docker.io/library/x:" .. string.rep("t", 128), "x:" .. string.rep("t", 128) },
    { "reg.io/x@sha512:" .. string.rep("0", 128), "reg.io/x@sha512:" .. string.rep("0", 128), "reg.io/x@sha512:" .. string.rep("0", 128) },
  }
  for _, c in ipairs(ok_cases) do
    it("normalises " .. c[1]:sub(1, 60), function()
      local r, err = reference.parse(c[1])
      assert.is_nil(err)
      assert.equal(c[2], tostring(r))
      assert.equal(c[3], reference.familiar(r))
      -- canonical form is a fixed point
      assert.equal(c[2], tostring(assert(reference.parse(c[2]))))
    end)
  end

  it("splits parts", function()
    local r = assert(reference.parse("localhost:5000/ns/app:v2@" .. D))
    assert.equal("localhost:5000", r.domain)
    assert.equal("ns/app", r.path)
    assert.equal("v2", r.tag)
    assert.equal(D, r.digest)
    assert.equal("localhost:5000/ns/app", r.name)
    assert.equal(D, r:object())
    assert.equal("latest", assert(reference.parse("a")):object())
  end)

  it("keeps a bare name untagged on request", function()
    local r = assert(reference.parse("busybox", { default_tag = false }))
    assert.is_nil(r.tag)
    assert.equal("docker.io/library/busybox", tostring(r))
  end)

  local bad = {
    { "", "empty" },
    { "Busybox", "lowercase" },
    { "user/App", "lowercase" },
    { "busybox:", "invalid tag" },
    { "busybox:-x", "invalid tag" },
    { "busybox:.x", "invalid tag" },
    { "busybox:a/b", "lowercase" }, -- "busybox:a" is a host then, "b" fine... see below
    { "busybox:" .. string.rep("t", 129), "invalid tag" },
    { "busybox@sha256:abc", "64 hex" },
    { "busybox@sha256:" .. string.rep("AB", 32), "lowercase" },
    { "busybox@md5:" .. string.rep("a", 32), "unsupported algorithm" },
    { "busybox@", "expected ALGORITHM:HEX" },
    { "@" .. D, "missing repository" },
    { "a//b", "empty path component" },
    { "a/", "empty path component" },
    { "a..b", "invalid separator" },
    { "a___b", "invalid separator" },
    { "-a", "invalid path component" },
    { "a-", "invalid path component" },
    { "host:99999/x", "invalid registry host" },
    { "bad_host.io/x", "invalid registry host" },
    { "has space", "whitespace" },
    { string.rep("ab", 32), "ambiguous" },
    { "x/" .. string.rep("a", 260), "longer than" },
  }
  for _, c in ipairs(bad) do
    if c[1] ~= "busybox:a/b" then
      it("rejects " .. string.format("%q", c[1]:sub(1, 50)), function()
        local r, err, kind = reference.parse(c[1])
        assert.is_nil(r)
        assert.equal("invalid_argument", kind)
        assert.truthy(err:find(c[2], 1, true), err)
        assert.truthy(err:find("invalid reference", 1, true), err)
      end)
    end
  end

  it("treats host:port before a slash as a domain", function()
    local r = assert(reference.parse("busybox:5000/b"))
    assert.equal("busybox:5000", r.domain)
  end)

  it("raises on misuse", function()
    assert.has_error(function() reference.parse(nil) end)
    assert.has_error(function() reference.parse(42) end)
  end)

  it("validates digests", function()
    assert.is_true(reference.valid_digest(D))
    assert.is_nil(reference.valid_digest("sha256:../../etc"))
    assert.is_nil(reference.valid_digest("sha256:" .. string.rep("a", 63)))
  end)

  it("familiar passes through unparsable strings", function()
    assert.equal("Not Valid", reference.familiar("Not Valid"))
    assert.equal("busybox", reference.familiar("docker.io/library/busybox"))
    assert.equal("library/x/y", reference.familiar("docker.io/library/x/y"))
  end)

  it("builds with parts", function()
    local r = assert(reference.with("docker.io/library/busybox", "1", D))
    assert.equal("docker.io/library/busybox:1@" .. D, tostring(r))
  end)
end)
