/*
 * `crater check`: consistency check of a root's blobs against the
 * metadata.  It re-hashes blobs (all of them, or a random sample of about
 * a tenth, at least 8, with quick), and finds corrupt blobs, orphan blob
 * files (no record in any namespace), records whose blob is missing, and
 * stale ingests.  Nothing is changed unless repair is set; repairs re-check
 * each finding inside a write transaction first, so a commit or delete
 * racing with the check is never undone.
 */
#include "metadata/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

typedef struct {
  crater_blob_info_t *v;
  size_t n;
} blobs_t;

static int
collect(const crater_blob_info_t *info, void *ud, crater_error_t *err)
{
  blobs_t *b = ud;
  b->v = xrealloc(b->v, (b->n + 1) * sizeof *b->v);
  b->v[b->n++] = *info;
  return 0;
}

static void
add_item(crater_check_item_t **arr, size_t *n, const char *digest, const char *ns,
         const char *detail)
{
  *arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
  (*arr)[*n].digest = xstrdup(digest);
  (*arr)[*n].ns = xstrdup(ns);
  (*arr)[*n].detail = xstrdup(detail);
  (*n)++;
}

static int64_t
count_records(crater_store_t *s, const char *digest, crater_error_t *err)
{
  sqlite3_stmt *st =
      crater__db_prepare(s->db, "SELECT count(*) FROM content WHERE digest = ?1", err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, digest);
  int64_t n = -1;
  if (sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  else
    crater__db_error(s->db, SQLITE_ERROR, err, "count records of %s", digest);
  crater__db_release(s->db, st);
  return n;
}

static int
rehash(crater_store_t *s, const char *digest, char *actual, crater_error_t *err)
{
  int alg = crater_digest_validate(digest, err);
  cleanup_close int fd = crater_content_open_blob(s->content, digest, err);
  if (alg < 0 || fd < 0)
    return -1;
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return crater_digest_fd((crater_digest_alg_t) alg, fd, actual, err);
}

/* Deletes records (ns NULL: in every namespace) and, when unlink_blob, the
 * blob, in one transaction; only_if_orphan / only_if_missing re-check. */
static int
repair_one(crater_store_t *s, const char *digest, const char *ns, bool unlink_blob,
           bool only_if_orphan, bool only_if_missing, crater_error_t *err)
{
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (only_if_orphan) {
    int64_t n = count_records(s, digest, err);
    if (n != 0) {
      crater_db_rollback(s->db);
      return n < 0 ? -1 : 0;
    }
  }
  if (only_if_missing && crater_content_stat(s->content, digest, NULL, NULL) == 0) {
    crater_db_rollback(s->db);
    return 0;
  }
  sqlite3_stmt *st =
      crater__db_prepare(s->db,
                         ns ? "DELETE FROM content WHERE digest = ?1 AND namespace = ?2"
                            : "DELETE FROM content WHERE digest = ?1",
                         err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, digest);
  if (ns)
    crater__db_bind_text(st, 2, ns);
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r == 0 && unlink_blob) {
    crater_error_t e = NULL;
    if (crater_content_delete(s->content, digest, &e) < 0 && e->kind != CRATER_ERR_NOT_FOUND) {
      crater_error_move(err, &e);
      r = -1;
    }
    crater_error_release(&e);
  }
  if (r < 0 || crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "repair %s", digest);
  }
  return 0;
}

