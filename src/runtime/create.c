/*
 * create / start / delete: the container lifecycle.
 *
 * create forks the container init with clone(2) and the spec's new
 * namespaces (through an intermediate process when namespaces are joined by
 * path, since setns(pid) only affects children).  The parent then writes the
 * uid/gid maps, creates the cgroup and moves the init into it, and drives
 * the init over a SOCK_SEQPACKET pair:
 *
 *   parent                         init (child)
 *   maps, cgroup, oom_score_adj    [no userns: netns, hostname, the mounts
 *                                   before the first cgroup one]
 *   GO(host pid)          ->       setresuid(0) in userns, cgroupns,
 *                                  [userns: netns, hostname], mounts, /dev
 *                         <-       HOOKS
 *   prestart, createRuntime
 *   HOOKS_DONE            ->       createContainer hooks, pivot_root,
 *                                  masked/ro paths, console, rlimits, cwd,
 *                                  lookup of args[0]
 *                         <-       READY (or ERROR with the message)
 *   state.json, pid file, exit     open exec.fifo for writing: blocks
 *
 * HOOKS and HOOKS_DONE are exchanged only when the spec has prestart or
 * createRuntime hooks (both sides read it from the config): otherwise the
 * init goes on from its mounts to createContainer hooks and pivot_root.
 *
 * start opens exec.fifo for reading, which releases the init; the init runs
 * startContainer hooks, drops privileges, loads seccomp and execs.  The
 * fifo disappears after start, which is how `state` tells created from
 * running.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

static const struct {
  const char *name;
  int flag;
  const char *proc;
} ns_types[] = {
  { "user", CLONE_NEWUSER, "user" }, { "ipc", CLONE_NEWIPC, "ipc" },
  { "uts", CLONE_NEWUTS, "uts" },    { "network", CLONE_NEWNET, "net" },
  { "pid", CLONE_NEWPID, "pid" },    { "cgroup", CLONE_NEWCGROUP, "cgroup" },
  { "mount", CLONE_NEWNS, "mnt" },   { "time", 0x80 /* CLONE_NEWTIME */, "time" },
};
#define N_NS (sizeof ns_types / sizeof *ns_types)

typedef struct {
  crater_create_opts_t *o;
  json_t *config;
  char *bundle;
  char *rootfs;
  char *dir;
  char *cgroup_path;
  int new_flags;
  int join_fds[N_NS];
  bool self_cgroup;    /* the init moves itself into its cgroup at GO */
  bool born_in_cgroup; /* v2: cloned into it (crater__cgroup_clone_into) */
  int premade_netns;   /* the init joins it instead of a new one, or -1 */
  bool runtime_hooks;  /* prestart or createRuntime hooks: the HOOKS step */
  int sync[2];
  int console_fd;
  pid_t host_pid;
} create_ctx_t;

static int
open_ns_paths(create_ctx_t *c, crater_error_t *err)
{
  for (size_t i = 0; i < N_NS; i++)
    c->join_fds[i] = -1;
  size_t i;
  json_t *ns;
  json_array_foreach(crater__jpath(c->config, "linux.namespaces"), i, ns)
  {
    const char *t = crater__js(ns, "type"), *p = crater__js(ns, "path");
    size_t k;
    for (k = 0; t && k < N_NS; k++)
      if (strcmp(t, ns_types[k].name) == 0)
        break;
    if (t == NULL || k == N_NS)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "unknown namespace type '%s'", t ? t : "");
    if (p && *p) {
      c->join_fds[k] = open(p, O_RDONLY | O_CLOEXEC);
      if (c->join_fds[k] < 0)
        return crater_error_sys(err, errno, "open %s namespace %s", t, p);
    } else {
      c->new_flags |= ns_types[k].flag;
    }
  }
  if (!(c->new_flags & CLONE_NEWNS) && c->join_fds[6] < 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "a mount namespace is required (linux.namespaces has no \"mount\")");
  return 0;
}

