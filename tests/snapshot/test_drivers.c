/*
 * Backend-level tests (no metadata): overlay 100-layer chains mounted
 * through both mount helper paths, whiteouts through the mount, views
 * read-only, native copies preserving metadata, btrfs on a loop device.
 * Every mount, loop device and temp dir is cleaned up even on failure
 * (atexit handler).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check.h"
#include "common/util.h"
#include "snapshot/snapshot.h"

static char *tmp;
static char mnt[4096];
static char btrfs_mnt[4400];
static char btrfs_img[2048];

static void
cleanup_all(void)
{
  crater_error_t e = NULL;
  if (mnt[0])
    crater_unmount_all(mnt, MNT_DETACH, &e);
  crater_error_release(&e);
  if (btrfs_mnt[0]) {
    crater_unmount_all(btrfs_mnt, MNT_DETACH, &e); /* frees the loop device (autoclear) */
    crater_error_release(&e);
  }
  if (tmp) {
    crater__remove_all(tmp, &e);
    crater_error_release(&e);
  }
}

static void
write_file(const char *path, const char *content)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK(write(fd, content, strlen(content)) == (ssize_t) strlen(content));
  close(fd);
}

static int
read_file(const char *path, char *buf, size_t n)
{
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  ssize_t r = read(fd, buf, n - 1);
  close(fd);
  if (r < 0)
    return -1;
  buf[r] = '\0';
  return 0;
}

static void
overlay_chain(crater_snapshotter_t *s, bool legacy)
{
  crater_error_t err = NULL;
  enum { N = 100 };
  char ids[N + 1][16];
  const char *parents[N + 1];
  int base = legacy ? 1000 : 2000;
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "%d", base + i);
    /* parents nearest first */
    const char *chain[N];
    for (int j = 0; j < i; j++)
      chain[j] = ids[i - 1 - j];
    CHECK_OK(s->driver->create(s, ids[i], CRATER_SNAPSHOT_ACTIVE, chain, i, &err));
    char *fs = crater_snapshotter_fs_dir(s, ids[i]);
    char p[4200];
    snprintf(p, sizeof p, "%s/layer%d", fs, i);
    write_file(p, ids[i]);
    if (i == 1) {
      /* overlay whiteout for layer0 */
      snprintf(p, sizeof p, "%s/layer0", fs);
      CHECK(mknod(p, S_IFCHR | 0, makedev(0, 0)) == 0);
    }
    free(fs);
    CHECK_OK(s->driver->commit(s, ids[i], &err));
  }
  snprintf(ids[N], sizeof ids[N], "%d", base + N);
  for (int j = 0; j < N; j++)
    parents[j] = ids[N - 1 - j];
  CHECK_OK(s->driver->create(s, ids[N], CRATER_SNAPSHOT_ACTIVE, parents, N, &err));
  crater_mounts_t m = { 0 };
  CHECK_OK(s->driver->mounts(s, ids[N], CRATER_SNAPSHOT_ACTIVE, parents, N, &m, &err));
  CHECK(m.n == 1);
  bool has_dir = false;
  for (size_t i = 0; i < m.items[0].n_options; i++)
    has_dir |= strncmp(m.items[0].options[i], "X-crater.mount-dir=", 19) == 0;
  CHECK(has_dir); /* absolute paths would not fit in a page here */
  crater__mount_force_legacy(legacy);
  CHECK_OK(crater_mount_all(&m, mnt, &err));
  crater__mount_force_legacy(false);
  char buf[64], p[4200];
  snprintf(p, sizeof p, "%s/layer99", mnt);
  CHECK(read_file(p, buf, sizeof buf) == 0);
  CHECK_STREQ(buf, ids[99]);
  snprintf(p, sizeof p, "%s/layer50", mnt);
  CHECK(read_file(p, buf, sizeof buf) == 0);
  snprintf(p, sizeof p, "%s/layer0", mnt);
  CHECK(access(p, F_OK) < 0 && errno == ENOENT); /* whited out */
  snprintf(p, sizeof p, "%s/new", mnt);
  write_file(p, "x");
  CHECK_OK(crater_unmount_all(mnt, 0, &err));
  char *fs = crater_snapshotter_fs_dir(s, ids[N]);
  snprintf(p, sizeof p, "%s/new", fs);
  CHECK(read_file(p, buf, sizeof buf) == 0); /* landed in the upper dir */
  free(fs);
  crater_mounts_clear(&m);

  /* view of the chain: read-only */
  char vid[16];
  snprintf(vid, sizeof vid, "%d", base + N + 1);
  CHECK_OK(s->driver->create(s, vid, CRATER_SNAPSHOT_VIEW, parents, N, &err));
  CHECK_OK(s->driver->mounts(s, vid, CRATER_SNAPSHOT_VIEW, parents, N, &m, &err));
  CHECK_OK(crater_mount_all(&m, mnt, &err));
  snprintf(p, sizeof p, "%s/nope", mnt);
  CHECK(open(p, O_WRONLY | O_CREAT, 0644) < 0 && errno == EROFS);
  CHECK_OK(crater_unmount_all(mnt, 0, &err));
  crater_mounts_clear(&m);
  /* view of a single layer: ro bind */
  CHECK_OK(s->driver->mounts(s, vid, CRATER_SNAPSHOT_VIEW, parents + N - 1, 1, &m, &err));
  CHECK_STREQ(m.items[0].type, "bind");
  CHECK_OK(crater_mount_all(&m, mnt, &err));
  CHECK(open(p, O_WRONLY | O_CREAT, 0644) < 0 && errno == EROFS);
  CHECK_OK(crater_unmount_all(mnt, 0, &err));
  crater_mounts_clear(&m);

  for (int i = N + 1; i >= 0; i--) {
    char id[16];
    snprintf(id, sizeof id, "%d", base + i);
    CHECK_OK(s->driver->remove(s, id, &err));
  }
}

