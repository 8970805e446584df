/*
 * cgroup manager for crater-runtime, v1 or v2 chosen at run time.
 *
 * Detection: /sys/fs/cgroup is cgroup2 (statfs magic) -> unified mode;
 * otherwise every directory under /sys/fs/cgroup except "unified" is taken
 * as a v1 hierarchy (cpu, memory, pids, freezer, name=systemd, ...) and the
 * container gets the same relative path in each.  Hybrid hosts thus run in
 * v1 mode, like runc does; and, like runc, the container also gets the
 * same path in the hybrid's cgroup2 hierarchy (/sys/fs/cgroup/unified, no
 * controllers there), where systemd tracks processes: without it the
 * container would count as part of whatever unit started the runtime.
 *
 * Devices: v1 writes devices.allow/deny; v2 attaches an eBPF program
 * compiled from the same rules (devices_bpf.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

#define CG_ROOT "/sys/fs/cgroup"

bool
crater__cgroup_is_v2(void)
{
  static int cached = -1;
  if (cached < 0) {
    struct statfs sf;
    cached = statfs(CG_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
  }
  return cached;
}

/* A hybrid host's cgroup2 hierarchy, mounted at /sys/fs/cgroup/unified
 * beside the v1 ones. */
static bool
hybrid_unified(void)
{
  static int cached = -1;
  if (cached < 0) {
    struct statfs sf;
    cached = !crater__cgroup_is_v2() && statfs(CG_ROOT "/unified", &sf) == 0 &&
             sf.f_type == CGROUP2_SUPER_MAGIC;
  }
  return cached;
}

/* v1 hierarchy names (directories under /sys/fs/cgroup, not symlinks). */
static char **
v1_hierarchies(size_t *n)
{
  char **out = NULL;
  *n = 0;
  DIR *d = opendir(CG_ROOT);
  if (d == NULL)
    return NULL;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "unified") == 0 || e->d_type != DT_DIR)
      continue;
    out = xrealloc(out, (*n + 2) * sizeof *out);
    out[(*n)++] = xstrdup(e->d_name);
    out[*n] = NULL;
  }
  closedir(d);
  return out;
}

