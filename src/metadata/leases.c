/*
 * Leases: named, optionally expiring holds that keep resources (content,
 * ingests, snapshots) from garbage collection while work is in progress,
 * as containerd's core/metadata/leases.go.  This file stores the data; GC
 * (later) reads it.
 */
#include "metadata/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

/* containerd identifiers: [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, <= 76. */
static int
validate_id(const char *id, crater_error_t *err)
{
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > 76)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "lease id must be 1 to 76 characters");
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    bool sep = c == '.' || c == '_' || c == '-';
    if (!alnum &&
        !(sep && i > 0 && i < n - 1 && !(id[i - 1] == '.' || id[i - 1] == '_' || id[i - 1] == '-')))
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "lease '%s': invalid character at %zu", id, i + 1);
  }
  return 0;
}

static int
validate_kind(const char *kind, crater_error_t *err)
{
  if (kind && (strcmp(kind, "content") == 0 || strcmp(kind, "ingest") == 0 ||
               (crater__str_has_prefix(kind, "snapshots/") && kind[10] != '\0')))
    return 0;
  return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                           "lease resource kind '%.64s': want content, ingest or "
                           "snapshots/<snapshotter>",
                           kind ? kind : "");
}

int
crater_store_lease_create(crater_store_t *s, const char *ns, const char *id,
                          const crater_labels_t *labels, int64_t expire_seconds,
                          crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || validate_id(id, err) < 0)
    return -1;
  if (labels && crater_labels_validate(labels, err) < 0)
    return crater_error_wrap(err, "lease %s", id);
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (crater__store_ensure_namespace(s, ns, err) < 0)
    return crater__store_rollback(s);
  sqlite3_stmt *st = crater__db_prepare(
      s->db,
      "INSERT INTO leases (namespace, id, created_at, expire_at) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT DO NOTHING",
      err);
  if (st == NULL)
    return crater__store_rollback(s);
  int64_t now = crater__now_ns();
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, id);
  sqlite3_bind_int64(st, 3, now);
  if (expire_seconds > 0)
    sqlite3_bind_int64(st, 4, now + expire_seconds * 1000000000);
  else
    sqlite3_bind_null(st, 4);
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    return crater__store_rollback(s);
  if (sqlite3_changes(crater_db_handle(s->db)) == 0) {
    crater_db_rollback(s->db);
    return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST,
                             "lease %s: already exists in namespace %s", id, ns);
  }
  if (crater__db_labels_store(s->db, "lease_labels", "id", ns, id, labels, false, err) < 0 ||
      crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "create lease %s", id);
  }
  return 0;
}

static int
load_resources(crater_store_t *s, const char *ns, crater_lease_t *l, crater_error_t *err)
{
  sqlite3_stmt *st = crater__db_prepare(
      s->db,
      "SELECT kind, key FROM lease_resources WHERE namespace = ?1 AND lease = ?2 "
      "ORDER BY kind, key",
      err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, l->id);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    l->resources = xrealloc(l->resources, (l->nresources + 1) * sizeof *l->resources);
    l->resources[l->nresources].kind = crater__db_column_strdup(st, 0);
    l->resources[l->nresources].key = crater__db_column_strdup(st, 1);
    l->nresources++;
  }
  crater__db_release(s->db, st);
  if (rc != SQLITE_DONE)
    return crater__db_error(s->db, rc, err, "lease %s resources", l->id);
  return 0;
}

static int
load_lease(crater_store_t *s, const char *ns, sqlite3_stmt *st, void *rec, crater_error_t *err)
{
  crater_lease_t *l = rec;
  memset(l, 0, sizeof *l);
  l->id = crater__db_column_strdup(st, 0);
  l->created_at = sqlite3_column_int64(st, 1);
  l->expire_at = sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 2);
  if (crater__db_labels_load(s->db, "lease_labels", "id", ns, l->id, &l->labels, err) < 0)
    return -1;
  return load_resources(s, ns, l, err);
}

