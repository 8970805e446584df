#!/usr/bin/env bash
# bench/run.sh: container start latency and 100-concurrent footprint.
#
#   crater run --rm --rootfs R id /bin/true   (runtimes: crater-runtime, runc, crun)
#   crater run --rm IMAGE id /bin/true        (busybox imported into the crater root, overlayfs)
#   ctr run --rm IMAGE id /bin/true           (private containerd on a temp root/socket; runc, crun)
#   bare `runc run` / `crun run` on a bundle (crun in a private cgroup2-only
#   mount namespace where it refuses the host: bench/crun_v2ns.sh)
# then 100 containers started concurrently (sleep): wall time and total RSS
# of crater's shims vs containerd + its shims.  Needs root.
# Usage: bench/run.sh [N=20] [CONCURRENT=100]     env BUILD=build dir (default build)
set -uo pipefail
N=${1:-20}
C=${2:-100}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
CRATER=$BUILD/bin/crater
export CRATER_BUILD=$BUILD
# Both stores (crater's root, containerd's root) on a freshly made,
# loop-mounted ext4 with a journal: this host's root filesystem is ext4
# without one, and after many deletions creating files there is slow for a
# while, which hit the image path (snapshot dirs) and not --rootfs.
W=$(mktemp -d /var/tmp/crater-bench.XXXXXX)
truncate -s 4G "$W/ext4.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$W/ext4.img"
LOOP=$(losetup --find --show "$W/ext4.img")
T=$W/mnt
mkdir -p "$T"
mount "$LOOP" "$T"
# task and runtime state on tmpfs, as in production (/run is a tmpfs on a
# Debian host; not in this sandbox, hence a tmpfs of our own): crater's,
# containerd's and the bare runtimes' (BENCH_STATE, also used by
# crun_v2ns.sh).  The metadata db and snapshots stay on disk under $T/root.
export BENCH_STATE=$W/state
mkdir -p "$BENCH_STATE"
mount -t tmpfs -o mode=0711 tmpfs "$BENCH_STATE"
export CRATER_STATE=$BENCH_STATE/crater
mkdir -p "$CRATER_STATE"
CTRD_PID=
# a fresh containerd namespace per run: runc state of a namespace lives in
# /run/containerd/runc/NS whatever containerd's root, and leftovers of an
# interrupted run made every `ctr run -d cdN` fail with "already exists"
NS=bench$$
cleanup() {
  daemon_stop
  for d in "$CRATER_STATE"/tasks/default/*; do
    [ -d "$d" ] || continue
    "$CRATER" --root "$T/root" task rm -f "$(basename "$d")" >/dev/null 2>&1
  done
  if [ -n "$CTRD_PID" ]; then
    for id in $(ctr -a "$T/ctrd.sock" -n "$NS" tasks ls -q 2>/dev/null); do
      ctr -a "$T/ctrd.sock" -n "$NS" tasks kill -s KILL "$id" >/dev/null 2>&1
    done
    sleep 0.5
    for id in $(ctr -a "$T/ctrd.sock" -n "$NS" containers ls -q 2>/dev/null); do
      ctr -a "$T/ctrd.sock" -n "$NS" tasks rm -f "$id" >/dev/null 2>&1
      ctr -a "$T/ctrd.sock" -n "$NS" containers rm "$id" >/dev/null 2>&1
    done
    kill "$CTRD_PID" 2>/dev/null; wait "$CTRD_PID" 2>/dev/null
    # runc's cgroups of the containerd namespace (one parent per hierarchy)
    for d in /sys/fs/cgroup/*/"$NS"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
    # shims left over exit when their socket goes; kill any by pid file
    for p in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $T/ctrd.sock" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  fi
  umount -R "$T"/ctrd-root 2>/dev/null
  grep -o "$T[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  grep -o "$BENCH_STATE[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$CRATER_STATE"
  umount -l "$BENCH_STATE" 2>/dev/null
  umount -l "$T" 2>/dev/null
  losetup -d "$LOOP" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s%N; }
DAEMON_PID=
# `crater daemon` on the bench root (its socket: $CRATER_STATE/crater.sock)
daemon_start() {
  "$CRATER" --root "$T/root" daemon >>"$T/daemon.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 50); do [ -S "$CRATER_STATE/crater.sock" ] && break; sleep 0.1; done
  sleep 0.3 # its workers warm up
  "$CRATER" --root "$T/root" version | grep -q "served by crater daemon" || echo "crater daemon does not serve" >&2
}
daemon_stop() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=
}
ms() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN{printf "%.1f", (b-a)/n/1e6}'; }

