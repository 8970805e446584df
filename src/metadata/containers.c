/*
 * Containers: CRUD over the `containers` / `container_labels` tables (see
 * containers.h).  Each write is one BEGIN IMMEDIATE transaction so two
 * processes creating the same id race cleanly: one wins, the other gets
 * ALREADY_EXISTS.  JSON columns are checked to be objects (common/json_check.h) but
 * stored as given, so the record reads back byte for byte.
 */
#include "metadata/containers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json_check.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "metadata/store_internal.h"

#define MAX_ID 76

int
crater_container_id_validate(const char *id, crater_error_t *err)
{
  if (id == NULL || id[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "container: empty id");
  size_t n = strlen(id);
  if (n > MAX_ID)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "container '%.40s...': id longer than %d characters", id, MAX_ID);
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    bool sep = c == '.' || c == '_' || c == '-';
    if (!alnum && !(sep && i > 0))
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "container '%s': invalid character at %zu (want "
                               "[A-Za-z0-9][A-Za-z0-9_.-]*)",
                               id, i + 1);
  }
  return 0;
}

/* Checks that text (may be NULL unless required) is a JSON object
 * (without building it: common/json_check.h). */
static int
check_json_object(const char *id, const char *what, const char *text, bool required,
                  crater_error_t *err)
{
  if (text == NULL) {
    if (required)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "container %s: %s is required", id, what);
    return 0;
  }
  const char *why = NULL;
  size_t at = 0;
  if (!crater__json_check(text, strlen(text), true, &why, &at))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "container %s: %s: invalid JSON at byte %zu: %s", id, what, at, why);
  return 0;
}

static int
validate(const char *ns, const crater_container_t *c, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  if (crater_container_id_validate(c->id, err) < 0)
    return -1;
  if (c->runtime == NULL || c->runtime[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "container %s: runtime is required", c->id);
  if (c->snapshot_key && (c->snapshotter == NULL || c->snapshotter[0] == '\0'))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "container %s: snapshot key %s needs a snapshotter", c->id,
                             c->snapshot_key);
  if (check_json_object(c->id, "spec", c->spec, true, err) < 0 ||
      check_json_object(c->id, "runtime options", c->runtime_options, false, err) < 0 ||
      check_json_object(c->id, "extensions", c->extensions, false, err) < 0)
    return -1;
  if (crater_labels_validate(&c->labels, err) < 0)
    return crater_error_wrap(err, "container %s", c->id);
  return 0;
}

static int
not_found(const char *ns, const char *id, crater_error_t *err)
{
  return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT,
                           "container %s: not found in namespace %s", id ? id : "", ns);
}

int
crater_store_container_create(crater_store_t *s, const char *ns, crater_container_t *c,
                              crater_error_t *err)
{
  if (validate(ns, c, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (crater__store_ensure_namespace(s, ns, err) < 0)
    return crater__store_rollback(s);
  sqlite3_stmt *st = crater__db_prepare(
      s->db,
      "INSERT INTO containers (namespace, id, image, snapshotter, snapshot_key, spec, "
      "runtime, runtime_options, extensions, created_at, updated_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) ON CONFLICT DO NOTHING",
      err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, c->id);
  crater__db_bind_text(st, 3, c->image);
  crater__db_bind_text(st, 4, c->snapshotter);
  crater__db_bind_text(st, 5, c->snapshot_key);
  crater__db_bind_text(st, 6, c->spec);
  crater__db_bind_text(st, 7, c->runtime);
  crater__db_bind_text(st, 8, c->runtime_options);
  crater__db_bind_text(st, 9, c->extensions);
  int64_t now = crater__now_ns();
  sqlite3_bind_int64(st, 10, now);
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "create container %s", c->id);
  }
  if (sqlite3_changes(crater_db_handle(s->db)) == 0) {
    crater_db_rollback(s->db);
    return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST,
                             "container %s: already exists in namespace %s", c->id, ns);
  }
  if (crater__db_labels_store(s->db, "container_labels", "id", ns, c->id, &c->labels, true, err) <
          0 ||
      crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "create container %s", c->id);
  }
  c->created_at = c->updated_at = now;
  return 0;
}

static void
clear_row(void *rec)
{
  crater_container_clear(rec);
}

#define CONTAINER_COLS                                                                             \
  "id, image, snapshotter, snapshot_key, spec, runtime, runtime_options, extensions, "             \
  "created_at, updated_at"

