--- crater.namespaces: namespace administration for a client.
---
--- Namespaces scope every other object.  Removing a namespace that still
--- holds objects is refused with kind "failed_precondition" and a message
--- saying what it holds.
local M = {}
local Namespaces = {}
Namespaces.__index = Namespaces

function M.new(client)
  return setmetatable({ client = client, b = client.backend }, Namespaces)
end

--- Lists namespaces: array of {name=, labels=}.
function Namespaces:list() return self.b:namespace_list() end

--- Returns {name=, labels=} or nil, msg, "not_found".
function Namespaces:get(name) return self.b:namespace_get(name) end

--- Creates a namespace with optional labels.
function Namespaces:create(name, labels)
  if type(name) ~= "string" then error("namespaces:create: name must be a string", 2) end
  return self.b:namespace_create(name, labels or {})
end

--- Removes an empty namespace.
function Namespaces:remove(name) return self.b:namespace_delete(name) end

--- Sets labels (merged; a value of "" removes the key unless replace).
---@param replace? boolean  replace all labels instead of merging
function Namespaces:labels(name, labels, replace)
  return self.b:namespace_set_labels(name, labels or {}, replace and true or false)
end

return M
