/*
 * crater.core container bindings: adds container_create/get/list/update/
 * delete to the `crater.store` metatable made by l_store.c (so this opener
 * runs after "store" in core.c's domains[]).  Methods map one to one onto
 * src/metadata/containers.h and take the namespace first, like every other
 * store method.
 *
 * Records are plain tables: {id, image, snapshotter, snapshot_key, spec,
 * runtime, runtime_options, extensions, labels, created_at, updated_at};
 * spec, runtime_options and extensions are JSON text (lua/crater/
 * containers.lua encodes and decodes them), timestamps seconds since the
 * epoch (float) as in l_store.c.
 *
 * It also adds the small filesystem and process helpers the container and
 * task code (lua/crater/containers.lua, tasks.lua) used to shell out for,
 * each a few syscalls instead of a fork+exec of sh: core.mkdir_p,
 * core.remove_all, core.exists, core.executable, core.which, core.exe_path,
 * core.chmod, core.listdir, core.wait_pid_gone.
 *
 * Conventions (lua_util.h): misuse raises; expected failures return nil,
 * msg, kind.  Arguments are read (and may raise) before anything is
 * allocated in C; C memory is released before pushing results.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"

#include "lua/lua_util.h"
#include "metadata/containers.h"
#include "metadata/store.h"

/* the store of `self` (argument 1) */
static crater_store_t *
check_store(lua_State *L)
{
  return crater__lua_check_store(L, 1);
}

static void
set_str(lua_State *L, const char *k, const char *v)
{
  if (v == NULL)
    return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void
push_container(lua_State *L, const crater_container_t *c)
{
  lua_createtable(L, 0, 11);
  set_str(L, "id", c->id);
  set_str(L, "image", c->image);
  set_str(L, "snapshotter", c->snapshotter);
  set_str(L, "snapshot_key", c->snapshot_key);
  set_str(L, "spec", c->spec);
  set_str(L, "runtime", c->runtime);
  set_str(L, "runtime_options", c->runtime_options);
  set_str(L, "extensions", c->extensions);
  crater__lua_push_labels(L, &c->labels);
  lua_setfield(L, -2, "labels");
  lua_pushnumber(L, (double) c->created_at / 1e9);
  lua_setfield(L, -2, "created_at");
  lua_pushnumber(L, (double) c->updated_at / 1e9);
  lua_setfield(L, -2, "updated_at");
}

/* Reads the record table at idx into *c (strings anchored by the table,
 * labels copied: clear them).  Raises on wrong types before copying. */
static void
check_record(lua_State *L, int idx, crater_container_t *c)
{
  luaL_checktype(L, idx, LUA_TTABLE);
  memset(c, 0, sizeof *c);
  c->id = (char *) crater__lua_opt_field_string(L, idx, "id");
  if (c->id == NULL)
    luaL_argerror(L, idx, "container record needs an id");
  c->image = (char *) crater__lua_opt_field_string(L, idx, "image");
  c->snapshotter = (char *) crater__lua_opt_field_string(L, idx, "snapshotter");
  c->snapshot_key = (char *) crater__lua_opt_field_string(L, idx, "snapshot_key");
  c->spec = (char *) crater__lua_opt_field_string(L, idx, "spec");
  c->runtime = (char *) crater__lua_opt_field_string(L, idx, "runtime");
  c->runtime_options = (char *) crater__lua_opt_field_string(L, idx, "runtime_options");
  c->extensions = (char *) crater__lua_opt_field_string(L, idx, "extensions");
  lua_getfield(L, idx, "labels");
  int lidx = lua_gettop(L);
  crater__lua_check_labels(L, lidx, &c->labels); /* raises after clearing */
  lua_pop(L, 1);
}

/* Optional array of strings at idx as a Lua-owned array (a userdata left
 * on the stack, so a raise leaks nothing). */
static const char **
check_strings(lua_State *L, int idx, size_t *n, const char *what)
{
  *n = 0;
  if (lua_isnoneornil(L, idx)) {
    lua_pushnil(L);
    return NULL;
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t len = lua_objlen(L, idx);
  const char **arr = lua_newuserdata(L, (len ? len : 1) * sizeof *arr);
  for (size_t i = 0; i < len; i++) {
    lua_rawgeti(L, idx, (int) i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, idx, what);
    arr[i] = lua_tostring(L, -1); /* anchored by the table */
    lua_pop(L, 1);
  }
  *n = len;
  return arr;
}

static int
l_container_create(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  crater_container_t c;
  check_record(L, 3, &c);
  crater_error_t err = NULL;
  int r = crater_store_container_create(s, ns, &c, &err);
  crater_labels_clear(&c.labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_container_get(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *id = luaL_checkstring(L, 3);
  crater_container_t c;
  crater_error_t err = NULL;
  if (crater_store_container_get(s, ns, id, &c, &err) < 0)
    return crater__lua_fail(L, &err);
  push_container(L, &c); /* may raise only on OOM; c is then leaked, as in l_store.c */
  crater_container_clear(&c);
  return 1;
}

static int
l_container_list(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  size_t nf;
  const char **filters = check_strings(L, 3, &nf, "filters must be an array of strings");
  crater_container_t *arr;
  size_t n;
  crater_error_t err = NULL;
  if (crater_store_container_list(s, ns, filters, nf, &arr, &n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    push_container(L, &arr[i]);
    lua_rawseti(L, -2, (int) i + 1);
  }
  crater_containers_free(arr, n);
  return 1;
}

static int
l_container_update(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  size_t nf;
  const char **fields = check_strings(L, 4, &nf, "fields must be an array of strings");
  crater_container_t c;
  check_record(L, 3, &c);
  crater_error_t err = NULL;
  int r = crater_store_container_update(s, ns, &c, fields, nf, &err);
  crater_labels_clear(&c.labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_container_delete(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *id = luaL_checkstring(L, 3);
  crater_error_t err = NULL;
  if (crater_store_container_delete(s, ns, id, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- helpers instead of shell commands ---------------------------------- */

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

static int64_t
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* core.wait_pid_gone(pid, timeout_ms) -> true when pid has exited (or never
 * existed), false on timeout.  Not our child, so no wait(2): a pidfd
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

/* core.listdir(path) -> sorted array of names (no . and ..) | nil, msg, kind */
static int
l_listdir(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (d == NULL) {
    crater_error_t err = NULL;
    crater_error_sys(&err, errno, "opendir %s", path);
    return crater__lua_fail(L, &err);
  }
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    lua_pushstring(L, e->d_name); /* may raise on OOM: the DIR leaks then */
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

static const luaL_Reg helper_functions[] = {
  { "listdir", l_listdir },
  { "mkdir_p", l_mkdir_p },
  { "chmod", l_chmod },
  { "remove_all", l_remove_all },
  { "exists", l_exists },
  { "executable", l_executable },
  { "which", l_which },
  { "exe_path", l_exe_path },
  { "wait_pid_gone", l_wait_pid_gone },
  { NULL, NULL },
};

static const luaL_Reg container_methods[] = {
  { "container_create", l_container_create },
  { "container_get", l_container_get },
  { "container_list", l_container_list },
  { "container_update", l_container_update },
  { "container_delete", l_container_delete },
  { NULL, NULL },
};

void
crater__lua_open_container(lua_State *L)
{
  luaL_register(L, NULL, helper_functions); /* into the core table at -1 */
  luaL_getmetatable(L, "crater.store");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return; /* no store binding in this build */
  }
  luaL_register(L, NULL, container_methods);
  lua_pop(L, 1);
}