# rootfs + bundle
R=$T/rootfs
mkdir -p "$R"/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$R/bin/"
for a in sh true sleep; do ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"; echo 'root:x:0:' > "$R/etc/group"
mkdir -p "$T/bundle"
(cd "$T/bundle" && runc spec && R="$R" python3 - <<'PY'
import json, os
c = json.load(open("config.json"))
c["root"]["path"] = os.environ["R"]
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open("config.json", "w"))
PY
)

# the same container as crater's own: crater's default spec (seccomp
# default profile, capabilities, masked paths, cgroup, ...) on the same
# rootfs, for the runtimes run bare (crun and crater-runtime, v2 ns below)
"$CRATER" --root "$T/root" container create --rootfs "$R" specprobe /bin/true >/dev/null 2>&1
mkdir -p "$T/bundle-crater"
"$CRATER" --root "$T/root" --format json container info specprobe 2>/dev/null | R="$R" python3 -c '
import json, os, sys
s = json.load(sys.stdin)["spec"]
s["root"] = {"path": os.environ["R"], "readonly": False}
s["process"]["terminal"] = False
json.dump(s, open(sys.argv[1], "w"))' "$T/bundle-crater/config.json" || echo "crater spec bundle failed" >&2
"$CRATER" --root "$T/root" container rm specprobe >/dev/null 2>&1

declare -A RES
# mean and median of N runs (the host is shared: the median is the figure
# to compare, the mean shows the noise).  The clock is bash's
# $EPOCHREALTIME, read without a fork.  Up to the sixth session each side
# was a $(date +%s%N), whose fork and exec landed inside the interval:
# 1.3-1.8 ms more in every figure (bare crun 8.1 ms instead of 6.6 on the
# same host, same minute), which made every ratio look closer to 1.
measure() { # name cmd-with-%ID%
  local name=$1; shift
  local t0 t1 i all=()
  eval "${1//%ID%/warm$RANDOM}" >/dev/null 2>&1
  for i in $(seq "$N"); do
    t0=${EPOCHREALTIME/./}
    eval "${1//%ID%/b$i$RANDOM}" >/dev/null 2>&1 || echo "  ($name failed)" >&2
    t1=${EPOCHREALTIME/./}
    all+=($(( t1 - t0 )))
  done
  local med mean
  med=$(printf "%s\n" "${all[@]}" | sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}')
  mean=$(printf "%s\n" "${all[@]}" | awk '{s+=$1} END{printf "%.1f", s/NR/1000}')
  RES[$name]=$med
  printf "%-40s median %7s ms   mean %7s ms\n" "$name" "$med" "$mean"
}

# crun_v2ns.sh's "NAME MEDIAN" lines (stdin) into RES, printed: key_fmt
# names a bare runtime's (%s: crun or crater-runtime), crater_key
# `crater run`'s (its "crater-run" line), note follows each figure
v2ns_results() {
  local key_fmt=$1 crater_key=$2 note=$3 name val key
  while read -r name val; do
    [ -n "$val" ] || continue
    # shellcheck disable=SC2059 # the format is the caller's
    key=$(printf "$key_fmt" "$name")
    [ "$name" = crater-run ] && [ -n "$crater_key" ] && key=$crater_key
    RES["$key"]=$val
    printf "%-40s median %7s ms%s\n" "$key" "$val" "$note"
  done
}