static void
free_strv(char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

char *
crater__cgroup_path_for(json_t *config, const char *id)
{
  const char *p = crater__js(crater__jpath(config, "linux"), "cgroupsPath");
  if (p == NULL || *p == '\0')
    return xasprintf("/crater/%s", id);
  if (*p == '/')
    return xstrdup(p);
  const char *c1 = strchr(p, ':');
  if (c1) {
    /* systemd form "slice:prefix:name"; no systemd manager, map to a path */
    const char *c2 = strchr(c1 + 1, ':');
    cleanup_free char *slice = xstrndup(p, c1 - p);
    cleanup_free char *prefix = c2 ? xstrndup(c1 + 1, c2 - c1 - 1) : xstrdup(c1 + 1);
    const char *name = c2 ? c2 + 1 : id;
    return xasprintf("/%s/%s-%s.scope", *slice ? slice : "system.slice", prefix, name);
  }
  return xasprintf("/crater/%s", p);
}

static char *
cg_dir(const char *hier, const char *path)
{
  if (hier)
    return xasprintf(CG_ROOT "/%s%s", hier, path);
  return xasprintf(CG_ROOT "%s", path);
}

/* The container cgroup's directories: the one of v2, or one per v1
 * hierarchy (present or not) and the hybrid's unified one;
 * NULL-terminated, *n of them; NULL when the host has no cgroup hierarchy
 * at all.  Free with free_strv. */
static char **
cg_dirs(const char *path, size_t *n)
{
  if (crater__cgroup_is_v2()) {
    char **dirs = xcalloc(2, sizeof *dirs);
    dirs[0] = cg_dir(NULL, path);
    *n = 1;
    return dirs;
  }
  char **h = v1_hierarchies(n);
  for (size_t i = 0; i < *n; i++) {
    char *d = cg_dir(h[i], path);
    free(h[i]);
    h[i] = d;
  }
  if (hybrid_unified()) {
    h = xrealloc(h, (*n + 2) * sizeof *h);
    h[(*n)++] = cg_dir("unified", path);
    h[*n] = NULL;
  }
  return h;
}

static int
cg_write(const char *dir, const char *file, const char *val, crater_error_t *err)
{
  cleanup_free char *p = crater__path_join(dir, file);
  rt_debug("cgroup: %s <- %s", p, val);
  return crater__write_str(p, val, err);
}

static int cg_writef(const char *dir, const char *file, crater_error_t *err, const char *fmt, ...)
    CRATER_PRINTF(4, 5);
static int
cg_writef(const char *dir, const char *file, crater_error_t *err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *v = xvasprintf(fmt, ap);
  va_end(ap);
  return cg_write(dir, file, v, err);
}

static char *
cg_read(const char *dir, const char *file)
{
  cleanup_free char *p = crater__path_join(dir, file);
  crater_error_t e = NULL;
  char *s = crater__read_file(p, 1 << 20, NULL, &e);
  crater_error_release(&e);
  return s;
}

static long long
cg_read_ll(const char *dir, const char *file)
{
  cleanup_free char *s = cg_read(dir, file);
  if (s == NULL)
    return -1;
  if (strncmp(s, "max", 3) == 0)
    return -1;
  return strtoll(s, NULL, 10);
}

/* v2: enables every controller `dir` has for its children (cgroup.subtree_control),
 * skipping those already on; best effort, as a controller may be refused (a
 * threaded subtree, a controller the parent lacks). */
static void
enable_controllers(const char *dir)
{
  cleanup_free char *ctrls = cg_read(dir, "cgroup.controllers");
  cleanup_free char *on = cg_read(dir, "cgroup.subtree_control");
  char *save = NULL;
  for (char *t = ctrls ? strtok_r(ctrls, " \n", &save) : NULL; t;
       t = strtok_r(NULL, " \n", &save)) {
    size_t n = strlen(t);
    bool enabled = false;
    for (const char *p = on; p && (p = strstr(p, t)) != NULL; p += n)
      if ((p == on || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
        enabled = true;
    if (enabled)
      continue;
    crater_error_t e = NULL;
    cleanup_free char *plus = xasprintf("+%s", t);
    if (cg_write(dir, "cgroup.subtree_control", plus, &e) < 0)
      rt_debug("cgroup: enable %s in %s: %s", t, dir, e->msg);
    crater_error_release(&e);
  }
}

/* A new v1 cpuset cgroup starts with no cpus or mems: it takes its
 * parent's. */
static int
cpuset_inherit(const char *hier, const char *parent, const char *d, crater_error_t *err)
{
  if (hier == NULL || strcmp(hier, "cpuset") != 0)
    return 0;
  cleanup_free char *cpus = cg_read(parent, "cpuset.cpus");
  cleanup_free char *mems = cg_read(parent, "cpuset.mems");
  crater_error_t e = NULL;
  if (cpus &&
      (cg_write(d, "cpuset.cpus", cpus, &e) < 0 || cg_write(d, "cpuset.mems", mems, &e) < 0)) {
    crater_error_move(err, &e);
    return crater_error_wrap(err, "init cpuset %s", d);
  }
  return 0;
}

/* mkdir -p under a cgroup mount; cpuset levels inherit cpus/mems.  On v2 the
 * controllers are enabled on every level above the leaf, the root included
 * (a host without systemd has none enabled there), as runc and crun do. */
static int
cg_mkdir(const char *hier, const char *path, bool v2, crater_error_t *err)
{
  cleanup_free char *buf = xstrdup(path);
  if (!v2) {
    /* the usual case on v1: the parents are there (crater/<namespace>), one
     * mkdir instead of one per level */
    cleanup_free char *leaf = cg_dir(hier, path);
    if (mkdir(leaf, 0755) == 0) {
      char *slash = strrchr(buf, '/');
      if (slash)
        *slash = '\0';
      cleanup_free char *up = cg_dir(hier, buf);
      return cpuset_inherit(hier, up, leaf, err);
    }
    if (errno == EEXIST)
      return 0;
    if (errno != ENOENT)
      return crater_error_sys(err, errno, "mkdir %s", leaf);
  }
  cleanup_free char *parent = cg_dir(hier, "");
  if (v2)
    enable_controllers(parent);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    char c = *p;
    *p = '\0';
    cleanup_free char *d = cg_dir(hier, buf);
    if (mkdir(d, 0755) == 0) {
      if (cpuset_inherit(hier, parent, d, err) < 0)
        return -1;
    } else if (errno != EEXIST) {
      return crater_error_sys(err, errno, "mkdir %s", d);
    }
    if (v2 && c == '/')
      enable_controllers(d);
    free(parent);
    parent = steal_pointer(&d);
    if (c == '\0')
      break;
    *p = c;
  }
  return 0;
}

static int
apply_v1(const char *path, json_t *res, json_t *linux_devs, crater_error_t *err)
{
  json_t *mem = json_object_get(res, "memory");
  json_t *cpu = json_object_get(res, "cpu");
  json_t *pids = json_object_get(res, "pids");
  cleanup_free char *dmem = cg_dir("memory", path);
  cleanup_free char *dcpu = cg_dir("cpu", path);
  cleanup_free char *dset = cg_dir("cpuset", path);
  cleanup_free char *dpids = cg_dir("pids", path);
  cleanup_free char *ddev = cg_dir("devices", path);
  if (json_is_object(mem)) {
    json_int_t limit = crater__ji(mem, "limit", 0), swap = crater__ji(mem, "swap", 0);
    json_int_t resv = crater__ji(mem, "reservation", 0);
    if (limit != 0 && cg_writef(dmem, "memory.limit_in_bytes", err, "%lld", (long long) limit) < 0)
      return -1;
    if (swap != 0) {
      crater_error_t e = NULL;
      if (cg_writef(dmem, "memory.memsw.limit_in_bytes", &e, "%lld", (long long) swap) < 0) {
        if (e->status != ENOENT) {
          crater_error_move(err, &e);
          return -1;
        }
        crater__rt_log("warning", "swap limit not supported by the kernel, ignored");
        crater_error_release(&e);
      }
    }
    if (resv > 0 &&
        cg_writef(dmem, "memory.soft_limit_in_bytes", err, "%lld", (long long) resv) < 0)
      return -1;
    json_int_t swappiness = crater__ji(mem, "swappiness", -1);
    if (swappiness >= 0 && swappiness <= 100 &&
        cg_writef(dmem, "memory.swappiness", err, "%lld", (long long) swappiness) < 0)
      return -1;
    if (crater__jb(mem, "disableOOMKiller", false) &&
        cg_write(dmem, "memory.oom_control", "1", err) < 0)
      return -1;
  }
  if (json_is_object(cpu)) {
    json_int_t shares = crater__ji(cpu, "shares", 0), quota = crater__ji(cpu, "quota", 0);
    json_int_t period = crater__ji(cpu, "period", 0);
    if (shares > 0 && cg_writef(dcpu, "cpu.shares", err, "%lld", (long long) shares) < 0)
      return -1;
    if (period > 0 && cg_writef(dcpu, "cpu.cfs_period_us", err, "%lld", (long long) period) < 0)
      return -1;
    if (quota != 0 && cg_writef(dcpu, "cpu.cfs_quota_us", err, "%lld", (long long) quota) < 0)
      return -1;
    const char *cpus = crater__js(cpu, "cpus"), *mems = crater__js(cpu, "mems");
    if (cpus && *cpus && cg_write(dset, "cpuset.cpus", cpus, err) < 0)
      return -1;
    if (mems && *mems && cg_write(dset, "cpuset.mems", mems, err) < 0)
      return -1;
  }
  if (json_is_object(pids)) {
    json_int_t l = crater__ji(pids, "limit", 0);
    if (l > 0 ? cg_writef(dpids, "pids.max", err, "%lld", (long long) l) < 0
              : cg_write(dpids, "pids.max", "max", err) < 0)
      return -1;
  }
  json_t *devs = json_object_get(res, "devices");
  if (json_is_array(devs) && access(ddev, F_OK) == 0) {
    /* the same ordered rules as v2's eBPF program (devices_bpf.c) */
    size_t n;
    crater_dev_rule_t *rules = crater__device_rules(devs, linux_devs, &n);
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
      cleanup_free char *rule = crater__dev_rule_v1(&rules[i]);
      r = cg_write(ddev, rules[i].allow ? "devices.allow" : "devices.deny", rule, err);
    }
    free(rules);
    if (r < 0)
      return -1;
  }

  json_t *blkio = json_object_get(res, "blockIO");
  json_int_t w = crater__ji(blkio, "weight", 0);
  if (w > 0) {
    cleanup_free char *dblk = cg_dir("blkio", path);
    crater_error_t e = NULL;
    if (cg_writef(dblk, "blkio.weight", &e, "%lld", (long long) w) < 0)
      crater__rt_log("warning", "blkio weight ignored: %s", e->msg);
    crater_error_release(&e);
  }
  return 0;
}

static int
apply_v2(const char *path, json_t *res, json_t *linux_devs, crater_error_t *err)
{
  cleanup_free char *d = cg_dir(NULL, path);
  json_t *mem = json_object_get(res, "memory");
  json_t *cpu = json_object_get(res, "cpu");
  json_t *pids = json_object_get(res, "pids");
  if (json_is_object(mem)) {
    json_int_t limit = crater__ji(mem, "limit", 0), swap = crater__ji(mem, "swap", 0);
    json_int_t resv = crater__ji(mem, "reservation", 0);
    if (limit > 0 && cg_writef(d, "memory.max", err, "%lld", (long long) limit) < 0)
      return -1;
    if (swap != 0) {
      /* OCI swap is memory+swap; v2 swap.max is swap alone */
      int r = swap < 0 ? cg_write(d, "memory.swap.max", "max", err)
                       : cg_writef(d, "memory.swap.max", err, "%lld",
                                   (long long) (limit > 0 && swap >= limit ? swap - limit : swap));
      if (r < 0)
        return -1;
    }
    if (resv > 0 && cg_writef(d, "memory.low", err, "%lld", (long long) resv) < 0)
      return -1;
  }
  if (json_is_object(cpu)) {
    json_int_t shares = crater__ji(cpu, "shares", 0), quota = crater__ji(cpu, "quota", 0);
    json_int_t period = crater__ji(cpu, "period", 0);
    if (shares > 0) {
      unsigned long long wgt = 1 + ((unsigned long long) (shares - 2) * 9999) / 262142;
      if (cg_writef(d, "cpu.weight", err, "%llu", wgt) < 0)
        return -1;
    }
    if (quota != 0 || period > 0) {
      int r = quota > 0 ? cg_writef(d, "cpu.max", err, "%lld %lld", (long long) quota,
                                    (long long) (period > 0 ? period : 100000))
                        : cg_writef(d, "cpu.max", err, "max %lld",
                                    (long long) (period > 0 ? period : 100000));
      if (r < 0)
        return -1;
    }
    const char *cpus = crater__js(cpu, "cpus"), *mems = crater__js(cpu, "mems");
    if (cpus && *cpus && cg_write(d, "cpuset.cpus", cpus, err) < 0)
      return -1;
    if (mems && *mems && cg_write(d, "cpuset.mems", mems, err) < 0)
      return -1;
  }
  if (json_is_object(pids)) {
    json_int_t l = crater__ji(pids, "limit", 0);
    if (l > 0 ? cg_writef(d, "pids.max", err, "%lld", (long long) l) < 0
              : cg_write(d, "pids.max", "max", err) < 0)
      return -1;
  }
  /* blockIO.weight (10-1000): bfq's own weight when bfq is there (same
   * range), else io.weight converted to its 1-10000 range as runc does */
  json_int_t bw = crater__ji(json_object_get(res, "blockIO"), "weight", 0);
  if (bw > 0) {
    cleanup_free char *bfq = xasprintf("%s/io.bfq.weight", d);
    int r = access(bfq, F_OK) == 0
                ? cg_writef(d, "io.bfq.weight", err, "%lld", (long long) bw)
                : cg_writef(d, "io.weight", err, "default %llu",
                            1 + ((unsigned long long) (bw > 10 ? bw - 10 : 0) * 9999) / 990);
    if (r < 0)
      return -1;
  }
  json_t *unified = json_object_get(res, "unified");
  const char *k;
  json_t *v;
  json_object_foreach(unified, k, v)
  {
    if (strchr(k, '/') || !json_is_string(v) || cg_write(d, k, json_string_value(v), err) < 0)
      return err && *err
                 ? -1
                 : crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "bad unified key %s", k);
  }
  /* devices: an eBPF program on the cgroup (devices_bpf.c) */
  if (crater__devices_bpf_apply(d, json_object_get(res, "devices"), linux_devs, err) < 0)
    return crater_error_wrap(err, "devices");
  return 0;
}

