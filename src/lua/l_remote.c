/*
 * Registry transport bindings: core.remote_new{...} returns a
 * `crater.remote` userdata wrapping a crater_remote_t (src/remote/remote.h).
 *
 * Blobs are fetched straight into files named by the caller (the pull
 * workflow passes the content store's ingest `data` files): C appends at the
 * file's current size (resuming with Range), checks sizes while streaming
 * and hashes nothing -- the content store verifies the digest at commit.
 * Progress callbacks run from the transfer loop through lua_pcall, never
 * from inside a curl callback, so no longjmp crosses C resources; an error
 * in the callback cancels the transfers and is raised once everything is
 * released.  Expected failures return nil, msg, kind; misuse raises.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "lua/lua_util.h"
#include "remote/remote.h"

#define REMOTE_MT "crater.remote"

/* The userdata block is a single pointer, NULL once closed; other bindings
 * reach the client through crater__lua_check_remote. */
typedef struct {
  crater_remote_t *c;
} l_remote_t;

struct crater_remote_s *
crater__lua_check_remote(lua_State *L, int idx)
{
  l_remote_t *u = luaL_checkudata(L, idx, REMOTE_MT);
  if (u->c == NULL)
    luaL_error(L, "crater.remote: client is closed");
  return u->c;
}

static crater_remote_t *
check_open(lua_State *L)
{
  return crater__lua_check_remote(L, 1);
}

/* core.remote_new{host=, plain_http=, ca_file=, cert_file=, key_file=,
 *   insecure_skip_verify=, username=, password=, timeout=, retries=,
 *   low_speed_limit=, backoff_ms=, backoff_max_ms=, user_agent=} */
static int
l_remote_new(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  crater_remote_options_t o = { 0 };
  o.host = crater__lua_opt_field_string(L, 1, "host");
  if (o.host == NULL)
    return luaL_argerror(L, 1, "field 'host' is required");
  o.plain_http = crater__lua_opt_field_bool(L, 1, "plain_http", 0);
  o.ca_file = crater__lua_opt_field_string(L, 1, "ca_file");
  o.cert_file = crater__lua_opt_field_string(L, 1, "cert_file");
  o.key_file = crater__lua_opt_field_string(L, 1, "key_file");
  o.insecure_skip_verify = crater__lua_opt_field_bool(L, 1, "insecure_skip_verify", 0);
  o.username = crater__lua_opt_field_string(L, 1, "username");
  o.password = crater__lua_opt_field_string(L, 1, "password");
  o.user_agent = crater__lua_opt_field_string(L, 1, "user_agent");
  int64_t timeout = crater__lua_opt_field_int(L, 1, "timeout", 0);
  if (timeout > 0) {
    o.connect_timeout_ms = (long) timeout * 1000;
    o.low_speed_time = (long) timeout;
  }
  int64_t retries = crater__lua_opt_field_int(L, 1, "retries", -2);
  if (retries != -2)
    o.retries = retries <= 0 ? -1 : (int) retries; /* explicit 0: no retries */
  o.low_speed_limit = (long) crater__lua_opt_field_int(L, 1, "low_speed_limit", 0);
  o.backoff_base_ms = (long) crater__lua_opt_field_int(L, 1, "backoff_ms", 0);
  o.backoff_max_ms = (long) crater__lua_opt_field_int(L, 1, "backoff_max_ms", 0);

  l_remote_t *u = lua_newuserdata(L, sizeof *u);
  u->c = NULL;
  luaL_getmetatable(L, REMOTE_MT);
  lua_setmetatable(L, -2);
  crater_error_t err = NULL;
  u->c = crater_remote_new(&o, &err);
  if (u->c == NULL)
    return crater__lua_fail(L, &err);
  return 1;
}

static int
l_remote_close(lua_State *L)
{
  l_remote_t *u = luaL_checkudata(L, 1, REMOTE_MT);
  crater_remote_free(u->c);
  u->c = NULL;
  return 0;
}

static int
l_remote_tostring(lua_State *L)
{
  l_remote_t *u = luaL_checkudata(L, 1, REMOTE_MT);
  lua_pushfstring(L, "crater.remote (%s)", u->c ? "open" : "closed");
  return 1;
}

