--- crater.platforms: OCI platforms (os/architecture/variant), normalised
--- and matched like containerd.
---
--- ```lua
--- local platforms = require "crater.platforms"
--- local p = platforms.host()                 --> {os="linux", architecture="amd64"}
--- platforms.format(p)                        --> "linux/amd64"
--- local m = platforms.matcher("linux/arm/v7")
--- m:match{os="linux", architecture="arm", variant="v6"}  --> true (v7 runs v6)
--- ```
---
--- Rules: the OS must be equal; the architecture must be equal (amd64
--- matches amd64 only, 386 only 386); for 32-bit arm a CPU of variant vN
--- also runs every lower variant and prefers the highest (v8 > v7 > v6 >
--- v5); arm64 "v8" is the same as no variant.  Names are normalised first
--- (x86_64 → amd64, aarch64 → arm64, armhf → arm/v7, armel → arm/v6, ...).
local M = {}

---@class crater.Platform
---@field os string
---@field architecture string
---@field variant? string

local function normalize_os(os_)
  os_ = (os_ or ""):lower()
  if os_ == "macos" then return "darwin" end
  return os_
end

local function normalize_arch(arch, variant)
  arch = (arch or ""):lower()
  variant = (variant or ""):lower()
  if arch == "i386" or arch == "i486" or arch == "i586" or arch == "i686" then
    return "386", ""
  elseif arch == "x86_64" or arch == "x86-64" or arch == "amd64" then
    if variant == "v1" then variant = "" end
    return "amd64", variant
  elseif arch == "aarch64" or arch == "arm64" then
    if variant == "8" or variant == "v8" or variant == "v8.0" then variant = "" end
    if variant ~= "" and not variant:find("^v") then variant = "v" .. variant end
    return "arm64", variant
  elseif arch == "armhf" then
    return "arm", "v7"
  elseif arch == "armel" then
    return "arm", "v6"
  elseif arch == "arm" or arch:find("^armv%d") then
    local v = arch:match("^armv(%d+)")
    if v then variant = "v" .. v end
    if variant == "" or variant == "7" then variant = "v7"
    elseif variant:find("^%d+$") then variant = "v" .. variant end
    return "arm", variant
  elseif arch == "ppc64el" then
    return "ppc64le", variant
  end
  return arch, variant
end

--- Normalises a platform table (copy).  Raises on a non-table.
---@param p crater.Platform
---@return crater.Platform
function M.normalize(p)
  if type(p) ~= "table" then error("platforms.normalize: expected a table", 2) end
  local arch, variant = normalize_arch(p.architecture, p.variant)
  local r = { os = normalize_os(p.os), architecture = arch }
  if variant ~= "" then r.variant = variant end
  return r
end

--- Formats a platform as "os/arch[/variant]".
---@param p crater.Platform
function M.format(p)
  if not p then return "unknown" end
  local s = (p.os or "unknown") .. "/" .. (p.architecture or "unknown")
  if p.variant and p.variant ~= "" then s = s .. "/" .. p.variant end
  return s
end

