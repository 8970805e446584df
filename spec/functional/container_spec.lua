-- Containers through `crater`: the same containers run by runc and by
-- crater-runtime (`crater run --runtime runc|crater` on one busybox rootfs
-- from spec/support/bundle.lua's builder) must look the same from inside:
-- exit codes, capability / NoNewPrivs / Seccomp lines of /proc/self/status,
-- `id`, hostname, the mount table, open fds, rlimits, namespaces, and the
-- failures (read-only root, seccomp).  Also the container metadata CLI
-- (create, ls, info, label, rm) on the SQLite store.
-- Every test removes its containers and tasks (after_each), also when an
-- assertion fails half-way; the temp root goes in teardown.
local proc = require "support.proc"
local runner = require "functional.run_spec"

local BUILD = os.getenv("CRATER_BUILD") or "build"
local is_root = proc.run("id -u").stdout:match("^0") ~= nil
local have_crt = proc.run("test -x " .. proc.quote(BUILD .. "/bin/crater-runtime")).ok
local have_runc = proc.run("command -v runc").ok

describe("crater container metadata (CLI)", function()
  local env
  setup(function() env = runner.env(nil) end)
  teardown(function() if env then env:cleanup() end end)

  it("creates, lists, shows, labels and removes containers in SQLite", function()
    local r = env:crater { "container", "create", "--rootfs", env.rootfs, "--label", "team=core", "--runtime", "runc", "c1", "true" }
    assert.are.equal(0, r.code, r.stderr)
    r = env:crater { "container", "create", "--rootfs", env.rootfs, "c1", "true" }
    assert.are_not.equal(0, r.code)
    assert.matches("already exists", r.stderr)
    r = env:crater { "container", "create", "--rootfs", env.rootfs, "bad/id", "true" }
    assert.are_not.equal(0, r.code)
    assert.are.equal("c1\n", env:crater { "container", "ls", "-q" }.stdout)
    local info = require("crater.json").decode(env:crater { "container", "info", "c1" }.stdout)
    assert.are.equal("runc", info.runtime)
    assert.are.equal(env.rootfs, info.spec.root.path)
    assert.are.same({ "true" }, info.spec.process.args)
    assert.are.equal("core", info.labels.team)
    r = env:crater { "container", "label", "c1", "team=", "tier=1" }
    assert.are.equal(0, r.code, r.stderr)
    info = require("crater.json").decode(env:crater { "container", "info", "c1" }.stdout)
    assert.are.same({ tier = "1" }, info.labels)
    -- ls FILTER... as ctr's: clauses AND, filters OR
    assert.are.equal(0, env:crater { "container", "create", "--rootfs", env.rootfs, "-l", "tier=2", "c2", "true" }.code)
    local function ls(...) return env:crater { "container", "ls", "-q", ... }.stdout end
    assert.are.equal("c1\nc2\n", ls())
    assert.are.equal("c1\n", ls("labels.tier==1"))
    assert.are.equal("c2\n", ls("labels.tier!=1"))
    assert.are.equal("c1\nc2\n", ls("labels.tier"))
    assert.are.equal("c1\nc2\n", ls("id==c1", "id==c2"))
    assert.are.equal("", ls("runtime==runc,labels.tier==2"))
    assert.are.equal("c1\n", ls("runtime==runc,labels.tier==1"))
    r = env:crater { "container", "ls", "bad filter==" }
    assert.are_not.equal(0, r.code)
    assert.matches("filter", r.stderr)
    assert.are.equal(0, env:crater { "container", "rm", "c2" }.code)
    -- no JSON files: the record is in metadata.db
    assert.is_false(proc.run("test -e " .. proc.quote(env.root .. "/containers")).ok)
    local db = proc.run("sqlite3 " .. proc.quote(env.root .. "/metadata.db") .. " 'select id, runtime from containers'")
    if db.ok then assert.are.equal("c1|runc\n", db.stdout) end
    -- namespace delete names the container
    r = env:crater { "namespace", "rm", "default" }
    assert.are_not.equal(0, r.code)
    assert.matches("1 container", r.stderr)
    assert.are.equal(0, env:crater { "container", "rm", "c1" }.code)
    assert.are.equal("", env:crater { "container", "ls", "-q" }.stdout)
    r = env:crater { "container", "rm", "c1" }
    assert.are_not.equal(0, r.code)
    assert.matches("not found", r.stderr)
  end)

  it("Lua API: create returns the record as get reads it back (not re-read)", function()
    local script = env.dir .. "/create_get.lua"
    proc.write_file(script, [[
local crater = require "crater"
local oci = require "crater.oci"
local c = assert(crater.open { root = arg[1] })
local cs = c:containers()
local ctr = assert(cs:create("lc1", { rootfs = arg[2], runtime = "runc", labels = { a = "1" },
  extensions = { x = { y = 2 } }, spec = { oci.with_process_args("echo", "hi") } }))
local made, got = ctr:info(), assert(cs:get("lc1")):info()
assert(type(made.created_at) == "number" and made.created_at > 0, "created_at")
assert(made.created_at == got.created_at and made.updated_at == got.updated_at, "times")
local json = require "crater.json"
assert(json.encode(made) == json.encode(got), json.encode(made) .. "\n" .. json.encode(got))
assert(cs:delete("lc1"))
c:close()
print("same")
]])
    local r = proc.run("luajit " .. proc.quote(script) .. " " .. proc.quote(env.root) .. " " .. proc.quote(env.rootfs))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("same\n", r.stdout)
  end)
end)

if not (is_root and have_crt and have_runc) then
  describe("runc vs crater-runtime", function() pending("needs root, runc and crater-runtime") end)
  return
end

-- What each probe prints; the outputs of the two runtimes must be equal.
local probes = {
  { name = "exit code", cmd = { "sh", "-c", "exit 3" } },
  { name = "status lines",
    cmd = { "sh", "-c", "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status" } },
  { name = "status lines, --no-new-privileges --cap-drop", flags = { "--no-new-privileges", "--cap-drop", "NET_RAW" },
    cmd = { "sh", "-c", "grep -E '^(Cap(Prm|Eff|Bnd)|NoNewPrivs):' /proc/self/status" } },
  { name = "status lines, --privileged", flags = { "--privileged" },
    cmd = { "sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status" } },
  { name = "id as root", cmd = { "id" } },
  { name = "id as app", flags = { "--user", "app" }, cmd = { "id" } },
  { name = "id as 1000:2000", flags = { "--user", "1000:2000" }, cmd = { "id" } },
  { name = "hostname", flags = { "--hostname", "same-host" }, cmd = { "hostname" } },
  { name = "mounts visible", cmd = { "sh", "-c", "awk '{print $2, $3}' /proc/self/mounts | sort" } },
  { name = "mount options of /proc, /sys, /dev",
    cmd = { "sh", "-c", "awk '$2==\"/proc\"||$2==\"/sys\"||$2==\"/dev\"||$2==\"/dev/shm\"{print $2, $4}' /proc/self/mounts | sed 's/,size=[0-9]*k//' | sort" } },
  { name = "fds", cmd = { "ls", "/proc/self/fd" } },
  { name = "rlimit nofile", cmd = { "sh", "-c", "ulimit -n; ulimit -Hn" } },
  { name = "env and cwd", flags = { "--env", "A=1", "--cwd", "/tmp" }, cmd = { "sh", "-c", "pwd; env | sort | grep -v '^HOSTNAME='" } },
  { name = "pid 1 and namespaces", cmd = { "sh", "-c", "echo $$; set -- /proc/[0-9]*; echo $#; ls /sys/class/net" } },
  { name = "masked paths", cmd = { "sh", "-c", "cat /proc/kcore 2>&1 | wc -c; ls /sys/firmware | wc -l" } },
  { name = "read-only rootfs", flags = { "--read-only" }, cmd = { "sh", "-c", "touch /x 2>/dev/null; echo $?" } },
  { name = "seccomp blocks unshare", cmd = { "sh", "-c", "unshare -m true 2>/dev/null; echo $?" } },
  { name = "devices", cmd = { "sh", "-c", "ls /dev | sort; echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c" } },
  { name = "killed by a signal", cmd = { "sh", "-c", "kill -9 $$" } },
}

describe("runc vs crater-runtime on the same containers", function()
  local env
  local ids = {}
  setup(function() env = runner.env(nil) end)
  after_each(function()
    for _, id in ipairs(ids) do
      env:crater { "task", "rm", "-f", id }
      env:crater { "container", "rm", "-f", id }
    end
    ids = {}
  end)
  teardown(function() if env then env:cleanup() end end)

  local function run(rt, i, p)
    local id = "cmp" .. i .. "-" .. rt
    ids[#ids + 1] = id
    local a = { "run", "--rm", "--rootfs", env.rootfs, "--runtime", rt }
    for _, f in ipairs(p.flags or {}) do a[#a + 1] = f end
    a[#a + 1] = id
    for _, c in ipairs(p.cmd) do a[#a + 1] = c end
    return env:crater(a)
  end

  for i, p in ipairs(probes) do
    it("gives the same " .. p.name, function()
      local a = run("runc", i, p)
      local b = run("crater", i, p)
      if p.known and (a.code ~= b.code or a.stdout ~= b.stdout) then
        pending("known difference: " .. p.known .. "\nrunc:\n" .. a.stdout .. "crater:\n" .. b.stdout)
        return
      end
      assert.are.equal(a.code, b.code, "exit codes differ: runc " .. a.code .. " / crater " .. b.code .. "\n" .. a.stderr .. b.stderr)
      assert.are.equal(a.stdout, b.stdout)
      assert.are_not.equal("", a.stdout .. tostring(a.code))
    end)
  end
end)
