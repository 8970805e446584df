-- Functional: docker credential helpers (config.json `credHelpers` and
-- `credsStore`) with the real crater binary against a real docker-registry
-- (TLS + htpasswd Basic auth).  The helper is a fake
-- `docker-credential-fake` sh script on a PATH dir of its own; what it
-- answers is set per test in a `mode` file next to it, and it logs the
-- server URL it was asked about (its stdin) and its arguments.
local proc = require "support.proc"
local cli = require "support.cli"
local json = require "crater.json"
local registry = require "support.registry"
local fx = require "support.fixtures"

local USER, PASSWORD = "alice", "s3cret-helper-pw"
local WRONG = "wr0ng-helper-pw"

local FAKE = [[#!/bin/sh
# docker-credential-fake: the docker credential helper protocol, for specs.
dir=$(dirname "$0")
url=$(cat)
printf '%s\n' "$url" >>"$dir/stdin.log"
printf '%s\n' "$*" >>"$dir/args.log"
[ "$1" = get ] || { echo "unsupported action $1"; exit 1; }
case $(cat "$dir/mode") in
ok) printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "$url" "$(cat "$dir/user")" "$(cat "$dir/secret")" ;;
none) echo "credentials not found in native keychain"; exit 1 ;;
fail) echo "error getting credentials: the keychain is locked"; exit 1 ;;
token) printf '{"ServerURL":"%s","Username":"<token>","Secret":"%s"}\n' "$url" "$(cat "$dir/secret")" ;;
hang) sleep 60 & echo $! >"$dir/child.pid"; wait ;;
esac
]]

