-- Fixture images for the distribution specs, built locally (no internet).
--
-- fx.layout() returns an OCI image layout directory holding the tagged
-- images below; it is built once per build dir under
-- $CRATER_BUILD/fixtures/<version>/ (version = hash of the builder script
-- embedded here, so editing the builder rebuilds) from /bin/busybox
-- (busybox-static) with python3 (layer tars, manifests) and umoci (image
-- assembly), then converted with skopeo where a second format is needed.
-- Concurrent builders (parallel ctest) serialise on a flock.
--
--   local fx = require "support.fixtures"
--   local dir = fx.layout()                       -- .../oci
--   fx.manifest_digest("busybox")                 -- "sha256:..."
--   fx.push(r, "multiarch", "library/multi:1")    -- skopeo copy --all
--
-- Tags (ref.name annotations in index.json):
--   busybox               1 gzip layer: busybox + applet links + passwd/group
--   multilayer            5 gzip layers: files, hardlink, symlink, fifo,
--                         setuid, xattr user.test=1, a directory tree
--   whiteout              3 layers: .wh. file, opaque dir, file<->dir swaps
--   multiarch             OCI index: linux/amd64, linux/arm64, linux/arm/v7
--   busybox-zstd          busybox, layer tar+zstd
--   busybox-uncompressed  busybox, layer plain tar
-- plus fx.docker_archive(): `docker save` format tarball of busybox.
local proc = require "support.proc"
local cjson = require "cjson"

local M = {}

-- Bump to force a rebuild when something outside the script changes.
M.SCHEMA = 1

