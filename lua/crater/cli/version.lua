--- crater version
return {
  name = "version",
  summary = "Print the version of crater and its parts",
  max_args = 0,
  run = function(ctx)
    local crater = require "crater"
    local info = { version = crater.version, abi = crater.core.abi, lua = jit and jit.version or _VERSION }
    if ctx.format == "json" then
      ctx:record(info)
    else
      ctx.out:write("crater ", info.version, " (", info.lua, ")\n")
    end
  end,
}