int
crater_store_check(crater_store_t *s, const crater_check_opts_t *opts, crater_check_report_t *out,
                   crater_error_t *err)
{
  crater_check_opts_t o = opts ? *opts : (crater_check_opts_t){ 0 };
  if (o.stale_after_s <= 0)
    o.stale_after_s = 24 * 3600;
  memset(out, 0, sizeof *out);
  blobs_t b = { 0 };
  int r = crater_content_walk(s->content, collect, &b, err);
  if (r < 0)
    goto done;

  /* 1. re-hash (a sample with quick) and find orphans */
  size_t want = b.n;
  if (o.quick && b.n > 8)
    want = b.n / 10 > 8 ? b.n / 10 : 8;
  srand48((long) crater__now_ns());
  size_t left = b.n;
  for (size_t i = 0; i < b.n; i++, left--) {
    const char *d = b.v[i].digest;
    /* selection sampling: exactly `want` of the n, uniformly */
    if (want > 0 && drand48() * (double) left < (double) want) {
      want--;
      char actual[CRATER_DIGEST_MAX];
      crater_error_t e = NULL;
      if (rehash(s, d, actual, &e) < 0) {
        if (e->kind != CRATER_ERR_NOT_FOUND) { /* deleted meanwhile is fine */
          crater_error_move(err, &e);
          r = crater_error_wrap(err, "check %s", d);
          goto done;
        }
        crater_error_release(&e);
        continue;
      }
      out->checked++;
      if (strcmp(actual, d) != 0) {
        add_item(&out->corrupt, &out->ncorrupt, d, NULL, actual);
        continue;
      }
    }
    int64_t refs = count_records(s, d, err);
    if (refs < 0) {
      r = -1;
      goto done;
    }
    if (refs == 0)
      add_item(&out->orphans, &out->norphans, d, NULL, NULL);
  }

  /* 2. records whose blob is missing */
  sqlite3_stmt *st = crater__db_prepare(
      s->db, "SELECT namespace, digest FROM content ORDER BY namespace, digest", err);
  if (st == NULL) {
    r = -1;
    goto done;
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *ns = (const char *) sqlite3_column_text(st, 0);
    const char *d = (const char *) sqlite3_column_text(st, 1);
    crater_error_t e = NULL;
    if (crater_content_stat(s->content, d, NULL, &e) < 0) {
      if (e->kind == CRATER_ERR_NOT_FOUND || e->kind == CRATER_ERR_INVALID_ARGUMENT)
        add_item(&out->missing, &out->nmissing, d, ns, NULL);
      crater_error_release(&e);
    }
  }
  crater__db_release(s->db, st);
  if (rc != SQLITE_DONE) {
    r = crater__db_error(s->db, rc, err, "check: list content records");
    goto done;
  }

  /* 3. stale and broken ingests */
  crater_ingest_status_t *ing = NULL;
  size_t ning = 0;
  if ((r = crater_content_status_list(s->content, NULL, &ing, &ning, err)) < 0)
    goto done;
  int64_t now = crater__now_ns();
  for (size_t i = 0; i < ning; i++)
    if (!ing[i].active && now - ing[i].updated_at > o.stale_after_s * 1000000000)
      add_item(&out->stale, &out->nstale, NULL, NULL, ing[i].ref);
  crater_ingest_status_free(ing, ning);
  size_t nstale_refs = out->nstale; /* the rest are broken ingest dirs */
  char **broken = NULL;
  size_t nbroken = 0;
  if ((r = crater_content_broken_ingests(s->content, &broken, &nbroken, err)) < 0)
    goto done;
  for (size_t i = 0; i < nbroken; i++) {
    cleanup_free char *d = xasprintf("ingest/%s", broken[i]);
    add_item(&out->stale, &out->nstale, NULL, NULL, d);
    free(broken[i]);
  }
  free(broken);

  if (!o.repair)
    goto done;
  /* 4. repair */
  bool all = true;
  for (size_t i = 0; i < out->ncorrupt; i++)
    if (repair_one(s, out->corrupt[i].digest, NULL, true, false, false, err) < 0) {
      crater_warn("check: %s", (*err)->msg);
      crater_error_release(err);
      all = false;
    }
  for (size_t i = 0; i < out->norphans; i++)
    if (repair_one(s, out->orphans[i].digest, NULL, true, true, false, err) < 0) {
      crater_warn("check: %s", (*err)->msg);
      crater_error_release(err);
      all = false;
    }
  for (size_t i = 0; i < out->nmissing; i++)
    if (repair_one(s, out->missing[i].digest, out->missing[i].ns, false, false, true, err) < 0) {
      crater_warn("check: %s", (*err)->msg);
      crater_error_release(err);
      all = false;
    }
  for (size_t i = 0; i < out->nstale; i++) {
    const char *d = out->stale[i].detail;
    crater_error_t e = NULL;
    int rr = i >= nstale_refs
                 ? crater_content_remove_ingest_dir(s->content, d + strlen("ingest/"), &e)
                 : crater_content_abort(s->content, d, &e);
    if (rr < 0 && e->kind != CRATER_ERR_NOT_FOUND) {
      crater_warn("check: stale ingest %s: %s", d, e->msg);
      all = false;
    }
    crater_error_release(&e);
  }
  out->repaired = all;

done:
  free(b.v);
  if (r < 0)
    crater_check_report_clear(out);
  return r;
}

static void
free_items(crater_check_item_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(arr[i].digest);
    free(arr[i].ns);
    free(arr[i].detail);
  }
  free(arr);
}

void
crater_check_report_clear(crater_check_report_t *r)
{
  if (r == NULL)
    return;
  free_items(r->corrupt, r->ncorrupt);
  free_items(r->orphans, r->norphans);
  free_items(r->missing, r->nmissing);
  free_items(r->stale, r->nstale);
  memset(r, 0, sizeof *r);
}