-- The builder: python3 build.py OUTDIR.  Writes OUTDIR/oci (layout),
-- OUTDIR/busybox-docker.tar and OUTDIR/info.json (digests, sizes, platforms,
-- expected files) describing everything.
local BUILDER = [==[
import gzip, hashlib, io, json, os, shutil, subprocess, sys, tarfile

out = sys.argv[1]
lay = os.path.join(out, "oci")
work = os.path.join(out, "work")
os.makedirs(work, exist_ok=True)
MTIME = 1700000000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER_TAR + "+gzip"
LAYER_ZSTD = LAYER_TAR + "+zstd"
CREATED = "2024-01-01T00:00:00Z"

def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

class Layer:
    """A deterministic layer tar written with tarfile (PAX format)."""
    def __init__(self, name):
        self.path = os.path.join(work, name + ".tar")
        self.tf = tarfile.open(self.path, "w", format=tarfile.PAX_FORMAT)
    def _info(self, name, type_, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(name)
        ti.type = type_; ti.mode = mode; ti.uid = uid; ti.gid = gid
        ti.mtime = MTIME; ti.uname = ""; ti.gname = ""
        return ti
    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.tf.addfile(self._info(name + "/", tarfile.DIRTYPE, mode, uid, gid))
    def file(self, name, data, mode=0o644, uid=0, gid=0, xattrs=None):
        if isinstance(data, str): data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        if xattrs:
            ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
        self.tf.addfile(ti, io.BytesIO(data))
    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777); ti.linkname = target
        self.tf.addfile(ti)
    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644); ti.linkname = target
        self.tf.addfile(ti)
    def fifo(self, name, mode=0o644):
        self.tf.addfile(self._info(name, tarfile.FIFOTYPE, mode))
    def close(self):
        self.tf.close()
        return self.path

# --- layer 1: busybox ------------------------------------------------------
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = ("root:x:0:\napp:x:1000:\nextra:x:1001:app\nnogroup:x:65534:\n")
l = Layer("busybox")
for d in ["bin", "dev", "etc", "home", "proc", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var"]:
    l.dir(d)
l.dir("root", 0o700)
l.dir("tmp", 0o1777)
l.dir("home/app", 0o755, 1000, 1000)
with open("/bin/busybox", "rb") as f:
    l.file("bin/busybox", f.read(), 0o755)
applets = subprocess.run(["/bin/busybox", "--list-full"], check=True,
                         capture_output=True, text=True).stdout.split()
for a in sorted(set(applets)):
    if a == "bin/busybox" or "/" not in a or a.endswith("/"):
        continue
    l.symlink(a, "/bin/busybox")
l.file("etc/passwd", PASSWD)
l.file("etc/group", GROUP)
l.file("etc/hostname", "crater-fixture\n")
busybox_tar = l.close()

# --- multilayer: four more layers -----------------------------------------
l = Layer("ml2")
l.dir("data"); l.dir("data/tree"); l.dir("data/tree/a"); l.dir("data/tree/a/b")
l.file("data/tree/a/b/deep.txt", "deep\n")
l.file("data/hello.txt", "hello v1\n")
l.file("etc/motd", "motd v1\n")
ml2 = l.close()
l = Layer("ml3")
l.dir("data")
l.file("data/hello.txt", "hello v2\n")
l.hardlink("data/hardlink", "data/hello.txt")
l.symlink("data/symlink", "hello.txt")
l.symlink("data/abs-symlink", "/etc/motd")
ml3 = l.close()
l = Layer("ml4")
l.dir("data")
l.fifo("data/fifo")
l.file("data/setuid", "#!/bin/sh\necho setuid\n", 0o4755)
l.file("data/setgid", "#!/bin/sh\necho setgid\n", 0o2755)
l.file("data/xattr", "has an xattr\n", xattrs={"user.test": "1"})
l.file("data/owned", "app owns this\n", 0o640, 1000, 1001)
ml4 = l.close()
l = Layer("ml5")
l.dir("opt"); l.dir("opt/app")
for sub in ["bin", "lib", "share", "share/doc", "share/doc/app"]:
    l.dir("opt/app/" + sub)
for i in range(20):
    l.file("opt/app/lib/lib%02d.so" % i, ("library %d\n" % i) * (i + 1))
l.file("opt/app/bin/app", "#!/bin/sh\necho app\n", 0o755)
l.file("opt/app/share/doc/app/README", "multilayer fixture\n")
l.file("etc/motd", "motd v2\n")
ml5 = l.close()

# --- whiteout: two layers over busybox --------------------------------------
l = Layer("wh2")
l.dir("w"); l.dir("w/opaque"); l.dir("w/opaque/sub"); l.dir("w/dir-to-file")
l.file("w/keep", "keep\n")
l.file("w/delete-me", "delete me\n")
l.file("w/opaque/old1", "old1\n"); l.file("w/opaque/old2", "old2\n")
l.file("w/opaque/sub/old3", "old3\n")
l.file("w/file-to-dir", "was a file\n")
l.file("w/dir-to-file/inner", "inner\n")
l.dir("w/gone-dir"); l.file("w/gone-dir/x", "x\n")
wh2 = l.close()
l = Layer("wh3")
l.dir("w"); l.dir("w/opaque")
l.file("w/.wh.delete-me", "")
l.file("w/.wh.gone-dir", "")
l.file("w/opaque/.wh..wh..opq", "")
l.file("w/opaque/new", "new\n")
l.dir("w/file-to-dir")
l.file("w/file-to-dir/child", "child\n")
l.file("w/dir-to-file", "now a file\n")
wh3 = l.close()

# --- assemble with umoci ----------------------------------------------------
def umoci(*a): sh("umoci", *a)
umoci("init", "--layout", lay)
umoci("new", "--image", lay + ":busybox")
hist = ["--history.created", CREATED]
umoci("raw", "add-layer", *hist, "--history.created_by", "busybox-static",
      "--image", lay + ":busybox", busybox_tar)
umoci("config", "--image", lay + ":busybox", "--created", CREATED,
      "--config.cmd", "sh", "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
      "--config.workingdir", "/", "--author", "crater fixtures", "--no-history")
umoci("raw", "add-layer", *hist, "--image", lay + ":busybox", "--tag", "multilayer", ml2)
for t in (ml3, ml4, ml5):
    umoci("raw", "add-layer", *hist, "--image", lay + ":multilayer", t)
umoci("raw", "add-layer", *hist, "--image", lay + ":busybox", "--tag", "whiteout", wh2)
umoci("raw", "add-layer", *hist, "--image", lay + ":whiteout", wh3)
umoci("gc", "--layout", lay)

# --- helpers over the layout ------------------------------------------------
def blob_path(d):
    algo, hexd = d.split(":")
    return os.path.join(lay, "blobs", algo, hexd)
def read_blob(d):
    with open(blob_path(d), "rb") as f: return f.read()
def put_blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.dirname(blob_path(d)), exist_ok=True)
    with open(blob_path(d), "wb") as f: f.write(data)
    return {"digest": d, "size": len(data)}
def put_json(obj):
    return put_blob(json.dumps(obj, indent=2, sort_keys=False).encode())
def load_index():
    with open(os.path.join(lay, "index.json")) as f: return json.load(f)
def save_index(idx):
    with open(os.path.join(lay, "index.json"), "w") as f: json.dump(idx, f)
def ref(idx, name):
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == name:
            return m
    raise KeyError(name)
def add_ref(idx, name, desc):
    desc = dict(desc)
    desc["annotations"] = {"org.opencontainers.image.ref.name": name}
    idx["manifests"] = [m for m in idx["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != name]
    idx["manifests"].append(desc)

idx = load_index()
bb_desc = ref(idx, "busybox")
bb_manifest = json.loads(read_blob(bb_desc["digest"]))
bb_config = json.loads(read_blob(bb_manifest["config"]["digest"]))
bb_layer = bb_manifest["layers"][0]
raw_tar = gzip.decompress(read_blob(bb_layer["digest"]))

def variant(name, layer_data, media_type):
    m = json.loads(json.dumps(bb_manifest))
    m["mediaType"] = OCI_MANIFEST
    b = put_blob(layer_data)
    m["layers"] = [{"mediaType": media_type, "digest": b["digest"], "size": b["size"]}]
    d = put_json(m)
    add_ref(idx, name, {"mediaType": OCI_MANIFEST, **d})

variant("busybox-uncompressed", raw_tar, LAYER_TAR)
zst = subprocess.run(["zstd", "-q", "-3", "-c"], input=raw_tar, check=True,
                     capture_output=True).stdout
variant("busybox-zstd", zst, LAYER_ZSTD)

# multiarch: amd64 is the busybox image itself; arm64 and arm/v7 reuse its
# layers under a config naming another architecture (they need not run).
plats = [{"os": "linux", "architecture": "amd64"},
         {"os": "linux", "architecture": "arm64", "variant": "v8"},
         {"os": "linux", "architecture": "arm", "variant": "v7"}]
entries = []
for p in plats:
    if p["architecture"] == bb_config.get("architecture") and "variant" not in p:
        d = {"digest": bb_desc["digest"], "size": bb_desc["size"]}
    else:
        c = json.loads(json.dumps(bb_config))
        c["architecture"] = p["architecture"]
        if "variant" in p: c["variant"] = p["variant"]
        cd = put_json(c)
        m = json.loads(json.dumps(bb_manifest))
        m["mediaType"] = OCI_MANIFEST
        m["config"] = {"mediaType": OCI_CONFIG, **cd}
        d = put_json(m)
    entries.append({"mediaType": OCI_MANIFEST, **d, "platform": p})
mi = put_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
add_ref(idx, "multiarch", {"mediaType": OCI_INDEX, **mi})
save_index(idx)

# docker-archive (docker save format) of busybox
sh("skopeo", "copy", "--quiet", "oci:" + lay + ":busybox",
   "docker-archive:" + os.path.join(out, "busybox-docker.tar") + ":busybox:latest")

# --- info.json --------------------------------------------------------------
def describe(desc):
    data = read_blob(desc["digest"])
    doc = json.loads(data)
    info = {"digest": desc["digest"], "size": desc["size"],
            "media_type": desc.get("mediaType") or doc.get("mediaType")}
    if "manifests" in doc:
        info["manifests"] = []
        for m in doc["manifests"]:
            sub = describe(m)
            sub["platform"] = m.get("platform")
            info["manifests"].append(sub)
        info["platforms"] = [m.get("platform") for m in doc["manifests"]]
        return info
    cfg = json.loads(read_blob(doc["config"]["digest"]))
    info["config"] = doc["config"]
    info["layers"] = doc["layers"]
    info["diff_ids"] = cfg["rootfs"]["diff_ids"]
    info["platforms"] = [{"os": cfg["os"], "architecture": cfg["architecture"],
                         **({"variant": cfg["variant"]} if "variant" in cfg else {})}]
    return info

images = {}
for m in load_index()["manifests"]:
    images[m["annotations"]["org.opencontainers.image.ref.name"]] = describe(m)
with open(os.path.join(out, "info.json"), "w") as f:
    json.dump({"images": images}, f, indent=1)
shutil.rmtree(work)
]==]

-- What each image's root filesystem must look like once unpacked, for the
-- unpack/snapshot specs.  Paths are relative to the rootfs.
M.expect = {
  busybox = {
    files = { ["etc/passwd"] = true, ["etc/group"] = true, ["bin/busybox"] = true },
    symlinks = { ["bin/sh"] = "/bin/busybox", ["usr/bin/env"] = "/bin/busybox" },
    config = { Cmd = { "sh" }, Env = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin" }, WorkingDir = "/" },
    users = { root = 0, app = 1000, nobody = 65534 },
    groups = { root = 0, app = 1000, extra = 1001 },
  },
  multilayer = {
    contents = { ["data/hello.txt"] = "hello v2\n", ["etc/motd"] = "motd v2\n",
                 ["data/tree/a/b/deep.txt"] = "deep\n",
                 ["opt/app/share/doc/app/README"] = "multilayer fixture\n" },
    hardlinks = { ["data/hardlink"] = "data/hello.txt" },
    symlinks = { ["data/symlink"] = "hello.txt", ["data/abs-symlink"] = "/etc/motd" },
    fifos = { "data/fifo" },
    modes = { ["data/setuid"] = "4755", ["data/setgid"] = "2755", ["data/owned"] = "640" },
    owners = { ["data/owned"] = { uid = 1000, gid = 1001 } },
    xattrs = { ["data/xattr"] = { ["user.test"] = "1" } },
    layers = 5,
  },
  whiteout = {
    contents = { ["w/keep"] = "keep\n", ["w/opaque/new"] = "new\n",
                 ["w/file-to-dir/child"] = "child\n", ["w/dir-to-file"] = "now a file\n" },
    absent = { "w/delete-me", "w/gone-dir", "w/opaque/old1", "w/opaque/old2",
               "w/opaque/sub", "w/dir-to-file/inner", "w/.wh.delete-me",
               "w/opaque/.wh..wh..opq" },
    dirs = { "w/file-to-dir", "w/opaque" },
    layers = 3,
  },
}

-- The cache key: schema number + a hash of the builder script.
M.VERSION = "v" .. M.SCHEMA .. "-" ..
  proc.check("sha256sum", { stdin = BUILDER }):sub(1, 12)

local function root()
  local build = os.getenv("CRATER_BUILD")
  assert(build and build ~= "", "CRATER_BUILD is not set")
  return build .. "/fixtures"
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() return true end
  return false
end

local built_dir
---Builds the fixtures if needed; returns the fixture dir
---($CRATER_BUILD/fixtures/<version>) holding oci/, busybox-docker.tar and
---info.json.
function M.dir()
  if built_dir then return built_dir end
  local base = root()
  local dir = base .. "/" .. M.VERSION
  if not exists(dir .. "/info.json") then
    proc.check("mkdir -p " .. proc.quote(base))
    local script = base .. "/build-" .. M.VERSION .. ".py"
    proc.write_file(script, BUILDER)
    -- Under the lock: build into a temp dir, rename into place, drop stale
    -- versions.  A second builder waiting on the lock finds it done.
    local q = proc.quote
    local cmd = table.concat({
      "exec 9>" .. q(base .. "/.lock"), "flock 9",
      "if [ ! -e " .. q(dir .. "/info.json") .. " ]; then",
      "  tmp=$(mktemp -d " .. q(base .. "/.tmp.XXXXXX") .. ")",
      "  " .. proc.python() .. " " .. q(script) .. " \"$tmp\" || { rm -rf \"$tmp\"; exit 1; }",
      "  chmod 755 \"$tmp\" && rm -rf " .. q(dir) .. " && mv \"$tmp\" " .. q(dir),
      "  for d in " .. q(base) .. "/v*; do [ \"$d\" = " .. q(dir) .. " ] || rm -rf \"$d\"; done",
      "fi",
    }, "\n")
    local res = proc.run(cmd)
    if not res.ok then
      error("building fixtures failed:\n" .. res.stdout .. res.stderr, 2)
    end
  end
  built_dir = dir
  return dir
end

---Path of the OCI image layout directory (built if needed).
function M.layout()
  return M.dir() .. "/oci"
end

---Path of the `docker save` format tarball of busybox (busybox:latest).
function M.docker_archive()
  return M.dir() .. "/busybox-docker.tar"
end

local info_cache
---Everything known about the fixtures: {images = {[tag] = image}} where
---image = {digest, size, media_type, config = descriptor, layers =
---{descriptor...}, diff_ids = {...}, platforms = {{os, architecture,
---variant?}...}} and an index also has manifests = {image + platform...}.
function M.info()
  if not info_cache then
    info_cache = cjson.decode(assert(proc.read_file(M.dir() .. "/info.json")))
  end
  return info_cache
end

---Names of the tagged images in the layout.
function M.names()
  local t = {}
  for name in pairs(M.info().images) do t[#t + 1] = name end
  table.sort(t)
  return t
end

---Info about one tagged image (raises on an unknown name).
function M.image(name)
  local img = M.info().images[name]
  if not img then error("no fixture image " .. tostring(name), 2) end
  return img
end

---Digest of the image's top-level manifest (the index for multiarch).
function M.manifest_digest(name) return M.image(name).digest end
---Digest of the image's config (nil for an index).
function M.config_digest(name)
  local c = M.image(name).config
  return c and c.digest
end
---Layer descriptors {mediaType, digest, size} (nil for an index).
function M.layers(name) return M.image(name).layers end
---Platforms {{os, architecture, variant?}...}.
function M.platforms(name) return M.image(name).platforms end

---Path of a blob in the layout.
function M.blob_path(digest)
  local algo, hex = digest:match("^(%w+):(%x+)$")
  assert(algo, "bad digest " .. tostring(digest))
  return M.layout() .. "/blobs/" .. algo .. "/" .. hex
end

---Contents of a blob in the layout.
function M.blob(digest)
  return assert(proc.read_file(M.blob_path(digest)))
end

---Pushes image `name` from the layout to registry r (from
---support.registry.start) as dest_ref ("repo:tag" or "repo@digest"-less
---"repo" meaning :latest) with skopeo.  opts.format = "v2s2" converts to
---Docker schema2 (and, for multiarch, a Docker manifest list);
---opts.all (default true for an index) copies every platform.
---Returns the digest of the manifest pushed (the layout's own digest unless
---converted) and the proc.run result; on failure raises, or with
---opts.may_fail returns nil and the proc.run result (stderr says why).
function M.push(r, name, dest_ref, opts)
  opts = opts or {}
  local img = M.image(name)
  local q = proc.quote
  local args = { "skopeo", "copy", "--quiet", "--retry-times", "0" }
  local is_index = img.manifests ~= nil
  if opts.all ~= false and is_index then args[#args + 1] = "--all" end
  if opts.format then
    args[#args + 1] = "--format"; args[#args + 1] = opts.format
  else
    args[#args + 1] = "--preserve-digests"
  end
  if r.ca_file then
    args[#args + 1] = "--dest-cert-dir"; args[#args + 1] = q(r.cert_dir)
  else
    args[#args + 1] = "--dest-tls-verify=false"
  end
  if r.user then
    args[#args + 1] = "--dest-creds"; args[#args + 1] = q(r.user .. ":" .. r.password)
  end
  local digestfile = os.tmpname()
  args[#args + 1] = "--digestfile " .. q(digestfile)
  args[#args + 1] = q("oci:" .. M.layout() .. ":" .. name)
  args[#args + 1] = q("docker://" .. r.host .. "/" .. dest_ref)
  local res = proc.run(table.concat(args, " "))
  local digest = (proc.read_file(digestfile) or ""):match("^(%w+:%x+)")
  os.remove(digestfile)
  if not res.ok then
    if opts.may_fail then return nil, res end
    error(string.format("push %s to %s/%s failed: %s", name, r.host, dest_ref, res.stderr), 2)
  end
  return digest, res
end

---Runs `skopeo inspect --raw` (or --config with opts.config) on ref in r
---with the right TLS/creds flags; returns the raw document text or nil, err.
function M.inspect(r, ref, opts)
  opts = opts or {}
  local q = proc.quote
  local args = { "skopeo", "inspect", "--retry-times", "0", opts.config and "--config" or "--raw" }
  if r.ca_file then
    args[#args + 1] = "--cert-dir"; args[#args + 1] = q(r.cert_dir)
  else
    args[#args + 1] = "--tls-verify=false"
  end
  if r.user then
    args[#args + 1] = "--creds"; args[#args + 1] = q(r.user .. ":" .. r.password)
  end
  args[#args + 1] = q("docker://" .. r.host .. "/" .. ref)
  local res = proc.run(table.concat(args, " "))
  if not res.ok then return nil, res.stderr end
  return res.stdout
end

---sha256 digest ("sha256:<hex>") of a string, via sha256sum.
function M.sha256(data)
  local out = proc.check("sha256sum", { stdin = data })
  return "sha256:" .. out:match("^(%x+)")
end

return M
