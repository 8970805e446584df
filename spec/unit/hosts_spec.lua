-- crater.hosts: endpoints, mirrors, capabilities, plain HTTP rules, config.
local hosts = require "crater.hosts"

local function tmpfile(text)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb")); f:write(text); f:close()
  return p
end

describe("crater.hosts", function()
  local nodocker = { docker_config = false }

  it("maps docker.io to registry-1.docker.io over TLS", function()
    local eps = assert(hosts.endpoints("docker.io", "pull", nodocker))
    assert.equal(1, #eps)
    assert.equal("registry-1.docker.io", eps[1].host)
    assert.is_false(eps[1].plain_http)
  end)

  it("uses plain HTTP only where listed or for localhost with the flag", function()
    local cfg = { hosts = { ["reg.lan:5000"] = { plain_http = true } } }
    assert.is_true(hosts.endpoints("reg.lan:5000", "pull", { config = cfg, docker_config = false })[1].plain_http)
    assert.is_false(hosts.endpoints("127.0.0.1:5000", "pull", nodocker)[1].plain_http)
    assert.is_true(hosts.endpoints("127.0.0.1:5000", "pull", { plain_http = true, docker_config = false })[1].plain_http)
    assert.is_true(hosts.endpoints("localhost:5000", "push", { plain_http = true, docker_config = false })[1].plain_http)
    local eps, err, kind = hosts.endpoints("example.com", "pull", { plain_http = true, docker_config = false })
    assert.is_nil(eps)
    assert.equal("invalid_argument", kind)
    assert.truthy(err:find("plain_http = true", 1, true))
  end)

  it("tries mirrors in order with capabilities", function()
    local cfg = { hosts = { ["docker.io"] = { mirrors = {
      { host = "m1.lan:5000", plain_http = true },
      { host = "https://m2.lan/", capabilities = { "pull" } },
      { host = "m3.lan", capabilities = { "push" } },
    } } } }
    local eps = assert(hosts.endpoints("docker.io", "pull", { config = cfg, docker_config = false }))
    assert.same({ "m1.lan:5000", "m2.lan", "registry-1.docker.io" }, { eps[1].host, eps[2].host, eps[3].host })
    assert.is_true(eps[1].mirror)
    assert.is_true(eps[1].plain_http)
    assert.is_false(eps[3].mirror)
    eps = assert(hosts.endpoints("docker.io", "resolve", { config = cfg, docker_config = false }))
    assert.same({ "m1.lan:5000", "registry-1.docker.io" }, { eps[1].host, eps[2].host })
    eps = assert(hosts.endpoints("docker.io", "push", { config = cfg, docker_config = false }))
    assert.same({ "m3.lan", "registry-1.docker.io" }, { eps[1].host, eps[2].host })
    cfg.hosts["docker.io"].skip_upstream = true
    eps = assert(hosts.endpoints("docker.io", "pull", { config = cfg, docker_config = false }))
    assert.equal(2, #eps)
    local none, _, kind = hosts.endpoints("docker.io", "push", { config = { hosts = { ["docker.io"] = {
      skip_upstream = true, mirrors = { { host = "x" } } } } }, docker_config = false })
    assert.is_nil(none)
    assert.equal("failed_precondition", kind)
  end)

  it("carries TLS settings and credentials into remote options", function()
    local cfg = { hosts = { ["reg:443"] = { ca_file = "/ca.pem", cert_file = "/c.pem", key_file = "/k.pem",
      insecure_skip_verify = true, username = "u", password = "p" } } }
    local ep = assert(hosts.endpoints("reg:443", "pull", { config = cfg, docker_config = false }))[1]
    local o = hosts.remote_options(ep)
    assert.equal("/ca.pem", o.ca_file)
    assert.equal("/c.pem", o.cert_file)
    assert.equal("/k.pem", o.key_file)
    assert.is_true(o.insecure_skip_verify)
    assert.equal("u", o.username)
    assert.equal("p", o.password)
    assert.falsy(hosts.describe(ep):find("p", #"https://reg:443", true))
  end)

  it("knows local hosts", function()
    for _, h in ipairs { "localhost", "localhost:5000", "127.0.0.1:1", "127.1.2.3", "[::1]:5000" } do
      assert.is_true(hosts.is_local(h), h)
    end
    for _, h in ipairs { "example.com", "10.0.0.1:5000", "localhost.evil.com" } do
      assert.is_false(hosts.is_local(h), h)
    end
  end)

  it("loads and validates config files", function()
    local p = tmpfile('return { hosts = { ["127.0.0.1:5000"] = { plain_http = true } } }')
    local cfg = assert(hosts.load_config(p))
    assert.is_true(cfg.hosts["127.0.0.1:5000"].plain_http)
    os.remove(p)
    local bad = {
      'return { hosts = { x = { plain_http = "yes" } } }',
      'return { hosts = { x = { bogus = 1 } } }',
      'return { hosts = { x = { cert_file = "/c" } } }',
      'return { hosts = { x = { mirrors = { { plain_http = true } } } } }',
      'return { hosts = { x = { mirrors = { { host = "m", capabilities = { "fly" } } } } } }',
      'return 42',
      'error("boom")',
      'return {',
      'os.execute("true") return {}',
    }
    for _, text in ipairs(bad) do
      p = tmpfile(text)
      local c, err, kind = hosts.load_config(p)
      assert.is_nil(c, text)
      assert.equal("invalid_argument", kind)
      assert.truthy(err:find("config", 1, true))
      os.remove(p)
    end
    local c, _, kind = hosts.load_config("/nonexistent/crater.lua")
    assert.is_nil(c)
    assert.equal("not_found", kind)
    -- what a config does to the libraries it sees stays in it (a daemon
    -- worker loads it for command after command)
    p = tmpfile('string.rep = nil; table.concat = nil; return { hosts = {} }')
    assert(hosts.load_config(p))
    os.remove(p)
    assert.equal("ab", string.rep("a", 1) .. "b")
    assert.equal("a,b", table.concat({ "a", "b" }, ","))
  end)
end)
