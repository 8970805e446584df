-- Registries for the distribution specs, started by the specs themselves
-- on 127.0.0.1 and free ports.
--
-- registry.start{} runs Debian's docker-registry (distribution 2.8) with
-- filesystem storage in a temp dir: plain HTTP, TLS with a CA generated
-- here by openssl, and/or htpasswd (bcrypt) Basic auth.
-- registry.fake{} runs spec/support/fakereg.py, the project's own
-- fault-injecting registry (see that file and docs/design/testing.md).
--
-- Every server must be stopped by the spec that started it, in `teardown`
-- or a `finally` (support.proc kills leftovers at exit, as a safety net):
--
--   local registry = require "support.registry"
--   describe("pull", function()
--     local r
--     setup(function() r = registry.start{tls = true, auth = {user = "u", password = "p"}} end)
--     teardown(function() if r then r:stop() end end)
--     ...
--   end)
local proc = require "support.proc"
local cjson = require "cjson"

local M = {}

local q = proc.quote

local function src()
  local s = os.getenv("CRATER_SRC")
  if s and s ~= "" then return s end
  -- spec/support/registry.lua -> repo root
  local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/support/[^/]*$")
  return here or "."
end

-- Runs curl; returns the HTTP status (number) or nil.
local function http_status(url, extra)
  local res = proc.run("curl -s -o /dev/null -w '%{http_code}' --max-time 2 " .. (extra or "") .. " " .. q(url))
  return tonumber(res.stdout:match("%d+"))
end

-- Waits until url answers with one of the wanted statuses, the process
-- dies, or timeout seconds pass.
local function wait_http(url, pid, want, extra, timeout)
  local deadline = os.time() + (timeout or 15)
  local delay = 0.02
  while true do
    local status = http_status(url, extra)
    if status and want[status] then return status end
    if not proc.alive(pid) then return nil, "process exited" end
    if os.time() > deadline then return nil, "timed out (last status " .. tostring(status) .. ")" end
    proc.sleep(delay)
    if delay < 0.25 then delay = delay * 2 end
  end
end

-- Generates a CA and a server certificate for 127.0.0.1/localhost.
local function make_certs(dir)
  local tls = dir .. "/tls"
  local certs = dir .. "/certs.d"  -- what skopeo's --cert-dir wants: *.crt = CA
  proc.check("mkdir -p " .. q(tls) .. " " .. q(certs))
  local ext = tls .. "/server.ext"
  proc.write_file(ext, table.concat({
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "",
  }, "\n"))
  local cmd = table.concat({
    "set -e", "cd " .. q(tls),
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
      " -keyout ca.key -out ca.crt -days 2 -subj '/CN=crater test CA'" ..
      " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
      " -keyout server.key -out server.csr -subj '/CN=127.0.0.1'",
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial" ..
      " -out server.crt -days 2 -extfile server.ext",
    "cp ca.crt " .. q(certs .. "/ca.crt"),
  }, "\n")
  proc.check(cmd)
  return {
    ca_file = certs .. "/ca.crt", cert_dir = certs,
    cert = tls .. "/server.crt", key = tls .. "/server.key",
  }
end

-- Generates a second CA for clients and a client certificate signed by it
-- (EC P-256, extendedKeyUsage clientAuth). The cert and key are also put in
-- certs_dir as client.cert / client.key, the names skopeo's --cert-dir
-- looks for, so fx.push / fx.inspect present them.
local function make_client_certs(dir, certs_dir)
  local tls = dir .. "/client-tls"
  proc.check("mkdir -p " .. q(tls))
  proc.write_file(tls .. "/client.ext", table.concat({
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=clientAuth",
    "",
  }, "\n"))
  proc.check(table.concat({
    "set -e", "cd " .. q(tls),
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
      " -keyout client-ca.key -out client-ca.crt -days 2 -subj '/CN=crater test client CA'" ..
      " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
      " -keyout client.key -out client.csr -subj '/CN=crater test client'",
    "openssl x509 -req -in client.csr -CA client-ca.crt -CAkey client-ca.key -CAcreateserial" ..
      " -out client.cert -days 2 -extfile client.ext",
    "cp client.cert client.key " .. q(certs_dir),
  }, "\n"))
  return {
    client_ca_file = tls .. "/client-ca.crt",
    client_cert = tls .. "/client.cert", client_key = tls .. "/client.key",
  }
end

local Registry = {}
Registry.__index = Registry

---Stops the registry: SIGTERM, wait, SIGKILL if needed; removes its dir.
---Idempotent.
function Registry:stop()
  if self.pid then
    proc.kill(self.pid)
    self.stopped_pid, self.pid = self.pid, nil
  end
  if self.dir and not self.keep then
    proc.rmdir(self.dir)
  elseif self.dir then
    proc.keep(self.dir)
  end