/* r:ping() -> true | nil, msg, kind */
static int
l_ping(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  crater_error_t err = NULL;
  if (crater_remote_ping(c, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static void
push_desc(lua_State *L, const crater_remote_descriptor_t *d)
{
  lua_createtable(L, 0, 3);
  lua_pushstring(L, d->media_type ? d->media_type : "");
  lua_setfield(L, -2, "media_type");
  lua_pushstring(L, d->digest);
  lua_setfield(L, -2, "digest");
  lua_pushnumber(L, (lua_Number) d->size);
  lua_setfield(L, -2, "size");
}

/* r:resolve(repo, ref) -> {media_type=, digest=, size=} | nil, msg, kind */
static int
l_resolve(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  const char *repo = luaL_checkstring(L, 2);
  const char *ref = luaL_checkstring(L, 3);
  crater_remote_descriptor_t d = { 0 };
  crater_error_t err = NULL;
  if (crater_remote_resolve(c, repo, ref, &d, &err) < 0)
    return crater__lua_fail(L, &err);
  push_desc(L, &d);
  crater_remote_descriptor_clear(&d);
  return 1;
}

/* r:fetch_manifest(repo, ref, {accept=}) -> body, media_type, digest | nil, msg, kind */
static int
l_fetch_manifest(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  const char *repo = luaL_checkstring(L, 2);
  const char *ref = luaL_checkstring(L, 3);
  if (!lua_isnoneornil(L, 4))
    luaL_checktype(L, 4, LUA_TTABLE);
  /* accept: a string or a list of media types, joined with ", " */
  const char *accept = NULL;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "accept");
    if (lua_istable(L, -1)) {
      int t = lua_gettop(L);
      size_t n = lua_objlen(L, t);
      lua_pushliteral(L, "");
      for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, t, (int) i);
        if (lua_type(L, -1) != LUA_TSTRING)
          return luaL_argerror(L, 4, "accept must be a string or a list of strings");
        if (i > 1) {
          lua_pushliteral(L, ", ");
          lua_insert(L, -2);
          lua_concat(L, 3);
        } else {
          lua_concat(L, 2);
        }
      }
      lua_replace(L, t);
    }
    if (lua_type(L, -1) == LUA_TSTRING)
      accept = lua_tostring(L, -1); /* stays on the stack */
    else if (!lua_isnil(L, -1))
      return luaL_argerror(L, 4, "accept must be a string or a list of strings");
    if (accept && strpbrk(accept, "\r\n"))
      return luaL_argerror(L, 4, "accept must not contain newlines");
  }

  char *body = NULL;
  size_t len = 0;
  crater_remote_descriptor_t d = { 0 };
  crater_error_t err = NULL;
  if (crater_remote_fetch_manifest(c, repo, ref, accept, &body, &len, &d, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushlstring(L, body, len);
  free(body);
  if (d.media_type)
    lua_pushstring(L, d.media_type);
  else
    lua_pushnil(L);
  lua_pushstring(L, d.digest);
  crater_remote_descriptor_clear(&d);
  return 3;
}

/* ---- fetch_blobs ------------------------------------------------------------ */

typedef struct {
  lua_State *L;
  int fn;         /* stack index of on_progress or 0 */
  size_t *map;    /* request index -> item index */
  char *cb_error; /* first error raised by on_progress */
} progress_ctx_t;

static int
progress_cb(void *ud, size_t i, int64_t done, int64_t total)
{
  progress_ctx_t *p = ud;
  if (p->fn == 0 || p->cb_error)
    return p->cb_error != NULL;
  lua_State *L = p->L;
  lua_pushvalue(L, p->fn);
  lua_pushinteger(L, (lua_Integer) p->map[i] + 1);
  lua_pushnumber(L, (lua_Number) done);
  lua_pushnumber(L, (lua_Number) total);
  if (lua_pcall(L, 3, 0, 0) != 0) {
    const char *m = lua_tostring(L, -1);
    p->cb_error = xstrdup(m ? m : "error in on_progress");
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

/* r:fetch_blobs(repo, { {digest=, size=, path=, repo=?}, ... },
 *               {parallel=n, on_progress=function(i, done, total)})
 *   -> { {ok=true, size=n} | {err=msg, kind=k}, ... } */
static int
l_fetch_blobs(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  const char *repo = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  if (!lua_isnoneornil(L, 4))
    luaL_checktype(L, 4, LUA_TTABLE);
  int64_t parallel;
  int fn = crater__lua_transfer_opts(L, 4, 4, &parallel);
  /* validate every item before anything is allocated (raising is safe) */
  size_t n = lua_objlen(L, 3);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, (int) i);
    if (!lua_istable(L, -1))
      return luaL_error(L, "fetch_blobs: item %d is not a table", (int) i);
    int t = lua_gettop(L);
    lua_getfield(L, t, "digest");
    lua_getfield(L, t, "path");
    lua_getfield(L, t, "size");
    lua_getfield(L, t, "repo");
    if (lua_type(L, -4) != LUA_TSTRING || lua_type(L, -3) != LUA_TSTRING)
      return luaL_error(L, "fetch_blobs: item %d needs string digest and path", (int) i);
    if (!lua_isnil(L, -2) && !lua_isnumber(L, -2))
      return luaL_error(L, "fetch_blobs: item %d: size must be a number", (int) i);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "fetch_blobs: item %d: repo must be a string", (int) i);
    lua_pop(L, 5);
  }

  /* copy what C keeps: the progress callback may change the items table */
  crater_remote_fetch_t *reqs = xcalloc(n ? n : 1, sizeof *reqs);
  crater_remote_file_sink_t *sinks = xcalloc(n ? n : 1, sizeof *sinks);
  crater_error_t *errs = xcalloc(n ? n : 1, sizeof *errs);
  char **strs = xcalloc(3 * (n ? n : 1), sizeof *strs);
  size_t nreq = 0;
  size_t *map = xcalloc(n ? n : 1, sizeof *map); /* req index -> item index */
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 3, (int) i + 1);
    int t = lua_gettop(L);
    lua_getfield(L, t, "digest");
    lua_getfield(L, t, "path");
    lua_getfield(L, t, "size");
    lua_getfield(L, t, "repo");
    strs[3 * i] = xstrdup(lua_tostring(L, -4));
    strs[3 * i + 1] = xstrdup(lua_tostring(L, -3));
    int64_t size = lua_isnil(L, -2) ? -1 : (int64_t) lua_tonumber(L, -2);
    strs[3 * i + 2] = xstrdup(lua_isnil(L, -1) ? repo : lua_tostring(L, -1));
    lua_pop(L, 5);
    sinks[i].fd = -1;
    if (crater_remote_file_sink_open(&sinks[i], strs[3 * i + 1], &errs[i]) < 0)
      continue;
    reqs[nreq].repo = strs[3 * i + 2];
    reqs[nreq].digest = strs[3 * i];
    reqs[nreq].size = size;
    reqs[nreq].sink = &sinks[i].sink;
    map[nreq] = i;
    nreq++;
  }

  /* errors of the requests come back in request order; move them to items */
  crater_error_t *rerrs = xcalloc(nreq ? nreq : 1, sizeof *rerrs);
  progress_ctx_t pc = { .L = L, .fn = fn, .map = map };
  crater_error_t err = NULL;
  crater_remote_fetch_many(c, reqs, nreq, (size_t) parallel, fn ? progress_cb : NULL, &pc, rerrs,
                           &err);
  crater_error_release(&err);
  for (size_t k = 0; k < nreq; k++)
    if (rerrs[k])
      crater_error_move(&errs[map[k]], &rerrs[k]);

  /* close the files (a close error counts for that item) */
  for (size_t i = 0; i < n; i++) {
    if (sinks[i].fd >= 0) {
      crater_error_t ce = NULL;
      crater_remote_file_sink_close(&sinks[i], &ce);
      if (ce && errs[i] == NULL)
        crater_error_move(&errs[i], &ce);
      crater_error_release(&ce);
    }
  }

  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    if (errs[i]) {
      lua_pushstring(L, errs[i]->msg);
      lua_setfield(L, -2, "err");
      lua_pushstring(L, crater_errkind_name(errs[i]->kind));
      lua_setfield(L, -2, "kind");
    } else {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "ok");
      lua_pushnumber(L, (lua_Number) sinks[i].size);
      lua_setfield(L, -2, "size");
    }
    lua_rawseti(L, -2, (int) i + 1);
    crater_error_release(&errs[i]);
  }
  for (size_t i = 0; i < 3 * n; i++)
    free(strs[i]);
  free(strs);
  free(reqs);
  free(sinks);
  free(errs);
  free(rerrs);
  free(map);
  if (pc.cb_error) {
    lua_pushfstring(L, "fetch_blobs: on_progress: %s", pc.cb_error);
    free(pc.cb_error);
    return lua_error(L);
  }
  return 1;
}

