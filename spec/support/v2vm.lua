-- Runs commands inside a cgroup-v2-only guest (scripts/v2vm), for specs that
-- need a unified cgroup hierarchy the build hosts do not have.
--
--   local v2vm = require "support.v2vm"
--   local r = v2vm.run({ "cat", "/sys/fs/cgroup/cgroup.subtree_control" }, { mem = "1G" })
--   if r.skip then pending(r.skip) end     -- no qemu / kernel: exit 77
--   assert.equal(0, r.code, r.stderr)      -- r.stdout, r.stderr, r.boot, r.accel
--
-- The guest sees the host's / read-only (with a tmpfs overlay) at the same
-- paths, so binaries and files from the build tree work as they are, also
-- under /tmp and /var/tmp; /run and /var/lib/crater are fresh tmpfs there,
-- so anything the guest must read from the host lives elsewhere
-- (M.tmpdir()).  The caller's environment and working directory are
-- carried into the guest.
local proc = require "support.proc"

local M = {}

local q = proc.quote
M.quote = q
local read = proc.read_file

--- Path of scripts/v2vm in the source tree.
function M.script()
  return (os.getenv("CRATER_SRC") or ".") .. "/scripts/v2vm"
end

--- A fresh directory the guest can read (under the build dir, not /tmp);
-- the caller removes it (M.rmdir).
function M.tmpdir(prefix)
  local base = (os.getenv("CRATER_BUILD") or "build") .. "/testtmp"
  os.execute("mkdir -p " .. q(base))
  local p = io.popen("mktemp -d " .. q(base .. "/" .. (prefix or "v2vm") .. ".XXXXXX"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp failed under " .. base)
  return dir
end

function M.rmdir(dir)
  if dir and dir:match("/testtmp/") then os.execute("rm -rf " .. q(dir)) end
end

--- Runs argv in the guest.  opts: mem ("1G"), cpus, timeout (seconds),
-- env ({K=V} set for the command only), log (console log file).
-- Returns {code, stdout, stderr, skip (reason, when exit 77), boot
-- (seconds until the command started), total, accel}.
function M.run(argv, opts)
  opts = opts or {}
  local parts = {}
  for k, v in pairs(opts.env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = "V2VM_TIMES=1"
  parts[#parts + 1] = q(M.script())
  if opts.mem then parts[#parts + 1] = "--mem " .. q(opts.mem) end
  if opts.cpus then parts[#parts + 1] = "--cpus " .. q(opts.cpus) end
  if opts.timeout then parts[#parts + 1] = "--timeout " .. q(opts.timeout) end
  if opts.log then parts[#parts + 1] = "--log " .. q(opts.log) end
  parts[#parts + 1] = "--"
  for _, a in ipairs(argv) do parts[#parts + 1] = q(a) end
  local tmp = os.tmpname()
  os.execute(string.format("( %s ) </dev/null >%s.out 2>%s.err; echo $? >%s.rc",
    table.concat(parts, " "), tmp, tmp, tmp))
  local r = {
    code = tonumber((read(tmp .. ".rc") or ""):match("%d+")),
    stdout = read(tmp .. ".out") or "",
    stderr = read(tmp .. ".err") or "",
  }
  os.remove(tmp); os.remove(tmp .. ".out"); os.remove(tmp .. ".err"); os.remove(tmp .. ".rc")
  local accel, boot, total = r.stderr:match("v2vm: (%w+)[^\n]-, boot ([%d.]+)s, total ([%d.]+)s")
  r.accel, r.boot, r.total = accel, tonumber(boot), tonumber(total)
  if r.code == 77 then   -- the harness's own 77 ends stderr with one "v2vm: why" line
    r.skip = r.stderr:match("v2vm: ([^\n]+)\n?$")
    if r.skip then r.skip = "no cgroup v2 VM: " .. r.skip end
  end
  return r
end

return M
