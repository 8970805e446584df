--- crater.cli: the `crater` command line.
---
--- `crater [GLOBAL FLAGS] GROUP [SUBCOMMAND] [FLAGS] [ARGS]`.  Each group is
--- a module lua/crater/cli/<group>.lua returning
---   { name=, summary=, aliases=, flags=, usage=, run=function(ctx, args, flags) }
--- for a single command, or { name=, summary=, commands = { {name=, ...}, ... } }
--- for a group of subcommands.  `run` returns nothing (success), a number
--- (exit code), or nil, msg (error, exit 1).  Usage errors raise through
--- crater.cli.args.usage_error (exit 2).  Every command has --help, and
--- listings honour --format json.
local args = require "crater.cli.args"
local output = require "crater.cli.output"

local M = {}

M.EXIT_OK, M.EXIT_ERROR, M.EXIT_USAGE = 0, 1, 2

--- Command groups in help order.  A group whose module is missing in this
--- build is left out of help.
M.groups = {
  "namespace", "content", "image", "pull", "push", "snapshot", "container",
  "task", "run", "lease", "gc", "check", "policy", "repl", "daemon", "version",
}

M.global_flags = {
  { name = "root", type = "string", arg = "DIR", help = "state directory (env CRATER_ROOT)", default = nil },
  { name = "namespace", short = "n", type = "string", arg = "NS", help = "namespace (env CRATER_NAMESPACE, default \"default\")" },
  { name = "format", type = "string", arg = "FMT", help = "output format: table or json" },
  { name = "config", type = "string", arg = "FILE", help = "crater config (env CRATER_CONFIG, default /etc/crater/config.lua)" },
  { name = "debug", type = "bool", help = "log debug output to stderr" },
  { name = "help", short = "h", type = "bool", help = "show help" },
  { name = "version", short = "v", type = "bool", help = "print the version" },
}

local function load_group(name)
  local ok, mod = pcall(require, "crater.cli." .. name)
  if not ok then
    if tostring(mod):find("module 'crater.cli." .. name .. "' not found", 1, true) then return nil end
    error(mod, 0)
  end
  return mod
end

local function find_group(name)
  -- direct hit first: loading every command module costs start-up time
  for _, g in ipairs(M.groups) do
    if g == name then
      local mod = load_group(g)
      if mod then return mod end
    end
  end
  for _, g in ipairs(M.groups) do
    local mod = load_group(g)
    if mod and (mod.name == name or g == name) then return mod end
    if mod and mod.aliases then
      for _, a in ipairs(mod.aliases) do if a == name then return mod end end
    end
  end
  return nil
end

local function find_sub(group, name)
  for _, c in ipairs(group.commands or {}) do
    if c.name == name then return c end
    for _, a in ipairs(c.aliases or {}) do if a == name then return c end end
  end
  return nil
end

