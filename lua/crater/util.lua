--- crater.util: small helpers shared by the Lua half (no policy here).
local M = {}

--- path made absolute against the working directory ($PWD): paths given by
--- a user end up with the shim and the runtime, which work in the task
--- dir.  nil and absolute paths come back as they are.
---@param path string|nil
---@return string|nil
function M.abs_path(path)
  if path == nil or path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

--- Returns the keys of t, sorted.
---@param t table
---@return string[]
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

--- Shallow copy of t (nil gives an empty table).
function M.copy(t)
  local r = {}
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

--- Splits s on the literal separator sep.
function M.split(s, sep)
  local out, start = {}, 1
  while true do
    local i, j = s:find(sep, start, true)
    if not i then out[#out + 1] = s:sub(start); return out end
    out[#out + 1] = s:sub(start, i - 1)
    start = j + 1
  end
end

--- Human-readable size: 1536 -> "1.5 KiB".
function M.human_size(n)
  if n == nil then return "-" end
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do n = n / 1024; i = i + 1 end
  if i == 1 then return string.format("%d B", n) end
  return string.format("%.1f %s", n, units[i])
end

--- Parses "128m", "1g", "512k", "100" into bytes; nil on a bad value.
function M.parse_size(s)
  if type(s) == "number" then return s end
  local num, unit = tostring(s):lower():match("^%s*([%d%.]+)%s*([kmgt]?)i?b?%s*$")
  if not num then return nil end
  local mult = ({ [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3, t = 1024 ^ 4 })[unit]
  return math.floor(tonumber(num) * mult)
end

--- Formats a unix time (seconds) as RFC 3339 UTC.
function M.rfc3339(t)
  if not t then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

--- "3 minutes ago"-style age of a unix time.
function M.age(t, now)
  if not t then return "-" end
  local d = (now or os.time()) - t
  if d < 60 then return "less than a minute ago" end
  local function plural(n, w) return string.format("%d %s%s ago", n, w, n == 1 and "" or "s") end
  if d < 3600 then return plural(math.floor(d / 60), "minute") end
  if d < 86400 then return plural(math.floor(d / 3600), "hour") end
  return plural(math.floor(d / 86400), "day")
end

--- Shortens a digest for tables: "sha256:abcdef012345".
function M.short_digest(d)
  if not d then return "-" end
  local alg, hex = d:match("^(%w+):(%x+)$")
  if not alg then return d end
  return alg .. ":" .. hex:sub(1, 12)
end

--- Formats labels {k=v} as "k=v,k2=v2" (sorted).
function M.format_labels(l)
  if not l then return "" end
  local parts = {}
  for _, k in ipairs(M.sorted_keys(l)) do parts[#parts + 1] = k .. "=" .. l[k] end
  return table.concat(parts, ",")
end

--- Parses {"k=v", "k2"} into a labels table; "k" alone maps to "".
function M.parse_labels(list)
  local l = {}
  for _, kv in ipairs(list or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then k, v = kv, "" end
    l[k] = v
  end
  return l
end

return M
