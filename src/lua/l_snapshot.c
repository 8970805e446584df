/*
 * Snapshot bindings (crater.core): the snapshot_* methods of the
 * `crater.store` userdata (core.open(root), l_store.c), added to its
 * metatable by this file's opener, plus the module functions that need no
 * store.  The methods take the namespace and the snapshotter name first,
 * the same flat calls a remote backend serves (lua/crater/snapshots.lua
 * calls them on client.backend), and share the store's SQLite connection:
 *
 *   store:snapshot_prepare(ns, sn, key, parent?, labels?)  -> mounts
 *   store:snapshot_view(ns, sn, key, parent?, labels?)     -> mounts
 *   store:snapshot_commit(ns, sn, name, key, labels?)      -> true
 *   store:snapshot_remove(ns, sn, key)                     -> true
 *   store:snapshot_mounts(ns, sn, key)                     -> mounts
 *   store:snapshot_stat(ns, sn, key)                       -> info
 *   store:snapshot_update(ns, sn, key, labels, replace?)   -> info
 *   store:snapshot_usage(ns, sn, key)                      -> {size=, inodes=}
 *   store:snapshot_walk(ns, sn, filters?)                  -> {info...}
 *   store:snapshot_cleanup(sn)                             -> removed count
 *   store:snapshot_apply_dir(ns, sn, key)                  -> dir, whiteouts
 *     info = {name=, parent=, kind="active"|"view"|"committed", labels=,
 *             created_at=, updated_at= (seconds, float)}
 *     mounts = { {type=, source=, target=?, options={...}}, ... }
 *   core.mount_all(mounts, target)      -> true
 *   core.unmount_all(target, {detach=}) -> true
 *   core.snapshotters()                 -> {"overlayfs", "native", "btrfs"}
 *   core.overlay_supported(dir)         -> bool, why?  (probed once per dir)
 *   core.snapshot_defer_removals(on)    (this process leaves the backend data
 *                                        of what it removes to cleanup)
 *   core.snapshot_deferred()            -> how many it has left so far
 * (core.fs_type, which snapshotter selection uses, is in l_fs.c.)
 * Expected failures return nil, msg, kind; misuse (including a closed
 * store) raises.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "common/xalloc.h"
#include "lua/lua_util.h"
#include "metadata/snapshots.h"
#include "metadata/store.h"
#include "snapshot/snapshot.h"

/* the store of `self` (argument 1) */
static crater_store_t *
check_store(lua_State *L)
{
  return crater__lua_check_store(L, 1);
}

static const char *
opt_string(lua_State *L, int idx)
{
  if (lua_isnoneornil(L, idx))
    return NULL;
  return luaL_checkstring(L, idx);
}

static void
push_mounts(lua_State *L, const crater_mounts_t *m)
{
  lua_createtable(L, (int) m->n, 0);
  for (size_t i = 0; i < m->n; i++) {
    const crater_mount_t *mt = &m->items[i];
    lua_createtable(L, 0, 4);
    lua_pushstring(L, mt->type);
    lua_setfield(L, -2, "type");
    lua_pushstring(L, mt->source);
    lua_setfield(L, -2, "source");
    if (mt->target) {
      lua_pushstring(L, mt->target);
      lua_setfield(L, -2, "target");
    }
    lua_createtable(L, (int) mt->n_options, 0);
    for (size_t j = 0; j < mt->n_options; j++) {
      lua_pushstring(L, mt->options[j]);
      lua_rawseti(L, -2, (int) j + 1);
    }
    lua_setfield(L, -2, "options");
    lua_rawseti(L, -2, (int) i + 1);
  }
}

/* Reads a mounts array at idx into out; raises on malformed input (before
 * anything is allocated that the raise would leak: strings are copied
 * only after the checks). */
