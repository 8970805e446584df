/*
 * native snapshotter: every snapshot is a full copy of its parent's tree.
 *
 * Works on any filesystem.  prepare/view from a parent copies the parent's
 * fs/ with crater__copy_tree (reflinks where the filesystem supports them,
 * copy_file_range otherwise; ownership, modes, xattrs, special files and
 * in-tree hardlinks preserved).  Mounts are bind mounts of the snapshot's
 * own fs/: rw for active snapshots, ro for views.  Layers are applied with
 * real deletions for whiteouts.  Usage is the whole tree (a copy shares
 * nothing with its parent unless reflinked, which du cannot see).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "snapshot/snapshot.h"

static int
native_create(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
              const char *const *parents, size_t n_parents, crater_error_t *err)
{
  cleanup_free char *dir = xasprintf("%s/%s", s->snapdir, id);
  cleanup_free char *fs = xasprintf("%s/fs", dir);
  if (mkdir(dir, 0700) < 0)
    return crater_error_sys(err, errno, "create snapshot %s: mkdir %s", id, dir);
  int r;
  if (n_parents == 0) {
    r = mkdir(fs, 0755);
    if (r < 0)
      crater_error_sys(err, errno, "create snapshot %s: mkdir %s", id, fs);
  } else {
    cleanup_free char *pfs = xasprintf("%s/%s/fs", s->snapdir, parents[0]);
    r = crater__copy_tree(pfs, fs, err);
    if (r < 0)
      crater_error_wrap(err, "create snapshot %s from %s", id, parents[0]);
  }
  if (r < 0) {
    crater_error_t e2 = NULL;
    crater__remove_all(dir, &e2);
    crater_error_release(&e2);
  }
  return r;
}

static int
native_commit(crater_snapshotter_t *s, const char *id, crater_error_t *err)
{
  return 0;
}

static int
native_remove(crater_snapshotter_t *s, const char *id, crater_error_t *err)
{
  cleanup_free char *dir = xasprintf("%s/%s", s->snapdir, id);
  if (crater__remove_all(dir, err) < 0)
    return crater_error_wrap(err, "remove snapshot %s", id);
  return 0;
}

int
crater__snapshot_fs_bind_mounts(crater_snapshotter_t *s, const char *id,
                                crater_snapshot_kind_t kind, const char *const *parents,
                                size_t n_parents, crater_mounts_t *out, crater_error_t *err)
{
  const char *ro_bind[] = { "ro", "rbind", NULL };
  const char *rw_bind[] = { "rw", "rbind", NULL };
  cleanup_free char *fs = xasprintf("%s/%s/fs", s->snapdir, id);
  crater_mounts_add(out, "bind", fs, NULL, kind == CRATER_SNAPSHOT_ACTIVE ? rw_bind : ro_bind);
  return 0;
}

int
crater__snapshot_fs_usage(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
                          crater_snapshot_usage_t *out, crater_error_t *err)
{
  cleanup_free char *fs = xasprintf("%s/%s/fs", s->snapdir, id);
  return crater__tree_usage(fs, out, err);
}

const crater_snapshot_driver_t crater__snapshot_native_driver = {
  .name = "native",
  .create = native_create,
  .commit = native_commit,
  .remove = native_remove,
  .mounts = crater__snapshot_fs_bind_mounts,
  .usage = crater__snapshot_fs_usage,
  .whiteouts = "delete",
};