-- The global flags as a command takes them: a command's own short flag
-- wins over a global one (`run -v` is a volume; `crater -v` before the
-- command is still the version).
local function globals_for(cmd)
  local seen, short = {}, {}
  for _, f in ipairs(cmd.flags or {}) do
    seen[f.name] = true
    if f.short then short[f.short] = true end
  end
  local out = {}
  for _, f in ipairs(M.global_flags) do
    if not seen[f.name] then
      if f.short and short[f.short] then
        local g = {}
        for k, v in pairs(f) do g[k] = v end
        g.short = nil
        f = g
      end
      out[#out + 1] = f
    end
  end
  return out
end

local function all_flags(cmd)
  local specs = {}
  for _, f in ipairs(cmd.flags or {}) do specs[#specs + 1] = f end
  for _, f in ipairs(globals_for(cmd)) do specs[#specs + 1] = f end
  return specs
end

local function main_help(out)
  out:write("crater: container runtime host (containerd-class, with Lua policies)\n\n",
    "Usage: crater [GLOBAL FLAGS] COMMAND [SUBCOMMAND] [FLAGS] [ARGS]\n\nCommands:\n")
  for _, g in ipairs(M.groups) do
    local mod = load_group(g)
    if mod then out:write(string.format("  %-12s %s\n", mod.name, mod.summary or "")) end
  end
  out:write("\nGlobal flags:\n", args.help(M.global_flags), "\n\n",
    "Environment (besides the flags' own):\n",
    "  CRATER_STATE DIR               task and runtime state (default /run/crater, or ROOT/run)\n",
    "  CRATER_RUNTIME NAME            default OCI runtime: crater, runc, crun or a path\n",
    "  CRATER_SNAPSHOTTER NAME        default snapshotter\n",
    "  CRATER_JIT on                  LuaJIT's trace compiler (off: a command is too short for it)\n\n",
    "Run 'crater COMMAND --help' for a command's usage.\n")
end

local function group_help(out, g)
  out:write(string.format("crater %s: %s\n\nUsage: crater %s SUBCOMMAND [FLAGS] [ARGS]\n\nSubcommands:\n",
    g.name, g.summary or "", g.name))
  for _, c in ipairs(g.commands) do
    local names = c.name
    if c.aliases then names = names .. ", " .. table.concat(c.aliases, ", ") end
    out:write(string.format("  %-20s %s\n", names, c.summary or ""))
  end
  out:write("\nRun 'crater ", g.name, " SUBCOMMAND --help' for details.\n")
end

local function command_help(out, path, cmd)
  out:write(string.format("crater %s: %s\n\nUsage: crater %s%s%s\n", path, cmd.summary or "",
    path, (cmd.flags and #cmd.flags > 0) and " [FLAGS]" or "", cmd.usage and (" " .. cmd.usage) or ""))
  if cmd.description then out:write("\n", cmd.description, "\n") end
  if cmd.flags and #cmd.flags > 0 then out:write("\nFlags:\n", args.help(cmd.flags), "\n") end
  out:write("\nGlobal flags:\n", args.help(globals_for(cmd)), "\n")
  if cmd.examples then out:write("\nExamples:\n", cmd.examples, "\n") end
end

--- The context handed to commands.
local Ctx = {}
Ctx.__index = Ctx

--- Opens (once) and returns the client for --root/--namespace.
function Ctx:client()
  if self._client then return self._client end
  local crater = require "crater"
  local cfg, cerr = require("crater.hosts").load_config(self.flags.config)
  if not cfg then error({ crater_fail = true, msg = tostring(cerr) }, 0) end
  local host = require("crater.policy").new { config = cfg.policies or {} }:load_configured()
  local c, err = crater.open { root = self.root, namespace = self.namespace, policies = host }
  if not c then
    error({ crater_fail = true, msg = "open " .. (self.root or crater.DEFAULT_ROOT) .. ": " .. tostring(err) }, 0)
  end
  self._client = c
  c.config = cfg -- crater config (unpack.max_layer_size, ...) for the library
  return c
end

--- Prints a listing: a table for people or JSON (with --format json).
---@param rows table[]     the records (printed as-is in JSON)
---@param columns table[]  table columns {title=, key= | get=}
---@param quiet_key? string with --quiet, print only this field per row
function Ctx:list(rows, columns, quiet_key)
  if self.format == "json" then
    output.json(self.out, setmetatable(rows, require("crater.json").array_mt))
  elseif quiet_key and self.flags.quiet then
    for _, r in ipairs(rows) do self.out:write(tostring(r[quiet_key]), "\n") end
  else
    output.table(self.out, columns, rows)
  end
end

--- Prints one record: JSON, or "key: value" lines for people.
function Ctx:record(value, keys)
  if self.format == "json" or not keys then
    output.json(self.out, value)
    return
  end
  for _, k in ipairs(keys) do
    local v = value[k]
    if type(v) == "table" then v = require("crater.util").format_labels(v) end
    self.out:write(string.format("%-12s %s\n", k .. ":", v == nil and "-" or tostring(v)))
  end
end

--- Raises a failure that the dispatcher prints as "crater: msg" (exit 1),
--- or {"error": msg, "kind": "unknown"} on stderr with --format json.
function Ctx:fail(msg, ...)
  error({ crater_fail = true, msg = select("#", ...) > 0 and string.format(msg, ...) or msg }, 0)
end

-- an error kind as the API returns them ("not_found", "unauthenticated", ...)
local function kind_or_nil(k)
  if type(k) == "string" and k:match("^[a-z][a-z_]*$") then return k end
  return nil
end

--- Unwraps an (ok, err, kind) triple: returns ok or fails with err,
--- keeping the kind for `--format json` error output.
function Ctx:check(v, err, ...)
  if v == nil or v == false then
    error({ crater_fail = true, msg = tostring(err), kind = kind_or_nil((...)) }, 0)
  end
  return v, err, ...
end

-- Failure output.  For people: "crater: msg".  With --format json (given
-- before or after the command), one JSON object on stderr:
-- {"error": msg, "kind": kind}; kind is the API's error kind, "unknown"
-- when a command failed without one, "invalid_argument" for usage errors
-- (exit 2), "internal" for crashes.  Exit codes do not change.
local json_errors = false
local function print_failure(msg, kind)
  if json_errors then
    io.stderr:write(require("crater.json").encode { error = msg, kind = kind or "unknown" }, "\n")
  else
    io.stderr:write("crater: ", msg, "\n")
  end
end

local function new_ctx(g, flags)
  local fmt = flags.format or "table"
  if fmt ~= "table" and fmt ~= "json" then args.usage_error("--format must be table or json, got %q", fmt) end
  return setmetatable({
    root = flags.root or os.getenv("CRATER_ROOT"),
    namespace = flags.namespace or os.getenv("CRATER_NAMESPACE") or "default",
    format = fmt, flags = flags, out = io.stdout, err = io.stderr,
  }, Ctx)
end

local function run_command(path, cmd, argv, first)
  local flags, pos = args.parse(argv, first, all_flags(cmd), cmd.stop_at_positional)
  if flags.format == "json" then json_errors = true end
  if flags.help then
    command_help(io.stdout, path, cmd)
    return M.EXIT_OK
  end
  if flags.debug then require("crater.core").set_log_level("debug") end
  if cmd.min_args and #pos < cmd.min_args then
    args.usage_error("%s: expected at least %d argument%s", path, cmd.min_args, cmd.min_args == 1 and "" or "s")
  end
  if cmd.max_args and #pos > cmd.max_args then
    args.usage_error("%s: expected at most %d argument%s", path, cmd.max_args, cmd.max_args == 1 and "" or "s")
  end
  local ctx = new_ctx(nil, flags)
  ctx.path = path
  local ok, r1, r2, r3 = pcall(cmd.run, ctx, pos, flags)
  -- served by `crater daemon`: the worker closes the store after its
  -- exit code has gone to the client (cli/daemon.lua)
  if ctx._client and not require("crater").served_by then ctx._client:close() end
  if not ok then error(r1, 0) end
  if r1 == nil and r2 ~= nil then
    print_failure(tostring(r2), kind_or_nil(r3))
    return M.EXIT_ERROR
  end
  if type(r1) == "number" then return r1 end
  return M.EXIT_OK
end

local function dispatch(argv)
  local gflags, rest = args.parse(argv, 1, M.global_flags, true)
  if gflags.format == "json" then json_errors = true end
  if gflags.version then
    io.stdout:write("crater ", require("crater").version, "\n")
    return M.EXIT_OK
  end
  if #rest == 0 then
    main_help(gflags.help and io.stdout or io.stderr)
    return gflags.help and M.EXIT_OK or M.EXIT_USAGE
  end
  if rest[1] == "help" then
    table.remove(rest, 1)
    rest[#rest + 1] = "--help"
    if #rest == 1 then main_help(io.stdout); return M.EXIT_OK end
  end
  -- global flags given before the group are re-applied to the command
  local pre = {}
  for i = 1, #argv - #rest do pre[#pre + 1] = argv[i] end
  local g = find_group(rest[1])
  if not g then args.usage_error("unknown command %q (see 'crater --help')", rest[1]) end
  if not g.commands then
    local a = {}
    for i = 2, #rest do a[#a + 1] = rest[i] end
    for i = #pre, 1, -1 do table.insert(a, 1, pre[i]) end
    return run_command(g.name, g, a, 1)
  end
  local sub = rest[2]
  if sub == nil or sub == "--help" or sub == "-h" then
    group_help(sub and io.stdout or io.stderr, g)
    return sub and M.EXIT_OK or M.EXIT_USAGE
  end
  local cmd = find_sub(g, sub)
  if not cmd then args.usage_error("unknown subcommand %q for %s (see 'crater %s --help')", sub, g.name, g.name) end
  local a = {}
  for i = 3, #rest do a[#a + 1] = rest[i] end
  for i = #pre, 1, -1 do table.insert(a, 1, pre[i]) end
  return run_command(g.name .. " " .. cmd.name, cmd, a, 1)
end

--- Entry point: runs argv, returns the exit code.
---@param argv string[]
---@return integer
function M.main(argv)
  -- A command lives a few milliseconds: LuaJIT's trace compiler spent more
  -- compiling loops (pairs(), which it cannot compile, aborts its traces)
  -- than they saved; the interpreter alone made `crater run --rm IMAGE`
  -- ~0.3 ms faster (interleaved A/B).  The heavy work is in C either way.
  -- CRATER_JIT=on turns the compiler back on (docs/cli.md).
  -- (on, too: a `crater daemon` worker inherits the daemon's setting)
  if os.getenv("CRATER_JIT") == "on" then require("jit").on() else require("jit").off() end
  json_errors = false
  local ok, rc = xpcall(function() return dispatch(argv) end, function(e)
    if type(e) == "table" then return e end
    return debug.traceback(tostring(e), 2)
  end)
  if ok then return rc end
  if args.is_usage_error(rc) then
    print_failure(rc.msg, "invalid_argument")
    return M.EXIT_USAGE
  end
  if type(rc) == "table" and rc.crater_fail then
    print_failure(tostring(rc.msg), rc.kind)
    return M.EXIT_ERROR
  end
  print_failure("internal error: " .. tostring(rc), "internal")
  return M.EXIT_ERROR
end

return M
