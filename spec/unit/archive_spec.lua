-- core.archive_apply / core.archive_diff: results, failures as nil,msg,kind,
-- misuse raising.
local core = require "crater.core"

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok == true or ok == 0, cmd)
end

describe("core.archive", function()
  local tmp
  before_each(function()
    tmp = io.popen("mktemp -d /tmp/crater-archive-unit.XXXXXX"):read("*l")
    sh(("mkdir -p %s/src/d && echo hi > %s/src/d/f && ln -s d/f %s/src/l && tar -C %s/src -czf %s/l.tgz ."):format(tmp, tmp, tmp, tmp, tmp))
  end)
  after_each(function() sh("rm -rf '" .. tmp .. "'") end)

  it("applies a gzip layer and reports its diff ID", function()
    sh("mkdir " .. tmp .. "/root")
    local r = assert(core.archive_apply(tmp .. "/root", tmp .. "/l.tgz", { compression = "gzip", whiteouts = "delete" }))
    local want = io.popen("gzip -dc " .. tmp .. "/l.tgz | sha256sum"):read("*l"):match("^(%x+)")
    assert.equal("sha256:" .. want, r.diff_id)
    assert.is_true(r.size > 0)
    assert.equal("hi\n", io.open(tmp .. "/root/d/f"):read("*a"))
  end)

  it("returns nil, msg, kind on expected failures", function()
    sh("mkdir " .. tmp .. "/root")
    local r, msg, kind = core.archive_apply(tmp .. "/root", tmp .. "/l.tgz", { compression = "zstd" })
    assert.is_nil(r)
    assert.equal("invalid_argument", kind)
    assert.truthy(msg:find("compression is zstd but the data is gzip", 1, true))
    r, msg, kind = core.archive_apply(tmp .. "/root", tmp .. "/l.tgz",
      { compression = "gzip", expected_diff_id = "sha256:00" })
    assert.is_nil(r)
    assert.equal("data_loss", kind)
    r, msg, kind = core.archive_apply(tmp .. "/missing", tmp .. "/l.tgz")
    assert.equal("not_found", kind)
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.archive_apply(tmp, tmp .. "/l.tgz", { compression = "lz4" }) end)
    assert.has_error(function() core.archive_apply(tmp, tmp .. "/l.tgz", { whiteouts = "aufs" }) end)
    assert.has_error(function() core.archive_apply(nil, "x") end)
  end)

  it("diffs a tree and applies it back", function()
    local d = assert(core.archive_diff(nil, tmp .. "/src", tmp .. "/out.tar.zst", { compression = "zstd" }))
    assert.truthy(d.digest:match("^sha256:%x+$"))
    sh("mkdir " .. tmp .. "/back")
    local a = assert(core.archive_apply(tmp .. "/back", tmp .. "/out.tar.zst",
      { compression = "zstd", expected_diff_id = d.diff_id }))
    assert.equal(d.uncompressed_size, a.size)
    assert.equal("hi\n", io.open(tmp .. "/back/d/f"):read("*a"))
  end)
end)
