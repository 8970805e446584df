/*
 * luaopen_crater_core: the C half of the `crater` Lua module.
 *
 * Each domain contributes an opener (src/lua/l_<domain>.c) listed in
 * `domains` below; the Lua half (lua/crater/) builds the user-facing
 * objects on top and checks CRATER_ABI at require time.
 */
#include <lauxlib.h>
#include <lua.h>

#include "lua/lua_util.h"

#define CRATER_ABI 1

__attribute__((visibility("default"))) int luaopen_crater_core(lua_State *L);

static const struct {
  const char *name;
  void (*open)(lua_State *L);
} domains[] = {
  { "base", crater__lua_open_base },         { "fs", crater__lua_open_fs },
  { "store", crater__lua_open_store },       { "container", crater__lua_open_container },
  { "remote", crater__lua_open_remote },     { "json", crater__lua_open_json },
  { "digest", crater__lua_open_digest },     { "task", crater__lua_open_task },
  { "archive", crater__lua_open_archive },   { "snapshot", crater__lua_open_snapshot },
  { "transfer", crater__lua_open_transfer }, { "fetch", crater__lua_open_fetch },
  { "daemon", crater__lua_open_daemon },
};

int
luaopen_crater_core(lua_State *L)
{
  lua_newtable(L);
  lua_pushinteger(L, CRATER_ABI);
  lua_setfield(L, -2, "abi");
  lua_pushstring(L, CRATER_VERSION);
  lua_setfield(L, -2, "version");
  for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++)
    domains[i].open(L);
  return 1;
}
