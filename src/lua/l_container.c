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
 * The filesystem and process helpers the container code uses (core.mkdir_p,
 * core.remove_all, core.listdir, ...) are in l_fs.c.
 *
 * Conventions (lua_util.h): misuse raises; expected failures return nil,
 * msg, kind.  Arguments are read (and may raise) before anything is
 * allocated in C; C memory is released before pushing results.
 */
#include <string.h>

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
  lua_pushnumber(L, (double) c.created_at / 1e9); /* seconds, as container_get */
  return 2;
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
  const char **filters =
      crater__lua_check_strings(L, 3, &nf, "filters must be an array of strings");
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
  const char **fields = crater__lua_check_strings(L, 4, &nf, "fields must be an array of strings");
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

static const luaL_Reg container_methods[] = {
  { "container_create", l_container_create }, { "container_get", l_container_get },
  { "container_list", l_container_list },     { "container_update", l_container_update },
  { "container_delete", l_container_delete }, { NULL, NULL },
};

void
crater__lua_open_container(lua_State *L)
{
  luaL_getmetatable(L, "crater.store");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return; /* no store binding in this build */
  }
  luaL_register(L, NULL, container_methods);
  lua_pop(L, 1);
}