int
crater__cgroup_apply(const char *path, json_t *config, crater_error_t *err)
{
  json_t *res = crater__jpath(config, "linux.resources");
  if (crater__cgroup_is_v2()) {
    if (cg_mkdir(NULL, path, true, err) < 0)
      return -1;
    return json_is_object(res) ? apply_v2(path, res, crater__jpath(config, "linux.devices"), err)
                               : 0;
  }
  size_t n;
  char **h = v1_hierarchies(&n);
  for (size_t i = 0; i < n; i++)
    if (cg_mkdir(h[i], path, false, err) < 0) {
      free_strv(h);
      return -1;
    }
  free_strv(h);
  return json_is_object(res) ? apply_v1(path, res, crater__jpath(config, "linux.devices"), err) : 0;
}

int
crater__cgroup_enter(const char *path, pid_t pid, crater_error_t *err)
{
  char spid[32];
  snprintf(spid, sizeof spid, "%d", (int) pid);
  if (crater__cgroup_is_v2()) {
    cleanup_free char *d = cg_dir(NULL, path);
    return cg_write(d, "cgroup.procs", spid, err);
  }
  size_t n;
  char **h = v1_hierarchies(&n);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    cleanup_free char *d = cg_dir(h[i], path);
    if (access(d, F_OK) < 0)
      continue;
    r = cg_write(d, "cgroup.procs", spid, err);
  }
  free_strv(h);
  return r;
}