end

---The registry's log (stderr) so far.
function Registry:log()
  return (proc.read_file(self.log_file) or "")
end

---curl TLS arguments (CA, client cert/key) for this registry.
function Registry:tls_args()
  local a = {}
  if self.ca_file then a[#a + 1] = "--cacert " .. q(self.ca_file) end
  if self.client_cert then
    a[#a + 1] = "--cert " .. q(self.client_cert) .. " --key " .. q(self.client_key)
  end
  return table.concat(a, " ")
end

---curl arguments (TLS CA, client cert, credentials) for talking to this registry.
function Registry:curl_args()
  local a = { self:tls_args() }
  if self.user then a[#a + 1] = "-u " .. q(self.user .. ":" .. self.password) end
  return table.concat(a, " ")
end

---Runs curl against path on this registry (with CA and creds); returns the
---proc.run result plus .status (HTTP status) and .body.
---@param path string e.g. "/v2/library/busybox/manifests/latest"
---@param extra? string more curl arguments (already shell-quoted)
function Registry:curl(path, extra)
  local body = os.tmpname()
  local res = proc.run(string.format("curl -s -S -o %s -w '%%{http_code}' %s %s %s",
    q(body), self:curl_args(), extra or "", q(self.url .. path)))
  res.status = tonumber(res.stdout:match("(%d+)$"))
  res.body = proc.read_file(body) or ""
  os.remove(body)
  return res
end

local CONFIG = [[
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
  secret: %s
  headers:
    X-Content-Type-Options: [nosniff]
%s%s]]

---Starts docker-registry on 127.0.0.1:<free port>.
---opts.config_extra is YAML appended to the generated config; opts.keep
---keeps the temp dir (storage, logs) after stop() for debugging.
---opts.client_ca (implies tls) also generates a client CA and a client
---cert/key signed by it, and makes the registry require client certs
---(http.tls.clientcas); r.client_cert / r.client_key are their paths, and
---cert_dir then holds client.cert / client.key next to ca.crt (skopeo).
---@param opts? {tls?:boolean, client_ca?:boolean, auth?:{user:string, password:string},
---  timeout?:number, config_extra?:string, keep?:boolean}
---@return table r {host, url, port, dir, pid, log_file, config, tls, ca_file?,
---  cert_dir?, client_ca_file?, client_cert?, client_key?, user?, password?}
---  with r:stop(), r:log(), r:curl(path, extra), r:curl_args()
function M.start(opts)
  opts = opts or {}
  local dir = proc.tmpdir("crater-registry")
  local use_tls = (opts.tls or opts.client_ca) and true or false
  local ok, r = pcall(function()
    local r = setmetatable({ dir = dir, tls = use_tls, keep = opts.keep }, Registry)
    local tls_yaml, auth_yaml = "", ""
    if use_tls then
      local c = make_certs(dir)
      r.ca_file, r.cert_dir = c.ca_file, c.cert_dir
      tls_yaml = string.format("  tls:\n    certificate: %s\n    key: %s\n", c.cert, c.key)
      if opts.client_ca then
        local cc = make_client_certs(dir, c.cert_dir)
        r.client_ca_file, r.client_cert, r.client_key = cc.client_ca_file, cc.client_cert, cc.client_key
        tls_yaml = tls_yaml .. string.format("    clientcas:\n      - %s\n", cc.client_ca_file)
      end
    end
    if opts.auth then
      r.user, r.password = assert(opts.auth.user), assert(opts.auth.password)
      local htpasswd = dir .. "/htpasswd"
      proc.check("htpasswd -Bbn " .. q(r.user) .. " " .. q(r.password) .. " >" .. q(htpasswd))
      auth_yaml = string.format("auth:\n  htpasswd:\n    realm: crater-test\n    path: %s\n", htpasswd)
    end
    local scheme = use_tls and "https" or "http"
    local secret = proc.check("od -An -N16 -tx1 /dev/urandom | tr -d ' \\n'")
    -- free_port() can race with another process binding the port first;
    -- then the registry exits at once and we try another port.
    local last_err
    for _ = 1, 3 do
      local port = proc.free_port()
      r.port = port
      r.host = "127.0.0.1:" .. port
      r.url = scheme .. "://" .. r.host
      r.config = dir .. "/config.yml"
      proc.write_file(r.config, string.format(CONFIG, dir .. "/data", port, secret, tls_yaml, auth_yaml)
        .. (opts.config_extra or ""))
      local p = proc.spawn("docker-registry serve " .. q(r.config), { dir = dir, name = "registry" })
      r.pid, r.log_file = p.pid, p.stderr
      local status, err = wait_http(r.url .. "/v2/", r.pid, { [200] = true, [401] = true },
        r:tls_args(), opts.timeout or 20)
      if status then return r end
      last_err = string.format("docker-registry on %s did not answer /v2/: %s\n--- log:\n%s",
        r.host, err, r:log() .. (proc.read_file(p.stdout) or ""))
      proc.kill(r.pid)
      r.pid = nil
    end
    error(last_err, 0)
  end)
  if not ok then
    proc.rmdir(dir)
    error(r, 2)
  end
  return r
end

-- --- the fake registry -------------------------------------------------

local Fake = {}
Fake.__index = Fake

---Stops the fake registry (both listeners) and removes its dir. Idempotent.
function Fake:stop()
  if self.pid then
    proc.kill(self.pid)
    self.stopped_pid, self.pid = self.pid, nil
  end
  if self.dir then proc.rmdir(self.dir) end
end

local function get(self, path)
  local res = proc.run("curl -s -S --max-time 10 " .. q(self.url .. path))
  assert(res.ok, "fakereg " .. path .. ": " .. res.stderr)
  return res.stdout
end

local function json_lines(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do t[#t + 1] = cjson.decode(line) end
  return t
end

---Every request seen so far (both listeners), oldest first: tables with
---seq, listener ("main"|"redirect"), method, path, status, auth (bool),
---auth_scheme, range, repo, scenarios, and for blobs sent / fault.
function Fake:requests()
  return json_lines(get(self, "/_debug/requests"))
end

---Requests that reached the redirect listener (redirect-blob scenario).
function Fake:redirects()
  return json_lines(get(self, "/_debug/redirects"))
end

---Tokens issued per scope string (bearer scenario): {[scope] = count}.
function Fake:tokens()
  return cjson.decode(get(self, "/_debug/tokens"))
end

---Forgets requests, failure counters, resets done and tokens.
function Fake:reset()
  local res = proc.run("curl -s -S -X POST --max-time 10 " .. q(self.url .. "/_debug/reset"))
  assert(res.ok, res.stderr)
end

---The server's stderr so far.
function Fake:log()
  return proc.read_file(self.stderr) or ""
end

---Starts spec/support/fakereg.py on 127.0.0.1 (port picked by the kernel).
---@param opts {layout:string, scenario?:string|string[], user?:string,
---  password?:string, fail_count?:integer, retry_after?:integer,
---  token_expires?:integer, stall?:number, redirect_host?:string,
---  chunked?:boolean, timeout?:number}
---@return table f {host, url, port, pid, redirect (host:port), dir, log_file,
---  stdout, stderr, user?, password?} with f:stop(), f:requests(),
---  f:redirects(), f:tokens(), f:reset(), f:log()
function M.fake(opts)
  assert(type(opts) == "table" and opts.layout, "registry.fake: layout is required")
  local dir = proc.tmpdir("crater-fakereg")
  local args = { proc.python(), q(src() .. "/spec/support/fakereg.py"), "--layout", q(opts.layout),
    "--log", q(dir .. "/requests.jsonl") }
  local scen = opts.scenario
  if type(scen) == "string" then scen = { scen } end
  for _, s in ipairs(scen or {}) do args[#args + 1] = "--scenario " .. q(s) end
  local function opt(flag, v) if v ~= nil then args[#args + 1] = flag .. " " .. q(v) end end
  opt("--user", opts.user)
  opt("--password", opts.password)
  opt("--fail-count", opts.fail_count)
  opt("--retry-after", opts.retry_after)
  opt("--token-expires", opts.token_expires)
  opt("--stall", opts.stall)
  opt("--redirect-host", opts.redirect_host)
  if opts.chunked then args[#args + 1] = "--chunked" end
  local p = proc.spawn(table.concat(args, " "), { dir = dir, name = "fakereg" })
  local f = setmetatable({ pid = p.pid, dir = dir, log_file = dir .. "/requests.jsonl",
    stdout = p.stdout, stderr = p.stderr, user = opts.user, password = opts.password }, Fake)
  local deadline = os.time() + (opts.timeout or 10)
  local delay = 0.02
  while true do
    local out = proc.read_file(p.stdout) or ""
    local port, redirect = out:match("^(%d+)\nredirect (%S+)\n")
    if port then
      f.port = tonumber(port)
      f.host = "127.0.0.1:" .. port
      f.url = "http://" .. f.host
      f.redirect = redirect
      return f
    end
    if not proc.alive(p.pid) or os.time() > deadline then
      local log = f:log()
      f:stop()
      error("fakereg did not start: " .. log, 2)
    end
    proc.sleep(delay)
    if delay < 0.2 then delay = delay * 2 end
  end
end

return M