static int
write_maps(pid_t pid, json_t *config, crater_error_t *err)
{
  static const char *const keys[2] = { "uidMappings", "gidMappings" };
  static const char *const files[2] = { "uid_map", "gid_map" };
  for (int k = 0; k < 2; k++) {
    json_t *maps = json_object_get(json_object_get(config, "linux"), keys[k]);
    if (json_array_size(maps) == 0)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "user namespace requested but linux.%s is empty", keys[k]);
    cleanup_free char *buf = xstrdup("");
    size_t i;
    json_t *m;
    json_array_foreach(maps, i, m)
    {
      char *n =
          xasprintf("%s%lld %lld %lld\n", buf, (long long) crater__ji(m, "containerID", 0),
                    (long long) crater__ji(m, "hostID", 0), (long long) crater__ji(m, "size", 0));
      free(buf);
      buf = n;
    }
    cleanup_free char *p = xasprintf("/proc/%d/%s", (int) pid, files[k]);
    if (crater__write_str(p, buf, err) < 0)
      return crater_error_wrap(err, "write %s", files[k]);
  }
  return 0;
}

static uid_t
host_id(json_t *config, const char *key, unsigned id)
{
  size_t i;
  json_t *m;
  json_array_foreach(crater__jpath(config, key), i, m)
  {
    json_int_t c = crater__ji(m, "containerID", 0), h = crater__ji(m, "hostID", 0),
               s = crater__ji(m, "size", 0);
    if (id >= c && id < c + s)
      return (uid_t) (h + (id - c));
  }
  return id;
}

static json_t *
creating_state(create_ctx_t *c, pid_t pid, const char *status)
{
  return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:O*}", "ociVersion", CRATER_OCI_VERSION, "id",
                   c->o->id, "pid", (json_int_t) pid, "status", status, "bundle", c->bundle,
                   "rootfs", c->rootfs, "annotations", json_object_get(c->config, "annotations"));
}

/* For crater-shim --delete-on-exit: what `delete` of this container, once
 * stopped, removes when nothing else is left and no poststop hook is to
 * run: its cgroup directories (one a line, after a header) and the state
 * dir.  The shim does that itself and runs `delete` only when any of it is
 * refused (shim.c, delete_inline); without the file it always runs it. */
static void
write_cleanup(const crater_state_t *s)
{
  if (s->has_hooks)
    return;
  cleanup_free char *dirs = s->cgroup_path ? crater__cgroup_dir_list(s->cgroup_path) : NULL;
  cleanup_free char *text = xasprintf("crater-runtime cleanup 1\n%s", dirs ? dirs : "");
  cleanup_free char *p = crater__path_join(s->dir, "cleanup");
  crater_error_t e = NULL;
  if (crater__write_file_replace(p, text, strlen(text), 0600, &e) < 0)
    rt_debug("%s: %s", p, e->msg);
  crater_error_release(&e);
}

/* --- the container init (child side) ------------------------------------ */

int
crater__loopback_up(crater_error_t *err)
{
  cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return crater_error_sys(err, errno, "loopback: socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    return crater_error_sys(err, errno, "loopback: get lo flags");
  if (ifr.ifr_flags & IFF_UP)
    return 0;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
    return crater_error_sys(err, errno, "loopback: bring lo up");
  return 0;
}

/* The init's network namespace (the one made while waiting for "go", or
 * its own with the loopback up) and host name. */
static int
init_net_uts(create_ctx_t *c, crater_error_t *err)
{
  if (c->premade_netns >= 0) {
    if (setns(c->premade_netns, CLONE_NEWNET) < 0)
      return crater_error_sys(err, errno, "join the network namespace made for the container");
    close(c->premade_netns);
    c->premade_netns = -1;
  } else if ((c->new_flags & CLONE_NEWNET) && crater__loopback_up(err) < 0) {
    return -1;
  }
  const char *hn = crater__js(c->config, "hostname");
  const char *dn = crater__js(c->config, "domainname");
  if ((hn && *hn) || (dn && *dn)) {
    if (!(c->new_flags & CLONE_NEWUTS))
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "unable to set hostname without a new UTS namespace");
    if (hn && *hn && sethostname(hn, strlen(hn)) < 0)
      return crater_error_sys(err, errno, "sethostname %s", hn);
    if (dn && *dn && setdomainname(dn, strlen(dn)) < 0)
      return crater_error_sys(err, errno, "setdomainname %s", dn);
  }
  return 0;
}

