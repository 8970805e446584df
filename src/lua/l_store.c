/*
 * crater.core store bindings: core.open(root) returns a `crater.store`
 * userdata whose methods map one to one onto src/metadata/store.h, plus
 * the `crater.content_writer` userdata.  Other files add methods to the
 * same metatable from their openers (which core.c runs after this one):
 * container_* (l_container.c) and snapshot_* (l_snapshot.c), so one client
 * has one SQLite connection.  The Lua objects users see are built on these
 * in lua/crater/.
 *
 * Conventions (src/lua/lua_util.h): misuse raises; expected failures
 * return nil, msg, kind.  Every method checks and copies its arguments
 * first, then calls the core, releases C resources, and only then pushes
 * results or raises, so no longjmp crosses live C resources.  Namespaces
 * are passed explicitly as the first argument after self.  Timestamps are
 * seconds since the epoch (float).
 *
 * A writer keeps its store alive (uservalue); closing the store while
 * writers are open defers the real close until the last writer is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "lua/lua_util.h"
#include "metadata/store.h"

#define STORE_MT "crater.store"
#define WRITER_MT "crater.content_writer"

typedef struct {
  crater_store_t *s;
  int nwriters;
  bool close_requested;
} lstore_t;

typedef struct {
  crater_store_writer_t *w;
  lstore_t *st;
} lwriter_t;

static double
secs(int64_t ns)
{
  return (double) ns / 1e9;
}

/* The open crater.store userdata at idx; raises when idx is not one or
 * the store is closed. */
static lstore_t *
check_store_at(lua_State *L, int idx)
{
  lstore_t *st = luaL_checkudata(L, idx, STORE_MT);
  if (st->s == NULL || st->close_requested)
    luaL_error(L, "crater.store: used after close");
  return st;
}

static lstore_t *
check_store(lua_State *L)
{
  return check_store_at(L, 1);
}

/* The store behind the crater.store userdata at idx, for the bindings that
 * add methods to it from other files (l_container.c, l_snapshot.c). */
crater_store_t *
crater__lua_check_store(lua_State *L, int idx)
{
  return check_store_at(L, idx)->s;
}

static lwriter_t *
check_writer(lua_State *L)
{
  lwriter_t *w = luaL_checkudata(L, 1, WRITER_MT);
  if (w->w == NULL)
    luaL_error(L, "crater.content_writer: used after close");
  return w;
}

static void
store_release(lstore_t *st)
{
  if (st->s && st->nwriters == 0) {
    crater_store_close(st->s);
    st->s = NULL;
  }
}

static void
push_ok(lua_State *L)
{
  lua_pushboolean(L, 1);
}

