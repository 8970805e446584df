/*
 * Snapshot metadata: the namespaced key -> backend id mapping, parent
 * chains, kinds, labels, and the operations that keep metadata and backend
 * data in step (see snapshots.h for the model and lifecycle).
 *
 * Backend instances are opened on first use per (store root, snapshotter)
 * and kept for the life of the process (their init probes are not free).
 */
#include "metadata/snapshots.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "metadata/store_internal.h"

/* --- backend instances ------------------------------------------------------ */

typedef struct inst_s {
  char *root;
  char *name;
  crater_snapshotter_t *sn;
  struct inst_s *next;
} inst_t;

static pthread_mutex_t inst_lock = PTHREAD_MUTEX_INITIALIZER;
static inst_t *instances;

static crater_snapshotter_t *
backend(crater_store_t *s, const char *name, crater_error_t *err)
{
  if (name == NULL || name[0] == '\0') {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "snapshotter: empty name");
    return NULL;
  }
  const char *root = crater_store_root(s);
  pthread_mutex_lock(&inst_lock);
  for (inst_t *i = instances; i; i = i->next) {
    if (strcmp(i->root, root) == 0 && strcmp(i->name, name) == 0) {
      pthread_mutex_unlock(&inst_lock);
      return i->sn;
    }
  }
  crater_snapshotter_t *sn = crater_snapshotter_open(name, root, err);
  if (sn) {
    inst_t *i = xmalloc0(sizeof *i);
    i->root = xstrdup(root);
    i->name = xstrdup(name);
    i->sn = sn;
    i->next = instances;
    instances = i;
  }
  pthread_mutex_unlock(&inst_lock);
  return sn;
}

/* --- rows --------------------------------------------------------------------- */

typedef struct {
  int64_t id;
  int64_t parent; /* 0: none */
  crater_snapshot_kind_t kind;
} row_t;

/* Looks up (ns, snapshotter, key).  Returns 1 found, 0 missing, -1 error. */
static int
row_get(crater_store_t *s, const char *ns, const char *sn, const char *key, row_t *out,
        crater_error_t *err)
{
  sqlite3_stmt *st = crater__db_prepare(s->db,
                                        "SELECT id, parent, kind FROM snapshots WHERE namespace = "
                                        "?1 AND snapshotter = ?2 AND key = ?3",
                                        err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, sn);
  crater__db_bind_text(st, 3, key);
  int rc = sqlite3_step(st);
  int r = 0;
  if (rc == SQLITE_ROW) {
    out->id = sqlite3_column_int64(st, 0);
    out->parent = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 1);
    out->kind = crater_snapshot_kind_parse((const char *) sqlite3_column_text(st, 2));
    r = 1;
  } else if (rc != SQLITE_DONE) {
    r = crater__db_error(s->db, rc, err, "metadata: snapshot %s", key);
  }
  crater__db_release(s->db, st);
  return r;
}

static int
row_need(crater_store_t *s, const char *ns, const char *sn, const char *key, row_t *out,
         crater_error_t *err)
{
  int r = row_get(s, ns, sn, key, out, err);
  if (r == 0)
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "snapshot %s: not found", key);
  return r < 0 ? -1 : 0;
}

typedef struct {
  char **ids; /* decimal ids, nearest parent first */
  size_t n;
} chain_t;

static void
chain_free(chain_t *c)
{
  for (size_t i = 0; i < c->n; i++)
    free(c->ids[i]);
  free(c->ids);
  c->ids = NULL;
  c->n = 0;
}

/* The parent chain above id (not including id). */
static int
chain_load(crater_store_t *s, int64_t parent, chain_t *out, crater_error_t *err)
{
  out->ids = NULL;
  out->n = 0;
  if (parent == 0)
    return 0;
  sqlite3_stmt *st = crater__db_prepare(s->db,
                                        "WITH RECURSIVE chain(id, parent, depth) AS ("
                                        "  SELECT id, parent, 0 FROM snapshots WHERE id = ?1"
                                        "  UNION ALL SELECT p.id, p.parent, c.depth + 1 FROM "
                                        "snapshots p JOIN chain c ON p.id = c.parent)"
                                        " SELECT id FROM chain ORDER BY depth",
                                        err);
  if (st == NULL)
    return -1;
  sqlite3_bind_int64(st, 1, parent);
  int rc;
  size_t cap = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->n == cap) {
      cap = cap ? cap * 2 : 16;
      out->ids = xrealloc(out->ids, cap * sizeof *out->ids);
    }
    out->ids[out->n++] = xasprintf("%lld", (long long) sqlite3_column_int64(st, 0));
  }
  crater__db_release(s->db, st);
  if (rc != SQLITE_DONE) {
    chain_free(out);
    return crater__db_error(s->db, rc, err, "metadata: parent chain");
  }
  return 0;
}

