/*
 * Snapshotter storage backends: the contract.
 *
 * A snapshot is a filesystem state with an optional parent.  This layer
 * knows nothing about namespaces, keys or labels: those live in the
 * metadata store (src/metadata/snapshots.c), which allocates a numeric id
 * per snapshot and hands the backend that id plus the ids of the parent
 * chain.  Each backend keeps its data under
 *
 *     <store root>/snapshots/<backend name>/snapshots/<id>/fs     the tree
 *     <store root>/snapshots/<backend name>/snapshots/<id>/work   overlay only
 *
 * so `cleanup` can compare the directory listing with the ids the metadata
 * still references.  Backends are vtables registered by name ("overlayfs",
 * "native", "btrfs"); crater_snapshotter_open() gives an instance bound to
 * a store root.
 *
 * Mounts are data: `mounts` fills a crater_mounts_t describing what to
 * mount; crater_mount_all() (src/snapshot/mount.c) performs it and
 * crater_unmount_all() undoes it.  Views are always read-only.
 *
 * Lifecycle (containerd's, with ids): create(id=1, ACTIVE, no parents) →
 * apply a layer into apply_dir(1) → commit(1) (immutable from now on) →
 * create(id=2, ACTIVE, parents={1}) → mounts(2) → run a container →
 * remove(2).  The metadata layer refuses to remove a snapshot with
 * children, so backends never see that case.
 */
#ifndef CRATER_SNAPSHOT_SNAPSHOT_H
#define CRATER_SNAPSHOT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef enum {
  CRATER_SNAPSHOT_UNKNOWN = 0,
  CRATER_SNAPSHOT_VIEW = 1,
  CRATER_SNAPSHOT_ACTIVE = 2,
  CRATER_SNAPSHOT_COMMITTED = 3,
} crater_snapshot_kind_t;

/* "view", "active", "committed" (or "unknown"); never NULL. */
CRATER_PUBLIC const char *crater_snapshot_kind_name(crater_snapshot_kind_t k);
/* Inverse of crater_snapshot_kind_name; UNKNOWN for anything else. */
CRATER_PUBLIC crater_snapshot_kind_t crater_snapshot_kind_parse(const char *s);

/* One mount description.  Every string is owned by the struct.
 * `target` is NULL (mount at the target given to crater_mount_all) or a
 * path relative to it.  Options are fstab-style ("ro", "rbind",
 * "lowerdir=..."); options starting with "X-crater." are for the crater
 * mount helper only:
 *   X-crater.mount-dir=DIR  relative paths in lowerdir/upperdir/workdir are
 *                           relative to DIR (long overlay chains). */
typedef struct {
  char *type;
  char *source;
  char *target;
  char **options;
  size_t n_options;
} crater_mount_t;

typedef struct {
  crater_mount_t *items;
  size_t n;
} crater_mounts_t;

/* Appends a mount; options is a NULL-terminated array (may be NULL).
 * Copies every string. */
CRATER_PUBLIC void crater_mounts_add(crater_mounts_t *m, const char *type, const char *source,
                                     const char *target, const char *const *options);
/* Appends one option to the last mount (copied). */
CRATER_PUBLIC void crater_mounts_add_option(crater_mounts_t *m, const char *opt);
/* Frees everything; leaves an empty list.  NULL tolerated. */
CRATER_PUBLIC void crater_mounts_clear(crater_mounts_t *m);

/* Performs mounts in order at target (an existing directory).  On failure
 * everything mounted so far is unmounted again. */
CRATER_PUBLIC int crater_mount_all(const crater_mounts_t *m, const char *target,
                                   crater_error_t *err);
/* Unmounts everything stacked on target (umount2 with flags, e.g.
 * MNT_DETACH, until target is no longer a mount point).  A target that is
 * not a mount point is not an error. */
CRATER_PUBLIC int crater_unmount_all(const char *target, int flags, crater_error_t *err);

/* Mount helper tuning (for tests): when set, overlay mounts skip the new
 * mount API (fsopen/fsconfig "lowerdir+") and use mount(2) with relative
 * paths from a child chdir'd into X-crater.mount-dir. */
CRATER_PUBLIC void crater__mount_force_legacy(bool on);

typedef struct {
  int64_t size;   /* bytes allocated (st_blocks * 512), hardlinks counted once */
  int64_t inodes; /* number of inodes */
} crater_snapshot_usage_t;

typedef struct crater_snapshotter_s crater_snapshotter_t;

/* A backend.  `parents` is the chain of parent ids, nearest first
 * (parents[0] is the direct parent), n_parents may be 0. */
