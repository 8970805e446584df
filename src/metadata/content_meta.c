/*
 * Namespaced content: the per-namespace records (size, labels, times)
 * that make shared blobs visible in a namespace, and the writer wrapper
 * whose commit publishes a blob and records it in one step.  The rules
 * are containerd's core/metadata/content.go, summarised in store.h.
 *
 * Ordering against concurrent processes: commit renames the blob into
 * place and inserts its record inside one IMMEDIATE transaction, and
 * delete removes the record, counts the remaining references and unlinks
 * the blob inside one too, so a delete can never unlink a blob that a
 * concurrent commit has just recorded.
 */
#include "metadata/store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

struct crater_store_writer_s {
  crater_store_t *s;
  char *ns;
  crater_content_writer_t *w;
};

#define RECORD_COLS "digest, size, created_at, updated_at"

static int
load_record(crater_store_t *s, const char *ns, sqlite3_stmt *st, void *rec, crater_error_t *err)
{
  crater_content_record_t *out = rec;
  memset(out, 0, sizeof *out);
  snprintf(out->digest, sizeof out->digest, "%s", (const char *) sqlite3_column_text(st, 0));
  out->size = sqlite3_column_int64(st, 1);
  out->created_at = sqlite3_column_int64(st, 2);
  out->updated_at = sqlite3_column_int64(st, 3);
  return crater__db_labels_load(s->db, "content_labels", "digest", ns, out->digest, &out->labels,
                                err);
}

static void
clear_record(void *rec)
{
  crater_content_record_clear(rec);
}

/* NOT_FOUND unless digest (validated) is visible in ns. */
static int
visible(crater_store_t *s, const char *ns, const char *digest, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || crater_digest_validate(digest, err) < 0)
    return -1;
  sqlite3_stmt *st =
      crater__db_prepare(s->db, "SELECT 1 FROM content WHERE namespace = ?1 AND digest = ?2", err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, digest);
  int rc = sqlite3_step(st);
  crater__db_release(s->db, st);
  if (rc == SQLITE_ROW)
    return 0;
  if (rc == SQLITE_DONE)
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT,
                             "content %s: not found in namespace %s", digest, ns);
  return crater__db_error(s->db, rc, err, "content %s", digest);
}

int
crater_store_content_info(crater_store_t *s, const char *ns, const char *digest,
                          crater_content_record_t *out, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || crater_digest_validate(digest, err) < 0)
    return -1;
  return crater__meta_get(
      s, ns, digest, "SELECT " RECORD_COLS " FROM content WHERE namespace = ?1 AND digest = ?2",
      "content", load_record, clear_record, out, err);
}

static const char *
record_lookup(const void *rec, const char *field, char *scratch, size_t len)
{
  const crater_content_record_t *r = rec;
  if (strncmp(field, "labels.", 7) == 0)
    return crater_labels_get(&r->labels, field + 7);
  if (strcmp(field, "digest") == 0)
    return r->digest;
  if (strcmp(field, "size") == 0) {
    snprintf(scratch, len, "%" PRId64, r->size);
    return scratch;
  }
  return NULL;
}

int
crater_store_content_list(crater_store_t *s, const char *ns, const char *const *filters,
                          size_t nfilters, crater_content_record_t **out, size_t *n,
                          crater_error_t *err)
{
  void *arr;
  int r = crater__meta_list(
      s, ns, "SELECT " RECORD_COLS " FROM content WHERE namespace = ?1 ORDER BY digest", filters,
      nfilters, sizeof **out, load_record, record_lookup, clear_record, &arr, n, "content", err);
  *out = arr;
  return r;
}

static int
touch(crater_store_t *s, const char *ns, const char *digest, crater_error_t *err)
{
  sqlite3_stmt *st = crater__db_prepare(
      s->db, "UPDATE content SET updated_at = ?3 WHERE namespace = ?1 AND digest = ?2", err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, digest);
  sqlite3_bind_int64(st, 3, crater__now_ns());
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  return r;
}

int
crater_store_content_set_labels(crater_store_t *s, const char *ns, const char *digest,
                                const crater_labels_t *labels, bool replace, crater_error_t *err)
{
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (visible(s, ns, digest, err) < 0 ||
      crater__db_labels_store(s->db, "content_labels", "digest", ns, digest, labels, replace, err) <
          0 ||
      touch(s, ns, digest, err) < 0 || crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "label content %s", digest);
  }
  return 0;
}

