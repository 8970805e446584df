/*
 * Shared helpers for the crater.core bindings.  See lua_util.h.
 */
#include "lua/lua_util.h"

#include <string.h>

int
crater__lua_fail(lua_State *L, crater_error_t *err)
{
  lua_pushnil(L);
  if (err && *err) {
    lua_pushstring(L, (*err)->msg);
    lua_pushstring(L, crater_errkind_name((*err)->kind));
    crater_error_release(err);
  } else {
    lua_pushstring(L, "unknown error");
    lua_pushstring(L, "unknown");
  }
  return 3;
}

void
crater__lua_newclass(lua_State *L, const char *tname, const luaL_Reg *methods)
{
  if (luaL_newmetatable(L, tname)) {
    luaL_register(L, NULL, methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

const char **
crater__lua_check_strings(lua_State *L, int idx, size_t *n, const char *what)
{
  *n = 0;
  if (lua_isnoneornil(L, idx)) {
    lua_pushnil(L); /* same stack shape either way */
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

void
crater__lua_check_labels(lua_State *L, int idx, crater_labels_t *out)
{
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
      crater_labels_clear(out);
      luaL_argerror(L, idx, "labels must map strings to strings");
    }
    crater_labels_set(out, lua_tostring(L, -2), lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

void
crater__lua_push_labels(lua_State *L, const crater_labels_t *l)
{
  lua_createtable(L, 0, l ? (int) l->n : 0);
  for (size_t i = 0; l && i < l->n; i++) {
    lua_pushstring(L, l->items[i].value);
    lua_setfield(L, -2, l->items[i].key);
  }
}

const char *
crater__lua_opt_field_string(lua_State *L, int idx, const char *key)
{
  if (!lua_istable(L, idx))
    return NULL;
  lua_getfield(L, idx, key);
  const char *s = NULL;
  if (lua_type(L, -1) == LUA_TSTRING)
    s = lua_tostring(L, -1); /* anchored by the table */
  else if (!lua_isnil(L, -1))
    luaL_error(L, "field '%s' must be a string", key);
  lua_pop(L, 1);
  return s;
}

int64_t
crater__lua_opt_field_int(lua_State *L, int idx, const char *key, int64_t dflt)
{
  if (!lua_istable(L, idx))
    return dflt;
  lua_getfield(L, idx, key);
  int64_t v = dflt;
  if (lua_type(L, -1) == LUA_TNUMBER)
    v = (int64_t) lua_tonumber(L, -1);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "field '%s' must be a number", key);
  lua_pop(L, 1);
  return v;
}

int
crater__lua_opt_field_bool(lua_State *L, int idx, const char *key, int dflt)
{
  if (!lua_istable(L, idx))
    return dflt;
  lua_getfield(L, idx, key);
  int v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

int
crater__lua_transfer_opts(lua_State *L, int idx, int64_t dflt, int64_t *parallel)
{
  *parallel = crater__lua_opt_field_int(L, idx, "parallel", dflt);
  if (*parallel < 1 || *parallel > 256)
    return luaL_argerror(L, idx, "parallel must be 1..256");
  if (!lua_istable(L, idx))
    return 0;
  lua_getfield(L, idx, "on_progress");
  if (lua_isfunction(L, -1))
    return lua_gettop(L);
  if (!lua_isnil(L, -1))
    return luaL_argerror(L, idx, "on_progress must be a function");
  lua_pop(L, 1);
  return 0;
}