static void
check_mounts(lua_State *L, int idx, crater_mounts_t *out)
{
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int) lua_objlen(L, idx);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (!lua_istable(L, -1))
      luaL_argerror(L, idx, "mounts must be an array of tables");
    int t = lua_gettop(L);
    lua_getfield(L, t, "type");
    lua_getfield(L, t, "source");
    lua_getfield(L, t, "target");
    lua_getfield(L, t, "options");
    if (!lua_isstring(L, t + 1) || !lua_isstring(L, t + 2) ||
        !(lua_isnil(L, t + 3) || lua_isstring(L, t + 3)) ||
        !(lua_isnil(L, t + 4) || lua_istable(L, t + 4)))
      luaL_argerror(L, idx, "each mount needs type and source strings, options an array");
    if (lua_istable(L, t + 4)) {
      int no = (int) lua_objlen(L, t + 4);
      for (int j = 1; j <= no; j++) {
        lua_rawgeti(L, t + 4, j);
        if (!lua_isstring(L, -1))
          luaL_argerror(L, idx, "mount options must be strings");
        lua_pop(L, 1);
      }
    }
    lua_settop(L, t - 1);
  }
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    int t = lua_gettop(L);
    lua_getfield(L, t, "type");
    lua_getfield(L, t, "source");
    lua_getfield(L, t, "target");
    lua_getfield(L, t, "options");
    crater_mounts_add(out, lua_tostring(L, t + 1), lua_tostring(L, t + 2),
                      lua_isnil(L, t + 3) ? NULL : lua_tostring(L, t + 3), NULL);
    if (lua_istable(L, t + 4)) {
      int no = (int) lua_objlen(L, t + 4);
      for (int j = 1; j <= no; j++) {
        lua_rawgeti(L, t + 4, j);
        crater_mounts_add_option(out, lua_tostring(L, -1));
        lua_pop(L, 1);
      }
    }
    lua_settop(L, t - 1);
  }
}

static void
push_info(lua_State *L, const crater_snapshot_info_t *i)
{
  lua_createtable(L, 0, 6);
  lua_pushstring(L, i->key);
  lua_setfield(L, -2, "name");
  if (i->parent) {
    lua_pushstring(L, i->parent);
    lua_setfield(L, -2, "parent");
  }
  lua_pushstring(L, crater_snapshot_kind_name(i->kind));
  lua_setfield(L, -2, "kind");
  crater__lua_push_labels(L, &i->labels);
  lua_setfield(L, -2, "labels");
  lua_pushnumber(L, (double) i->created_at / 1e9);
  lua_setfield(L, -2, "created_at");
  lua_pushnumber(L, (double) i->updated_at / 1e9);
  lua_setfield(L, -2, "updated_at");
}

static int
create_common(lua_State *L, bool view)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *key = luaL_checkstring(L, 4);
  const char *parent = opt_string(L, 5);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 6, &labels);
  crater_mounts_t m = { 0 };
  crater_error_t err = NULL;
  int r = view ? crater_snapshot_view(s, ns, sn, key, parent, &labels, &m, &err)
               : crater_snapshot_prepare(s, ns, sn, key, parent, &labels, &m, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_mounts(L, &m);
  crater_mounts_clear(&m);
  return 1;
}

static int
l_prepare(lua_State *L)
{
  return create_common(L, false);
}

static int
l_view(lua_State *L)
{
  return create_common(L, true);
}

