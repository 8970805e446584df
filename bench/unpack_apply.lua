-- bench helper: applies one layer with crater.core (used by bench/unpack.sh).
-- usage: luajit unpack_apply.lua LAYER DIR DECODER
local core = require "crater.core"
local layer, dir, decoder = arg[1], arg[2], arg[3] or "auto"
local r, msg, kind = core.archive_apply(dir, layer,
  { compression = "gzip", whiteouts = "delete", decoder = decoder })
if not r then
  io.stderr:write(("apply %s: %s (%s)\n"):format(layer, msg, kind))
  os.exit(1)
end
