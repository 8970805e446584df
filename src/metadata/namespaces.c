/*
 * Namespaces: the scope of every other object.  Names follow containerd's
 * rules in the lower-case form crater uses for paths and labels.  A
 * namespace cannot be deleted while any table in `holders` still has rows
 * in it; later domains add their tables there.
 */
#include "metadata/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define MAX_NAMESPACE 76

/* Tables whose rows keep a namespace alive, with the nouns used in the
 * "not empty" message.  Append new namespaced tables here. */
static const struct {
  const char *table, *one, *many;
} holders[] = {
  { "content", "content blob", "content blobs" },
  { "images", "image", "images" },
  { "leases", "lease", "leases" },
  { "snapshots", "snapshot", "snapshots" },
  { "containers", "container", "containers" },
};

int
crater_namespace_validate(const char *name, crater_error_t *err)
{
  if (name == NULL || name[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "namespace: empty name");
  size_t n = strlen(name);
  if (n > MAX_NAMESPACE)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "namespace '%.80s...': longer than %d characters", name,
                             MAX_NAMESPACE);
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool sep = c == '.' || c == '_' || c == '-';
    if (!alnum && !(sep && i > 0 && i < n - 1))
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "namespace '%s': invalid character at %zu (want "
                               "[a-z0-9]([a-z0-9._-]*[a-z0-9])?)",
                               name, i + 1);
  }
  return 0;
}

int
crater__store_ensure_namespace(crater_store_t *s, const char *ns, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  sqlite3_stmt *st = crater__db_prepare(
      s->db,
      "INSERT INTO namespaces (name, created_at, updated_at) VALUES (?1, ?2, ?2) "
      "ON CONFLICT DO NOTHING",
      err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  sqlite3_bind_int64(st, 2, crater__now_ns());
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  return r < 0 ? crater_error_wrap(err, "namespace %s", ns) : 0;
}

int
crater__store_namespace_exists(crater_store_t *s, const char *ns, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  sqlite3_stmt *st = crater__db_prepare(s->db, "SELECT 1 FROM namespaces WHERE name = ?1", err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  int rc = sqlite3_step(st);
  crater__db_release(s->db, st);
  if (rc == SQLITE_ROW)
    return 0;
  if (rc == SQLITE_DONE)
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "namespace %s: not found", ns);
  return crater__db_error(s->db, rc, err, "namespace %s", ns);
}

int
crater_store_namespace_create(crater_store_t *s, const char *name, const crater_labels_t *labels,
                              crater_error_t *err)
{
  if (crater_namespace_validate(name, err) < 0)
    return -1;
  if (labels && crater_labels_validate(labels, err) < 0)
    return crater_error_wrap(err, "namespace %s", name);
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  sqlite3_stmt *st = crater__db_prepare(
      s->db,
      "INSERT INTO namespaces (name, created_at, updated_at) VALUES (?1, ?2, ?2) "
      "ON CONFLICT DO NOTHING",
      err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, name);
  sqlite3_bind_int64(st, 2, crater__now_ns());
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    return crater__store_rollback(s);
  if (sqlite3_changes(crater_db_handle(s->db)) == 0) {
    crater_db_rollback(s->db);
    return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST, "namespace %s: already exists",
                             name);
  }
  if (crater__db_labels_store(s->db, "namespace_labels", "namespace", name, name, labels, false,
                              err) < 0 ||
      crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "namespace %s", name);
  }
  return 0;
}

static int
load_row(crater_store_t *s, const char *ns, sqlite3_stmt *st, void *rec, crater_error_t *err)
{
  crater_namespace_t *out = rec;
  (void) ns;
  memset(out, 0, sizeof *out);
  out->name = crater__db_column_strdup(st, 0);
  out->created_at = sqlite3_column_int64(st, 1);
  out->updated_at = sqlite3_column_int64(st, 2);
  return crater__db_labels_load(s->db, "namespace_labels", "namespace", out->name, out->name,
                                &out->labels, err);
}

