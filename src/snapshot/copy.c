/*
 * Tree copy for the native snapshotter (and anything else that needs a
 * faithful copy of a root filesystem).
 *
 * Copies regular files (reflink via FICLONE when the filesystem shares
 * extents, else copy_file_range, else read/write), directories, symlinks,
 * character/block devices, FIFOs and sockets, with ownership, modes
 * (including setuid/setgid/sticky: chmod after chown, which clears them),
 * every xattr (security.capability, trusted.*), and atime/mtime (set on
 * directories after their children).  Hardlinks inside the source tree are
 * preserved as hardlinks inside the copy; nothing in the copy is ever
 * linked to the source.  Never follows symlinks, never crosses mount
 * points of the source.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <dirent.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "snapshot/snapshot.h"

typedef struct {
  dev_t dev;
  ino_t ino;
  char *path; /* relative to the destination root */
} link_entry_t;

typedef struct {
  int src_root;
  int dst_root;
  dev_t dev;
  link_entry_t *links;
  size_t n_links, cap_links;
  const char *src_name; /* for messages */
} copy_ctx_t;

static const char *
link_lookup(copy_ctx_t *c, const struct stat *st)
{
  for (size_t i = 0; i < c->n_links; i++)
    if (c->links[i].ino == st->st_ino && c->links[i].dev == st->st_dev)
      return c->links[i].path;
  return NULL;
}

static void
link_add(copy_ctx_t *c, const struct stat *st, const char *rel)
{
  if (c->n_links == c->cap_links) {
    c->cap_links = c->cap_links ? c->cap_links * 2 : 32;
    c->links = xrealloc(c->links, c->cap_links * sizeof *c->links);
  }
  c->links[c->n_links].dev = st->st_dev;
  c->links[c->n_links].ino = st->st_ino;
  c->links[c->n_links].path = xstrdup(rel);
  c->n_links++;
}

static int
copy_xattrs(int sfd, const char *spath, int dfd, const char *dpath, const char *rel,
            crater_error_t *err)
{
  /* Work on /proc/self/fd paths (followed: the magic link leads to the
   * inode itself) so O_PATH fds of devices and FIFOs work without opening
   * them. */
  char sproc[64], dproc[64];
  snprintf(sproc, sizeof sproc, "/proc/self/fd/%d", sfd);
  snprintf(dproc, sizeof dproc, "/proc/self/fd/%d", dfd);
  const char *sp = spath ? spath : sproc;
  const char *dp = dpath ? dpath : dproc;
  ssize_t n = listxattr(sp, NULL, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == ENODATA)
      return 0;
    return crater_error_sys(err, errno, "copy %s: listxattr", rel);
  }
  if (n == 0)
    return 0;
  cleanup_free char *names = xmalloc(n + 1);
  n = listxattr(sp, names, n);
  if (n < 0)
    return crater_error_sys(err, errno, "copy %s: listxattr", rel);
  for (char *k = names; k < names + n; k += strlen(k) + 1) {
    ssize_t vn = getxattr(sp, k, NULL, 0);
    if (vn < 0)
      return crater_error_sys(err, errno, "copy %s: getxattr %s", rel, k);
    cleanup_free char *v = xmalloc(vn + 1);
    vn = getxattr(sp, k, v, vn);
    if (vn < 0)
      return crater_error_sys(err, errno, "copy %s: getxattr %s", rel, k);
    if (setxattr(dp, k, v, vn, 0) < 0) {
      /* system.* ACL xattrs on a filesystem without ACLs, say */
      if (errno == ENOTSUP)
        continue;
      return crater_error_sys(err, errno, "copy %s: setxattr %s", rel, k);
    }
  }
  return 0;
}

static int
copy_data(int sfd, int dfd, off_t size, const char *rel, crater_error_t *err)
{
  if (size == 0)
    return 0;
  if (ioctl(dfd, FICLONE, sfd) == 0)
    return 0;
  off_t left = size;
  bool use_cfr = true;
  while (left > 0) {
    ssize_t n;
    if (use_cfr) {
      n = copy_file_range(sfd, NULL, dfd, NULL, left > (1 << 30) ? (1 << 30) : left, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
        use_cfr = false;
        continue;
      }
    } else {
      char buf[65536];
      n = read(sfd, buf, sizeof buf);
      if (n > 0) {
        ssize_t off = 0;
        while (off < n) {
          ssize_t w = write(dfd, buf + off, n - off);
          if (w < 0) {
            if (errno == EINTR)
              continue;
            return crater_error_sys(err, errno, "copy %s: write", rel);
          }
          off += w;
        }
      }
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return crater_error_sys(err, errno, "copy %s: read", rel);
    }
    if (n == 0)
      break; /* file shrank under us */
    left -= n;
  }
  return 0;
}

