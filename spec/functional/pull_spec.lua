-- Functional: `crater pull` / `push` / `image ...` against the real
-- docker-registry (plain, TLS via hosts config, htpasswd basic auth) and
-- the fault-injecting fake registry.  Runs the real binary.
local proc = require "support.proc"
local cli = require "support.cli"
local json = require "crater.json"
local registry = require "support.registry"
local fx = require "support.fixtures"

local function skip_reason() return cli.missing_tools { "docker-registry" } end
local decode_lines = cli.json_lines

describe("crater pull (functional)", function()
  local why = skip_reason()
  if why then
    it("runs", function() pending(why) end)
    return
  end

  local reg, env
  setup(function()
    reg = registry.start {}
    fx.push(reg, "busybox", "library/busybox:latest")
    fx.push(reg, "multilayer", "test/multilayer:1")
    fx.push(reg, "multiarch", "test/multiarch:1")
  end)
  teardown(function() if reg then reg:stop() end end)
  before_each(function() env = cli.env() end)
  after_each(function() if env and env.cleanup then env:cleanup() end end)

  it("pulls with --no-unpack, records the image and labels the graph", function()
    local ref = reg.host .. "/library/busybox:latest"
    local r = env:crater { "pull", "--plain-http", "--no-unpack", ref }
    assert.equal(0, r.code, r.stderr)
    r = env:crater { "--format", "json", "image", "ls" }
    assert.equal(0, r.code, r.stderr)
    local list = assert(json.decode(r.stdout))
    assert.equal(1, #list)
    assert.equal(ref, list[1].name)
    assert.equal(fx.manifest_digest("busybox"), list[1].digest)
    r = env:crater { "--format", "json", "content", "label", fx.manifest_digest("busybox") }
    local labels = assert(json.decode(r.stdout))
    assert.equal(fx.config_digest("busybox"), labels["containerd.io/gc.ref.content.config"])
    assert.equal(fx.layers("busybox")[1].digest, labels["containerd.io/gc.ref.content.l.0"])
    assert.equal("library/busybox", labels["containerd.io/distribution.source." .. reg.host])
  end)

  it("emits JSON progress events with --format json", function()
    local r = env:crater { "--format", "json", "pull", "--plain-http", "--no-unpack", reg.host .. "/test/multilayer:1" }
    assert.equal(0, r.code, r.stderr)
    local evs = decode_lines(r.stdout)
    assert.equal("done", evs[#evs].event)
    local done = 0
    for _, e in ipairs(evs) do if e.event == "progress" and e.state == "done" then done = done + 1 end end
    assert.is_true(done >= 6) -- config + 5 layers
  end)

  it("chooses platforms from an index", function()
    local r = env:crater { "--format", "json", "pull", "--plain-http", "--no-unpack", "--platform", "linux/arm64",
      reg.host .. "/test/multiarch:1" }
    assert.equal(0, r.code, r.stderr)
    local evs = decode_lines(r.stdout)
    assert.equal("linux/arm64", evs[#evs].image.manifests[1].platform)
    assert.equal(1, #evs[#evs].image.manifests)
    r = env:crater { "--format", "json", "pull", "--plain-http", "--no-unpack", "--all-platforms",
      reg.host .. "/test/multiarch:1" }
    assert.equal(0, r.code, r.stderr)
    evs = decode_lines(r.stdout)
    assert.equal(3, #evs[#evs].image.manifests)
    r = env:crater { "pull", "--plain-http", "--no-unpack", "--platform", "linux/s390x", reg.host .. "/test/multiarch:1" }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("no manifest for platform linux/s390x", 1, true), r.stderr)
  end)

  it("round-trips: pull -> push to another repo -> pull by digest gives identical digests", function()
    local src = reg.host .. "/test/multilayer:1"
    assert.equal(0, env:crater { "pull", "--plain-http", "--no-unpack", src }.code)
    local r = env:crater { "push", "--plain-http", src, reg.host .. "/copy/multilayer:2" }
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("mounted", 1, true))
    local env2 = cli.env()
    r = env2:crater { "pull", "--plain-http", "--no-unpack", reg.host .. "/copy/multilayer@" .. fx.manifest_digest("multilayer") }
    assert.equal(0, r.code, r.stderr)
    r = env2:crater { "--format", "json", "image", "inspect", reg.host .. "/copy/multilayer@" .. fx.manifest_digest("multilayer") }
    local info = assert(json.decode(r.stdout))
    assert.equal(fx.manifest_digest("multilayer"), info.target.digest)
    for i, l in ipairs(fx.layers("multilayer")) do assert.equal(l.digest, info.manifests[1].layers[i].digest) end
    if env2.cleanup then env2:cleanup() end
  end)

  it("unpacks by default into chain-id snapshots and skips them on a re-pull", function()
    local ref = reg.host .. "/test/multilayer:1"
    local r = env:crater { "pull", "--plain-http", ref }
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("unpacked linux/", 1, true), r.stdout)
    r = env:crater { "pull", "--plain-http", ref }
    assert.equal(0, r.code, r.stderr)
    local n = 0
    for _ in r.stdout:gmatch("already unpacked") do n = n + 1 end
    assert.equal(5, n)
    r = env:crater { "--format", "json", "image", "usage", ref }
    local u = assert(json.decode(r.stdout))
    assert.is_true(u[1].unpacked_size > 0)
  end)

  it("native: streams the first layer into its real snapshot while downloading, the rest after", function()
    local ref = reg.host .. "/test/multilayer:1"
    local r = env:crater { "--format", "json", "pull", "--plain-http", "--snapshotter", "native", ref }
    assert.equal(0, r.code, r.stderr)
    local evs = decode_lines(r.stdout)
    local u = evs[#evs].image.unpacked
    assert.equal("native", u.snapshotter)
    assert.equal(1, u.streamed, r.stdout)
    -- same chain as an overlayfs pull, every layer committed, no scratch left
    local env2 = cli.env()
    local r2 = env2:crater { "--format", "json", "pull", "--plain-http", "--snapshotter", "overlayfs", ref }
    assert.equal(0, r2.code, r2.stderr)
    local evs2 = decode_lines(r2.stdout)
    assert.equal(evs2[#evs2].image.unpacked.chain_id, u.chain_id)
    if env2.cleanup then env2:cleanup() end
    r = env:crater { "--format", "json", "snapshot", "ls", "--snapshotter", "native" }
    assert.equal(0, r.code, r.stderr)
    local snaps = assert(json.decode(r.stdout))
    local committed = 0
    for _, sn in ipairs(snaps) do
      assert.falsy(tostring(sn.name or sn.key):find("extract-", 1, true), r.stdout)
      if sn.kind == "committed" then committed = committed + 1 end
    end
    assert.equal(5, committed, r.stdout)
    -- a busybox pull (one layer) into a fresh root streams its only layer
    local env3 = cli.env()
    r = env3:crater { "--format", "json", "pull", "--plain-http", "--snapshotter", "native",
      reg.host .. "/library/busybox:latest" }
    if env3.cleanup then env3:cleanup() end
    assert.equal(0, r.code, r.stderr)
    evs = decode_lines(r.stdout)
    assert.equal(1, evs[#evs].image.unpacked.streamed, r.stdout)
  end)

  it("refuses --plain-http for a non-local host", function()
    local r = env:crater { "pull", "--plain-http", "example.com/x:1" }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("plain_http = true", 1, true))
  end)

  it("rejects invalid references with exit 1 and a clear message", function()
    local r = env:crater { "pull", "Busybox" }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("must be lowercase", 1, true))
    r = env:crater { "pull", "--format", "json", "Busybox" }
    assert.equal(1, r.code)
    local e = assert(json.decode(r.stderr), r.stderr)
    assert.equal("invalid_argument", e.kind)
    assert.truthy(e.error:find("must be lowercase", 1, true))
  end)

  it("prints failures as JSON with their kind under --format json, exit codes unchanged", function()
    -- not found (exit 1), before or after the command
    for _, argv in ipairs {
      { "--format", "json", "image", "inspect", "nope:1" },
      { "image", "inspect", "--format", "json", "nope:1" },
    } do
      local r = env:crater(argv)
      assert.equal(1, r.code)
      local e = assert(json.decode(r.stderr), r.stderr)
      assert.equal("not_found", e.kind)
      assert.truthy(e.error:find("nope:1", 1, true))
    end
    -- a usage error: exit 2, kind invalid_argument
    local r = env:crater { "--format", "json", "image", "frobnicate" }
    assert.equal(2, r.code)
    local e = assert(json.decode(r.stderr), r.stderr)
    assert.equal("invalid_argument", e.kind)
    -- for people: the text form
    r = env:crater { "image", "inspect", "nope:1" }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("^crater: image "), r.stderr)
    -- a registry that is not there: unavailable
    r = env:crater { "--format", "json", "pull", "--plain-http", "--no-unpack", "127.0.0.1:9/x/y:1" }
    assert.equal(1, r.code)
    e = assert(json.decode(r.stderr:match("([^\n]+)\n*$") or ""), r.stderr)
    assert.equal("unavailable", e.kind, r.stderr)
  end)
end)

describe("crater pull against TLS and basic auth registries", function()
  local why = skip_reason()
  if why then it("runs", function() pending(why) end) return end

  it("uses the CA from the hosts config and credentials from docker config.json", function()
    local reg = registry.start { tls = true, auth = { user = "alice", password = "s3cret-pw" } }
    finally(function() reg:stop() end)
    fx.push(reg, "busybox", "library/busybox:latest")
    local env = cli.env()
    local cfg = env:file("config.lua", string.format('return { hosts = { [%q] = { ca_file = %q } } }', reg.host, reg.ca_file))
    local home = env.dir .. "/home"
    proc.check("mkdir -p " .. proc.quote(home .. "/.docker"))
    proc.write_file(home .. "/.docker/config.json", json.encode { auths = { [reg.host] = {
      auth = require("crater.auth").base64_encode("alice:s3cret-pw") } } })
    local r = env:crater({ "pull", "--config", cfg, "--no-unpack", reg.host .. "/library/busybox:latest" },
      { env = { HOME = home, DOCKER_CONFIG = "" } })
    assert.equal(0, r.code, r.stderr)
    assert.falsy((r.stdout .. r.stderr):find("s3cret-pw", 1, true))
    -- without credentials: refused, and the password never shows up
    r = env:crater({ "pull", "--config", cfg, "--no-unpack", reg.host .. "/library/busybox:latest" },
      { env = { HOME = env.dir, DOCKER_CONFIG = env.dir } })
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("^crater: pull "), r.stderr)
    -- with --format json the failure carries its kind, as one JSON object on stderr
    r = env:crater({ "--format", "json", "pull", "--config", cfg, "--no-unpack", reg.host .. "/library/busybox:latest" },
      { env = { HOME = env.dir, DOCKER_CONFIG = env.dir } })
    assert.equal(1, r.code)
    local lines = {}
    for l in r.stderr:gmatch("[^\n]+") do lines[#lines + 1] = l end
    local e = assert(json.decode(lines[#lines]), r.stderr)
    assert.equal("permission_denied", e.kind, r.stderr) -- HTTP 401 without credentials
    assert.truthy(e.error:find("pull " .. reg.host .. "/library/busybox:latest", 1, true), r.stderr)
    assert.falsy(r.stderr:find("crater: ", 1, true), r.stderr)
    if env.cleanup then env:cleanup() end
  end)
end)

describe("crater pull against the fault-injecting registry", function()
  local why = skip_reason()
  if why then it("runs", function() pending(why) end) return end
  local fake, env
  setup(function() fake = registry.fake { layout = fx.layout(), fail_count = 2, retry_after = 0 } end)
  teardown(function() if fake then fake:stop() end end)
  before_each(function() env = cli.env() end)

  local function pull(repo, extra)
    local args = { "--format", "json", "pull", "--plain-http", "--no-unpack" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    args[#args + 1] = fake.host .. "/" .. repo
    return env:crater(args)
  end

  it("corrupt blob: fails, commits nothing, records no image", function()
    local r = pull("corrupt-blob/busybox:latest")
    assert.equal(1, r.code)
    local ls = assert(json.decode(env:crater { "--format", "json", "image", "ls" }.stdout))
    assert.equal(0, #ls)
    local c = env:crater { "--format", "json", "content", "ls" }
    assert.falsy(c.stdout:find(fx.layers("busybox")[1].digest, 1, true))
    assert.falsy(c.stdout:find(fx.manifest_digest("busybox"), 1, true))
  end)

  it("reset mid-blob: resumes", function()
    assert.equal(0, pull("reset-mid-blob/busybox:latest").code)
  end)

  it("503 then ok: retried", function()
    assert.equal(0, pull("503-then-ok/busybox:latest").code)
  end)

  it("redirect: no credentials forwarded", function()
    local r = env:crater { "pull", "--plain-http", "--no-unpack", "--user", "u:p", fake.host .. "/redirect-blob/busybox:latest" }
    assert.equal(0, r.code, r.stderr)
    for _, q in ipairs(fake:redirects()) do assert.is_false(q.auth) end
  end)

  it("bearer realm works", function()
    assert.equal(0, pull("bearer/busybox:latest").code)
  end)

  for _, c in ipairs {
    { "schema1/busybox:latest", "schema 1 is not supported" },
    { "huge-manifest/busybox:latest", "4194304" },
    { "dup-keys/busybox:latest", "not valid JSON" },
    { "wrong-content-type/busybox:latest", "media type" },
    { "short-blob/busybox:latest", "" },
    { "long-blob/busybox:latest", "" },
  } do
    it("refuses " .. c[1], function()
      local r = pull(c[1])
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find(c[2], 1, true), r.stderr)
      local ls = assert(json.decode(env:crater { "--format", "json", "image", "ls" }.stdout))
      assert.equal(0, #ls)
    end)
  end
end)
