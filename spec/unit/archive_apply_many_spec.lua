-- core.archive_apply_many (independent layers on a thread pool) and
-- core.archive_fix_parents (the implicit-parent fix-up of an isolated
-- overlay apply, run once the lowers exist).
local core = require "crater.core"

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok == true or ok == 0, cmd)
end

local function stat(path, fmt)
  return io.popen("stat -c '" .. fmt .. "' '" .. path .. "'"):read("*l")
end

describe("core.archive_apply_many", function()
  local tmp
  before_each(function()
    tmp = io.popen("mktemp -d /tmp/crater-apply-many.XXXXXX"):read("*l")
    -- lower: a 0750 1000:1001 directory; upper: a file below it, without
    -- a directory entry of its own (an implicit parent)
    sh(("mkdir -p %s/s1/app/deep && echo a > %s/s1/app/deep/a && chmod 0750 %s/s1/app/deep"
      .. " && chown 1000:1001 %s/s1/app/deep"
      .. " && tar -C %s/s1 -czf %s/l1.tgz app"):format(tmp, tmp, tmp, tmp, tmp, tmp))
    sh(("mkdir -p %s/s2/app/deep && echo b > %s/s2/app/deep/b && tar -C %s/s2 -czf %s/l2.tgz app/deep/b")
      :format(tmp, tmp, tmp, tmp))
    sh(("mkdir %s/u1 %s/u2 %s/u3"):format(tmp, tmp, tmp))
  end)
  after_each(function() sh("rm -rf '" .. tmp .. "'") end)

  it("applies layers in parallel, each result in item order, and lists implicit parents", function()
    local want2 = io.popen("gzip -dc " .. tmp .. "/l2.tgz | sha256sum"):read("*l"):match("^(%x+)")
    local rs = core.archive_apply_many({
      { dir = tmp .. "/u1", layer = tmp .. "/l1.tgz", compression = "gzip", record_implicit = true },
      { dir = tmp .. "/u2", layer = tmp .. "/l2.tgz", compression = "gzip", record_implicit = true,
        expected_diff_id = "sha256:" .. want2 },
      { dir = tmp .. "/u3", layer = tmp .. "/l2.tgz", compression = "gzip", expected_diff_id = "sha256:00" },
      { dir = tmp .. "/missing", layer = tmp .. "/l2.tgz", compression = "gzip" },
    }, { parallel = 2 })
    assert.equal(4, #rs)
    assert.is_nil(rs[1].err)
    assert.is_nil(rs[1].implicit) -- every parent has its own entry
    assert.equal("sha256:" .. want2, rs[2].diff_id)
    table.sort(rs[2].implicit)
    assert.same({ "app", "app/deep" }, rs[2].implicit)
    assert.equal("data_loss", rs[3].kind)
    assert.equal("not_found", rs[4].kind)
    assert.equal("b\n", io.open(tmp .. "/u2/app/deep/b"):read("*a"))
    assert.equal("755 0:0", stat(tmp .. "/u2/app/deep", "%a %u:%g"))
    -- the fix-up, once the lower exists: the lower directory's metadata
    assert.is_true(core.archive_fix_parents(tmp .. "/u2", rs[2].implicit, { tmp .. "/u1" }))
    assert.equal("750 1000:1001", stat(tmp .. "/u2/app/deep", "%a %u:%g"))
    assert.equal(stat(tmp .. "/u1/app/deep", "%Y"), stat(tmp .. "/u2/app/deep", "%Y"))
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.archive_apply_many({ { dir = tmp } }) end)
    assert.has_error(function() core.archive_apply_many({}, { parallel = -1 }) end)
    assert.has_error(function()
      core.archive_apply_many({ { dir = tmp .. "/u1", layer = tmp .. "/l1.tgz", compression = "lz4" } })
    end)
    assert.has_error(function() core.archive_fix_parents(tmp, "x", {}) end)
  end)
end)