/* Up to the mounts, GO from the parent in between.  Without a user
 * namespace (whose maps the parent writes first), the network, the host
 * name and the mounts that do not need the cgroup (all before the first
 * "cgroup" mount) are set up before GO, while the parent makes the cgroup
 * (on v1 ten hierarchies' mkdirs and writes, where it often waits):
 * a bare `run` 6.96 -> 6.69 ms here.  Moving the parent to the other CPU
 * as well made it slower (7.05 -> 7.14 ms).  rc->rootfd is closed either
 * way. */
static int
init_prepare(create_ctx_t *c, int sync, crater_rootfs_ctx_t *rc, crater_error_t *err)
{
  bool early = !(c->new_flags & CLONE_NEWUSER);
  if (early && (init_net_uts(c, err) < 0 || crater__rootfs_prepare_early(rc, err) < 0))
    goto fail;
  int hostpid = 0;
  if (crater__sync_recv(sync, SYNC_GO, &hostpid, err) < 0)
    goto fail;
  c->host_pid = hostpid;
  /* before the cgroup namespace is unshared, so that it is rooted here */
  if (c->self_cgroup && crater__cgroup_enter_self(c->cgroup_path, err) < 0) {
    crater_error_wrap(err, "cgroup %s", c->cgroup_path);
    goto fail;
  }
  if ((c->new_flags & CLONE_NEWUSER) && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) {
    crater_error_sys(err, errno, "become root in the user namespace");
    goto fail;
  }
  if ((c->new_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0) {
    crater_error_sys(err, errno, "unshare cgroup namespace");
    goto fail;
  }
  if (!early && init_net_uts(c, err) < 0)
    goto fail;
  return crater__rootfs_prepare(rc, err);
fail:
  if (rc->rootfd >= 0)
    close(rc->rootfd);
  rc->rootfd = -1;
  return -1;
}

static int
init_setup(create_ctx_t *c, int sync, int *fifo_fd, char **exe, crater_error_t *err)
{
  crater_rootfs_ctx_t rc = {
    .config = c->config,
    .bundle = c->bundle,
    .rootfs = c->rootfs,
    .cgroup_path = c->cgroup_path,
    .no_pivot = c->o->no_pivot,
    .new_userns = (c->new_flags & CLONE_NEWUSER) != 0,
    .new_cgroupns = (c->new_flags & CLONE_NEWCGROUP) != 0,
    .new_netns = (c->new_flags & CLONE_NEWNET) != 0,
    .rootfd = -1,
  };
  if (init_prepare(c, sync, &rc, err) < 0)
    return -1;
  /* the parent's hooks run now, in the namespaces just set up; without
   * any, both sides skip the round trip (0.15-0.35 ms here) */
  if (c->runtime_hooks && (crater__sync_send(sync, SYNC_HOOKS, 0, err) < 0 ||
                           crater__sync_recv(sync, SYNC_HOOKS_DONE, NULL, err) < 0))
    return -1;
  if (crater__hooks_present(c->config, "createContainer")) {
    json_t *st = creating_state(c, c->host_pid, "created");
    int r = crater__hooks_run(c->config, "createContainer", st, err);
    json_decref(st);
    if (r < 0)
      return -1;
  }
  cleanup_free char *fifo = crater__path_join(c->dir, "exec.fifo");
  *fifo_fd = open(fifo, O_PATH | O_CLOEXEC);
  if (*fifo_fd < 0)
    return crater_error_sys(err, errno, "open %s", fifo);
  if (crater__rootfs_finish(&rc, err) < 0)
    return -1;
  json_t *proc = json_object_get(c->config, "process");
  if (crater__jb(proc, "terminal", false)) {
    if (crater__process_console(c->console_fd, proc, err) < 0 ||
        crater__process_console_mount(err) < 0)
      return -1;
    close(c->console_fd);
  } else {
    setsid();
  }
  if (crater__process_rlimits(proc, err) < 0 || crater__process_cwd(proc, err) < 0)
    return -1;
  *exe = crater__process_lookup(proc, err);
  return *exe ? 0 : -1;
}

static void __attribute__((noreturn)) init_main(create_ctx_t *c)
{
  crater_error_t err = NULL;
  int sync = c->sync[1];
  int fifo_fd = -1;
  char *exe = NULL;
  if (init_setup(c, sync, &fifo_fd, &exe, &err) < 0) {
    crater__sync_send_error(sync, err);
    _exit(1);
  }
  if (crater__sync_send(sync, SYNC_READY, 0, &err) < 0)
    _exit(1);
  close(sync);
  char fp[64];
  snprintf(fp, sizeof fp, "/proc/self/fd/%d", fifo_fd);
  int w = open(fp, O_WRONLY | O_CLOEXEC);
  if (w < 0 || write(w, "0", 1) != 1) {
    crater__rt_log("error", "container %s: wait for start on exec.fifo: %s", c->o->id,
                   strerror(errno));
    _exit(127);
  }
  close(w);
  close(fifo_fd);
  if (crater__hooks_present(c->config, "startContainer")) {
    json_t *st = creating_state(c, c->host_pid, "running");
    if (crater__hooks_run(c->config, "startContainer", st, &err) < 0) {
      crater__rt_log("error", "container %s: %s", c->o->id, err->msg);
      _exit(127);
    }
    json_decref(st);
  }
  crater__process_exec(json_object_get(c->config, "process"),
                       crater__jpath(c->config, "linux.seccomp"), exe, c->o->preserve_fds, &err);
  crater__rt_log("error", "container %s: %s", c->o->id, err ? err->msg : "exec failed");
  /* the shell's codes: 127 not found, 126 found but not executable */
  _exit(err && err->status == ENOENT ? 127 : 126);
}

static pid_t
clone_fork(int flags)
{
  return (pid_t) syscall(SYS_clone, (unsigned long) (flags | SIGCHLD), NULL, NULL, NULL, NULL);
}

/* clone(flags) of the first process cloned from here (the init, or the
 * process that joins namespaces and clones it): into its cgroup on v2,
 * where the cgroup is made first; else, or when refused, a plain clone
 * that the parent moves. */
static pid_t
clone_first(create_ctx_t *c, int flags)
{
  pid_t pid = crater__cgroup_clone_into(c->cgroup_path, flags);
  if (pid >= 0) {
    /* in all its cgroups on v2; a hybrid's v1 ones are still to join */
    c->born_in_cgroup = crater__cgroup_is_v2();
    return pid;
  }
  return clone_fork(flags);
}

/* Sends GO to the init.  An init that failed before it (in the mounts it
 * makes meanwhile) and exited has left its ERROR message queued: that is
 * the error then, not the broken pipe. */
static int
send_go(int sync, pid_t pid, crater_error_t *err)
{
  if (crater__sync_send(sync, SYNC_GO, pid, err) == 0)
    return 0;
  crater_error_t e = NULL;
  if (crater__sync_recv(sync, SYNC_READY, NULL, &e) < 0 && err && e->kind != CRATER_ERR_ABORTED &&
      e->kind != CRATER_ERR_INTERNAL)
    crater_error_move(err, &e);
  crater_error_release(&e);
  return -1;
}

/* Whether the spec joins any namespace by path (linux.namespaces[].path). */
static bool
joins_by_path(const create_ctx_t *c)
{
  for (size_t i = 0; i < N_NS; i++)
    if (c->join_fds[i] >= 0)
      return true;
  return false;
}

/* Starts the init; returns its host pid. */
static pid_t
spawn_init(create_ctx_t *c, crater_error_t *err)
{
  int flags = c->new_flags & ~CLONE_NEWCGROUP;
  if (c->premade_netns >= 0)
    flags &= ~CLONE_NEWNET; /* the init joins the one made already */
  if (!joins_by_path(c)) {
    pid_t pid = clone_first(c, flags);
    if (pid < 0) {
      crater_error_sys(err, errno, "clone container init");
      return -1;
    }
    if (pid == 0) {
      close(c->sync[0]);
      init_main(c);
    }
    return pid;
  }
  pid_t mid = clone_first(c, 0);
  if (mid < 0) {
    crater_error_sys(err, errno, "fork");
    return -1;
  }
  if (mid == 0) {
    close(c->sync[0]);
    crater_error_t e = NULL;
    for (size_t i = 0; i < N_NS; i++)
      if (c->join_fds[i] >= 0 && setns(c->join_fds[i], ns_types[i].flag) < 0) {
        crater_error_sys(&e, errno, "join %s namespace", ns_types[i].name);
        crater__sync_send_error(c->sync[1], e);
        _exit(1);
      }
    pid_t pid = clone_fork(flags);
    if (pid < 0) {
      crater_error_sys(&e, errno, "clone container init");
      crater__sync_send_error(c->sync[1], e);
      _exit(1);
    }
    if (pid == 0)
      init_main(c);
    crater__sync_send(c->sync[1], SYNC_PID, pid, &e);
    _exit(0);
  }
  int v = 0, st;
  int r = crater__sync_recv(c->sync[0], SYNC_PID, &v, err);
  waitpid(mid, &st, 0);
  return r < 0 ? -1 : (pid_t) v;
}

static int
connect_console(const char *path, crater_error_t *err)
{
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return crater_error_sys(err, errno, "socket");
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof sa.sun_path) {
    close(s);
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, ENAMETOOLONG,
                             "console socket path too long");
  }
  strcpy(sa.sun_path, path);
  if (connect(s, (struct sockaddr *) &sa, sizeof sa) < 0) {
    int e = errno;
    close(s);
    return crater_error_sys(err, e, "connect console socket %s", path);
  }
  return s;
}

