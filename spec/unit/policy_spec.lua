-- crater.policy: loading (sandbox, schema, priority), hook kinds
-- (admission deny/amend, notify, select), fail-closed/open, the
-- instruction budget under LuaJIT, and the shipped policies.
local policy = require "crater.policy"

local dir
local function write(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function host(files, config)
  local h = policy.new { config = config or {}, budget = 200000 }
  for _, f in ipairs(files) do h:load_file(f) end
  return h
end

describe("crater.policy", function()
  before_each(function()
    local p = io.popen("mktemp -d /tmp/crater-policy.XXXXXX")
    dir = p:read("*l")
    p:close()
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("loads a policy and denies with its reason (first deny wins, by priority)", function()
    local a = write("a.lua", [[return { name = "a", api = 1, priority = 10,
      hooks = { ["image.pre_pull"] = function(ev) return false, "a says no to " .. ev.ref end } }]])
    local b = write("b.lua", [[return { name = "b", api = 1, priority = 20,
      hooks = { ["image.pre_pull"] = function(ev) return false, "b says no" end } }]])
    local h = host { a, b }
    assert.same({}, h.errors)
    local ok, why, kind = h:run("image.pre_pull", { ref = "x" })
    assert.is_nil(ok)
    assert.equal("permission_denied", kind)
    assert.matches("denied by policy b: b says no", why, 1, true)
    local names = {}
    for _, p in ipairs(h:list()) do names[#names + 1] = p.name end
    assert.same({ "b", "a" }, names)
  end)

  it("orders equal priorities by name and rejects a bad priority at load", function()
    local z = write("z.lua", [[return { name = "z", api = 1, hooks = {} }]])
    local y = write("y.lua", [[return { name = "y", api = 1, hooks = {} }]])
    local bad = write("bad.lua", [[return { name = "bad", api = 1, priority = "high", hooks = {} }]])
    local h = host { z, y, bad }
    assert.equal("y", h:list()[1].name)
    assert.equal(1, #h.errors)
    assert.matches("priority must be an integer", h.errors[1].msg)
  end)

  it("chains amendments: later hooks see earlier changes", function()
    local first = write("first.lua", [[return { name = "first", api = 1, priority = 2,
      hooks = { ["container.pre_create"] = function(ev) ev.labels.seen = "first" end } }]])
    local second = write("second.lua", [[return { name = "second", api = 1, priority = 1,
      hooks = { ["container.pre_create"] = function(ev) ev.labels.after = ev.labels.seen end } }]])
    local h = host { first, second }
    local ev = { id = "c", labels = {} }
    assert.is_true(h:run("container.pre_create", ev))
    assert.equal("first", ev.labels.after)
  end)

  it("selection: first non-nil result wins and names the policy", function()
    local none = write("none.lua", [[return { name = "none", api = 1, priority = 5,
      hooks = { ["snapshotter.select"] = function() return nil end } }]])
    local nat = write("nat.lua", [[return { name = "nat", api = 1, priority = 1,
      hooks = { ["snapshotter.select"] = function(ev) if ev.fs_type == "tmpfs" then return "native" end end } }]])
    local h = host { none, nat }
    assert.same({ "native", "nat" }, { h:run("snapshotter.select", { fs_type = "tmpfs" }) })
    assert.is_nil(h:run("snapshotter.select", { fs_type = "ext4" }))
  end)

  it("sandboxes: no io/os.execute/ffi/debug/load, no globals, require allow-listed only", function()
    local cases = {
      { "io.lua", [[local f = io.open("/etc/passwd") return { name = "io", api = 1, hooks = {} }]], "undefined global \"io\"" },
      { "exec.lua", [[os.execute("touch /tmp/pwned") return { name = "x", api = 1, hooks = {} }]], "attempt to call field 'execute'" },
      { "glob.lua", [[leaked = 1 return { name = "g", api = 1, hooks = {} }]], "assignment to global \"leaked\"" },
      { "ffi.lua", [[local ffi = require "ffi" return { name = "f", api = 1, hooks = {} }]], "require \"ffi\" is not allowed" },
      { "dbg.lua", [[debug.sethook() return { name = "d", api = 1, hooks = {} }]], "undefined global \"debug\"" },
      { "load.lua", [[loadstring("x=1")() return { name = "l", api = 1, hooks = {} }]], "undefined global \"loadstring\"" },
    }
    for _, c in ipairs(cases) do
      local h = host { write(c[1], c[2]) }
      assert.equal(1, #h.errors, c[1])
      assert.matches(c[3], h.errors[1].msg, 1, true)
      assert.matches("%[policy%] .*" .. c[1] .. ":1:", h.errors[1].msg)
    end
    local ok = host { write("req.lua", [[local ref = require "crater.reference"
      assert(ref.parse("busybox"))
      return { name = "req", api = 1, hooks = {} }]]) }
    assert.same({}, ok.errors)
    -- ... and cannot be changed through it (for later policies, commands)
    local parse = require("crater.reference").parse
    local h = host { write("mod.lua", [[require("crater.reference").parse = nil
      return { name = "m", api = 1, hooks = {} }]]) }
    assert.equal(1, #h.errors)
    assert.matches("read-only", h.errors[1].msg, 1, true)
    assert.equal(parse, require("crater.reference").parse)
  end)

  it("refuses bytecode", function()
    local path = dir .. "/bc.lua"
    local f = assert(io.open(path, "wb"))
    f:write(string.dump(function() return { name = "bc", api = 1, hooks = {} } end))
    f:close()
    local h = host { path }
    assert.equal(1, #h.errors)
    assert.matches("wrong mode", h.errors[1].msg)
  end)

  it("stops a runaway hook with the instruction budget under LuaJIT (the count hook fires)", function()
    assert.is_table(jit) -- running under LuaJIT with the JIT on
    assert.is_true(jit.status())
    local spin = write("spin.lua", [[return { name = "spin", api = 1, fail = "open",
      hooks = { ["image.post_pull"] = function() local i = 0 while true do i = i + 1 end end,
                ["image.pre_pull"] = function() local i = 0 while true do i = i + 1 end end } }]])
    local h = host { spin }
    local old = io.stderr
    -- a notify hook that blows the budget is reported and skipped
    assert.is_true(h:run("image.post_pull", { ref = "x" }))
    assert.matches("instruction budget of 200000 exceeded", h.warnings[1])
    assert.matches("spin.lua:2", h.warnings[1])
    -- an admission hook of a fail="open" policy: skipped, pull allowed
    assert.is_true(h:run("image.pre_pull", { ref = "x" }))
    -- the same loop at load time is caught too
    local h2 = host { write("spinload.lua", [[while true do end]]) }
    assert.matches("instruction budget", h2.errors[1].msg)
    io.stderr = old
  end)

  it("fails closed: an erroring admission hook denies; a load error denies admissions", function()
    local boom = write("boom.lua", [[return { name = "boom", api = 1,
      hooks = { ["image.pre_pull"] = function(ev) error("cannot decide") end } }]])
    local ok, why, kind = host({ boom }):run("image.pre_pull", { ref = "x" })
    assert.is_nil(ok)
    assert.equal("permission_denied", kind)
    assert.matches("boom.lua:2: cannot decide", why, 1, true)
    local broken = write("broken.lua", "return {")
    local h = host { broken }
    ok, why, kind = h:run("image.pre_pull", { ref = "x" })
    assert.is_nil(ok)
    assert.equal("failed_precondition", kind)
    assert.matches("failed to load", why)
    h = host({ broken }, { on_error = "warn" })
    assert.is_true(h:run("image.pre_pull", { ref = "x" }))
  end)

  it("validates config against the schema: defaults, required, types, unknown keys", function()
    local p = write("s.lua", [[return { name = "s", api = 1,
      schema = { fields = { allow = { type = "array", default = { "a" } }, max = { type = "number", required = true } } },
      hooks = { ["image.pre_pull"] = function(ev, conf) return #conf.allow == 1 and conf.max == 3 end } }]])
    assert.is_true(host({ p }, { config = { s = { max = 3 } } }):run("image.pre_pull", {}))
    assert.matches('field "max" is required', host({ p }, {}).errors[1].msg)
    assert.matches('unknown field "maxx"', host({ p }, { config = { s = { max = 3, maxx = 1 } } }).errors[1].msg)
    assert.matches('must be of type number', host({ p }, { config = { s = { max = "3" } } }).errors[1].msg)
    local unknown = write("u.lua", [[return { name = "u", api = 1, hooks = { ["image.pre_pul"] = function() end } }]])
    assert.matches('unknown hook "image.pre_pul"', host({ unknown }).errors[1].msg)
  end)

  it("reloads from its sources", function()
    local pdir = dir .. "/p"
    os.execute("mkdir -p " .. pdir)
    local f = assert(io.open(pdir .. "/one.lua", "w"))
    f:write([[return { name = "one", api = 1, hooks = {} }]])
    f:close()
    local h = policy.new {}
    assert.equal(1, h:load_dir(pdir))
    f = assert(io.open(pdir .. "/two.lua", "w"))
    f:write([[return { name = "two", api = 1, hooks = {} }]])
    f:close()
    h:reload()
    assert.equal(2, #h:list())
  end)

  describe("shipped policies", function()
    local src = os.getenv("CRATER_SRC") or "."
    it("no-latest denies latest, allows digests, tags and exempt repos", function()
      local h = host({ src .. "/policies/no-latest.lua" }, { config = { ["no-latest"] = { allow = { "docker.io/library/busybox" } } } })
      assert.same({}, h.errors)
      assert.is_nil((h:run("image.pre_pull", { ref = "docker.io/library/redis:latest", domain = "docker.io",
        repository = "library/redis", tag = "latest" })))
      assert.is_true(h:run("image.pre_pull", { ref = "r", domain = "docker.io", repository = "library/redis", tag = "7.2" }))
      assert.is_true(h:run("image.pre_pull", { ref = "r", domain = "docker.io", repository = "library/redis",
        tag = "latest", digest = "sha256:" .. string.rep("a", 64) }))
      assert.is_true(h:run("image.pre_pull", { ref = "b", domain = "docker.io", repository = "library/busybox", tag = "latest" }))
    end)
    it("allowed-registries needs its config and allows only listed registries", function()
      local p = src .. "/policies/allowed-registries.lua"
      assert.equal(1, #host({ p }).errors)
      local h = host({ p }, { config = { ["allowed-registries"] = { registries = { "127.0.0.1:5000", "docker.io/library" } } } })
      assert.is_true(h:run("image.pre_pull", { domain = "127.0.0.1:5000", repository = "x/y" }))
      assert.is_true(h:run("image.pre_pull", { domain = "docker.io", repository = "library/redis" }))
      assert.is_nil((h:run("image.pre_pull", { domain = "docker.io", repository = "evil/redis" })))
      assert.is_nil((h:run("image.pre_pull", { domain = "ghcr.io", repository = "a/b" })))
    end)
    it("default-limits fills missing limits and keeps set ones", function()
      local h = host({ src .. "/policies/default-limits.lua" }, { config = { ["default-limits"] = { memory = 1000 } } })
      local ev = { id = "c", spec = { linux = { resources = { pids = { limit = 5 } } } } }
      assert.is_true(h:run("container.pre_create", ev))
      assert.equal(1000, ev.spec.linux.resources.memory.limit)
      assert.equal(5, ev.spec.linux.resources.pids.limit)
    end)
    it("prefer-native-on-tmpfs selects native on tmpfs only", function()
      local h = host { src .. "/policies/prefer-native-on-tmpfs.lua" }
      assert.equal("native", (h:run("snapshotter.select", { fs_type = "tmpfs" })))
      assert.is_nil(h:run("snapshotter.select", { fs_type = "ext4" }))
    end)
  end)
end)
