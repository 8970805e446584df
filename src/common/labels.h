/*
 * Labels: an ordered list of key/value strings attached to namespaces,
 * blobs, images, snapshots, containers and leases.  Keys are at most 4096
 * bytes and key+value at most 4096 bytes (containerd's limits).
 */
#ifndef CRATER_COMMON_LABELS_H
#define CRATER_COMMON_LABELS_H

#include <stddef.h>

#include "common/error.h"

typedef struct {
  char *key;
  char *value;
} crater_label_t;

typedef struct {
  crater_label_t *items;
  size_t n;
} crater_labels_t;

/* Sets key to value (replacing); value NULL removes the key. Copies both. */
void crater_labels_set(crater_labels_t *l, const char *key, const char *value);
/* Returns the value or NULL. The pointer lives as long as the entry. */
const char *crater_labels_get(const crater_labels_t *l, const char *key);
/* Frees entries; leaves an empty list. NULL tolerated. */
void crater_labels_clear(crater_labels_t *l);
/* Validates sizes/emptiness of every key and value. */
int crater_labels_validate(const crater_labels_t *l, crater_error_t *err);

#endif