static int
check_key(const char *what, const char *key, crater_error_t *err)
{
  if (key == NULL || key[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "%s snapshot: empty key",
                             what);
  return 0;
}

/* --- operations ------------------------------------------------------------- */

static int
create_snapshot(crater_store_t *s, const char *ns, const char *sname, crater_snapshot_kind_t kind,
                const char *key, const char *parent, const crater_labels_t *labels,
                crater_mounts_t *out, crater_error_t *err)
{
  const char *what = kind == CRATER_SNAPSHOT_VIEW ? "view" : "prepare";
  if (check_key(what, key, err) < 0)
    return -1;
  if (labels && crater_labels_validate(labels, err) < 0)
    return crater_error_wrap(err, "%s snapshot %s", what, key);
  crater_snapshotter_t *sn = backend(s, sname, err);
  if (sn == NULL)
    return crater_error_wrap(err, "%s snapshot %s", what, key);
  if (crater_db_begin(s->db, err) < 0)
    return crater_error_wrap(err, "%s snapshot %s", what, key);
  row_t prow = { 0 }, existing;
  chain_t chain = { 0 };
  char idbuf[32];
  bool created = false;
  /* a missing namespace is created on first use, like every object */
  int r = crater__store_ensure_namespace(s, ns, err);
  if (r < 0)
    goto fail;
  r = row_get(s, ns, sname, key, &existing, err);
  if (r < 0)
    goto fail;
  if (r == 1) {
    crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST, "snapshot %s: already exists", key);
    goto fail;
  }
  if (parent && parent[0]) {
    r = row_get(s, ns, sname, parent, &prow, err);
    if (r < 0)
      goto fail;
    if (r == 0) {
      crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "parent %s: not found", parent);
      goto fail;
    }
    if (prow.kind != CRATER_SNAPSHOT_COMMITTED) {
      crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0, "parent %s is not committed (%s)",
                        parent, crater_snapshot_kind_name(prow.kind));
      goto fail;
    }
  }
  sqlite3_stmt *st = crater__db_prepare(
      s->db,
      "INSERT INTO snapshots (namespace, snapshotter, key, parent, kind, created_at, updated_at)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
      err);
  if (st == NULL)
    goto fail;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, sname);
  crater__db_bind_text(st, 3, key);
  if (prow.id)
    sqlite3_bind_int64(st, 4, prow.id);
  else
    sqlite3_bind_null(st, 4);
  crater__db_bind_text(st, 5, crater_snapshot_kind_name(kind));
  sqlite3_bind_int64(st, 6, crater__now_ns());
  r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    goto fail;
  int64_t id = sqlite3_last_insert_rowid(crater_db_handle(s->db));
  snprintf(idbuf, sizeof idbuf, "%lld", (long long) id);
  if (labels && labels->n &&
      crater__db_labels_store(s->db, "snapshot_labels", "id", ns, idbuf, labels, false, err) < 0)
    goto fail;
  if (chain_load(s, prow.id, &chain, err) < 0)
    goto fail;
  /* a stale directory with this id (crash before a commit) is garbage */
  {
    crater_error_t e2 = NULL;
    if (sn->driver->remove(sn, idbuf, &e2) < 0)
      crater_error_release(&e2);
  }
  if (sn->driver->create(sn, idbuf, kind, (const char *const *) chain.ids, chain.n, err) < 0)
    goto fail;
  created = true;
  if (out &&
      sn->driver->mounts(sn, idbuf, kind, (const char *const *) chain.ids, chain.n, out, err) < 0)
    goto fail;
  if (crater_db_commit(s->db, err) < 0)
    goto fail_nodb;
  chain_free(&chain);
  return 0;
fail:
  crater_db_rollback(s->db);
fail_nodb:
  if (created) {
    crater_error_t e2 = NULL;
    if (sn->driver->remove(sn, idbuf, &e2) < 0)
      crater_error_release(&e2);
  }
  if (out)
    crater_mounts_clear(out);
  chain_free(&chain);
  return crater_error_wrap(err, "%s snapshot %s", what, key);
}

