/*
 * btrfs snapshotter: one subvolume per snapshot.
 *
 * <snapdir>/<id>/fs is a subvolume: created empty for a snapshot without
 * parent, else a btrfs snapshot (BTRFS_IOC_SNAP_CREATE_V2) of the parent's
 * fs/ — constant time, extents shared.  Views are created read-only
 * (BTRFS_SUBVOL_RDONLY); commit sets the read-only flag on the active
 * subvolume (BTRFS_IOC_SUBVOL_SETFLAGS), so committed layers cannot change
 * under their children.  Remove deletes the subvolume
 * (BTRFS_IOC_SNAP_DESTROY), then the <id> dir.  Mounts are bind mounts of
 * fs/ (rw for active, ro for views).  Usage walks the tree (no qgroups:
 * exclusive sizes would need quota enabled), so a child counts the extents
 * it shares with its parent too.
 *
 * init refuses (FAILED_PRECONDITION) when the root is not on btrfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "snapshot/snapshot.h"

static int
btrfs_init(crater_snapshotter_t *s, crater_error_t *err)
{
  struct statfs sf;
  if (statfs(s->root, &sf) < 0)
    return crater_error_sys(err, errno, "statfs %s", s->root);
  if (sf.f_type != BTRFS_SUPER_MAGIC)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                             "%s is not on a btrfs filesystem", s->root);
  return 0;
}

static int
subvol_create(int dirfd, const char *name, crater_error_t *err)
{
  struct btrfs_ioctl_vol_args args;
  memset(&args, 0, sizeof args);
  strncpy(args.name, name, BTRFS_PATH_NAME_MAX);
  if (ioctl(dirfd, BTRFS_IOC_SUBVOL_CREATE, &args) < 0)
    return crater_error_sys(err, errno, "create subvolume %s", name);
  return 0;
}

static int
subvol_snapshot(int srcfd, int dirfd, const char *name, bool readonly, crater_error_t *err)
{
  struct btrfs_ioctl_vol_args_v2 args;
  memset(&args, 0, sizeof args);
  args.fd = srcfd;
  if (readonly)
    args.flags |= BTRFS_SUBVOL_RDONLY;
  strncpy(args.name, name, BTRFS_SUBVOL_NAME_MAX);
  if (ioctl(dirfd, BTRFS_IOC_SNAP_CREATE_V2, &args) < 0)
    return crater_error_sys(err, errno, "snapshot subvolume into %s", name);
  return 0;
}

static int
subvol_set_readonly(const char *path, crater_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open subvolume %s", path);
  uint64_t flags = 0;
  if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
    return crater_error_sys(err, errno, "get flags of subvolume %s", path);
  flags |= BTRFS_SUBVOL_RDONLY;
  if (ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, &flags) < 0)
    return crater_error_sys(err, errno, "set read-only on subvolume %s", path);
  return 0;
}

static int
btrfs_create(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
             const char *const *parents, size_t n_parents, crater_error_t *err)
{
  cleanup_free char *dir = xasprintf("%s/%s", s->snapdir, id);
  if (mkdir(dir, 0700) < 0)
    return crater_error_sys(err, errno, "create snapshot %s: mkdir %s", id, dir);
  cleanup_close int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r = -1;
  if (dirfd < 0) {
    crater_error_sys(err, errno, "create snapshot %s: open %s", id, dir);
  } else if (n_parents == 0) {
    r = subvol_create(dirfd, "fs", err);
    if (r == 0 && kind == CRATER_SNAPSHOT_VIEW) {
      cleanup_free char *fs = xasprintf("%s/fs", dir);
      r = subvol_set_readonly(fs, err);
    }
  } else {
    cleanup_free char *pfs = xasprintf("%s/%s/fs", s->snapdir, parents[0]);
    cleanup_close int pfd = open(pfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
      crater_error_sys(err, errno, "open parent subvolume %s", pfs);
    else
      r = subvol_snapshot(pfd, dirfd, "fs", kind == CRATER_SNAPSHOT_VIEW, err);
  }
  if (r < 0) {
    crater_error_wrap(err, "create snapshot %s", id);
    crater_error_t e2 = NULL;
    cleanup_free char *fs = xasprintf("%s/fs", dir);
    struct btrfs_ioctl_vol_args args;
    memset(&args, 0, sizeof args);
    strcpy(args.name, "fs");
    if (dirfd >= 0)
      ioctl(dirfd, BTRFS_IOC_SNAP_DESTROY, &args);
    crater__remove_all(dir, &e2);
    crater_error_release(&e2);
  }
  return r;
}

static int
btrfs_commit(crater_snapshotter_t *s, const char *id, crater_error_t *err)
{
  cleanup_free char *fs = xasprintf("%s/%s/fs", s->snapdir, id);
  if (subvol_set_readonly(fs, err) < 0)
    return crater_error_wrap(err, "commit snapshot %s", id);
  return 0;
}

static int
btrfs_remove(crater_snapshotter_t *s, const char *id, crater_error_t *err)
{
  cleanup_free char *dir = xasprintf("%s/%s", s->snapdir, id);
  cleanup_close int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    if (errno == ENOENT)
      return 0;
    return crater_error_sys(err, errno, "remove snapshot %s: open %s", id, dir);
  }
  struct stat st;
  if (fstatat(dirfd, "fs", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == 256) {
    /* inode 256 is the root of a subvolume */
    struct btrfs_ioctl_vol_args args;
    memset(&args, 0, sizeof args);
    strcpy(args.name, "fs");
    if (ioctl(dirfd, BTRFS_IOC_SNAP_DESTROY, &args) < 0)
      return crater_error_sys(err, errno, "remove snapshot %s: delete subvolume", id);
  }
  if (crater__remove_all(dir, err) < 0)
    return crater_error_wrap(err, "remove snapshot %s", id);
  return 0;
}

const crater_snapshot_driver_t crater__snapshot_btrfs_driver = {
  .name = "btrfs",
  .init = btrfs_init,
  .create = btrfs_create,
  .commit = btrfs_commit,
  .remove = btrfs_remove,
  .mounts = crater__snapshot_fs_bind_mounts,
  .usage = crater__snapshot_fs_usage,
  .whiteouts = "delete",
};