static int
write_pid_file(const char *path, pid_t pid, crater_error_t *err)
{
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d", (int) pid);
  cleanup_free char *abs = path[0] == '/' ? xstrdup(path) : NULL;
  if (abs == NULL) {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL)
      return crater_error_sys(err, errno, "getcwd");
    abs = crater__path_join(cwd, path);
  }
  return crater__write_file_replace(abs, buf, (size_t) n, 0644, err);
}

pid_t
crater_runtime_create(crater_create_opts_t *o, crater_error_t *err)
{
  create_ctx_t c = { .o = o, .sync = { -1, -1 }, .console_fd = -1, .premade_netns = -1 };
  for (size_t i = 0; i < N_NS; i++)
    c.join_fds[i] = -1;
  pid_t pid = -1, ret = -1;
  bool dir_made = false, cgroup_made = false, unified_made = false;
  crater_error_t e2 = NULL;
  o->start_fd = -1;

  if (o->id == NULL || *o->id == '\0' || strchr(o->id, '/') || o->id[0] == '.') {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "invalid container id '%s'",
                      o->id ? o->id : "");
    return -1;
  }
  char bbuf[4096];
  if (realpath(o->bundle ? o->bundle : ".", bbuf) == NULL) {
    crater_error_sys(err, errno, "bundle %s", o->bundle ? o->bundle : ".");
    return -1;
  }
  c.bundle = xstrdup(bbuf);
  cleanup_free char *cfgpath = crater__path_join(c.bundle, "config.json");
  json_error_t jerr;
  c.config = json_load_file(cfgpath, 0, &jerr);
  if (c.config == NULL) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "load %s: %s (line %d)", cfgpath,
                      jerr.text, jerr.line);
    goto done;
  }
  const char *rp = crater__js(crater__jpath(c.config, "root"), "path");
  if (rp == NULL) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                      "config.json: root.path is required");
    goto done;
  }
  c.rootfs = rp[0] == '/' ? xstrdup(rp) : crater__path_join(c.bundle, rp);
  if (access(c.rootfs, F_OK) < 0) {
    crater_error_sys(err, errno, "rootfs %s", c.rootfs);
    goto done;
  }
  if (!json_is_object(json_object_get(c.config, "process"))) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "config.json: process is required");
    goto done;
  }
  if (open_ns_paths(&c, err) < 0)
    goto done;
  c.runtime_hooks = crater__hooks_present(c.config, "prestart") ||
                    crater__hooks_present(c.config, "createRuntime");
  /* a network namespace made while waiting for "go" (main.c) serves an
   * init that wants a new one of its own: no user namespace to own it,
   * nothing joined by path */
  if (crater__rt_opts.premade_netns >= 0) {
    if ((c.new_flags & CLONE_NEWNET) && !(c.new_flags & CLONE_NEWUSER) && !joins_by_path(&c))
      c.premade_netns = crater__rt_opts.premade_netns;
    else
      close(crater__rt_opts.premade_netns);
    crater__rt_opts.premade_netns = -1;
  }
  if (mkdir(crater__rt_opts.root, 0711) < 0 && errno != EEXIST) {
    crater_error_sys(err, errno, "mkdir %s", crater__rt_opts.root);
    goto done;
  }
  c.dir = crater__state_dir(o->id);
  if (mkdir(c.dir, 0711) < 0) {
    if (errno == EEXIST)
      crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST,
                        "container with id %s already exists", o->id);
    else
      crater_error_sys(err, errno, "mkdir %s", c.dir);
    goto done;
  }
  dir_made = true;
  {
    cleanup_free char *fifo = crater__path_join(c.dir, "exec.fifo");
    if (mkfifo(fifo, 0622) < 0) {
      crater_error_sys(err, errno, "mkfifo %s", fifo);
      goto done;
    }
    if (c.new_flags & CLONE_NEWUSER)
      chown(fifo, host_id(c.config, "linux.uidMappings", 0),
            host_id(c.config, "linux.gidMappings", 0));
  }
  o->terminal = crater__jb(json_object_get(c.config, "process"), "terminal", false);
  if (o->terminal && o->console_socket == NULL && o->console_fd >= 0) {
    if ((c.console_fd = fcntl(o->console_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
      crater_error_sys(err, errno, "console socket");
      goto done;
    }
  } else if (o->terminal) {
    if (o->console_socket == NULL) {
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                        "process.terminal is true: --console-socket is required");
      goto done;
    }
    if ((c.console_fd = connect_console(o->console_socket, err)) < 0)
      goto done;
  }
  c.cgroup_path = crater__cgroup_path_for(c.config, o->id);
  /* The init joins its cgroup itself when it can: still with host
   * credentials (no user namespace) and the host's /sys/fs/cgroup (its new
   * mount namespace is a copy until the rootfs is set up; nothing joined by
   * path).  Otherwise the parent moves it. */
  c.self_cgroup =
      crater__cgroup_can_enter_self() && !(c.new_flags & CLONE_NEWUSER) && !joins_by_path(&c);
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c.sync) < 0) {
    crater_error_sys(err, errno, "socketpair");
    goto done;
  }
  /* compiled here (or read from the cache) so the init only installs it */
  if (crater__seccomp_prepare(crater__jpath(c.config, "linux.seccomp"), err) < 0)
    goto done;
  /* v2: the cgroup is made first and the init cloned into it (cgroup.c);
   * hybrid: the unified hierarchy's likewise, the v1 ones after */
  if (crater__cgroup_is_v2()) {
    cgroup_made = true;
    if (crater__cgroup_apply(c.cgroup_path, c.config, err) < 0) {
      crater_error_wrap(err, "cgroup %s", c.cgroup_path);
      goto done;
    }
  } else {
    unified_made = true; /* (if hybrid) removed with the rest on failure */
    if (crater__cgroup_prepare_unified(c.cgroup_path, err) < 0) {
      crater_error_wrap(err, "cgroup %s", c.cgroup_path);
      goto done;
    }
  }
  if ((pid = spawn_init(&c, err)) < 0)
    goto done;
  close(c.sync[1]);
  c.sync[1] = -1;
  if (c.premade_netns >= 0) {
    close(c.premade_netns); /* the init holds it now */
    c.premade_netns = -1;
  }
  if ((c.new_flags & CLONE_NEWUSER) && write_maps(pid, c.config, err) < 0)
    goto done;
  if ((!cgroup_made && crater__cgroup_apply(c.cgroup_path, c.config, err) < 0) ||
      (!c.self_cgroup && !c.born_in_cgroup && crater__cgroup_enter(c.cgroup_path, pid, err) < 0)) {
    cgroup_made = true;
    crater_error_wrap(err, "cgroup %s", c.cgroup_path);
    goto done;
  }
  cgroup_made = true;
  json_t *oom = json_object_get(json_object_get(c.config, "process"), "oomScoreAdj");
  if (json_is_integer(oom)) {
    cleanup_free char *p = xasprintf("/proc/%d/oom_score_adj", (int) pid);
    cleanup_free char *v = xasprintf("%lld", (long long) json_integer_value(oom));
    if (crater__write_str(p, v, err) < 0)
      goto done;
  }
  if (send_go(c.sync[0], pid, err) < 0)
    goto done;
  if (c.runtime_hooks) {
    if (crater__sync_recv(c.sync[0], SYNC_HOOKS, NULL, err) < 0)
      goto done;
    json_t *st = creating_state(&c, pid, "creating");
    int r = crater__hooks_run(c.config, "prestart", st, err);
    if (r == 0)
      r = crater__hooks_run(c.config, "createRuntime", st, err);
    json_decref(st);
    if (r < 0 || crater__sync_send(c.sync[0], SYNC_HOOKS_DONE, 0, err) < 0)
      goto done;
  }
  if (crater__sync_recv(c.sync[0], SYNC_READY, NULL, err) < 0)
    goto done;
  if (o->want_state && !o->terminal) {
    /* `run`: opening the fifo's read end is what start does; done now, the
     * init's exec overlaps the state written below (not with a terminal:
     * `run` sets the pty up first, its size for one) */
    cleanup_free char *fifo = crater__path_join(c.dir, "exec.fifo");
    o->start_fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (o->start_fd < 0) {
      crater_error_sys(err, errno, "open %s", fifo);
      goto done;
    }
  }
  {
    /* owned copies: handed to `run` (want_state) or freed here */
    crater_state_t *s = xmalloc0(sizeof *s);
    s->id = xstrdup(o->id);
    s->dir = xstrdup(c.dir);
    s->bundle = xstrdup(c.bundle);
    s->rootfs = xstrdup(c.rootfs);
    s->created = crater__rfc3339_now();
    s->pid = pid;
    crater__proc_stat(pid, &s->start_time, NULL);
    s->cgroup_path = c.cgroup_path ? xstrdup(c.cgroup_path) : NULL;
    s->config = json_incref(c.config);
    int r = crater__state_save(s, err);
    if (r == 0)
      write_cleanup(s);
    if (r == 0 && o->want_state)
      o->state = s;
    else
      crater__state_free(s);
    if (r < 0)
      goto done;
  }
  if (o->pid_file && write_pid_file(o->pid_file, pid, err) < 0)
    goto done;
  ret = pid;
