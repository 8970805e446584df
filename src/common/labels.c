/*
 * Label lists.  See labels.h.
 */
#include "common/labels.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void
crater_labels_set(crater_labels_t *l, const char *key, const char *value)
{
  for (size_t i = 0; i < l->n; i++) {
    if (strcmp(l->items[i].key, key) != 0)
      continue;
    if (value == NULL) {
      free(l->items[i].key);
      free(l->items[i].value);
      memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof *l->items);
      l->n--;
    } else {
      char *v = xstrdup(value);
      free(l->items[i].value);
      l->items[i].value = v;
    }
    return;
  }
  if (value == NULL)
    return;
  l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
  l->items[l->n].key = xstrdup(key);
  l->items[l->n].value = xstrdup(value);
  l->n++;
}

const char *
crater_labels_get(const crater_labels_t *l, const char *key)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->items[i].key, key) == 0)
      return l->items[i].value;
  return NULL;
}

void
crater_labels_clear(crater_labels_t *l)
{
  if (l == NULL)
    return;
  for (size_t i = 0; i < l->n; i++) {
    free(l->items[i].key);
    free(l->items[i].value);
  }
  free(l->items);
  l->items = NULL;
  l->n = 0;
}

int
crater_labels_validate(const crater_labels_t *l, crater_error_t *err)
{
  for (size_t i = 0; i < l->n; i++) {
    size_t kl = strlen(l->items[i].key), vl = strlen(l->items[i].value);
    if (kl == 0)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "label key must not be empty");
    if (kl + vl > 4096)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "label %.64s: key and value longer than 4096 bytes",
                               l->items[i].key);
  }
  return 0;
}