"$SRC/scripts/make-busybox-layout" "$T/layout" latest >/dev/null 2>&1
"$CRATER" --root "$T/root" image import --name bench/busybox:latest "$T/layout" >/dev/null 2>&1 || echo "crater image import failed" >&2

echo "== start latency (/bin/true), $N runs"
measure "crater run (crater-runtime)" "$CRATER --root $T/root run --rm --runtime crater --rootfs $R %ID% /bin/true"
measure "crater run IMAGE (crater-runtime)" "$CRATER --root $T/root run --rm --runtime crater bench/busybox:latest %ID% /bin/true"
# the same two through `crater daemon`'s warm workers
daemon_start
measure "crater run via daemon (crater-runtime)" "$CRATER --root $T/root run --rm --runtime crater --rootfs $R %ID% /bin/true"
measure "crater run IMAGE via daemon" "$CRATER --root $T/root run --rm --runtime crater bench/busybox:latest %ID% /bin/true"
daemon_stop
measure "crater run (runc)" "$CRATER --root $T/root run --rm --runtime runc --rootfs $R %ID% /bin/true"
measure "crater run IMAGE (runc)" "$CRATER --root $T/root run --rm --runtime runc bench/busybox:latest %ID% /bin/true"
if crun --root "$BENCH_STATE/crun" run --bundle "$T/bundle" probe >/dev/null 2>&1; then
  measure "crater run (crun)" "$CRATER --root $T/root run --rm --runtime crun --rootfs $R %ID% /bin/true"
  measure "bare crun run" "crun --root $BENCH_STATE/crun run --bundle $T/bundle %ID%"
  HAVE_CRUN=1
else
  echo "crun: refuses on this host: $(crun --root "$BENCH_STATE/crun" run --bundle "$T/bundle" probe 2>&1 | tail -1)"
  HAVE_CRUN=0
  # ... but runs in a private mount namespace that shows it only the
  # cgroup2 hierarchy (bench/crun_v2ns.sh: its best case, see there);
  # crater-runtime runs the same bundle there too
  if command -v crun >/dev/null && command -v unshare >/dev/null; then
    # ... and `crater run --rm IMAGE` there as well: crater and bare crun
    # on the same cgroup hierarchy (crun's bundle still without seccomp)
    v2ns_results "bare %s run (v2 ns)" "crater run IMAGE (v2 ns)" "   (private cgroup2-only mount namespace)" \
      < <(unshare -m --propagation private "$SRC/bench/crun_v2ns.sh" "$N" "$T/bundle" "$BUILD/bin/crater-runtime" \
            "$CRATER" "$T/root" bench/busybox:latest)
    # like for like: both runtimes on crater's own spec (seccomp default
    # profile included: what `crater run` containers get)
    v2ns_results "bare %s run, crater spec (v2 ns)" "" "   (crater's default spec)" \
      < <(unshare -m --propagation private "$SRC/bench/crun_v2ns.sh" "$N" "$T/bundle-crater" "$BUILD/bin/crater-runtime")
    # crater through a `crater daemon` started in that namespace, whose
    # workers run the containers on its cgroup2 hierarchy as crun does
    # (the daemon's runs above are on the host's), beside bare crun again:
    # four alternating rounds, so that both see the host's drift alike
    v2ns_results "bare %s run (v2 ns, daemon run)" "crater run IMAGE via daemon (v2 ns)" "   (daemon in the namespace, 4 alternating rounds)" \
      < <(DAEMON=1 ROUNDS=4 unshare -m --propagation private "$SRC/bench/crun_v2ns.sh" "$N" "$T/bundle" \
            "$BUILD/bin/crater-runtime" "$CRATER" "$T/root" bench/busybox:latest)
  fi
fi
measure "bare runc run" "runc --root $BENCH_STATE/runc run --bundle $T/bundle %ID%"

