--- crater.reference: image references, normalised like docker/containerd.
---
--- ```lua
--- local reference = require "crater.reference"
--- local r = assert(reference.parse("busybox"))
--- r.domain, r.path, r.tag      --> "docker.io", "library/busybox", "latest"
--- tostring(r)                  --> "docker.io/library/busybox:latest"
--- reference.familiar(r)        --> "busybox:latest"
--- ```
---
--- Grammar (docker/distribution's, applied strictly):
---   reference := name [ ":" tag ] [ "@" digest ]
---   name      := [ domain "/" ] component ( "/" component )*
---   domain    := the first component when it contains "." or ":", is
---                "localhost", or has an uppercase letter (a host name)
---   component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
---   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
---   digest    := "sha256:" 64 lowercase hex | "sha512:" 128 lowercase hex
--- A missing domain is "docker.io"; a one-component docker.io path gets the
--- "library/" prefix; "index.docker.io" is "docker.io"; a reference with
--- neither tag nor digest gets ":latest".  `name:tag@digest` keeps both:
--- the digest decides what is pulled, the tag is kept for display.
---
--- Invalid references return `nil, msg, "invalid_argument"`; non-string
--- arguments raise.
local M = {}

M.DEFAULT_DOMAIN = "docker.io"
M.LEGACY_DOMAIN = "index.docker.io"
M.OFFICIAL_PREFIX = "library/"
M.DEFAULT_TAG = "latest"
M.NAME_MAX = 255

---@class crater.Reference
---@field domain string   registry host[:port], e.g. "docker.io"
---@field path string     repository path, e.g. "library/busybox"
---@field tag string|nil
---@field digest string|nil
---@field name string     domain .. "/" .. path
local Ref = {}
Ref.__index = Ref
M.Reference = Ref

--- The canonical string: "domain/path[:tag][@digest]".
function Ref:string()
  local s = self.name
  if self.tag then s = s .. ":" .. self.tag end
  if self.digest then s = s .. "@" .. self.digest end
  return s
end
Ref.__tostring = Ref.string

--- What to ask the registry for: the digest when there is one, else the tag.
function Ref:object()
  return self.digest or self.tag
end

--- The short docker-style form (see M.familiar).
function Ref:familiar() return M.familiar(self) end

local function fail(s, why)
  return nil, string.format("invalid reference %q: %s", s, why), "invalid_argument"
end

-- One path component: lowercase alphanumerics separated by ".", "_", "__"
-- or runs of "-".
local function valid_component(c)
  if c == "" then return false, "empty path component" end
  if c:find("[A-Z]") then return false, "repository name must be lowercase" end
  if not c:find("^[a-z0-9][a-z0-9._-]*$") or c:find("[._-]$") then
    return false, string.format("invalid path component %q", c)
  end
  -- separators: ".", "_", "__", "-"+ ; never "..", "___", "._", "-." etc.
  local rest = c
  while true do
    local sep = rest:match("^[a-z0-9]+([._-]+)")
    if not sep then break end
    if not (sep == "." or sep == "_" or sep == "__" or sep:find("^%-+$")) then
      return false, string.format("invalid separator %q in path component %q", sep, c)
    end
    rest = rest:gsub("^[a-z0-9]+[._-]+", "", 1)
  end
  return true
end

-- A domain: host name labels (letters, digits, "-") separated by dots, or
-- a bracketed IPv6 address, with an optional port.
local function valid_domain(d)
  local host, port = d, nil
  if d:sub(1, 1) == "[" then
    host, port = d:match("^(%[[%x:.]+%])(.*)$")
    if not host then return false end
    if port ~= "" then port = port:match("^:(%d+)$"); if not port then return false end end
    return true
  end
  local h, p = d:match("^([^:]+):(.*)$")
  if h then
    host, port = h, p
    if not port:find("^%d+$") or tonumber(port) > 65535 then return false end
  end
  for label in (host .. "."):gmatch("([^.]*)%.") do
    if label == "" or not label:find("^[A-Za-z0-9]") or not label:find("[A-Za-z0-9]$")
        or label:find("[^A-Za-z0-9-]") then
      return false
    end
  end
  return true
end

--- Validates a digest string strictly ("sha256:" + 64 lowercase hex, or
--- "sha512:" + 128).  Returns true or nil, msg.
---@param d string
function M.valid_digest(d)
  if type(d) ~= "string" then return nil, "digest must be a string" end
  local alg, hex = d:match("^([a-z0-9]+):(.*)$")
  if not alg then return nil, string.format("invalid digest %q: expected ALGORITHM:HEX", d) end
  local want = ({ sha256 = 64, sha512 = 128 })[alg]
  if not want then return nil, string.format("invalid digest %q: unsupported algorithm %q", d, alg) end
  if #hex ~= want then
    return nil, string.format("invalid digest %q: %s needs %d hex characters, got %d", d, alg, want, #hex)
  end
  if hex:find("[^0-9a-f]") then
    return nil, string.format("invalid digest %q: hex must be lowercase 0-9a-f", d)
  end
  return true
end

--- Parses and normalises a reference.
---@param s string
---@param opts? {default_tag?: string|false}  default_tag=false keeps a bare name untagged
---@return crater.Reference|nil ref, string? err, string? kind
function M.parse(s, opts)
  if type(s) ~= "string" then error("reference.parse: expected a string, got " .. type(s), 2) end
  opts = opts or {}
  if s == "" then return fail(s, "empty reference") end
  if s:find("%s") then return fail(s, "contains whitespace") end
  if s:find("^%x+$") and #s == 64 then
    return fail(s, "a bare 64-character hex string is ambiguous; use sha256:" .. s .. " with a name")
  end
  local rest, digest = s, nil
  local at = s:find("@", 1, true)
  if at then
    rest, digest = s:sub(1, at - 1), s:sub(at + 1)
    local ok, err = M.valid_digest(digest)
    if not ok then return fail(s, err) end
    if rest == "" then return fail(s, "missing repository name before '@'") end
  end
  -- the tag is after the last ":" that follows the last "/"
  local tag
  local last_slash = rest:match("^.*()/") or 0
  local colon = rest:find(":[^:]*$")
  if colon and colon > last_slash then
    tag = rest:sub(colon + 1)
    rest = rest:sub(1, colon - 1)
    if not tag:find("^[A-Za-z0-9_][A-Za-z0-9_.-]*$") or #tag > 128 then
      return fail(s, string.format("invalid tag %q (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')", tag))
    end
  end
  if rest == "" then return fail(s, "missing repository name") end
  local domain, path
  local first, remainder = rest:match("^([^/]+)/(.+)$")
  if first and (first:find("[.:]") or first == "localhost" or first:lower() ~= first) then
    domain, path = first, remainder
    if not valid_domain(domain) then return fail(s, string.format("invalid registry host %q", domain)) end
  else
    domain, path = M.DEFAULT_DOMAIN, rest
  end
  if domain == M.LEGACY_DOMAIN then domain = M.DEFAULT_DOMAIN end
  for comp in (path .. "/"):gmatch("([^/]*)/") do
    local ok, why = valid_component(comp)
    if not ok then return fail(s, why) end
  end
  if domain == M.DEFAULT_DOMAIN and not path:find("/", 1, true) then
    path = M.OFFICIAL_PREFIX .. path
  end
  local name = domain .. "/" .. path
  if #name > M.NAME_MAX then
    return fail(s, string.format("repository name longer than %d characters", M.NAME_MAX))
  end
  if not tag and not digest and opts.default_tag ~= false then
    tag = opts.default_tag or M.DEFAULT_TAG
  end
  return setmetatable({ domain = domain, path = path, tag = tag, digest = digest, name = name }, Ref)
end

--- Parses and returns the canonical string (or nil, msg, kind).
---@param s string
---@return string|nil, string?, string?
function M.normalize(s)
  local r, err, kind = M.parse(s)
  if not r then return nil, err, kind end
  return r:string()
end

--- The short docker-style form of a reference: "docker.io/library/x" →
--- "x", "docker.io/u/x" → "u/x", other registries unchanged.  Accepts a
--- parsed reference or a string (returned as is when it does not parse).
---@param r crater.Reference|string
---@return string
function M.familiar(r)
  if type(r) == "string" then
    local p = M.parse(r, { default_tag = false })
    if not p then return r end
    r = p
  end
  local name = r.name
  if r.domain == M.DEFAULT_DOMAIN then
    name = r.path
    if name:sub(1, #M.OFFICIAL_PREFIX) == M.OFFICIAL_PREFIX and not name:find("/", #M.OFFICIAL_PREFIX + 1, true) then
      name = name:sub(#M.OFFICIAL_PREFIX + 1)
    end
  end
  if r.tag then name = name .. ":" .. r.tag end
  if r.digest then name = name .. "@" .. r.digest end
  return name
end

--- Builds a reference from parts (name = "domain/path"), e.g. to add a
--- digest to a tagged name.
---@param name string
---@param tag? string
---@param digest? string
function M.with(name, tag, digest)
  local s = name
  if tag then s = s .. ":" .. tag end
  if digest then s = s .. "@" .. digest end
  return M.parse(s, { default_tag = false })
end

return M
