/*
 * crater.core archive bindings: layer apply and diff over paths.
 *
 *   core.archive_apply(dir, layer_path, {compression=, whiteouts=,
 *                      max_size=, expected_diff_id=, decoder=, no_openat2=})
 *     -> {diff_id=, size=, entries=} | nil, msg, kind
 *   core.archive_diff(lower_dir|nil, upper_dir, out_path, {compression=,
 *                     upper_is_overlay=})
 *     -> {diff_id=, digest=, size=, uncompressed_size=, entries=} | nil, msg, kind
 *
 * Bad option values raise (misuse); filesystem and layer failures return
 * nil, msg, kind.  Options are all read before any fd is opened, so a raise
 * never leaks one.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/cleanup.h"
#include "lua/lua_util.h"

static crater_compression_t
opt_compression(lua_State *L, int idx)
{
  const char *c = crater__lua_opt_field_string(L, idx, "compression");
  crater_compression_t out = CRATER_COMPRESSION_NONE;
  crater_error_t err = NULL;
  if (c && crater_archive_compression_parse(c, &out, &err) < 0) {
    crater_error_release(&err);
    luaL_argerror(L, idx, "compression must be gzip, zstd or none");
  }
  return out;
}

static int
open_dir(const char *path, crater_error_t *err)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open %s", path);
  return fd;
}

static int
l_archive_apply(lua_State *L)
{
  const char *dir = luaL_checkstring(L, 1);
  const char *layer = luaL_checkstring(L, 2);
  crater_apply_opts_t o = { .whiteouts = CRATER_WHITEOUT_OVERLAY };
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    o.compression = opt_compression(L, 3);
    const char *w = crater__lua_opt_field_string(L, 3, "whiteouts");
    if (w && strcmp(w, "delete") == 0)
      o.whiteouts = CRATER_WHITEOUT_DELETE;
    else if (w && strcmp(w, "overlay") != 0)
      return luaL_argerror(L, 3, "whiteouts must be overlay or delete");
    const char *d = crater__lua_opt_field_string(L, 3, "decoder");
    if (d && strcmp(d, "libarchive") == 0)
      o.decoder = CRATER_DECODER_LIBARCHIVE;
    else if (d && strcmp(d, "auto") != 0)
      return luaL_argerror(L, 3, "decoder must be auto or libarchive");
    int64_t max = crater__lua_opt_field_int(L, 3, "max_size", 0);
    if (max < 0)
      return luaL_argerror(L, 3, "max_size must be >= 0");
    o.max_size = (uint64_t) max;
    o.expected_diff_id = crater__lua_opt_field_string(L, 3, "expected_diff_id");
    if (crater__lua_opt_field_bool(L, 3, "no_openat2", 0))
      o.flags |= CRATER_APPLY_NO_OPENAT2;
    if (crater__lua_opt_field_bool(L, 3, "no_devices", 0))
      o.flags |= CRATER_APPLY_NO_DEVICES;
  }
  crater_error_t err = NULL;
  crater_apply_result_t res;
  /* lowers = {dir, ...} (overlay copy-up, nearest first) */
  int lower_fds[256];
  size_t nlowers = 0;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "lowers");
    if (lua_istable(L, -1)) {
      size_t n = lua_objlen(L, -1);
      for (size_t i = 1; i <= n && nlowers < sizeof lower_fds / sizeof lower_fds[0]; i++) {
        lua_rawgeti(L, -1, (int) i);
        const char *lp = lua_tostring(L, -1);
        int lfd2 = lp ? open(lp, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
        lua_pop(L, 1);
        if (lfd2 < 0) {
          crater_error_sys(&err, errno, "open lower %s", lp ? lp : "?");
          for (size_t j = 0; j < nlowers; j++)
            close(lower_fds[j]);
          return crater__lua_fail(L, &err);
        }
        lower_fds[nlowers++] = lfd2;
      }
    }
    lua_pop(L, 1);
  }
  o.lower_fds = lower_fds;
  o.nlowers = nlowers;
  int rc_apply = -1;
  int root = open_dir(dir, &err);
  if (root >= 0) {
    int lfd = open(layer, O_RDONLY | O_CLOEXEC);
    if (lfd < 0)
      crater_error_sys(&err, errno, "open %s", layer);
    else {
      /* expected_diff_id points into the Lua stack's string, which stays
       * referenced by the options table for the whole call. */
      rc_apply = crater_archive_apply(root, lfd, &o, &res, &err);
      close(lfd);
    }
    close(root);
  }
  for (size_t j = 0; j < nlowers; j++)
    close(lower_fds[j]);
  if (rc_apply < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, res.diff_id);
  lua_setfield(L, -2, "diff_id");
  lua_pushnumber(L, (lua_Number) res.size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number) res.entries);
  lua_setfield(L, -2, "entries");
  return 1;
}

static int
l_archive_diff(lua_State *L)
{
  const char *lower = luaL_optstring(L, 1, NULL);
  const char *upper = luaL_checkstring(L, 2);
  const char *out = luaL_checkstring(L, 3);
  crater_diff_opts_t o = { 0 };
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    o.compression = opt_compression(L, 4);
    o.upper_is_overlay = crater__lua_opt_field_bool(L, 4, "upper_is_overlay", 0);
  }
  crater_error_t err = NULL;
  cleanup_close int lfd = -1;
  if (lower && (lfd = open_dir(lower, &err)) < 0)
    return crater__lua_fail(L, &err);
  cleanup_close int ufd = open_dir(upper, &err);
  if (ufd < 0)
    return crater__lua_fail(L, &err);
  cleanup_close int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (ofd < 0) {
    crater_error_sys(&err, errno, "create %s", out);
    return crater__lua_fail(L, &err);
  }
  crater_diff_result_t res;
  if (crater_archive_diff(lfd, ufd, ofd, &o, &res, &err) < 0) {
    unlink(out);
    return crater__lua_fail(L, &err);
  }
  lua_createtable(L, 0, 5);
  lua_pushstring(L, res.diff_id);
  lua_setfield(L, -2, "diff_id");
  lua_pushstring(L, res.digest);
  lua_setfield(L, -2, "digest");
  lua_pushnumber(L, (lua_Number) res.size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number) res.uncompressed_size);
  lua_setfield(L, -2, "uncompressed_size");
  lua_pushnumber(L, (lua_Number) res.entries);
  lua_setfield(L, -2, "entries");
  return 1;
}

void
crater__lua_open_archive(lua_State *L)
{
  static const luaL_Reg fns[] = {
    { "archive_apply", l_archive_apply },
    { "archive_diff", l_archive_diff },
    { NULL, NULL },
  };
  luaL_register(L, NULL, fns);
}