# Sporadic starts: one every 0.2 s on an otherwise idle host, not back to
# back, so nothing is kept warm by the previous run (CPU caches, idle
# CPUs, the kernel's cgroup_threadgroup_rwsem, which a v2 cgroup move
# waits an RCU grace period for when nothing took it lately).  bare crun
# and crater-runtime in the cgroup2-only namespace as above, and `crater
# run --rm IMAGE` through crater daemon (its front end finds the daemon's
# socket from there; the daemon runs on the host's cgroups).
if command -v crun >/dev/null && command -v unshare >/dev/null && [ "$HAVE_CRUN" = 0 ]; then
  NS_SPORADIC=$(( N < 15 ? N : 15 ))
  echo "== sporadic starts (one every 0.2 s), $NS_SPORADIC runs"
  daemon_start
  "$CRATER" --root "$T/root" run --rm bench/busybox:latest spwarm /bin/true >/dev/null 2>&1 # spares from here on
  v2ns_results "sporadic: bare %s run (v2 ns)" "sporadic: crater run IMAGE via daemon" "" \
    < <(GAP=0.2 unshare -m --propagation private "$SRC/bench/crun_v2ns.sh" "$NS_SPORADIC" "$T/bundle" \
          "$BUILD/bin/crater-runtime" "$CRATER" "$T/root" bench/busybox:latest 2>/dev/null)
  daemon_stop
  awk -v a="${RES["sporadic: crater run IMAGE via daemon"]:-0}" -v b="${RES["sporadic: bare crun run (v2 ns)"]:-0}" \
    'BEGIN{if (a > 0 && b > 0) printf "sporadic: crater IMAGE via daemon / bare crun = %.2f\n", a/b}'
fi

# private containerd
if command -v containerd >/dev/null && command -v ctr >/dev/null && command -v umoci >/dev/null; then
  cat > "$T/ctrd.toml" <<EOC
version = 2
root = "$T/ctrd-root"
state = "$BENCH_STATE/ctrd-state"
[grpc]
  address = "$T/ctrd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
