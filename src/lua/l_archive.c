/*
 * crater.core archive bindings: layer apply and diff over paths.
 *
 *   core.archive_apply(dir, layer_path, {compression=, whiteouts=,
 *                      max_size=, expected_diff_id=, decoder=, no_openat2=,
 *                      no_devices=, lowers={dir...}, record_implicit=})
 *     -> {diff_id=, size=, entries=, implicit={path...}?} | nil, msg, kind
 *   core.archive_apply_many({ {dir=, layer=, <archive_apply options>}, ... },
 *                           {parallel=}) -> { result | {err=, kind=}, ... }
 *   core.archive_fix_parents(dir, implicit_paths, lowers) -> true | nil, msg, kind
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
#include "common/xalloc.h"
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

#define MAX_LOWERS 256

/* Reads apply options from the table at idx (may be none/nil) into o;
 * raises on a bad value.  Opens the lowers last (into lower_fds, at most
 * MAX_LOWERS), so a raise never leaks an fd; returns <0 with err set when
 * one cannot be opened (none left open). */
static int
read_apply_opts(lua_State *L, int idx, crater_apply_opts_t *o, int *lower_fds, crater_error_t *err)
{
  *o = (crater_apply_opts_t){ .whiteouts = CRATER_WHITEOUT_OVERLAY, .lower_fds = lower_fds };
  if (lua_isnoneornil(L, idx))
    return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  o->compression = opt_compression(L, idx);
  const char *w = crater__lua_opt_field_string(L, idx, "whiteouts");
  if (w && strcmp(w, "delete") == 0)
    o->whiteouts = CRATER_WHITEOUT_DELETE;
  else if (w && strcmp(w, "overlay") != 0)
    return luaL_argerror(L, idx, "whiteouts must be overlay or delete");
  const char *d = crater__lua_opt_field_string(L, idx, "decoder");
  if (d && strcmp(d, "libarchive") == 0)
    o->decoder = CRATER_DECODER_LIBARCHIVE;
  else if (d && strcmp(d, "auto") != 0)
    return luaL_argerror(L, idx, "decoder must be auto or libarchive");
  int64_t max = crater__lua_opt_field_int(L, idx, "max_size", 0);
  if (max < 0)
    return luaL_argerror(L, idx, "max_size must be >= 0");
  o->max_size = (uint64_t) max;
  /* points into a Lua string the options table keeps referenced for the
   * whole call */
  o->expected_diff_id = crater__lua_opt_field_string(L, idx, "expected_diff_id");
  if (crater__lua_opt_field_bool(L, idx, "no_openat2", 0))
    o->flags |= CRATER_APPLY_NO_OPENAT2;
  if (crater__lua_opt_field_bool(L, idx, "no_devices", 0))
    o->flags |= CRATER_APPLY_NO_DEVICES;
  if (crater__lua_opt_field_bool(L, idx, "record_implicit", 0))
    o->flags |= CRATER_APPLY_RECORD_IMPLICIT;
  /* lowers = {dir, ...} (overlay copy-up, nearest first) */
  lua_getfield(L, idx, "lowers");
  if (lua_istable(L, -1)) {
    size_t n = lua_objlen(L, -1);
    for (size_t i = 1; i <= n && o->nlowers < MAX_LOWERS; i++) {
      lua_rawgeti(L, -1, (int) i);
      const char *lp = lua_tostring(L, -1);
      int lfd = lp ? open(lp, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
      if (lfd < 0) {
        crater_error_sys(err, errno, "open lower %s", lp ? lp : "?");
        lua_pop(L, 2);
        for (size_t j = 0; j < o->nlowers; j++)
          close(lower_fds[j]);
        o->nlowers = 0;
        return -1;
      }
      lua_pop(L, 1);
      lower_fds[o->nlowers++] = lfd;
    }
  }
  lua_pop(L, 1);
  return 0;
}

static void
close_lowers(crater_apply_opts_t *o)
{
  for (size_t j = 0; j < o->nlowers; j++)
    close(o->lower_fds[j]);
  o->nlowers = 0;
}

static void
push_apply_result(lua_State *L, const crater_apply_result_t *res)
{
  lua_createtable(L, 0, 4);
  lua_pushstring(L, res->diff_id);
  lua_setfield(L, -2, "diff_id");
  lua_pushnumber(L, (lua_Number) res->size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number) res->entries);
  lua_setfield(L, -2, "entries");
  if (res->nimplicit > 0) {
    lua_createtable(L, (int) res->nimplicit, 0);
    for (size_t i = 0; i < res->nimplicit; i++) {
      lua_pushstring(L, res->implicit[i]);
      lua_rawseti(L, -2, (int) i + 1);
    }
    lua_setfield(L, -2, "implicit");
  }
}

static int
l_archive_apply(lua_State *L)
{
  const char *dir = luaL_checkstring(L, 1);
  const char *layer = luaL_checkstring(L, 2);
  crater_error_t err = NULL;
  int lower_fds[MAX_LOWERS];
  crater_apply_opts_t o;
  if (read_apply_opts(L, 3, &o, lower_fds, &err) < 0)
    return crater__lua_fail(L, &err);
  crater_apply_result_t res = { 0 };
  int rc_apply = -1;
  int root = open_dir(dir, &err);
  if (root >= 0) {
    int lfd = open(layer, O_RDONLY | O_CLOEXEC);
    if (lfd < 0)
      crater_error_sys(&err, errno, "open %s", layer);
    else {
      rc_apply = crater_archive_apply(root, lfd, &o, &res, &err);
      close(lfd);
    }
    close(root);
  }
  close_lowers(&o);
  if (rc_apply < 0)
    return crater__lua_fail(L, &err);
  push_apply_result(L, &res);
  crater_apply_result_clear(&res);
  return 1;
}

