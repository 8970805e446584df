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

#endif
