/*
 * Row readers shared by images, containers, content records, leases and
 * namespaces: the prepare / bind / step / load / finalize scaffolding of
 * their get and list calls, typed by the caller's load and clear callbacks
 * and the record size (store_internal.h).
 */
#include "metadata/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

int
crater__meta_get(crater_store_t *s, const char *ns, const char *key, const char *sql,
                 const char *noun, crater__meta_load_fn load, crater__meta_clear_fn clear,
                 void *out, crater_error_t *err)
{
  sqlite3_stmt *st = crater__db_prepare(s->db, sql, err);
  if (st == NULL)
    return -1;
  int idx = 1;
  if (ns)
    crater__db_bind_text(st, idx++, ns);
  crater__db_bind_text(st, idx, key);
  const char *k = key ? key : "";
  int rc = sqlite3_step(st), r;
  if (rc == SQLITE_ROW) {
    r = load(s, ns, st, out, err);
    if (r < 0)
      clear(out);
  } else if (rc == SQLITE_DONE && ns) {
    r = crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "%s %s: not found in namespace %s",
                          noun, k, ns);
  } else if (rc == SQLITE_DONE) {
    r = crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "%s %s: not found", noun, k);
  } else {
    r = crater__db_error(s->db, rc, err, "%s %s", noun, k);
  }
  crater__db_release(s->db, st);
  return r;
}

int
crater__meta_list(crater_store_t *s, const char *ns, const char *sql, const char *const *filters,
                  size_t nfilters, size_t elem_size, crater__meta_load_fn load,
                  crater_filter_lookup_fn lookup, crater__meta_clear_fn clear, void **out,
                  size_t *n, const char *what, crater_error_t *err)
{
  *out = NULL;
  *n = 0;
  if (ns && crater_namespace_validate(ns, err) < 0)
    return -1;
  crater_filter_t *f = NULL;
  if (lookup && (f = crater_filter_parse(filters, nfilters, err)) == NULL)
    return -1;
  sqlite3_stmt *st = crater__db_prepare(s->db, sql, err);
  if (st == NULL) {
    crater_filter_free(f);
    return -1;
  }
  if (ns)
    crater__db_bind_text(st, 1, ns);
  unsigned char *arr = NULL, *rec = xmalloc(elem_size);
  size_t cnt = 0;
  int rc, r = 0;
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    r = load(s, ns, st, rec, err);
    if (r == 0 && (f == NULL || crater_filter_match(f, lookup, rec))) {
      arr = xrealloc(arr, (cnt + 1) * elem_size);
      memcpy(arr + cnt++ * elem_size, rec, elem_size);
    } else {
      clear(rec);
    }
  }
  if (r == 0 && rc != SQLITE_DONE) {
    if (ns)
      r = crater__db_error(s->db, rc, err, "list %s in %s", what, ns);
    else
      r = crater__db_error(s->db, rc, err, "list %s", what);
  }
  crater__db_release(s->db, st);
  crater_filter_free(f);
  free(rec);
  if (r < 0) {
    for (size_t i = 0; i < cnt; i++)
      clear(arr + i * elem_size);
    free(arr);
    return r;
  }
  *out = arr;
  *n = cnt;
  return 0;
}
