--- crater.hosts: which endpoints serve a registry, and how to talk to them
--- (containerd's hosts.toml, in Lua).
---
--- The crater config (`/etc/crater/config.lua` or `--config FILE`, a plain
--- Lua file returning a table) may carry:
---
--- ```lua
--- return {
---   hosts = {
---     ["127.0.0.1:5000"] = { plain_http = true },
---     ["registry.example.com"] = {
---       ca_file = "/etc/crater/certs/example-ca.pem",
---       cert_file = "/etc/crater/certs/client.pem", key_file = "/etc/crater/certs/client.key",
---       username = "ci", password = "secret",
---     },
---     ["docker.io"] = {
---       mirrors = {   -- tried in order before the registry itself
---         { host = "mirror.local:5000", plain_http = true, capabilities = { "pull", "resolve" } },
---       },
---       -- skip_upstream = true    -- only the mirrors
---     },
---   },
---   auths = { ["registry.example.com"] = { username = "u", password = "p" } },
--- }
--- ```
---
--- `endpoints(domain, "pull"|"resolve"|"push")` returns the ordered list
--- of endpoints with that capability: mirrors first (default capabilities
--- pull + resolve), then the registry itself (all capabilities;
--- docker.io is served by registry-1.docker.io).  Plain HTTP is used only
--- for hosts whose entry says `plain_http = true`, or, with the
--- `--plain-http` flag, for localhost / 127.0.0.1 / [::1].
local auth = require "crater.auth"

local M = {}

M.DEFAULT_CONFIG = "/etc/crater/config.lua"
M.DOCKER_HUB_HOST = "registry-1.docker.io"

local KNOWN_KEYS = { plain_http = true, ca_file = true, cert_file = true, key_file = true,
  insecure_skip_verify = true, username = true, password = true, mirrors = true, skip_upstream = true,
  capabilities = true, host = true, server = true }
local CAPS = { pull = true, resolve = true, push = true }

--- Loads a config file (plain Lua returning a table).  A missing default
--- file gives {}; a missing explicit file is an error.
---@param path? string
---@return table|nil config, string? err, string? kind
function M.load_config(path)
  local explicit = path ~= nil
  path = path or os.getenv("CRATER_CONFIG") or M.DEFAULT_CONFIG
  local f = io.open(path, "rb")
  if not f then
    if explicit then return nil, "config " .. path .. ": cannot open", "not_found" end
    return {}
  end
  local text = f:read("*a")
  f:close()
  local chunk, err = loadstring(text, "@" .. path)
  if not chunk then return nil, "config " .. tostring(err), "invalid_argument" end
  -- copies of the libraries: the config runs in a `crater daemon` worker
  -- that serves later commands too, which a change to them would reach
  local copy = require("crater.util").copy
  setfenv(chunk, { os = { getenv = os.getenv }, string = copy(string), table = copy(table), tostring = tostring,
    tonumber = tonumber, pairs = pairs, ipairs = ipairs })
  local ok, cfg = pcall(chunk)
  if not ok then return nil, "config " .. tostring(cfg), "invalid_argument" end
  if type(cfg) ~= "table" then return nil, "config " .. path .. ": must return a table", "invalid_argument" end
  local vok, verr = M.validate(cfg)
  if not vok then return nil, "config " .. path .. ": " .. verr, "invalid_argument" end
  return cfg
end

local function check_entry(where, e)
  if type(e) ~= "table" then return nil, where .. ": must be a table" end
  for k, v in pairs(e) do
    if not KNOWN_KEYS[k] then return nil, string.format("%s: unknown key %q", where, tostring(k)) end
    if (k == "plain_http" or k == "insecure_skip_verify" or k == "skip_upstream") and type(v) ~= "boolean" then
      return nil, string.format("%s.%s: must be a boolean", where, k)
    end
    if (k == "ca_file" or k == "cert_file" or k == "key_file" or k == "username" or k == "password"
        or k == "host" or k == "server") and type(v) ~= "string" then
      return nil, string.format("%s.%s: must be a string", where, k)
    end
    if k == "capabilities" then
      if type(v) ~= "table" then return nil, where .. ".capabilities: must be a list" end
      for _, c in ipairs(v) do
        if not CAPS[c] then return nil, string.format("%s.capabilities: unknown %q (pull, resolve, push)", where, tostring(c)) end
      end
    end
  end
  if (e.cert_file == nil) ~= (e.key_file == nil) then return nil, where .. ": cert_file and key_file go together" end
  return true
end

--- Validates the hosts part of a config; returns true or nil, msg.
function M.validate(cfg)
  if cfg.hosts == nil then return true end
  if type(cfg.hosts) ~= "table" then return nil, "hosts must be a table" end
  for name, e in pairs(cfg.hosts) do
    local where = string.format("hosts[%q]", tostring(name))
    local ok, err = check_entry(where, e)
    if not ok then return nil, err end
    if e.mirrors ~= nil then
      if type(e.mirrors) ~= "table" then return nil, where .. ".mirrors: must be a list" end
      for i, m in ipairs(e.mirrors) do
        ok, err = check_entry(where .. ".mirrors[" .. i .. "]", m)
        if not ok then return nil, err end
        if type(m.host) ~= "string" then return nil, where .. ".mirrors[" .. i .. "]: needs host" end
      end
    end
  end
  return true
end

--- Tells whether host (with optional port) is the local machine.
function M.is_local(host)
  local h = host:match("^%[(.-)%]") or host:match("^([^:]+)") or host
  return h == "localhost" or h == "127.0.0.1" or h == "::1" or h:find("^127%.%d+%.%d+%.%d+$") ~= nil
end

---@class crater.Endpoint
---@field host string
---@field plain_http boolean
---@field ca_file? string
---@field cert_file? string
---@field key_file? string
---@field insecure_skip_verify? boolean
---@field capabilities table<string, boolean>
---@field credential? table  (crater.auth credential; never printed)
---@field mirror boolean

local function make_endpoint(host, e, caps, opts, cfg, mirror)
  local plain = e.plain_http == true
  if not plain and opts.plain_http then
    plain = M.is_local(host)
  end
  local ep = {
    host = host, plain_http = plain, ca_file = e.ca_file, cert_file = e.cert_file, key_file = e.key_file,
    insecure_skip_verify = e.insecure_skip_verify or opts.insecure_skip_verify or false,
    capabilities = caps, mirror = mirror,
  }
  if opts.credential then
    ep.credential = opts.credential
  elseif e.username and e.password then
    ep.credential = auth.credential(e.username, e.password, "crater config hosts")
  else
    local err, kind
    ep.credential, err, kind = auth.lookup(host, cfg, { docker_config = opts.docker_config })
    if err then return nil, err, kind end  -- a credential helper failed: say so, do not go anonymous
  end
  return ep
end

--- Ordered endpoints of a registry domain that have capability cap.
---@param domain string        e.g. "docker.io", "127.0.0.1:5000"
---@param cap "pull"|"resolve"|"push"
---@param opts? {config?: table, plain_http?: boolean, insecure_skip_verify?: boolean, credential?: table, docker_config?: string|false}
---@return crater.Endpoint[]|nil, string?, string?
function M.endpoints(domain, cap, opts)
  if type(domain) ~= "string" then error("hosts.endpoints: domain must be a string", 2) end
  if not CAPS[cap] then error("hosts.endpoints: capability must be pull, resolve or push", 2) end
  opts = opts or {}
  local cfg = opts.config or {}
  local hosts = cfg.hosts or {}
  local e = hosts[domain] or {}
  if domain == "docker.io" and not hosts[domain] then e = hosts[M.DOCKER_HUB_HOST] or {} end
  if opts.plain_http and not M.is_local(domain) and not e.plain_http then
    return nil, string.format("--plain-http only applies to localhost/127.0.0.1; list %s with plain_http = true " ..
      "in the hosts config to use plain HTTP with it", domain), "invalid_argument"
  end
  local out = {}
  for _, m in ipairs(e.mirrors or {}) do
    local caps = {}
    for _, c in ipairs(m.capabilities or { "pull", "resolve" }) do caps[c] = true end
    if caps[cap] then
      local mo = {}
      for k, v in pairs(opts) do mo[k] = v end
      mo.credential = nil  -- --user is for the registry itself
      local mh = m.host:gsub("^%a+://", ""):gsub("/+$", "")
      local ep, err, kind = make_endpoint(mh, m, caps, mo, cfg, true)
      if not ep then return nil, err, kind end
      out[#out + 1] = ep
    end
  end
  if not e.skip_upstream then
    local upstream = domain == "docker.io" and M.DOCKER_HUB_HOST or domain
    if e.server then upstream = e.server:gsub("^%a+://", ""):gsub("/+$", "") end
    local ep, err, kind = make_endpoint(upstream, e, { pull = true, resolve = true, push = true }, opts, cfg, false)
    if not ep then return nil, err, kind end
    out[#out + 1] = ep
  end
  if #out == 0 then
    return nil, string.format("no endpoint of %s can %s (check hosts[%q] in the config)", domain, cap, domain),
      "failed_precondition"
  end
  return out
end

--- Options for core.remote_new from an endpoint (credentials included:
--- pass straight to the core, never print).
function M.remote_options(ep)
  return {
    host = ep.host, plain_http = ep.plain_http, ca_file = ep.ca_file, cert_file = ep.cert_file,
    key_file = ep.key_file, insecure_skip_verify = ep.insecure_skip_verify,
    username = ep.credential and ep.credential.username or nil,
    password = ep.credential and ep.credential.password or nil,
  }
end

--- A printable description of an endpoint (no secrets).
function M.describe(ep)
  local s = (ep.plain_http and "http://" or "https://") .. ep.host
  if ep.mirror then s = s .. " (mirror)" end
  if ep.credential then s = s .. " [auth]" end
  return s
end

--- Opens a remote client for an endpoint (core.remote_new).
function M.connect(ep)
  return require("crater.core").remote_new(M.remote_options(ep))
end

return M
