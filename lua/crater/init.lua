--- crater: the Lua module.
---
--- `local crater = require "crater"` gives the client surface.  Embedded
--- clients (`crater.open{root=...}`) run the C core in-process; remote
--- clients (`crater.connect(socket)`, later) expose the same methods.
---
--- Error convention (docs/design/errors.md): misuse raises; expected
--- failures return `nil, msg, kind`.
local core = require "crater.core"

local ABI = 1
if core.abi ~= ABI then
  error(string.format("crater: C core ABI %s does not match Lua module ABI %d (rebuild?)",
    tostring(core.abi), ABI), 2)
end

local M = {
  version = core.version,
  core = core,
  DEFAULT_ROOT = "/var/lib/crater",
  DEFAULT_NAMESPACE = "default",
}

return M