static int
load_row(crater_store_t *s, const char *ns, sqlite3_stmt *st, void *rec, crater_error_t *err)
{
  crater_container_t *out = rec;
  memset(out, 0, sizeof *out);
  out->id = crater__db_column_strdup(st, 0);
  out->image = crater__db_column_strdup(st, 1);
  out->snapshotter = crater__db_column_strdup(st, 2);
  out->snapshot_key = crater__db_column_strdup(st, 3);
  out->spec = crater__db_column_strdup(st, 4);
  out->runtime = crater__db_column_strdup(st, 5);
  out->runtime_options = crater__db_column_strdup(st, 6);
  out->extensions = crater__db_column_strdup(st, 7);
  out->created_at = sqlite3_column_int64(st, 8);
  out->updated_at = sqlite3_column_int64(st, 9);
  return crater__db_labels_load(s->db, "container_labels", "id", ns, out->id, &out->labels, err);
}

int
crater_store_container_get(crater_store_t *s, const char *ns, const char *id,
                           crater_container_t *out, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || crater_container_id_validate(id, err) < 0)
    return -1;
  return crater__meta_get(
      s, ns, id, "SELECT " CONTAINER_COLS " FROM containers WHERE namespace = ?1 AND id = ?2",
      "container", load_row, clear_row, out, err);
}

static const char *
container_lookup(const void *rec, const char *field, char *scratch, size_t len)
{
  const crater_container_t *c = rec;
  (void) scratch;
  (void) len;
  if (strncmp(field, "labels.", 7) == 0)
    return crater_labels_get(&c->labels, field + 7);
  if (strcmp(field, "id") == 0)
    return c->id;
  if (strcmp(field, "image") == 0)
    return c->image;
  if (strcmp(field, "runtime") == 0 || strcmp(field, "runtime.name") == 0)
    return c->runtime;
  if (strcmp(field, "snapshotter") == 0)
    return c->snapshotter;
  if (strcmp(field, "snapshot_key") == 0 || strcmp(field, "snapshotkey") == 0)
    return c->snapshot_key;
  return NULL;
}

int
crater_store_container_list(crater_store_t *s, const char *ns, const char *const *filters,
                            size_t nfilters, crater_container_t **out, size_t *n,
                            crater_error_t *err)
{
  void *arr;
  int r = crater__meta_list(
      s, ns, "SELECT " CONTAINER_COLS " FROM containers WHERE namespace = ?1 ORDER BY id", filters,
      nfilters, sizeof **out, load_row, container_lookup, clear_row, &arr, n, "containers", err);
  *out = arr;
  return r;
}

static bool
str_differs(const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a != b;
  return strcmp(a, b) != 0;
}

/* What an update changes, decoded from the field paths. */
typedef struct {
  bool image, spec, runtime_options, extensions, labels_replace;
  crater_labels_t label_keys; /* labels.KEY paths: KEY -> value from c */
} update_mask_t;

static int
parse_fields(const crater_container_t *c, const char *const *fields, size_t nfields,
             update_mask_t *m, crater_error_t *err)
{
  memset(m, 0, sizeof *m);
  if (nfields == 0) {
    m->image = m->spec = m->runtime_options = m->extensions = m->labels_replace = true;
    return 0;
  }
  for (size_t i = 0; i < nfields; i++) {
    const char *f = fields[i];
    if (strcmp(f, "image") == 0)
      m->image = true;
    else if (strcmp(f, "spec") == 0)
      m->spec = true;
    else if (strcmp(f, "runtime_options") == 0 || strcmp(f, "runtime.options") == 0)
      m->runtime_options = true;
    else if (strcmp(f, "extensions") == 0)
      m->extensions = true;
    else if (strcmp(f, "labels") == 0)
      m->labels_replace = true;
    else if (strncmp(f, "labels.", 7) == 0 && f[7] != '\0') {
      const char *v = crater_labels_get(&c->labels, f + 7);
      crater_labels_set(&m->label_keys, f + 7, v ? v : "");
    } else {
      crater_labels_clear(&m->label_keys);
      if (strcmp(f, "snapshotter") == 0 || strcmp(f, "snapshot_key") == 0 ||
          strcmp(f, "runtime") == 0 || strcmp(f, "id") == 0)
        return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                                 "container %s: field %s is immutable", c->id, f);
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "container %s: unknown field path %s", c->id, f);
    }
  }
  return 0;
}