int
crater_snapshot_prepare(crater_store_t *s, const char *ns, const char *snapshotter, const char *key,
                        const char *parent, const crater_labels_t *labels, crater_mounts_t *out,
                        crater_error_t *err)
{
  return create_snapshot(s, ns, snapshotter, CRATER_SNAPSHOT_ACTIVE, key, parent, labels, out, err);
}

int
crater_snapshot_view(crater_store_t *s, const char *ns, const char *snapshotter, const char *key,
                     const char *parent, const crater_labels_t *labels, crater_mounts_t *out,
                     crater_error_t *err)
{
  return create_snapshot(s, ns, snapshotter, CRATER_SNAPSHOT_VIEW, key, parent, labels, out, err);
}

int
crater_snapshot_commit(crater_store_t *s, const char *ns, const char *sname, const char *name,
                       const char *key, const crater_labels_t *labels, crater_error_t *err)
{
  if (check_key("commit", key, err) < 0 || check_key("commit", name, err) < 0)
    return -1;
  if (labels && crater_labels_validate(labels, err) < 0)
    return crater_error_wrap(err, "commit snapshot %s", key);
  crater_snapshotter_t *sn = backend(s, sname, err);
  if (sn == NULL)
    return crater_error_wrap(err, "commit snapshot %s", key);
  if (crater_db_begin(s->db, err) < 0)
    return crater_error_wrap(err, "commit snapshot %s", key);
  row_t row, other;
  char idbuf[32];
  int r = row_need(s, ns, sname, key, &row, err);
  if (r < 0)
    goto fail;
  if (row.kind != CRATER_SNAPSHOT_ACTIVE) {
    crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0, "snapshot %s is %s, not active", key,
                      crater_snapshot_kind_name(row.kind));
    goto fail;
  }
  r = row_get(s, ns, sname, name, &other, err);
  if (r < 0)
    goto fail;
  if (r == 1) {
    crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST, "snapshot %s: already exists", name);
    goto fail;
  }
  snprintf(idbuf, sizeof idbuf, "%lld", (long long) row.id);
  sqlite3_stmt *st = crater__db_prepare(
      s->db, "UPDATE snapshots SET key = ?2, kind = 'committed', updated_at = ?3 WHERE id = ?1",
      err);
  if (st == NULL)
    goto fail;
  sqlite3_bind_int64(st, 1, row.id);
  crater__db_bind_text(st, 2, name);
  sqlite3_bind_int64(st, 3, crater__now_ns());
  r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    goto fail;
  if (labels && labels->n &&
      crater__db_labels_store(s->db, "snapshot_labels", "id", ns, idbuf, labels, true, err) < 0)
    goto fail;
  if (sn->driver->commit(sn, idbuf, err) < 0)
    goto fail;
  if (crater_db_commit(s->db, err) < 0)
    return crater_error_wrap(err, "commit snapshot %s as %s", key, name);
  return 0;
fail:
  crater_db_rollback(s->db);
  return crater_error_wrap(err, "commit snapshot %s as %s", key, name);
}

static bool defer_removals;
static size_t deferred_removals;

void
crater_snapshot_defer_removals(bool on)
{
  defer_removals = on;
}

size_t
crater_snapshot_deferred(void)
{
  return deferred_removals;
}

int
crater_snapshot_remove(crater_store_t *s, const char *ns, const char *sname, const char *key,
                       crater_error_t *err)
{
  if (check_key("remove", key, err) < 0)
    return -1;
  crater_snapshotter_t *sn = backend(s, sname, err);
  if (sn == NULL)
    return crater_error_wrap(err, "remove snapshot %s", key);
  if (crater_db_begin(s->db, err) < 0)
    return crater_error_wrap(err, "remove snapshot %s", key);
  row_t row;
  char idbuf[32];
  if (row_need(s, ns, sname, key, &row, err) < 0)
    goto fail;
  sqlite3_stmt *st =
      crater__db_prepare(s->db, "SELECT count(*) FROM snapshots WHERE parent = ?1", err);
  if (st == NULL)
    goto fail;
  sqlite3_bind_int64(st, 1, row.id);
  int64_t children = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  crater__db_release(s->db, st);
  if (children > 0) {
    crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0, "has %lld child%s",
                      (long long) children, children == 1 ? "" : "ren");
    goto fail;
  }
  st = crater__db_prepare(s->db, "DELETE FROM snapshots WHERE id = ?1", err);
  if (st == NULL)
    goto fail;
  sqlite3_bind_int64(st, 1, row.id);
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    goto fail;
  snprintf(idbuf, sizeof idbuf, "%lld", (long long) row.id);
  if (crater_db_commit(s->db, err) < 0)
    return crater_error_wrap(err, "remove snapshot %s", key);
  if (defer_removals) {
    /* unreferenced now: cleanup's (ids are never reused: AUTOINCREMENT) */
    deferred_removals++;
    return 0;
  }
  crater_error_t e2 = NULL;
  if (sn->driver->remove(sn, idbuf, &e2) < 0) {
    crater_warn("remove snapshot %s: %s (left for cleanup)", key, e2->msg);
    crater_error_release(&e2);
  }
  return 0;
