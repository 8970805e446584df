/*
 * Snapshots: the namespaced, keyed model over the snapshotter backends
 * (src/snapshot/), as containerd's core/metadata/snapshot.go wraps its
 * snapshotters.
 *
 * A snapshot is named by (namespace, snapshotter, key).  Its metadata —
 * kind, parent, labels, times — lives in the `snapshots` and
 * `snapshot_labels` tables of metadata.db; its data lives in the backend
 * under <root>/snapshots/<snapshotter>/snapshots/<id>/, where id is the
 * row id.  Committed snapshots are per namespace (as containerd).
 *
 * Lifecycle, with an example:
 *
 *     prepare("extract-1", parent=NULL)      -> ACTIVE "extract-1", mounts
 *     ... apply layer 1 into its apply dir ...
 *     commit("layer-1", "extract-1")         -> COMMITTED "layer-1";
 *                                               "extract-1" is gone
 *     prepare("extract-2", "layer-1"), apply, commit("layer-2", ...)
 *     prepare("ctr-rootfs", "layer-2")       -> writable rootfs of a container
 *     view("look", "layer-2")                -> read-only mounts
 *     remove("layer-2")                      -> FAILED_PRECONDITION while
 *                                               "ctr-rootfs"/"look" exist
 *
 * Rules: a parent must be COMMITTED and in the same namespace and
 * snapshotter; keys are unique per (namespace, snapshotter) across kinds;
 * only ACTIVE snapshots can be committed; views are read-only; remove is
 * refused while children exist.  Errors name the key and the cause:
 * "prepare snapshot k1: parent p0 is not committed".
 *
 * Backend work (directory creation, copies, btrfs snapshots) runs inside
 * the metadata write transaction, so `cleanup` (which also takes the write
 * lock) never mistakes a snapshot being created for garbage.
 */
#ifndef CRATER_METADATA_SNAPSHOTS_H
#define CRATER_METADATA_SNAPSHOTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/labels.h"
#include "metadata/store.h"
#include "snapshot/snapshot.h"

typedef struct {
  char *key;
  char *parent; /* key of the parent, NULL when none */
  crater_snapshot_kind_t kind;
  crater_labels_t labels;
  int64_t created_at, updated_at; /* ns since the epoch */
  int64_t id;                     /* backend id (directory name) */
} crater_snapshot_info_t;

/* Creates an ACTIVE snapshot key on top of parent (NULL: empty) with
 * labels (may be NULL) and fills *out with its mounts (out may be NULL).
 * ALREADY_EXISTS (key taken), NOT_FOUND (parent),
 * FAILED_PRECONDITION (parent not committed), NOT_FOUND (snapshotter). */
CRATER_PUBLIC int crater_snapshot_prepare(crater_store_t *s, const char *ns,
                                          const char *snapshotter, const char *key,
                                          const char *parent, const crater_labels_t *labels,
                                          crater_mounts_t *out, crater_error_t *err);
/* Like prepare, for a read-only VIEW. */
CRATER_PUBLIC int crater_snapshot_view(crater_store_t *s, const char *ns, const char *snapshotter,
                                       const char *key, const char *parent,
                                       const crater_labels_t *labels, crater_mounts_t *out,
                                       crater_error_t *err);
/* Commits ACTIVE key as COMMITTED name; key disappears.  labels (may be
 * NULL or empty) replace the active snapshot's labels when non-empty,
 * else the active's labels are kept. */
CRATER_PUBLIC int crater_snapshot_commit(crater_store_t *s, const char *ns, const char *snapshotter,
                                         const char *name, const char *key,
                                         const crater_labels_t *labels, crater_error_t *err);
/* Removes key; FAILED_PRECONDITION while it has children.  Backend data
 * that cannot be removed is left for cleanup (logged, not an error), and
 * so is all of it in a process that defers removals. */
CRATER_PUBLIC int crater_snapshot_remove(crater_store_t *s, const char *ns, const char *snapshotter,
                                         const char *key, crater_error_t *err);
/* From now on this process leaves the backend data of the snapshots it
 * removes to crater_snapshot_cleanup (as containerd leaves it to its GC):
 * `crater daemon` workers, whose janitor runs cleanup once the daemon is
 * idle.  The metadata goes at once either way. */
CRATER_PUBLIC void crater_snapshot_defer_removals(bool on);
/* How many removals this process has left to cleanup so far. */
CRATER_PUBLIC size_t crater_snapshot_deferred(void);
/* Mounts of an ACTIVE or VIEW snapshot (INVALID_ARGUMENT for committed:
 * view it instead). */
CRATER_PUBLIC int crater_snapshot_mounts(crater_store_t *s, const char *ns, const char *snapshotter,
                                         const char *key, crater_mounts_t *out,
                                         crater_error_t *err);
/* Info of key; clear with crater_snapshot_info_clear. */
CRATER_PUBLIC int crater_snapshot_stat(crater_store_t *s, const char *ns, const char *snapshotter,
                                       const char *key, crater_snapshot_info_t *out,
                                       crater_error_t *err);
/* Merges labels into key's (an empty value removes a key) or replaces
 * them; *out (may be NULL) gets the updated info. */
CRATER_PUBLIC int crater_snapshot_update(crater_store_t *s, const char *ns, const char *snapshotter,
                                         const char *key, const crater_labels_t *labels,
                                         bool replace, crater_snapshot_info_t *out,
                                         crater_error_t *err);
/* Disk usage of what key adds over its parent (see each backend). */
CRATER_PUBLIC int crater_snapshot_usage(crater_store_t *s, const char *ns, const char *snapshotter,
                                        const char *key, crater_snapshot_usage_t *out,
                                        crater_error_t *err);
/* Snapshots of (ns, snapshotter) matching filters (store.h syntax; fields
 * name, parent, kind, labels."k"), sorted by key.  Free with
 * crater_snapshot_infos_free. */
CRATER_PUBLIC int crater_snapshot_walk(crater_store_t *s, const char *ns, const char *snapshotter,
                                       const char *const *filters, size_t nfilters,
                                       crater_snapshot_info_t **out, size_t *n,
                                       crater_error_t *err);
/* Removes backend data of snapshotter that no snapshot row (in any
 * namespace) references; *removed (may be NULL) gets the count.  Under the
 * metadata write lock it only renames that data out of the way
 * (<snapdir>/.trash-ID-PID-N); the removal itself runs after, so that commands
 * are not held up by it.  Trash a killed cleanup left is removed too. */
CRATER_PUBLIC int crater_snapshot_cleanup(crater_store_t *s, const char *snapshotter,
                                          size_t *removed, crater_error_t *err);
/* Directory into which a layer is applied for ACTIVE key (malloc'd), and
 * the whiteout style it needs ("overlay" or "delete", static). */
CRATER_PUBLIC char *crater_snapshot_apply_dir(crater_store_t *s, const char *ns,
                                              const char *snapshotter, const char *key,
                                              const char **whiteouts, crater_error_t *err);

CRATER_PUBLIC void crater_snapshot_info_clear(crater_snapshot_info_t *info);
CRATER_PUBLIC void crater_snapshot_infos_free(crater_snapshot_info_t *arr, size_t n);

#endif
