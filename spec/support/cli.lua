-- Runs the real crater binary from the build tree against a temp root.
--   local cli = require "support.cli"
--   local env = cli.env()              -- fresh root (removed by env:cleanup())
--   local r = env:crater{"content", "ls"}   -- {code=, stdout=, stderr=}
local proc = require "support.proc"
local daemon = require "support.daemon"

local M = {}

M.bin = (os.getenv("CRATER_BUILD") or "build") .. "/bin/crater"

local Env = {}
Env.__index = Env

--- A fresh temp root.  opts.namespace sets CRATER_NAMESPACE.
function M.env(opts)
  opts = opts or {}
  -- tracked: removed when busted exits, should a spec not clean it up
  local dir = proc.tmpdir("crater-spec")
  local e = setmetatable({ dir = dir, root = dir .. "/root", namespace = opts.namespace }, Env)
  if daemon.enabled then e:start_daemon() end -- the @daemon runs
  return e
end

--- Runs crater with args (a table of strings) and the env's --root.
---@param args string[]
---@param opts? {stdin?: string, env?: table}
function Env:crater(args, opts)
  local parts = { proc.quote(M.bin), "--root", proc.quote(self.root) }
  if self.namespace then parts[#parts + 1] = "--namespace " .. proc.quote(self.namespace) end
  for _, a in ipairs(args) do parts[#parts + 1] = proc.quote(a) end
  return proc.run(table.concat(parts, " "), opts)
end

--- Shell command line for crater with this env's root (for pipelines).
function Env:cmdline(args)
  local parts = { proc.quote(M.bin), "--root", proc.quote(self.root) }
  for _, a in ipairs(args) do parts[#parts + 1] = proc.quote(a) end
  return table.concat(parts, " ")
end

daemon.mixin(Env)

--- Writes data to a file in the env's dir and returns its path.
function Env:file(name, data)
  local p = self.dir .. "/" .. name
  proc.write_file(p, data)
  return p
end

function Env:cleanup()
  self:stop_daemon()
  proc.rmdir(self.dir)
end

--- The reason to skip (loudly, with pending) a spec that needs these
--- programs, or nil when all are on PATH.  scripts/setup installs them all.
---@param tools string[]
function M.missing_tools(tools)
  for _, tool in ipairs(tools) do
    if os.execute("command -v " .. tool .. " >/dev/null 2>&1") ~= 0 then
      return "needs " .. tool .. " (scripts/setup installs it)"
    end
  end
  return nil
end

--- Decodes `--format json` output with one JSON object per line.
function M.json_lines(text)
  local json = require "crater.json"
  local evs = {}
  for line in text:gmatch("[^\n]+") do evs[#evs + 1] = assert(json.decode(line), line) end
  return evs
end

--- sha256 digest of a string, via sha256sum.
function M.sha256(data)
  local r = proc.run("sha256sum", { stdin = data })
  return "sha256:" .. r.stdout:match("^(%x+)")
end

return M
