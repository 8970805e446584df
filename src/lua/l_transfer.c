/*
 * crater.core transfer bindings: image tarballs over libarchive
 * (src/transfer), for the Lua import/export workflow (lua/crater/transfer/).
 *
 *   core.tar_reader(path) -> reader | nil, msg, kind
 *   reader:next() -> {name=, type="file"|"dir"|"symlink", size=, link=} | false (end)
 *       | nil, msg, kind   (link: a symlink's target as a member name)
 *   reader:read(max) -> string (the current member) | nil, msg, kind
 *       (a member larger than max is refused: resource_exhausted)
 *   reader:copy_to(writer, {expected=, keep=}) -> {digest=, size=, head=, data=?}
 *       streams the current member into a content writer (crater.content_writer,
 *       which must be empty) hashing as it goes; with expected the digest must
 *       match (data_loss otherwise, naming the member); data holds the bytes
 *       when the member is at most keep bytes and starts with '{' (JSON);
 *       head is its first 4 bytes (compression magic)
 *   reader:close()
 *   core.tar_write(path, { {name=, data=} | {name=, path=, size=} | {name=, dir=true}, ... })
 *       -> bytes written | nil, msg, kind   (deterministic pax, see transfer.h)
 *
 * Member data never touches the filesystem on import: it goes from
 * libarchive straight into the ingest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "content/content.h"
#include "content/digest.h"
#include "lua/lua_util.h"
#include "metadata/store.h"
#include "transfer/transfer.h"

#define READER_MT "crater.tar_reader"

typedef struct {
  crater_tar_reader_t *r;
  int64_t size; /* current member's size, -1 when none */
  bool is_dir;
} l_reader_t;

static l_reader_t *
check_reader(lua_State *L)
{
  l_reader_t *u = luaL_checkudata(L, 1, READER_MT);
  if (u->r == NULL)
    luaL_error(L, "crater.tar_reader: used after close");
  return u;
}

static int
l_tar_reader(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  l_reader_t *u = lua_newuserdata(L, sizeof *u);
  u->r = NULL;
  u->size = -1;
  luaL_getmetatable(L, READER_MT);
  lua_setmetatable(L, -2);
  crater_error_t err = NULL;
  u->r = crater_tar_reader_open(path, &err);
  if (u->r == NULL)
    return crater__lua_fail(L, &err);
  return 1;
}

static int
l_reader_next(lua_State *L)
{
  l_reader_t *u = check_reader(L);
  crater_error_t err = NULL;
  crater_tar_entry_t e;
  int rc = crater_tar_reader_next(u->r, &e, &err);
  if (rc < 0) {
    u->size = -1;
    return crater__lua_fail(L, &err);
  }
  if (rc == 0) {
    u->size = -1;
    lua_pushboolean(L, 0);
    return 1;
  }
  u->size = e.link ? -1 : e.size;
  u->is_dir = e.is_dir;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, e.name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, e.link ? "symlink" : e.is_dir ? "dir" : "file");
  lua_setfield(L, -2, "type");
  if (e.link) {
    lua_pushstring(L, e.link);
    lua_setfield(L, -2, "link");
  }
  lua_pushnumber(L, (double) e.size);
  lua_setfield(L, -2, "size");
  return 1;
}

static int
l_reader_read(lua_State *L)
{
  l_reader_t *u = check_reader(L);
  lua_Integer max = luaL_checkinteger(L, 2);
  crater_error_t err = NULL;
  if (u->size < 0)
    return luaL_error(L, "crater.tar_reader: read before next()");
  if (u->size > (int64_t) max) {
    crater_error_make(&err, CRATER_ERR_RESOURCE_EXHAUSTED, 0,
                      "archive member is %lld bytes, more than the %lld allowed",
                      (long long) u->size, (long long) max);
    return crater__lua_fail(L, &err);
  }
  cleanup_free char *buf = xmalloc((size_t) u->size + 1);
  size_t have = 0;
  for (;;) {
    ssize_t got = crater_tar_reader_read(u->r, buf + have, (size_t) u->size + 1 - have, &err);
    if (got < 0)
      return crater__lua_fail(L, &err);
    if (got == 0)
      break;
    have += (size_t) got;
    if (have > (size_t) u->size) {
      crater_error_make(&err, CRATER_ERR_DATA_LOSS, 0, "archive member longer than its header");
      return crater__lua_fail(L, &err);
    }
  }
  lua_pushlstring(L, buf, have);
  return 1;
}

typedef struct {
  crater_content_writer_t *w;
  int64_t keep;
  char *data;
  size_t len;
  bool keeping;
  unsigned char head[4];
  size_t head_len;
} copy_sink_t;

static int
copy_write(void *ud, const void *buf, size_t n, crater_error_t *err)
{
  copy_sink_t *s = ud;
  const unsigned char *p = buf;
  for (size_t i = 0; s->head_len < sizeof s->head && i < n; i++)
    s->head[s->head_len++] = p[i];
  if (s->keeping) {
    if (s->len == 0 && n > 0 && p[0] != '{')
      s->keeping = false;
    else if ((int64_t) (s->len + n) > s->keep)
      s->keeping = false;
    if (!s->keeping) {
      free(s->data);
      s->data = NULL;
      s->len = 0;
    } else {
      s->data = xrealloc(s->data, s->len + n + 1);
      memcpy(s->data + s->len, p, n);
      s->len += n;
    }
  }
  return crater_content_writer_write(s->w, buf, n, err);
}

