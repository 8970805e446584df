#!/bin/sh
# bench/runtime.sh: `crater-runtime run` vs `runc run` (and `crun run` when
# it works on this host) on the same busybox bundle running /bin/true,
# N iterations each, side by side with ratios.  Uses hyperfine when
# installed, else a plain timing loop.  Run as root.
#
#   bench/runtime.sh [N]        (CRATER_BUILD=build dir, default ./build)
set -eu
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
  else
    echo "== $1 does not work on this host, skipped: $(head -c 300 "$TMP/$1.probe")"
  fi
}
add crater "$CRATER"
command -v runc >/dev/null && add runc "$(command -v runc)"
command -v crun >/dev/null && add crun "$(command -v crun)"

echo "== $N iterations of 'run' of a busybox bundle running /bin/true"
if command -v hyperfine >/dev/null; then
  set --
  for n in $names; do eval "set -- \"\$@\" -n $n \"\$cmd_$n\""; done
  hyperfine -N --warmup 3 --runs "$N" --export-json "$TMP/h.json" "$@" >/dev/null 2>&1 || hyperfine --warmup 3 --runs "$N" --export-json "$TMP/h.json" "$@" >/dev/null
  # mean / stddev / min per runtime and the ratio against crater
  luajit - "$TMP/h.json" <<'LUA'
    local cj = require "cjson"
    local f = io.open(arg[1]); local d = cj.decode(f:read("*a")); f:close()
    local base
    for _, r in ipairs(d.results) do if r.command == "crater" then base = r.mean end end
    print(string.format("%-8s %10s %10s %10s %10s %12s", "runtime", "mean ms", "stddev", "min ms", "max ms", "vs crater"))
    for _, r in ipairs(d.results) do
      print(string.format("%-8s %10.2f %10.2f %10.2f %10.2f %11.2fx", r.command, r.mean * 1e3, r.stddev * 1e3,
        r.min * 1e3, r.max * 1e3, base and r.mean / base or 0))
    end
LUA
else
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