static int
l_commit(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *name = luaL_checkstring(L, 4);
  const char *key = luaL_checkstring(L, 5);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 6, &labels);
  crater_error_t err = NULL;
  int r = crater_snapshot_commit(s, ns, sn, name, key, &labels, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_remove(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *key = luaL_checkstring(L, 4);
  crater_error_t err = NULL;
  if (crater_snapshot_remove(s, ns, sn, key, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_mounts(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *key = luaL_checkstring(L, 4);
  crater_mounts_t m = { 0 };
  crater_error_t err = NULL;
  if (crater_snapshot_mounts(s, ns, sn, key, &m, &err) < 0)
    return crater__lua_fail(L, &err);
  push_mounts(L, &m);
  crater_mounts_clear(&m);
  return 1;
}

static int
l_stat(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *key = luaL_checkstring(L, 4);
  crater_snapshot_info_t info;
  crater_error_t err = NULL;
  if (crater_snapshot_stat(s, ns, sn, key, &info, &err) < 0)
    return crater__lua_fail(L, &err);
  push_info(L, &info);
  crater_snapshot_info_clear(&info);
  return 1;
}

static int
l_update(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *key = luaL_checkstring(L, 4);
  int replace = lua_toboolean(L, 6);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 5, &labels);
  crater_snapshot_info_t info;
  crater_error_t err = NULL;
  int r = crater_snapshot_update(s, ns, sn, key, &labels, replace, &info, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_info(L, &info);
  crater_snapshot_info_clear(&info);
  return 1;
}

static int
l_usage(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *key = luaL_checkstring(L, 4);
  crater_snapshot_usage_t u;
  crater_error_t err = NULL;
  if (crater_snapshot_usage(s, ns, sn, key, &u, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, 0, 2);
  lua_pushnumber(L, (double) u.size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (double) u.inodes);
  lua_setfield(L, -2, "inodes");
  return 1;
}

static int
l_walk(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  size_t nf = 0;
  if (!lua_isnoneornil(L, 4)) {
    if (lua_type(L, 4) == LUA_TSTRING) {
      nf = 1;
    } else {
      luaL_checktype(L, 4, LUA_TTABLE);
      nf = lua_objlen(L, 4);
      for (size_t i = 1; i <= nf; i++) {
        lua_rawgeti(L, 4, (int) i);
        if (lua_type(L, -1) != LUA_TSTRING)
          luaL_argerror(L, 4, "filters must be strings");
        lua_pop(L, 1);
      }
    }
  }
  /* strings stay anchored by the filters table (or argument 4) */
  const char **filters = nf ? xcalloc(nf, sizeof *filters) : NULL;
  if (nf && lua_type(L, 4) == LUA_TSTRING) {
    filters[0] = lua_tostring(L, 4);
  } else {
    for (size_t i = 1; i <= nf; i++) {
      lua_rawgeti(L, 4, (int) i);
      filters[i - 1] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
  }
  crater_snapshot_info_t *arr = NULL;
  size_t n = 0;
  crater_error_t err = NULL;
  int r = crater_snapshot_walk(s, ns, sn, filters, nf, &arr, &n, &err);
  free(filters);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    push_info(L, &arr[i]);
    lua_rawseti(L, -2, (int) i + 1);
  }
  crater_snapshot_infos_free(arr, n);
  return 1;
}

static int
l_cleanup(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *sn = luaL_checkstring(L, 2);
  size_t removed = 0;
  crater_error_t err = NULL;
  if (crater_snapshot_cleanup(s, sn, &removed, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushinteger(L, (lua_Integer) removed);
  return 1;
}

static int
l_apply_dir(lua_State *L)
{
  crater_store_t *s = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  const char *sn = luaL_checkstring(L, 3);
  const char *key = luaL_checkstring(L, 4);
  const char *wh = NULL;
  crater_error_t err = NULL;
  char *dir = crater_snapshot_apply_dir(s, ns, sn, key, &wh, &err);
  if (dir == NULL)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, dir);
  free(dir);
  lua_pushstring(L, wh ? wh : "delete");
  return 2;
}

static int
l_mount_all(lua_State *L)
{
  crater_mounts_t m = { 0 };
  const char *target = luaL_checkstring(L, 2);
  check_mounts(L, 1, &m);
  crater_error_t err = NULL;
  int r = crater_mount_all(&m, target, &err);
  crater_mounts_clear(&m);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_unmount_all(lua_State *L)
{
  const char *target = luaL_checkstring(L, 1);
  int flags = crater__lua_opt_field_bool(L, 2, "detach", 0) ? MNT_DETACH : 0;
  crater_error_t err = NULL;
  if (crater_unmount_all(target, flags, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_snapshotters(lua_State *L)
{
  const char *const *names = crater_snapshot_driver_names();
  lua_newtable(L);
  for (int i = 0; names[i]; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int
l_overlay_supported(lua_State *L)
{
  const char *dir = luaL_checkstring(L, 1);
  char *why = NULL;
  crater_error_t err = NULL;
  int ok = crater_snapshot_overlay_supported(dir, &why, &err);
  if (ok < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, ok);
  if (why) {
    lua_pushstring(L, why);
    free(why);
    return 2;
  }
  return 1;
}

static const luaL_Reg store_methods[] = {
  { "snapshot_prepare", l_prepare },     { "snapshot_view", l_view },
  { "snapshot_commit", l_commit },       { "snapshot_remove", l_remove },
  { "snapshot_mounts", l_mounts },       { "snapshot_stat", l_stat },
  { "snapshot_update", l_update },       { "snapshot_usage", l_usage },
  { "snapshot_walk", l_walk },           { "snapshot_cleanup", l_cleanup },
  { "snapshot_apply_dir", l_apply_dir }, { NULL, NULL },
};

static int
l_defer_removals(lua_State *L)
{
  crater_snapshot_defer_removals(lua_toboolean(L, 1));
  return 0;
}

static int
l_deferred(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer) crater_snapshot_deferred());
  return 1;
}

static const luaL_Reg funcs[] = {
  { "snapshot_defer_removals", l_defer_removals },
  { "snapshot_deferred", l_deferred },
  { "mount_all", l_mount_all },
  { "unmount_all", l_unmount_all },
  { "snapshotters", l_snapshotters },
  { "overlay_supported", l_overlay_supported },
  { NULL, NULL },
};

void
crater__lua_open_snapshot(lua_State *L)
{
  luaL_register(L, NULL, funcs); /* into the core table at -1 */
  luaL_getmetatable(L, "crater.store");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return; /* no store binding in this build */
  }
  luaL_register(L, NULL, store_methods);
  lua_pop(L, 1);
}
