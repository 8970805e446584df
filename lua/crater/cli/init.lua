--- crater.cli: the command line, dispatched to one module per command group.
local M = {}

function M.main(argv)
  local crater = require "crater"
  if argv[1] == "--version" then
    io.stdout:write("crater ", crater.version, "\n")
    return 0
  end
  io.stderr:write("crater: no commands yet\n")
  return 2
end

return M