/* Checks the immutable fields against the stored row (full updates). */
static int
check_immutable(const crater_container_t *cur, const crater_container_t *c, crater_error_t *err)
{
  const char *which = NULL;
  if (c->runtime && str_differs(c->runtime, cur->runtime))
    which = "runtime";
  else if (c->snapshotter && str_differs(c->snapshotter, cur->snapshotter))
    which = "snapshotter";
  else if (c->snapshot_key && str_differs(c->snapshot_key, cur->snapshot_key))
    which = "snapshot_key";
  if (which)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "container %s: field %s is immutable", c->id, which);
  return 0;
}

int
crater_store_container_update(crater_store_t *s, const char *ns, const crater_container_t *c,
                              const char *const *fields, size_t nfields, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || crater_container_id_validate(c->id, err) < 0)
    return -1;
  update_mask_t m;
  if (parse_fields(c, fields, nfields, &m, err) < 0)
    return -1;
  int r = -1;
  sqlite3_stmt *st = NULL;
  crater_container_t cur = { 0 };
  if ((m.spec && check_json_object(c->id, "spec", c->spec, true, err) < 0) ||
      (m.runtime_options &&
       check_json_object(c->id, "runtime options", c->runtime_options, false, err) < 0) ||
      (m.extensions && check_json_object(c->id, "extensions", c->extensions, false, err) < 0) ||
      crater_labels_validate(&c->labels, err) < 0)
    goto out;
  if (crater_db_begin(s->db, err) < 0)
    goto out;
  if (crater_store_container_get(s, ns, c->id, &cur, err) < 0)
    goto fail;
  if (nfields == 0 && check_immutable(&cur, c, err) < 0)
    goto fail;
  /* COALESCE-free: unselected columns are rebound to their current value */
  st = crater__db_prepare(s->db,
                          "UPDATE containers SET image = ?3, spec = ?4, runtime_options = ?5, "
                          "extensions = ?6, updated_at = ?7 WHERE namespace = ?1 AND id = ?2",
                          err);
  if (st == NULL)
    goto fail;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, c->id);
  crater__db_bind_text(st, 3, m.image ? c->image : cur.image);
  crater__db_bind_text(st, 4, m.spec ? c->spec : cur.spec);
  crater__db_bind_text(st, 5, m.runtime_options ? c->runtime_options : cur.runtime_options);
  crater__db_bind_text(st, 6, m.extensions ? c->extensions : cur.extensions);
  sqlite3_bind_int64(st, 7, crater__now_ns());
  if (crater__db_step_done(s->db, st, err) < 0)
    goto fail;
  if (m.labels_replace && crater__db_labels_store(s->db, "container_labels", "id", ns, c->id,
                                                  &c->labels, true, err) < 0)
    goto fail;
  if (m.label_keys.n > 0 && crater__db_labels_store(s->db, "container_labels", "id", ns, c->id,
                                                    &m.label_keys, false, err) < 0)
    goto fail;
  if (crater_db_commit(s->db, err) < 0)
    goto fail;
  r = 0;
  goto out;
fail:
  crater_db_rollback(s->db);
  crater_error_wrap(err, "update container %s", c->id);
out:
  crater__db_release(s->db, st);
  crater_container_clear(&cur);
  crater_labels_clear(&m.label_keys);
  return r;
}

int
crater_store_container_delete(crater_store_t *s, const char *ns, const char *id,
                              crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0 || crater_container_id_validate(id, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  sqlite3_stmt *st =
      crater__db_prepare(s->db, "DELETE FROM containers WHERE namespace = ?1 AND id = ?2", err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, id);
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "delete container %s", id);
  }
  if (sqlite3_changes(crater_db_handle(s->db)) == 0) {
    crater_db_rollback(s->db);
    return not_found(ns, id, err);
  }
  if (crater_db_commit(s->db, err) < 0)
    return crater_error_wrap(err, "delete container %s", id);
  return 0;
}

void
crater_container_clear(crater_container_t *c)
{
  if (c == NULL)
    return;
  free(c->id);
  free(c->image);
  free(c->snapshotter);
  free(c->snapshot_key);
  free(c->spec);
  free(c->runtime);
  free(c->runtime_options);
  free(c->extensions);
  crater_labels_clear(&c->labels);
  memset(c, 0, sizeof *c);
}

void
crater_containers_free(crater_container_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    crater_container_clear(&arr[i]);
  free(arr);
}