local function last_json(text)
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return json.decode(lines[#lines] or "")
end

describe("crater pull with docker credential helpers", function()
  local why = cli.missing_tools { "docker-registry", "htpasswd" }
  if why then it("runs", function() pending(why) end) return end

  local reg, env, bin, home, cfg, ref
  setup(function()
    reg = registry.start { tls = true, auth = { user = USER, password = PASSWORD } }
    fx.push(reg, "busybox", "library/busybox:latest")
  end)
  teardown(function() if reg then reg:stop() end end)
  before_each(function()
    env = cli.env()
    bin = env.dir .. "/bin"
    home = env.dir .. "/home"
    proc.check("mkdir -p " .. proc.quote(bin) .. " " .. proc.quote(home .. "/.docker"))
    proc.write_file(bin .. "/docker-credential-fake", FAKE, "0755")
    proc.write_file(bin .. "/user", USER)
    proc.write_file(bin .. "/secret", PASSWORD)
    proc.write_file(bin .. "/mode", "ok")
    cfg = env:file("config.lua", string.format("return { hosts = { [%q] = { ca_file = %q } } }", reg.host, reg.ca_file))
    ref = reg.host .. "/library/busybox:latest"
  end)
  after_each(function() if env and env.cleanup then env:cleanup() end end)

  local function docker_config(doc)
    proc.write_file(home .. "/.docker/config.json", json.encode(doc))
  end
  local function pull(extra_env, format_json)
    local e = { HOME = home, DOCKER_CONFIG = "", PATH = bin .. ":" .. os.getenv("PATH") }
    for k, v in pairs(extra_env or {}) do e[k] = v end
    local args = { "pull", "--config", cfg, "--no-unpack", ref }
    if format_json then table.insert(args, 1, "--format"); table.insert(args, 2, "json") end
    return env:crater(args, { env = e })
  end
  local function log(name) return proc.read_file(bin .. "/" .. name) or "" end
  local function no_secret(r)
    for _, s in ipairs { PASSWORD, WRONG } do
      assert.falsy((r.stdout .. r.stderr):find(s, 1, true), "secret in the output:\n" .. r.stdout .. r.stderr)
    end
  end

  it("runs credHelpers[host] and sends the host as ServerURL on stdin", function()
    -- the per-registry helper wins over (wrong) inline credentials
    docker_config { credHelpers = { [reg.host] = "fake" },
      auths = { [reg.host] = { auth = require("crater.auth").base64_encode(USER .. ":" .. WRONG) } } }
    local r = pull(nil, true)
    assert.equal(0, r.code, r.stderr)
    no_secret(r)
    assert.equal(reg.host .. "\n", log("stdin.log"))
    assert.equal("get\n", log("args.log"))
    r = env:crater { "--format", "json", "image", "ls" }
    assert.equal(ref, assert(json.decode(r.stdout))[1].name)
    no_secret(r)
  end)

  it("runs credsStore for a host without its own helper", function()
    docker_config { credsStore = "fake", credHelpers = { ["other.example"] = "nope" } }
    local r = pull()
    assert.equal(0, r.code, r.stderr)
    no_secret(r)
    assert.equal(reg.host .. "\n", log("stdin.log"))
  end)

  it("goes anonymous when the helper has no credentials: 401 without credentials", function()
    docker_config { credsStore = "fake" }
    proc.write_file(bin .. "/mode", "none")
    local r = pull(nil, true)
    assert.equal(1, r.code)
    local e = assert(last_json(r.stderr), r.stderr)
    assert.equal("permission_denied", e.kind, r.stderr)
    assert.truthy(e.error:find("no credentials", 1, true), e.error)
    assert.truthy(e.error:find(reg.host, 1, true), e.error)
    assert.equal(reg.host .. "\n", log("stdin.log"))
  end)

  it("refuses a wrong password from the helper without showing it", function()
    docker_config { credHelpers = { [reg.host] = "fake" } }
    proc.write_file(bin .. "/secret", WRONG)
    local r = pull(nil, true)
    assert.equal(1, r.code)
    no_secret(r)
    local e = assert(last_json(r.stderr), r.stderr)
    assert.equal("permission_denied", e.kind, r.stderr)
    assert.truthy(e.error:find("credentials rejected", 1, true), e.error)
    r = pull()
    assert.equal(1, r.code)
    no_secret(r)
  end)

  it("reports a failing helper, naming it and the host", function()
    docker_config { credHelpers = { [reg.host] = "fake" } }
    proc.write_file(bin .. "/mode", "fail")
    local r = pull(nil, true)
    assert.equal(1, r.code)
    local e = assert(last_json(r.stderr), r.stderr)
    assert.equal("unavailable", e.kind, r.stderr)
    assert.truthy(e.error:find("docker-credential-fake", 1, true), e.error)
    assert.truthy(e.error:find("for " .. reg.host, 1, true), e.error)
    assert.truthy(e.error:find("the keychain is locked", 1, true), e.error)
    -- an identity token is refused clearly, and not shown
    proc.write_file(bin .. "/mode", "token")
    r = pull(nil, true)
    assert.equal(1, r.code)
    no_secret(r)
    e = assert(last_json(r.stderr), r.stderr)
    assert.equal("not_implemented", e.kind, r.stderr)
    assert.truthy(e.error:find("identity token", 1, true), e.error)
    -- a helper that is not installed
    docker_config { credsStore = "not-installed" }
    r = pull(nil, true)
    assert.equal(1, r.code)
    e = assert(last_json(r.stderr), r.stderr)
    assert.equal("failed_precondition", e.kind, r.stderr)
    assert.truthy(e.error:find("docker-credential-not-installed not found in PATH", 1, true), e.error)
  end)

  it("kills a helper that hangs after the timeout, with what it started", function()
    docker_config { credHelpers = { [reg.host] = "fake" } }
    proc.write_file(bin .. "/mode", "hang")
    local t0 = os.time()
    local r = pull({ CRATER_CREDENTIAL_HELPER_TIMEOUT = "1" }, true)
    assert.equal(1, r.code)
    assert.is_true(os.time() - t0 < 15, "took " .. (os.time() - t0) .. " s")
    local e = assert(last_json(r.stderr), r.stderr)
    assert.equal("deadline_exceeded", e.kind, r.stderr)
    assert.truthy(e.error:find("docker-credential-fake", 1, true), e.error)
    assert.truthy(e.error:find(reg.host, 1, true), e.error)
    assert.truthy(e.error:find("killed", 1, true), e.error)
    -- asked once: the failure is remembered for the rest of the pull
    assert.equal(reg.host .. "\n", log("stdin.log"))
    local pid = tonumber(log("child.pid"))
    assert.truthy(pid, "the fake did not record its child")
    assert.is_true(proc.wait_gone(pid, 5), "the helper's child survived")
  end)
end)
