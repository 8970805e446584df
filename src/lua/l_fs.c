/*
 * crater.core filesystem and process helpers: the small syscall wrappers
 * lua/crater/ (containers, tasks, policy, snapshotters, the CLI) uses
 * instead of shelling out, each a few syscalls instead of a fork+exec of
 * sh.  They are module functions of `crater.core`, not methods: none needs
 * a store.
 *
 *   core.listdir(path)              -> names sorted bytewise (no . and ..)
 *   core.host_devices([dir])        -> device nodes under dir (default /dev)
 *   core.mkdir_p(path [, mode])     -> true          (mode default 0755)
 *   core.mkdir(path [, mode])       -> true          (one dir; "already_exists" if it exists)
 *   core.chmod(path, mode)          -> true
 *   core.remove_all(path)           -> true          (rm -rf; missing is fine)
 *   core.exists(path)               -> bool          (lstat)
 *   core.executable(path)           -> bool
 *   core.which(name)                -> path | nil    (like `command -v`)
 *   core.exe_path()                 -> path | nil    (/proc/self/exe)
 *   core.fs_type(path)              -> "btrfs", "ext4", "xfs", "tmpfs", ...
 *   core.wait_pid_gone(pid [, ms])  -> bool          (false on timeout)
 *   core.run(argv [, opts])         -> {code=, signal=, stdout=, stderr=, truncated=}
 *       Runs a program without a shell (argv[1] looked up in $PATH like
 *       execvp), feeding opts.stdin and capturing stdout/stderr up to
 *       opts.max_output bytes each; kills its process group after
 *       opts.timeout_ms.  Used for docker credential helpers (auth.lua).
 *
 * Clocks, ids and the log level are in l_base.c; kill, mkfifo, pid_alive
 * and the tty helpers with the task plumbing in l_task.c.
 *
 * Conventions (lua_util.h): misuse raises; expected failures return nil,
 * msg, kind.  Arguments are read (and may raise) before anything is
 * allocated in C; C memory and fds are released before pushing results.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "lua/lua_util.h"

/* core.mkdir_p(path [, mode=0755]) -> true | nil, msg, kind */
static int
l_mkdir_p(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t) luaL_optinteger(L, 2, 0755);
  crater_error_t err = NULL;
  if (crater__mkdir_p(path, mode, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.mkdir(path [, mode=0755]) -> true | nil, msg, kind: one directory,
 * which must not exist yet (kind "already_exists" if it does), so the
 * caller knows the directory is its own. */
static int
l_mkdir(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t) luaL_optinteger(L, 2, 0755);
  if (mkdir(path, mode) < 0) {
    crater_error_t err = NULL;
    crater_error_sys(&err, errno, "mkdir %s", path);
    return crater__lua_fail(L, &err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.chmod(path, mode) -> true | nil, msg, kind */
static int
l_chmod(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t) luaL_checkinteger(L, 2);
  if (chmod(path, mode) < 0) {
    crater_error_t err = NULL;
    crater_error_sys(&err, errno, "chmod %s", path);
    return crater__lua_fail(L, &err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.remove_all(path) -> true | nil, msg, kind (rm -rf; missing is fine) */
static int
l_remove_all(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  crater_error_t err = NULL;
  if (crater__remove_all(path, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.exists(path) -> bool (lstat: dangling links, fifos, sockets count) */
static int
l_exists(lua_State *L)
{
  struct stat st;
  lua_pushboolean(L, lstat(luaL_checkstring(L, 1), &st) == 0);
  return 1;
}

static bool
is_executable(const char *path)
{
  struct stat st;
  return crater__is_executable(path, &st);
}

/* core.executable(path) -> bool (a regular file we may execute) */
static int
l_executable(lua_State *L)
{
  lua_pushboolean(L, is_executable(luaL_checkstring(L, 1)));
  return 1;
}

/* core.which(name) -> path | nil: name looked up in $PATH like `command -v`
 * (a name with a '/' is returned when executable). */
static int
l_which(lua_State *L)
{
  const char *name = luaL_checkstring(L, 1);
  if (name[0] == '\0')
    return 0;
  if (strchr(name, '/')) {
    if (!is_executable(name))
      return 0;
    lua_pushstring(L, name);
    return 1;
  }
  const char *env = getenv("PATH");
  cleanup_free char *path = strdup(env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
  if (path == NULL)
    return luaL_error(L, "out of memory");
  char buf[PATH_MAX];
  for (char *save = NULL, *dir = strtok_r(path, ":", &save); dir;
       dir = strtok_r(NULL, ":", &save)) {
    int n = snprintf(buf, sizeof buf, "%s/%s", *dir ? dir : ".", name);
    if (n > 0 && (size_t) n < sizeof buf && is_executable(buf)) {
      /* copy out before the push: a raise must not leak `path` (the
       * cleanup attribute does not run on longjmp) */
      free(path);
      path = NULL;
      lua_pushstring(L, buf);
      return 1;
    }
  }
  return 0;
}

/* core.exe_path() -> the running executable's path (nil for a plain luajit
 * when unreadable) */
static int
l_exe_path(lua_State *L)
{
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  lua_pushstring(L, buf);
  return 1;
}

static int
cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

typedef struct {
  char **names;
  size_t n;
} name_list_t;

static void
name_list_free(name_list_t *nl)
{
  for (size_t i = 0; i < nl->n; i++)
    free(nl->names[i]);
  free(nl->names);
  nl->names = NULL;
  nl->n = 0;
}

/* Protected half of listdir: pushes the names of the name_list_t passed
 * as lightuserdata argument 1 as an array. */
static int
push_names(lua_State *L)
{
  const name_list_t *nl = lua_touserdata(L, 1);
  lua_createtable(L, (int) nl->n, 0);
  for (size_t i = 0; i < nl->n; i++) {
    lua_pushstring(L, nl->names[i]);
    lua_rawseti(L, -2, (int) i + 1);
  }
  return 1;
}

/* core.listdir(path) -> array of names sorted bytewise (strcmp; no . and
 * ..) | nil, msg, kind.  The names are collected in C and the directory
 * closed before anything is pushed; the push runs under lua_pcall so a
 * raise (OOM) frees the names before it propagates. */
static int
l_listdir(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  lua_pushcfunction(L, push_names); /* allocates: before any C resource */
  DIR *d = opendir(path);
  if (d == NULL) {
    crater_error_t err = NULL;
    crater_error_sys(&err, errno, "opendir %s", path);
    return crater__lua_fail(L, &err);
  }
  name_list_t nl = { NULL, 0 };
  size_t cap = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (nl.n == cap) {
      cap = cap ? cap * 2 : 16;
      nl.names = xrealloc(nl.names, cap * sizeof *nl.names);
    }
    nl.names[nl.n++] = xstrdup(e->d_name);
    errno = 0;
  }
  int rerr = errno;
  closedir(d);
  if (rerr != 0) {
    name_list_free(&nl);
    crater_error_t err = NULL;
    crater_error_sys(&err, rerr, "readdir %s", path);
    return crater__lua_fail(L, &err);
  }
  if (nl.n > 1)
    qsort(nl.names, nl.n, sizeof *nl.names, cmp_names);
  lua_pushlightuserdata(L, &nl); /* no allocation */
  int r = lua_pcall(L, 1, 1, 0);
  name_list_free(&nl);
  if (r != 0)
    return lua_error(L); /* re-raise the error object at the top */
  return 1;
}

/* ---- host devices (oci.with_host_devices) ---------------------------- */

typedef struct {
  char *path;
  char type; /* 'c' or 'b' */
  unsigned major, minor, mode, uid, gid;
} hostdev_t;

typedef struct {
  hostdev_t *v;
  size_t n, cap;
} hostdev_list_t;

static void
hostdev_list_free(hostdev_list_t *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].path);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

static int
cmp_hostdev(const void *a, const void *b)
{
  return strcmp(((const hostdev_t *) a)->path, ((const hostdev_t *) b)->path);
}

/* Collects the device nodes below dir, not through symlinks, skipping the
 * directories and the node a container has its own of (as runc's
 * devices.HostDevices, which containerd's WithHostDevices uses). */
static void
collect_devices(hostdev_list_t *l, const char *dir, int depth)
{
  static const char *const skip[] = {
    "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"
  };
  if (depth > 8)
    return;
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    struct stat st;
    if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 ||
        fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      bool skipped = false;
      for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
        skipped |= strcmp(n, skip[i]) == 0;
      if (!skipped) {
        cleanup_free char *sub = crater__path_join(dir, n);
        collect_devices(l, sub, depth + 1);
      }
      continue;
    }
    if ((!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) || (depth == 0 && strcmp(n, "console") == 0))
      continue;
    if (l->n == l->cap) {
      l->cap = l->cap ? l->cap * 2 : 64;
      l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (hostdev_t){ .path = crater__path_join(dir, n),
                                .type = S_ISCHR(st.st_mode) ? 'c' : 'b',
                                .major = major(st.st_rdev),
                                .minor = minor(st.st_rdev),
                                .mode = st.st_mode & 07777,
                                .uid = st.st_uid,
                                .gid = st.st_gid };
  }
  closedir(d);
}

/* Protected half of host_devices: pushes the hostdev_list_t passed as
 * lightuserdata argument 1. */
static int
push_hostdevs(lua_State *L)
{
  const hostdev_list_t *l = lua_touserdata(L, 1);
  lua_createtable(L, (int) l->n, 0);
  for (size_t i = 0; i < l->n; i++) {
    const hostdev_t *h = &l->v[i];
    lua_createtable(L, 0, 7);
    lua_pushstring(L, h->path);
    lua_setfield(L, -2, "path");
    lua_pushlstring(L, &h->type, 1);
    lua_setfield(L, -2, "type");
    const struct {
      const char *k;
      unsigned v;
    } nums[] = { { "major", h->major },
                 { "minor", h->minor },
                 { "mode", h->mode },
                 { "uid", h->uid },
                 { "gid", h->gid } };
    for (size_t k = 0; k < sizeof nums / sizeof *nums; k++) {
      lua_pushinteger(L, (lua_Integer) nums[k].v);
      lua_setfield(L, -2, nums[k].k);
    }
    lua_rawseti(L, -2, (int) i + 1);
  }
  return 1;
}

/* core.host_devices([dir="/dev"]) -> array of {path=, type="c"|"b",
 * major=, minor=, mode=, uid=, gid=}, sorted by path: the device nodes
 * under dir (see collect_devices).  A missing dir gives an empty list. */
static int
l_host_devices(lua_State *L)
{
  const char *dir = luaL_optstring(L, 1, "/dev");
  lua_pushcfunction(L, push_hostdevs); /* allocates: before any C resource */
  hostdev_list_t l = { NULL, 0, 0 };
  collect_devices(&l, dir, 0);
  if (l.n > 1)
    qsort(l.v, l.n, sizeof *l.v, cmp_hostdev);
  lua_pushlightuserdata(L, &l);
  int r = lua_pcall(L, 1, 1, 0);
  hostdev_list_free(&l);
  if (r != 0)
    return lua_error(L);
  return 1;
}

/* core.fs_type(path) -> name of the filesystem holding path: "btrfs",
 * "ext4", "xfs", "tmpfs", "overlay", "nfs", "fuse", "zfs" or "unknown" |
 * nil, msg, kind.  Snapshotter selection (lua/crater/snapshotters.lua)
 * picks btrfs on btrfs. */
static int
l_fs_type(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  struct statfs sf;
  if (statfs(path, &sf) < 0) {
    crater_error_t err = NULL;
    crater_error_sys(&err, errno, "statfs %s", path);
    return crater__lua_fail(L, &err);
  }
  static const struct {
    unsigned long magic;
    const char *name;
  } names[] = {
    { BTRFS_SUPER_MAGIC, "btrfs" },
    { EXT4_SUPER_MAGIC, "ext4" },
    { XFS_SUPER_MAGIC, "xfs" },
    { TMPFS_MAGIC, "tmpfs" },
    { OVERLAYFS_SUPER_MAGIC, "overlay" },
    { NFS_SUPER_MAGIC, "nfs" },
    { 0x65735546, "fuse" },
    { 0x2fc12fc1, "zfs" },
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if ((unsigned long) sf.f_type == names[i].magic) {
      lua_pushstring(L, names[i].name);
      return 1;
    }
  }
  lua_pushstring(L, "unknown");
  return 1;
}

/* core.wait_pid_gone(pid, timeout_ms=5000) -> true when pid has exited (or
 * never existed), false on timeout.  Not our child, so no wait(2): a pidfd
 * becomes readable when the process exits; zombies of another parent
 * count as gone.  Falls back to kill(pid, 0) polling without pidfd_open. */
static int
l_wait_pid_gone(lua_State *L)
{
  pid_t pid = (pid_t) luaL_checkinteger(L, 1);
  int timeout = (int) luaL_optinteger(L, 2, 5000);
  if (pid <= 0)
    return luaL_argerror(L, 1, "pid must be positive");
  int fd = (int) syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    if (errno == ESRCH) {
      lua_pushboolean(L, 1);
      return 1;
    }
    int64_t end = crater__mono_ms() + timeout;
    while (kill(pid, 0) == 0 || errno == EPERM) {
      if (crater__mono_ms() >= end) {
        lua_pushboolean(L, 0);
        return 1;
      }
      struct timespec ts = { 0, 2000000 };
      nanosleep(&ts, NULL);
    }
    lua_pushboolean(L, 1);
    return 1;
  }
  struct pollfd p = { .fd = fd, .events = POLLIN };
  int r;
  int64_t end = crater__mono_ms() + timeout;
  do {
    int left = (int) (end - crater__mono_ms());
    r = poll(&p, 1, left < 0 ? 0 : left);
  } while (r < 0 && errno == EINTR);
  close(fd);
  lua_pushboolean(L, r > 0);
  return 1;
}

extern char **environ;

/* One captured output stream of core.run. */
typedef struct {
  int fd;
  char *buf;
  size_t len;
  size_t cap; /* the caller's max_output */
  bool truncated;
} run_stream_t;

/* State of one core.run call: everything C owns, released by run_release
 * before anything is pushed. */
typedef struct {
  int in_w; /* our end of the child's stdin, -1 once closed */
  run_stream_t out, err;
  int pidfd;
  pid_t pid;
  int wstatus;
  bool reaped;
} run_state_t;

static void
close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void
run_release(run_state_t *st)
{
  close_fd(&st->in_w);
  close_fd(&st->out.fd);
  close_fd(&st->err.fd);
  close_fd(&st->pidfd);
  free(st->out.buf);
  free(st->err.buf);
  st->out.buf = st->err.buf = NULL;
}

/* pipe2(O_CLOEXEC) with both ends >= 3, so that the dup2 onto 0..2 in the
 * child never clobbers another pipe end (crater may run with 0..2 closed). */
static int
pipe_hi(int p[2])
{
  if (pipe2(p, O_CLOEXEC) < 0)
    return -1;
  for (int i = 0; i < 2; i++) {
    if (p[i] < 3) {
      int hi = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
      if (hi < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        errno = e;
        return -1;
      }
      close(p[i]);
      p[i] = hi;
    }
  }
  return 0;
}

/* Reads what is available on s->fd (non-blocking): keeps up to s->cap
 * bytes, discards the rest.  Closes the fd at EOF or on an error. */
static void
run_drain(run_stream_t *s)
{
  char chunk[16384];
  while (s->fd >= 0) {
    ssize_t k = read(s->fd, chunk, sizeof chunk);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (k <= 0) {
      close_fd(&s->fd);
      return;
    }
    size_t keep = (size_t) k;
    if (s->len + keep > s->cap) {
      keep = s->cap - s->len;
      s->truncated = true;
    }
    if (keep > 0) {
      s->buf = xrealloc(s->buf, s->len + keep + 1);
      memcpy(s->buf + s->len, chunk, keep);
      s->len += keep;
    }
  }
}

static void
run_reap(run_state_t *st, int flags)
{
  if (st->reaped)
    return;
  pid_t r;
  while ((r = waitpid(st->pid, &st->wstatus, flags)) < 0 && errno == EINTR) {
  }
  if (r == st->pid || (r < 0 && errno == ECHILD))
    st->reaped = true;
}

/* Protected half of core.run: pushes the result table of the run_state_t
 * passed as lightuserdata argument 1. */
static int
push_run_result(lua_State *L)
{
  const run_state_t *st = lua_touserdata(L, 1);
  lua_createtable(L, 0, 5);
  if (WIFEXITED(st->wstatus)) {
    lua_pushinteger(L, WEXITSTATUS(st->wstatus));
    lua_setfield(L, -2, "code");
  } else if (WIFSIGNALED(st->wstatus)) {
    lua_pushinteger(L, WTERMSIG(st->wstatus));
    lua_setfield(L, -2, "signal");
  }
  lua_pushlstring(L, st->out.buf ? st->out.buf : "", st->out.len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, st->err.buf ? st->err.buf : "", st->err.len);
  lua_setfield(L, -2, "stderr");
  lua_pushboolean(L, st->out.truncated || st->err.truncated);
  lua_setfield(L, -2, "truncated");
  return 1;
}

/* Starts argv with the pipes of st; returns 0 or an errno value.  The
 * child gets its own process group (so a timeout kills what it started),
 * default signal dispositions, an empty signal mask and no descriptors
 * but 0..2. */
static int
run_spawn(run_state_t *st, char *const *argv, int in_r, int out_w, int err_w)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc != 0)
    return rc;
  rc = posix_spawnattr_init(&at);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return rc;
  }
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, in_r, 0);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  if (rc == 0)
    rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                           POSIX_SPAWN_SETSIGDEF);
  if (rc == 0)
    rc = posix_spawnattr_setpgroup(&at, 0);
  if (rc == 0)
    rc = posix_spawnattr_setsigmask(&at, &none);
  if (rc == 0)
    rc = posix_spawnattr_setsigdefault(&at, &all);
  if (rc == 0)
    rc = posix_spawnp(&st->pid, argv[0], &fa, &at, argv, environ);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

/* Feeds stdin, collects stdout/stderr and reaps the child until it has
 * exited and its output is drained, or deadline (ms on crater__mono_ms(); <0 =
 * none) passes.  Returns false on timeout (child not reaped yet). */
static bool
run_loop(run_state_t *st, const char *in, size_t inlen, int64_t deadline)
{
  size_t inoff = 0;
  if (inlen == 0)
    close_fd(&st->in_w);
  for (;;) {
    run_reap(st, WNOHANG);
    if (st->reaped) {
      /* the child is gone: take what is in the pipes and stop, even when
       * something it started still holds them open */
      run_drain(&st->out);
      run_drain(&st->err);
      return true;
    }
    struct pollfd pf[4];
    int n = 0, i_in = -1, i_out = -1, i_err = -1;
    if (st->in_w >= 0) {
      i_in = n;
      pf[n++] = (struct pollfd){ .fd = st->in_w, .events = POLLOUT };
    }
    if (st->out.fd >= 0) {
      i_out = n;
      pf[n++] = (struct pollfd){ .fd = st->out.fd, .events = POLLIN };
    }
    if (st->err.fd >= 0) {
      i_err = n;
      pf[n++] = (struct pollfd){ .fd = st->err.fd, .events = POLLIN };
    }
    if (st->pidfd >= 0)
      pf[n++] = (struct pollfd){ .fd = st->pidfd, .events = POLLIN };
    int wait = -1;
    if (deadline >= 0) {
      int64_t left = deadline - crater__mono_ms();
      if (left <= 0)
        return false;
      wait = left > 60000 ? 60000 : (int) left;
    }
    if (st->pidfd < 0 && (wait < 0 || wait > 20))
      wait = 20; /* no pidfd: notice the exit by polling waitpid */
    int r = poll(pf, (nfds_t) n, wait);
    if (r < 0 && errno != EINTR) {
      struct timespec ts = { 0, 10000000 }; /* ENOMEM: back off, keep the deadline */
      nanosleep(&ts, NULL);
    }
    if (r <= 0)
      continue;
    if (i_in >= 0 && pf[i_in].revents) {
      ssize_t k = write(st->in_w, in + inoff, inlen - inoff);
      if (k > 0)
        inoff += (size_t) k;
      if ((k < 0 && errno != EINTR && errno != EAGAIN) || inoff == inlen)
        close_fd(&st->in_w); /* done, or EPIPE: the child does not read */
    }
    if (i_out >= 0 && pf[i_out].revents)
      run_drain(&st->out);
    if (i_err >= 0 && pf[i_err].revents)
      run_drain(&st->err);
  }
}

/* core.run(argv [, {stdin=, timeout_ms=30000, max_output=1 MiB}]) ->
 *   {code=|signal=, stdout=, stderr=, truncated=} | nil, msg, kind
 * No shell: argv[1] is looked up in $PATH like execvp.  A program that
 * cannot be started is nil, "run NAME: strerror", kind from errno
 * (not_found for ENOENT); one still running after timeout_ms (-1: no
 * limit) is killed with its process group and gives deadline_exceeded.
 * stdin, stdout and stderr never appear in messages. */
static int
l_run(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t argc = lua_objlen(L, 1);
  if (argc == 0)
    return luaL_argerror(L, 1, "empty argv");
  const char *in = NULL;
  size_t inlen = 0;
  int64_t timeout = 30000, cap = 1 << 20;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "stdin");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_argerror(L, 2, "stdin must be a string");
      in = lua_tolstring(L, -1, &inlen); /* anchored by the options table */
    }
    lua_pop(L, 1);
    timeout = crater__lua_opt_field_int(L, 2, "timeout_ms", 30000);
    cap = crater__lua_opt_field_int(L, 2, "max_output", 1 << 20);
    if (timeout < -1 || timeout == 0)
      return luaL_argerror(L, 2, "timeout_ms must be positive (or -1: no limit)");
    if (cap < 0)
      return luaL_argerror(L, 2, "max_output must not be negative");
  }
  /* argv as a NULL-terminated array owned by Lua, strings anchored by
   * the argv table: nothing to free if a later check raises */
  char **argv = lua_newuserdata(L, (argc + 1) * sizeof *argv);
  for (size_t i = 0; i < argc; i++) {
    lua_rawgeti(L, 1, (int) i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_argerror(L, 1, "argv entries must be strings");
    argv[i] = (char *) lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[argc] = NULL;
  if (argv[0][0] == '\0')
    return luaL_argerror(L, 1, "empty program name");
  lua_pushcfunction(L, push_run_result); /* allocates: before any C resource */

  run_state_t st = { .in_w = -1,
                     .out = { .fd = -1, .cap = (size_t) cap },
                     .err = { .fd = -1, .cap = (size_t) cap },
                     .pidfd = -1 };
  int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
  crater_error_t err = NULL;
  if (pipe_hi(pin) < 0 || pipe_hi(pout) < 0 || pipe_hi(perr) < 0) {
    crater_error_sys(&err, errno, "run %s: pipe", argv[0]);
    int *fds[] = { &pin[0], &pin[1], &pout[0], &pout[1], &perr[0], &perr[1] };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
      close_fd(fds[i]);
    return crater__lua_fail(L, &err);
  }
  st.in_w = pin[1];
  st.out.fd = pout[0];
  st.err.fd = perr[0];

  /* a child that exits without reading its stdin gives EPIPE, not a
   * SIGPIPE that kills us */
  sigset_t pipeset, oldset;
  sigemptyset(&pipeset);
  sigaddset(&pipeset, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipeset, &oldset);

  int rc = run_spawn(&st, argv, pin[0], pout[1], perr[1]);
  close_fd(&pin[0]);
  close_fd(&pout[1]);
  close_fd(&perr[1]);
  bool finished = false;
  if (rc != 0) {
    crater_error_sys(&err, rc, "run %s", argv[0]);
  } else {
    st.pidfd = (int) syscall(SYS_pidfd_open, st.pid, 0);
    fcntl(st.in_w, F_SETFL, O_NONBLOCK);
    fcntl(st.out.fd, F_SETFL, O_NONBLOCK);
    fcntl(st.err.fd, F_SETFL, O_NONBLOCK);
    finished = run_loop(&st, in ? in : "", inlen, timeout < 0 ? -1 : crater__mono_ms() + timeout);
    if (!finished) {
      kill(-st.pid, SIGKILL);
      kill(st.pid, SIGKILL);
      crater_error_make(&err, CRATER_ERR_DEADLINE_EXCEEDED, ETIMEDOUT,
                        "run %s: no answer after %lld ms (killed)", argv[0], (long long) timeout);
    }
    run_reap(&st, 0);
  }
  close_fd(&st.in_w);
  struct timespec zero = { 0, 0 };
  while (sigtimedwait(&pipeset, NULL, &zero) > 0)
    ; /* swallow SIGPIPEs raised while blocked */
  pthread_sigmask(SIG_SETMASK, &oldset, NULL);

  if (err) {
    run_release(&st);
    return crater__lua_fail(L, &err);
  }
  lua_pushlightuserdata(L, &st); /* no allocation */
  int r = lua_pcall(L, 1, 1, 0);
  run_release(&st);
  if (r != 0)
    return lua_error(L); /* re-raise the error object at the top */
  return 1;
}

static const luaL_Reg fs_functions[] = {
  { "listdir", l_listdir }, { "mkdir_p", l_mkdir_p },
  { "mkdir", l_mkdir },     { "host_devices", l_host_devices },
  { "chmod", l_chmod },     { "remove_all", l_remove_all },
  { "exists", l_exists },   { "executable", l_executable },
  { "which", l_which },     { "exe_path", l_exe_path },
  { "fs_type", l_fs_type }, { "wait_pid_gone", l_wait_pid_gone },
  { "run", l_run },         { NULL, NULL },
};

void
crater__lua_open_fs(lua_State *L)
{
  luaL_register(L, NULL, fs_functions); /* into the core table at -1 */
}