/*
 * Moving another process (writing its pid to cgroup.procs) takes the
 * kernel's global cgroup_threadgroup_rwsem for writing, which waits for an
 * RCU grace period: 12-25 ms on the build hosts, most of `create`.  A
 * single-threaded process moving itself through v1's `tasks` file with "0"
 * skips that lock (the thread cannot exit or exec under the kernel's feet),
 * costing ~0.1 ms per hierarchy.  Callers must be single-threaded and still
 * see the host's /sys/fs/cgroup with host credentials.
 */
bool
crater__cgroup_can_enter_self(void)
{
  return !crater__cgroup_is_v2();
}

int
crater__cgroup_enter_self(const char *path, crater_error_t *err)
{
  if (crater__cgroup_is_v2()) {
    cleanup_free char *d = cg_dir(NULL, path);
    return cg_write(d, "cgroup.procs", "0", err);
  }
  size_t n;
  char **h = v1_hierarchies(&n);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    cleanup_free char *d = cg_dir(h[i], path);
    if (access(d, F_OK) < 0)
      continue;
    r = cg_write(d, "tasks", "0", err);
  }
  free_strv(h);
  return r;
}

static char *
freezer_dir(const char *path)
{
  return crater__cgroup_is_v2() ? cg_dir(NULL, path) : cg_dir("freezer", path);
}

bool
crater__cgroup_frozen(const char *path)
{
  cleanup_free char *d = freezer_dir(path);
  if (crater__cgroup_is_v2()) {
    cleanup_free char *s = cg_read(d, "cgroup.freeze");
    return s && s[0] == '1';
  }
  cleanup_free char *s = cg_read(d, "freezer.state");
  return s && (strncmp(s, "FROZEN", 6) == 0 || strncmp(s, "FREEZING", 8) == 0);
}

/*
 * On v2 there is no cheap self-move: writing to cgroup.procs, even "0",
 * takes that same lock, and where nothing else took it within a grace
 * period it waits for one (~10 ms in a cgroup2-only namespace of the build
 * hosts, more than the rest of a container start).  A child cloned with
 * CLONE_INTO_CGROUP is attached while it is created, under cgroup_mutex and
 * the lock's read side only: crun does the same.
 */
/* struct clone_args of linux/sched.h, version 2 (with cgroup): its layout
 * is fixed by the kernel ABI, declared here to keep the kernel header and
 * glibc's <sched.h> apart. */
