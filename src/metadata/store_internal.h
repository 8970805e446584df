/*
 * Privates shared by the metadata domain's files.
 */
#ifndef CRATER_METADATA_STORE_INTERNAL_H
#define CRATER_METADATA_STORE_INTERNAL_H

#include "metadata/store.h"

struct crater_store_s {
  char *root;
  crater_content_t *content;
  crater_db_t *db;
};

/* Rolls back the open transaction and returns -1 (for `return fail(s)`). */
static inline int
crater__store_rollback(crater_store_t *s)
{
  crater_db_rollback(s->db);
  return -1;
}

/* Ingest key of ref in ns: "<ns>/<ref>" (malloc'd). */
char *crater__store_ingest_key(const char *ns, const char *ref);

/* Row readers shared by the record types (rows.c).  load fills *rec (a
 * record of the caller's type) from the current row of st, ns being the
 * namespace the row belongs to; on failure *rec may be partly filled and
 * is cleared with clear. */
typedef int (*crater__meta_load_fn)(crater_store_t *s, const char *ns, sqlite3_stmt *st, void *rec,
                                    crater_error_t *err);
typedef void (*crater__meta_clear_fn)(void *rec);

/* Reads the one row of sql (?1 = ns, ?2 = key; without ns, ?1 = key) into
 * *out.  No row: NOT_FOUND "<noun> <key>: not found in namespace <ns>"
 * ("<noun> <key>: not found" without ns); SQLite failure: "<noun> <key>:
 * ...".  On failure *out holds nothing. */
int crater__meta_get(crater_store_t *s, const char *ns, const char *key, const char *sql,
                     const char *noun, crater__meta_load_fn load, crater__meta_clear_fn clear,
                     void *out, crater_error_t *err);

/* Lists the rows of sql (?1 = ns, none without ns) as an array of
 * elem_size records in *out (NULL when empty), keeping those that match
 * filters when lookup is given.  ns (when given) is validated first;
 * SQLite failures say "list <what> in <ns>" ("list <what>" without ns).
 * On failure *out is NULL, *n 0 and every loaded record is cleared. */
int crater__meta_list(crater_store_t *s, const char *ns, const char *sql,
                      const char *const *filters, size_t nfilters, size_t elem_size,
                      crater__meta_load_fn load, crater_filter_lookup_fn lookup,
                      crater__meta_clear_fn clear, void **out, size_t *n, const char *what,
                      crater_error_t *err);

#endif
