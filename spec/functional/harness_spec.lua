-- Proves the distribution test harness with tools only (skopeo, curl,
-- docker-registry, fakereg.py): no crater code is involved, so a failure
-- here is the harness's, not crater's.
local proc = require "support.proc"
local fx = require "support.fixtures"
local registry = require "support.registry"
local cjson = require "cjson"

local q = proc.quote

-- luassert's assert() returns more than its first argument; this does not.
local function must(v, err)
  if not v then error(err or "failed", 2) end
  return v
end

-- curl against url; returns {status, body, headers (lowercased keys), code}.
local function curl(url, extra)
  local body, hdr = os.tmpname(), os.tmpname()
  local res = proc.run(string.format("curl -s -o %s -D %s -w '%%{http_code}' --max-time 20 %s %s",
    q(body), q(hdr), extra or "", q(url)))
  local out = { code = res.code, status = tonumber(res.stdout:match("(%d+)$")),
    body = proc.read_file(body) or "", headers = {}, stderr = res.stderr }
  for line in (proc.read_file(hdr) or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([%w-]+):%s*(.*)$")
    if k then out.headers[k:lower()] = v end
  end
  os.remove(body); os.remove(hdr)
  return out
end

local function gone(pid, port)
  assert.is_false(proc.alive(pid), "pid " .. pid .. " still running")
  assert.is_true(proc.port_free(port), "port " .. port .. " still bound")
end

-- The tools the harness drives; without them the specs cannot run.
local missing = {}
for _, tool in ipairs({ "docker-registry", "skopeo", "umoci", "openssl", "htpasswd", "zstd", "curl", "python3" }) do
  if not proc.run("command -v " .. tool).ok then missing[#missing + 1] = tool end
end
if not io.open("/bin/busybox") then missing[#missing + 1] = "busybox-static" end
if #missing > 0 then
  describe("harness", function()
    pending("needs " .. table.concat(missing, ", ") .. " (scripts/setup installs them)")
  end)
  return
end

describe("harness: proc", function()
  it("runs commands and reports exit code, stdout and stderr", function()
    local res = proc.run("echo out; echo err >&2; exit 7")
    assert.is_false(res.ok)
    assert.equal(7, res.code)
    assert.equal("out\n", res.stdout)
    assert.equal("err\n", res.stderr)
    assert.equal("a b\n", proc.run("echo \"$X\"", { env = { X = "a b" } }).stdout)
    assert.equal("it's\n", proc.check("echo " .. q("it's")))
  end)

  it("spawns, waits for a port, kills by pid and frees the port", function()
    local port = proc.free_port()
    assert.is_true(proc.port_free(port))
    local dir = proc.tmpdir()
    local p = proc.spawn(proc.python() .. " -m http.server --bind 127.0.0.1 " .. port, { dir = dir })
    finally(function() proc.kill(p.pid); proc.rmdir(dir) end)
    assert(proc.wait_port("127.0.0.1", port, 10))
    assert.is_true(proc.alive(p.pid))
    assert.is_false(proc.port_free(port))
    assert.is_true(proc.kill(p.pid))
    gone(p.pid, port)
  end)
end)

describe("harness: fixtures", function()
  local layout
  setup(function() layout = fx.layout() end)

  it("builds every tagged image once and caches it", function()
    assert.same({ "busybox", "busybox-uncompressed", "busybox-zstd", "multiarch", "multilayer", "whiteout" },
      fx.names())
    local stamp = proc.check("stat -c %Y " .. q(fx.dir() .. "/info.json"))
    assert.equal(layout, fx.layout())
    assert.equal(stamp, proc.check("stat -c %Y " .. q(fx.dir() .. "/info.json")))
    assert.equal("/fixtures/" .. fx.VERSION, fx.dir():sub(-#fx.VERSION - 10))
  end)

  it("records digests and sizes that match the blobs", function()
    for _, name in ipairs(fx.names()) do
      local img = fx.image(name)
      local raw = fx.blob(img.digest)
      assert.equal(img.size, #raw)
      assert.equal(img.digest, fx.sha256(raw))
      -- skopeo reads the same manifest from the layout
      local res = proc.run("skopeo inspect --raw " .. q("oci:" .. layout .. ":" .. name))
      assert(res.ok, res.stderr)
      assert.equal(img.digest, fx.sha256(res.stdout))
      for _, l in ipairs(img.layers or {}) do
        assert.equal(l.size, tonumber(proc.check("stat -c %s " .. q(fx.blob_path(l.digest))):match("%d+")))
      end
    end
  end)

  it("has the layer media types and counts each image promises", function()
    assert.equal(1, #fx.layers("busybox"))
    assert.equal("application/vnd.oci.image.layer.v1.tar+gzip", fx.layers("busybox")[1].mediaType)
    assert.equal("application/vnd.oci.image.layer.v1.tar+zstd", fx.layers("busybox-zstd")[1].mediaType)
    assert.equal("application/vnd.oci.image.layer.v1.tar", fx.layers("busybox-uncompressed")[1].mediaType)
    assert.equal(5, #fx.layers("multilayer"))
    assert.equal(3, #fx.layers("whiteout"))
    -- the three busybox variants share one uncompressed layer
    local diff = fx.image("busybox").diff_ids[1]
    assert.equal(diff, fx.image("busybox-zstd").diff_ids[1])
    assert.equal(diff, fx.sha256(proc.check("zstd -dc " .. q(fx.blob_path(fx.layers("busybox-zstd")[1].digest)))))
    assert.equal(diff, "sha256:" .. proc.check("sha256sum " .. q(fx.blob_path(fx.layers("busybox-uncompressed")[1].digest))):match("^%x+"))
    local cfg = cjson.decode(fx.blob(fx.config_digest("busybox")))
    assert.same({ "sh" }, cfg.config.Cmd)
    assert.equal("/", cfg.config.WorkingDir)
  end)

  it("has a multi-platform index", function()
    local img = fx.image("multiarch")
    assert.equal("application/vnd.oci.image.index.v1+json", img.media_type)
    local plats = {}
    for _, p in ipairs(fx.platforms("multiarch")) do
      plats[#plats + 1] = p.os .. "/" .. p.architecture .. (p.variant and ("/" .. p.variant) or "")
    end
    assert.same({ "linux/amd64", "linux/arm64/v8", "linux/arm/v7" }, plats)
    assert.equal(fx.manifest_digest("busybox"), img.manifests[1].digest)
  end)

  it("has layers with whiteouts, links, a fifo, setuid and an xattr", function()
    local function listing(l)
      return proc.check("tar -tvzf " .. q(fx.blob_path(l.digest)))
    end
    local wh = listing(fx.layers("whiteout")[3])
    assert.truthy(wh:find("w/.wh.delete-me", 1, true))
    assert.truthy(wh:find("w/opaque/.wh..wh..opq", 1, true))
    local ml3 = listing(fx.layers("multilayer")[3])
    assert.truthy(ml3:find("data/hardlink link to data/hello.txt", 1, true))
    assert.truthy(ml3:find("data/symlink -> hello.txt", 1, true))
    local ml4 = listing(fx.layers("multilayer")[4])
    assert.truthy(ml4:match("\np[^\n]*data/fifo") or ml4:match("^p[^\n]*data/fifo"))
    assert.truthy(ml4:match("rwsr%-xr%-x[^\n]*data/setuid"))
    local xl = proc.check("zcat " .. q(fx.blob_path(fx.layers("multilayer")[4].digest)) ..
      " | " .. proc.python() .. " -c " .. q("import sys,tarfile\n" ..
      "t=tarfile.open(fileobj=sys.stdin.buffer,mode='r|')\n" ..
      "[print(m.name, m.pax_headers.get('SCHILY.xattr.user.test')) for m in t if m.name=='data/xattr']"))
    assert.equal("data/xattr 1\n", xl)
  end)

  it("has a docker-archive of busybox", function()
    local list = proc.check("tar -tf " .. q(fx.docker_archive()))
    assert.truthy(list:find("manifest.json", 1, true))
    assert.truthy(list:find("repositories", 1, true))
    assert.truthy(list:find("/layer.tar", 1, true))
    local m = cjson.decode(proc.check("tar -xOf " .. q(fx.docker_archive()) .. " manifest.json"))
    assert.truthy(m[1].RepoTags[1]:match("busybox:latest$"))
    assert.equal(1, #m[1].Layers)
    local res = proc.run("skopeo inspect --raw " .. q("docker-archive:" .. fx.docker_archive()))
    assert(res.ok, res.stderr)
  end)
end)

local modes = {
  { name = "plain HTTP", opts = {} },
  { name = "TLS with a generated CA", opts = { tls = true } },
  { name = "htpasswd Basic auth", opts = { auth = { user = "crater", password = "s3cret pass" } } },
  { name = "TLS and auth", opts = { tls = true, auth = { user = "crater", password = "pw" } } },
}

for _, mode in ipairs(modes) do
  describe("harness: docker-registry, " .. mode.name, function()
    local r
    setup(function() r = registry.start(mode.opts) end)
    teardown(function() if r then r:stop() end end)

    it("listens on 127.0.0.1 and answers /v2/", function()
      assert.truthy(r.host:match("^127%.0%.0%.1:%d+$"))
      assert.equal(mode.opts.tls and "https" or "http", r.url:match("^(%a+)://"))
      assert.equal(200, r:curl("/v2/").status)
      if mode.opts.auth then
        local anon = curl(r.url .. "/v2/", r.ca_file and ("--cacert " .. q(r.ca_file)) or "")
        assert.equal(401, anon.status)
        assert.truthy(anon.headers["www-authenticate"]:match("^Basic"))
      end
      if mode.opts.tls then
        -- without the CA the certificate is refused
        assert.equal(60, curl(r.url .. "/v2/").code)
        assert.truthy(proc.read_file(r.ca_file):find("BEGIN CERTIFICATE", 1, true))
      end
    end)

    it("takes pushes of busybox, multiarch, zstd and uncompressed with the layout's digests", function()
      for _, name in ipairs({ "busybox", "multiarch", "busybox-zstd", "busybox-uncompressed" }) do
        local digest = fx.push(r, name, "crater/" .. name .. ":v1")
        assert.equal(fx.manifest_digest(name), digest)
        local raw = assert(fx.inspect(r, "crater/" .. name .. ":v1"))
        assert.equal(fx.manifest_digest(name), fx.sha256(raw))
        assert.equal(fx.manifest_digest(name), fx.sha256(assert(fx.inspect(r, "crater/" .. name .. "@" .. digest))))
      end
      -- every platform of the index arrived
      for _, m in ipairs(fx.image("multiarch").manifests) do
        assert.equal(200, r:curl("/v2/crater/multiarch/manifests/" .. m.digest,
          "-H " .. q("Accept: " .. m.media_type)).status)
      end
      -- blobs are served with the right digest
      local l = fx.layers("busybox-zstd")[1]
      local res = r:curl("/v2/crater/busybox-zstd/blobs/" .. l.digest)
      assert.equal(200, res.status)
      assert.equal(l.digest, fx.sha256(res.body))
    end)

    it("converts to Docker schema2 and a Docker manifest list on push", function()
      local d = fx.push(r, "busybox", "crater/docker:v2s2", { format = "v2s2" })
      local doc = cjson.decode(must(fx.inspect(r, "crater/docker:v2s2")))
      assert.equal("application/vnd.docker.distribution.manifest.v2+json", doc.mediaType)
      assert.equal(d, fx.sha256(fx.inspect(r, "crater/docker:v2s2")))
      fx.push(r, "multiarch", "crater/docker:list", { format = "v2s2" })
      doc = cjson.decode(must(fx.inspect(r, "crater/docker:list")))
      assert.equal("application/vnd.docker.distribution.manifest.list.v2+json", doc.mediaType)
      assert.equal(3, #doc.manifests)
    end)

    if mode.opts.auth then
      it("refuses skopeo without credentials", function()
        local anon = { host = r.host, ca_file = r.ca_file, cert_dir = r.cert_dir }
        local raw, err = fx.inspect(anon, "crater/busybox:v1")
        assert.is_nil(raw)
        assert.truthy(err:lower():find("unauthorized", 1, true) or err:lower():find("authentication", 1, true))
      end)
    end
  end)
end

describe("harness: docker-registry stop", function()
  it("kills the registry by pid, frees its port and removes its dir", function()
    local r = registry.start{ tls = true }
    finally(function() r:stop() end)
    local pid, port, dir = r.pid, r.port, r.dir
    assert.is_true(proc.alive(pid))
    r:stop()
    gone(pid, port)
    assert.is_nil(proc.read_file(dir .. "/config.yml"))
    r:stop()  -- idempotent
  end)

  it("fails with the registry's log when it cannot start", function()
    local ok, err = pcall(registry.start, { config_extra = "bogus: [unclosed\n" })
    assert.is_false(ok)
    assert.truthy(err:find("did not answer /v2/", 1, true))
    assert.truthy(err:find("--- log:", 1, true))
    assert.same({}, proc.running())
  end)
end)

describe("harness: fake registry", function()
  local f, layout, layer, ldigest, lsize
  setup(function()
    layout = fx.layout()
    f = registry.fake{ layout = layout, fail_count = 2, retry_after = 0 }
    layer = fx.layers("busybox")[1]
    ldigest, lsize = layer.digest, layer.size
  end)
  teardown(function() if f then f:stop() end end)

  local function get(path, extra) return curl(f.url .. path, extra) end

  it("serves manifests by tag and digest with Content-Type and Docker-Content-Digest", function()
    assert.equal(200, get("/v2/").status)
    local m = get("/v2/library/busybox/manifests/latest")
    assert.equal(200, m.status)
    assert.equal("application/vnd.oci.image.manifest.v1+json", m.headers["content-type"])
    assert.equal(fx.manifest_digest("busybox"), m.headers["docker-content-digest"])
    assert.equal(fx.manifest_digest("busybox"), fx.sha256(m.body))
    local i = get("/v2/any/repo/manifests/multiarch")
    assert.equal("application/vnd.oci.image.index.v1+json", i.headers["content-type"])
    assert.equal(200, get("/v2/x/manifests/" .. fx.manifest_digest("multilayer")).status)
    assert.equal(404, get("/v2/x/manifests/nosuchtag").status)
    local h = get("/v2/x/manifests/busybox", "-I")
    assert.equal(200, h.status)
    assert.equal(tostring(fx.image("busybox").size), h.headers["content-length"])
    -- skopeo reads it like a registry
    local res = proc.run("skopeo inspect --raw --tls-verify=false " .. q("docker://" .. f.host .. "/library/busybox:latest"))
    assert(res.ok, res.stderr)
    assert.equal(fx.manifest_digest("busybox"), fx.sha256(res.stdout))
  end)

  it("serves blobs whole and by Range", function()
    local b = get("/v2/x/blobs/" .. ldigest)
    assert.equal(200, b.status)
    assert.equal(ldigest, fx.sha256(b.body))
    local r = get("/v2/x/blobs/" .. ldigest, "-r 100-199")
    assert.equal(206, r.status)
    assert.equal(100, #r.body)
    assert.equal("bytes 100-199/" .. lsize, r.headers["content-range"])
    assert.equal(fx.blob(ldigest):sub(101, 200), r.body)
    assert.equal(416, get("/v2/x/blobs/" .. ldigest, "-r " .. (lsize + 10) .. "-").status)
    assert.equal(404, get("/v2/x/blobs/sha256:" .. string.rep("a", 64)).status)
  end)

  it("corrupt-blob: same size, wrong bytes", function()
    local b = get("/v2/corrupt-blob/busybox/blobs/" .. ldigest)
    assert.equal(200, b.status)
    assert.equal(lsize, #b.body)
    assert.are_not.equal(ldigest, fx.sha256(b.body))
    assert.equal(ldigest, b.headers["docker-content-digest"])
    -- config blobs stay intact
    local c = get("/v2/corrupt-blob/busybox/blobs/" .. fx.config_digest("busybox"))
    assert.equal(fx.config_digest("busybox"), fx.sha256(c.body))
  end)

  it("short-blob and long-blob: size differs from the descriptor", function()
    assert.equal(lsize - 1, #get("/v2/short-blob/busybox/blobs/" .. ldigest).body)
    local long = get("/v2/long-blob/busybox/blobs/" .. ldigest).body
    assert.is_true(#long > lsize)
    assert.equal(fx.blob(ldigest), long:sub(1, lsize))
  end)

  it("reset-mid-blob: resets after half, then serves the rest by Range", function()
    local first = get("/v2/reset-mid-blob/busybox/blobs/" .. ldigest)
    assert.are_not.equal(0, first.code)            -- curl saw the reset
    assert.is_true(#first.body < lsize)
    assert.is_true(#first.body > 0)
    local rest = get("/v2/reset-mid-blob/busybox/blobs/" .. ldigest, "-r " .. #first.body .. "-")
    assert.equal(206, rest.status)
    assert.equal(ldigest, fx.sha256(first.body .. rest.body))
    local reqs = f:requests()
    local faults = 0
    for _, e in ipairs(reqs) do if e.fault == "reset" then faults = faults + 1 end end
    assert.equal(1, faults)
  end)

  it("503-then-ok and 429: fail_count times with Retry-After, then success", function()
    for _, s in ipairs({ "503-then-ok", "429" }) do
      local path = "/v2/" .. s .. "/busybox/manifests/latest"
      local code = s == "429" and 429 or 503
      local a = get(path)
      assert.equal(code, a.status)
      assert.equal("0", a.headers["retry-after"])
      assert.equal(code, get(path).status)
      assert.equal(200, get(path).status)
    end
  end)

  it("redirect-blob: 307 to another host, which records the Authorization header", function()
    local b = get("/v2/redirect-blob/busybox/blobs/" .. ldigest)
    assert.equal(307, b.status)
    local loc = b.headers["location"]
    assert.truthy(loc:find(f.redirect, 1, true))
    assert.are_not.equal(f.host, f.redirect)
    -- a careful client: follows without the header; a careless one sends it
    local ok = curl(loc)
    assert.equal(ldigest, fx.sha256(ok.body))
    curl(loc, "-H 'Authorization: Bearer leaked'")
    local seen = f:redirects()
    assert.equal(2, #seen)
    assert.is_false(seen[1].auth)
    assert.is_true(seen[2].auth)
    assert.equal("Bearer", seen[2].auth_scheme)
  end)

  it("schema1, huge-manifest, dup-keys, wrong-content-type", function()
    local s1 = get("/v2/schema1/busybox/manifests/latest")
    assert.equal("application/vnd.docker.distribution.manifest.v1+prettyjws", s1.headers["content-type"])
    assert.equal(1, cjson.decode(s1.body).schemaVersion)
    assert.equal(s1.headers["docker-content-digest"], fx.sha256(s1.body))
    assert.equal(200, get("/v2/x/manifests/" .. s1.headers["docker-content-digest"]).status)
    local huge = get("/v2/huge-manifest/busybox/manifests/latest")
    assert.is_true(#huge.body > 4 * 1024 * 1024)
    assert.equal(huge.headers["docker-content-digest"], fx.sha256(huge.body))
    local dup = get("/v2/dup-keys/busybox/manifests/latest")
    local _, n = dup.body:gsub('"layers":', "")
    assert.equal(2, n)
    assert.equal(dup.headers["docker-content-digest"], fx.sha256(dup.body))
    local wct = get("/v2/wrong-content-type/busybox/manifests/latest")
    assert.equal("application/vnd.docker.distribution.manifest.v2+json", wct.headers["content-type"])
    assert.equal("application/vnd.oci.image.manifest.v1+json", cjson.decode(wct.body).mediaType)
  end)

  it("logs every request with method, path, status and auth presence", function()
    f:reset()
    get("/v2/x/manifests/busybox", "-H 'Authorization: Basic eDp5'")
    get("/v2/x/manifests/nope")
    local reqs = f:requests()
    assert.equal(2, #reqs)
    assert.same({ "GET", "/v2/x/manifests/busybox", 200, true, "Basic" },
      { reqs[1].method, reqs[1].path, reqs[1].status, reqs[1].auth, reqs[1].auth_scheme })
    assert.same({ 404, false }, { reqs[2].status, reqs[2].auth })
    -- and to the log file
    local file = proc.read_file(f.log_file)
    assert.truthy(file:find("/v2/x/manifests/nope", 1, true))
  end)
end)

describe("harness: fake registry auth", function()
  local layout
  setup(function() layout = fx.layout() end)

  it("bearer: challenge, token endpoint with Basic creds, per-scope counts", function()
    local f = registry.fake{ layout = layout, scenario = "bearer", user = "u", password = "p" }
    finally(function() f:stop() end)
    local c = curl(f.url .. "/v2/library/busybox/manifests/latest")
    assert.equal(401, c.status)
    local chal = c.headers["www-authenticate"]
    local realm = chal:match('realm="([^"]+)"')
    assert.equal("http://" .. f.host .. "/token", realm)
    assert.equal("fake", chal:match('service="([^"]+)"'))
    local scope = chal:match('scope="([^"]+)"')
    assert.equal("repository:library/busybox:pull", scope)
    local tokurl = realm .. "?service=fake&scope=" .. scope
    assert.equal(401, curl(tokurl).status)
    assert.equal(401, curl(tokurl, "-u u:wrong").status)
    local t = cjson.decode(curl(tokurl, "-u u:p").body)
    assert.is_string(t.token)
    assert.is_number(t.expires_in)
    local auth = "-H " .. q("Authorization: Bearer " .. t.token)
    assert.equal(200, curl(f.url .. "/v2/library/busybox/manifests/latest", auth).status)
    assert.equal(200, curl(f.url .. "/v2/library/busybox/blobs/" .. fx.layers("busybox")[1].digest, auth).status)
    -- the token does not cover another repository
    local other = curl(f.url .. "/v2/other/manifests/busybox", auth)
    assert.equal(401, other.status)
    assert.truthy(other.headers["www-authenticate"]:find('error="insufficient_scope"', 1, true))
    assert.same({ ["repository:library/busybox:pull"] = 1 }, f:tokens())
    -- skopeo goes through the whole flow
    local res = proc.run("skopeo inspect --raw --tls-verify=false --creds u:p " ..
      q("docker://" .. f.host .. "/library/busybox:latest"))
    assert(res.ok, res.stderr)
    assert.equal(fx.manifest_digest("busybox"), fx.sha256(res.stdout))
    assert.is_true(f:tokens()["repository:library/busybox:pull"] >= 2)
  end)

  it("bearer tokens expire", function()
    local f = registry.fake{ layout = layout, scenario = "bearer", token_expires = 1 }
    finally(function() f:stop() end)
    local t = cjson.decode(curl(f.url .. "/token?service=fake&scope=repository:x:pull").body)
    local auth = "-H " .. q("Authorization: Bearer " .. t.token)
    assert.equal(200, curl(f.url .. "/v2/x/manifests/busybox", auth).status)
    proc.sleep(2.1)
    assert.equal(401, curl(f.url .. "/v2/x/manifests/busybox", auth).status)
  end)

  it("basic: per repository, alongside an open one", function()
    local f = registry.fake{ layout = layout, user = "u", password = "p" }
    finally(function() f:stop() end)
    assert.equal(200, curl(f.url .. "/v2/open/manifests/busybox").status)
    local c = curl(f.url .. "/v2/basic/busybox/manifests/latest")
    assert.equal(401, c.status)
    assert.truthy(c.headers["www-authenticate"]:match("^Basic"))
    assert.equal(200, curl(f.url .. "/v2/basic/busybox/manifests/latest", "-u u:p").status)
  end)

  it("chunked blobs and stall-blob", function()
    -- busted keeps only the last finally() of a test: one for both servers
    local f, f2
    finally(function()
      if f then f:stop() end
      if f2 then f2:stop() end
    end)
    f = registry.fake{ layout = layout, chunked = true, stall = 1 }
    local l = fx.layers("busybox")[1]
    local long = curl(f.url .. "/v2/long-blob/busybox/blobs/" .. l.digest)
    assert.equal("chunked", long.headers["transfer-encoding"])
    assert.is_nil(long.headers["content-length"])
    assert.is_true(#long.body > l.size)
    local t0 = os.time()
    local slow = curl(f.url .. "/v2/stall-blob/busybox/blobs/" .. l.digest)
    assert.equal(l.digest, fx.sha256(slow.body))
    assert.is_true(os.time() - t0 >= 1)
    -- a client with a deadline gives up on it (curl's --speed-limit works
    -- too, but averages over ~6 s)
    f2 = registry.fake{ layout = layout, stall = 30 }
    local cut = curl(f2.url .. "/v2/stall-blob/busybox/blobs/" .. l.digest, "--max-time 1")
    assert.equal(28, cut.code)  -- curl: operation timed out
    assert.is_true(#cut.body > 0 and #cut.body < l.size)
  end)

  it("stops by pid and frees both ports", function()
    local f = registry.fake{ layout = layout, scenario = { "redirect-blob" } }
    local pid, port = f.pid, f.port
    local rhost, rport = f.redirect:match("^(.*):(%d+)$")
    f:stop()
    gone(pid, port)
    if rhost ~= "localhost" then
      assert.is_true(proc.port_free(tonumber(rport), rhost))
    end
  end)
end)

describe("harness: cleanup", function()
  it("leaves no tracked process running", function()
    local left = {}
    for _, pid in ipairs(proc.running()) do
      left[#left + 1] = pid .. " " .. (proc.read_file("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
    end
    assert.same({}, left)
  end)
end)