struct crater_clone_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* On a hybrid host: the container's cgroup in the unified hierarchy, made
 * before its first process is cloned into it (crater__cgroup_clone_into);
 * no controllers, no limits.  Elsewhere nothing to do. */
int
crater__cgroup_prepare_unified(const char *path, crater_error_t *err)
{
  if (!hybrid_unified())
    return 0;
  return cg_mkdir("unified", path, false, err);
}

pid_t
crater__cgroup_clone_into(const char *path, int flags)
{
  if (!crater__cgroup_is_v2() && !hybrid_unified())
    return -1;
  cleanup_free char *d = cg_dir(crater__cgroup_is_v2() ? NULL : "unified", path);
  int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  pid_t pid = -1;
  if (fd >= 0) {
#ifdef SYS_clone3
    struct crater_clone_args a = {
      .flags = (uint64_t) (unsigned) flags | CLONE_INTO_CGROUP,
      .exit_signal = SIGCHLD,
      .cgroup = (uint64_t) fd,
    };
    pid = (pid_t) syscall(SYS_clone3, &a, sizeof a);
#else
    errno = ENOSYS;
#endif
  }
  int e = errno;
  if (pid < 0)
    rt_debug("clone into cgroup %s: %s; moving the process instead", path, strerror(e));
  if (fd >= 0)
    close(fd);
  errno = e;
  return pid;
}

int
crater__cgroup_freeze(const char *path, bool frozen, crater_error_t *err)
{
  cleanup_free char *d = freezer_dir(path);
  bool v2 = crater__cgroup_is_v2();
  if (v2 ? cg_write(d, "cgroup.freeze", frozen ? "1" : "0", err) < 0
         : cg_write(d, "freezer.state", frozen ? "FROZEN" : "THAWED", err) < 0)
    return crater_error_wrap(err, "%s cgroup %s", frozen ? "freeze" : "thaw", path);
  for (int i = 0; i < 1000; i++) {
    if (v2) {
      cleanup_free char *ev = cg_read(d, "cgroup.events");
      char *f = ev ? strstr(ev, "frozen ") : NULL;
      if (f == NULL || (f[7] == '1') == frozen)
        return 0;
    } else {
      cleanup_free char *s = cg_read(d, "freezer.state");
      if (s == NULL || strncmp(s, frozen ? "FROZEN" : "THAWED", 6) == 0)
        return 0;
      if (frozen && i % 50 == 49) /* nudge a stuck FREEZING */
        cg_write(d, "freezer.state", "FROZEN", NULL);
    }
    usleep(1000);
  }
  return crater_error_make(err, CRATER_ERR_DEADLINE_EXCEEDED, ETIMEDOUT, "%s cgroup %s: timed out",
                           frozen ? "freeze" : "thaw", path);
}

static char *
procs_dir(const char *path)
{
  if (crater__cgroup_is_v2())
    return cg_dir(NULL, path);
  static const char *const pref[] = { "pids", "freezer", "memory", "cpu", "devices", NULL };
  for (int i = 0; pref[i]; i++) {
    char *d = cg_dir(pref[i], path);
    if (access(d, F_OK) == 0)
      return d;
    free(d);
  }
  return cg_dir("systemd", path);
}

pid_t *
crater__cgroup_pids(const char *path, size_t *n, crater_error_t *err)
{
  cleanup_free char *d = procs_dir(path);
  cleanup_free char *p = crater__path_join(d, "cgroup.procs");
  *n = 0;
  cleanup_free char *s = crater__read_file(p, 16 << 20, NULL, err);
  if (s == NULL)
    return NULL;
  pid_t *out = xmalloc(sizeof(pid_t));
  char *save = NULL;
  for (char *t = strtok_r(s, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
    out = xrealloc(out, (*n + 1) * sizeof *out);
    out[(*n)++] = (pid_t) atoi(t);
  }
  return out;
}

int
crater__cgroup_kill_all(const char *path, int sig, crater_error_t *err)
{
  /* freeze first so nothing forks behind our back */
  crater_error_t e = NULL;
  bool froze = crater__cgroup_freeze(path, true, &e) == 0;
  crater_error_release(&e);
  size_t n;
  cleanup_free pid_t *pids = crater__cgroup_pids(path, &n, err);
  if (pids)
    for (size_t i = 0; i < n; i++)
      kill(pids[i], sig);
  if (froze)
    crater__cgroup_freeze(path, false, &e);
  crater_error_release(&e);
  return pids ? 0 : -1;
}

/* Sleeps *delay µs, then doubles it up to 20 ms: a fast first retry for the
 * common case (a SIGKILLed process exits within ~100 µs), without spinning
 * when the host is loaded. */
static void
backoff(long *delay)
{
  usleep((useconds_t) *delay);
  *delay = *delay * 2 > 20000 ? 20000 : *delay * 2;
}

/* Appends the pids in dir/cgroup.procs and in every descendant cgroup (a
 * container with a writable cgroup mount may have made some) to *v. */
static void
tree_pids(const char *dir, pid_t **v, size_t *n)
{
  cleanup_free char *s = cg_read(dir, "cgroup.procs");
  char *save = NULL;
  for (char *t = s ? strtok_r(s, "\n", &save) : NULL; t; t = strtok_r(NULL, "\n", &save)) {
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = (pid_t) atoi(t);
  }
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') {
      cleanup_free char *sub = crater__path_join(dir, e->d_name);
      tree_pids(sub, v, n);
    }
  closedir(d);
}

