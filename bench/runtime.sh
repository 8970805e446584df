#!/bin/bash
# bench/runtime.sh: crater-runtime vs runc (and crun when it works on this
# host) on the same busybox bundle running /bin/true, N iterations each,
# side by side with ratios: `run`, then `create`, `start` and `delete`
# timed separately (hyperfine --prepare sets up each state untimed), then
# create+start+delete as three commands.  Uses hyperfine when
# installed, else a plain timing loop.  Run as root.
#
#   bench/runtime.sh [N]        (CRATER_BUILD=build dir, default ./build)
set -u
N=${1:-50}
BUILD=${CRATER_BUILD:-$(pwd)/build}
CRATER=$BUILD/bin/crater-runtime
[ -x "$CRATER" ] || { echo "no $CRATER: build first (CRATER_BUILD=...)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

TMP=$(mktemp -d /tmp/crater-bench.XXXXXX)
cleanup() {
  for rt in crater runc crun; do
    [ -d "$TMP/$rt-root" ] || continue
    case $rt in crater) bin=$CRATER ;; *) bin=$(command -v $rt || true) ;; esac
    [ -n "$bin" ] && "$bin" --root "$TMP/$rt-root" delete --force bench-$rt >/dev/null 2>&1 || true
  done
  for d in /sys/fs/cgroup/*/crater-bench /sys/fs/cgroup/crater-bench; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# bundle: busybox rootfs, runc-like config with /bin/true
mkdir -p "$TMP/b/rootfs/bin" "$TMP/b/rootfs/etc" "$TMP/b/rootfs/proc" "$TMP/b/rootfs/dev" "$TMP/b/rootfs/sys"
cp /bin/busybox "$TMP/b/rootfs/bin/busybox"
ln -s busybox "$TMP/b/rootfs/bin/true"
ln -s busybox "$TMP/b/rootfs/bin/sh"
echo 'root:x:0:0:root:/root:/bin/sh' >"$TMP/b/rootfs/etc/passwd"
echo 'root:x:0:' >"$TMP/b/rootfs/etc/group"
cat >"$TMP/b/config.json" <<'JSON'
{"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0},"args":["/bin/true"],
 "env":["PATH=/bin"],"cwd":"/","noNewPrivileges":true,
 "capabilities":{"bounding":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
  "effective":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
  "permitted":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"]},
 "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}]},
 "root":{"path":"rootfs","readonly":true},"hostname":"bench",
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
  {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
  {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}],
 "linux":{"cgroupsPath":"/crater-bench/ID","resources":{"devices":[{"allow":false,"access":"rwm"}]},
  "namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],
  "maskedPaths":["/proc/kcore","/proc/keys","/proc/timer_list","/sys/firmware"],
  "readonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}}
JSON

names=""; cmds=""
add() { # name binary
  mkdir -p "$TMP/$1-b"
  sed -e "s#/crater-bench/ID#/crater-bench/$1#" -e "s#\"path\":\"rootfs\"#\"path\":\"$TMP/b/rootfs\"#" \
    "$TMP/b/config.json" >"$TMP/$1-b/config.json"
  cmd="$2 --root $TMP/$1-root run --bundle $TMP/$1-b bench-$1"
  if $cmd >"$TMP/$1.probe" 2>&1; then
    names="$names $1"
    eval "cmd_$1=\"\$cmd\""
    eval "bin_$1=\"\$2\""
  else
    echo "== $1 does not work on this host, skipped: $(head -c 300 "$TMP/$1.probe")"
  fi
}
add crater "$CRATER"
command -v runc >/dev/null && add runc "$(command -v runc)"
command -v crun >/dev/null && add crun "$(command -v crun)"

# hyperfine JSON -> table with the ratio against crater
report() { # json
  luajit - "$1" <<'LUA'
    local cj = require "cjson"
    local f = io.open(arg[1]); local d = cj.decode(f:read("*a")); f:close()
    local base
    for _, r in ipairs(d.results) do if r.command == "crater" then base = r.median end end
    print(string.format("%-8s %10s %10s %10s %10s %12s", "runtime", "median ms", "mean ms", "stddev", "min ms", "vs crater"))
    for _, r in ipairs(d.results) do
      print(string.format("%-8s %10.2f %10.2f %10.2f %10.2f %11.2fx", r.command, r.median * 1e3, r.mean * 1e3,
        r.stddev * 1e3, r.min * 1e3, base and r.median / base or 0))
    end
LUA
}

# phase NAME PREPARE-TEMPLATE TIMED-TEMPLATE: %B = binary, %R = root dir,
# %D = bundle, %I = container id; PREPARE runs untimed before every run
phase() {
  local title=$1 prep=$2 timed=$3 n set=()
  for n in $names; do
    eval "bin=\$bin_$n"
    local sub="s#%B#$bin#g;s#%R#$TMP/$n-root#g;s#%D#$TMP/$n-b#g;s#%I#bench-$n#g"
    local t p
    t=$(printf %s "$timed" | sed "$sub")
    p=$(printf %s "$prep" | sed "$sub")
    set+=(-n "$n")
    [ -n "$p" ] && set+=(--prepare "$p")
    set+=("$t")
  done
  echo "== $title ($N runs each)"
  if hyperfine -N --warmup 3 --runs "$N" --export-json "$TMP/h.json" "${set[@]}" >/dev/null 2>"$TMP/h.err"; then
    report "$TMP/h.json"
  else
    echo "   hyperfine failed: $(tail -3 "$TMP/h.err")"
  fi
}

if command -v hyperfine >/dev/null; then
  for n in $names; do "$(eval echo \$bin_$n)" --root "$TMP/$n-root" delete --force bench-$n >/dev/null 2>&1; done
  phase "run (create+start+wait+delete in one process)" "" "%B --root %R run --bundle %D %I"
  # Back-to-back runs hide the cost of moving a process between cgroups: the
  # kernel's threadgroup lock waits for an RCU grace period unless another
  # writer took it moments ago.  A shim-driven create is never back-to-back,
  # so create is also timed after 50 ms of idle.
  phase "create" "sh -c '%B --root %R delete --force %I >/dev/null 2>&1; true'" "%B --root %R create --bundle %D %I"
  phase "create, 50 ms after the previous command" \
    "sh -c '%B --root %R delete --force %I >/dev/null 2>&1; sleep 0.05'" "%B --root %R create --bundle %D %I"
  phase "start (of a created /bin/true)" \
    "sh -c '%B --root %R delete --force %I >/dev/null 2>&1; %B --root %R create --bundle %D %I'" "%B --root %R start %I"
  phase "delete (of a stopped container)" \
    "sh -c '%B --root %R delete --force %I >/dev/null 2>&1; %B --root %R create --bundle %D %I && %B --root %R start %I && sleep 0.01'" \
    "%B --root %R delete %I"
  phase "create + start + delete (three commands, one sh)" "" \
    "sh -c '%B --root %R create --bundle %D %I && %B --root %R start %I && %B --root %R delete --force %I'"
else
  echo "== $N iterations of 'run' of a busybox bundle running /bin/true (no hyperfine: plain loop)"
  printf "%-8s %10s %12s\n" runtime "mean ms" "vs crater"
  base=""
  for n in $names; do
    eval "cmd=\$cmd_$n"
    s=$(date +%s%N); i=0
    while [ $i -lt "$N" ]; do $cmd >/dev/null 2>&1; i=$((i + 1)); done
    e=$(date +%s%N)
    ms=$(( (e - s) / N / 1000 ))
    [ -z "$base" ] && base=$ms
    printf "%-8s %10s %11s\n" "$n" "$((ms / 1000)).$(printf %03d $((ms % 1000)))" "$(awk "BEGIN{printf \"%.2fx\", $ms/$base}")"
  done
fi