/* Inserts the record of a blob on disk into ns (inside a transaction).
 * Returns 1 when inserted, 0 when it was there already. */
static int
insert_record(crater_store_t *s, const char *ns, const char *digest, int64_t size,
              const crater_labels_t *labels, crater_error_t *err)
{
  if (crater__store_ensure_namespace(s, ns, err) < 0)
    return -1;
  sqlite3_stmt *st =
      crater__db_prepare(s->db,
                         "INSERT INTO content (namespace, digest, size, created_at, updated_at) "
                         "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
                         err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, digest);
  sqlite3_bind_int64(st, 3, size);
  sqlite3_bind_int64(st, 4, crater__now_ns());
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    return -1;
  int inserted = sqlite3_changes(crater_db_handle(s->db)) > 0;
  if (labels && labels->n > 0 &&
      crater__db_labels_store(s->db, "content_labels", "digest", ns, digest, labels, false, err) <
          0)
    return -1;
  return inserted;
}

int
crater_store_content_add(crater_store_t *s, const char *ns, const char *digest,
                         const crater_labels_t *labels, crater_error_t *err)
{
  crater_blob_info_t info;
  if (crater_namespace_validate(ns, err) < 0 ||
      crater_content_stat(s->content, digest, &info, err) < 0)
    return -1;
  if (labels && crater_labels_validate(labels, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  int r = insert_record(s, ns, digest, info.size, NULL, err);
  if (r == 0) {
    crater_db_rollback(s->db);
    return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST,
                             "content %s: already in namespace %s", digest, ns);
  }
  if (r < 0 ||
      crater__db_labels_store(s->db, "content_labels", "digest", ns, digest, labels, false, err) <
          0 ||
      crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "add content %s to %s", digest, ns);
  }
  return 0;
}

int
crater_store_content_delete(crater_store_t *s, const char *ns, const char *digest,
                            crater_error_t *err)
{
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (visible(s, ns, digest, err) < 0)
    return crater__store_rollback(s);
  sqlite3_stmt *st =
      crater__db_prepare(s->db, "DELETE FROM content WHERE namespace = ?1 AND digest = ?2", err);
  int r = st ? 0 : -1;
  if (st) {
    crater__db_bind_text(st, 1, ns);
    crater__db_bind_text(st, 2, digest);
    r = crater__db_step_done(s->db, st, err);
    crater__db_release(s->db, st);
  }
  int64_t refs = -1;
  if (r == 0 &&
      (st = crater__db_prepare(s->db, "SELECT count(*) FROM content WHERE digest = ?1", err))) {
    crater__db_bind_text(st, 1, digest);
    if (sqlite3_step(st) == SQLITE_ROW)
      refs = sqlite3_column_int64(st, 0);
    else
      r = crater__db_error(s->db, SQLITE_ERROR, err, "count references");
    crater__db_release(s->db, st);
  } else if (r == 0) {
    r = -1;
  }
  if (r == 0 && refs == 0) {
    crater_error_t e = NULL;
    if (crater_content_delete(s->content, digest, &e) < 0) {
      if (e->kind == CRATER_ERR_NOT_FOUND)
        crater_error_release(&e); /* already gone: the record was dangling */
      else {
        crater_error_move(err, &e);
        r = -1;
      }
    }
  }
  if (r < 0 || crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "delete content %s from %s", digest, ns);
  }
  return 0;
}

char *
crater_store_content_path(crater_store_t *s, const char *ns, const char *digest,
                          crater_error_t *err)
{
  if (visible(s, ns, digest, err) < 0)
    return NULL;
  return crater_content_path(s->content, digest, err);
}

int
crater_store_content_open(crater_store_t *s, const char *ns, const char *digest,
                          crater_error_t *err)
{
  if (visible(s, ns, digest, err) < 0)
    return -1;
  return crater_content_open_blob(s->content, digest, err);
}

ssize_t
crater_store_content_read(crater_store_t *s, const char *ns, const char *digest, int64_t offset,
                          void *buf, size_t n, crater_error_t *err)
{
  if (visible(s, ns, digest, err) < 0)
    return -1;
  return crater_content_read(s->content, digest, offset, buf, n, err);
}