fail:
  crater_db_rollback(s->db);
  return crater_error_wrap(err, "remove snapshot %s", key);
}

int
crater_snapshot_mounts(crater_store_t *s, const char *ns, const char *sname, const char *key,
                       crater_mounts_t *out, crater_error_t *err)
{
  crater_snapshotter_t *sn = backend(s, sname, err);
  if (sn == NULL)
    return crater_error_wrap(err, "mounts of snapshot %s", key);
  row_t row;
  chain_t chain = { 0 };
  char idbuf[32];
  if (row_need(s, ns, sname, key, &row, err) < 0)
    return crater_error_wrap(err, "mounts of snapshot %s", key);
  if (row.kind == CRATER_SNAPSHOT_COMMITTED)
    return crater_error_make(
        err, CRATER_ERR_FAILED_PRECONDITION, 0,
        "mounts of snapshot %s: committed snapshots are not mounted (create a view)", key);
  if (chain_load(s, row.parent, &chain, err) < 0)
    return crater_error_wrap(err, "mounts of snapshot %s", key);
  snprintf(idbuf, sizeof idbuf, "%lld", (long long) row.id);
  int r =
      sn->driver->mounts(sn, idbuf, row.kind, (const char *const *) chain.ids, chain.n, out, err);
  chain_free(&chain);
  if (r < 0)
    return crater_error_wrap(err, "mounts of snapshot %s", key);
  return 0;
}

static int
load_infos(crater_store_t *s, const char *ns, const char *sname, const char *key,
           crater_snapshot_info_t **out, size_t *n, crater_error_t *err)
{
  sqlite3_stmt *st = crater__db_prepare(
      s->db,
      "SELECT c.id, c.key, p.key, c.kind, c.created_at, c.updated_at FROM snapshots c"
      " LEFT JOIN snapshots p ON p.id = c.parent"
      " WHERE c.namespace = ?1 AND c.snapshotter = ?2 AND (?3 IS NULL OR c.key = ?3) ORDER BY "
      "c.key",
      err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, sname);
  crater__db_bind_text(st, 3, key);
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      *out = xrealloc(*out, cap * sizeof **out);
    }
    crater_snapshot_info_t *i = &(*out)[(*n)++];
    memset(i, 0, sizeof *i);
    i->id = sqlite3_column_int64(st, 0);
    i->key = crater__db_column_strdup(st, 1);
    i->parent = crater__db_column_strdup(st, 2);
    i->kind = crater_snapshot_kind_parse((const char *) sqlite3_column_text(st, 3));
    i->created_at = sqlite3_column_int64(st, 4);
    i->updated_at = sqlite3_column_int64(st, 5);
  }
  crater__db_release(s->db, st);
  if (rc != SQLITE_DONE) {
    crater_snapshot_infos_free(*out, *n);
    *out = NULL;
    *n = 0;
    return crater__db_error(s->db, rc, err, "metadata: snapshots");
  }
  for (size_t k = 0; k < *n; k++) {
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long) (*out)[k].id);
    if (crater__db_labels_load(s->db, "snapshot_labels", "id", ns, idbuf, &(*out)[k].labels, err) <
        0) {
      crater_snapshot_infos_free(*out, *n);
      *out = NULL;
      *n = 0;
      return -1;
    }
  }
  return 0;
}

int
crater_snapshot_stat(crater_store_t *s, const char *ns, const char *sname, const char *key,
                     crater_snapshot_info_t *out, crater_error_t *err)
{
  crater_snapshot_info_t *arr;
  size_t n;
  if (check_key("stat", key, err) < 0)
    return -1;
  if (load_infos(s, ns, sname, key, &arr, &n, err) < 0)
    return crater_error_wrap(err, "stat snapshot %s", key);
  if (n == 0) {
    free(arr);
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "snapshot %s: not found", key);
  }
  *out = arr[0];
  for (size_t i = 1; i < n; i++)
    crater_snapshot_info_clear(&arr[i]);
  free(arr);
  return 0;
}

