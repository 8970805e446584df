/*
 * Containers: per-namespace metadata records, as containerd's
 * core/metadata/containers.go.  A container is metadata only — id, image
 * name, snapshotter + snapshot key of its rootfs, the OCI runtime spec
 * (JSON text), the runtime name and options (JSON), labels, extensions
 * (JSON object) and timestamps.  Running it is a task (lua/crater/tasks.lua,
 * crater-shim); nothing here touches processes or mounts.
 *
 * Rows live in the `containers` and `container_labels` tables of
 * metadata.db (migration 5, schema.c).  Every write is one BEGIN IMMEDIATE
 * transaction; creating a container in a missing namespace creates it.
 *
 * Lifecycle, with an example:
 *
 *     crater_container_t c = { .id = "web", .image = "docker.io/x:1",
 *                              .snapshotter = "overlayfs",
 *                              .snapshot_key = "web", .spec = "{...}",
 *                              .runtime = "crater" };
 *     crater_store_container_create(s, "default", &c, &err);   // ALREADY_EXISTS if taken
 *     crater_store_container_update(s, "default", &c2, fields, n, &err);
 *     crater_store_container_delete(s, "default", "web", &err); // NOT_FOUND if absent
 *
 * Ids follow containerd's identifier rule in the form crater uses for
 * paths: [A-Za-z0-9][A-Za-z0-9_.-]{0,75}.  spec, runtime_options and
 * extensions must be JSON objects when set.
 */
#ifndef CRATER_METADATA_CONTAINERS_H
#define CRATER_METADATA_CONTAINERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/labels.h"
#include "metadata/store.h"

typedef struct {
  char *id;
  char *image;       /* image name; NULL when the rootfs is a directory */
  char *snapshotter; /* NULL with snapshot_key NULL */
  char *snapshot_key;
  char *spec;            /* OCI runtime spec, JSON object text; required */
  char *runtime;         /* "crater", "runc", "crun" or a path; required */
  char *runtime_options; /* JSON object text or NULL */
  char *extensions;      /* JSON object text or NULL */
  crater_labels_t labels;
  int64_t created_at, updated_at; /* ns; set by create, ignored by update */
} crater_container_t;

/* Checks an id: [A-Za-z0-9][A-Za-z0-9_.-]{0,75}.  INVALID_ARGUMENT. */
CRATER_PUBLIC int crater_container_id_validate(const char *id, crater_error_t *err);

/* Creates c in ns and sets its created_at and updated_at (the time
 * stored).  ALREADY_EXISTS when the id is taken in ns, INVALID_ARGUMENT on
 * a bad id, missing spec/runtime, a snapshot key without a snapshotter or
 * JSON that is not an object. */
CRATER_PUBLIC int crater_store_container_create(crater_store_t *s, const char *ns,
                                                crater_container_t *c, crater_error_t *err);

/* Fills *out (clear it with crater_container_clear).  NOT_FOUND. */
CRATER_PUBLIC int crater_store_container_get(crater_store_t *s, const char *ns, const char *id,
                                             crater_container_t *out, crater_error_t *err);

/* Containers of ns matching filters (store.h syntax; fields `id`, `image`,
 * `runtime`, `snapshotter`, `snapshot_key`, `labels.K`), sorted by id.
 * Free with crater_containers_free. */
CRATER_PUBLIC int crater_store_container_list(crater_store_t *s, const char *ns,
                                              const char *const *filters, size_t nfilters,
                                              crater_container_t **out, size_t *n,
                                              crater_error_t *err);

/* Updates container c->id.  fields selects what changes (containerd's
 * field paths): "image", "spec", "runtime_options", "extensions",
 * "labels" (replace all) and "labels.KEY" (set one key; an empty value in
 * c->labels removes it).  nfields 0 updates every mutable field and
 * replaces the labels.  snapshotter, snapshot_key and runtime are
 * immutable: naming them, or passing values that differ when nfields is 0
 * and they are set, fails with INVALID_ARGUMENT.  NOT_FOUND when absent. */
CRATER_PUBLIC int crater_store_container_update(crater_store_t *s, const char *ns,
                                                const crater_container_t *c,
                                                const char *const *fields, size_t nfields,
                                                crater_error_t *err);

/* Deletes the record and its labels.  NOT_FOUND when absent.  The
 * snapshot and the task are the caller's business (containers.lua). */
CRATER_PUBLIC int crater_store_container_delete(crater_store_t *s, const char *ns, const char *id,
                                                crater_error_t *err);

/* NULL tolerated. */
CRATER_PUBLIC void crater_container_clear(crater_container_t *c);
CRATER_PUBLIC void crater_containers_free(crater_container_t *arr, size_t n);

#endif