static void
clear_row(void *rec)
{
  crater_namespace_clear(rec);
}

int
crater_store_namespace_get(crater_store_t *s, const char *name, crater_namespace_t *out,
                           crater_error_t *err)
{
  if (crater_namespace_validate(name, err) < 0)
    return -1;
  return crater__meta_get(s, NULL, name,
                          "SELECT name, created_at, updated_at FROM namespaces WHERE name = ?1",
                          "namespace", load_row, clear_row, out, err);
}

int
crater_store_namespace_list(crater_store_t *s, crater_namespace_t **out, size_t *n,
                            crater_error_t *err)
{
  void *arr;
  int r = crater__meta_list(
      s, NULL, "SELECT name, created_at, updated_at FROM namespaces ORDER BY name", NULL, 0,
      sizeof **out, load_row, NULL, clear_row, &arr, n, "namespaces", err);
  *out = arr;
  return r;
}

int
crater_store_namespace_delete(crater_store_t *s, const char *name, crater_error_t *err)
{
  if (crater_namespace_validate(name, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (crater__store_namespace_exists(s, name, err) < 0)
    return crater__store_rollback(s);
  cleanup_free char *what = NULL;
  for (size_t i = 0; i < sizeof holders / sizeof holders[0]; i++) {
    cleanup_free char *sql =
        xasprintf("SELECT count(*) FROM %s WHERE namespace = ?1", holders[i].table);
    sqlite3_stmt *st = crater__db_prepare(s->db, sql, err);
    if (st == NULL)
      return crater__store_rollback(s);
    crater__db_bind_text(st, 1, name);
    int64_t cnt = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    crater__db_release(s->db, st);
    if (cnt == 0)
      continue;
    char *w = xasprintf("%s%s%lld %s", what ? what : "", what ? ", " : "", (long long) cnt,
                        cnt == 1 ? holders[i].one : holders[i].many);
    free(what);
    what = w;
  }
  /* ingests are files, not rows */
  cleanup_free char *prefix = xasprintf("%s/", name);
  crater_ingest_status_t *ing = NULL;
  size_t ning = 0;
  if (crater_content_status_list(s->content, prefix, &ing, &ning, err) < 0)
    return crater__store_rollback(s);
  crater_ingest_status_free(ing, ning);
  if (ning > 0) {
    char *w = xasprintf("%s%s%zu %s", what ? what : "", what ? ", " : "", ning,
                        ning == 1 ? "ingest" : "ingests");
    free(what);
    what = w;
  }
  if (what) {
    crater_db_rollback(s->db);
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, ENOTEMPTY,
                             "namespace %s: not empty: %s", name, what);
  }
  sqlite3_stmt *st = crater__db_prepare(s->db, "DELETE FROM namespaces WHERE name = ?1", err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, name);
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0 || crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "delete namespace %s", name);
  }
  return 0;
}

int
crater_store_namespace_set_labels(crater_store_t *s, const char *name,
                                  const crater_labels_t *labels, bool replace, crater_error_t *err)
{
  if (crater_namespace_validate(name, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  sqlite3_stmt *st = NULL;
  int r = crater__store_namespace_exists(s, name, err);
  if (r == 0)
    r = crater__db_labels_store(s->db, "namespace_labels", "namespace", name, name, labels, replace,
                                err);
  if (r == 0 && (st = crater__db_prepare(
                     s->db, "UPDATE namespaces SET updated_at = ?2 WHERE name = ?1", err))) {
    crater__db_bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, crater__now_ns());
    r = crater__db_step_done(s->db, st, err);
    crater__db_release(s->db, st);
  } else if (r == 0) {
    r = -1;
  }
  if (r < 0 || crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "label namespace %s", name);
  }
  return 0;
}

void
crater_namespace_clear(crater_namespace_t *ns)
{
  if (ns == NULL)
    return;
  free(ns->name);
  ns->name = NULL;
  crater_labels_clear(&ns->labels);
}

void
crater_namespaces_free(crater_namespace_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    crater_namespace_clear(&arr[i]);
  free(arr);
}
