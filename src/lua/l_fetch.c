/*
 * crater.core fetch+apply: downloads layer blobs straight into content
 * ingests and, at the same time, applies each layer into its own prepared
 * snapshot directory, so unpacking overlaps the download.
 *
 *   core.fetch_apply(remote, repo, items, {parallel=, on_progress=fn(i, done, total)})
 *     items[i] = {digest=, size=, writer=<crater.content_writer>,
 *                 apply={dir=, compression=, whiteouts="overlay"|"delete",
 *                        expected_diff_id=, max_size=}?}
 *     -> { {ok=true, size=n, apply={diff_id=, size=, entries=, implicit=?} | apply_err=,
 * apply_kind=} | {err=, kind=, apply_err=?}, ... }
 *
 * Each blob's bytes go, inside the curl write callback, into its content
 * writer (hashed there; the caller commits, which verifies digest and size)
 * and, for items with `apply`, into a pipe read by one worker thread per
 * item running crater_archive_apply on the snapshot directory; the diff ID
 * is checked by the apply (crater_apply_job_run, shared with
 * core.archive_apply_many); overlay applies list the parent dirs they
 * created implicitly (`implicit`), for unpack's fix-up against the lowers
 * at commit time.  Workers never touch Lua.  All layers apply
 * concurrently, which is right for overlayfs (every layer is its own
 * directory).  Snapshotters that apply onto a copy of the parent (native,
 * btrfs) may only be given `apply` for a layer whose directory is already
 * that copy (its parent committed), with whiteouts="delete": pull does
 * this for the first layer to unpack only.  A full pipe blocks the download loop,
 * so downloads run no faster than the slowest running apply; a worker
 * that fails drains its pipe so the download still completes.
 *
 * The writer must be fresh (offset 0) for its item to be applied, since
 * the apply needs the stream from its first byte; a server that ignores a
 * Range request fails that item (the writer cannot be rewound).  The caller
 * owns the writers and snapshots: it commits or aborts them afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/archive_sym.h"
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "content/content.h"
#include "lua/lua_util.h"
#include "metadata/store.h"
#include "remote/remote.h"

typedef struct {
  crater_remote_sink_t sink;
  crater_content_writer_t *w;
  char *digest;
  int64_t size;
  /* apply */
  bool apply;
  int dirfd;
  int pipe_rd, pipe_wr;
  crater_apply_opts_t opts;
  char *diff_id;
  pthread_t th;
  bool started;
  crater_apply_result_t res;
  crater_error_t apply_err;
  crater_error_t err;
} item_t;

static int
sink_write(void *ud, const void *buf, size_t n, crater_error_t *err)
{
  item_t *it = ud;
  if (crater_content_writer_write(it->w, buf, n, err) < 0)
    return -1;
  if (it->pipe_wr >= 0) {
    const char *p = buf;
    while (n > 0) {
      ssize_t k = write(it->pipe_wr, p, n);
      if (k < 0 && errno == EINTR)
        continue;
      if (k < 0) { /* the apply stopped (EPIPE): its worker reports why */
        close(it->pipe_wr);
        it->pipe_wr = -1;
        break;
      }
      p += k;
      n -= (size_t) k;
    }
  }
  return 0;
}

static int64_t
sink_offset(void *ud)
{
  item_t *it = ud;
  return crater_content_writer_offset(it->w);
}

static int
sink_reset(void *ud, crater_error_t *err)
{
  item_t *it = ud;
  if (crater_content_writer_offset(it->w) == 0)
    return 0;
  return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                           "blob %s: server ignored a Range request; retry the pull", it->digest);
}

static void *
apply_main(void *arg)
{
  item_t *it = arg;
  /* the apply job shared with core.archive_apply_many; drained, so the
   * download never blocks on a reader that has stopped */
  crater_apply_job_t job = { .root_dirfd = it->dirfd, .layer_fd = it->pipe_rd, .opts = it->opts };
  crater_apply_job_run(&job, true);
  it->res = job.res;
  it->apply_err = job.err;
  close(it->pipe_rd);
  it->pipe_rd = -1;
  return NULL;
}

typedef struct {
  lua_State *L;
  int fn;
  char *cb_error;
} progress_t;

