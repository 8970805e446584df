/*
 * crater.core's JSON codec (src/lua/l_json.c) against jansson itself.
 *
 * l_json.c converts directly between JSON text and Lua values; until it
 * did, it went through a jansson tree.  That implementation is kept here
 * verbatim as the oracle (jansson_decode, jansson_encode), and
 * tests/lua/test_json.lua compares the two on a corpus (the repository's
 * .json files, an OCI runtime spec, the fixtures when built), on random
 * values and on random mutations of the corpus: same values (even the
 * pairs() order of decoded objects), same failures, byte-identical
 * encodings.  crater.core is loaded from $CRATER_BUILD/crater/core.so.
 */
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>

#include "check.h"

/* --- the jansson-based codec, as l_json.c had it ---------------------------- */

#define JSON_MAX_DEPTH 128

static int array_mt_ref = LUA_NOREF;

static int
json_depth(json_t *j, int depth)
{
  int max = depth;
  if (depth > JSON_MAX_DEPTH)
    return depth;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
      int d = json_depth(v, depth + 1);
      if (d > max)
        max = d;
    }
  } else if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
      int d = json_depth(v, depth + 1);
      if (d > max)
        max = d;
    }
  }
  return max;
}

static void
push_json(lua_State *L, json_t *j, int depth)
{
  if (depth > JSON_MAX_DEPTH)
    luaL_error(L, "json: nesting deeper than %d", JSON_MAX_DEPTH);
  luaL_checkstack(L, 4, "json nesting");
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *v;
    lua_createtable(L, 0, (int) json_object_size(j));
    json_object_foreach(j, k, v)
    {
      push_json(L, v, depth + 1);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *v;
    lua_createtable(L, (int) json_array_size(j), 0);
    json_array_foreach(j, i, v)
    {
      push_json(L, v, depth + 1);
      lua_rawseti(L, -2, (int) i + 1);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, array_mt_ref);
    lua_setmetatable(L, -2);
    break;
  }
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(j), json_string_length(j));
    break;
  case JSON_INTEGER:
    lua_pushnumber(L, (lua_Number) json_integer_value(j));
    break;
  case JSON_REAL:
    lua_pushnumber(L, json_real_value(j));
    break;
  case JSON_TRUE:
    lua_pushboolean(L, 1);
    break;
  case JSON_FALSE:
    lua_pushboolean(L, 0);
    break;
  case JSON_NULL:
    lua_pushlightuserdata(L, NULL);
    break;
  }
}

static int
jansson_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  json_error_t jerr;
  json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (j == NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    lua_pushstring(L, "invalid_argument");
    return 3;
  }
  if (json_depth(j, 0) > JSON_MAX_DEPTH) {
    json_decref(j);
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON: nesting deeper than %d", JSON_MAX_DEPTH);
    lua_pushstring(L, "invalid_argument");
    return 3;
  }
  push_json(L, j, 0);
  json_decref(j);
  return 1;
}

static int
is_array(lua_State *L, int idx, size_t *n)
{
  if (lua_getmetatable(L, idx)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, array_mt_ref);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (eq) {
      *n = lua_objlen(L, idx);
      return 1;
    }
  }
  size_t len = lua_objlen(L, idx);
  if (len == 0)
    return 0;
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    count++;
    lua_pop(L, 1);
  }
  *n = len;
  return count == len;
}

static json_t *
to_json(lua_State *L, int idx, int depth, const char **why)
{
  if (depth > JSON_MAX_DEPTH) {
    *why = "nesting too deep";
    return NULL;
  }
  if (idx < 0)
    idx = lua_gettop(L) + idx + 1;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return json_null();
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL)
      return json_null();
    *why = "cannot encode userdata";
    return NULL;
  case LUA_TBOOLEAN:
    return json_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER: {
    double d = lua_tonumber(L, idx);
    if (isnan(d) || isinf(d)) {
      *why = "cannot encode NaN or infinity";
      return NULL;
    }
    if (d == floor(d) && fabs(d) < 9007199254740992.0)
      return json_integer((json_int_t) d);
    return json_real(d);
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    json_t *j = json_stringn(s, len);
    if (j == NULL)
      *why = "string is not valid UTF-8";
    return j;
  }
  case LUA_TTABLE: {
    luaL_checkstack(L, 4, "json nesting");
    size_t n;
    if (is_array(L, idx, &n)) {
      json_t *a = json_array();
      for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int) i);
        json_t *v = to_json(L, -1, depth + 1, why);
        lua_pop(L, 1);
        if (v == NULL) {
          json_decref(a);
          return NULL;
        }
        json_array_append_new(a, v);
      }
      return a;
    }
    json_t *o = json_object();
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 2);
        json_decref(o);
        *why = "object keys must be strings";
        return NULL;
      }
      json_t *v = to_json(L, -1, depth + 1, why);
      if (v == NULL) {
        lua_pop(L, 2);
        json_decref(o);
        return NULL;
      }
      json_object_set_new(o, lua_tostring(L, -2), v);
      lua_pop(L, 1);
    }
    return o;
  }
  default:
    *why = "cannot encode this Lua type";
    return NULL;
  }
}

static int
jansson_encode(lua_State *L)
{
  luaL_checkany(L, 1);
  int pretty = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "pretty");
    pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  const char *why = NULL;
  json_t *j = to_json(L, 1, 0, &why);
  if (j == NULL)
    return luaL_argerror(L, 1, why ? why : "cannot encode");
  size_t flags = JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_COMPACT;
  if (pretty)
    flags = JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_INDENT(2);
  char *s = json_dumps(j, flags);
  json_decref(j);
  if (s == NULL)
    return luaL_error(L, "json: encoding failed");
  lua_pushstring(L, s);
  free(s);
  return 1;
}

/* --- driver --------------------------------------------------------------- */

int
main(void)
{
  const char *build = getenv("CRATER_BUILD");
  if (build == NULL || *build == '\0')
    SKIP("CRATER_BUILD is not set (run through ctest)");
  /* the source tree: this file is <src>/tests/lua/test_json.c */
  char src[4096];
  snprintf(src, sizeof src, "%s", __FILE__);
  char *cut = strstr(src, "/tests/lua/test_json.c");
  CHECK(cut != NULL);
  *cut = '\0';

  lua_State *L = luaL_newstate();
  CHECK(L != NULL);
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", src, src);
  lua_setfield(L, -2, "path");
  lua_pushfstring(L, "%s/?.so", build);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);

  lua_getglobal(L, "require");
  lua_pushstring(L, "crater.core");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "require crater.core: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_getfield(L, -1, "array_mt");
  CHECK(lua_istable(L, -1));
  array_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);

  lua_register(L, "jansson_decode", jansson_decode);
  lua_register(L, "jansson_encode", jansson_encode);
  lua_pushstring(L, src);
  lua_setglobal(L, "SRC");
  lua_pushstring(L, build);
  lua_setglobal(L, "BUILD");

  char script[4200];
  snprintf(script, sizeof script, "%s/tests/lua/test_json.lua", src);
  if (luaL_loadfile(L, script) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