--- Parses "os/arch[/variant]", "arch" (linux assumed) or "os" (host
--- architecture).  Returns a normalised platform or nil, msg, kind.
---@param s string
---@return crater.Platform|nil, string?, string?
function M.parse(s)
  if type(s) ~= "string" then error("platforms.parse: expected a string", 2) end
  local parts = {}
  for part in (s .. "/"):gmatch("([^/]*)/") do parts[#parts + 1] = part end
  local function bad(why) return nil, string.format("invalid platform %q: %s", s, why), "invalid_argument" end
  if s == "" or #parts > 3 then return bad("expected OS/ARCH[/VARIANT]") end
  for _, p in ipairs(parts) do
    if p == "" or not p:find("^[A-Za-z0-9_.-]+$") then return bad("bad component " .. string.format("%q", p)) end
  end
  local known_os = { linux = true, windows = true, darwin = true, freebsd = true, macos = true, netbsd = true,
    openbsd = true, solaris = true, illumos = true, aix = true, plan9 = true, android = true, ios = true, js = true,
    wasip1 = true, dragonfly = true }
  if #parts == 1 then
    if known_os[parts[1]:lower()] then
      local h = M.host()
      return M.normalize { os = parts[1], architecture = h.architecture, variant = h.variant }
    end
    return M.normalize { os = "linux", architecture = parts[1] }
  end
  return M.normalize { os = parts[1], architecture = parts[2], variant = parts[3] }
end

local host_cache
--- The platform of this machine (linux + `uname -m`, normalised).  For a
--- 32-bit arm CPU the variant comes from the machine name (armv7l → v7).
---@return crater.Platform
function M.host()
  if host_cache then return M.normalize(host_cache) end
  local arch = os.getenv("CRATER_HOST_ARCH")   -- for tests and cross setups
  if not arch or arch == "" then
    local f = io.popen("uname -m 2>/dev/null")
    arch = f and f:read("*l") or ""
    if f then f:close() end
  end
  if arch == "" then arch = "amd64" end
  local a, v = normalize_arch(arch, nil)
  host_cache = { os = "linux", architecture = a, variant = v ~= "" and v or nil }
  return M.normalize(host_cache)
end

local function variant_rank(v)
  return tonumber((v or ""):match("^v(%d+)")) or 0
end

---@class crater.PlatformMatcher
---@field want crater.Platform
local Matcher = {}
Matcher.__index = Matcher

--- Tells whether platform p (from a manifest) runs here.
---@param p crater.Platform|nil
function Matcher:match(p)
  if p == nil then return false end
  local q = M.normalize(p)
  local w = self.want
  if q.os ~= w.os or q.architecture ~= w.architecture then return false end
  if w.architecture == "arm" then
    -- a vN CPU runs vN and below
    return variant_rank(q.variant) <= variant_rank(w.variant)
  end
  return (q.variant or "") == (w.variant or "") or (q.variant or "") == ""
end

--- Orders two matching platforms: true when a is preferred over b (an
--- exact variant first, then the highest arm variant).
function Matcher:less(a, b)
  local qa, qb = M.normalize(a), M.normalize(b)
  local w = self.want
  local ea = (qa.variant or "") == (w.variant or "")
  local eb = (qb.variant or "") == (w.variant or "")
  if ea ~= eb then return ea end
  return variant_rank(qa.variant) > variant_rank(qb.variant)
end

function Matcher:string() return M.format(self.want) end
Matcher.__tostring = Matcher.string

--- A matcher for platform p (a table or a string; default: the host).
---@param p? crater.Platform|string
---@return crater.PlatformMatcher|nil, string?, string?
function M.matcher(p)
  if p == nil then p = M.host() end
  if type(p) == "string" then
    local err, kind
    p, err, kind = M.parse(p)
    if not p then return nil, err, kind end
  end
  return setmetatable({ want = M.normalize(p) }, Matcher)
end

--- Chooses the best matching entry of an index's manifests for a matcher.
--- Entries without a platform never match.  Returns the descriptor or nil,
--- msg, "not_found" listing what is available.
---@param manifests table[] descriptors with .platform
---@param matcher crater.PlatformMatcher
function M.select(manifests, matcher)
  local best
  for _, d in ipairs(manifests) do
    if d.platform and matcher:match(d.platform) then
      if not best or matcher:less(d.platform, best.platform) then best = d end
    end
  end
  if best then return best end
  local avail = {}
  for _, d in ipairs(manifests) do
    if d.platform then avail[#avail + 1] = M.format(M.normalize(d.platform)) end
  end
  return nil, string.format("no manifest for platform %s (available: %s)", matcher:string(),
    #avail > 0 and table.concat(avail, ", ") or "none"), "not_found"
end

return M
