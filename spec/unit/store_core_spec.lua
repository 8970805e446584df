-- crater.core store bindings (src/lua/l_store.c): the C surface the Lua
-- objects in lua/crater/ are built on.
local core = require "crater.core"

local function tmpdir()
  local base = os.getenv("CRATER_BUILD") .. "/testtmp"
  os.execute("mkdir -p '" .. base .. "'")
  local p = io.popen("mktemp -d '" .. base .. "/store_spec.XXXXXX'")
  local d = p:read("*l")
  p:close()
  return d
end

local function rmrf(d)
  os.execute("chmod -R u+w '" .. d .. "' 2>/dev/null; rm -rf '" .. d .. "'")
end

local function sha256(s)
  local f = io.popen("printf '%s' '" .. s .. "' | openssl dgst -sha256 -r")
  local out = f:read("*l")
  f:close()
  return "sha256:" .. out:match("^(%x+)")
end

describe("crater.core store", function()
  local dir, s
  before_each(function()
    dir = tmpdir()
    s = assert(core.open(dir .. "/root"))
  end)
  after_each(function()
    s:close()
    rmrf(dir)
  end)

  it("opens a root and closes idempotently", function()
    assert.matches("crater.store", tostring(s))
    assert.equal(dir .. "/root", s:root())
    local s2 = assert(core.open(dir .. "/root"))
    s2:close()
    s2:close()
    assert.has_error(function() s2:namespace_list() end)
  end)

  it("keeps a relative root as an absolute path", function()
    -- the shim and the runtime use paths under the root from other working
    -- directories (overlay options, task files)
    local cwd = assert(os.getenv("PWD"))
    local _, depth = cwd:gsub("/[^/]+", "")
    local rel = ("../"):rep(depth) .. dir:sub(2) .. "/root"
    local s2 = assert(core.open(rel))
    assert.equal(cwd .. "/" .. rel, s2:root())
    s2:close()
  end)

  it("manages namespaces", function()
    assert.is_true(s:namespace_create("one", { team = "core" }))
    local ok, msg, kind = s:namespace_create("one")
    assert.is_nil(ok)
    assert.equal("already_exists", kind)
    assert.matches("already exists", msg)
    ok, msg, kind = s:namespace_create("Bad Name")
    assert.is_nil(ok)
    assert.equal("invalid_argument", kind)
    local ns = assert(s:namespace_get("one"))
    assert.equal("core", ns.labels.team)
    assert.is_true(s:namespace_set_labels("one", { env = "prod" }, false))
    assert.same({ team = "core", env = "prod" }, s:namespace_get("one").labels)
    assert.is_true(s:namespace_set_labels("one", { x = "y" }, true))
    assert.same({ x = "y" }, s:namespace_get("one").labels)
    local list = s:namespace_list()
    assert.equal(1, #list)
    assert.equal("one", list[1].name)
    assert.is_true(s:namespace_delete("one"))
    local _, _, k = s:namespace_get("one")
    assert.equal("not_found", k)
    assert.has_error(function() s:namespace_create(42, "x") end)
  end)

  it("writes, resumes and commits content", function()
    local w = assert(s:content_writer("default", "ref-1", { size = 11 }))
    w:write("hello ")
    assert.equal(6, w:offset())
    w:close()
    local st = s:content_status("default")
    assert.equal(1, #st)
    assert.equal("ref-1", st[1].ref)
    assert.equal(6, st[1].offset)
    assert.equal(11, st[1].total)
    w = assert(s:content_writer("default", "ref-1"))
    assert.equal(6, w:offset())
    local w2, msg, kind = s:content_writer("default", "ref-1")
    assert.is_nil(w2)
    assert.equal("failed_precondition", kind)
    assert.matches("locked", msg)
    w:write("world")
    assert.equal(sha256("hello world"), w:digest())
    local d, status = w:commit(11, sha256("hello world"), { kind = "greeting" })
    assert.equal(sha256("hello world"), d)
    assert.equal("committed", status)
    assert.has_error(function() w:write("x") end)
    w:close()
    local info = assert(s:content_info("default", d))
    assert.equal(11, info.size)
    assert.equal("greeting", info.labels.kind)
    assert.equal("world", s:content_read("default", d, 6, 5))
    assert.equal("hello world", s:content_read("default", d))
    local f = assert(io.open(assert(s:content_path("default", d))))
    assert.equal("hello world", f:read("*a"))
    f:close()
    -- again: exists
    w = s:content_writer("default", "ref-2")
    w:write("hello world")
    local _, st2 = w:commit()
    assert.equal("exists", st2)
    -- not visible elsewhere
    local _, _, k = s:content_info("other", d)
    assert.equal("not_found", k)
  end)

  it("reports size and digest mismatches as expected failures", function()
    local w = s:content_writer("default", "bad")
    w:write("abc")
    local ok, msg, kind = w:commit(4)
    assert.is_nil(ok)
    assert.equal("failed_precondition", kind)
    assert.matches("expected 4, got 3", msg)
    ok, msg, kind = w:commit(3, sha256("abd"))
    assert.is_nil(ok)
    assert.equal("data_loss", kind)
    assert.matches(sha256("abd"), msg, 1, true)
    assert.is_true(w:abort())
    assert.equal(0, #s:content_status("default"))
    local _, _, k = s:content_writer("default", "x", { expected = "sha256:../../etc" })
    assert.equal("invalid_argument", k)
  end)

  it("lists with label filters, relabels, deletes", function()
    for _, v in ipairs { "a", "b", "c" } do
      local w = s:content_writer("default", v)
      w:write("blob " .. v)
      w:commit(nil, nil, { name = v, ["gc.root"] = (v == "a") and "1" or nil })
    end
    assert.equal(3, #s:content_list("default"))
    assert.equal(1, #s:content_list("default", { 'labels."name"==b' }))
    assert.equal(2, #s:content_list("default", { "labels.name==a", "labels.name==c" }))
    assert.equal(1, #s:content_list("default", { 'labels."gc.root"' }))
    local _, _, k = s:content_list("default", { "labels.=" })
    assert.equal("invalid_argument", k)
    assert.has_error(function() s:content_list("default", { 1 }) end)
    local d = sha256("blob b")
    assert.is_true(s:content_set_labels("default", d, { extra = "1" }, false))
    assert.equal("1", s:content_info("default", d).labels.extra)
    assert.is_true(s:content_delete("default", d))
    local _, _, k2 = s:content_info("default", d)
    assert.equal("not_found", k2)
  end)

  it("ingests a file (fast path) and resumes it", function()
    local path = dir .. "/src"
    local f = assert(io.open(path, "wb"))
    local chunk = string.rep("0123456789abcdef", 4096)
    for _ = 1, 100 do f:write(chunk) end
    f:close()
    local w = s:content_writer("default", "file")
    w:write(chunk) -- a partial ingest to resume
    w:close()
    local d, status = s:content_ingest_file("default", "file", path, { size = 100 * #chunk, labels = { src = "file" } })
    assert.is_string(d, status)
    assert.equal("committed", status)
    assert.equal(100 * #chunk, s:content_info("default", d).size)
    assert.equal("file", s:content_info("default", d).labels.src)
    local _, st = s:content_ingest_file("default", "again", path)
    assert.equal("exists", st)
    local ok, _, kind = s:content_ingest_file("default", "wrong", path, { expected = sha256("nope") })
    assert.is_nil(ok)
    assert.equal("data_loss", kind)
    local _, _, k2 = s:content_ingest_file("default", "nofile", dir .. "/missing")
    assert.equal("not_found", k2)
    assert.is_true(s:content_abort("default", "nofile") == nil or true)
  end)

  it("keeps images and leases", function()
    local d = sha256("x")
    local img = assert(s:image_create("default", {
      name = "example.com/app:1",
      target = { media_type = "application/vnd.oci.image.manifest.v1+json", digest = d, size = 1 },
      labels = { tier = "web" },
    }))
    assert.equal(d, img.target.digest)
    local _, _, k = s:image_create("default", img)
    assert.equal("already_exists", k)
    img.target.size = 2
    img.labels.tier = "db"
    assert(s:image_update("default", img))
    local got = assert(s:image_get("default", "example.com/app:1"))
    assert.equal(2, got.target.size)
    assert.equal("db", got.labels.tier)
    assert.equal(1, #s:image_list("default", { "labels.tier==db" }))
    assert.equal(0, #s:image_list("default", { "name==other" }))
    assert.has_error(function() s:image_create("default", { name = "x" }) end)
    assert.is_true(s:image_delete("default", "example.com/app:1"))

    assert.is_true(s:lease_create("default", "pull-1", { purpose = "pull" }, 60))
    assert.is_true(s:lease_add_resource("default", "pull-1", "content", d))
    assert.is_true(s:lease_add_resource("default", "pull-1", "ingest", "layer-1"))
    local leases = s:lease_list("default")
    assert.equal(1, #leases)
    assert.equal("pull", leases[1].labels.purpose)
    assert.equal(2, #leases[1].resources)
    assert.is_number(leases[1].expire_at)
    local _, msg, k2 = s:namespace_delete("default")
    assert.equal("failed_precondition", k2)
    assert.matches("1 lease", msg)
    assert.is_true(s:lease_delete("default", "pull-1"))
  end)

  it("checks and repairs", function()
    local w = s:content_writer("default", "r")
    w:write("to be orphaned")
    local d = w:commit()
    local rep = s:check{}
    assert.equal(1, rep.checked)
    assert.same({}, rep.corrupt)
    assert.is_false(rep.repaired)
    os.execute("chmod u+w '" .. s:content_path("default", d) .. "'")
    local f = io.open(s:content_path("default", d), "wb")
    f:write("tampered")
    f:close()
    rep = s:check{ quick = true }
    assert.equal(1, #rep.corrupt)
    assert.equal(d, rep.corrupt[1].digest)
    rep = s:check{ repair = true }
    assert.is_true(rep.repaired)
    local _, _, k = s:content_info("default", d)
    assert.equal("not_found", k)
    assert.equal(0, #s:check{}.corrupt)
  end)

  -- what `crater daemon` workers prepare while they wait (cli/daemon.lua)
  it("lists its cached statements and prepares given ones without running them", function()
    local d = sha256("y")
    assert(s:image_create("default", { name = "keep:1",
      target = { media_type = "application/vnd.oci.image.manifest.v1+json", digest = d, size = 1 } }))
    local used = s:statements()
    assert.is_true(#used > 0)
    -- every call commits or rolls back its own transaction (a worker
    -- checks this between commands)
    assert.is_false(s:in_transaction())
    local seen = {}
    for _, sql in ipairs(used) do
      assert.is_nil(seen[sql], "listed twice: " .. sql)
      seen[sql] = true
    end
    -- a fresh connection: the same texts are prepared (counted once each,
    -- cached already or not), nonsense is refused, and a statement that
    -- would delete every image is prepared and never run
    local s2 = assert(core.open(dir .. "/root"))
    local list = { "DELETE FROM images", "this is not SQL" }
    for _, sql in ipairs(used) do list[#list + 1] = sql end
    assert.equal(#used + 1, s2:warm_statements(list))
    local now = {}
    for _, sql in ipairs(s2:statements()) do now[sql] = true end
    assert.is_true(now["DELETE FROM images"])
    assert.is_nil(now["this is not SQL"])
    for _, sql in ipairs(used) do assert.is_true(now[sql], sql) end
    assert.equal(1, #s2:image_list("default", {}))
    -- and they serve the connection's own queries
    assert.equal(d, assert(s2:image_get("default", "keep:1")).target.digest)
    s2:close()
    assert.has_error(function() s:warm_statements("x") end)
  end)

  it("lets writers outlive a closed store", function()
    local w = s:content_writer("default", "late")
    s:close()
    assert.has_error(function() s:content_list("default") end)
    w:write("late data")
    local d, st = w:commit()
    assert.equal("committed", st)
    s = assert(core.open(dir .. "/root"))
    assert.equal(9, s:content_info("default", d).size)
  end)
end)
