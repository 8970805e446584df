#!/usr/bin/env bash
# bench/crun_v2ns.sh: bare `crun run` where crun 1.8 refuses the host.
#
# crun refuses v1/v2 hybrid hosts ("cgroups in hybrid mode not
# supported").  Run inside `unshare -m`, this script mounts the cgroup2
# hierarchy alone on /sys/fs/cgroup (a private mount: the host is not
# touched), where crun runs.  On a hybrid host that hierarchy has no
# controllers, so crun writes no limits: its best case.  When crun cannot
# raise RLIMIT_MEMLOCK (no CAP_SYS_RESOURCE, as in some sandboxes) it cannot
# load its eBPF device filter; the bundle then allows all devices, again
# crun's cheaper case.  crater-runtime runs the same bundle in the same
# namespace, so the two runtimes are compared like for like.
# With CRATER, ROOT and IMAGE also given, `crater run --rm IMAGE` is timed
# there too: crater and bare crun on the same cgroup hierarchy.
# With GAP=S in the environment each timed run comes S seconds after the
# previous one ended (sporadic starts: nothing kept warm by the last run).
# With DAEMON=1 `crater run` goes through a `crater daemon` started in the
# namespace (its own socket), which runs the containers there too.
# With ROUNDS=R (and CRATER) the N runs of bare crun and of `crater run`
# alternate R times, and each figure is the median of all R*N runs: on a
# host whose speed drifts within minutes, both see the same drift.  The
# means go to stderr.
# Usage: unshare -m --propagation private bench/crun_v2ns.sh N BUNDLE CRATER_RUNTIME [CRATER ROOT IMAGE]
# Prints "crun <median ms>", "crater-runtime <median ms>" [and "crater-run <median ms>"].
set -uo pipefail
N=$1 BUNDLE=$2 CRT=$3 CRATER=${4:-} ROOT=${5:-} IMAGE=${6:-}
GAP=${GAP:-0}
pause() { [ "$GAP" = 0 ] || sleep "$GAP"; }
mount -t cgroup2 none /sys/fs/cgroup || { echo "cannot mount cgroup2" >&2; exit 1; }
W=$(mktemp -d "${BENCH_STATE:-/run}/crater-bench-crun.XXXXXX")
trap 'rm -rf "$W"' EXIT
cp -r "$BUNDLE" "$W/bundle"
if ! crun --root "$W/probe" run --bundle "$W/bundle" probe >/dev/null 2>"$W/err"; then
  if grep -q MEMLOCK "$W/err"; then
    python3 - "$W/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.setdefault("linux", {}).setdefault("resources", {})["devices"] = [{"allow": True, "access": "rwm"}]
json.dump(c, open(sys.argv[1], "w"))
PY
    echo "note: crun cannot raise RLIMIT_MEMLOCK here; both runtimes run with all devices allowed" >&2
  fi
  crun --root "$W/probe" run --bundle "$W/bundle" probe2 >/dev/null 2>&1 || { echo "crun still refuses: $(tail -1 "$W/err")" >&2; exit 1; }
fi
# times: bash's $EPOCHREALTIME, no fork (run.sh, measure)
med() { sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'; }
mean() { awk '{s+=$1} END{printf "%.2f", s/NR/1000}'; }
ROUNDS=${ROUNDS:-1}
[ -n "$CRATER" ] || ROUNDS=1
# N timed runs of a bare runtime (rt, its name, round) into $W/NAME.times
bare() {
  local rt=$1 name=$2 r=$3 i t0 t1
  [ "$r" = 1 ] && "$rt" --root "$W/$name" run --bundle "$W/bundle" warm >/dev/null 2>&1
  for i in $(seq "$N"); do
    pause
    t0=${EPOCHREALTIME/./}
    "$rt" --root "$W/$name" run --bundle "$W/bundle" "b$r-$i" >/dev/null 2>&1
    t1=${EPOCHREALTIME/./}
    echo $(( t1 - t0 ))
  done >>"$W/$name.times"
}
for rt in crun "$CRT"; do
  name=crun; [ "$rt" = crun ] || name=crater-runtime
  # with ROUNDS, crun alternates with `crater run` below
  [ "$ROUNDS" -gt 1 ] && [ "$name" = crun ] && continue
  bare "$rt" "$name" 1
  med <"$W/$name.times" | sed "s/^/$name /"
  echo
done
if [ -n "$CRATER" ]; then
  if [ "${DAEMON:-0}" = 1 ]; then
    # `crater daemon` started in this namespace, so that its workers run
    # the containers on this cgroup2 hierarchy, as crun does (a daemon
    # started outside would serve these commands on the host's)
    "$CRATER" --root "$ROOT" daemon --socket "$W/crater.sock" >"$W/daemon.log" 2>&1 &
    DPID=$!
    export CRATER_SOCKET=$W/crater.sock
    for _ in $(seq 50); do [ -S "$W/crater.sock" ] && break; sleep 0.1; done
    sleep 0.3
    "$CRATER" --root "$ROOT" version | grep -q "served by crater daemon" || echo "crater daemon does not serve (v2 ns)" >&2
    trap 'kill $DPID 2>/dev/null; wait $DPID 2>/dev/null; rm -rf "$W"' EXIT
  fi
  "$CRATER" --root "$ROOT" run --rm "$IMAGE" v2warm /bin/true >/dev/null 2>&1
  for r in $(seq "$ROUNDS"); do
    [ "$ROUNDS" -gt 1 ] && bare crun crun "$r"
    for i in $(seq "$N"); do
      pause
      t0=${EPOCHREALTIME/./}
      "$CRATER" --root "$ROOT" run --rm "$IMAGE" "v2b$r-$i" /bin/true >/dev/null 2>&1
      t1=${EPOCHREALTIME/./}
      echo $(( t1 - t0 ))
    done >>"$W/crater-run.times"
  done
  if [ "$ROUNDS" -gt 1 ]; then
    med <"$W/crun.times" | sed "s/^/crun /"
    echo
    echo "$ROUNDS alternating rounds of $N: means crun $(mean <"$W/crun.times") ms, crater run $(mean <"$W/crater-run.times") ms" >&2
  fi
  med <"$W/crater-run.times" | sed "s/^/crater-run /"
  echo
fi
