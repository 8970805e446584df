--- crater.auth: registry credentials.
---
--- Looked up per registry host, first match wins:
---  1. `hosts[HOST].username/password` in the crater config (hosts.lua
---     passes them in), or `--user` on the command line;
---  2. `auths[HOST] = {username=, password=}` (or `auth = base64(user:pass)`)
---     in the crater config;
---  3. docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`):
---     `auths[KEY].auth` (base64 "user:pass") or `username`/`password`.  Keys
---     may be "host", "https://host", "https://host/v1/"; Docker Hub is
---     "https://index.docker.io/v1/".  So an existing `docker login` works.
---     Credential helpers (`credsStore`, `credHelpers`) are not run.
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

--- Parses a docker config.json text into {host = credential} (hosts
--- normalised).  Returns nil, msg on malformed JSON.
---@param text string
---@param source? string  file name for messages
function M.parse_docker_config(text, source)
  source = source or "docker config"
  local doc, err = json.decode(text)
  if type(doc) ~= "table" then return nil, source .. ": " .. tostring(err or "not a JSON object") end
  local out = {}
  if type(doc.auths) == "table" then
    for k, e in pairs(doc.auths) do
      if type(k) == "string" then
        local c = from_entry(e, source)
        if c then out[key_host(k)] = c end
      end
    end
  end
  return out
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
local function docker_creds(path)
  if docker_cache[path] == nil then
    local f = io.open(path, "rb")
    if not f then docker_cache[path] = false
    else
      local text = f:read("*a")
      f:close()
      local t = M.parse_docker_config(text, path)
      docker_cache[path] = t or false
    end
  end
  return docker_cache[path] or nil
end

--- Finds credentials for a registry host.
---@param host string  "registry-1.docker.io", "127.0.0.1:5000", ...
---@param config? table the crater config (its `auths` table)
---@param opts? {docker_config?: string|false}  false skips docker's file
---@return table|nil credential
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
  if opts.docker_config ~= false then
    local path = opts.docker_config or M.docker_config_path()
    local t = path and docker_creds(path)
    if t then
      if t[host] then return t[host] end
      for k, c in pairs(t) do
        if same_registry(k, host) then return c end
      end
    end
  end
  return nil
end

--- Parses "user[:password]" from --user; without a password, reads one
--- from CRATER_PASSWORD (never from the command line's process list).
function M.from_flag(s)
  local u, p = s:match("^([^:]*):(.*)$")
  if not u then u, p = s, os.getenv("CRATER_PASSWORD") or "" end
  return M.credential(u, p, "--user")
end

return M