done:
  if (ret < 0) {
    if (o->start_fd >= 0) {
      close(o->start_fd);
      o->start_fd = -1;
    }
    if (o->state) {
      crater__state_free(o->state);
      o->state = NULL;
    }
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
    if (cgroup_made || unified_made)
      crater__cgroup_destroy(c.cgroup_path, &e2);
    crater_error_release(&e2);
    if (dir_made)
      crater__remove_all(c.dir, &e2);
    crater_error_release(&e2);
  }
  for (int i = 0; i < 2; i++)
    if (c.sync[i] >= 0)
      close(c.sync[i]);
  for (size_t i = 0; i < N_NS; i++)
    if (c.join_fds[i] >= 0)
      close(c.join_fds[i]);
  if (c.console_fd >= 0)
    close(c.console_fd);
  if (c.premade_netns >= 0)
    close(c.premade_netns);
  if (c.config)
    json_decref(c.config);
  free(c.bundle);
  free(c.rootfs);
  free(c.dir);
  free(c.cgroup_path);
  return ret;
}

int
crater_runtime_start(const char *id, crater_error_t *err)
{
  cleanup_state crater_state_t *s = crater__state_load(id, err);
  if (s == NULL)
    return -1;
  return crater_runtime_start_state(s, -1, err);
}