/* r:blob_exists(repo, digest) -> bool | nil, msg, kind */
static int
l_blob_exists(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  const char *repo = luaL_checkstring(L, 2);
  const char *digest = luaL_checkstring(L, 3);
  crater_error_t err = NULL;
  int r = crater_remote_blob_exists(c, repo, digest, &err);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, r);
  return 1;
}

/* r:push_blob(repo, digest, size, path, {mount_from=, chunk_size=})
 *   -> "exists" | "mounted" | "uploaded" | nil, msg, kind */
static int
l_push_blob(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  const char *repo = luaL_checkstring(L, 2);
  const char *digest = luaL_checkstring(L, 3);
  int64_t size = (int64_t) luaL_checknumber(L, 4);
  const char *path = luaL_checkstring(L, 5);
  if (!lua_isnoneornil(L, 6))
    luaL_checktype(L, 6, LUA_TTABLE);
  crater_remote_push_opts_t o = { 0 };
  o.mount_from = crater__lua_opt_field_string(L, 6, "mount_from");
  o.chunk_size = crater__lua_opt_field_int(L, 6, "chunk_size", 0);
  if (size < 0)
    return luaL_argerror(L, 4, "size must be >= 0");
  crater_error_t err = NULL;
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    crater_error_sys(&err, errno, "push blob: open %s", path);
    return crater__lua_fail(L, &err);
  }
  int r = crater_remote_push_blob(c, repo, digest, size, fd, &o, &err);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, r == CRATER_REMOTE_PUSH_EXISTS    ? "exists"
                    : r == CRATER_REMOTE_PUSH_MOUNTED ? "mounted"
                                                      : "uploaded");
  return 1;
}

