-- Functional: `crater image mount IMAGE DIR` / `crater image unmount DIR`
-- (like `ctr image mount`): a read-only view of the image's unpacked root
-- filesystem, unpacked on demand, for each built-in snapshotter that works
-- here; unmount leaves no mount and no view snapshot.
local proc = require "support.proc"
local cli = require "support.cli"
local json = require "crater.json"
local core = require "crater.core"
local fx = require "support.fixtures"

local function mounted(dir)
  for line in io.lines("/proc/self/mountinfo") do
    local mp = line:match("^%S+ %S+ %S+ %S+ (%S+)")
    if mp == dir then return true end
  end
  return false
end

describe("crater image mount/unmount", function()
  if type(core.open) ~= "function" then
    it("runs", function() pending("needs store (core.open / l_store.c)") end)
    return
  end
  local env
  before_each(function()
    env = cli.env()
    local r = env:crater { "image", "import", "--base-name", "fixtures/img", fx.layout() }
    assert.equal(0, r.code, r.stderr)
  end)
  after_each(function()
    proc.run("umount -l " .. proc.quote(env.dir .. "/mnt") .. " 2>/dev/null")
    env:cleanup()
  end)

  for _, sn in ipairs { "overlayfs", "native" } do
    it("mounts an image read-only with " .. sn .. " and unmounts it cleanly", function()
      if (io.popen("id -u"):read("*l")) ~= "0" then pending("needs root") return end
      local dir = env.dir .. "/mnt"
      proc.check("mkdir -p " .. proc.quote(dir))
      local r = env:crater { "image", "mount", "--snapshotter", sn, "docker.io/fixtures/img:multilayer", dir }
      if r.code ~= 0 and sn == "overlayfs" and r.stderr:find("overlay", 1, true) then
        pending("overlayfs unavailable here: " .. r.stderr)
        return
      end
      assert.equal(0, r.code, r.stderr)
      assert.is_true(mounted(dir), "not a mount point: " .. dir)
      -- files of the image are visible (busybox-based fixture)
      local bb = proc.run("test -e " .. proc.quote(dir .. "/bin/busybox"))
      assert.is_true(bb.ok, "bin/busybox not visible")
      -- writes fail with EROFS
      local w = proc.run("touch " .. proc.quote(dir .. "/new-file"))
      assert.is_false(w.ok)
      assert.truthy((w.stderr or ""):find("Read%-only file system"), w.stderr)
      -- the view exists while mounted
      r = env:crater { "--format", "json", "snapshot", "ls", "--snapshotter", sn }
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("mount:" .. dir, 1, true), r.stdout)

      r = env:crater { "image", "unmount", dir }
      assert.equal(0, r.code, r.stderr)
      assert.is_false(mounted(dir))
      r = env:crater { "--format", "json", "snapshot", "ls", "--snapshotter", sn }
      assert.equal(0, r.code, r.stderr)
      assert.falsy(r.stdout:find("mount:", 1, true), r.stdout)
      for _, s in ipairs(json.decode(r.stdout) or {}) do assert.not_equal("view", s.kind) end
      -- a second unmount has nothing to do
      r = env:crater { "image", "unmount", dir }
      assert.equal(1, r.code)
    end)
  end

  it("refuses an unknown image", function()
    local r = env:crater { "image", "mount", "no/such:image", env.dir }
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("no/such", 1, true), r.stderr)
  end)
end)
