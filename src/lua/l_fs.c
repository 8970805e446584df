/*
 * crater.core filesystem and process helpers: the small syscall wrappers
 * lua/crater/ (containers, tasks, policy, snapshotters, the CLI) uses
 * instead of shelling out, each a few syscalls instead of a fork+exec of
 * sh.  They are module functions of `crater.core`, not methods: none needs
 * a store.
 *
 *   core.listdir(path)              -> names sorted bytewise (no . and ..)
 *   core.mkdir_p(path [, mode])     -> true          (mode default 0755)
 *   core.chmod(path, mode)          -> true
 *   core.remove_all(path)           -> true          (rm -rf; missing is fine)
 *   core.exists(path)               -> bool          (lstat)
 *   core.executable(path)           -> bool
 *   core.which(name)                -> path | nil    (like `command -v`)
 *   core.exe_path()                 -> path | nil    (/proc/self/exe)
 *   core.fs_type(path)              -> "btrfs", "ext4", "xfs", "tmpfs", ...
 *   core.wait_pid_gone(pid [, ms])  -> bool          (false on timeout)
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
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
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
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
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

static int64_t
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    int64_t end = mono_ms() + timeout;
    while (kill(pid, 0) == 0 || errno == EPERM) {
      if (mono_ms() >= end) {
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
  int64_t end = mono_ms() + timeout;
  do {
    int left = (int) (end - mono_ms());
    r = poll(&p, 1, left < 0 ? 0 : left);
  } while (r < 0 && errno == EINTR);
  close(fd);
  lua_pushboolean(L, r > 0);
  return 1;
}

static const luaL_Reg fs_functions[] = {
  { "listdir", l_listdir }, { "mkdir_p", l_mkdir_p },
  { "chmod", l_chmod },     { "remove_all", l_remove_all },
  { "exists", l_exists },   { "executable", l_executable },
  { "which", l_which },     { "exe_path", l_exe_path },
  { "fs_type", l_fs_type }, { "wait_pid_gone", l_wait_pid_gone },
  { NULL, NULL },
};

void
crater__lua_open_fs(lua_State *L)
{
  luaL_register(L, NULL, fs_functions); /* into the core table at -1 */
}
