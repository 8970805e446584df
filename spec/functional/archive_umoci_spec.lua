-- Functional: crater's layer apply against umoci's unpack (the reference).
-- Builds a 3-layer OCI image with umoci from busybox-static, unpacks it
-- with `umoci unpack` and with core.archive_apply layer by layer (native /
-- delete mode, diff IDs checked against the image config), and compares
-- the trees with tests/archive/treecmp.py.
local core = require "crater.core"
local cjson = require "cjson"

local src = os.getenv("CRATER_SRC") or "."

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  if ok == true or ok == 0 then return true end
  error(("command failed (%s %s): %s"):format(tostring(how), tostring(code), cmd), 2)
end

local function have(cmd)
  local r = os.execute("command -v " .. cmd .. " >/dev/null 2>&1")
  return r == true or r == 0
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function blob(img, digest)
  return img .. "/blobs/" .. digest:gsub(":", "/")
end

describe("archive apply vs umoci unpack", function()
  local tmp

  before_each(function()
    tmp = io.popen("mktemp -d /tmp/crater-archive-umoci.XXXXXX"):read("*l")
  end)

  after_each(function()
    if tmp and not os.getenv("CRATER_TEST_KEEP") then sh("rm -rf '" .. tmp .. "'") end
  end)

  it("reproduces umoci's tree for a 3-layer busybox image", function()
    if not (have("umoci") and have("python3")) or not io.open("/bin/busybox") then
      pending("needs umoci, python3 and /bin/busybox (busybox-static)")
      return
    end
    local img, b = tmp .. "/img", tmp .. "/bundle"
    sh(("umoci init --layout %s && umoci new --image %s:t"):format(img, img))
    sh(("umoci unpack --image %s:t %s >/dev/null"):format(img, b))
    local r = b .. "/rootfs"
    -- umoci repack diffs against the unpack the bundle came from: unpack
    -- afresh after each repack so every step is its own layer
    local function repack()
      sh(("umoci repack --image %s:t %s >/dev/null && rm -rf %s && umoci unpack --image %s:t %s >/dev/null")
        :format(img, b, b, img, b))
    end
    -- layer 1: busybox, links, dirs, modes, a device, xattr-free files
    sh(("cd %s && mkdir -p bin etc/tree/deep var/empty tmp dev usr/lib && cp /bin/busybox bin/"
      .. " && ln -s busybox bin/sh && ln bin/busybox bin/ls && echo root:x:0:0 > etc/passwd"
      .. " && echo gone > etc/gone && echo x > etc/tree/deep/x && echo f > usr/lib/f2d"
      .. " && mkdir usr/lib/d2f && echo c > usr/lib/d2f/c && chmod 1777 tmp && chmod 4755 bin/busybox"
      .. " && mknod dev/null c 1 3 && mkfifo dev/fifo && chown 1000:1000 etc/passwd"):format(r))
    repack()
    -- layer 2: deletions, file<->dir swaps, a hardlink to a lower file
    sh(("cd %s && rm etc/gone && rm -r etc/tree && rm usr/lib/f2d && mkdir usr/lib/f2d"
      .. " && echo in > usr/lib/f2d/in && rm -r usr/lib/d2f && echo now-file > usr/lib/d2f"
      .. " && ln bin/busybox bin/cat && echo modified >> etc/passwd"):format(r))
    repack()
    -- layer 3: replace a whole directory's contents
    sh(("cd %s && rm -rf var && mkdir -p var/new && echo n > var/new/n && chmod 2750 var/new"):format(r))
    repack()

    local ref = tmp .. "/ref"
    sh(("umoci unpack --image %s:t %s >/dev/null"):format(img, ref))

    local index = cjson.decode(read(img .. "/index.json"))
    local manifest = cjson.decode(read(blob(img, index.manifests[1].digest)))
    local config = cjson.decode(read(blob(img, manifest.config.digest)))
    assert.equal(3, #manifest.layers)
    local root = tmp .. "/crater"
    sh("mkdir -p " .. root)
    for i, l in ipairs(manifest.layers) do
      local res, msg, kind = core.archive_apply(root, blob(img, l.digest), {
        compression = l.mediaType, whiteouts = "delete",
        expected_diff_id = config.rootfs.diff_ids[i], max_size = 1024 * 1024 * 1024,
      })
      assert.is_nil(msg, kind)
      assert.equal(config.rootfs.diff_ids[i], res.diff_id)
    end
    -- umoci's unpack also fixes the rootfs dir itself; compare below it
    local ok = os.execute(("python3 %s/tests/archive/treecmp.py cmp %s/rootfs %s --no-root")
      :format(src, ref, root))
    assert.is_true(ok == true or ok == 0)

    -- and the same image applied by the overlay rules into per-layer upper
    -- dirs keeps the whiteouts as 0/0 devices
    local up = tmp .. "/upper2"
    sh("mkdir -p " .. up)
    assert(core.archive_apply(up, blob(img, manifest.layers[2].digest),
      { compression = "gzip", whiteouts = "overlay" }))
    local p = io.popen(("stat -c %%F:%%t,%%T %s/etc/gone"):format(up))
    assert.equal("character special file:0,0", p:read("*l"))
    p:close()
  end)
end)