/* rmdir with retries while the kernel still reports EBUSY (a cgroup whose
 * last task is exiting, or a v1 memory cgroup still offlining), bounded by
 * `deadline` (monotonic µs). */
static int
rmdir_retry(const char *d, long long deadline, crater_error_t *err)
{
  long delay = 100;
  for (;;) {
    if (rmdir(d) == 0 || errno == ENOENT)
      return 0;
    if (errno != EBUSY || crater__mono_ns() / 1000 > deadline)
      return crater_error_sys(err, errno, "remove cgroup %s", d);
    backoff(&delay);
  }
}

/* Removes dir and its descendant cgroups, deepest first. */
static int
tree_rmdir(const char *dir, long long deadline, crater_error_t *err)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT ? 0 : crater_error_sys(err, errno, "open cgroup %s", dir);
  struct dirent *e;
  int r = 0;
  while (r == 0 && (e = readdir(d)))
    if (e->d_type == DT_DIR && e->d_name[0] != '.') {
      cleanup_free char *sub = crater__path_join(dir, e->d_name);
      r = tree_rmdir(sub, deadline, err);
    }
  closedir(d);
  return r < 0 ? -1 : rmdir_retry(dir, deadline, err);
}

/* SIGKILLs every process of the cgroup tree: cgroup.kill on v2 kernels that
 * have it (atomic, fork-safe); else freeze (so nothing forks behind our
 * back), kill each pid, thaw — a frozen process only dies once thawed. */
static void
kill_tree(const char *path, char **dirs, size_t nd, pid_t *pids, size_t np, bool freeze)
{
  crater_error_t e = NULL;
  if (crater__cgroup_is_v2()) {
    cleanup_free char *kf = crater__path_join(dirs[0], "cgroup.kill");
    if (access(kf, F_OK) == 0 && cg_write(dirs[0], "cgroup.kill", "1", &e) == 0)
      return;
    crater_error_release(&e);
  }
  (void) nd;
  bool froze = freeze && crater__cgroup_freeze(path, true, &e) == 0;
  crater_error_release(&e);
  if (froze) { /* re-read: the frozen set is final */
    pid_t *v = NULL;
    size_t n = 0;
    for (size_t i = 0; i < nd; i++)
      tree_pids(dirs[i], &v, &n);
    for (size_t i = 0; i < n; i++)
      kill(v[i], SIGKILL);
    free(v);
    crater__cgroup_freeze(path, false, &e);
    crater_error_release(&e);
  } else {
    for (size_t i = 0; i < np; i++)
      kill(pids[i], SIGKILL);
  }
}

#define DESTROY_KILL_US 5000000 /* processes that do not die in 5 s are stuck (D state) */
#define DESTROY_RMDIR_US 3000000

char *
crater__cgroup_dir_list(const char *path)
{
  size_t n = 0;
  char **dirs = cg_dirs(path, &n);
  size_t len = 1;
  for (size_t i = 0; i < n; i++)
    len += strlen(dirs[i]) + 1;
  char *out = xmalloc(len), *o = out;
  for (size_t i = 0; i < n; i++)
    o += sprintf(o, "%s\n", dirs[i]);
  *o = '\0';
  free_strv(dirs);
  return out;
}

int
crater__cgroup_destroy(const char *path, crater_error_t *err)
{
  size_t nd = 0;
  char **dirs = cg_dirs(path, &nd);
  if (dirs == NULL)
    return 0; /* no cgroup hierarchies at all */

  int ret = 0;
  /* The usual case, a container whose processes are gone and whose
   * cgroups are leaves: rmdir succeeds at once (the kernel refuses with
   * EBUSY while a process or a child cgroup is left), no walk of the
   * trees and their cgroup.procs in every hierarchy.  Anything refused
   * goes the whole way below. */
  bool removed = true;
  for (size_t i = 0; i < nd; i++)
    if (rmdir(dirs[i]) < 0 && errno != ENOENT)
      removed = false;
  if (removed)
    goto done;
  long delay = 100;
  long long deadline = crater__mono_ns() / 1000 + DESTROY_KILL_US;
  for (int attempt = 0;; attempt++) {
    pid_t *pids = NULL;
    size_t np = 0;
    for (size_t i = 0; i < nd; i++)
      tree_pids(dirs[i], &pids, &np);
    if (np == 0) {
      free(pids);
      break;
    }
    if (crater__mono_ns() / 1000 > deadline) {
      crater_error_make(
          err, CRATER_ERR_FAILED_PRECONDITION, EBUSY,
          "cgroup %s: %zu process(es) still present after %d s of SIGKILL (first: pid %d)", path,
          np, DESTROY_KILL_US / 1000000, (int) pids[0]);
      free(pids);
      ret = -1;
      goto done;
    }
    /* freezing is costly: first round and now and then (new forks) */
    kill_tree(path, dirs, nd, pids, np, attempt % 16 == 0);
    free(pids);
    backoff(&delay);
  }
  deadline = crater__mono_ns() / 1000 + DESTROY_RMDIR_US;
  for (size_t i = 0; i < nd; i++) {
    crater_error_t e = NULL;
    if (tree_rmdir(dirs[i], deadline, ret < 0 ? &e : err) < 0)
      ret = -1;
    crater_error_release(&e);
  }
done:
  free_strv(dirs);
  return ret;
}

