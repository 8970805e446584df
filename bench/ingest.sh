#!/bin/sh
# bench/ingest.sh: ingest of a 1 GiB file vs `openssl dgst -sha256` on the
# same file, side by side in one run (target: ingest within 1.3x).
#
#   sudo bench/ingest.sh [REPS]        (default 5 repetitions)
#
# Builds a fresh loop-mounted ext4 (with journal) on a 4 GiB sparse file,
# writes a 1 GiB random file and a crater root there, then alternates
# `openssl dgst -sha256 FILE` and the ingest (`crater content ingest` when
# the CLI has it, else bench/ingest_bench.c compiled against libcrater),
# each from a warm page cache after a `sync`, and prints both times, the
# ratio per repetition and the median ratio.  Repetition 0 is a warm-up
# and is left out of the median: on a VM the first 1 GiB of page cache
# written after boot costs seconds of first-touch faults that openssl,
# which only reads, never pays.  The ingest includes fsync of
# the data and of the blob directory.
#
# The loop device uses direct I/O by default (LOOP_DIRECT_IO=off to
# disable): a buffered loop device writes through a second page cache (the
# backing file's) and its flushes measure the host's writeback of the image
# file rather than the filesystem under test.
#
# Environment: CRATER_BUILD (build dir; default: the first build*/ with
# bin/crater), SIZE_MB (default 1024), LOOP_DIRECT_IO (on|off).
set -eu

REPS=${1:-5}
SIZE_MB=${SIZE_MB:-1024}
SRC=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${CRATER_BUILD:-}" ]; then
  for b in "$SRC"/build "$SRC"/build*; do
    if [ -x "$b/bin/crater" ] || [ -f "$b/libcrater.a" ]; then CRATER_BUILD=$b; break; fi
  done
fi
[ -n "${CRATER_BUILD:-}" ] || { echo "ingest.sh: no build dir found; set CRATER_BUILD" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "ingest.sh: needs root (losetup, mount)" >&2; exit 1; }
for t in openssl mkfs.ext4 losetup mount; do
  command -v $t >/dev/null || { echo "ingest.sh: missing $t" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/crater-bench-ingest.XXXXXX)
DEV=
cleanup() {
  set +e
  if mountpoint -q "$TMP/mnt" 2>/dev/null; then umount "$TMP/mnt"; fi
  [ -n "$DEV" ] && losetup -d "$DEV"
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# --- the ingest command ----------------------------------------------------
CRATER=$CRATER_BUILD/bin/crater
MODE=
if [ -x "$CRATER" ] && "$CRATER" content ingest --help >/dev/null 2>&1; then
  MODE=cli
else
  cc -O2 -D_GNU_SOURCE -I"$SRC/src" "$SRC/bench/ingest_bench.c" "$CRATER_BUILD/libcrater.a" \
    -lpthread -ldl -o "$TMP/ingest_bench"
  MODE=bench
fi

# --- a fresh ext4 on a loop device ----------------------------------------------
truncate -s 4G "$TMP/img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$TMP/img"
mkdir "$TMP/mnt"
if [ "${LOOP_DIRECT_IO:-on}" = on ]; then
  DEV=$(losetup --direct-io=on -f --show "$TMP/img" 2>/dev/null) || DEV=
fi
[ -n "$DEV" ] || DEV=$(losetup -f --show "$TMP/img")
mount "$DEV" "$TMP/mnt"
FILE=$TMP/mnt/data
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$FILE"
sync
cat "$FILE" >/dev/null   # both sides read from a warm page cache

now() { date +%s.%N; }
ratios=
echo "ingest bench: ${SIZE_MB} MiB, ext4 on $DEV (direct-io=$(cat /sys/block/$(basename $DEV)/loop/dio 2>/dev/null || echo ?)), via $MODE, $REPS reps"
printf '%-4s %10s %10s %7s\n' rep openssl ingest ratio
i=0   # rep 0 warms up (first-touch page cache memory, fresh block groups)
while [ $i -le "$REPS" ]; do
  ROOT=$TMP/mnt/root
  rm -rf "$ROOT"
  sync
  t0=$(now)
  want=$(openssl dgst -sha256 -r "$FILE" | cut -d' ' -f1)
  t1=$(now)
  if [ $MODE = cli ]; then
    got=$("$CRATER" --root "$ROOT" content ingest --ref bench "$FILE" | grep -o 'sha256:[0-9a-f]*' | head -1)
  else
    got=$("$TMP/ingest_bench" "$ROOT/content" "$FILE" bench | cut -d' ' -f2)
  fi
  t2=$(now)
  [ "$got" = "sha256:$want" ] || { echo "digest mismatch: ingest $got, openssl sha256:$want" >&2; exit 1; }
  r=$(echo "$t0 $t1 $t2" | awk '{ o = $2 - $1; g = $3 - $2; printf "%.3f %.3f %.2f", o, g, g / o }')
  set -- $r
  printf '%-4s %9ss %9ss %6sx\n' $i $1 $2 $3
  [ $i -gt 0 ] && ratios="$ratios $3"
  i=$((i + 1))
done
echo "$ratios" | tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END {
  m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
  printf "median ratio ingest/openssl: %.2fx (target <= 1.30x)\n", m }'
