/*
 * Helpers shared by the crater.core bindings (src/lua/l_*.c).
 *
 * Conventions (docs/design/lua-errors.md):
 *  - misuse (wrong argument types, closed handles) raises a Lua error via
 *    luaL_argerror / luaL_error;
 *  - expected failures return nil, msg, kind (kind = crater_errkind_name),
 *    produced by crater__lua_fail();
 *  - never longjmp over live C resources: check args, call the core,
 *    release, then push or raise.
 * Core objects are full userdata with a named metatable whose __gc and
 * :close() are idempotent.
 */
#ifndef CRATER_LUA_UTIL_H
#define CRATER_LUA_UTIL_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

#include "common/error.h"
#include "common/labels.h"

/* Pushes nil, err->msg, kind name; releases *err; returns 3. */
int crater__lua_fail(lua_State *L, crater_error_t *err);

/* Creates (once) a metatable named tname with methods and __index = itself. */
void crater__lua_newclass(lua_State *L, const char *tname, const luaL_Reg *methods);

/* Reads an optional table of string->string at idx into *out (appending).
 * Raises on non-string keys/values. */
void crater__lua_check_labels(lua_State *L, int idx, crater_labels_t *out);

/* Reads the optional array of strings at idx into an array owned by Lua: a
 * userdata pushed on the stack (nil when the argument is absent, so the
 * stack grows by one either way), which a later raise cannot leak.  The
 * strings stay anchored by the table at idx.  Raises luaL_argerror(idx,
 * what) on a non-string element. */
const char **crater__lua_check_strings(lua_State *L, int idx, size_t *n, const char *what);

/* Pushes a labels table. */
void crater__lua_push_labels(lua_State *L, const crater_labels_t *l);

/* Optional string field of the table at idx (NULL when absent/nil). */
const char *crater__lua_opt_field_string(lua_State *L, int idx, const char *key);
int64_t crater__lua_opt_field_int(lua_State *L, int idx, const char *key, int64_t dflt);
int crater__lua_opt_field_bool(lua_State *L, int idx, const char *key, int dflt);

/* Reads the options table of a bulk transfer at idx (may be nil):
 * `parallel` (1..256, default dflt) into *parallel, and `on_progress`
 * (a function, left on the stack).  Returns the stack index of
 * on_progress or 0.  Raises (argerror) on bad values. */
int crater__lua_transfer_opts(lua_State *L, int idx, int64_t dflt, int64_t *parallel);

/* Per-domain openers: each adds its functions/classes to the table at -1.
 * "container" and "snapshot" add methods to the crater.store metatable, so
 * they run after "store" (core.c domains[]). */
void crater__lua_open_base(lua_State *L);
void crater__lua_open_fs(lua_State *L);
void crater__lua_open_store(lua_State *L);
void crater__lua_open_container(lua_State *L);
void crater__lua_open_remote(lua_State *L);
/* The crater_remote_t of a `crater.remote` userdata at idx; raises when
 * idx is not one or the client is closed (l_remote.c). */
struct crater_remote_s;
struct crater_remote_s *crater__lua_check_remote(lua_State *L, int idx);
void crater__lua_open_json(lua_State *L);
void crater__lua_open_digest(lua_State *L);
void crater__lua_open_task(lua_State *L);
void crater__lua_open_archive(lua_State *L);
void crater__lua_open_snapshot(lua_State *L);
void crater__lua_open_transfer(lua_State *L);
void crater__lua_open_fetch(lua_State *L);
void crater__lua_open_daemon(lua_State *L);
/* Store behind a crater.store userdata at idx; raises when idx is not one
 * or the store is closed (l_store.c).  The userdata keeps ownership. */
struct crater_store_s;
struct crater_store_s *crater__lua_check_store(lua_State *L, int idx);
/* Store writer behind a crater.content_writer userdata (l_store.c). */
struct crater_store_writer_s *crater__lua_check_store_writer(lua_State *L, int idx);

#endif
