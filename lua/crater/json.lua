--- crater.json: JSON through the C core (src/lua/l_json.c; jansson's rules).
---
--- decode is strict (duplicate keys rejected) and returns `nil, msg, kind`
--- on bad input; `json.null` stands for JSON null; arrays carry
--- `json.array_mt` so empty arrays round-trip.
local core = require "crater.core"

local M = {
  null = core.null,
  array_mt = core.array_mt,
}

--- Decodes a JSON text.
---@param s string
---@return any|nil value, string? err, string? kind
function M.decode(s)
  return core.json_decode(s)
end

--- Encodes a value (object keys sorted).  Raises on unencodable input.
---@param v any
---@param opts? {pretty: boolean}
function M.encode(v, opts)
  return core.json_encode(v, opts)
end

--- Marks t as a JSON array (so {} encodes as []).
function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

return M