int
crater_snapshot_update(crater_store_t *s, const char *ns, const char *sname, const char *key,
                       const crater_labels_t *labels, bool replace, crater_snapshot_info_t *out,
                       crater_error_t *err)
{
  if (check_key("update", key, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return crater_error_wrap(err, "update snapshot %s", key);
  row_t row;
  char idbuf[32];
  if (row_need(s, ns, sname, key, &row, err) < 0)
    goto fail;
  snprintf(idbuf, sizeof idbuf, "%lld", (long long) row.id);
  if (crater__db_labels_store(s->db, "snapshot_labels", "id", ns, idbuf, labels, replace, err) < 0)
    goto fail;
  sqlite3_stmt *st =
      crater__db_prepare(s->db, "UPDATE snapshots SET updated_at = ?2 WHERE id = ?1", err);
  if (st == NULL)
    goto fail;
  sqlite3_bind_int64(st, 1, row.id);
  sqlite3_bind_int64(st, 2, crater__now_ns());
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    goto fail;
  if (crater_db_commit(s->db, err) < 0)
    return crater_error_wrap(err, "update snapshot %s", key);
  if (out)
    return crater_snapshot_stat(s, ns, sname, key, out, err);
  return 0;
fail:
  crater_db_rollback(s->db);
  return crater_error_wrap(err, "update snapshot %s", key);
}

int
crater_snapshot_usage(crater_store_t *s, const char *ns, const char *sname, const char *key,
                      crater_snapshot_usage_t *out, crater_error_t *err)
{
  crater_snapshotter_t *sn = backend(s, sname, err);
  if (sn == NULL)
    return crater_error_wrap(err, "usage of snapshot %s", key);
  row_t row;
  if (row_need(s, ns, sname, key, &row, err) < 0)
    return crater_error_wrap(err, "usage of snapshot %s", key);
  char idbuf[32];
  snprintf(idbuf, sizeof idbuf, "%lld", (long long) row.id);
  if (sn->driver->usage(sn, idbuf, row.kind, out, err) < 0)
    return crater_error_wrap(err, "usage of snapshot %s", key);
  return 0;
}

static const char *
info_lookup(const void *rec, const char *field, char *scratch, size_t len)
{
  const crater_snapshot_info_t *i = rec;
  if (strcmp(field, "name") == 0 || strcmp(field, "key") == 0)
    return i->key;
  if (strcmp(field, "parent") == 0)
    return i->parent;
  if (strcmp(field, "kind") == 0)
    return crater_snapshot_kind_name(i->kind);
  if (strncmp(field, "labels.", 7) == 0)
    return crater_labels_get(&i->labels, field + 7);
  return NULL;
}

int
crater_snapshot_walk(crater_store_t *s, const char *ns, const char *sname,
                     const char *const *filters, size_t nfilters, crater_snapshot_info_t **out,
                     size_t *n, crater_error_t *err)
{
  crater_filter_t *f = crater_filter_parse(filters, nfilters, err);
  if (f == NULL)
    return crater_error_wrap(err, "walk snapshots");
  crater_snapshot_info_t *arr;
  size_t total;
  if (load_infos(s, ns, sname, NULL, &arr, &total, err) < 0) {
    crater_filter_free(f);
    return crater_error_wrap(err, "walk snapshots");
  }
  size_t k = 0;
  for (size_t i = 0; i < total; i++) {
    if (crater_filter_match(f, info_lookup, &arr[i]))
      arr[k++] = arr[i];
    else
      crater_snapshot_info_clear(&arr[i]);
  }
  crater_filter_free(f);
  *out = arr;
  *n = k;
  return 0;
}

#define TRASH_PREFIX ".trash-"

/* Removes every <snapdir>/.trash-* (what cleanup renamed, and what a
 * killed one left); the count removed.  Another cleanup may be removing
 * the same entry: one that is gone meanwhile is not an error. */
static size_t
remove_trash(crater_snapshotter_t *sn)
{
  size_t n = 0;
  DIR *d = opendir(sn->snapdir);
  if (d == NULL)
    return 0;
  char **names = NULL;
  size_t k = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, TRASH_PREFIX, strlen(TRASH_PREFIX)) != 0)
      continue;
    if (k == cap) {
      cap = cap ? cap * 2 : 16;
      names = xrealloc(names, cap * sizeof *names);
    }
    names[k++] = xstrdup(de->d_name);
  }
  closedir(d);
  for (size_t i = 0; i < k; i++) {
    crater_error_t e = NULL;
    if (sn->driver->remove(sn, names[i], &e) == 0) {
      n++;
    } else {
      if (e->status != ENOENT)
        crater_warn("cleanup: remove %s/%s: %s", sn->snapdir, names[i], e->msg);
      crater_error_release(&e);
    }
    free(names[i]);
  }
  free(names);
  return n;
}

