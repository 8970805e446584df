/*
 * crater.core daemon functions: what `crater daemon` (lua/crater/cli/
 * daemon.lua) is made of (src/daemon/server.h, docs/design/daemon.md).
 *
 *   core.daemon_listen(path)              -> fd       (mode 0600; "already_exists" when served)
 *   core.daemon_serve(fd, path, workers)  -> "stopped" | "worker" | "janitor"
 *       The daemon's loop.  It returns "worker" in each warm worker it
 *       forks (which warms up, then calls daemon_accept), "janitor" in the
 *       child it forks to clean up (snapshot data the workers left, once
 *       the daemon is idle; it exits when done) and "stopped" in the
 *       daemon after SIGTERM or SIGINT.
 *   core.daemon_accept(fd)                -> argv     (the command's arguments, without argv[0])
 *       In a worker: waits for a command and becomes its process (stdio,
 *       working directory, environment, umask).  nil, msg, kind when
 *       there is nothing to run (the client runs it embedded).
 *
 *   core.daemon_rejoin()                  -> bool
 *       In a worker after daemon_finish: its own state back, idle again
 *       for the next command; false when it should exit instead
 *       (crater__daemon_rejoin).
 *
 *   core.daemon_note_cleanup()
 *       In a worker: tells the daemon its command left work for the
 *       janitor (removed snapshots' data, core.snapshot_deferred).
 *
 *   core.db_defer_checkpoints(on)
 *       In a worker: its store connection leaves the metadata WAL to the
 *       janitor's store:checkpoint() (crater_db_defer_checkpoints).
 *
 *   core.daemon_finish(code)
 *       In a worker: sends the command's exit code to its client now (and
 *       gives up the client's stdio), so that what the worker still does
 *       is off the client's path.  Otherwise src/cli/main.c sends it when
 *       the command returns (crater__daemon_finish; once either way).
 */
#include <stdlib.h>

#include "daemon/server.h"
#include "metadata/db.h"
#include "lua/lua_util.h"

static int
l_daemon_listen(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  crater_error_t err = NULL;
  int fd = crater__daemon_listen(path, &err);
  if (fd < 0)
    return crater__lua_fail(L, &err);
  lua_pushinteger(L, fd);
  return 1;
}

static int
l_daemon_serve(lua_State *L)
{
  int fd = (int) luaL_checkinteger(L, 1);
  const char *path = luaL_checkstring(L, 2);
  int workers = (int) luaL_optinteger(L, 3, 2);
  crater_error_t err = NULL;
  int r = crater__daemon_serve(fd, path, workers, &err);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, r == 1 ? "worker" : r == 2 ? "janitor" : "stopped");
  return 1;
}

static int
l_daemon_accept(lua_State *L)
{
  int fd = (int) luaL_checkinteger(L, 1);
  crater_error_t err = NULL;
  char **argv = crater__daemon_accept(fd, &err);
  if (argv == NULL)
    return crater__lua_fail(L, &err);
  lua_newtable(L);
  for (int i = 1; argv[i] != NULL; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  free(argv); /* the strings live in the request, kept for the command */
  return 1;
}

static int
l_daemon_finish(lua_State *L)
{
  crater__daemon_finish((int) luaL_checkinteger(L, 1));
  return 0;
}

static int
l_daemon_rejoin(lua_State *L)
{
  lua_pushboolean(L, crater__daemon_rejoin());
  return 1;
}

static int
l_daemon_note_cleanup(lua_State *L)
{
  (void) L;
  crater__daemon_note_cleanup();
  return 0;
}

static int
l_db_defer_checkpoints(lua_State *L)
{
  crater_db_defer_checkpoints(lua_toboolean(L, 1));
  return 0;
}

static const luaL_Reg daemon_functions[] = {
  { "db_defer_checkpoints", l_db_defer_checkpoints },
  { "daemon_finish", l_daemon_finish },
  { "daemon_note_cleanup", l_daemon_note_cleanup },
  { "daemon_listen", l_daemon_listen },
  { "daemon_serve", l_daemon_serve },
  { "daemon_accept", l_daemon_accept },
  { "daemon_rejoin", l_daemon_rejoin },
  { NULL, NULL },
};

void
crater__lua_open_daemon(lua_State *L)
{
  luaL_register(L, NULL, daemon_functions);
}
