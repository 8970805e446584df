--- crater version
return {
  name = "version",
  summary = "Print the version of crater and its parts, and the daemon that served the command",
  max_args = 0,
  run = function(ctx)
    local crater = require "crater"
    local info = { version = crater.version, abi = crater.core.abi, lua = jit and jit.version or _VERSION,
      jit = jit and (jit.status() and "on" or "off") or nil, daemon = crater.served_by }
    if ctx.format == "json" then
      ctx:record(info)
    else
      ctx.out:write("crater ", info.version, " (", info.lua, info.jit and (", JIT " .. info.jit) or "", ")\n")
      if info.daemon then
        ctx.out:write("served by crater daemon ", info.daemon.pid, " (worker ", info.daemon.worker, ") on ",
          info.daemon.socket, "\n")
      end
    end
  end,
}