EOC
  containerd --config "$T/ctrd.toml" >"$T/ctrd.log" 2>&1 &
  CTRD_PID=$!
  for _ in $(seq 50); do ctr -a "$T/ctrd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  (cd "$T/layout" && tar cf "$T/image.tar" .)
  ctr -a "$T/ctrd.sock" -n "$NS" images import --index-name bench/busybox:latest "$T/image.tar" >/dev/null 2>&1
  IMG=bench/busybox:latest
  measure "ctr run --rm (runc)" "ctr -a $T/ctrd.sock -n "$NS" run --rm $IMG %ID% /bin/true"
  if [ "$HAVE_CRUN" = 1 ]; then
    measure "ctr run --rm (crun)" "ctr -a $T/ctrd.sock -n "$NS" run --rm --runc-binary /usr/bin/crun $IMG %ID% /bin/true"
  fi
  echo "== ratios"
  awk -v a="${RES["crater run (crater-runtime)"]}" -v b="${RES["ctr run --rm (runc)"]}" 'BEGIN{printf "crater(crater-runtime) / ctr+runc = %.2f\n", a/b}'
  awk -v a="${RES["crater run (runc)"]}" -v b="${RES["ctr run --rm (runc)"]}" 'BEGIN{printf "crater(runc) / ctr+runc          = %.2f\n", a/b}'
  awk -v a="${RES["crater run IMAGE (crater-runtime)"]}" -v b="${RES["ctr run --rm (runc)"]}" 'BEGIN{printf "crater IMAGE(crater-runtime) / ctr+runc = %.2f\n", a/b}'
  awk -v a="${RES["crater run IMAGE via daemon"]}" -v b="${RES["ctr run --rm (runc)"]}" 'BEGIN{printf "crater IMAGE via daemon / ctr+runc = %.2f\n", a/b}'
  [ "$HAVE_CRUN" = 1 ] && awk -v a="${RES["crater run (crater-runtime)"]}" -v b="${RES["bare crun run"]}" 'BEGIN{printf "crater(crater-runtime) / bare crun = %.2f\n", a/b}'
  if [ -n "${RES["bare crun run (v2 ns)"]:-}" ]; then
    awk -v a="${RES["crater run IMAGE (crater-runtime)"]}" -v b="${RES["bare crun run (v2 ns)"]}" 'BEGIN{printf "crater IMAGE(crater-runtime) / bare crun (v2 ns) = %.2f\n", a/b}'
    awk -v a="${RES["crater run (crater-runtime)"]}" -v b="${RES["bare crun run (v2 ns)"]}" 'BEGIN{printf "crater(crater-runtime) / bare crun (v2 ns) = %.2f\n", a/b}'
    awk -v a="${RES["bare crater-runtime run (v2 ns)"]}" -v b="${RES["bare crun run (v2 ns)"]}" 'BEGIN{printf "bare crater-runtime / bare crun (both v2 ns) = %.2f\n", a/b}'
    awk -v a="${RES["crater run IMAGE via daemon"]}" -v b="${RES["bare crun run (v2 ns)"]}" 'BEGIN{printf "crater IMAGE via daemon / bare crun (v2 ns) = %.2f\n", a/b}'
    awk -v a="${RES["crater run via daemon (crater-runtime)"]}" -v b="${RES["bare crun run (v2 ns)"]}" 'BEGIN{printf "crater via daemon / bare crun (v2 ns) = %.2f\n", a/b}'
    [ -n "${RES["crater run IMAGE via daemon (v2 ns)"]:-}" ] &&
      awk -v a="${RES["crater run IMAGE via daemon (v2 ns)"]}" -v b="${RES["bare crun run (v2 ns, daemon run)"]}" \
        'BEGIN{printf "crater IMAGE via daemon / bare crun (both v2 ns, same run) = %.2f\n", a/b}'
    [ -n "${RES["crater run IMAGE (v2 ns)"]:-}" ] &&
      awk -v a="${RES["crater run IMAGE (v2 ns)"]}" -v b="${RES["bare crun run (v2 ns)"]}" 'BEGIN{printf "crater IMAGE(crater-runtime) / bare crun (both v2 ns) = %.2f\n", a/b}'
    if [ -n "${RES["bare crun run, crater spec (v2 ns)"]:-}" ]; then
      awk -v a="${RES["crater run IMAGE (crater-runtime)"]}" -v b="${RES["bare crun run, crater spec (v2 ns)"]}" 'BEGIN{printf "crater IMAGE(crater-runtime) / bare crun, crater spec (v2 ns) = %.2f\n", a/b}'
      awk -v a="${RES["crater run (crater-runtime)"]}" -v b="${RES["bare crun run, crater spec (v2 ns)"]}" 'BEGIN{printf "crater(crater-runtime) / bare crun, crater spec (v2 ns) = %.2f\n", a/b}'
      awk -v a="${RES["bare crater-runtime run, crater spec (v2 ns)"]}" -v b="${RES["bare crun run, crater spec (v2 ns)"]}" 'BEGIN{printf "bare crater-runtime / bare crun, crater spec (both v2 ns) = %.2f\n", a/b}'
    fi
  fi
  awk -v a="${RES["crater run (crater-runtime)"]}" -v b="${RES["bare runc run"]}" 'BEGIN{printf "crater(crater-runtime) / bare runc = %.2f\n", a/b}'
  awk -v a="${RES["crater run IMAGE (crater-runtime)"]}" -v b="${RES["bare runc run"]}" 'BEGIN{printf "crater IMAGE(crater-runtime) / bare runc = %.2f\n", a/b}'
else
  echo "containerd/ctr/umoci missing: ctr comparison skipped"
fi

rss_of() { # pids... -> total kB
  local s=0 p v
  for p in "$@"; do v=$(awk '/^VmRSS/{print $2}' /proc/$p/status 2>/dev/null); s=$((s + ${v:-0})); done
  echo $s
}
pss_of() {
  local s=0 p v
  for p in "$@"; do v=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null); s=$((s + ${v:-0})); done
  echo $s
}