int
crater_runtime_start_state(crater_state_t *s, int fifo_fd, crater_error_t *err)
{
  const char *id = s->id;
  cleanup_close int fd = fifo_fd;
  /* with the fifo already opened (`run`) the init is released and may
   * have run and exited by now: its byte in the fifo says it started */
  crater_status_t st = fd >= 0 ? ST_CREATED : crater__state_status(s);
  if (st != ST_CREATED)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                             "cannot start a container that is %s", crater__status_name(st));
  cleanup_free char *fifo = crater__path_join(s->dir, "exec.fifo");
  if (fd < 0)
    fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open %s", fifo);
  for (;;) {
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    int r = poll(&pf, 1, 100);
    if (r < 0 && errno != EINTR)
      return crater_error_sys(err, errno, "poll exec.fifo");
    if (r > 0 && (pf.revents & POLLIN)) {
      char b;
      if (read(fd, &b, 1) == 1)
        break;
    }
    if (crater__state_status(s) == ST_STOPPED)
      return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                               "container %s init exited before start", id);
  }
  unlink(fifo);
  if (!s->has_hooks)
    return 0;
  json_t *state = crater__state_json(s, ST_RUNNING);
  crater_error_t e = NULL;
  json_t *config = crater__state_config(s, &e);
  if (config == NULL || crater__hooks_run(config, "poststart", state, &e) < 0)
    crater__rt_log("warning", "poststart hook: %s", e->msg);
  crater_error_release(&e);
  json_decref(state);
  return 0;
}