static int
on_progress(void *ud, size_t i, int64_t done, int64_t total)
{
  progress_t *p = ud;
  if (p->fn == 0 || p->cb_error)
    return p->cb_error != NULL;
  lua_pushvalue(p->L, p->fn);
  lua_pushinteger(p->L, (lua_Integer) i + 1);
  lua_pushnumber(p->L, (lua_Number) done);
  lua_pushnumber(p->L, (lua_Number) total);
  if (lua_pcall(p->L, 3, 0, 0) != 0) {
    const char *m = lua_tostring(p->L, -1);
    p->cb_error = xstrdup(m ? m : "error in on_progress");
    lua_pop(p->L, 1);
    return 1;
  }
  return 0;
}

static void
push_err(lua_State *L, const char *field, crater_error_t e)
{
  lua_pushstring(L, e->msg);
  lua_setfield(L, -2, field);
}

static int
l_fetch_apply(lua_State *L)
{
  crater_remote_t *remote = crater__lua_check_remote(L, 1);
  const char *repo = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  if (!lua_isnoneornil(L, 4))
    luaL_checktype(L, 4, LUA_TTABLE);
  int64_t parallel;
  int fn = crater__lua_transfer_opts(L, 4, 8, &parallel);
  size_t n = lua_objlen(L, 3);
  /* validate first: nothing below raises */
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, (int) i);
    int t = lua_gettop(L);
    if (!lua_istable(L, t))
      return luaL_error(L, "fetch_apply: item %d is not a table", (int) i);
    if (crater__lua_opt_field_string(L, t, "digest") == NULL)
      return luaL_error(L, "fetch_apply: item %d needs a digest", (int) i);
    lua_getfield(L, t, "writer");
    crater__lua_check_store_writer(L, lua_gettop(L));
    lua_pop(L, 1);
    lua_getfield(L, t, "apply");
    if (!lua_isnil(L, -1)) {
      if (!lua_istable(L, -1) || crater__lua_opt_field_string(L, -1, "dir") == NULL)
        return luaL_error(L, "fetch_apply: item %d: apply needs a dir", (int) i);
      const char *c = crater__lua_opt_field_string(L, -1, "compression");
      crater_compression_t cc;
      crater_error_t e = NULL;
      if (c && crater_archive_compression_parse(c, &cc, &e) < 0) {
        crater_error_release(&e);
        return luaL_error(L, "fetch_apply: item %d: bad compression", (int) i);
      }
    }
    lua_pop(L, 2);
  }

  item_t *items = xcalloc(n ? n : 1, sizeof *items);
  crater_remote_fetch_t *reqs = xcalloc(n ? n : 1, sizeof *reqs);
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    it->dirfd = it->pipe_rd = it->pipe_wr = -1;
    lua_rawgeti(L, 3, (int) i + 1);
    int t = lua_gettop(L);
    it->digest = xstrdup(crater__lua_opt_field_string(L, t, "digest"));
    it->size = crater__lua_opt_field_int(L, t, "size", -1);
    lua_getfield(L, t, "writer");
    it->w = crater_store_writer_content(crater__lua_check_store_writer(L, lua_gettop(L)));
    lua_pop(L, 1);
    it->sink = (crater_remote_sink_t){ sink_write, sink_offset, sink_reset, it };
    lua_getfield(L, t, "apply");
    if (lua_istable(L, -1) && crater_content_writer_offset(it->w) == 0) {
      int a = lua_gettop(L);
      const char *c = crater__lua_opt_field_string(L, a, "compression");
      if (c)
        crater_archive_compression_parse(c, &it->opts.compression, NULL);
      const char *wh = crater__lua_opt_field_string(L, a, "whiteouts");
      it->opts.whiteouts =
          wh && strcmp(wh, "delete") == 0 ? CRATER_WHITEOUT_DELETE : CRATER_WHITEOUT_OVERLAY;
      /* no lowers yet: list implicit parents for unpack's fix-up */
      if (it->opts.whiteouts == CRATER_WHITEOUT_OVERLAY)
        it->opts.flags |= CRATER_APPLY_RECORD_IMPLICIT;
      it->diff_id = xstrdup(crater__lua_opt_field_string(L, a, "expected_diff_id"));
      it->opts.expected_diff_id = it->diff_id;
      it->opts.max_size = (uint64_t) crater__lua_opt_field_int(L, a, "max_size", 0);
      const char *dir = crater__lua_opt_field_string(L, a, "dir");
      it->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      int p[2];
      if (it->dirfd < 0) {
        crater_error_sys(&it->apply_err, errno, "open %s", dir);
      } else if (pipe2(p, O_CLOEXEC) < 0) {
        crater_error_sys(&it->apply_err, errno, "pipe");
      } else {
        it->pipe_rd = p[0];
        it->pipe_wr = p[1];
        fcntl(it->pipe_wr, F_SETPIPE_SZ, 1 << 20); /* best effort: smoother tee */
        it->apply = true;
      }
    }
    lua_pop(L, 2);
    reqs[i] = (crater_remote_fetch_t){
      .repo = repo, .digest = it->digest, .size = it->size, .sink = &it->sink
    };
  }

  /* a stopped apply must give EPIPE, not kill the process */
  sigset_t pipeset, oldset;
  sigemptyset(&pipeset);
  sigaddset(&pipeset, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipeset, &oldset);

  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    if (!it->apply)
      continue;
    /* apply threads call libarchive: load it here, before any of them runs */
    int rc = -1;
    if (crater__archive_load(&it->apply_err) == 0) {
      rc = pthread_create(&it->th, NULL, apply_main, it);
      if (rc != 0)
        crater_error_sys(&it->apply_err, rc, "start apply thread");
    }
    if (rc != 0) {
      close(it->pipe_wr);
      close(it->pipe_rd);
      it->pipe_wr = it->pipe_rd = -1;
      it->apply = false;
    } else {
      it->started = true;
    }
  }

  crater_error_t *rerrs = xcalloc(n ? n : 1, sizeof *rerrs);
  progress_t pc = { .L = L, .fn = fn };
  crater_error_t err = NULL;
  crater_remote_fetch_many(remote, reqs, n, (size_t) parallel, fn ? on_progress : NULL, &pc, rerrs,
                           &err);
  crater_error_release(&err);
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    if (it->pipe_wr >= 0)
      close(it->pipe_wr); /* EOF for the apply */
    it->pipe_wr = -1;
    if (it->started)
      pthread_join(it->th, NULL);
    if (it->dirfd >= 0)
      close(it->dirfd);
  }
  struct timespec zero = { 0, 0 };
  while (sigtimedwait(&pipeset, NULL, &zero) > 0)
    ; /* swallow SIGPIPEs raised while blocked */
  pthread_sigmask(SIG_SETMASK, &oldset, NULL);

  lua_createtable(L, (int) n, 0);
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    lua_createtable(L, 0, 4);
    if (rerrs[i]) {
      push_err(L, "err", rerrs[i]);
      lua_pushstring(L, crater_errkind_name(rerrs[i]->kind));
      lua_setfield(L, -2, "kind");
    } else {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "ok");
      lua_pushnumber(L, (lua_Number) crater_content_writer_offset(it->w));
      lua_setfield(L, -2, "size");
    }
    if (it->apply_err) {
      push_err(L, "apply_err", it->apply_err);
      lua_pushstring(L, crater_errkind_name(it->apply_err->kind));
      lua_setfield(L, -2, "apply_kind");
    } else if (it->started && rerrs[i] == NULL) {
      lua_createtable(L, 0, 3);
      lua_pushstring(L, it->res.diff_id);
      lua_setfield(L, -2, "diff_id");
      lua_pushnumber(L, (lua_Number) it->res.size);
      lua_setfield(L, -2, "size");
      lua_pushnumber(L, (lua_Number) it->res.entries);
      lua_setfield(L, -2, "entries");
      if (it->res.nimplicit > 0) {
        lua_createtable(L, (int) it->res.nimplicit, 0);
        for (size_t k = 0; k < it->res.nimplicit; k++) {
          lua_pushstring(L, it->res.implicit[k]);
          lua_rawseti(L, -2, (int) k + 1);
        }
        lua_setfield(L, -2, "implicit");
      }
      lua_setfield(L, -2, "apply");
    }
    lua_rawseti(L, -2, (int) i + 1);
    crater_error_release(&rerrs[i]);
    crater_error_release(&it->apply_err);
    crater_apply_result_clear(&it->res);
    free(it->digest);
    free(it->diff_id);
  }
  free(rerrs);
  free(reqs);
  free(items);
  if (pc.cb_error) {
    lua_pushfstring(L, "fetch_apply: on_progress: %s", pc.cb_error);
    free(pc.cb_error);
    return lua_error(L);
  }
  return 1;
}

void
crater__lua_open_fetch(lua_State *L)
{
  static const luaL_Reg fns[] = {
    { "fetch_apply", l_fetch_apply },
    { NULL, NULL },
  };
  luaL_register(L, NULL, fns);
}
