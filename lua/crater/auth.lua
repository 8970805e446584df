--- crater.auth: registry credentials.
---
--- Looked up per registry host, first match wins:
---  1. `hosts[HOST].username/password` in the crater config (hosts.lua
---     passes them in), or `--user` on the command line;
---  2. `auths[HOST] = {username=, password=}` (or `auth = base64(user:pass)`)
---     in the crater config;
---  3. docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`),
---     as docker and nerdctl read it:
---     a. `credHelpers[HOST] = "NAME"`: runs the credential helper
---        `docker-credential-NAME get` (found on PATH).  Its answer is final
---        for that host: "credentials not found" means anonymous;
---     b. `auths[HOST].auth` (base64 "user:pass") or `username`/`password`
---        (what `docker login` writes without a credential store);
---     c. `credsStore = "NAME"`: the default helper, for every other host.
---     Keys may be "host", "https://host", "https://host/v1/"; Docker Hub is
---     "https://index.docker.io/v1/".  So an existing `docker login` works.
---
--- Credential helpers speak docker's protocol: the server URL on stdin
--- ("https://index.docker.io/v1/" for Docker Hub, else "host[:port]"),
--- `{"ServerURL":..,"Username":..,"Secret":..}` on stdout, or a non-zero
--- exit with "credentials not found in native keychain" when there are
--- none.  They run without a shell (`core.run` with argv
--- `{"docker-credential-NAME", "get"}`, the URL piped to stdin, the
--- output capped at 64 KiB), and are killed after
--- `credential_helper_timeout` seconds (crater config; else
--- CRATER_CREDENTIAL_HELPER_TIMEOUT; default 60).  Answers are cached in
--- the process for 5 minutes (failures for 10 s).  A helper that is missing, fails, hangs or
--- answers garbage makes lookup return `nil, msg, kind`: msg names the
--- helper and the host, never the secret.  Username `<token>` (an identity
--- token, i.e. an OAuth2 refresh token) is refused as not supported yet:
--- the token exchange it needs (POST grant_type=refresh_token to the
--- realm) is not in the transport.
---
--- We differ from docker in one corner: inline `auths` credentials win
--- over `credsStore` (docker ignores them once a store is configured; a
--- store writes empty `auths` entries, so this only matters for files
--- edited by hand or by other tools).
---
--- Credentials are returned wrapped: `tostring()` of the table and of the
--- module's describe() never show the secret, so they cannot leak through
--- logs or `--format json` output by accident.
local json = require "crater.json"

local M = {}

local Cred = {}
Cred.__index = Cred
Cred.__tostring = function(c) return string.format("<credentials for %s from %s>", c.username or "?", c.source or "?") end
M.Credential = Cred

--- Wraps a username/password pair (source says where it came from).
function M.credential(username, password, source)
  if type(username) ~= "string" or type(password) ~= "string" then
    error("auth.credential: username and password must be strings", 2)
  end
  return setmetatable({ username = username, password = password, source = source }, Cred)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[B64:byte(i)] = i - 1 end
B64_INDEX[("-"):byte()] = 62  -- URL-safe alphabet too
B64_INDEX[("_"):byte()] = 63

--- Decodes base64 (standard or URL-safe, padding optional); nil on bad input.
---@param s string
---@return string|nil
function M.base64_decode(s)
  if type(s) ~= "string" then return nil end
  s = s:gsub("%s", ""):gsub("=+$", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local v = B64_INDEX[s:byte(i)]
    if not v then return nil end
    bits = bits * 64 + v
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local byte = math.floor(bits / 2 ^ nbits)
      out[#out + 1] = string.char(byte)
      bits = bits - byte * 2 ^ nbits
    end
  end
  if nbits >= 6 then return nil end
  return table.concat(out)
end

--- Encodes base64 (standard alphabet, padded).
function M.base64_encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = {}
    for k = 3, 0, -1 do
      local v = math.floor(n / 64 ^ k) % 64
      chars[#chars + 1] = B64:sub(v + 1, v + 1)
    end
    if not b then chars[3], chars[4] = "=", "=" elseif not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

-- "https://host:port/v1/" -> "host:port"
local function key_host(k)
  k = k:gsub("^%a[%w+.-]*://", "")
  k = k:gsub("/.*$", "")
  return k:lower()
end

local DOCKER_HUB = { ["docker.io"] = true, ["index.docker.io"] = true, ["registry-1.docker.io"] = true,
  ["registry.hub.docker.com"] = true }

-- Hosts a credential entry for `host` may be stored under.
local function same_registry(a, b)
  if a == b then return true end
  return DOCKER_HUB[a] and DOCKER_HUB[b] or false
end

-- Reads one auths entry: {auth=base64}, or {username=, password=}.
local function from_entry(e, source)
  if type(e) ~= "table" then return nil end
  if type(e.auth) == "string" and e.auth ~= "" then
    local dec = M.base64_decode(e.auth)
    if not dec then return nil, source .. ": invalid base64 in auth field" end
    local u, p = dec:match("^([^:]*):(.*)$")
    if not u then return nil, source .. ": auth field is not user:password" end
    return M.credential(u, p, source)
  end
  if type(e.username) == "string" and type(e.password) == "string" then
    return M.credential(e.username, e.password, source)
  end
  return nil
end

-- Decodes a docker config.json text into {auths = {host = credential},
-- helpers = {host = name}, store = name|nil} (hosts normalised).
local function decode_docker_config(text, source)
  local doc, err = json.decode(text)
  if type(doc) ~= "table" then return nil, source .. ": " .. tostring(err or "not a JSON object") end
  local out = { auths = {}, helpers = {}, source = source }
  if type(doc.auths) == "table" then
    for k, e in pairs(doc.auths) do
      if type(k) == "string" then
        local c = from_entry(e, source)
        if c then out.auths[key_host(k)] = c end
      end
    end
  end
  if type(doc.credHelpers) == "table" then
    for k, name in pairs(doc.credHelpers) do
      if type(k) == "string" and type(name) == "string" and name ~= "" then out.helpers[key_host(k)] = name end
    end
  end
  if type(doc.credsStore) == "string" and doc.credsStore ~= "" then out.store = doc.credsStore end
  return out
end

--- Parses a docker config.json text into {host = credential} (hosts
--- normalised): the inline `auths` only.  Returns nil, msg on malformed
--- JSON.
---@param text string
---@param source? string  file name for messages
function M.parse_docker_config(text, source)
  local d, err = decode_docker_config(text, source or "docker config")
  if not d then return nil, err end
  return d.auths
end

--- The credential helpers of a docker config.json text:
--- `{helpers = {host = NAME}, store = NAME|nil}` (hosts normalised; NAME is
--- the suffix of `docker-credential-NAME`).  Returns nil, msg on malformed
--- JSON.
---@param text string
---@param source? string  file name for messages
---@return {helpers: table<string, string>, store?: string}|nil, string?
function M.parse_docker_helpers(text, source)
  local d, err = decode_docker_config(text, source or "docker config")
  if not d then return nil, err end
  return { helpers = d.helpers, store = d.store }
end

--- Path of the docker config file (nil when HOME is unknown).
function M.docker_config_path()
  local dir = os.getenv("DOCKER_CONFIG")
  if dir and dir ~= "" then return dir .. "/config.json" end
  local home = os.getenv("HOME")
  if not home or home == "" then return nil end
  return home .. "/.docker/config.json"
end

local docker_cache = {}
local function docker_config(path)
  if docker_cache[path] == nil then
    local f = io.open(path, "rb")
    if not f then docker_cache[path] = false
    else
      local text = f:read("*a")
      f:close()
      docker_cache[path] = decode_docker_config(text, path) or false
    end
  end
  return docker_cache[path] or nil
end

-- The value of t whose (normalised) key is the same registry as host.
local function find_host(t, host)
  if t[host] ~= nil then return t[host] end
  for k, v in pairs(t) do
    if same_registry(k, host) then return v end
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- credential helpers

M.HELPER_PREFIX = "docker-credential-"
M.HELPER_TIMEOUT = 60          -- seconds, default
M.HELPER_CACHE_TTL = 300       -- seconds an answer (credentials or none) is reused
M.HELPER_ERROR_TTL = 10        -- seconds a failure is reused (a hung helper is not waited for twice)
M.HELPER_MAX_OUTPUT = 64 * 1024
local NOT_FOUND_MSG = "credentials not found in native keychain"
local TOKEN_USERNAME = "<token>"

--- Runs a helper: `runner(argv, {stdin=, timeout_ms=, max_output=})` with
--- core.run's contract.  Replaceable (unit specs stub it).
---@type fun(argv: string[], opts: table): table|nil, string?, string?
M.runner = function(argv, opts) return require("crater.core").run(argv, opts) end

local helper_cache = {}

--- Forgets cached helper answers and parsed docker config files.
function M.clear_cache()
  helper_cache = {}
  docker_cache = {}
end

--- The server URL a credential helper is asked about for host: Docker
--- Hub's index URL for Docker Hub hosts, else the host itself (as docker).
---@param host string
---@return string
function M.helper_server_url(host)
  host = host:lower()
  if DOCKER_HUB[host] then return "https://index.docker.io/v1/" end
  return host
end

-- Seconds before a helper is killed: config, env, default.
local function helper_timeout(config, opts)
  local v, where = opts.helper_timeout, "helper_timeout"
  if v == nil then v, where = config and config.credential_helper_timeout, "config credential_helper_timeout" end
  if v == nil then
    local env = os.getenv("CRATER_CREDENTIAL_HELPER_TIMEOUT")
    if env and env ~= "" then v, where = tonumber(env) or env, "CRATER_CREDENTIAL_HELPER_TIMEOUT" end
  end
  if v == nil then return M.HELPER_TIMEOUT end
  if type(v) ~= "number" or v <= 0 then
    return nil, where .. " must be a positive number of seconds, got " .. tostring(v)
  end
  return v
end

-- A short, single-line excerpt of a helper's message for errors; nothing
-- when it looks like it could carry a credential (JSON with a Secret).
local function helper_message(text)
  text = (text or ""):gsub("^%s+", "")
  local line = text:match("^[^\n]*") or ""
  line = line:gsub("%s+$", ""):gsub("[%c]", "?")
  if line == "" or line:find("Secret", 1, true) or line:find("^[{%[]") then return nil end
  if #line > 200 then line = line:sub(1, 200) .. "..." end
  return line
end

-- Runs `docker-credential-NAME get` for host.  Returns a credential, false
-- (the helper has none), or nil, msg, kind.  `why` says where NAME came
-- from ("credHelpers in FILE", ...).
local function run_helper(name, host, why, timeout)
  local prog = M.HELPER_PREFIX .. name
  local what = string.format("credential helper %s (%s) for %s", prog, why, host)
  if not name:match("^[%w][%w._-]*$") then
    return nil, string.format("%s: invalid helper name %q", what, name), "invalid_argument"
  end
  local url = M.helper_server_url(host)
  local key = prog .. "\0" .. url
  local hit = helper_cache[key]
  if hit and os.time() < hit.expires then
    if hit.err then return nil, hit.err, hit.kind end
    return hit.cred
  end
  local function remember(ttl, cred, err, kind)
    helper_cache[key] = { expires = os.time() + ttl, cred = cred, err = err, kind = kind }
    if err then return nil, err, kind end
    return cred
  end
  local res, rerr, rkind = M.runner({ prog, "get" },
    { stdin = url, timeout_ms = math.floor(timeout * 1000 + 0.5), max_output = M.HELPER_MAX_OUTPUT })
  if not res then
    if rkind == "not_found" then
      return remember(M.HELPER_ERROR_TTL, nil, what .. ": " .. prog .. " not found in PATH", "failed_precondition")
    elseif rkind == "deadline_exceeded" then
      return remember(M.HELPER_ERROR_TTL, nil,
        string.format("%s: no answer after %g s, killed (credential_helper_timeout)", what, timeout),
        "deadline_exceeded")
    end
    return remember(M.HELPER_ERROR_TTL, nil, what .. ": " .. tostring(rerr), rkind or "unavailable")
  end
  if res.code ~= 0 then
    local out = (res.stdout or ""):gsub("^%s+", ""):gsub("%s+$", "")
    if out:find(NOT_FOUND_MSG, 1, true) then return remember(M.HELPER_CACHE_TTL, false) end
    local status = res.code and ("exited with status " .. res.code) or ("killed by signal " .. tostring(res.signal))
    -- the protocol's error channel is stdout (docker shows it too); stderr
    -- is the helper's own business and may hold anything
    local msg = helper_message(res.stdout)
    return remember(M.HELPER_ERROR_TTL, nil, what .. ": " .. status .. (msg and (": " .. msg) or ""), "unavailable")
  end
  if res.truncated then
    return remember(M.HELPER_ERROR_TTL, nil,
      string.format("%s: answer longer than %d bytes", what, M.HELPER_MAX_OUTPUT), "unavailable")
  end
  -- the output holds the secret: never quote it, nor json's message about it
  local doc = json.decode(res.stdout)
  if type(doc) ~= "table" or (doc.Username ~= nil and type(doc.Username) ~= "string")
      or (doc.Secret ~= nil and type(doc.Secret) ~= "string") then
    return remember(M.HELPER_ERROR_TTL, nil,
      what .. ': answer is not a JSON object {"Username": string, "Secret": string}', "unavailable")
  end
  local user, secret = doc.Username or "", doc.Secret or ""
  if user == "" and secret == "" then return remember(M.HELPER_CACHE_TTL, false) end
  if user == TOKEN_USERNAME then
    return remember(M.HELPER_CACHE_TTL, nil, what .. ": answered with an identity token (Username <token>, an " ..
      "OAuth2 refresh token); identity tokens are not supported yet: store a username and password " ..
      "(or an access token as the password) instead", "not_implemented")
  end
  return remember(M.HELPER_CACHE_TTL, M.credential(user, secret, prog))
end

--- Finds credentials for a registry host.  nil (no error) means
--- anonymous; nil, msg, kind means a credential helper failed (see the
--- module comment), which the caller reports instead of going anonymous.
---@param host string  "registry-1.docker.io", "127.0.0.1:5000", ...
---@param config? table the crater config (its `auths` table, `credential_helper_timeout`)
---@param opts? {docker_config?: string|false, helper_timeout?: number}  false skips docker's file; seconds
---@return table|nil credential, string? err, string? kind
function M.lookup(host, config, opts)
  if type(host) ~= "string" then error("auth.lookup: host must be a string", 2) end
  opts = opts or {}
  host = host:lower()
  local auths = config and config.auths
  if type(auths) == "table" then
    for k, e in pairs(auths) do
      if type(k) == "string" and same_registry(key_host(k), host) then
        local c = from_entry(e, "crater config")
        if c then return c end
      end
    end
  end
  if opts.docker_config == false then return nil end
  local path = opts.docker_config or M.docker_config_path()
  local d = path and docker_config(path)
  if not d then return nil end
  local helper = find_host(d.helpers, host)
  local c = not helper and find_host(d.auths, host) or nil
  if c then return c end
  local why = helper and "credHelpers" or "credsStore"
  helper = helper or d.store
  if not helper then return nil end
  local timeout, terr = helper_timeout(config, opts)
  if not timeout then return nil, terr, "invalid_argument" end
  local cred, err, kind = run_helper(helper, host, why .. " in " .. path, timeout)
  if cred == nil then return nil, err, kind end
  return cred or nil
end

--- Parses "user[:password]" from --user; without a password, reads one
--- from CRATER_PASSWORD (never from the command line's process list).
function M.from_flag(s)
  local u, p = s:match("^([^:]*):(.*)$")
  if not u then u, p = s, os.getenv("CRATER_PASSWORD") or "" end
  return M.credential(u, p, "--user")
end

return M
