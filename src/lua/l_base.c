/*
 * Process-level basics exposed to Lua: clocks (core.now, core.monotonic),
 * ids (core.getpid, core.geteuid) and core.set_log_level.  Filesystem and
 * process helpers (listdir, which, wait_pid_gone, ...) are in l_fs.c;
 * core.isatty and core.tty_size with the terminal handling in l_task.c.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "lua/lua_util.h"

static int
l_now(lua_State *L)
{
  lua_pushnumber(L, (double) crater__now_ns() / 1e9);
  return 1;
}

static int
l_monotonic(lua_State *L)
{
  lua_pushnumber(L, (double) crater__mono_ns() / 1e9);
  return 1;
}

static int
l_getpid(lua_State *L)
{
  lua_pushinteger(L, getpid());
  return 1;
}

static int
l_geteuid(lua_State *L)
{
  lua_pushinteger(L, geteuid());
  return 1;
}

static int
l_set_log_level(lua_State *L)
{
  crater_log_set_level(luaL_checkstring(L, 1));
  return 0;
}

/* policies/seccomp-default.json, compiled in (CMakeLists.txt) */
extern const char crater__lua_seccomp_default_json[];
extern const size_t crater__lua_seccomp_default_len;

static int
l_default_seccomp_json(lua_State *L)
{
  lua_pushlstring(L, crater__lua_seccomp_default_json, crater__lua_seccomp_default_len);
  return 1;
}

void
crater__lua_open_base(lua_State *L)
{
  static const luaL_Reg fns[] = {
    { "now", l_now },
    { "monotonic", l_monotonic },
    { "getpid", l_getpid },
    { "geteuid", l_geteuid },
    { "set_log_level", l_set_log_level },
    { "default_seccomp_json", l_default_seccomp_json },
    { NULL, NULL },
  };
  luaL_register(L, NULL, fns);
}