echo "== $C containers started concurrently (sleep 300)"
# crater's $C containers: started all at once (errors to cc.err), removed
start_cc() {
  seq "$C" | xargs -P "$C" -I{} "$CRATER" --root "$T/root" run -d --runtime crater --rootfs "$R" cc{} sleep 300 >/dev/null 2>"$T/cc.err"
}
remove_cc() {
  for i in $(seq "$C"); do "$CRATER" --root "$T/root" task rm -f cc$i >/dev/null 2>&1; "$CRATER" --root "$T/root" container rm cc$i >/dev/null 2>&1; done
}
# every process of ours, by pid: crater's are the shims (one per task; the
# crater CLIs have exited once run -d returns); containerd's are the daemon
# and its shims.  containerd 1.6 names the shim process
# `/usr/bin/containerd-shim-runc-v2 -namespace NS -id ID -address SOCK`
# (the `start` re-exec has exited by then), so it is found by its
# -address, which is our private socket.
t0=$(now)
start_cc
t1=$(now)
shims=$(for f in "$CRATER_STATE"/tasks/default/*/shim.pid; do [ -f "$f" ] && cat "$f"; done)
n=$(echo $shims | wc -w)
nerr=$(grep -c . "$T/cc.err")
crss=$(rss_of $shims); cpss=$(pss_of $shims)
printf "crater:     %3d shims running (%d errors), wall %.2f s, total RSS %6d kB, PSS %6d kB (per shim RSS %d kB, PSS %d kB)\n" \
  "$n" "$nerr" "$(awk -v a=$t0 -v b=$t1 'BEGIN{print (b-a)/1e9}')" "$crss" "$cpss" "$(( crss / (n>0?n:1) ))" "$(( cpss / (n>0?n:1) ))"
remove_cc
# the same through `crater daemon`: the front ends queue on its socket and
# each command gets a worker forked for it
daemon_start
t0=$(now)
start_cc
t1=$(now)
n=$(ls "$CRATER_STATE"/tasks/default/*/shim.pid 2>/dev/null | wc -l)
printf "crater via daemon: %3d shims running (%d errors), wall %.2f s, daemon and idle workers RSS %d kB\n" "$n" "$(grep -c . "$T/cc.err")" \
  "$(awk -v a=$t0 -v b=$t1 'BEGIN{print (b-a)/1e9}')" "$(rss_of $DAEMON_PID $(pgrep -P "$DAEMON_PID"))"
daemon_stop
remove_cc

if [ -n "$CTRD_PID" ]; then
  t0=$(now)
  seq "$C" | xargs -P "$C" -I{} ctr -a "$T/ctrd.sock" -n "$NS" run -d "$IMG" cd{} sleep 300 >/dev/null 2>"$T/cd.err"
  t1=$(now)
  sleep 0.5 # shims detach after ctr returns
  sp=$(pgrep -f -- "containerd-shim-runc-v2 .*-address $T/ctrd.sock")
  n=$(echo $sp | wc -w)
  nerr=$(grep -c . "$T/cd.err")
  running=$(ctr -a "$T/ctrd.sock" -n "$NS" tasks ls -q 2>/dev/null | wc -l)
  drss=$(rss_of $CTRD_PID); dpss=$(pss_of $CTRD_PID); srss=$(rss_of $sp); spss=$(pss_of $sp)
  printf "containerd: %3d shims, %d tasks (%d errors), wall %.2f s, total RSS %6d kB, PSS %6d kB (containerd RSS %d + shims RSS %d kB; PSS %d + %d kB)\n" \
    "$n" "$running" "$nerr" "$(awk -v a=$t0 -v b=$t1 'BEGIN{print (b-a)/1e9}')" "$((drss + srss))" "$((dpss + spss))" \
    "$drss" "$srss" "$dpss" "$spss"
  [ "$nerr" -gt 0 ] && { echo "  first ctr errors:"; sort "$T/cd.err" | uniq -c | sort -rn | head -3; }
  awk -v a="$crss" -v b="$((drss + srss))" -v c="$cpss" -v d="$((dpss + spss))" \
    'BEGIN{if (b > 0 && d > 0) printf "crater / containerd: RSS %.2f, PSS %.2f\n", a/b, c/d}'
fi