static int
set_meta(int dfd_dir, const char *name, const struct stat *st, const char *rel, crater_error_t *err)
{
  if (fchownat(dfd_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
    return crater_error_sys(err, errno, "copy %s: chown", rel);
  if (!S_ISLNK(st->st_mode) && fchmodat(dfd_dir, name, st->st_mode & 07777, 0) < 0)
    return crater_error_sys(err, errno, "copy %s: chmod", rel);
  return 0;
}

static int
set_times(int dfd_dir, const char *name, const struct stat *st, const char *rel,
          crater_error_t *err)
{
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (utimensat(dfd_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return crater_error_sys(err, errno, "copy %s: utimensat", rel);
  return 0;
}

static int copy_dir(copy_ctx_t *c, int sdir, int ddir, const char *rel, crater_error_t *err);

static int
copy_entry(copy_ctx_t *c, int sdir, int ddir, const char *name, const char *rel,
           crater_error_t *err)
{
  struct stat st;
  if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return crater_error_sys(err, errno, "copy %s: stat", rel);

  if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
    const char *first = link_lookup(c, &st);
    if (first) {
      if (linkat(c->dst_root, first, ddir, name, 0) < 0)
        return crater_error_sys(err, errno, "copy %s: link to %s", rel, first);
      return 0;
    }
    link_add(c, &st, rel);
  }

  if (S_ISDIR(st.st_mode)) {
    if (mkdirat(ddir, name, 0700) < 0)
      return crater_error_sys(err, errno, "copy %s: mkdir", rel);
    if (st.st_dev != c->dev)
      return set_meta(ddir, name, &st, rel, err); /* mount point: empty dir */
    cleanup_close int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    cleanup_close int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0 || d < 0)
      return crater_error_sys(err, errno, "copy %s: open dir", rel);
    if (copy_dir(c, s, d, rel, err) < 0)
      return -1;
    if (copy_xattrs(s, NULL, d, NULL, rel, err) < 0 || set_meta(ddir, name, &st, rel, err) < 0)
      return -1;
    return set_times(ddir, name, &st, rel, err);
  }

  if (S_ISREG(st.st_mode)) {
    cleanup_close int s = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0)
      return crater_error_sys(err, errno, "copy %s: open", rel);
    cleanup_close int d =
        openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d < 0)
      return crater_error_sys(err, errno, "copy %s: create", rel);
    if (copy_data(s, d, st.st_size, rel, err) < 0)
      return -1;
    if (copy_xattrs(s, NULL, d, NULL, rel, err) < 0)
      return -1;
    /* chown before chmod (chown clears setuid/setgid); capabilities are
     * set as an xattr and also cleared by chown, so redo xattrs after. */
    if (set_meta(ddir, name, &st, rel, err) < 0)
      return -1;
    if (copy_xattrs(s, NULL, d, NULL, rel, err) < 0)
      return -1;
    return set_times(ddir, name, &st, rel, err);
  }

  if (S_ISLNK(st.st_mode)) {
    cleanup_free char *target = xmalloc(st.st_size + 1);
    ssize_t n = readlinkat(sdir, name, target, st.st_size + 1);
    if (n < 0)
      return crater_error_sys(err, errno, "copy %s: readlink", rel);
    target[n] = '\0';
    if (symlinkat(target, ddir, name) < 0)
      return crater_error_sys(err, errno, "copy %s: symlink", rel);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) ||
             S_ISSOCK(st.st_mode)) {
    if (mknodat(ddir, name, st.st_mode, st.st_rdev) < 0)
      return crater_error_sys(err, errno, "copy %s: mknod", rel);
  } else {
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "copy %s: unsupported file type",
                             rel);
  }
  /* xattrs of symlinks/devices through O_PATH fds */
  cleanup_close int s = openat(sdir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  cleanup_close int d = openat(ddir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (s < 0 || d < 0)
    return crater_error_sys(err, errno, "copy %s: open", rel);
  if (set_meta(ddir, name, &st, rel, err) < 0)
    return -1;
  if (!S_ISLNK(st.st_mode) && copy_xattrs(s, NULL, d, NULL, rel, err) < 0)
    return -1;
  return set_times(ddir, name, &st, rel, err);
}

static int
copy_dir(copy_ctx_t *c, int sdir, int ddir, const char *rel, crater_error_t *err)
{
  int fd = dup(sdir);
  if (fd < 0)
    return crater_error_sys(err, errno, "copy %s: dup", rel);
  cleanup_dir DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return crater_error_sys(err, errno, "copy %s: opendir", rel);
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    cleanup_free char *sub = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
    if (copy_entry(c, sdir, ddir, de->d_name, sub, err) < 0)
      return -1;
  }
  return 0;
}

int
crater__copy_tree(const char *src, const char *dst, crater_error_t *err)
{
  copy_ctx_t c = { .src_root = -1, .dst_root = -1, .src_name = src };
  int r = -1;
  struct stat st;
  c.src_root = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c.src_root < 0 || fstat(c.src_root, &st) < 0) {
    crater_error_sys(err, errno, "copy %s: open", src);
    goto done;
  }
  c.dev = st.st_dev;
  if (mkdir(dst, 0700) < 0) {
    crater_error_sys(err, errno, "copy %s: mkdir %s", src, dst);
    goto done;
  }
  c.dst_root = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c.dst_root < 0) {
    crater_error_sys(err, errno, "copy %s: open %s", src, dst);
    goto done;
  }
  if (copy_dir(&c, c.src_root, c.dst_root, "", err) < 0 ||
      copy_xattrs(c.src_root, NULL, c.dst_root, NULL, ".", err) < 0)
    goto done;
  if (fchown(c.dst_root, st.st_uid, st.st_gid) < 0 || fchmod(c.dst_root, st.st_mode & 07777) < 0) {
    crater_error_sys(err, errno, "copy %s: chown/chmod %s", src, dst);
    goto done;
  }
  struct timespec ts[2] = { st.st_atim, st.st_mtim };
  futimens(c.dst_root, ts);
  r = 0;
done:
  if (c.src_root >= 0)
    close(c.src_root);
  if (c.dst_root >= 0)
    close(c.dst_root);
  for (size_t i = 0; i < c.n_links; i++)
    free(c.links[i].path);
  free(c.links);
  if (r < 0)
    crater_error_wrap(err, "copy tree");
  return r;
}