/* "key value" lines into a JSON object of integers. */
static json_t *
kv_file(const char *dir, const char *file)
{
  json_t *o = json_object();
  cleanup_free char *s = cg_read(dir, file);
  char *save = NULL;
  for (char *l = s ? strtok_r(s, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
    char *sp = strchr(l, ' ');
    if (sp == NULL)
      continue;
    *sp = '\0';
    json_object_set_new(o, l, json_integer((json_int_t) strtoull(sp + 1, NULL, 10)));
  }
  return o;
}

static json_int_t
kv_get(json_t *o, const char *k)
{
  return crater__ji(o, k, 0);
}

json_t *
crater__cgroup_stats(const char *path, crater_error_t *err)
{
  json_t *cpu, *memory, *pids;
  if (crater__cgroup_is_v2()) {
    cleanup_free char *d = cg_dir(NULL, path);
    if (access(d, F_OK) < 0) {
      crater_error_sys(err, errno, "cgroup %s", d);
      return NULL;
    }
    json_t *cs = kv_file(d, "cpu.stat");
    cpu = json_pack("{s:{s:I,s:I,s:I,s:[]},s:{s:I,s:I,s:I}}", "usage", "total",
                    kv_get(cs, "usage_usec") * 1000, "kernel", kv_get(cs, "system_usec") * 1000,
                    "user", kv_get(cs, "user_usec") * 1000, "percpu", "throttling", "periods",
                    kv_get(cs, "nr_periods"), "throttledPeriods", kv_get(cs, "nr_throttled"),
                    "throttledTime", kv_get(cs, "throttled_usec") * 1000);
    json_decref(cs);
    json_t *ev = kv_file(d, "memory.events");
    json_t *raw = kv_file(d, "memory.stat");
    long long lim = cg_read_ll(d, "memory.max");
    memory = json_pack("{s:{s:I,s:I,s:I,s:I},s:{s:I,s:I},s:I,s:I,s:o}", "usage", "usage",
                       (json_int_t) cg_read_ll(d, "memory.current"), "limit",
                       (json_int_t) (lim < 0 ? INT64_MAX : lim), "max",
                       (json_int_t) cg_read_ll(d, "memory.peak"), "failcnt", kv_get(ev, "max"),
                       "swap", "usage", (json_int_t) cg_read_ll(d, "memory.swap.current"), "limit",
                       (json_int_t) cg_read_ll(d, "memory.swap.max"), "oom", kv_get(ev, "oom"),
                       "oom_kill", kv_get(ev, "oom_kill"), "raw", raw);
    json_decref(ev);
    pids = json_pack("{s:I,s:I}", "current", (json_int_t) cg_read_ll(d, "pids.current"), "limit",
                     (json_int_t) cg_read_ll(d, "pids.max"));
  } else {
    cleanup_free char *dm = cg_dir("memory", path);
    cleanup_free char *dc = cg_dir("cpuacct", path);
    cleanup_free char *dcpu = cg_dir("cpu", path);
    cleanup_free char *dp = cg_dir("pids", path);
    if (access(dm, F_OK) < 0) {
      crater_error_sys(err, errno, "cgroup %s", dm);
      return NULL;
    }
    json_t *percpu = json_array();
    cleanup_free char *pc = cg_read(dc, "cpuacct.usage_percpu");
    char *save = NULL;
    for (char *t = pc ? strtok_r(pc, " \n", &save) : NULL; t; t = strtok_r(NULL, " \n", &save))
      json_array_append_new(percpu, json_integer((json_int_t) strtoull(t, NULL, 10)));
    json_t *st = kv_file(dc, "cpuacct.stat");
    long tck = sysconf(_SC_CLK_TCK);
    json_t *thr = kv_file(dcpu, "cpu.stat");
    cpu = json_pack("{s:{s:I,s:I,s:I,s:o},s:{s:I,s:I,s:I}}", "usage", "total",
                    (json_int_t) cg_read_ll(dc, "cpuacct.usage"), "kernel",
                    kv_get(st, "system") * (1000000000 / tck), "user",
                    kv_get(st, "user") * (1000000000 / tck), "percpu", percpu, "throttling",
                    "periods", kv_get(thr, "nr_periods"), "throttledPeriods",
                    kv_get(thr, "nr_throttled"), "throttledTime", kv_get(thr, "throttled_time"));
    json_decref(st);
    json_decref(thr);
    json_t *oomc = kv_file(dm, "memory.oom_control");
    json_t *raw = kv_file(dm, "memory.stat");
    memory = json_pack("{s:I,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I},s:I,s:I,s:o}", "cache",
                       kv_get(raw, "cache"), "usage", "usage",
                       (json_int_t) cg_read_ll(dm, "memory.usage_in_bytes"), "limit",
                       (json_int_t) cg_read_ll(dm, "memory.limit_in_bytes"), "max",
                       (json_int_t) cg_read_ll(dm, "memory.max_usage_in_bytes"), "failcnt",
                       (json_int_t) cg_read_ll(dm, "memory.failcnt"), "swap", "usage",
                       (json_int_t) cg_read_ll(dm, "memory.memsw.usage_in_bytes"), "limit",
                       (json_int_t) cg_read_ll(dm, "memory.memsw.limit_in_bytes"), "max",
                       (json_int_t) cg_read_ll(dm, "memory.memsw.max_usage_in_bytes"), "failcnt",
                       (json_int_t) cg_read_ll(dm, "memory.memsw.failcnt"), "oom",
                       kv_get(oomc, "under_oom"), "oom_kill", kv_get(oomc, "oom_kill"), "raw", raw);
    json_decref(oomc);
    pids = json_pack("{s:I,s:I}", "current", (json_int_t) cg_read_ll(dp, "pids.current"), "limit",
                     (json_int_t) cg_read_ll(dp, "pids.max"));
  }
  return json_pack("{s:o,s:o,s:o,s:{},s:{}}", "cpu", cpu, "memory", memory, "pids", pids, "blkio",
                   "hugetlb");
}

int
crater__cgroup_mount(const char *path, int rootfd, const char *where, unsigned long flags,
                     bool cgroupns, crater_error_t *err)
{
  unsigned long base = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
  char dest[64];
  cleanup_close int fd = crater__open_in_root(rootfd, where, true, true, err);
  if (fd < 0)
    return -1;
  snprintf(dest, sizeof dest, "/proc/self/fd/%d", fd);
  if (crater__cgroup_is_v2()) {
    if (cgroupns && mount("cgroup2", dest, "cgroup2", base | (flags & MS_RDONLY), NULL) == 0)
      return 0;
    cleanup_free char *src = cg_dir(NULL, path);
    if (mount(src, dest, NULL, MS_BIND | MS_REC, NULL) < 0)
      return crater_error_sys(err, errno, "bind %s on cgroup mount", src);
    if ((flags & MS_RDONLY) == 0 && base == 0)
      return 0;
    /* reopen: the old fd still names the directory under the bind, and a
     * remount of that is EINVAL; keep the flags the source mount has (a user
     * namespace may not clear them) */
    close(fd);
    fd = crater__open_in_root(rootfd, where, true, false, err);
    if (fd < 0)
      return -1;
    snprintf(dest, sizeof dest, "/proc/self/fd/%d", fd);
    struct statvfs sv;
    unsigned long keep = 0;
    if (statvfs(dest, &sv) == 0)
      keep = (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) | (sv.f_flag & ST_NODEV ? MS_NODEV : 0) |
             (sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0) | (sv.f_flag & ST_RELATIME ? MS_RELATIME : 0) |
             (sv.f_flag & ST_NOATIME ? MS_NOATIME : 0);
    if (mount(NULL, dest, NULL, MS_BIND | MS_REMOUNT | (flags & MS_RDONLY) | base | keep, NULL) < 0)
      return crater_error_sys(err, errno, "remount cgroup%s",
                              flags & MS_RDONLY ? " read-only" : "");
    return 0;
  }
  if (mount("tmpfs", dest, "tmpfs", base, "mode=755") < 0)
    return crater_error_sys(err, errno, "mount tmpfs for cgroups");
  /* reopen: the old fd still names the directory under the tmpfs */
  close(fd);
  fd = crater__open_in_root(rootfd, where, true, false, err);
  if (fd < 0)
    return -1;
  size_t n;
  char **h = v1_hierarchies(&n);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) {
    cleanup_free char *src = cg_dir(h[i], path);
    cleanup_free char *dst = xasprintf("%s/%s", dest, h[i]);
    if (mkdir(dst, 0755) < 0 && errno != EEXIST)
      r = crater_error_sys(err, errno, "mkdir cgroup/%s", h[i]);
    else if (access(src, F_OK) < 0)
      continue;
    else if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
      r = crater_error_sys(err, errno, "bind %s", src);
    else if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | base | (flags & MS_RDONLY), NULL) < 0)
      r = crater_error_sys(err, errno, "remount %s", dst);
  }
  /* co-mount symlinks such as cpu,cpuacct -> cpu */
  DIR *d = opendir(CG_ROOT);
  struct dirent *e;
  while (r == 0 && d && (e = readdir(d))) {
    if (e->d_type != DT_LNK)
      continue;
    char tgt[PATH_MAX];
    cleanup_free char *lp = xasprintf(CG_ROOT "/%s", e->d_name);
    ssize_t l = readlink(lp, tgt, sizeof tgt - 1);
    if (l <= 0)
      continue;
    tgt[l] = '\0';
    cleanup_free char *dst = xasprintf("%s/%s", dest, e->d_name);
    if (symlink(tgt, dst) < 0 && errno != EEXIST)
      crater__rt_log("warning", "cgroup symlink %s: %s", e->d_name, strerror(errno));
  }
  if (d)
    closedir(d);
  free_strv(h);
  if (r == 0 && (flags & MS_RDONLY) &&
      mount(NULL, dest, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | base, NULL) < 0)
    r = crater_error_sys(err, errno, "remount cgroup tmpfs read-only");
  return r;
}
