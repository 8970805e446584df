#!/bin/sh
# bench/pull.sh: crater pull vs ctr image pull, side by side, from a local
# docker-registry, on a fresh loop-mounted ext4 (with journal) holding both
# roots.  Images: ~300 MB 5-layer gzip image (/usr/lib/gcc + 4 generated
# layers) and busybox.  Needs root, docker-registry, skopeo, umoci,
# containerd, ctr, pigz (scripts/setup installs them).
# Prints best-of-RUNS times, ctr/crater and crater/limit ratios, where the
# limit is 2 parallel `pigz -dc | tar -x` of the 5 layers onto the same fs.
#   bench/pull.sh [BUILD_DIR]     (default build)
# Env: RUNS (default 3), SNAPSHOTTER (crater's --snapshotter: overlayfs,
# native, btrfs; default: crater's own selection, overlayfs on ext4).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
CRATER=$BUILD/bin/crater
RUNS=${RUNS:-3}
SNAPSHOTTER=${SNAPSHOTTER:-}
T=$(mktemp -d /tmp/crater-bench.XXXXXX)
REG_PID= ; CTRD_PID=
cleanup() {
  [ -n "$CTRD_PID" ] && kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null || true
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  umount "$T/mnt" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT INT TERM

# --- filesystem ---------------------------------------------------------
truncate -s 8G "$T/fs.img"
mkfs.ext4 -q -F -j "$T/fs.img"
mkdir -p "$T/mnt"
mount -o loop "$T/fs.img" "$T/mnt"

# --- registry -----------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$T/reg"
cat > "$T/reg/config.yml" <<YML
version: 0.1
storage: { filesystem: { rootdirectory: $T/reg/data } }
http: { addr: 127.0.0.1:$PORT }
log: { level: error }
YML
docker-registry serve "$T/reg/config.yml" >"$T/reg/log" 2>&1 &
REG_PID=$!
for i in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
HOST=127.0.0.1:$PORT

# --- images ---------------------------------------------------------------
mkdir -p "$T/img"
umoci init --layout "$T/img/oci"
umoci new --image "$T/img/oci:big"
# 5 layers, ~300 MB gzip in all: one copy of /usr/lib/gcc (real binaries),
# then 4 generated layers of ~180 MB each whose 4 KiB blocks are 1 KiB of
# random bytes + 3 KiB of text (gzip ~3:1, like real images: neither
# trivially compressible nor random)
gen_layer() {  # dir seed
  python3 - "$1" "$2" <<'PY'
import os, random, sys
d, seed = sys.argv[1], int(sys.argv[2])
random.seed(seed)
text = open("/usr/share/common-licenses/GPL-3", "rb").read()
os.makedirs(d, exist_ok=True)
for i in range(340):
    blocks = []
    for _ in range(100):
        off = random.randrange(0, len(text) - 3072)
        blocks.append(os.urandom(1024) + text[off:off + 3072])
    with open(os.path.join(d, "f%04d.bin" % i), "wb") as f:
        f.write(b"".join(blocks))
PY
}
for i in 1 2 3 4 5; do
  rm -rf "$T/img/bundle"
  umoci unpack --rootless --image "$T/img/oci:big" "$T/img/bundle" >/dev/null
  if [ "$i" = 1 ]; then
    mkdir -p "$T/img/bundle/rootfs/layer1" && cp -a /usr/lib/gcc "$T/img/bundle/rootfs/layer1/"
  else
    gen_layer "$T/img/bundle/rootfs/layer$i" "$i"
  fi
  umoci repack --image "$T/img/oci:big" "$T/img/bundle" >/dev/null
done
rm -rf "$T/img/bundle"
umoci gc --layout "$T/img/oci"
du -sh "$T/img/oci" | sed "s/^/image layout (all blobs): /"
skopeo inspect --raw "oci:$T/img/oci:big" | python3 -c "import json,sys; m=json.load(sys.stdin); print(\"big image: %d layers, %.0f MB compressed\" % (len(m[\"layers\"]), sum(l[\"size\"] for l in m[\"layers\"])/1e6))"
skopeo copy -q --dest-tls-verify=false "oci:$T/img/oci:big" "docker://$HOST/bench/big:1"
BB=$(ls -d "$BUILD"/fixtures/*/oci 2>/dev/null | head -1)
if [ -n "$BB" ]; then skopeo copy -q --dest-tls-verify=false "oci:$BB:busybox" "docker://$HOST/bench/busybox:1"; fi

# --- private containerd -----------------------------------------------
mkdir -p "$T/mnt/ctrd/root" "$T/ctrd/state"
cat > "$T/ctrd/config.toml" <<TOML
version = 2
root = "$T/mnt/ctrd/root"
state = "$T/ctrd/state"
[grpc]
  address = "$T/ctrd/sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
TOML
containerd --config "$T/ctrd/config.toml" >"$T/ctrd/log" 2>&1 &
CTRD_PID=$!
for i in $(seq 100); do [ -S "$T/ctrd/sock" ] && break; sleep 0.1; done

now() { date +%s.%N; }
best() { sort -n | head -1; }

bench_one() {  # name ref
  name=$1; ref=$2
  ct=""; cr=""
  for r in $(seq "$RUNS"); do
    rm -rf "$T/mnt/crater"; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    # every timing (crater, ctr, the limit) ends with a sync: data on disk
    s=$(now); "$CRATER" --root "$T/mnt/crater" pull -q --plain-http ${SNAPSHOTTER:+--snapshotter "$SNAPSHOTTER"} "$ref" >/dev/null; sync; e=$(now)
    cr="$cr $(echo "$e - $s" | bc)"
    ctr -a "$T/ctrd/sock" -n "bench$r$name" image rm "$ref" >/dev/null 2>&1 || true
    ctr -a "$T/ctrd/sock" content prune references >/dev/null 2>&1 || true
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    s=$(now); ctr -a "$T/ctrd/sock" -n "bench$r$name" image pull --plain-http "$ref" >/dev/null; sync; e=$(now)
    ct="$ct $(echo "$e - $s" | bc)"
  done
  bcr=$(for x in $cr; do echo "$x"; done | best)
  bct=$(for x in $ct; do echo "$x"; done | best)
  printf "%-10s crater %7.2fs   ctr %7.2fs   ctr/crater %5.2fx\n" "$name" "$bcr" "$bct" "$(echo "$bct / $bcr" | bc -l)"
  eval "best_$name=$bcr"
}

echo "runs per tool: $RUNS (best of); crater snapshotter: ${SNAPSHOTTER:-default}"
bench_one big "$HOST/bench/big:1"
[ -n "$BB" ] && bench_one busybox "$HOST/bench/busybox:1"

# machine limit: decompress all layers with the best tool, write to disk, 2 cores
limit_once() {
  rm -rf "$T/mnt/limit"; mkdir -p "$T/mnt/limit"; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  s=$(now)
  skopeo inspect --raw "oci:$T/img/oci:big" | python3 -c "import json,sys; [print(l['digest'].split(':')[1]) for l in json.load(sys.stdin)['layers']]" |
    xargs -P2 -I{} sh -c 'mkdir -p "$0/{}" && pigz -dc "$1/{}" | tar -x -C "$0/{}"' "$T/mnt/limit" "$T/img/oci/blobs/sha256"
  sync; e=$(now)
  echo "$e - $s" | bc
}
lim=$(for r in $(seq "$RUNS"); do limit_once; done | best)
printf "%-10s limit  %7.2fs (pigz -dc | tar -x, 2 in parallel, + sync)   crater/limit %5.2fx\n" big "$lim" "$(echo "$best_big / $lim" | bc -l)"