int
crater_snapshot_cleanup(crater_store_t *s, const char *sname, size_t *removed, crater_error_t *err)
{
  crater_snapshotter_t *sn = backend(s, sname, err);
  if (sn == NULL)
    return crater_error_wrap(err, "cleanup snapshots");
  if (removed)
    *removed = 0;
  /* hold the write lock: snapshots being created are inside a writer.
   * Garbage is only renamed under it: an id whose creation was rolled
   * back can be given again once the lock is released. */
  if (crater_db_begin(s->db, err) < 0)
    return crater_error_wrap(err, "cleanup snapshots");
  char **ids = NULL;
  size_t n = 0;
  int r = crater_snapshotter_list_ids(sn, &ids, &n, err);
  sqlite3_stmt *st =
      r < 0 ? NULL
            : crater__db_prepare(s->db,
                                 "SELECT 1 FROM snapshots WHERE id = ?1 AND snapshotter = ?2", err);
  if (st == NULL)
    r = -1;
  for (size_t i = 0; r == 0 && i < n; i++) {
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, strtoll(ids[i], NULL, 10));
    crater__db_bind_text(st, 2, sname);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
      continue;
    if (rc != SQLITE_DONE) {
      r = crater__db_error(s->db, rc, err, "metadata: snapshot %s", ids[i]);
      break;
    }
    crater_debug("cleanup: removing unreferenced snapshot data %s/%s", sn->snapdir, ids[i]);
    /* a name of this call's own: trash of the same id may be there (a
     * killed cleanup's, of an id given again), or another cleanup's */
    static unsigned seq;
    cleanup_free char *from = xasprintf("%s/%s", sn->snapdir, ids[i]);
    cleanup_free char *to =
        xasprintf("%s/" TRASH_PREFIX "%s-%d-%u", sn->snapdir, ids[i], (int) getpid(), seq++);
    if (rename(from, to) < 0 && errno != ENOENT)
      crater_warn("cleanup: rename %s: %s (left)", from, strerror(errno));
  }
  if (st)
    crater__db_release(s->db, st);
  for (size_t i = 0; i < n; i++)
    free(ids[i]);
  free(ids);
  crater_db_rollback(s->db); /* read-only transaction */
  if (r < 0)
    return crater_error_wrap(err, "cleanup snapshots");
  size_t gone = remove_trash(sn);
  if (removed)
    *removed = gone;
  return 0;
}

char *
crater_snapshot_apply_dir(crater_store_t *s, const char *ns, const char *sname, const char *key,
                          const char **whiteouts, crater_error_t *err)
{
  crater_snapshotter_t *sn = backend(s, sname, err);
  if (sn == NULL) {
    crater_error_wrap(err, "apply dir of snapshot %s", key);
    return NULL;
  }
  row_t row;
  if (row_need(s, ns, sname, key, &row, err) < 0) {
    crater_error_wrap(err, "apply dir of snapshot %s", key);
    return NULL;
  }
  if (row.kind != CRATER_SNAPSHOT_ACTIVE) {
    crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                      "apply into snapshot %s: it is %s, not active", key,
                      crater_snapshot_kind_name(row.kind));
    return NULL;
  }
  if (whiteouts)
    *whiteouts = sn->driver->whiteouts;
  char idbuf[32];
  snprintf(idbuf, sizeof idbuf, "%lld", (long long) row.id);
  return crater_snapshotter_fs_dir(sn, idbuf);
}

void
crater_snapshot_info_clear(crater_snapshot_info_t *info)
{
  if (info == NULL)
    return;
  free(info->key);
  free(info->parent);
  crater_labels_clear(&info->labels);
  memset(info, 0, sizeof *info);
}

void
crater_snapshot_infos_free(crater_snapshot_info_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    crater_snapshot_info_clear(&arr[i]);
  free(arr);
}
