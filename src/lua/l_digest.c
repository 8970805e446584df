/*
 * Digest helpers for the Lua workflow (pull/push/import verification):
 * strict digest validation, sha256/sha512 of a string, and of a whole file.
 * Thin wrappers over src/content/digest.h so Lua never hashes by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "content/digest.h"
#include "lua/lua_util.h"

static int
alg_arg(lua_State *L, int idx, crater_digest_alg_t *alg)
{
  const char *name = luaL_optstring(L, idx, "sha256");
  if (strcmp(name, "sha256") == 0)
    *alg = CRATER_DIGEST_SHA256;
  else if (strcmp(name, "sha512") == 0)
    *alg = CRATER_DIGEST_SHA512;
  else
    return luaL_argerror(L, idx, "algorithm must be sha256 or sha512");
  return 0;
}

/* digest_validate(d) -> alg | nil, msg, kind */
static int
l_digest_validate(lua_State *L)
{
  const char *d = luaL_checkstring(L, 1);
  crater_error_t err = { 0 };
  int alg = crater_digest_validate(d, &err);
  if (alg < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, crater_digest_alg_name((crater_digest_alg_t) alg));
  return 1;
}

/* digest_string(s [, alg]) -> "sha256:<hex>" */
static int
l_digest_string(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  crater_digest_alg_t alg = CRATER_DIGEST_SHA256; /* alg_arg sets it or raises */
  alg_arg(L, 2, &alg);
  crater_error_t err = { 0 };
  char out[CRATER_DIGEST_MAX];
  if (crater_digest_buf(alg, s, n, out, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, out);
  return 1;
}

/* digest_file(path [, alg]) -> digest, size | nil, msg, kind */
static int
l_digest_file(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  crater_digest_alg_t alg = CRATER_DIGEST_SHA256; /* alg_arg sets it or raises */
  alg_arg(L, 2, &alg);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "open %s: %s", path, strerror(e));
    lua_pushstring(L, e == ENOENT ? "not_found" : "internal");
    return 3;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  lseek(fd, 0, SEEK_SET);
  crater_error_t err = { 0 };
  char out[CRATER_DIGEST_MAX];
  int r = crater_digest_fd(alg, fd, out, &err);
  close(fd);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, out);
  lua_pushnumber(L, (lua_Number) size);
  return 2;
}

void
crater__lua_open_digest(lua_State *L)
{
  static const luaL_Reg fns[] = {
    { "digest_validate", l_digest_validate },
    { "digest_string", l_digest_string },
    { "digest_file", l_digest_file },
    { NULL, NULL },
  };
  luaL_register(L, NULL, fns);
}