static void
clear_lease(void *rec)
{
  crater_lease_clear(rec);
}

int
crater_store_lease_list(crater_store_t *s, const char *ns, crater_lease_t **out, size_t *n,
                        crater_error_t *err)
{
  void *arr;
  int r = crater__meta_list(
      s, ns, "SELECT id, created_at, expire_at FROM leases WHERE namespace = ?1 ORDER BY id", NULL,
      0, sizeof **out, load_lease, NULL, clear_lease, &arr, n, "leases", err);
  *out = arr;
  return r;
}

/* Runs one statement with (ns, id[, kind, key]) in its own transaction and
 * fails with NOT_FOUND when it changed nothing. */
static int
exec_lease(crater_store_t *s, const char *sql, const char *ns, const char *id, const char *kind,
           const char *key, bool need_change, crater_error_t *err)
{
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  sqlite3_stmt *st = NULL;
  if (kind) { /* the lease itself must exist */
    st = crater__db_prepare(s->db, "SELECT 1 FROM leases WHERE namespace = ?1 AND id = ?2", err);
    if (st == NULL)
      return crater__store_rollback(s);
    crater__db_bind_text(st, 1, ns);
    crater__db_bind_text(st, 2, id);
    int rc = sqlite3_step(st);
    crater__db_release(s->db, st);
    if (rc != SQLITE_ROW) {
      crater_db_rollback(s->db);
      return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT,
                               "lease %s: not found in namespace %s", id, ns);
    }
  }
  st = crater__db_prepare(s->db, sql, err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, id);
  if (kind) {
    crater__db_bind_text(st, 3, kind);
    crater__db_bind_text(st, 4, key);
  }
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    return crater__store_rollback(s);
  if (need_change && sqlite3_changes(crater_db_handle(s->db)) == 0) {
    crater_db_rollback(s->db);
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT,
                             "lease %s: not found in namespace %s", id, ns);
  }
  return crater_db_commit(s->db, err);
}

int
crater_store_lease_delete(crater_store_t *s, const char *ns, const char *id, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || validate_id(id, err) < 0)
    return -1;
  return exec_lease(s, "DELETE FROM leases WHERE namespace = ?1 AND id = ?2", ns, id, NULL, NULL,
                    true, err);
}

int
crater_store_lease_add_resource(crater_store_t *s, const char *ns, const char *id, const char *kind,
                                const char *key, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || validate_id(id, err) < 0 ||
      validate_kind(kind, err) < 0)
    return -1;
  if (key == NULL || key[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "lease %s: empty resource key", id);
  if (strcmp(kind, "content") == 0 && crater_digest_validate(key, err) < 0)
    return crater_error_wrap(err, "lease %s", id);
  return exec_lease(s,
                    "INSERT INTO lease_resources (namespace, lease, kind, key) "
                    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    ns, id, kind, key, false, err);
}

int
crater_store_lease_delete_resource(crater_store_t *s, const char *ns, const char *id,
                                   const char *kind, const char *key, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || validate_id(id, err) < 0 ||
      validate_kind(kind, err) < 0)
    return -1;
  return exec_lease(s,
                    "DELETE FROM lease_resources WHERE namespace = ?1 AND lease = ?2 "
                    "AND kind = ?3 AND key = ?4",
                    ns, id, kind, key ? key : "", false, err);
}

void
crater_lease_clear(crater_lease_t *l)
{
  if (l == NULL)
    return;
  free(l->id);
  l->id = NULL;
  crater_labels_clear(&l->labels);
  for (size_t i = 0; i < l->nresources; i++) {
    free(l->resources[i].kind);
    free(l->resources[i].key);
  }
  free(l->resources);
  l->resources = NULL;
  l->nresources = 0;
}

void
crater_leases_free(crater_lease_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    crater_lease_clear(&arr[i]);
  free(arr);
}