/* Waits up to `ms` for the init to be gone: pidfd poll (no polling loop)
 * where the kernel has pidfd_open, the child reaped when it is ours (`run`). */
static void
wait_stopped(crater_state_t *s, int ms)
{
  int pfd = (int) syscall(SYS_pidfd_open, s->pid, 0);
  if (pfd >= 0) {
    struct pollfd pf = { .fd = pfd, .events = POLLIN };
    while (poll(&pf, 1, ms) < 0 && errno == EINTR)
      ;
    close(pfd);
  }
  for (int i = 0; i < ms && crater__state_status(s) != ST_STOPPED; i++) {
    waitpid(s->pid, NULL, WNOHANG);
    usleep(1000);
  }
  waitpid(s->pid, NULL, WNOHANG);
}

int
crater_runtime_delete(const char *id, bool force, crater_error_t *err)
{
  crater_error_t e = NULL;
  cleanup_state crater_state_t *s = crater__state_load(id, &e);
  if (s == NULL) {
    cleanup_free char *dir = crater__state_dir(id);
    if (e->kind == CRATER_ERR_DATA_LOSS && force) {
      crater_error_release(&e);
      return crater__remove_all(dir, err);
    }
    crater_error_move(err, &e);
    return -1;
  }
  crater_status_t st = crater__state_status(s);
  if ((st == ST_RUNNING || st == ST_PAUSED) && !force)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                             "cannot delete container %s that is not stopped: %s", id,
                             crater__status_name(st));
  if (st != ST_STOPPED) {
    if (s->cgroup_path && st == ST_PAUSED)
      crater__cgroup_freeze(s->cgroup_path, false, &e);
    crater_error_release(&e);
    kill(s->pid, SIGKILL);
    if (s->cgroup_path)
      crater__cgroup_kill_all(s->cgroup_path, SIGKILL, &e);
    crater_error_release(&e);
    wait_stopped(s, 1000);
  }
  /* A cgroup that cannot be removed (processes stuck in D state) fails the
   * delete and keeps the state dir, so `delete --force` can be retried. */
  if (s->cgroup_path && crater__cgroup_destroy(s->cgroup_path, err) < 0)
    return crater_error_wrap(err, "delete %s", id);
  if (s->has_hooks) {
    json_t *state = crater__state_json(s, ST_STOPPED);
    json_t *config = crater__state_config(s, &e);
    if (config == NULL || crater__hooks_run(config, "poststop", state, &e) < 0)
      crater__rt_log("warning", "poststop hook: %s", e->msg);
    crater_error_release(&e);
    json_decref(state);
  }
  return crater__remove_all(s->dir, err);
}

void
crater__block_forwarded_signals(sigset_t *set)
{
  sigfillset(set);
  sigdelset(set, SIGSEGV);
  sigdelset(set, SIGBUS);
  sigdelset(set, SIGFPE);
  sigdelset(set, SIGILL);
  sigprocmask(SIG_BLOCK, set, NULL);
}

int
crater__wait_forward(pid_t pid, crater_error_t *err)
{
  sigset_t set;
  crater__block_forwarded_signals(&set);
  for (;;) {
    int status;
    pid_t r;
    while ((r = waitpid(-1, &status, WNOHANG)) > 0) {
      if (r == pid)
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0 && errno == ECHILD)
      return crater_error_make(err, CRATER_ERR_INTERNAL, ECHILD, "process %d is not our child",
                               (int) pid);
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0 || sig == SIGCHLD)
      continue;
    if (sig == SIGWINCH || sig == SIGURG)
      continue;
    kill(pid, sig);
  }
}