static void
native_copy(crater_snapshotter_t *s)
{
  crater_error_t err = NULL;
  CHECK_OK(s->driver->create(s, "1", CRATER_SNAPSHOT_ACTIVE, NULL, 0, &err));
  char *fs = crater_snapshotter_fs_dir(s, "1");
  char p[4200], q[4200];
  snprintf(p, sizeof p, "%s/suid", fs);
  write_file(p, "data");
  CHECK(chown(p, 1234, 5678) == 0);
  CHECK(chmod(p, 04755) == 0);
  CHECK(setxattr(p, "user.k", "v", 1, 0) == 0 || errno == ENOTSUP);
  snprintf(q, sizeof q, "%s/hard", fs);
  CHECK(link(p, q) == 0);
  snprintf(p, sizeof p, "%s/fifo", fs);
  CHECK(mkfifo(p, 0600) == 0);
  snprintf(p, sizeof p, "%s/null", fs);
  CHECK(mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0);
  snprintf(p, sizeof p, "%s/link", fs);
  CHECK(symlink("suid", p) == 0);
  snprintf(p, sizeof p, "%s/dir", fs);
  CHECK(mkdir(p, 01777) == 0);
  CHECK(chmod(p, 01777) == 0);
  free(fs);
  CHECK_OK(s->driver->commit(s, "1", &err));
  const char *par[] = { "1" };
  CHECK_OK(s->driver->create(s, "2", CRATER_SNAPSHOT_ACTIVE, par, 1, &err));
  fs = crater_snapshotter_fs_dir(s, "2");
  struct stat st, st2;
  snprintf(p, sizeof p, "%s/suid", fs);
  CHECK(lstat(p, &st) == 0);
  CHECK(st.st_uid == 1234 && st.st_gid == 5678 && (st.st_mode & 07777) == 04755);
  char v[8] = { 0 };
  CHECK(getxattr(p, "user.k", v, sizeof v) == 1 || errno == ENOTSUP);
  snprintf(q, sizeof q, "%s/hard", fs);
  CHECK(lstat(q, &st2) == 0 && st2.st_ino == st.st_ino); /* in-tree hardlink kept */
  snprintf(p, sizeof p, "%s/fifo", fs);
  CHECK(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode));
  snprintf(p, sizeof p, "%s/null", fs);
  CHECK(lstat(p, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
  snprintf(p, sizeof p, "%s/link", fs);
  CHECK(lstat(p, &st) == 0 && S_ISLNK(st.st_mode));
  snprintf(p, sizeof p, "%s/dir", fs);
  CHECK(lstat(p, &st) == 0 && (st.st_mode & 07777) == 01777);
  /* the copy shares no inode with the parent */
  char *pfs = crater_snapshotter_fs_dir(s, "1");
  snprintf(q, sizeof q, "%s/suid", pfs);
  snprintf(p, sizeof p, "%s/suid", fs);
  CHECK(lstat(p, &st) == 0 && lstat(q, &st2) == 0 && st.st_ino != st2.st_ino);
  free(pfs);
  free(fs);
  crater_snapshot_usage_t u;
  CHECK_OK(s->driver->usage(s, "2", CRATER_SNAPSHOT_ACTIVE, &u, &err));
  CHECK(u.inodes == 6); /* root, suid(=hard), fifo, null, link, dir */
  CHECK_OK(s->driver->remove(s, "2", &err));
  CHECK_OK(s->driver->remove(s, "1", &err));
}

static void
btrfs_test(void)
{
  crater_error_t err = NULL;
  if (system("command -v mkfs.btrfs >/dev/null 2>&1") != 0) {
    fprintf(stderr, "btrfs: mkfs.btrfs missing, skipped\n");
    return;
  }
  snprintf(btrfs_img, sizeof btrfs_img, "%s/btrfs.img", tmp);
  char root[4200], cmd[16000];
  snprintf(root, sizeof root, "%s/btrfs", tmp);
  CHECK(mkdir(root, 0700) == 0);
  snprintf(cmd, sizeof cmd,
           "truncate -s 1G '%s' && mkfs.btrfs -q '%s' >/dev/null 2>&1 && mount -o loop '%s' '%s'",
           btrfs_img, btrfs_img, btrfs_img, root);
  if (system(cmd) != 0) {
    fprintf(stderr, "btrfs: cannot create a loop-mounted btrfs, skipped\n");
    return;
  }
  snprintf(btrfs_mnt, sizeof btrfs_mnt, "%s", root);
  crater_snapshotter_t *s = crater_snapshotter_open("btrfs", root, &err);
  CHECK(s != NULL);
  CHECK_OK(s->driver->create(s, "1", CRATER_SNAPSHOT_ACTIVE, NULL, 0, &err));
  char *fs = crater_snapshotter_fs_dir(s, "1");
  char p[4200];
  snprintf(p, sizeof p, "%s/a", fs);
  write_file(p, "A");
  free(fs);
  CHECK_OK(s->driver->commit(s, "1", &err));
  CHECK(open(p, O_WRONLY | O_TRUNC) < 0 && errno == EROFS); /* committed is read-only */
  const char *par[] = { "1" };
  CHECK_OK(s->driver->create(s, "2", CRATER_SNAPSHOT_ACTIVE, par, 1, &err));
  CHECK_OK(s->driver->create(s, "3", CRATER_SNAPSHOT_VIEW, par, 1, &err));
  fs = crater_snapshotter_fs_dir(s, "2");
  snprintf(p, sizeof p, "%s/a", fs);
  char buf[8];
  CHECK(read_file(p, buf, sizeof buf) == 0);
  CHECK_STREQ(buf, "A");
  write_file(p, "B");
  free(fs);
  crater_mounts_t m = { 0 };
  CHECK_OK(s->driver->mounts(s, "2", CRATER_SNAPSHOT_ACTIVE, par, 1, &m, &err));
  CHECK_OK(crater_mount_all(&m, mnt, &err));
  snprintf(p, sizeof p, "%s/a", mnt);
  CHECK(read_file(p, buf, sizeof buf) == 0);
  CHECK_STREQ(buf, "B");
  CHECK_OK(crater_unmount_all(mnt, 0, &err));
  crater_mounts_clear(&m);
  for (const char *id = "3"; id; id = strcmp(id, "3") == 0   ? "2"
                                      : strcmp(id, "2") == 0 ? "1"
                                                             : NULL)
    CHECK_OK(s->driver->remove(s, id, &err));
  char **ids;
  size_t n;
  CHECK_OK(crater_snapshotter_list_ids(s, &ids, &n, &err));
  CHECK(n == 0);
  free(ids);
  crater_snapshotter_close(s);
  CHECK_OK(crater_unmount_all(btrfs_mnt, 0, &err));
  btrfs_mnt[0] = '\0';
}

int
main(void)
{
  crater_error_t err = NULL;
  if (geteuid() != 0)
    SKIP("needs root (mounts)");
  tmp = test_tmpdir("snapshot-drivers");
  atexit(cleanup_all);
  snprintf(mnt, sizeof mnt, "%s/mnt", tmp);
  CHECK(mkdir(mnt, 0755) == 0);

  crater_snapshotter_t *n = crater_snapshotter_open("native", tmp, &err);
  CHECK(n != NULL);
  native_copy(n);
  crater_snapshotter_close(n);

  crater_snapshotter_t *o = crater_snapshotter_open("overlayfs", tmp, &err);
  if (o == NULL) {
    fprintf(stderr, "overlayfs unavailable (%s), skipped\n", err->msg);
    crater_error_release(&err);
  } else {
    overlay_chain(o, false);
    overlay_chain(o, true);
    crater_snapshotter_close(o);
  }
  btrfs_test();
  return 0;
}
