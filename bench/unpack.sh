#!/bin/bash
# Layer unpack benchmark: crater's apply (ISA-L and zlib decoders) side by
# side with the machine's limit (`gzip -dc | tar -x`), on a fresh
# loop-mounted ext4 (with journal), 5 gzip layers of ~60-100 MB each built from
# /usr/lib and /usr/share.  Independent layers are applied in parallel into
# their own directories (2 workers), as the snapshotters allow.
#   usage: bench/unpack.sh [BUILD_DIR]      (root; needs luajit, losetup)
#          bench/unpack.sh --image [BUILD_DIR] [REPS]: the whole-image unpack
#          side by side with containerd and the limit (bench/unpack_image.sh)
set -euo pipefail
[ "${1:-}" = --image ] && exec "$(dirname "$0")/unpack_image.sh" "${@:2}"
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
W=$(mktemp -d /tmp/crater-bench-unpack.XXXXXX)
MNT=$W/mnt
LAYERS=$W/layers
cleanup() {
  set +e
  mountpoint -q "$MNT" && umount "$MNT"
  [ -n "${LOOP:-}" ] && losetup -d "$LOOP" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

export LUA_CPATH="$BUILD/?.so;;"
export LUA_PATH="$SRC/lua/?.lua;$SRC/lua/?/init.lua;;"
[ -f "$BUILD/crater/core.so" ] || { echo "build first: $BUILD/crater/core.so missing" >&2; exit 1; }

truncate -s 4G "$W/ext4.img"
mkfs.ext4 -q "$W/ext4.img"
mkdir -p "$MNT"
LOOP=$(losetup --find --show "$W/ext4.img")
mount "$LOOP" "$MNT"

# --- five layers of real-looking content (~60 MB uncompressed each) -----
mkdir -p "$LAYERS"
mapfile -t DIRS < <(cd / && du -sm usr/lib/* usr/share/* 2>/dev/null | sort -k2 | awk '$1 >= 1 && $1 <= 40 {print $1" "$2}')
target=100 i=1 acc=0 sel=()
for d in "${DIRS[@]}"; do
  sz=${d%% *} p=${d#* }
  sel+=("$p"); acc=$((acc + sz))
  if [ $acc -ge $target ]; then
    tar -C / -cf - "${sel[@]}" 2>/dev/null | gzip -6 > "$LAYERS/l$i.tar.gz"
    i=$((i + 1)); acc=0; sel=()
    [ $i -gt 5 ] && break
  fi
done
usize=0
for l in "$LAYERS"/l*.tar.gz; do usize=$((usize + $(gzip -dc "$l" | wc -c))); done
csize=$(cat "$LAYERS"/l*.tar.gz | wc -c)
files=0
for l in "$LAYERS"/l*.tar.gz; do files=$((files + $(gzip -dc "$l" | tar -t | wc -l))); done
printf 'image: 5 gzip layers, %d MB compressed, %d MB uncompressed, %d entries\n' \
  $((csize / 1000000)) $((usize / 1000000)) "$files"

now() { date +%s.%N; }
reset_out() { rm -rf "$MNT/out"; mkdir -p "$MNT/out"; sync; }

# run NAME WORKERS CMD (CMD gets LAYER OUTDIR)
declare -A T
run() {
  local name=$1 workers=$2; shift 2
  reset_out
  local t0 t1
  t0=$(now)
  ls "$LAYERS"/l*.tar.gz | xargs -P "$workers" -I{} bash -c \
    'o="'"$MNT"'/out/$(basename {} .tar.gz)"; mkdir -p "$o"; '"$*"' "{}" "$o"'
  sync -f "$MNT"   # everyone pays for writeback (the snapshotter syncfs's at commit)
  t1=$(now)
  local t; t=$(echo "$t1 - $t0" | bc)
  if [ -z "${T[$name]:-}" ] || [ "$(echo "$t < ${T[$name]}" | bc)" = 1 ]; then T[$name]=$t; fi
  printf '%-34s %6.2f s  %7.1f MB/s\n' "$name" "$t" "$(echo "$usize / 1000000 / $t" | bc -l)"
}

echo "--- times incl. sync (uncompressed MB/s), ext4 on loop, layers in page cache"
for rep in 1 2 3; do
  run "gzip -dc | tar -x   (1 worker)"  1 'f() { gzip -dc "$1" | tar -x -C "$2"; }; f'
  run "gzip -dc | tar -x   (2 workers)" 2 'f() { gzip -dc "$1" | tar -x -C "$2"; }; f'
  run "crater isa-l        (1 worker)"  1 "luajit $SRC/bench/unpack_apply.lua"
  run "crater isa-l        (2 workers)" 2 "luajit $SRC/bench/unpack_apply.lua"
  run "crater zlib         (1 worker)"  1 'f() { luajit '"$SRC"'/bench/unpack_apply.lua "$1" "$2" libarchive; }; f'
  run "crater zlib         (2 workers)" 2 'f() { luajit '"$SRC"'/bench/unpack_apply.lua "$1" "$2" libarchive; }; f'
  echo
done
# identical trees
reset_out
mkdir -p "$MNT/out/tar" "$MNT/out/crater"
for l in "$LAYERS"/l*.tar.gz; do gzip -dc "$l" | tar -x -C "$MNT/out/tar"; done
for l in "$LAYERS"/l*.tar.gz; do luajit "$SRC/bench/unpack_apply.lua" "$l" "$MNT/out/crater"; done
if python3 "$SRC/tests/archive/treecmp.py" cmp "$MNT/out/tar" "$MNT/out/crater" --no-root >/dev/null; then
  echo "trees: crater == tar -x (treecmp)"
else
  echo "trees: DIFFER (treecmp)"; exit 1
fi
r() { echo "scale=2; ${T[$1]} / ${T[$2]}" | bc; }
echo "--- ratios of best-of-3 times (<1 means crater is faster)"
echo "crater isa-l 2w / tar 2w : $(r 'crater isa-l        (2 workers)' 'gzip -dc | tar -x   (2 workers)')"
echo "crater isa-l 1w / tar 1w : $(r 'crater isa-l        (1 worker)' 'gzip -dc | tar -x   (1 worker)')"
echo "crater isa-l 2w / zlib 2w: $(r 'crater isa-l        (2 workers)' 'crater zlib         (2 workers)')"