int
crater_store_content_status(crater_store_t *s, const char *ns, crater_ingest_status_t **out,
                            size_t *n, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  cleanup_free char *prefix = crater__store_ingest_key(ns, "");
  if (crater_content_status_list(s->content, prefix, out, n, err) < 0)
    return -1;
  size_t pl = strlen(prefix);
  for (size_t i = 0; i < *n; i++)
    memmove((*out)[i].ref, (*out)[i].ref + pl, strlen((*out)[i].ref + pl) + 1);
  return 0;
}

int
crater_store_content_abort(crater_store_t *s, const char *ns, const char *ref, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  if (ref == NULL || ref[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "abort: empty ref");
  cleanup_free char *key = crater__store_ingest_key(ns, ref);
  if (crater_content_abort(s->content, key, err) < 0)
    return crater_error_wrap(err, "namespace %s", ns);
  return 0;
}

void
crater_content_record_clear(crater_content_record_t *r)
{
  if (r)
    crater_labels_clear(&r->labels);
}

void
crater_content_records_free(crater_content_record_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    crater_content_record_clear(&arr[i]);
  free(arr);
}

/* ---- writers ---------------------------------------------------------------- */

crater_store_writer_t *
crater_store_writer_open(crater_store_t *s, const char *ns, const char *ref, const char *expected,
                         int64_t size, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return NULL;
  if (ref == NULL || ref[0] == '\0') {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "writer: empty ref");
    return NULL;
  }
  cleanup_free char *key = crater__store_ingest_key(ns, ref);
  crater_content_writer_t *cw =
      crater_content_writer_open(s->content, key, expected, size > 0 ? size : 0, err);
  if (cw == NULL)
    return NULL;
  crater_store_writer_t *w = xmalloc0(sizeof *w);
  w->s = s;
  w->ns = xstrdup(ns);
  w->w = cw;
  return w;
}

crater_content_writer_t *
crater_store_writer_content(crater_store_writer_t *w)
{
  return w->w;
}

int
crater_store_writer_commit(crater_store_writer_t *w, int64_t size, const char *expected,
                           const crater_labels_t *labels, char *out, crater_error_t *err)
{
  crater_store_t *s = w->s;
  char dgst[CRATER_DIGEST_MAX];
  if (labels && crater_labels_validate(labels, err) < 0)
    return -1;
  /* verify and fsync before taking the database write lock */
  if (crater_content_writer_verify(w->w, size, expected, dgst, err) < 0)
    return -1;
  int64_t blob_size = crater_content_writer_offset(w->w);
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (crater__store_ensure_namespace(s, w->ns, err) < 0)
    return crater__store_rollback(s);
  int r = crater_content_writer_commit(w->w, size, expected, dgst, err);
  if (r < 0)
    return crater__store_rollback(s);
  int inserted = insert_record(s, w->ns, dgst, blob_size, labels, err);
  if (inserted < 0 || crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "commit %s in %s", dgst, w->ns);
  }
  if (out)
    memcpy(out, dgst, strlen(dgst) + 1);
  return inserted ? CRATER_CONTENT_COMMITTED : CRATER_CONTENT_EXISTS;
}

void
crater_store_writer_close(crater_store_writer_t *w)
{
  if (w == NULL)
    return;
  crater_content_writer_close(w->w);
  free(w->ns);
  free(w);
}

int
crater_store_writer_abort(crater_store_writer_t *w, crater_error_t *err)
{
  int r = crater_content_writer_abort(w->w, err);
  free(w->ns);
  free(w);
  return r;
}

int
crater_store_content_ingest_fd(crater_store_t *s, const char *ns, const char *ref, int fd,
                               const char *expected, int64_t size, const crater_labels_t *labels,
                               char *out, crater_error_t *err)
{
  crater_store_writer_t *w = crater_store_writer_open(s, ns, ref, expected, size, err);
  if (w == NULL)
    return -1;
  if (crater_content_writer_skip_fd(w->w, fd, err) < 0 ||
      crater_content_writer_copy_fd(w->w, fd, err) < 0) {
    crater_store_writer_close(w);
    return -1;
  }
  int r = crater_store_writer_commit(w, size > 0 ? size : -1, expected, labels, out, err);
  if (r < 0 && (*err)->kind == CRATER_ERR_DATA_LOSS) {
    crater_store_writer_abort(w, NULL); /* wrong bytes: resuming cannot help */
    return -1;
  }
  crater_store_writer_close(w);
  return r;
}
