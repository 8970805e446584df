--- crater.cli.output: tables for people, JSON for scripts.
local json = require "crater.json"

local M = {}

--- Prints rows as an aligned table.  columns: array of {title=, key= or
--- get=function(row)}.
function M.table(out, columns, rows)
  local cells, widths = {}, {}
  for c, col in ipairs(columns) do widths[c] = #col.title end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, col in ipairs(columns) do
      local v
      if col.get then v = col.get(row) else v = row[col.key] end
      v = v == nil and "" or tostring(v)
      cells[r][c] = v
      if #v > widths[c] then widths[c] = #v end
    end
  end
  local function line(vals)
    local parts = {}
    for c = 1, #columns do
      local v = vals[c]
      if c < #columns then v = v .. string.rep(" ", widths[c] - #v) end
      parts[c] = v
    end
    out:write((table.concat(parts, "    "):gsub("%s+$", "")), "\n")
  end
  local titles = {}
  for c, col in ipairs(columns) do titles[c] = col.title end
  line(titles)
  for r = 1, #rows do line(cells[r]) end
end

--- Prints a value as JSON (pretty), followed by a newline.
function M.json(out, value)
  out:write(json.encode(value, { pretty = true }), "\n")
end

return M
