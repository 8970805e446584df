-- Functional: crater's real unpack path (`crater image import` + `crater
-- image unpack`/`image mount`) against `umoci unpack` (the reference), for
-- the overlayfs snapshotter (compared through the read-only mount) and
-- native.  Trees are compared with tests/archive/treecmp.py: path, type,
-- mode, uid/gid, size, sha256, link target, rdev, xattrs, which names share
-- an inode, and mtimes of everything but directories and symlinks
-- (--mtime-nondir).  Excluded: directory mtimes (they record when an
-- unpacker last wrote into a directory: umoci restores the parent's time
-- after each entry, crater and containerd only set the times the layer's
-- own directory entries carry) and symlink mtimes (not settable the same
-- way by every tool; umoci's listing uses lchown-era times); the rootfs
-- directory itself (--no-root: umoci chmods its bundle rootfs).
--
-- Also the unpack path's failure cases: a decompression bomb stopped by
-- the `unpack.max_layer_size` config limit and a layer escaping with `../`,
-- each leaving no snapshot, no mountable rootfs and the host untouched.
local proc = require "support.proc"
local cli = require "support.cli"
local json = require "crater.json"
local core = require "crater.core"
local fx = require "support.fixtures"

local src = os.getenv("CRATER_SRC") or "."
local q = proc.quote

local function have(cmd) return proc.run("command -v " .. cmd .. " >/dev/null 2>&1").ok end

local function mounted(dir)
  for line in io.lines("/proc/self/mountinfo") do
    if line:match("^%S+ %S+ %S+ %S+ (%S+)") == dir then return true end
  end
  return false
end

-- Extra images the fixtures lack, built with python tarfile + umoci:
--   xlayer: hardlinks to files of lower layers (also to a setuid file with
--           an xattr and another owner), file<->dir<->symlink replacements
--           without whiteouts, an opaque dir re-populated in the same
--           layer, whiteout + re-create of the same name in one layer, a
--           whited-out directory re-created later, parents written
--           implicitly (no directory entry) under a 0700 1000:1000 dir
--   bomb:   busybox-free 1-layer image whose layer is 64 MiB of zeros
--           (~64 KiB gzip)
--   escape: a layer with a `../` entry
local BUILD = [==[
import gzip, io, os, subprocess, sys, tarfile
out = sys.argv[1]; work = out + "/work"; os.makedirs(work, exist_ok=True)
class L:
    def __init__(s, n):
        s.p = "%s/%s.tar" % (work, n); s.t = tarfile.open(s.p, "w", format=tarfile.PAX_FORMAT)
    def i(s, n, ty, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(n); ti.type = ty; ti.mode = mode; ti.uid = uid; ti.gid = gid
        ti.mtime = 1700000000 + len(n); return ti
    def d(s, n, mode=0o755, uid=0, gid=0): s.t.addfile(s.i(n + "/", tarfile.DIRTYPE, mode, uid, gid))
    def f(s, n, data, mode=0o644, uid=0, gid=0, x=None):
        data = data.encode(); ti = s.i(n, tarfile.REGTYPE, mode, uid, gid); ti.size = len(data)
        if x: ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in x.items()}
        s.t.addfile(ti, io.BytesIO(data))
    def s(s_, n, tgt): ti = s_.i(n, tarfile.SYMTYPE, 0o777); ti.linkname = tgt; s_.t.addfile(ti)
    def h(s, n, tgt): ti = s.i(n, tarfile.LNKTYPE, 0o644); ti.linkname = tgt; s.t.addfile(ti)
    def close(s): s.t.close(); return s.p
a = L("x1")
a.d("a"); a.f("a/f", "file f\n", 0o640, 1000, 1001, {"user.k": "v"}); a.f("a/g", "file g\n"); a.f("a/keep", "keep\n")
a.d("d2f"); a.f("d2f/child", "c\n"); a.f("f2d", "f2d\n"); a.d("d2s"); a.f("d2s/c", "c\n"); a.s("s2d", "a")
a.d("opq"); a.f("opq/old", "old\n"); a.d("opq/sub"); a.f("opq/sub/x", "x\n"); a.f("opq/same", "lower\n")
a.d("wh"); a.f("wh/x", "x\n"); a.f("wh/recreate", "lower\n"); a.d("wh/dir"); a.f("wh/dir/in", "in\n")
a.d("hl"); a.f("hl/base", "hardlink base\n", 0o4755, 0, 0, {"user.h": "1"}); a.f("hl/other", "other\n")
a.d("home"); a.d("home/app", 0o700, 1000, 1000); a.d("home/app/deep", 0o750, 1000, 1001)
x1 = a.close()
b = L("x2")
b.d("hl"); b.h("hl/link-to-lower", "hl/base"); b.h("hl/link2", "a/g")
b.h("new/dir/link3", "a/f")            # a cross-layer link under new implicit parents
b.f("d2f", "now a file\n"); b.d("f2d"); b.f("f2d/in", "in\n"); b.s("d2s", "/a"); b.d("s2d"); b.f("s2d/in", "in\n")
b.d("opq"); b.f("opq/.wh..wh..opq", ""); b.f("opq/same", "upper\n"); b.d("opq/sub2")
b.d("wh"); b.f("wh/.wh.x", ""); b.f("wh/.wh.recreate", ""); b.f("wh/recreate", "upper\n"); b.f("wh/.wh.dir", "")
b.f("a/.wh.keep", "")
b.f("home/app/deep/implicit", "parents without entries\n", 0o600, 1000, 1000)
x2 = b.close()
c = L("x3")
c.f("a/.wh.f", "")
c.f("hl/other", "other v2\n")
c.d("wh"); c.d("wh/dir"); c.f("wh/dir/new", "new\n")
x3 = c.close()
lay = out + "/oci"
def u(*args): subprocess.run(["umoci", *args], check=True, stdout=subprocess.DEVNULL)
u("init", "--layout", lay)
u("new", "--image", lay + ":xlayer")
for t in (x1, x2, x3): u("raw", "add-layer", "--image", lay + ":xlayer", t)
# the bomb: 64 MiB of zeros in one file
p = work + "/bomb.tar"
with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("zeros"); ti.size = 64 << 20; ti.mtime = 1700000000
    class Z:
        def __init__(s): s.left = 64 << 20
        def read(s, n=-1):
            n = s.left if n < 0 else min(n, s.left); s.left -= n; return bytes(n)
    t.addfile(ti, Z())
u("new", "--image", lay + ":bomb")
u("raw", "add-layer", "--image", lay + ":bomb", p)
# the escape: ../ entry after a harmless one
p = work + "/escape.tar"
with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as t:
    for name, data in (("ok", b"fine\n"), ("../escaped-by-layer", b"pwned\n")):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1700000000
        t.addfile(ti, io.BytesIO(data))
u("new", "--image", lay + ":escape")
u("raw", "add-layer", "--image", lay + ":escape", p)
]==]

describe("unpack vs umoci (real unpack path)", function()
  if type(core.open) ~= "function" then
    it("runs", function() pending("needs store (core.open)") end)
    return
  end
  local ok_tools = have("umoci") and have("python3")
  local root_user = (io.popen("id -u"):read("*l")) == "0"
  local env, extra, refs

  setup(function()
    if not (ok_tools and root_user) then return end
    env = cli.env()
    extra = env.dir .. "/extra"
    proc.write_file(env.dir .. "/build.py", BUILD)
    proc.check("python3 " .. q(env.dir .. "/build.py") .. " " .. q(extra))
    for _, lay in ipairs { fx.layout(), extra .. "/oci" } do
      local r = env:crater { "image", "import", "--base-name", "t/img", lay }
      assert.equal(0, r.code, r.stderr)
    end
    refs = {}
  end)

  teardown(function()
    if not env then return end
    for line in io.lines("/proc/self/mountinfo") do
      local mp = line:match("^%S+ %S+ %S+ %S+ (%S+)")
      if mp and mp:sub(1, #env.dir + 1) == env.dir .. "/" then proc.run("umount -l " .. q(mp)) end
    end
    env:cleanup()
  end)

  -- umoci's reference rootfs for tag (from the fixture or extra layout)
  local function reference(tag, lay)
    if not refs[tag] then
      local b = env.dir .. "/ref-" .. tag
      proc.check(("umoci unpack --image %s %s >/dev/null"):format(q(lay .. ":" .. tag), q(b)))
      refs[tag] = b .. "/rootfs"
    end
    return refs[tag]
  end

  local cases = {
    { "busybox", function() return fx.layout() end },
    { "multilayer", function() return fx.layout() end },
    { "whiteout", function() return fx.layout() end },
    { "xlayer", function() return extra .. "/oci" end },
  }
  for _, c in ipairs(cases) do
    local tag, layout = c[1], c[2]
    for _, sn in ipairs { "overlayfs", "native" } do
      it(tag .. " through " .. sn .. " matches umoci unpack", function()
        if not (ok_tools and root_user) then pending("needs root, umoci and python3") return end
        local ref = reference(tag, layout())
        local r = env:crater { "image", "unpack", "--snapshotter", sn, "t/img:" .. tag }
        if r.code ~= 0 and sn == "overlayfs" and r.stderr:find("overlay", 1, true) then
          pending("overlayfs unavailable: " .. r.stderr) return
        end
        assert.equal(0, r.code, r.stderr)
        local dir = env.dir .. "/mnt-" .. tag .. "-" .. sn
        proc.check("mkdir -p " .. q(dir))
        r = env:crater { "image", "mount", "--snapshotter", sn, "t/img:" .. tag, dir }
        assert.equal(0, r.code, r.stderr)
        local cmp = proc.run(("python3 %s/tests/archive/treecmp.py cmp %s %s --no-root --mtime-nondir")
          :format(q(src), q(ref), q(dir)))
        r = env:crater { "image", "unmount", dir }
        assert.equal(0, r.code, r.stderr)
        assert.is_true(cmp.ok, "trees differ (umoci vs crater " .. sn .. "):\n" .. cmp.stdout .. cmp.stderr)
      end)
    end
  end

  -- what exists in both snapshotters (and no leftovers named extract-*)
  local function snapshots(sn)
    local r = env:crater { "--format", "json", "snapshot", "ls", "--snapshotter", sn }
    assert.equal(0, r.code, r.stderr)
    return json.decode(r.stdout) or {}
  end
  -- the host around the root: a canary tree next to it (names, sizes,
  -- mtimes, modes) and the names beside the root
  local function listing()
    local h = q(env.dir .. "/host")
    proc.check("[ -e " .. h .. "/canary ] || { mkdir -p " .. h .. "/sub && echo untouched > " .. h .. "/canary; }")
    return proc.check("cd " .. q(env.dir .. "/host") .. " && find . | sort | xargs -d '\\n' stat -c '%n %s %Y %a'")
      .. proc.check("ls -a " .. q(env.dir) .. " | grep -v '^mnt-' ; ls -a /tmp | grep -c escaped-by-layer || true")
  end

  for _, sn in ipairs { "overlayfs", "native" } do
    it("stops a decompression bomb at unpack.max_layer_size (" .. sn .. ")", function()
      if not (ok_tools and root_user) then pending("needs root, umoci and python3") return end
      local cfg = env:file("limit.lua", "return { unpack = { max_layer_size = 4 * 1024 * 1024 } }")
      local before = listing()
      local nbefore = #snapshots(sn)
      local layer
      local idx = json.decode(proc.read_file(extra .. "/oci/index.json"))
      local mdigest
      for _, m in ipairs(idx.manifests) do
        if m.annotations["org.opencontainers.image.ref.name"] == "bomb" then mdigest = m.digest end
      end
      local man = json.decode(proc.read_file(extra .. "/oci/blobs/" .. mdigest:gsub(":", "/")))
      layer = man.layers[1].digest
      local r = env:crater { "--config", cfg, "--format", "json", "image", "unpack", "--snapshotter", sn, "t/img:bomb" }
      assert.equal(1, r.code, r.stdout .. r.stderr)
      local e = json.decode(r.stderr)
      assert.equal("resource_exhausted", e.kind, r.stderr)
      assert.truthy(e.error:find(layer, 1, true), "error names the layer: " .. e.error)
      assert.truthy(e.error:find("limit of 4194304 bytes", 1, true), "error names the limit: " .. e.error)
      -- nothing committed or active for it
      local after = snapshots(sn)
      assert.equal(nbefore, #after, json.encode(after))
      for _, s in ipairs(after) do assert.falsy(s.name:find("^extract%-"), s.name) end
      -- no rootfs to mount: mount (same limit) fails the same way, mounts nothing
      local dir = env.dir .. "/mnt-bomb"
      proc.check("mkdir -p " .. q(dir))
      r = env:crater { "--config", cfg, "image", "mount", "--snapshotter", sn, "t/img:bomb", dir }
      assert.equal(1, r.code)
      assert.is_false(mounted(dir))
      assert.equal(nbefore, #snapshots(sn))
      proc.check("rmdir " .. q(dir))
      -- the host outside the root is untouched
      assert.equal(before, listing())
      -- and with the default limit the same image unpacks
      r = env:crater { "image", "unpack", "--snapshotter", sn, "t/img:bomb" }
      assert.equal(0, r.code, r.stderr)
    end)

    it("refuses a layer escaping with ../ and leaves nothing (" .. sn .. ")", function()
      if not (ok_tools and root_user) then pending("needs root, umoci and python3") return end
      local before = listing()
      local nbefore = #snapshots(sn)
      local r = env:crater { "--format", "json", "image", "unpack", "--snapshotter", sn, "t/img:escape" }
      assert.equal(1, r.code, r.stdout .. r.stderr)
      local e = json.decode(r.stderr)
      assert.equal("invalid_argument", e.kind, r.stderr)
      assert.truthy(e.error:find("../escaped-by-layer", 1, true), e.error)
      assert.truthy(e.error:find("escapes the root", 1, true), e.error)
      assert.equal(nbefore, #snapshots(sn))
      assert.equal(before, listing())
      -- nothing landed next to the snapshot dirs either
      local found = proc.run("find " .. q(env.root) .. " -name escaped-by-layer | grep -q .")
      assert.is_false(found.ok, "escaped-by-layer was written somewhere under the root")
      local dir = env.dir .. "/mnt-escape"
      proc.check("mkdir -p " .. q(dir))
      r = env:crater { "image", "mount", "--snapshotter", sn, "t/img:escape", dir }
      assert.equal(1, r.code)
      assert.is_false(mounted(dir))
      proc.check("rmdir " .. q(dir))
    end)
  end
end)
