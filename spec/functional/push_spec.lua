-- Functional: `crater push` through the real binary against Debian's
-- docker-registry (plain HTTP, TLS with a generated CA, htpasswd Basic
-- auth) started by the spec on 127.0.0.1.  Checks what arrives with the
-- registry's own access log and skopeo.
local proc = require "support.proc"
local cli = require "support.cli"
local json = require "crater.json"
local registry = require "support.registry"
local fx = require "support.fixtures"

local function skip_reason() return cli.missing_tools { "docker-registry", "skopeo" } end
local decode_lines = cli.json_lines

-- The final {"event":"done","push":{...}} of a `--format json push`.
local function push_result(stdout)
  local evs = decode_lines(stdout)
  local last = evs[#evs]
  assert(last and last.event == "done" and last.push, "no done event in: " .. stdout)
  return last.push, evs
end

-- Requests the registry answered (method, path with query, status) since
-- byte offset `from` of its log (see mark()), from the "response
-- completed" lines docker-registry writes to stderr.
local function requests(reg, from)
  local t = {}
  local log = reg:log():sub((from or 0) + 1)
  for line in log:gmatch("[^\n]+") do
    if line:find('msg="response completed', 1, true) then
      local method = line:match("http%.request%.method=(%u+)")
      local uri = line:match('http%.request%.uri="([^"]*)"') or line:match("http%.request%.uri=(%S+)")
      local status = tonumber(line:match("http%.response%.status=(%d+)"))
      if method and uri and uri:sub(1, 4) == "/v2/" then
        t[#t + 1] = { method = method, path = uri, status = status }
      end
    end
  end
  return t
end

local function mark(reg) return #reg:log() end

-- Requests matching method and a Lua pattern on the path.
local function count(reqs, method, pat)
  local n = 0
  for _, q in ipairs(reqs) do
    if q.method == method and (not pat or q.path:find(pat)) then n = n + 1 end
  end
  return n
end

local function dump(reqs)
  local t = {}
  for _, q in ipairs(reqs) do t[#t + 1] = q.method .. " " .. q.path .. " " .. q.status end
  return table.concat(t, "\n")
end

-- A fresh crater root with the fixture layout imported; images are named
-- fixtures.local/fx:<tag> (a host that is never contacted).
local BASE = "fixtures.local/fx"
local function imported_env()
  local env = cli.env()
  local lay = env.dir .. "/layout"
  proc.check("cp -a " .. proc.quote(fx.layout()) .. " " .. proc.quote(lay))
  local r = env:crater { "image", "import", "--base-name", BASE, lay }
  assert(r.code == 0, "import: " .. r.stderr)
  return env
end

-- Digests of the image's manifests/config/layers as `crater image inspect` reports.
local function inspect(env, name)
  local r = env:crater { "--format", "json", "image", "inspect", name }
  assert(r.code == 0, "inspect " .. name .. ": " .. r.stderr)
  return assert(json.decode(r.stdout))
end

local function digests_of(info)
  local t = { target = info.target.digest, manifests = {} }
  for _, m in ipairs(info.manifests) do
    local e = { digest = m.digest, platform = m.platform, config = m.config and m.config.digest, layers = {} }
    for i, l in ipairs(m.layers or {}) do e.layers[i] = l.digest end
    t.manifests[#t.manifests + 1] = e
  end
  table.sort(t.manifests, function(a, b) return a.digest < b.digest end)
  return t
end

describe("crater push (functional, docker-registry)", function()
  local why = skip_reason()
  if why then
    it("runs", function() pending(why) end)
    return
  end

  -- One registry for the block; every test gets a fresh root with the
  -- fixtures imported (a root that pushed a blob labels it with the
  -- destination repository, so later pushes from it would mount) and
  -- pushes to repositories of its own.
  local reg, src_env, envs
  setup(function() reg = registry.start {} end)
  teardown(function() if reg then reg:stop() end end)
  before_each(function()
    src_env = imported_env()
    envs = { src_env }
  end)
  after_each(function()
    for _, e in ipairs(envs) do e:cleanup() end
  end)
  local function new_env()
    local e = cli.env()
    envs[#envs + 1] = e
    return e
  end

  it("pushes a multi-platform index: every platform manifest and the index arrive, same digests back", function()
    local idx = fx.image("multiarch")
    local dest = reg.host .. "/push/multiarch:1"
    local m0 = mark(reg)
    local r = src_env:crater { "--format", "json", "push", "--plain-http", BASE .. ":multiarch", dest }
    assert.equal(0, r.code, r.stderr)
    local res = push_result(r.stdout)
    assert.equal(idx.digest, res.digest)
    assert.equal(dest, res.name)
    -- config per platform (3 distinct) + the shared layer, all uploaded
    assert.is_true(res.blobs.uploaded >= 2, r.stdout)
    assert.equal(0, res.blobs.mounted)
    -- the platform of every pushed manifest, from the index entries
    assert.equal(#idx.manifests, #res.platforms, r.stdout)
    local want_plat, got_plat = {}, {}
    for _, m in ipairs(idx.manifests) do
      local platforms = require "crater.platforms"
      want_plat[m.digest] = platforms.format(platforms.normalize(m.platform)) -- as pull reports them
    end
    for _, e in ipairs(res.platforms) do got_plat[e.digest] = e.platform end
    assert.same(want_plat, got_plat)

    local reqs = requests(reg, m0)
    for _, m in ipairs(idx.manifests) do
      assert.equal(1, count(reqs, "PUT", "/v2/push/multiarch/manifests/" .. m.digest:gsub("%p", "%%%0") .. "$"),
        dump(reqs))
      -- the platform manifest is served by digest
      local raw = assert(fx.inspect(reg, "push/multiarch@" .. m.digest))
      assert.equal(m.digest, fx.sha256(raw))
    end
    assert.equal(1, count(reqs, "PUT", "/v2/push/multiarch/manifests/1$"), dump(reqs))

    -- skopeo sees the same index, byte for byte
    local raw = assert(fx.inspect(reg, "push/multiarch:1"))
    assert.equal(idx.digest, fx.sha256(raw))
    local doc = assert(json.decode(raw))
    assert.equal(#idx.manifests, #doc.manifests)
    -- and skopeo can read every platform's config
    for _, plat in ipairs { "amd64", "arm64", "arm" } do
      local res2 = proc.run("skopeo inspect --tls-verify=false --override-os linux --override-arch " .. plat ..
        " --config " .. proc.quote("docker://" .. dest))
      assert.equal(0, res2.code, res2.stderr)
      assert.equal(plat, assert(json.decode(res2.stdout)).architecture)
    end

    -- pull it back by digest into a second root: identical digests
    local env2 = new_env()
    local by_digest = reg.host .. "/push/multiarch@" .. idx.digest
    r = env2:crater { "pull", "--plain-http", "--no-unpack", "--all-platforms", by_digest }
    assert.equal(0, r.code, r.stderr)
    local a = digests_of(inspect(src_env, BASE .. ":multiarch"))
    local b = digests_of(inspect(env2, by_digest))
    assert.same(a, b)
    assert.equal(3, #b.manifests)
    for _, m in ipairs(b.manifests) do assert.is_truthy(m.config, "config of " .. m.digest .. " not pulled") end
  end)

  it("HEADs blobs first: a second push of the same image uploads nothing", function()
    local dest = reg.host .. "/push/again:1"
    local r = src_env:crater { "--format", "json", "push", "--plain-http", BASE .. ":multilayer", dest }
    assert.equal(0, r.code, r.stderr)
    local first = push_result(r.stdout)
    assert.equal(6, first.blobs.uploaded) -- config + 5 layers
    assert.equal(0, first.blobs.exists)
    -- a single manifest: its platform comes from the config
    assert.equal(1, #first.platforms, r.stdout)
    assert.equal(fx.manifest_digest("multilayer"), first.platforms[1].digest)
    assert.truthy(first.platforms[1].platform:match("^linux/%w+"), r.stdout)

    local m0 = mark(reg)
    r = src_env:crater { "--format", "json", "push", "--plain-http", BASE .. ":multilayer", dest }
    assert.equal(0, r.code, r.stderr)
    local second, evs = push_result(r.stdout)
    assert.equal(0, second.blobs.uploaded)
    assert.equal(0, second.blobs.mounted)
    assert.equal(6, second.blobs.exists)
    assert.equal(fx.manifest_digest("multilayer"), second.digest)
    local exists = 0
    for _, e in ipairs(evs) do
      if e.event == "progress" then
        assert.are_not.equal("done", e.state, "upload progress on a re-push: " .. r.stdout)
        if e.state == "exists" then exists = exists + 1 end
      end
    end
    assert.equal(6, exists)

    local reqs = requests(reg, m0)
    assert.equal(6, count(reqs, "HEAD", "/blobs/sha256:"), dump(reqs))
    assert.equal(0, count(reqs, "POST"), dump(reqs))
    assert.equal(0, count(reqs, "PATCH"), dump(reqs))
    assert.equal(0, count(reqs, "PUT", "/blobs/"), dump(reqs))
  end)

  it("mounts blobs across repositories of the same registry instead of uploading them", function()
    local a = reg.host .. "/mount/src:1"
    local b = reg.host .. "/mount/dst:1"
    local r = src_env:crater { "push", "--plain-http", BASE .. ":busybox", a }
    assert.equal(0, r.code, r.stderr)

    -- a fresh root that got the image by pulling repo A
    local env = new_env()
    r = env:crater { "pull", "--plain-http", "--no-unpack", a }
    assert.equal(0, r.code, r.stderr)

    local m0 = mark(reg)
    r = env:crater { "--format", "json", "push", "--plain-http", a, b }
    assert.equal(0, r.code, r.stderr)
    local res = push_result(r.stdout)
    assert.equal(2, res.blobs.mounted, r.stdout) -- config + layer
    assert.equal(0, res.blobs.uploaded)

    local reqs = requests(reg, m0)
    local layer = fx.layers("busybox")[1].digest
    local mounts = 0
    for _, q in ipairs(reqs) do
      if q.method == "POST" and q.path:find("^/v2/mount/dst/blobs/uploads/%?") and q.path:find("mount=" .. layer, 1, true)
          and (q.path:find("from=mount/src", 1, true) or q.path:find("from=mount%2Fsrc", 1, true)) then
        assert.equal(201, q.status, dump(reqs))
        mounts = mounts + 1
      end
    end
    assert.equal(1, mounts, dump(reqs))
    assert.equal(0, count(reqs, "PATCH"), dump(reqs))
    assert.equal(0, count(reqs, "PUT", "/blobs/"), dump(reqs))
    -- the destination now serves the image
    local raw = assert(fx.inspect(reg, "mount/dst:1"))
    assert.equal(fx.manifest_digest("busybox"), fx.sha256(raw))
    -- the blob's source label names both repositories now
    r = env:crater { "--format", "json", "content", "label", layer }
    local labels = assert(json.decode(r.stdout))
    local src = labels["containerd.io/distribution.source." .. reg.host] or ""
    assert.truthy(src:find("mount/src", 1, true), src)
    assert.truthy(src:find("mount/dst", 1, true), src)
  end)

  it("falls back to an upload when the mount source no longer has the blob", function()
    local layer = fx.layers("busybox")[1].digest
    local cfgd = fx.config_digest("busybox")
    -- the local blobs claim to come from a repository the registry does not have
    for _, d in ipairs { layer, cfgd } do
      local r = src_env:crater { "content", "label", d, "containerd.io/distribution.source." .. reg.host .. "=ghost/repo" }
      assert.equal(0, r.code, r.stderr)
    end
    local m0 = mark(reg)
    local r = src_env:crater { "--format", "json", "push", "--plain-http", BASE .. ":busybox", reg.host .. "/mount/fallback:1" }
    assert.equal(0, r.code, r.stderr)
    local res = push_result(r.stdout)
    assert.equal(2, res.blobs.uploaded, r.stdout)
    assert.equal(0, res.blobs.mounted)
    local reqs = requests(reg, m0)
    assert.equal(2, count(reqs, "POST", "from=ghost/repo"), dump(reqs))
    for _, q in ipairs(reqs) do
      if q.method == "POST" then assert.equal(202, q.status, dump(reqs)) end
    end
    assert.equal(2, count(reqs, "PUT", "^/v2/mount/fallback/blobs/uploads/"), dump(reqs))
    assert.equal(fx.manifest_digest("busybox"), fx.sha256(assert(fx.inspect(reg, "mount/fallback:1"))))
  end)

  it("records every destination repository exactly in the blob's source label", function()
    local layer = fx.layers("busybox")[1].digest
    local key = "containerd.io/distribution.source." .. reg.host
    local function sources()
      local r = src_env:crater { "--format", "json", "content", "label", layer }
      assert.equal(0, r.code, r.stderr)
      local set = {}
      for repo in ((assert(json.decode(r.stdout))[key] or "") .. ","):gmatch("([^,]*),") do
        if repo ~= "" then set[repo] = (set[repo] or 0) + 1 end
      end
      return set
    end
    -- "lbl/busybox" is a prefix of the first repository's name
    for _, repo in ipairs { "lbl/busybox-long", "lbl/busybox", "lbl/busybox" } do
      local r = src_env:crater { "push", "--plain-http", BASE .. ":busybox", reg.host .. "/" .. repo .. ":1" }
      assert.equal(0, r.code, r.stderr)
    end
    assert.same({ ["lbl/busybox-long"] = 1, ["lbl/busybox"] = 1 }, sources())
  end)

  it("pushes a partially pulled index only where the missing platforms already are", function()
    local idx = fx.image("multiarch")
    fx.push(reg, "multiarch", "partial/src:1")
    local env = new_env()
    local src = reg.host .. "/partial/src:1"
    local r = env:crater { "pull", "--plain-http", "--no-unpack", "--platform", "linux/arm64", src }
    assert.equal(0, r.code, r.stderr)
    -- back into the repository that has every platform: fine, and no warning
    r = env:crater { "push", "--plain-http", src, reg.host .. "/partial/src:2" }
    assert.equal(0, r.code, r.stderr)
    assert.falsy((r.stdout .. r.stderr):find("warning", 1, true), r.stdout .. r.stderr)
    assert.equal(idx.digest, fx.sha256(assert(fx.inspect(reg, "partial/src:2"))))
    -- into a new repository: refused up front with a clear message, no index there
    local m0 = mark(reg)
    r = env:crater { "push", "--plain-http", src, reg.host .. "/partial/dst:1" }
    assert.equal(1, r.code, r.stdout .. r.stderr)
    assert.truthy(r.stderr:find("--all-platforms", 1, true), r.stderr)
    assert.truthy(r.stderr:find("linux/amd64", 1, true), r.stderr)
    assert.equal(0, count(requests(reg, m0), "PUT", "/manifests/1$"))
    assert.is_nil((fx.inspect(reg, "partial/dst:1")))
  end)

  it("uploads in chunks with --chunk-size and the image pulls back identical", function()
    local dest = reg.host .. "/chunked/busybox:1"
    local layer = fx.layers("busybox")[1]
    assert.is_true(layer.size > 3 * 65536, "fixture layer too small for the chunk test")
    local m0 = mark(reg)
    local r = src_env:crater { "--format", "json", "push", "--plain-http", "--chunk-size", "65536",
      BASE .. ":busybox", dest }
    assert.equal(0, r.code, r.stderr)
    local res = push_result(r.stdout)
    assert.equal(2, res.blobs.uploaded)

    local reqs = requests(reg, m0)
    local patches = count(reqs, "PATCH", "^/v2/chunked/busybox/blobs/uploads/")
    -- the layer alone needs ceil(size / 64 KiB) chunks (the final one may ride on the PUT)
    local want = math.floor(layer.size / 65536)
    assert.is_true(patches >= want, string.format("%d PATCHes for %d bytes:\n%s", patches, layer.size, dump(reqs)))
    for _, q in ipairs(reqs) do
      if q.method == "PATCH" then assert.equal(202, q.status, dump(reqs)) end
    end
    assert.is_true(count(reqs, "PUT", "/blobs/uploads/") >= 2, dump(reqs))

    local env2 = new_env()
    r = env2:crater { "pull", "--plain-http", "--no-unpack", dest }
    assert.equal(0, r.code, r.stderr)
    assert.same(digests_of(inspect(src_env, BASE .. ":busybox")), digests_of(inspect(env2, dest)))
    -- the registry stored the exact bytes
    local blob = reg:curl("/v2/chunked/busybox/blobs/" .. layer.digest)
    assert.equal(200, blob.status)
    assert.equal(layer.digest, fx.sha256(blob.body))
  end)

  it("fails with exit 1 and a clear message for an image that is not in the store", function()
    local m0 = mark(reg)
    local r = src_env:crater { "push", "--plain-http", "no/such-image:1", reg.host .. "/x/y:1" }
    assert.equal(1, r.code, r.stdout .. r.stderr)
    assert.truthy(r.stderr:find("no/such-image", 1, true), r.stderr)
    assert.truthy(r.stderr:lower():find("not found", 1, true), r.stderr)
    assert.falsy(r.stderr:find("traceback", 1, true), r.stderr)
    assert.equal(0, #requests(reg, m0))
    -- same with one argument only
    r = src_env:crater { "push", "--plain-http", reg.host .. "/never/pulled:1" }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("never/pulled", 1, true), r.stderr)
  end)
end)

describe("crater push to a TLS registry with basic auth", function()
  local why = skip_reason()
  if why then it("runs", function() pending(why) end) return end

  local USER, PW = "pusher", "Pw-n0t-in-logs-7x"
  local reg, env
  setup(function()
    reg = registry.start { tls = true, auth = { user = USER, password = PW } }
    env = imported_env()
  end)
  teardown(function()
    if reg then reg:stop() end
    if env then env:cleanup() end
  end)

  local NOENV = function() return { HOME = env.dir .. "/nohome", DOCKER_CONFIG = env.dir .. "/nodocker" } end

  local function no_secret(r, pw)
    local all = r.stdout .. r.stderr
    assert.falsy(all:find(pw or PW, 1, true), "password leaked: " .. all)
    local b64 = require("crater.auth").base64_encode(USER .. ":" .. (pw or PW))
    assert.falsy(all:find(b64, 1, true), "encoded credentials leaked: " .. all)
  end

  it("takes the CA and credentials from the crater config's hosts entry", function()
    local cfg = env:file("hosts-auth.lua", string.format(
      "return { hosts = { [%q] = { ca_file = %q, username = %q, password = %q } } }",
      reg.host, reg.ca_file, USER, PW))
    local dest = reg.host .. "/tls/busybox:1"
    local r = env:crater({ "--format", "json", "push", "--config", cfg, BASE .. ":busybox", dest }, { env = NOENV() })
    assert.equal(0, r.code, r.stderr)
    no_secret(r)
    local res = push_result(r.stdout)
    assert.equal(fx.manifest_digest("busybox"), res.digest)
    assert.falsy(json.encode(res):find(PW, 1, true))
    local raw = assert(fx.inspect(reg, "tls/busybox:1"))
    assert.equal(fx.manifest_digest("busybox"), fx.sha256(raw))
    -- text mode leaks nothing either
    r = env:crater({ "push", "--config", cfg, BASE .. ":busybox", dest }, { env = NOENV() })
    assert.equal(0, r.code, r.stderr)
    no_secret(r)
  end)

  it("takes the CA from the config and credentials from the crater config's auths", function()
    local cfg = env:file("auths.lua", string.format(
      "return { hosts = { [%q] = { ca_file = %q } }, auths = { [%q] = { username = %q, password = %q } } }",
      reg.host, reg.ca_file, reg.host, USER, PW))
    local r = env:crater({ "push", "--config", cfg, BASE .. ":busybox-zstd", reg.host .. "/tls/zstd:1" },
      { env = NOENV() })
    assert.equal(0, r.code, r.stderr)
    no_secret(r)
    assert.equal(fx.manifest_digest("busybox-zstd"), fx.sha256(assert(fx.inspect(reg, "tls/zstd:1"))))
  end)

  it("takes credentials from $DOCKER_CONFIG/config.json", function()
    local cfg = env:file("ca-only.lua", string.format("return { hosts = { [%q] = { ca_file = %q } } }",
      reg.host, reg.ca_file))
    local dcfg = env.dir .. "/docker"
    proc.check("mkdir -p " .. proc.quote(dcfg))
    proc.write_file(dcfg .. "/config.json", json.encode { auths = { [reg.host] = {
      auth = require("crater.auth").base64_encode(USER .. ":" .. PW) } } })
    local r = env:crater({ "push", "--config", cfg, BASE .. ":multilayer", reg.host .. "/tls/multilayer:1" },
      { env = { HOME = env.dir .. "/nohome", DOCKER_CONFIG = dcfg } })
    assert.equal(0, r.code, r.stderr)
    no_secret(r)
    assert.equal(fx.manifest_digest("multilayer"), fx.sha256(assert(fx.inspect(reg, "tls/multilayer:1"))))
  end)

  it("refuses a wrong password with exit 1 and a permission error, without echoing it", function()
    local BAD = "Wr0ng-pw-zz9"
    local cfg = env:file("bad.lua", string.format(
      "return { hosts = { [%q] = { ca_file = %q, username = %q, password = %q } } }",
      reg.host, reg.ca_file, USER, BAD))
    local r = env:crater({ "push", "--config", cfg, BASE .. ":busybox", reg.host .. "/tls/denied:1" }, { env = NOENV() })
    assert.equal(1, r.code, r.stdout .. r.stderr)
    no_secret(r, BAD)
    no_secret(r)
    -- "HTTP 401: unauthorized (credentials rejected)"
    assert.truthy(r.stderr:find("unauthorized", 1, true), r.stderr)
    assert.truthy(r.stderr:find("credentials rejected", 1, true), r.stderr)
    -- nothing arrived
    assert.is_nil((fx.inspect(reg, "tls/denied:1")))
  end)

  it("without the CA the TLS push fails (certificate not trusted)", function()
    local cfg = env:file("noca.lua", string.format(
      "return { hosts = { [%q] = { username = %q, password = %q } } }", reg.host, USER, PW))
    local r = env:crater({ "push", "--config", cfg, BASE .. ":busybox", reg.host .. "/tls/noca:1" }, { env = NOENV() })
    assert.equal(1, r.code, r.stdout .. r.stderr)
    no_secret(r)
  end)
end)