static void
set_num(lua_State *L, const char *k, double v)
{
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void
set_str(lua_State *L, const char *k, const char *v)
{
  if (v == NULL)
    return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* ---- core.open ---------------------------------------------------------- */

static int
l_open(lua_State *L)
{
  const char *root = luaL_checkstring(L, 1);
  lstore_t *st = lua_newuserdata(L, sizeof *st);
  memset(st, 0, sizeof *st);
  luaL_getmetatable(L, STORE_MT);
  lua_setmetatable(L, -2);
  crater_error_t err = NULL;
  st->s = crater_store_open(root, &err);
  if (st->s == NULL)
    return crater__lua_fail(L, &err);
  return 1;
}

static int
l_store_close(lua_State *L)
{
  lstore_t *st = luaL_checkudata(L, 1, STORE_MT);
  st->close_requested = true;
  store_release(st);
  return 0;
}

static int
l_store_root(lua_State *L)
{
  lstore_t *st = check_store(L);
  lua_pushstring(L, crater_store_root(st->s));
  return 1;
}

/* ---- namespaces ------------------------------------------------------------ */

static void
push_namespace(lua_State *L, const crater_namespace_t *ns)
{
  lua_createtable(L, 0, 4);
  set_str(L, "name", ns->name);
  crater__lua_push_labels(L, &ns->labels);
  lua_setfield(L, -2, "labels");
  set_num(L, "created_at", secs(ns->created_at));
  set_num(L, "updated_at", secs(ns->updated_at));
}

static int
l_namespace_create(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *name = luaL_checkstring(L, 2);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 3, &labels);
  crater_error_t err = NULL;
  int r = crater_store_namespace_create(st->s, name, &labels, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_namespace_list(lua_State *L)
{
  lstore_t *st = check_store(L);
  crater_namespace_t *arr;
  size_t n;
  crater_error_t err = NULL;
  if (crater_store_namespace_list(st->s, &arr, &n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    push_namespace(L, &arr[i]);
    lua_rawseti(L, -2, (int) i + 1);
  }
  crater_namespaces_free(arr, n);
  return 1;
}

static int
l_namespace_get(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *name = luaL_checkstring(L, 2);
  crater_namespace_t ns;
  crater_error_t err = NULL;
  if (crater_store_namespace_get(st->s, name, &ns, &err) < 0)
    return crater__lua_fail(L, &err);
  push_namespace(L, &ns);
  crater_namespace_clear(&ns);
  return 1;
}

static int
l_namespace_delete(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *name = luaL_checkstring(L, 2);
  crater_error_t err = NULL;
  if (crater_store_namespace_delete(st->s, name, &err) < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_namespace_set_labels(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *name = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  bool replace = lua_toboolean(L, 4);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 3, &labels);
  crater_error_t err = NULL;
  int r = crater_store_namespace_set_labels(st->s, name, &labels, replace, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

/* ---- content ------------------------------------------------------------------ */

static void
push_record(lua_State *L, const crater_content_record_t *r)
{
  lua_createtable(L, 0, 5);
  set_str(L, "digest", r->digest);
  set_num(L, "size", (double) r->size);
  set_num(L, "created_at", secs(r->created_at));
  set_num(L, "updated_at", secs(r->updated_at));
  crater__lua_push_labels(L, &r->labels);
  lua_setfield(L, -2, "labels");
}

static int
l_content_info(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *dg = luaL_checkstring(L, 3);
  crater_content_record_t rec;
  crater_error_t err = NULL;
  if (crater_store_content_info(st->s, ns, dg, &rec, &err) < 0)
    return crater__lua_fail(L, &err);
  push_record(L, &rec);
  crater_content_record_clear(&rec);
  return 1;
}

static int
l_content_list(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  size_t nf;
  const char **filters =
      crater__lua_check_strings(L, 3, &nf, "filters must be an array of strings");
  crater_content_record_t *arr;
  size_t n;
  crater_error_t err = NULL;
  if (crater_store_content_list(st->s, ns, filters, nf, &arr, &n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    push_record(L, &arr[i]);
    lua_rawseti(L, -2, (int) i + 1);
  }
  crater_content_records_free(arr, n);
  return 1;
}

static int
l_content_read(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *dg = luaL_checkstring(L, 3);
  lua_Number off = luaL_optnumber(L, 4, 0);
  if (off < 0)
    luaL_argerror(L, 4, "offset must be >= 0");
  lua_Number len = luaL_optnumber(L, 5, -1); /* nil or < 0: to the end */
  crater_error_t err = NULL;
  if (len < 0) { /* to the end */
    crater_content_record_t rec;
    if (crater_store_content_info(st->s, ns, dg, &rec, &err) < 0)
      return crater__lua_fail(L, &err);
    len = rec.size > off ? (lua_Number) rec.size - off : 0;
    crater_content_record_clear(&rec);
  }
  char *buf = lua_newuserdata(L, (size_t) len + 1); /* Lua-owned: no leak on raise */
  ssize_t got = crater_store_content_read(st->s, ns, dg, (int64_t) off, buf, (size_t) len, &err);
  if (got < 0)
    return crater__lua_fail(L, &err);
  lua_pushlstring(L, buf, (size_t) got);
  return 1;
}

static int
l_content_path(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *dg = luaL_checkstring(L, 3);
  crater_error_t err = NULL;
  char *p = crater_store_content_path(st->s, ns, dg, &err);
  if (p == NULL)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, p);
  free(p);
  return 1;
}

static int
l_content_set_labels(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *dg = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  bool replace = lua_toboolean(L, 5);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 4, &labels);
  crater_error_t err = NULL;
  int r = crater_store_content_set_labels(st->s, ns, dg, &labels, replace, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_content_add(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *dg = luaL_checkstring(L, 3);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 4, &labels);
  crater_error_t err = NULL;
  int r = crater_store_content_add(st->s, ns, dg, &labels, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_content_delete(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *dg = luaL_checkstring(L, 3);
  crater_error_t err = NULL;
  if (crater_store_content_delete(st->s, ns, dg, &err) < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_content_status(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  crater_ingest_status_t *arr;
  size_t n;
  crater_error_t err = NULL;
  if (crater_store_content_status(st->s, ns, &arr, &n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 7);
    set_str(L, "ref", arr[i].ref);
    set_num(L, "offset", (double) arr[i].offset);
    set_num(L, "total", (double) arr[i].total);
    set_str(L, "expected", arr[i].expected);
    set_num(L, "started_at", secs(arr[i].started_at));
    set_num(L, "updated_at", secs(arr[i].updated_at));
    lua_pushboolean(L, arr[i].active);
    lua_setfield(L, -2, "active");
    lua_rawseti(L, -2, (int) i + 1);
  }
  crater_ingest_status_free(arr, n);
  return 1;
}

static int
l_content_abort(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *ref = luaL_checkstring(L, 3);
  crater_error_t err = NULL;
  if (crater_store_content_abort(st->s, ns, ref, &err) < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_content_writer(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *ref = luaL_checkstring(L, 3);
  if (!lua_isnoneornil(L, 4))
    luaL_checktype(L, 4, LUA_TTABLE);
  const char *expected = crater__lua_opt_field_string(L, 4, "expected");
  int64_t size = crater__lua_opt_field_int(L, 4, "size", 0);
  lwriter_t *w = lua_newuserdata(L, sizeof *w); /* before the core call */
  memset(w, 0, sizeof *w);
  luaL_getmetatable(L, WRITER_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_setfenv(L, -2); /* the writer keeps its store alive */
  crater_error_t err = NULL;
  w->w = crater_store_writer_open(st->s, ns, ref, expected, size, &err);
  if (w->w == NULL)
    return crater__lua_fail(L, &err);
  w->st = st;
  st->nwriters++;
  return 1;
}

static const char *
status_name(int r)
{
  return r == CRATER_CONTENT_EXISTS ? "exists" : "committed";
}

static int
l_content_ingest_file(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *ref = luaL_checkstring(L, 3);
  const char *path = luaL_optstring(L, 4, NULL);
  if (!lua_isnoneornil(L, 5))
    luaL_checktype(L, 5, LUA_TTABLE);
  const char *expected = crater__lua_opt_field_string(L, 5, "expected");
  int64_t size = crater__lua_opt_field_int(L, 5, "size", -1);
  crater_labels_t labels = { 0 };
  if (lua_istable(L, 5)) {
    lua_getfield(L, 5, "labels");
    crater__lua_check_labels(L, lua_gettop(L), &labels);
    lua_pop(L, 1);
  }
  crater_error_t err = NULL;
  int fd = 0;
  if (path && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    crater_labels_clear(&labels);
    crater_error_sys(&err, errno, "ingest %s: open %s", ref, path);
    return crater__lua_fail(L, &err);
  }
  char dg[CRATER_DIGEST_MAX];
  int r = crater_store_content_ingest_fd(st->s, ns, ref, fd, expected, size, &labels, dg, &err);
  if (path)
    close(fd);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, dg);
  lua_pushstring(L, status_name(r));
  return 2;
}

/* ---- writer ---------------------------------------------------------------------- */

/* The store writer behind the crater.content_writer at idx (raises when it
 * is not an open writer); for bindings that stream into ingests without a
 * Lua round trip per chunk (l_transfer.c).  The userdata keeps ownership. */
crater_store_writer_t *
crater__lua_check_store_writer(lua_State *L, int idx)
{
  lwriter_t *w = luaL_checkudata(L, idx, WRITER_MT);
  if (w->w == NULL)
    luaL_error(L, "crater.content_writer: used after close");
  return w->w;
}

static void
writer_release(lwriter_t *w, bool abort)
{
  if (w->w == NULL)
    return;
  if (abort)
    crater_store_writer_abort(w->w, NULL);
  else
    crater_store_writer_close(w->w);
  w->w = NULL;
  w->st->nwriters--;
  if (w->st->close_requested)
    store_release(w->st);
}

static int
l_writer_write(lua_State *L)
{
  lwriter_t *w = check_writer(L);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  crater_error_t err = NULL;
  if (crater_content_writer_write(crater_store_writer_content(w->w), data, n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushnumber(L, (double) n);
  return 1;
}

static int
l_writer_offset(lua_State *L)
{
  lwriter_t *w = check_writer(L);
  lua_pushnumber(L, (double) crater_content_writer_offset(crater_store_writer_content(w->w)));
  return 1;
}

static int
l_writer_digest(lua_State *L)
{
  lwriter_t *w = check_writer(L);
  char dg[CRATER_DIGEST_MAX];
  crater_error_t err = NULL;
  if (crater_content_writer_digest(crater_store_writer_content(w->w), dg, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushstring(L, dg);
  return 1;
}

static int
l_writer_commit(lua_State *L)
{
  lwriter_t *w = check_writer(L);
  int64_t size = lua_isnoneornil(L, 2) ? -1 : (int64_t) luaL_checknumber(L, 2);
  const char *expected = luaL_optstring(L, 3, NULL);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 4, &labels);
  char dg[CRATER_DIGEST_MAX];
  crater_error_t err = NULL;
  int r = crater_store_writer_commit(w->w, size, expected, &labels, dg, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  writer_release(w, false); /* the ingest is gone; nothing left to resume */
  lua_pushstring(L, dg);
  lua_pushstring(L, status_name(r));
  return 2;
}

static int
l_writer_close(lua_State *L)
{
  lwriter_t *w = luaL_checkudata(L, 1, WRITER_MT);
  writer_release(w, false);
  return 0;
}

static int
l_writer_abort(lua_State *L)
{
  lwriter_t *w = check_writer(L);
  writer_release(w, true);
  push_ok(L);
  return 1;
}

/* ---- images -------------------------------------------------------------------- */

static void
push_image(lua_State *L, const crater_image_t *img)
{
  lua_createtable(L, 0, 5);
  set_str(L, "name", img->name);
  lua_createtable(L, 0, 3);
  set_str(L, "media_type", img->media_type);
  set_str(L, "digest", img->digest);
  set_num(L, "size", (double) img->size);
  lua_setfield(L, -2, "target");
  crater__lua_push_labels(L, &img->labels);
  lua_setfield(L, -2, "labels");
  set_num(L, "created_at", secs(img->created_at));
  set_num(L, "updated_at", secs(img->updated_at));
}

/* Reads {name=, target={media_type=, digest=, size=}, labels=} at idx.
 * Strings stay anchored by the table; labels are copied (caller clears). */
static void
check_image(lua_State *L, int idx, crater_image_t *img)
{
  luaL_checktype(L, idx, LUA_TTABLE);
  memset(img, 0, sizeof *img);
  img->name = (char *) crater__lua_opt_field_string(L, idx, "name");
  if (img->name == NULL)
    luaL_argerror(L, idx, "image needs a name");
  lua_getfield(L, idx, "target");
  if (!lua_istable(L, -1))
    luaL_argerror(L, idx, "image needs a target table");
  int t = lua_gettop(L);
  img->media_type = (char *) crater__lua_opt_field_string(L, t, "media_type");
  img->digest = (char *) crater__lua_opt_field_string(L, t, "digest");
  img->size = crater__lua_opt_field_int(L, t, "size", -1);
  if (img->media_type == NULL || img->digest == NULL || img->size < 0)
    luaL_argerror(L, idx, "image target needs media_type, digest and size");
  lua_pop(L, 1);
  lua_getfield(L, idx, "labels");
  crater__lua_check_labels(L, lua_gettop(L), &img->labels); /* last: may raise */
  lua_pop(L, 1);
}

static int
image_write(lua_State *L, bool create)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  crater_image_t img;
  check_image(L, 3, &img);
  crater_error_t err = NULL;
  int r = create ? crater_store_image_create(st->s, ns, &img, &err)
                 : crater_store_image_update(st->s, ns, &img, &err);
  crater_labels_clear(&img.labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  crater_image_t out;
  r = crater_store_image_get(st->s, ns, img.name, &out, &err);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_image(L, &out);
  crater_image_clear(&out);
  return 1;
}

static int
l_image_create(lua_State *L)
{
  return image_write(L, true);
}

static int
l_image_update(lua_State *L)
{
  return image_write(L, false);
}

static int
l_image_get(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *name = luaL_checkstring(L, 3);
  crater_image_t img;
  crater_error_t err = NULL;
  if (crater_store_image_get(st->s, ns, name, &img, &err) < 0)
    return crater__lua_fail(L, &err);
  push_image(L, &img);
  crater_image_clear(&img);
  return 1;
}

static int
l_image_list(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  size_t nf;
  const char **filters =
      crater__lua_check_strings(L, 3, &nf, "filters must be an array of strings");
  crater_image_t *arr;
  size_t n;
  crater_error_t err = NULL;
  if (crater_store_image_list(st->s, ns, filters, nf, &arr, &n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    push_image(L, &arr[i]);
    lua_rawseti(L, -2, (int) i + 1);
  }
  crater_images_free(arr, n);
  return 1;
}

static int
l_image_delete(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *name = luaL_checkstring(L, 3);
  crater_error_t err = NULL;
  if (crater_store_image_delete(st->s, ns, name, &err) < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

/* ---- leases --------------------------------------------------------------------- */

static int
l_lease_create(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *id = luaL_checkstring(L, 3);
  lua_Number expire = luaL_optnumber(L, 5, 0);
  crater_labels_t labels = { 0 };
  crater__lua_check_labels(L, 4, &labels);
  crater_error_t err = NULL;
  int r = crater_store_lease_create(st->s, ns, id, &labels, (int64_t) expire, &err);
  crater_labels_clear(&labels);
  if (r < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_lease_list(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2);
  crater_lease_t *arr;
  size_t n;
  crater_error_t err = NULL;
  if (crater_store_lease_list(st->s, ns, &arr, &n, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 5);
    set_str(L, "id", arr[i].id);
    crater__lua_push_labels(L, &arr[i].labels);
    lua_setfield(L, -2, "labels");
    set_num(L, "created_at", secs(arr[i].created_at));
    if (arr[i].expire_at)
      set_num(L, "expire_at", secs(arr[i].expire_at));
    lua_createtable(L, (int) arr[i].nresources, 0);
    for (size_t j = 0; j < arr[i].nresources; j++) {
      lua_createtable(L, 0, 2);
      set_str(L, "kind", arr[i].resources[j].kind);
      set_str(L, "key", arr[i].resources[j].key);
      lua_rawseti(L, -2, (int) j + 1);
    }
    lua_setfield(L, -2, "resources");
    lua_rawseti(L, -2, (int) i + 1);
  }
  crater_leases_free(arr, n);
  return 1;
}

static int
l_lease_delete(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *id = luaL_checkstring(L, 3);
  crater_error_t err = NULL;
  if (crater_store_lease_delete(st->s, ns, id, &err) < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

static int
l_lease_add_resource(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *ns = luaL_checkstring(L, 2), *id = luaL_checkstring(L, 3);
  const char *kind = luaL_checkstring(L, 4), *key = luaL_checkstring(L, 5);
  crater_error_t err = NULL;
  if (crater_store_lease_add_resource(st->s, ns, id, kind, key, &err) < 0)
    return crater__lua_fail(L, &err);
  push_ok(L);
  return 1;
}

/* ---- check ------------------------------------------------------------------------ */

static void
push_items(lua_State *L, const char *field, const crater_check_item_t *items, size_t n, int shape)
{
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    if (shape == 0) { /* corrupt */
      lua_createtable(L, 0, 2);
      set_str(L, "digest", items[i].digest);
      set_str(L, "actual", items[i].detail);
    } else if (shape == 1) { /* orphans */
      lua_pushstring(L, items[i].digest);
    } else if (shape == 2) { /* missing */
      lua_createtable(L, 0, 2);
      set_str(L, "namespace", items[i].ns);
      set_str(L, "digest", items[i].digest);
    } else { /* stale ingests */
      lua_pushstring(L, items[i].detail);
    }
    lua_rawseti(L, -2, (int) i + 1);
  }
  lua_setfield(L, -2, field);
}

static int
l_check(lua_State *L)
{
  lstore_t *st = check_store(L);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  crater_check_opts_t o = {
    .quick = crater__lua_opt_field_bool(L, 2, "quick", 0),
    .repair = crater__lua_opt_field_bool(L, 2, "repair", 0),
    .stale_after_s = crater__lua_opt_field_int(L, 2, "stale_after", 0),
  };
  crater_check_report_t rep;
  crater_error_t err = NULL;
  if (crater_store_check(st->s, &o, &rep, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_createtable(L, 0, 6);
  set_num(L, "checked", (double) rep.checked);
  push_items(L, "corrupt", rep.corrupt, rep.ncorrupt, 0);
  push_items(L, "orphans", rep.orphans, rep.norphans, 1);
  push_items(L, "missing", rep.missing, rep.nmissing, 2);
  push_items(L, "stale_ingests", rep.stale, rep.nstale, 3);
  lua_pushboolean(L, rep.repaired);
  lua_setfield(L, -2, "repaired");
  crater_check_report_clear(&rep);
  return 1;
}

/* store:statements() -> {sql...}: the SQL of the connection's cached
 * statements.  store:warm_statements({sql...}) -> n: prepares those (never
 * runs them); how many are cached now.  For `crater daemon` workers. */
static int
l_statements(lua_State *L)
{
  lstore_t *st = check_store(L);
  const char *sql[128];
  size_t n = crater_db_cached_sql(crater_store_db(st->s), sql, 128);
  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, sql[i]);
    lua_rawseti(L, -2, (int) i + 1);
  }
  return 1;
}

/* store:in_transaction() -> bool: whether a transaction is open on the
 * connection (a `crater daemon` worker checks between commands). */
static int
l_in_transaction(lua_State *L)
{
  lstore_t *st = check_store(L);
  lua_pushboolean(L, sqlite3_get_autocommit(crater_db_handle(crater_store_db(st->s))) == 0);
  return 1;
}

static int
l_warm_statements(lua_State *L)
{
  lstore_t *st = check_store(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = 0;
  for (int i = 1;; i++) {
    lua_rawgeti(L, 2, i);
    const char *sql = lua_tostring(L, -1);
    if (sql == NULL) {
      lua_pop(L, 1);
      break;
    }
    n += crater_db_warm(crater_store_db(st->s), sql) ? 1 : 0;
    lua_pop(L, 1);
  }
  lua_pushinteger(L, n);
  return 1;
}

/* store:checkpoint([min_frames]) -> true: the WAL into the database, then
 * truncated, waiting for nobody, when it holds min_frames frames or more
 * (a `crater daemon` janitor's, while it is idle). */
static int
l_checkpoint(lua_State *L)
{
  lstore_t *st = check_store(L);
  int min_frames = (int) luaL_optinteger(L, 2, 0);
  crater_error_t err = NULL;
  if (crater_db_checkpoint(crater_store_db(st->s), min_frames, &err) < 0)
    return crater__lua_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_store_tostring(lua_State *L)
{
  lstore_t *st = luaL_checkudata(L, 1, STORE_MT);
  if (st->s && !st->close_requested)
    lua_pushfstring(L, "crater.store (%s)", crater_store_root(st->s));
  else
    lua_pushstring(L, "crater.store (closed)");
  return 1;
}

static const luaL_Reg store_methods[] = {
  { "close", l_store_close },
  { "__gc", l_store_close },
  { "__tostring", l_store_tostring },
  { "root", l_store_root },
  { "namespace_create", l_namespace_create },
  { "namespace_list", l_namespace_list },
  { "namespace_get", l_namespace_get },
  { "namespace_delete", l_namespace_delete },
  { "namespace_set_labels", l_namespace_set_labels },
  { "content_info", l_content_info },
  { "content_list", l_content_list },
  { "content_read", l_content_read },
  { "content_path", l_content_path },
  { "content_set_labels", l_content_set_labels },
  { "content_add", l_content_add },
  { "content_delete", l_content_delete },
  { "content_status", l_content_status },
  { "content_abort", l_content_abort },
  { "content_writer", l_content_writer },
  { "content_ingest_file", l_content_ingest_file },
  { "image_create", l_image_create },
  { "image_get", l_image_get },
  { "image_list", l_image_list },
  { "image_update", l_image_update },
  { "image_delete", l_image_delete },
  { "lease_create", l_lease_create },
  { "lease_list", l_lease_list },
  { "lease_delete", l_lease_delete },
  { "lease_add_resource", l_lease_add_resource },
  { "check", l_check },
  { "statements", l_statements },
  { "in_transaction", l_in_transaction },
  { "warm_statements", l_warm_statements },
  { "checkpoint", l_checkpoint },
  { NULL, NULL },
};

static const luaL_Reg writer_methods[] = {
  { "write", l_writer_write },   { "offset", l_writer_offset },
  { "digest", l_writer_digest }, { "commit", l_writer_commit },
  { "close", l_writer_close },   { "abort", l_writer_abort },
  { "__gc", l_writer_close },    { NULL, NULL },
};

void
crater__lua_open_store(lua_State *L)
{
  crater__lua_newclass(L, STORE_MT, store_methods);
  crater__lua_newclass(L, WRITER_MT, writer_methods);
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "open");
}
