/*
 * The crater command: embeds LuaJIT, registers crater.core and the
 * embedded lua/crater/ sources, then hands argv to crater.cli (written in
 * Lua).  Exit codes: 0 ok, 1 error, 2 usage.
 *
 * CRATER_LUA_DIR, when set, makes the embedded searcher prefer sources from
 * that directory (for development without rebuilding).
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/server.h"

int luaopen_crater_core(lua_State *L);
void crater__lua_install_embedded(lua_State *L);

static int
traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg = "(error object is not a string)";
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int
main(int argc, char **argv)
{
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fputs("crater: cannot create Lua state\n", stderr);
    return 1;
  }
  luaL_openlibs(L);
  crater__lua_install_embedded(L);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_crater_core);
  lua_setfield(L, -2, "crater.core");
  lua_pop(L, 2);

  lua_pushcfunction(L, traceback);
  lua_getglobal(L, "require");
  lua_pushstring(L, "crater.cli");
  if (lua_pcall(L, 1, 1, -3) != 0) {
    fprintf(stderr, "crater: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_getfield(L, -1, "main");
  lua_newtable(L);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  int rc;
  if (lua_pcall(L, 1, 1, -4) != 0) {
    fprintf(stderr, "crater: internal error: %s\n", lua_tostring(L, -1));
    rc = 1;
  } else {
    rc = lua_isnumber(L, -1) ? (int) lua_tointeger(L, -1) : 0;
  }
  /* A command served for the front end (crater daemon): a worker sends its
   * exit code and exits from Lua (cli/daemon.lua); this sends it for one
   * that did not get that far, before the state is closed (freeing what
   * the worker inherited costs a copy-on-write fault per page, ~1 ms). */
  crater__daemon_finish(rc);
  fflush(stdout);
  lua_close(L);
  return rc;
}
