--- crater.cli.args: flag parsing for the crater command.
---
--- A flag spec is {name=, short=, type="bool"|"string"|"number"|"list",
--- help=, arg=, default=}.  "--name value", "--name=value", "-s value",
--- "-abc" (bools), "--" ends flags.  Errors raise a usage error (exit 2).
local M = {}

local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.msg end
M.UsageError = UsageError

--- Raises a usage error (the CLI prints it with the command's usage, exit 2).
function M.usage_error(fmt, ...)
  error(setmetatable({ msg = string.format(fmt, ...) }, UsageError), 0)
end

function M.is_usage_error(e) return getmetatable(e) == UsageError end

local function index(specs)
  local by_long, by_short = {}, {}
  for _, s in ipairs(specs) do
    by_long[s.name] = s
    if s.short then by_short[s.short] = s end
  end
  return by_long, by_short
end

local function set(out, spec, value)
  local t = spec.type or "bool"
  if t == "list" then
    out[spec.name] = out[spec.name] or {}
    table.insert(out[spec.name], value)
  elseif t == "number" then
    local n = tonumber(value)
    if not n then M.usage_error("flag --%s expects a number, got %q", spec.name, value) end
    out[spec.name] = n
  else
    out[spec.name] = value
  end
end

--- Parses argv[first..] against specs.  Returns flags (by name, defaults
--- applied) and positional args.  With stop_at_positional, the first
--- positional argument and everything after it are returned unparsed (for
--- group dispatch and for "run IMAGE CMD ARGS...").
---@return table flags, string[] positional
function M.parse(argv, first, specs, stop_at_positional)
  local by_long, by_short = index(specs)
  local flags, pos = {}, {}
  local i = first or 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do pos[#pos + 1] = argv[j] end
      break
    elseif a:sub(1, 2) == "--" and #a > 2 then
      local name, val = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local spec = by_long[name]
      if not spec and name:sub(1, 3) == "no-" and by_long[name:sub(4)]
          and (by_long[name:sub(4)].type or "bool") == "bool" then
        flags[name:sub(4)] = false
      elseif not spec then
        M.usage_error("unknown flag --%s", name)
      elseif (spec.type or "bool") == "bool" then
        if val then
          if val == "true" or val == "1" then flags[name] = true
          elseif val == "false" or val == "0" then flags[name] = false
          else M.usage_error("flag --%s takes no value", name) end
        else
          flags[name] = true
        end
      else
        if not val then
          i = i + 1
          val = argv[i]
          if val == nil then M.usage_error("flag --%s needs a value", name) end
        end
        set(flags, spec, val)
      end
    elseif a:sub(1, 1) == "-" and #a > 1 and not tonumber(a) then
      local k = 2
      while k <= #a do
        local c = a:sub(k, k)
        local spec = by_short[c]
        if not spec then M.usage_error("unknown flag -%s", c) end
        if (spec.type or "bool") == "bool" then
          flags[spec.name] = true
          k = k + 1
        else
          local val = a:sub(k + 1)
          if val == "" then
            i = i + 1
            val = argv[i]
            if val == nil then M.usage_error("flag -%s needs a value", c) end
          end
          set(flags, spec, val)
          break
        end
      end
    else
      if stop_at_positional then
        for j = i, #argv do pos[#pos + 1] = argv[j] end
        break
      end
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  for _, s in ipairs(specs) do
    if flags[s.name] == nil and s.default ~= nil then flags[s.name] = s.default end
  end
  return flags, pos
end

--- Formats flag help lines.
function M.help(specs)
  local lines = {}
  for _, s in ipairs(specs) do
    local left = (s.short and ("-" .. s.short .. ", ") or "    ") .. "--" .. s.name
    if (s.type or "bool") ~= "bool" then left = left .. " " .. (s.arg or "VALUE") end
    local help = s.help or ""
    if s.default ~= nil and s.type ~= "bool" then help = help .. " (default " .. tostring(s.default) .. ")" end
    if s.type == "list" then help = help .. " (repeatable)" end
    lines[#lines + 1] = string.format("  %-30s %s", left, help)
  end
  return table.concat(lines, "\n")
end

return M