/* r:push_manifest(repo, ref, body, media_type) -> digest | nil, msg, kind */
static int
l_push_manifest(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  const char *repo = luaL_checkstring(L, 2);
  const char *ref = luaL_checkstring(L, 3);
  size_t len = 0;
  const char *body = luaL_checklstring(L, 4, &len);
  const char *mt = luaL_checkstring(L, 5);
  char *digest = NULL;
  crater_error_t err = NULL;
  if (crater_remote_push_manifest(c, repo, ref, body, len, mt, &digest, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, digest);
  free(digest);
  return 1;
}

/* r:list_tags(repo) -> { "tag", ... } | nil, msg, kind */
static int
l_list_tags(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  const char *repo = luaL_checkstring(L, 2);
  char **tags = NULL;
  size_t n = 0;
  crater_error_t err = NULL;
  if (crater_remote_list_tags(c, repo, &tags, &n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, tags[i]);
    lua_rawseti(L, -2, (int) i + 1);
    free(tags[i]);
  }
  free(tags);
  return 1;
}

/* r:stats() -> {requests=, token_requests=, retries=, resumes=} */
static int
l_stats(lua_State *L)
{
  crater_remote_t *c = check_open(L);
  crater_remote_stats_t s;
  crater_remote_stats(c, &s);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, s.requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, s.token_requests);
  lua_setfield(L, -2, "token_requests");
  lua_pushinteger(L, s.retries);
  lua_setfield(L, -2, "retries");
  lua_pushinteger(L, s.resumes);
  lua_setfield(L, -2, "resumes");
  return 1;
}

void
crater__lua_open_remote(lua_State *L)
{
  static const luaL_Reg methods[] = {
    { "close", l_remote_close },
    { "__gc", l_remote_close },
    { "__tostring", l_remote_tostring },
    { "ping", l_ping },
    { "resolve", l_resolve },
    { "fetch_manifest", l_fetch_manifest },
    { "fetch_blobs", l_fetch_blobs },
    { "blob_exists", l_blob_exists },
    { "push_blob", l_push_blob },
    { "push_manifest", l_push_manifest },
    { "list_tags", l_list_tags },
    { "stats", l_stats },
    { NULL, NULL },
  };
  crater__lua_newclass(L, REMOTE_MT, methods);
  lua_pushcfunction(L, l_remote_new);
  lua_setfield(L, -2, "remote_new");
}