static int
l_reader_copy_to(lua_State *L)
{
  l_reader_t *u = check_reader(L);
  crater_store_writer_t *sw = crater__lua_check_store_writer(L, 2);
  const char *expected = NULL;
  int64_t keep = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    expected = crater__lua_opt_field_string(L, 3, "expected");
    keep = crater__lua_opt_field_int(L, 3, "keep", 0);
  }
  if (u->size < 0 || u->is_dir)
    return luaL_error(L, "crater.tar_reader: copy_to needs a current file member");
  crater_error_t err = NULL;
  crater_content_writer_t *w = crater_store_writer_content(sw);
  if (crater_content_writer_offset(w) != 0) {
    crater_error_make(&err, CRATER_ERR_FAILED_PRECONDITION, 0,
                      "copy_to: the content writer already holds data");
    return crater__lua_fail(L, &err);
  }
  copy_sink_t s = { .w = w, .keep = keep, .keeping = keep > 0 };
  int64_t n = crater_tar_reader_copy(u->r, copy_write, &s, &err);
  cleanup_free char *data = s.data;
  if (n < 0)
    return crater__lua_fail(L, &err);
  char dg[CRATER_DIGEST_MAX];
  if (crater_content_writer_digest(w, dg, &err) < 0)
    return crater__lua_fail(L, &err);
  if (expected && strcmp(dg, expected) != 0) {
    crater_error_make(&err, CRATER_ERR_DATA_LOSS, 0,
                      "archive member content is %s, not %s as its name says", dg, expected);
    return crater__lua_fail(L, &err);
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, dg);
  lua_setfield(L, -2, "digest");
  lua_pushnumber(L, (double) n);
  lua_setfield(L, -2, "size");
  lua_pushlstring(L, (const char *) s.head, s.head_len);
  lua_setfield(L, -2, "head");
  if (s.keeping && s.data) {
    lua_pushlstring(L, s.data, s.len);
    lua_setfield(L, -2, "data");
  }
  return 1;
}

static int
l_reader_close(lua_State *L)
{
  l_reader_t *u = luaL_checkudata(L, 1, READER_MT);
  crater_tar_reader_free(u->r);
  u->r = NULL;
  return 0;
}

/* ---- writer ---------------------------------------------------------------- */

static int
l_tar_write(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = lua_objlen(L, 2);
  /* validate everything first: nothing below raises */
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (int) i);
    if (!lua_istable(L, -1))
      return luaL_error(L, "tar_write: entry %d is not a table", (int) i);
    if (crater__lua_opt_field_string(L, -1, "name") == NULL)
      return luaL_error(L, "tar_write: entry %d needs a name", (int) i);
    bool dir = crater__lua_opt_field_bool(L, -1, "dir", 0);
    lua_getfield(L, -1, "data");
    bool has_data = lua_type(L, -1) == LUA_TSTRING;
    lua_pop(L, 1);
    if (!dir && !has_data && crater__lua_opt_field_string(L, -1, "path") == NULL)
      return luaL_error(L, "tar_write: entry %d needs data, path or dir", (int) i);
    lua_pop(L, 1);
  }
  crater_error_t err = NULL;
  cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    crater_error_sys(&err, errno, "create %s", path);
    return crater__lua_fail(L, &err);
  }
  crater_tar_writer_t *w = crater_tar_writer_new(fd, &err);
  if (w == NULL)
    return crater__lua_fail(L, &err);
  int rc = 0;
  for (size_t i = 1; rc == 0 && i <= n; i++) {
    lua_rawgeti(L, 2, (int) i);
    const char *name = crater__lua_opt_field_string(L, -1, "name");
    const char *src = crater__lua_opt_field_string(L, -1, "path");
    lua_getfield(L, -1, "data");
    size_t len = 0;
    const char *data = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (crater__lua_opt_field_bool(L, -2, "dir", 0)) {
      rc = crater_tar_writer_add_dir(w, name, &err);
    } else if (data) {
      rc = crater_tar_writer_add_data(w, name, data, len, &err);
    } else {
      cleanup_close int sfd = open(src, O_RDONLY | O_CLOEXEC);
      struct stat st;
      if (sfd < 0 || fstat(sfd, &st) < 0)
        rc = crater_error_sys(&err, errno, "open %s", src);
      else
        rc = crater_tar_writer_add_fd(w, name, sfd, (int64_t) st.st_size, &err);
    }
    lua_pop(L, 2);
  }
  if (rc == 0)
    rc = crater_tar_writer_finish(w, &err);
  crater_tar_writer_free(w);
  off_t end = rc == 0 ? lseek(fd, 0, SEEK_CUR) : -1;
  if (rc == 0 && fsync(fd) < 0)
    rc = crater_error_sys(&err, errno, "fsync %s", path);
  if (rc < 0)
    return crater__lua_fail(L, &err);
  lua_pushnumber(L, (double) end);
  return 1;
}

void
crater__lua_open_transfer(lua_State *L)
{
  static const luaL_Reg methods[] = {
    { "next", l_reader_next },   { "read", l_reader_read },  { "copy_to", l_reader_copy_to },
    { "close", l_reader_close }, { "__gc", l_reader_close }, { NULL, NULL },
  };
  crater__lua_newclass(L, READER_MT, methods);
  static const luaL_Reg fns[] = {
    { "tar_reader", l_tar_reader },
    { "tar_write", l_tar_write },
    { NULL, NULL },
  };
  luaL_register(L, NULL, fns);
}