typedef struct crater_snapshot_driver_s {
  const char *name;
  /* Checks the backend can work under s->root (probes, filesystem type);
   * FAILED_PRECONDITION when it cannot.  May set s->priv. */
  int (*init)(crater_snapshotter_t *s, crater_error_t *err);
  /* Creates the storage of a new ACTIVE or VIEW snapshot. */
  int (*create)(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
                const char *const *parents, size_t n_parents, crater_error_t *err);
  /* Makes an ACTIVE snapshot's storage immutable (it becomes COMMITTED). */
  int (*commit)(crater_snapshotter_t *s, const char *id, crater_error_t *err);
  /* Removes a snapshot's storage (a missing one is not an error). */
  int (*remove)(crater_snapshotter_t *s, const char *id, crater_error_t *err);
  /* Describes how to mount the snapshot. */
  int (*mounts)(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
                const char *const *parents, size_t n_parents, crater_mounts_t *out,
                crater_error_t *err);
  /* Disk usage of what this snapshot adds over its parent. */
  int (*usage)(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
               crater_snapshot_usage_t *out, crater_error_t *err);
  /* Releases s->priv (may be NULL). */
  void (*close)(crater_snapshotter_t *s);
  /* Whiteouts a layer applied into the snapshot's fs/ must use:
   * "overlay" (char 0/0 devices, opaque xattrs) or "delete". */
  const char *whiteouts;
} crater_snapshot_driver_t;

struct crater_snapshotter_s {
  const crater_snapshot_driver_t *driver;
  char *root;    /* <store root>/snapshots/<name> */
  char *snapdir; /* <root>/snapshots */
  void *priv;
};

/* Registers a backend under driver->name (the struct must outlive the
 * process).  ALREADY_EXISTS when the name is taken.  The built-in ones
 * are registered on first use. */
CRATER_PUBLIC int crater_snapshot_driver_register(const crater_snapshot_driver_t *d,
                                                  crater_error_t *err);
/* The backend registered as name, or NULL. */
CRATER_PUBLIC const crater_snapshot_driver_t *crater_snapshot_driver_lookup(const char *name);
/* Names of registered backends, NULL-terminated static array. */
CRATER_PUBLIC const char *const *crater_snapshot_driver_names(void);

/* Opens backend `name` under <store_root>/snapshots/<name> (created),
 * running its init.  NOT_FOUND for an unknown name.  Free with
 * crater_snapshotter_close. */
CRATER_PUBLIC crater_snapshotter_t *
crater_snapshotter_open(const char *name, const char *store_root, crater_error_t *err);
CRATER_PUBLIC void crater_snapshotter_close(crater_snapshotter_t *s);

/* Path of the snapshot's tree (<snapdir>/<id>/fs), malloc'd: the
 * directory a layer is applied into for an ACTIVE snapshot. */
CRATER_PUBLIC char *crater_snapshotter_fs_dir(crater_snapshotter_t *s, const char *id);

/* Ids (directory names under snapdir) present on disk; *ids is a malloc'd
 * array of malloc'd strings.  Entries that are not decimal ids are left
 * out. */
CRATER_PUBLIC int crater_snapshotter_list_ids(crater_snapshotter_t *s, char ***ids, size_t *n,
                                              crater_error_t *err);

/* Reports whether overlayfs works on the filesystem holding dir, by
 * mounting a two-layer overlay in a temp dir under dir (created when
 * missing).  The answer is
 * cached per dir for the life of the process, and a passed probe is
 * remembered in <dir>/.overlay-probe-ok for the rest of the boot.  Returns 1 (works), 0 (does
 * not; *why gets a malloc'd reason when why is non-NULL), <0 on error. */
CRATER_PUBLIC int crater_snapshot_overlay_supported(const char *dir, char **why,
                                                    crater_error_t *err);
/* Number of real probes performed so far (tests check the cache). */
CRATER_PUBLIC int crater__overlay_probe_count(void);
/* Tests: forgets the in-process probe cache (the on-disk stamp stays). */
CRATER_PUBLIC void crater__overlay_probe_forget(void);

/* Fills the overlay mount for an ACTIVE/VIEW snapshot with parents (no
 * filesystem access): absolute paths when the option string fits in
 * page_limit bytes, else paths relative to snapdir plus
 * X-crater.mount-dir=snapdir.  id NULL/upper false gives a read-only
 * lowerdir-only overlay.  Exposed for unit tests. */
CRATER_PUBLIC void crater__overlay_build_mount(const char *snapdir, const char *id, bool upper,
                                               const char *const *parents, size_t n_parents,
                                               size_t page_limit, crater_mounts_t *out);

/* Du-style usage of a tree (hardlinks counted once, no crossing of mount
 * points). */
int crater__tree_usage(const char *path, crater_snapshot_usage_t *out, crater_error_t *err);

/* Driver methods shared by the backends that keep each snapshot as a plain
 * tree in <snapdir>/<id>/fs (native, btrfs): a bind mount of it (read-only
 * unless active) and its usage by walking it. */
int crater__snapshot_fs_bind_mounts(crater_snapshotter_t *s, const char *id,
                                    crater_snapshot_kind_t kind, const char *const *parents,
                                    size_t n_parents, crater_mounts_t *out, crater_error_t *err);
int crater__snapshot_fs_usage(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
                              crater_snapshot_usage_t *out, crater_error_t *err);

/* Copies the tree at src into dst (which must not exist): ownership,
 * modes, xattrs, times, symlinks, devices, FIFOs, sockets; hardlinks
 * within the tree are preserved; data is reflinked when the filesystem
 * can, else copied with copy_file_range. */
int crater__copy_tree(const char *src, const char *dst, crater_error_t *err);

extern const crater_snapshot_driver_t crater__snapshot_overlay_driver;
extern const crater_snapshot_driver_t crater__snapshot_native_driver;
extern const crater_snapshot_driver_t crater__snapshot_btrfs_driver;

#endif