/* core.archive_apply_many(items, {parallel=}) -> results
 *   items[i] = {dir=, layer=, <archive_apply options>}
 *   results[i] = {diff_id=, size=, entries=, implicit=?} | {err=, kind=}
 * Layers apply on up to `parallel` threads (default: online CPUs), taken
 * in item order; each into its own dir, so only for independent roots
 * (overlay upper dirs).  Bad arguments raise before anything runs. */
static int
l_archive_apply_many(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  int64_t parallel = crater__lua_opt_field_int(L, 2, "parallel", 0);
  if (parallel < 0 || parallel > 256)
    return luaL_argerror(L, 2, "parallel must be 0..256");
  size_t n = lua_objlen(L, 1);
  /* validate everything first: nothing below raises */
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, (int) i);
    int t = lua_gettop(L);
    if (!lua_istable(L, t) || crater__lua_opt_field_string(L, t, "dir") == NULL ||
        crater__lua_opt_field_string(L, t, "layer") == NULL)
      return luaL_error(L, "archive_apply_many: item %d needs dir and layer", (int) i);
    crater_apply_opts_t o;
    lua_getfield(L, t, "lowers");
    bool lowers = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (lowers)
      return luaL_error(
          L, "archive_apply_many: item %d: lowers are not supported (use archive_apply)", (int) i);
    crater_error_t e = NULL;
    read_apply_opts(L, t, &o, NULL, &e); /* raises on a bad value; opens nothing */
    crater_error_release(&e);
    lua_pop(L, 1);
  }
  crater_apply_job_t *jobs = xcalloc(n ? n : 1, sizeof *jobs);
  crater_error_t *open_errs = xcalloc(n ? n : 1, sizeof *open_errs);
  size_t *order = xcalloc(n ? n : 1, sizeof *order);
  size_t nrun = 0;
  for (size_t i = 0; i < n; i++) {
    crater_apply_job_t *j = &jobs[i];
    j->root_dirfd = j->layer_fd = -1;
    lua_rawgeti(L, 1, (int) i + 1);
    int t = lua_gettop(L);
    read_apply_opts(L, t, &j->opts, NULL, &open_errs[i]);
    const char *dir = crater__lua_opt_field_string(L, t, "dir");
    const char *layer = crater__lua_opt_field_string(L, t, "layer");
    lua_pop(L, 1); /* the items table keeps the strings referenced */
    j->root_dirfd = open_dir(dir, &open_errs[i]);
    if (j->root_dirfd < 0)
      continue;
    j->layer_fd = open(layer, O_RDONLY | O_CLOEXEC);
    if (j->layer_fd < 0) {
      crater_error_sys(&open_errs[i], errno, "open %s", layer);
      continue;
    }
    order[nrun++] = i;
  }
  /* the pool takes jobs in array order: compact the runnable ones */
  crater_apply_job_t *run = xcalloc(nrun ? nrun : 1, sizeof *run);
  for (size_t k = 0; k < nrun; k++)
    run[k] = jobs[order[k]];
  crater_error_t err = NULL;
  int rc = crater_archive_apply_many(run, nrun, (size_t) parallel, &err);
  for (size_t k = 0; k < nrun; k++)
    jobs[order[k]] = run[k];
  free(run);
  free(order);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    crater_apply_job_t *j = &jobs[i];
    crater_error_t e = open_errs[i] ? open_errs[i] : (j->err ? j->err : (j->done ? NULL : err));
    if (e) {
      lua_createtable(L, 0, 2);
      lua_pushstring(L, e->msg);
      lua_setfield(L, -2, "err");
      lua_pushstring(L, crater_errkind_name(e->kind));
      lua_setfield(L, -2, "kind");
    } else {
      push_apply_result(L, &j->res);
    }
    lua_rawseti(L, -2, (int) i + 1);
    crater_apply_result_clear(&j->res);
    crater_error_release(&j->err);
    crater_error_release(&open_errs[i]);
    if (j->root_dirfd >= 0)
      close(j->root_dirfd);
    if (j->layer_fd >= 0)
      close(j->layer_fd);
  }
  (void) rc;
  crater_error_release(&err);
  free(open_errs);
  free(jobs);
  return 1;
}

/* core.archive_fix_parents(dir, paths, lowers) -> true | nil, msg, kind:
 * the implicit-parent fix-up of an isolated apply (record_implicit), once
 * its lowers (nearest first) exist. */
static int
l_archive_fix_parents(lua_State *L)
{
  const char *dir = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t n = lua_objlen(L, 2);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (int) i);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_argerror(L, 2, "paths must be strings");
    lua_pop(L, 1);
  }
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "lowers");
  int otab = lua_gettop(L);
  crater_error_t err = NULL;
  int lower_fds[MAX_LOWERS];
  crater_apply_opts_t o;
  if (read_apply_opts(L, otab, &o, lower_fds, &err) < 0)
    return crater__lua_fail(L, &err);
  const char **paths = xcalloc(n ? n : 1, sizeof *paths);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (int) i + 1);
    paths[i] = lua_tostring(L, -1); /* kept referenced by the paths table */
    lua_pop(L, 1);
  }
  int rc = -1;
  int root = open_dir(dir, &err);
  if (root >= 0) {
    rc = crater_archive_fix_parents(root, paths, n, &o, &err);
    close(root);
  }
  free(paths);
  close_lowers(&o);
  if (rc < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
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
    { "archive_apply_many", l_archive_apply_many },
    { "archive_fix_parents", l_archive_fix_parents },
    { NULL, NULL },
  };
  luaL_register(L, NULL, fns);
}
