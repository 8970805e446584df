-- crater.auth: docker credential helpers (credHelpers, credsStore) with a
-- stubbed runner: lookup order, the server URL, the answers of the
-- protocol, failures that name the helper and the host but never the
-- secret.  The last block runs the real runner (core.run) on sh scripts.
local auth = require "crater.auth"
local json = require "crater.json"
local core = require "crater.core"

local SECRET = "hunter2-s3cret"

local function tmpfile(text)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb")); f:write(text); f:close()
  return p
end

-- A runner answering per helper program: answers[prog] = function(url)
-- returning what core.run would.  Records every call.
local function stub(answers)
  local calls = {}
  auth.runner = function(argv, opts)
    calls[#calls + 1] = { argv = argv, stdin = opts.stdin, timeout_ms = opts.timeout_ms }
    local f = answers[argv[1]]
    if not f then return nil, "run " .. argv[1] .. ": No such file or directory", "not_found" end
    return f(opts.stdin)
  end
  return calls
end

local function ok(user, secret)
  return function(url)
    return { code = 0, stdout = json.encode { ServerURL = url, Username = user, Secret = secret }, stderr = "",
      truncated = false }
  end
end

local function none()
  return { code = 1, stdout = "credentials not found in native keychain\n", stderr = "", truncated = false }
end

describe("crater.auth credential helpers", function()
  local real_runner = auth.runner
  local paths = {}
  local function config(doc)
    local p = tmpfile(json.encode(doc))
    paths[#paths + 1] = p
    return p
  end
  before_each(function() auth.clear_cache() end)
  after_each(function()
    auth.runner = real_runner
    auth.clear_cache()
    for _, p in ipairs(paths) do os.remove(p) end
    paths = {}
  end)

  it("parses credHelpers and credsStore", function()
    local h = assert(auth.parse_docker_helpers(json.encode {
      credHelpers = { ["https://Reg.Example.com"] = "ecr-login", ["gcr.io"] = "gcloud", bad = 1 },
      credsStore = "pass" }))
    assert.same({ ["reg.example.com"] = "ecr-login", ["gcr.io"] = "gcloud" }, h.helpers)
    assert.equal("pass", h.store)
    assert.is_nil(auth.parse_docker_helpers("{"))
  end)

  it("runs credHelpers[host] first, then inline auths, then credsStore", function()
    local calls = stub {
      ["docker-credential-per"] = ok("per-user", SECRET),
      ["docker-credential-store"] = ok("store-user", SECRET),
    }
    local p = config {
      credHelpers = { ["a.example:5000"] = "per" },
      auths = { ["a.example:5000"] = { auth = auth.base64_encode("inline-a:x") },
        ["https://b.example"] = { auth = auth.base64_encode("inline-b:y") } },
      credsStore = "store",
    }
    local c = assert(auth.lookup("a.example:5000", nil, { docker_config = p }))
    assert.equal("per-user", c.username)
    assert.equal(SECRET, c.password)
    assert.equal("docker-credential-per", c.source)
    assert.falsy(tostring(c):find(SECRET, 1, true))
    assert.equal("inline-b", assert(auth.lookup("b.example", nil, { docker_config = p })).username)
    assert.equal("store-user", assert(auth.lookup("c.example", nil, { docker_config = p })).username)
    -- the crater config still comes before docker's file
    local cfg = { auths = { ["a.example:5000"] = { username = "cfg", password = "z" } } }
    assert.equal("cfg", auth.lookup("a.example:5000", cfg, { docker_config = p }).username)
    assert.equal(2, #calls)
    assert.same({ "docker-credential-per", "get" }, calls[1].argv)
    assert.equal("a.example:5000", calls[1].stdin)
    assert.same({ "docker-credential-store", "get" }, calls[2].argv)
    assert.equal("c.example", calls[2].stdin)
  end)

  it("asks about Docker Hub as https://index.docker.io/v1/, under any of its key forms", function()
    local calls = stub { ["docker-credential-hub"] = ok("hubby", SECRET) }
    for _, key in ipairs { "https://index.docker.io/v1/", "docker.io", "index.docker.io" } do
      auth.clear_cache()
      local p = config { credHelpers = { [key] = "hub" } }
      assert.equal("hubby", assert(auth.lookup("registry-1.docker.io", nil, { docker_config = p })).username)
    end
    for _, c in ipairs(calls) do assert.equal("https://index.docker.io/v1/", c.stdin) end
    assert.equal(3, #calls)
    assert.equal("https://index.docker.io/v1/", auth.helper_server_url("docker.io"))
    assert.equal("127.0.0.1:5000", auth.helper_server_url("127.0.0.1:5000"))
  end)

  it("treats 'credentials not found' as anonymous, and a host's own helper as final", function()
    local calls = stub {
      ["docker-credential-per"] = none,
      ["docker-credential-store"] = ok("store-user", SECRET),
      ["docker-credential-empty"] = ok("", ""),
    }
    local p = config {
      credHelpers = { ["a.example"] = "per", ["e.example"] = "empty" },
      auths = { ["a.example"] = { auth = auth.base64_encode("inline:x") } },
      credsStore = "store",
    }
    local c, err = auth.lookup("a.example", nil, { docker_config = p })
    assert.is_nil(c)
    assert.is_nil(err)
    c, err = auth.lookup("e.example", nil, { docker_config = p })
    assert.is_nil(c)
    assert.is_nil(err)
    assert.equal(2, #calls) -- neither fell through to the store
  end)

  it("reports failures naming the helper and the host, never the secret", function()
    stub {
      ["docker-credential-broken"] = function()
        return { code = 1, stdout = "error getting credentials: keychain locked\n", stderr = "", truncated = false }
      end,
      ["docker-credential-leaky"] = function()
        return { code = 3, stdout = '{"Username":"u","Secret":"' .. SECRET .. '"}', stderr = SECRET,
          truncated = false }
      end,
      ["docker-credential-garbage"] = function()
        return { code = 0, stdout = "not json " .. SECRET, stderr = "", truncated = false }
      end,
      ["docker-credential-killed"] = function() return { signal = 9, stdout = "", stderr = "", truncated = false } end,
      ["docker-credential-slow"] = function() return nil, "run docker-credential-slow: no answer", "deadline_exceeded" end,
      ["docker-credential-token"] = ok("<token>", SECRET),
    }
    local p = config { credHelpers = {
      ["broken.example"] = "broken", ["leaky.example"] = "leaky", ["garbage.example"] = "garbage",
      ["killed.example"] = "killed", ["slow.example"] = "slow", ["token.example"] = "token",
      ["missing.example"] = "missing", ["evil.example"] = "../../bin/sh",
    } }
    local want = {
      ["broken.example"] = { "unavailable", "status 1: error getting credentials: keychain locked" },
      ["leaky.example"] = { "unavailable", "status 3" },
      ["garbage.example"] = { "unavailable", "not a JSON object" },
      ["killed.example"] = { "unavailable", "signal 9" },
      ["slow.example"] = { "deadline_exceeded", "killed" },
      ["token.example"] = { "not_implemented", "identity token" },
      ["missing.example"] = { "failed_precondition", "docker-credential-missing not found in PATH" },
      ["evil.example"] = { "invalid_argument", "invalid helper name" },
    }
    for host, w in pairs(want) do
      local c, err, kind = auth.lookup(host, nil, { docker_config = p })
      assert.is_nil(c, host)
      assert.equal(w[1], kind, host .. ": " .. tostring(err))
      assert.truthy(err:find(w[2], 1, true), err)
      assert.truthy(err:find(host, 1, true), err)
      assert.truthy(err:find("credHelpers in " .. p, 1, true), err)
      assert.truthy(err:find("docker-credential-", 1, true), err)
      assert.falsy(err:find(SECRET, 1, true), err)
    end
  end)

  it("passes the timeout from opts, the crater config or CRATER_CREDENTIAL_HELPER_TIMEOUT", function()
    local calls = stub { ["docker-credential-s"] = ok("u", "p") }
    local p = config { credsStore = "s" }
    auth.lookup("x.example", nil, { docker_config = p })
    assert.equal(auth.HELPER_TIMEOUT * 1000, calls[1].timeout_ms)
    auth.clear_cache()
    auth.lookup("x.example", { credential_helper_timeout = 2.5 }, { docker_config = p })
    assert.equal(2500, calls[2].timeout_ms)
    auth.clear_cache()
    auth.lookup("x.example", nil, { docker_config = p, helper_timeout = 0.25 })
    assert.equal(250, calls[3].timeout_ms)
    local c, err, kind = auth.lookup("y.example", { credential_helper_timeout = "soon" }, { docker_config = p })
    assert.is_nil(c)
    assert.equal("invalid_argument", kind)
    assert.truthy(err:find("credential_helper_timeout", 1, true))
  end)

  it("caches answers (and failures) per helper and server URL", function()
    local n = 0
    stub {
      ["docker-credential-s"] = function(url) n = n + 1 return ok("u" .. n, "p")(url) end,
      ["docker-credential-f"] = function() n = n + 1 return nil, "x", "deadline_exceeded" end,
    }
    local p = config { credsStore = "s", credHelpers = { ["f.example"] = "f" } }
    assert.equal("u1", auth.lookup("x.example", nil, { docker_config = p }).username)
    assert.equal("u1", auth.lookup("x.example", nil, { docker_config = p }).username)
    assert.equal("u2", auth.lookup("y.example", nil, { docker_config = p }).username)
    assert.is_nil(auth.lookup("f.example", nil, { docker_config = p }))
    local _, _, kind = auth.lookup("f.example", nil, { docker_config = p })
    assert.equal("deadline_exceeded", kind)
    assert.equal(3, n)
  end)

  it("makes hosts.endpoints fail instead of going anonymous when a helper fails", function()
    local hosts = require "crater.hosts"
    stub { ["docker-credential-slow"] = function() return nil, "run: no answer", "deadline_exceeded" end,
      ["docker-credential-s"] = ok("u", SECRET) }
    local p = config { credHelpers = { ["mirror.example"] = "slow" }, credsStore = "s" }
    local cfg = { hosts = { ["reg.example"] = { mirrors = { { host = "mirror.example" } } } } }
    local eps, err, kind = hosts.endpoints("reg.example", "pull", { config = cfg, docker_config = p })
    assert.is_nil(eps)
    assert.equal("deadline_exceeded", kind)
    assert.truthy(err:find("docker-credential-slow", 1, true), err)
    assert.truthy(err:find("mirror.example", 1, true), err)
    eps = assert(hosts.endpoints("other.example", "pull", { config = cfg, docker_config = p }))
    assert.equal("u", eps[1].credential.username)
    assert.falsy(hosts.describe(eps[1]):find(SECRET, 1, true))
  end)

  it("skips helpers with docker_config = false", function()
    local calls = stub {}
    assert.is_nil(auth.lookup("x.example", nil, { docker_config = false }))
    assert.equal(0, #calls)
  end)
end)

describe("core.run (the credential helper runner)", function()
  local dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(core.mkdir_p(dir))
  end)
  teardown(function() core.remove_all(dir) end)

  local function script(name, body)
    local p = dir .. "/" .. name
    local f = assert(io.open(p, "wb")); f:write("#!/bin/sh\n", body, "\n"); f:close()
    assert(core.chmod(p, 493)) -- 0755
    return p
  end

  it("feeds stdin and captures stdout, stderr and the exit code, without a shell", function()
    local p = script("echo", 'read -r url; printf \'{"ServerURL":"%s"}\' "$url"; echo "$1 $#" >&2; exit 4')
    local r = assert(core.run({ p, "get; touch " .. dir .. "/pwned" }, { stdin = "a.example:5000" }))
    assert.equal(4, r.code)
    assert.equal('{"ServerURL":"a.example:5000"}', r.stdout)
    assert.equal("get; touch " .. dir .. "/pwned 1\n", r.stderr)
    assert.is_false(core.exists(dir .. "/pwned"))
    assert.is_false(r.truncated)
  end)

  it("reports a missing program as not_found", function()
    local r, err, kind = core.run { "docker-credential-surely-not-installed-here", "get" }
    assert.is_nil(r)
    assert.equal("not_found", kind)
    assert.truthy(err:find("docker-credential-surely-not-installed-here", 1, true))
  end)

  it("kills a program (and what it started) after timeout_ms", function()
    local p = script("hang", "sleep 30 & echo $! >" .. dir .. "/child; wait")
    local t0 = core.monotonic()
    local r, err, kind = core.run({ p }, { timeout_ms = 300 })
    assert.is_nil(r)
    assert.equal("deadline_exceeded", kind)
    assert.truthy(err:find("300 ms", 1, true), err)
    assert.is_true(core.monotonic() - t0 < 5)
    local f = assert(io.open(dir .. "/child"))
    local pid = tonumber(f:read("*a"))
    f:close()
    assert.is_true(core.wait_pid_gone(pid, 2000))
  end)

  it("caps the output and does not wait for processes left behind", function()
    local r = assert(core.run({ "head", "-c", "100000", "/dev/zero" }, { max_output = 10 }))
    assert.equal(10, #r.stdout)
    assert.is_true(r.truncated)
    local p = script("daemon", "sleep 30 & echo $! >" .. dir .. "/bg; echo done")
    r = assert(core.run({ p }, { timeout_ms = 10000 }))
    assert.equal("done\n", r.stdout)
    local f = assert(io.open(dir .. "/bg"))
    local pid = tonumber(f:read("*a"))
    f:close()
    assert(core.kill(pid, 9))
    assert.is_true(core.wait_pid_gone(pid, 2000))
  end)

  it("survives a program that does not read its stdin", function()
    local r = assert(core.run({ "true" }, { stdin = string.rep("x", 1048576) }))
    assert.equal(0, r.code)
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.run {} end)
    assert.has_error(function() core.run({ "true" }, { timeout_ms = 0 }) end)
    assert.has_error(function() core.run({ "true" }, { stdin = 1 }) end)
    assert.has_error(function() core.run { 1 } end)
  end)
end)
