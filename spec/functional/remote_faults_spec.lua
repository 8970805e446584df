-- The registry transport against the project's fault-injecting registry
-- (spec/support/fakereg.py): corrupt/short/long blobs, a reset mid-blob
-- resumed with Range, 503 and 429 retried (Retry-After honoured), a
-- redirect to another host that must not get credentials, the bearer token
-- flow (one token per scope, cached), Basic auth, oversized manifests.
local core = require "crater.core"
local registry = require "support.registry"
local fx = require "support.fixtures"
local proc = require "support.proc"

local function file_digest(path)
  local out = proc.check("sha256sum " .. proc.quote(path))
  return "sha256:" .. out:match("^(%x+)")
end

local function client(f, extra)
  local o = { host = f.host, plain_http = true, backoff_ms = 20 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(core.remote_new(o))
end

local function items_for(name, dir)
  local img = fx.image(name)
  local items = {}
  for i, l in ipairs(img.layers) do
    items[i] = { digest = l.digest, size = l.size, path = dir .. "/" .. name .. "-" .. i }
  end
  return items
end

describe("remote transport against the fault-injecting registry", function()
  local layout, tmp
  local servers = {}
  local function fake(opts)
    opts.layout = layout
    local f = registry.fake(opts)
    servers[#servers + 1] = f
    return f
  end
  setup(function()
    layout = fx.layout()
    tmp = proc.tmpdir("crater-remote-faults")
  end)
  teardown(function()
    for _, f in ipairs(servers) do f:stop() end
    if tmp then proc.rmdir(tmp) end
  end)

  it("corrupt-blob: same size, wrong bytes; caught by the digest check in the content store", function()
    local f = fake{}
    local c = client(f)
    local items = items_for("busybox", tmp .. "/corrupt")
    proc.check("mkdir -p " .. proc.quote(tmp .. "/corrupt"))
    local res = c:fetch_blobs("corrupt-blob/busybox", items)
    assert.is_true(res[1].ok, res[1].err)
    assert.are_not.equal(items[1].digest, file_digest(items[1].path))
    c:close()
  end)

  it("short-blob and long-blob are data_loss, also without Content-Length", function()
    for _, chunked in ipairs({ false, true }) do
      local f = fake{ chunked = chunked }
      local c = client(f)
      local d = tmp .. "/size-" .. tostring(chunked)
      proc.check("mkdir -p " .. proc.quote(d))
      local l = fx.layers("busybox")[1]
      local res = c:fetch_blobs("short-blob/busybox", { { digest = l.digest, size = l.size, path = d .. "/s" } })
      assert.equals("data_loss", res[1].kind, res[1].err)
      assert.matches("size mismatch", res[1].err)
      res = c:fetch_blobs("long-blob/busybox", { { digest = l.digest, size = l.size, path = d .. "/l" } })
      assert.equals("data_loss", res[1].kind, res[1].err)
      c:close()
    end
  end)

  it("reset-mid-blob: resumes with Range and gets the right bytes", function()
    local f = fake{}
    local c = client(f)
    local d = tmp .. "/reset"
    proc.check("mkdir -p " .. proc.quote(d))
    local items = items_for("multilayer", d)
    local res = c:fetch_blobs("reset-mid-blob/multilayer", items, { parallel = 3 })
    for i, it in ipairs(items) do
      assert.is_true(res[i].ok, res[i].err)
      assert.equals(it.digest, file_digest(it.path))
    end
    assert.is_true(c:stats().resumes >= 1)
    local ranged = 0
    for _, q in ipairs(f:requests()) do
      if q.method == "GET" and q.range and q.status == 206 then ranged = ranged + 1 end
    end
    assert.is_true(ranged >= 1)
    c:close()
  end)

  it("503-then-ok is retried", function()
    local f = fake{ fail_count = 2, retry_after = 0 }
    local c = client(f)
    local d = assert(c:resolve("503-then-ok/busybox", "latest"))
    assert.equals(fx.manifest_digest("busybox"), d.digest)
    assert.is_true(c:stats().retries >= 2)
    local n503 = 0
    for _, q in ipairs(f:requests()) do if q.status == 503 then n503 = n503 + 1 end end
    assert.equals(2, n503)
    -- without retries it is unavailable
    local c0 = client(f, { retries = 0 })
    local ok, msg, kind = c0:resolve("503-then-ok/multilayer", "latest")
    assert.is_nil(ok)
    assert.equals("unavailable", kind)
    assert.matches("HTTP 503", msg)
    c0:close()
    c:close()
  end)

  it("429 honours Retry-After", function()
    local f = fake{ fail_count = 1, retry_after = 1 }
    local c = client(f)
    local t0 = core.monotonic()
    assert.truthy(c:resolve("429/busybox", "latest"))
    assert.is_true(core.monotonic() - t0 >= 0.95)
    c:close()
  end)

  it("redirect-blob: the other host never gets the Authorization header", function()
    local f = fake{ user = "u", password = "pw" }
    local c = client(f, { username = "u", password = "pw" })
    local d = tmp .. "/redir"
    proc.check("mkdir -p " .. proc.quote(d))
    local items = items_for("busybox", d)
    local res = c:fetch_blobs("basic/redirect-blob/busybox", items)
    assert.is_true(res[1].ok, res[1].err)
    assert.equals(items[1].digest, file_digest(items[1].path))
    local reds = f:redirects()
    assert.is_true(#reds >= 1)
    for _, q in ipairs(reds) do assert.is_false(q.auth) end
    local authed = false
    for _, q in ipairs(f:requests()) do
      if q.listener == "main" and q.status == 307 and q.auth then authed = true end
    end
    assert.is_true(authed)
    c:close()
  end)

  it("bearer: one token per scope, cached across concurrent fetches", function()
    local f = fake{}
    local c = client(f)
    local d = tmp .. "/bearer"
    proc.check("mkdir -p " .. proc.quote(d))
    local body = assert(c:fetch_manifest("bearer/multilayer", "latest"))
    assert.truthy(body)
    local items = items_for("multilayer", d)
    local res = c:fetch_blobs("bearer/multilayer", items, { parallel = 5 })
    for i, it in ipairs(items) do
      assert.is_true(res[i].ok, res[i].err)
      assert.equals(it.digest, file_digest(it.path))
    end
    assert.same({ ["repository:bearer/multilayer:pull"] = 1 }, f:tokens())
    assert.equals(1, c:stats().token_requests)
    -- another repository is another scope: one more token
    assert.truthy(c:resolve("bearer/busybox", "latest"))
    assert.equals(2, c:stats().token_requests)
    c:close()
  end)

  it("bearer: concurrent first requests share one token", function()
    local f = fake{}
    local c = client(f)
    local d = tmp .. "/bearer-cold"
    proc.check("mkdir -p " .. proc.quote(d))
    local items = items_for("multilayer", d)
    local res = c:fetch_blobs("bearer/multilayer", items, { parallel = 5 })
    for i in ipairs(items) do assert.is_true(res[i].ok, res[i].err) end
    assert.equals(1, c:stats().token_requests)
    assert.same({ ["repository:bearer/multilayer:pull"] = 1 }, f:tokens())
    c:close()
  end)

  it("bearer with Basic credentials at the realm; wrong ones are permission_denied", function()
    local f = fake{ user = "alice", password = "pw1" }
    local c = client(f, { username = "alice", password = "pw1" })
    assert.truthy(c:resolve("bearer/busybox", "latest"))
    c:close()
    c = client(f, { username = "alice", password = "bad-secret" })
    local ok, msg, kind = c:resolve("bearer/busybox", "latest")
    assert.is_nil(ok)
    assert.equals("permission_denied", kind)
    assert.matches("token", msg)
    assert.is_nil(msg:find("bad-secret", 1, true))
    c:close()
  end)

  it("basic: credentials work, wrong or missing ones are permission_denied", function()
    local f = fake{ user = "bob", password = "pw2" }
    local c = client(f, { username = "bob", password = "pw2" })
    assert.truthy(c:resolve("basic/busybox", "latest"))
    c:close()
    c = client(f, { username = "bob", password = "nope-nope" })
    local ok, msg, kind = c:resolve("basic/busybox", "latest")
    assert.equals("permission_denied", kind)
    assert.matches("credentials rejected", msg)
    assert.is_nil(msg:find("nope-nope", 1, true))
    c:close()
    c = client(f)
    ok, msg, kind = c:resolve("basic/busybox", "latest")
    assert.is_nil(ok)
    assert.equals("permission_denied", kind)
    assert.matches("no credentials", msg)
    c:close()
  end)

  it("huge-manifest is refused; schema1 comes back with its media type", function()
    local f = fake{}
    local c = client(f)
    local ok, msg, kind = c:fetch_manifest("huge-manifest/busybox", "latest")
    assert.is_nil(ok)
    assert.equals("resource_exhausted", kind)
    assert.matches("limit", msg)
    local body, mt = c:fetch_manifest("schema1/busybox", "latest")
    assert.truthy(body, mt)
    assert.equals("application/vnd.docker.distribution.manifest.v1+prettyjws", mt)
    c:close()
  end)

  it("an error in on_progress cancels and raises after cleanup", function()
    local f = fake{}
    local c = client(f)
    local d = tmp .. "/cancel"
    proc.check("mkdir -p " .. proc.quote(d))
    assert.has_error(function()
      c:fetch_blobs("multilayer", items_for("multilayer", d), {
        on_progress = function() error("stop here") end,
      })
    end)
    assert.is_true(c:ping())
    c:close()
  end)
end)
