/*
 * crater_archive_apply: streams an OCI layer into a directory.
 *
 * libarchive parses tar headers and hands out data blocks (read side only);
 * every write happens here.  For each entry the name is cleaned lexically
 * (absolute names and `..` above the root reject the layer), its parent
 * directory is resolved inside the root (resolve.c: openat2
 * RESOLVE_IN_ROOT, or the O_NOFOLLOW walk), and the leaf is created with
 * *at() calls that never follow a final symlink: anything in the way is
 * removed first (a directory recursively, never through a symlink), except
 * that a directory entry over an existing directory only updates metadata.
 * Hardlink targets are resolved the same way and linked without following
 * (linkat flags 0); data carried by a hardlink entry is ignored, so it can
 * never be written through an in-archive symlink.  Ownership is set before
 * the mode (chown clears setuid/setgid) and xattrs after both (chown clears
 * security.capability).  Directory times are set after all entries, since
 * writing children changes them.  Whiteouts become overlay whiteouts or
 * real deletions (crater_whiteout_mode_t).  See docs/design/archive.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "archive/archive_internal.h"
#include "archive/archive_sym.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

typedef struct {
  char *path;
  struct timespec ts[2];
} dirtime_t;

/* Open-addressing set of paths this layer wrote (and their ancestors). */
typedef struct {
  char **slots;
  size_t cap, n;
} pathset_t;

typedef struct {
  crater__resolver_t r;
  const crater_apply_opts_t *o;
  struct archive *a;
  crater__lstream_t *s;
  char *cache_path; /* parent dir cache */
  int cache_fd;
  dirtime_t *dirs;
  size_t ndirs, capdirs;
  pathset_t touched;
  pathset_t parents; /* overlay with lowers: parent dirs the layer used */
  uint64_t entries;
} apply_t;

/* --- path set ----------------------------------------------------------- */

static uint64_t
hash_str(const char *s, size_t n)
{
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char) s[i]) * 1099511628211ull;
  return h;
}

static bool
pathset_has_n(const pathset_t *ps, const char *p, size_t n)
{
  if (ps->cap == 0)
    return false;
  for (size_t i = hash_str(p, n) & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
    const char *s = ps->slots[i];
    if (s == NULL)
      return false;
    if (strncmp(s, p, n) == 0 && s[n] == '\0')
      return true;
  }
}

static bool
pathset_has(const pathset_t *ps, const char *p)
{
  return pathset_has_n(ps, p, strlen(p));
}

static void
pathset_add_n(pathset_t *ps, const char *p, size_t n)
{
  if (pathset_has_n(ps, p, n))
    return;
  if ((ps->n + 1) * 2 > ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 1024;
    char **slots = xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < ps->cap; i++) {
      char *s = ps->slots[i];
      if (s == NULL)
        continue;
      size_t j = hash_str(s, strlen(s)) & (cap - 1);
      while (slots[j])
        j = (j + 1) & (cap - 1);
      slots[j] = s;
    }
    free(ps->slots);
    ps->slots = slots;
    ps->cap = cap;
  }
  size_t j = hash_str(p, n) & (ps->cap - 1);
  while (ps->slots[j])
    j = (j + 1) & (ps->cap - 1);
  ps->slots[j] = xstrndup(p, n);
  ps->n++;
}

/* Records path and every ancestor as written by this layer. */
static void
touch(apply_t *A, const char *path)
{
  size_t n = strlen(path);
  while (n > 0) {
    if (pathset_has_n(&A->touched, path, n))
      return; /* ancestors are already in */
    pathset_add_n(&A->touched, path, n);
    while (n > 0 && path[n - 1] != '/')
      n--;
    if (n > 0)
      n--;
  }
}

static void
pathset_free(pathset_t *ps)
{
  for (size_t i = 0; i < ps->cap; i++)
    free(ps->slots[i]);
  free(ps->slots);
}

/* --- parent directory cache -------------------------------------------- */

static void
cache_drop(apply_t *A)
{
  if (A->cache_fd >= 0)
    close(A->cache_fd);
  A->cache_fd = -1;
  free(A->cache_path);
  A->cache_path = NULL;
}

/* Returns a borrowed fd of the directory `parent` inside the root. */
static int
parent_fd(apply_t *A, const char *parent, crater_error_t *err)
{
  if (A->cache_path && strcmp(A->cache_path, parent) == 0)
    return A->cache_fd;
  cache_drop(A);
  int fd = crater__resolve_dir(&A->r, parent, true, err);
  if (fd < 0)
    return -1;
  A->cache_fd = fd;
  A->cache_path = xstrdup(parent);
  return fd;
}

/* --- metadata ----------------------------------------------------------- */

static void
entry_times(struct archive_entry *e, struct timespec ts[2])
{
  ts[1].tv_sec = crater__archive.entry_mtime(e);
  ts[1].tv_nsec = crater__archive.entry_mtime_nsec(e);
  if (crater__archive.entry_atime_is_set(e)) {
    ts[0].tv_sec = crater__archive.entry_atime(e);
    ts[0].tv_nsec = crater__archive.entry_atime_nsec(e);
  } else {
    ts[0] = ts[1];
  }
}

/* Sets the layer's xattrs on fd, or on pfd/name (not following) when
 * fd < 0. */
static int
set_xattrs(struct archive_entry *e, int fd, int pfd, const char *name, crater_error_t *err)
{
  if (crater__archive.entry_xattr_reset(e) == 0)
    return 0;
  char proc[64];
  cleanup_free char *lpath = NULL;
  if (fd < 0) {
    snprintf(proc, sizeof proc, "/proc/self/fd/%d/", pfd);
    lpath = xasprintf("%s%s", proc, name);
  }
  const char *xname;
  const void *value;
  size_t size;
  while (crater__archive.entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
    if (crater__xattr_is_private(xname))
      continue; /* would forge overlay whiteouts/redirects */
    int rc =
        fd >= 0 ? fsetxattr(fd, xname, value, size, 0) : lsetxattr(lpath, xname, value, size, 0);
    if (rc < 0) {
      if (fd < 0 && errno == EPERM && strncmp(xname, "user.", 5) == 0)
        continue; /* user.* is not allowed on symlinks/devices */
      return crater_error_sys(err, errno, "setxattr %s", xname);
    }
  }
  return 0;
}

/* Owner, mode, xattrs and (for non-directories) times on an open fd. */
static int
set_meta_fd(apply_t *A, struct archive_entry *e, int fd, bool is_dir, crater_error_t *err)
{
  if (fchown(fd, crater__archive.entry_uid(e), crater__archive.entry_gid(e)) < 0)
    return crater_error_sys(err, errno, "chown");
  if (fchmod(fd, crater__archive.entry_perm(e) & 07777) < 0)
    return crater_error_sys(err, errno, "chmod");
  if (set_xattrs(e, fd, -1, NULL, err) < 0)
    return -1;
  if (!is_dir) {
    struct timespec ts[2];
    entry_times(e, ts);
    if (futimens(fd, ts) < 0)
      return crater_error_sys(err, errno, "utimes");
  }
  return 0;
}

/* The same for a leaf that cannot be opened (symlink, device, fifo). */
static int
set_meta_at(struct archive_entry *e, int pfd, const char *name, bool is_link, crater_error_t *err)
{
  if (fchownat(pfd, name, crater__archive.entry_uid(e), crater__archive.entry_gid(e),
               AT_SYMLINK_NOFOLLOW) < 0)
    return crater_error_sys(err, errno, "chown");
  /* fchmodat cannot act on a symlink itself; the leaf was just created by
   * us and is not a symlink, so following it is moot. */
  if (!is_link && fchmodat(pfd, name, crater__archive.entry_perm(e) & 07777, 0) < 0)
    return crater_error_sys(err, errno, "chmod");
  if (set_xattrs(e, -1, pfd, name, err) < 0)
    return -1;
  struct timespec ts[2];
  entry_times(e, ts);
  if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return crater_error_sys(err, errno, "utimes");
  return 0;
}

static void
defer_dir_times(apply_t *A, const char *path, struct archive_entry *e)
{
  if (A->ndirs == A->capdirs) {
    A->capdirs = A->capdirs ? A->capdirs * 2 : 256;
    A->dirs = xrealloc(A->dirs, A->capdirs * sizeof *A->dirs);
  }
  dirtime_t *d = &A->dirs[A->ndirs++];
  d->path = xstrdup(path);
  entry_times(e, d->ts);
}

static int
fix_dir_times(apply_t *A, crater_error_t *err)
{
  for (size_t i = A->ndirs; i-- > 0;) {
    cleanup_close int fd = crater__resolve_dir(&A->r, A->dirs[i].path, false, err);
    if (fd < 0) {
      if ((*err)->status == ENOENT || (*err)->status == ENOTDIR) {
        crater_error_release(err); /* removed later in the layer */
        continue;
      }
      return crater_error_wrap(err, "entry %s", A->dirs[i].path);
    }
    if (futimens(fd, A->dirs[i].ts) < 0)
      return crater_error_sys(err, errno, "entry %s: utimes", A->dirs[i].path);
  }
  return 0;
}

/* --- overlay copy-up (lowers) -------------------------------------------- */

static bool
has_lowers(const apply_t *A)
{
  return A->o->whiteouts == CRATER_WHITEOUT_OVERLAY && A->o->nlowers > 0;
}

/* Overlay mode, with lowers or asked to list implicit parents for a later
 * crater_archive_fix_parents: parent directories used are recorded. */
static bool
records_parents(const apply_t *A)
{
  return A->o->whiteouts == CRATER_WHITEOUT_OVERLAY &&
         (A->o->nlowers > 0 || (A->o->flags & CRATER_APPLY_RECORD_IMPLICIT));
}

/* Records dir and its ancestors as parents the layer used. */
static void
note_parents(apply_t *A, const char *dir)
{
  size_t n = strlen(dir);
  while (n > 0) {
    if (pathset_has_n(&A->parents, dir, n))
      return;
    pathset_add_n(&A->parents, dir, n);
    while (n > 0 && dir[n - 1] != '/')
      n--;
    if (n > 0)
      n--;
  }
}

static bool
fd_is_opaque(int fd)
{
  char proc[64], v[2];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  ssize_t n = getxattr(proc, "trusted.overlay.opaque", v, sizeof v);
  return n == 1 && v[0] == 'y';
}

/* Finds what the lowers (nearest first) show at path, as overlayfs would:
 * a whiteout, a non-directory in the way or an opaque directory stops the
 * search.  Never follows symlinks.  Returns an O_PATH fd of the parent
 * directory in that lower (name = the last component) and fills *st, or -1
 * when nothing is visible. */
static int
lower_lookup(apply_t *A, const char *path, struct stat *st)
{
  const char *last = strrchr(path, '/');
  last = last ? last + 1 : path;
  for (size_t j = 0; j < A->o->nlowers; j++) {
    int cur = fcntl(A->o->lower_fds[j], F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
      return -1;
    bool stop = false, missing = false;
    const char *p = path;
    while (p != last) {
      const char *sl = strchr(p, '/');
      cleanup_free char *c = xstrndup(p, (size_t) (sl - p));
      int nfd = openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      struct stat cs;
      if (nfd < 0) {
        missing = true;
        break;
      }
      if (fstat(nfd, &cs) < 0 || !S_ISDIR(cs.st_mode)) {
        close(nfd);
        stop = true; /* a whiteout or non-directory hides what is below */
        break;
      }
      close(cur);
      cur = nfd;
      p = sl + 1;
    }
    if (!stop && !missing) {
      if (fstatat(cur, last, st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0)) {
          close(cur);
          return -1; /* whited out */
        }
        return cur;
      }
    }
    /* not in this lower: an opaque directory on the way hides the rest */
    bool opaque = !stop && fd_is_opaque(cur);
    close(cur);
    if (stop || opaque)
      return -1;
  }
  return -1;
}

/* Copies xattrs (except overlay-private ones) from src to dst (paths that
 * are not followed: /proc/self/fd/N or lpaths). */
static int
copy_xattrs(const char *src, const char *dst, crater_error_t *err)
{
  char names[8192];
  ssize_t n = llistxattr(src, names, sizeof names);
  if (n < 0)
    return errno == ENOTSUP ? 0 : crater_error_sys(err, errno, "listxattr");
  for (char *x = names; x < names + n; x += strlen(x) + 1) {
    if (crater__xattr_is_private(x))
      continue;
    char v[4096];
    ssize_t vn = lgetxattr(src, x, v, sizeof v);
    if (vn < 0)
      continue;
    if (lsetxattr(dst, x, v, (size_t) vn, 0) < 0 &&
        !(errno == EPERM && strncmp(x, "user.", 5) == 0))
      return crater_error_sys(err, errno, "setxattr %s", x);
  }
  return 0;
}

/* Copy-up: brings the lower file at path (a regular file, symlink or
 * special file) into the upper, with owner, mode, xattrs and times, so a
 * hardlink can be made to it.  Returns 1 when copied, 0 when no lower has
 * it, <0 on failure. */
static int
copy_up(apply_t *A, const char *path, const char *parent, int tfd, const char *tname,
        crater_error_t *err)
{
  struct stat st;
  cleanup_close int lp = lower_lookup(A, path, &st);
  if (lp < 0 || S_ISDIR(st.st_mode))
    return 0;
  note_parents(A, parent);
  if (S_ISREG(st.st_mode)) {
    cleanup_close int src = openat(lp, tname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
      return crater_error_sys(err, errno, "copy-up %s: open lower", path);
    cleanup_close int dst =
        openat(tfd, tname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (dst < 0)
      return crater_error_sys(err, errno, "copy-up %s", path);
    off_t left = st.st_size;
    while (left > 0) {
      ssize_t w = copy_file_range(src, NULL, dst, NULL, (size_t) left, 0);
      if (w <= 0) {
        char buf[65536];
        ssize_t r = read(src, buf, sizeof buf);
        if (r <= 0 || write(dst, buf, (size_t) r) != r) {
          unlinkat(tfd, tname, 0);
          return crater_error_sys(err, r < 0 ? errno : EIO, "copy-up %s", path);
        }
        w = r;
      }
      left -= w;
    }
  } else if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlinkat(lp, tname, target, sizeof target - 1);
    if (n < 0)
      return crater_error_sys(err, errno, "copy-up %s: readlink", path);
    target[n] = '\0';
    if (symlinkat(target, tfd, tname) < 0)
      return crater_error_sys(err, errno, "copy-up %s", path);
  } else if (mknodat(tfd, tname, st.st_mode, st.st_rdev) < 0)
    return crater_error_sys(err, errno, "copy-up %s", path);
  char sp[96], dp[96];
  snprintf(sp, sizeof sp, "/proc/self/fd/%d/", lp);
  snprintf(dp, sizeof dp, "/proc/self/fd/%d/", tfd);
  cleanup_free char *spath = xasprintf("%s%s", sp, tname);
  cleanup_free char *dpath = xasprintf("%s%s", dp, tname);
  struct timespec ts[2] = { st.st_atim, st.st_mtim };
  if (fchownat(tfd, tname, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
      (!S_ISLNK(st.st_mode) && fchmodat(tfd, tname, st.st_mode & 07777, 0) < 0))
    return crater_error_sys(err, errno, "copy-up %s: chown/chmod", path);
  if (copy_xattrs(spath, dpath, err) < 0)
    return crater_error_wrap(err, "copy-up %s", path);
  if (utimensat(tfd, tname, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return crater_error_sys(err, errno, "copy-up %s: utimes", path);
  return 1;
}

/* After the layer: every parent directory the layer created implicitly
 * (no directory entry of its own) takes the owner, mode, xattrs and times
 * of the directory the lowers show at that path, as overlayfs copy-up
 * would; without this the upper's 0755 root:root directory would hide
 * them through the mount. */
static int
fix_implicit_parents(apply_t *A, crater_error_t *err)
{
  pathset_t explicit_dirs = { 0 };
  for (size_t i = 0; i < A->ndirs; i++)
    pathset_add_n(&explicit_dirs, A->dirs[i].path, strlen(A->dirs[i].path));
  int ret = 0;
  for (size_t i = 0; i < A->parents.cap && ret == 0; i++) {
    const char *p = A->parents.slots ? A->parents.slots[i] : NULL;
    if (p == NULL || pathset_has(&explicit_dirs, p))
      continue;
    struct stat st;
    cleanup_close int lp = lower_lookup(A, p, &st);
    if (lp < 0 || !S_ISDIR(st.st_mode))
      continue;
    crater_error_t e2 = NULL;
    cleanup_close int ufd = crater__resolve_dir(&A->r, p, false, &e2);
    if (ufd < 0) {
      crater_error_release(&e2); /* removed or replaced later in the layer */
      continue;
    }
    struct stat us;
    if (fstat(ufd, &us) < 0)
      continue;
    const char *last = strrchr(p, '/');
    last = last ? last + 1 : p;
    cleanup_close int ld = openat(lp, last, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ld < 0)
      continue;
    char sp[64], dp[64];
    snprintf(sp, sizeof sp, "/proc/self/fd/%d", ld);
    snprintf(dp, sizeof dp, "/proc/self/fd/%d", ufd);
    struct timespec ts[2] = { st.st_atim, st.st_mtim };
    if (fchown(ufd, st.st_uid, st.st_gid) < 0 || fchmod(ufd, st.st_mode & 07777) < 0)
      ret = crater_error_sys(err, errno, "directory %s: copy metadata from the lower layer", p);
    else if (copy_xattrs(sp, dp, err) < 0)
      ret = crater_error_wrap(err, "directory %s", p);
    else if (futimens(ufd, ts) < 0)
      ret = crater_error_sys(err, errno, "directory %s: utimes", p);
  }
  pathset_free(&explicit_dirs);
  return ret;
}

/* The parents the layer used without a directory entry of its own
 * (CRATER_APPLY_RECORD_IMPLICIT without lowers), into out. */
static void
list_implicit_parents(apply_t *A, crater_apply_result_t *out)
{
  pathset_t explicit_dirs = { 0 };
  for (size_t i = 0; i < A->ndirs; i++)
    pathset_add_n(&explicit_dirs, A->dirs[i].path, strlen(A->dirs[i].path));
  size_t cap = 0;
  for (size_t i = 0; i < A->parents.cap; i++) {
    const char *p = A->parents.slots ? A->parents.slots[i] : NULL;
    if (p == NULL || pathset_has(&explicit_dirs, p))
      continue;
    if (out->nimplicit == cap) {
      cap = cap ? 2 * cap : 16;
      out->implicit = xrealloc(out->implicit, cap * sizeof *out->implicit);
    }
    out->implicit[out->nimplicit++] = xstrdup(p);
  }
  pathset_free(&explicit_dirs);
}

int
crater_archive_fix_parents(int root_dirfd, const char *const *paths, size_t n,
                           const crater_apply_opts_t *opts, crater_error_t *err)
{
  if (opts == NULL || opts->whiteouts != CRATER_WHITEOUT_OVERLAY || opts->nlowers == 0 || n == 0)
    return 0;
  apply_t A = { .o = opts, .cache_fd = -1 };
  A.r.root = root_dirfd;
  A.r.no_openat2 = (opts->flags & CRATER_APPLY_NO_OPENAT2) != 0;
  for (size_t i = 0; i < n; i++)
    pathset_add_n(&A.parents, paths[i], strlen(paths[i]));
  int ret = fix_implicit_parents(&A, err);
  pathset_free(&A.parents);
  return ret;
}

void
crater_apply_result_clear(crater_apply_result_t *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->nimplicit; i++)
    free(r->implicit[i]);
  free(r->implicit);
  r->implicit = NULL;
  r->nimplicit = 0;
}

/* --- entries ------------------------------------------------------------ */

/* Makes room for a new leaf: removes whatever is at pfd/name.  keep_dir:
 * an existing directory stays (directory entry over a directory); returns 1
 * then. */
static int
clear_leaf(apply_t *A __attribute__((unused)), int pfd, const char *name, bool keep_dir,
           crater_error_t *err)
{
  struct stat st;
  if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT)
      return 0;
    return crater_error_sys(err, errno, "stat");
  }
  if (keep_dir && S_ISDIR(st.st_mode))
    return 1;
  /* The parent cache holds only pfd, which the removal of its child
   * cannot invalidate. */
  return crater__remove_at(pfd, name, err);
}

static int
write_data(apply_t *A, struct archive_entry *e, int fd, crater_error_t *err)
{
  const void *buf;
  size_t size;
  la_int64_t offset, pos = 0;
  for (;;) {
    int r = crater__archive.read_data_block(A->a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      if (crater__lstream_take_error(A->s, err))
        return -1;
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "read data: %s",
                               crater__archive.error_string(A->a));
    }
    if (offset != pos && lseek(fd, offset, SEEK_SET) < 0)
      return crater_error_sys(err, errno, "seek");
    if (crater__write_all(fd, buf, size, err) < 0)
      return -1;
    pos = offset + (la_int64_t) size;
  }
  if (pos < crater__archive.entry_size(e) && ftruncate(fd, crater__archive.entry_size(e)) < 0)
    return crater_error_sys(err, errno, "truncate");
  return 0;
}

static int
do_file(apply_t *A, struct archive_entry *e, int pfd, const char *name, crater_error_t *err)
{
  if (A->o->max_size && (uint64_t) crater__archive.entry_size(e) > A->o->max_size)
    return crater_error_make(err, CRATER_ERR_RESOURCE_EXHAUSTED, 0,
                             "file of %lld bytes exceeds the layer limit",
                             (long long) crater__archive.entry_size(e));
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = openat(pfd, name, flags, 0600);
  if (fd < 0 && errno == EEXIST) {
    if (clear_leaf(A, pfd, name, false, err) < 0)
      return -1;
    fd = openat(pfd, name, flags, 0600);
  }
  if (fd < 0)
    return crater_error_sys(err, errno, "create");
  cleanup_close int cfd = fd;
  if (write_data(A, e, fd, err) < 0 || set_meta_fd(A, e, fd, false, err) < 0) {
    unlinkat(pfd, name, 0); /* leave nothing half-written behind */
    return -1;
  }
  return 0;
}

static int
do_dir(apply_t *A, struct archive_entry *e, int pfd, const char *name, const char *path,
       crater_error_t *err)
{
  if (mkdirat(pfd, name, 0700) < 0) {
    if (errno != EEXIST)
      return crater_error_sys(err, errno, "mkdir");
    if (clear_leaf(A, pfd, name, true, err) < 0)
      return -1;
    if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
      return crater_error_sys(err, errno, "mkdir");
  }
  cleanup_close int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open");
  if (set_meta_fd(A, e, fd, true, err) < 0)
    return -1;
  defer_dir_times(A, path, e);
  return 0;
}

static int
do_symlink(apply_t *A, struct archive_entry *e, int pfd, const char *name, crater_error_t *err)
{
  const char *target = crater__archive.entry_symlink(e);
  if (target == NULL || target[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "symlink without target");
  if (symlinkat(target, pfd, name) < 0) {
    if (errno != EEXIST)
      return crater_error_sys(err, errno, "symlink");
    if (clear_leaf(A, pfd, name, false, err) < 0)
      return -1;
    if (symlinkat(target, pfd, name) < 0)
      return crater_error_sys(err, errno, "symlink");
  }
  return set_meta_at(e, pfd, name, true, err);
}

static int
do_node(apply_t *A, struct archive_entry *e, int pfd, const char *name, mode_t type,
        crater_error_t *err)
{
  dev_t dev = type == S_IFIFO
                  ? 0
                  : makedev(crater__archive.entry_rdevmajor(e), crater__archive.entry_rdevminor(e));
  if (mknodat(pfd, name, type | 0600, dev) < 0) {
    if (errno != EEXIST)
      return crater_error_sys(err, errno, "mknod");
    if (clear_leaf(A, pfd, name, false, err) < 0)
      return -1;
    if (mknodat(pfd, name, type | 0600, dev) < 0)
      return crater_error_sys(err, errno, "mknod");
  }
  return set_meta_at(e, pfd, name, false, err);
}

static int
do_hardlink(apply_t *A, struct archive_entry *e, int pfd, const char *name, const char *path,
            crater_error_t *err)
{
  const char *raw = crater__archive.entry_hardlink(e);
  cleanup_free char *target = xmalloc(strlen(raw) + 1);
  if (crater__clean_path(raw, target, err) < 0)
    return crater_error_wrap(err, "hardlink target");
  if (target[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "hardlink to the root");
  if (strcmp(target, path) == 0)
    return 0; /* a link to itself: nothing to do */
  cleanup_free char *target_full = xstrdup(target);
  char *slash = strrchr(target, '/');
  const char *tname = slash ? slash + 1 : target;
  if (slash)
    *slash = '\0';
  cleanup_close int tfd = crater__resolve_dir(&A->r, slash ? target : "", has_lowers(A), err);
  if (tfd < 0)
    return crater_error_wrap(err, "hardlink target %s", raw);
  /* flags 0: a symlink target is linked itself, never followed. */
  int lrc = linkat(tfd, tname, pfd, name, 0);
  if (lrc < 0 && errno == ENOENT && has_lowers(A)) {
    /* a file of a lower layer: copy it up first, as overlayfs would */
    int c = copy_up(A, target_full, slash ? target : "", tfd, tname, err);
    if (c < 0)
      return -1;
    if (c > 0)
      lrc = linkat(tfd, tname, pfd, name, 0);
    else
      errno = ENOENT;
  }
  if (lrc < 0) {
    if (errno != EEXIST)
      return crater_error_sys(err, errno, "link to %s", raw);
    struct stat a, b;
    if (fstatat(tfd, tname, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
        fstatat(pfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
      return 0; /* already the same file */
    if (clear_leaf(A, pfd, name, false, err) < 0)
      return -1;
    if (linkat(tfd, tname, pfd, name, 0) < 0)
      return crater_error_sys(err, errno, "link to %s", raw);
  }
  return 0; /* any data in the entry is ignored on purpose */
}

/* Removes everything below dfd/name that this layer did not write
 * (`prefix` is the path of dfd/name).  remove_self: name itself goes too
 * when untouched. */
static int
prune(apply_t *A, int dfd, const char *name, const char *prefix, bool remove_self,
      crater_error_t *err)
{
  if (remove_self && !pathset_has(&A->touched, prefix))
    return crater__remove_at(dfd, name, err);
  int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
      return 0;
    return crater_error_sys(err, errno, "open %s", prefix);
  }
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return crater_error_sys(err, errno, "opendir %s", prefix);
  }
  cleanup_dir DIR *dir = d;
  struct dirent *de;
  while ((errno = 0, de = readdir(dir)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    cleanup_free char *child =
        prefix[0] ? xasprintf("%s/%s", prefix, de->d_name) : xstrdup(de->d_name);
    if (prune(A, dirfd(dir), de->d_name, child, true, err) < 0)
      return -1;
  }
  return 0;
}

static int
do_whiteout(apply_t *A, struct archive_entry *e, const char *parent, const char *base,
            crater_error_t *err)
{
  bool opaque = strcmp(base, WH_OPAQUE) == 0;
  const char *victim = base + strlen(WH_PREFIX);
  if (!opaque) {
    if (strncmp(victim, WH_PREFIX, strlen(WH_PREFIX)) == 0)
      return 0; /* other AUFS metadata (.wh..wh.plnk ...): skip */
    if (victim[0] == '\0' || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "invalid whiteout");
  }
  cache_drop(A); /* removals below may invalidate it */
  /* Overlay mode creates missing parents (the upper dir needs them to hold
   * the whiteout); delete mode has nothing to delete under a missing one.
   * A parent this layer replaced by a non-directory hides everything below
   * it already (umoci emits such whiteouts after the replacement). */
  bool overlay = A->o->whiteouts == CRATER_WHITEOUT_OVERLAY;
  cleanup_close int pfd = crater__resolve_dir(&A->r, parent, overlay, err);
  if (pfd < 0) {
    if ((*err)->status == ENOTDIR || (!overlay && (*err)->status == ENOENT)) {
      crater_error_release(err);
      return 0;
    }
    return -1;
  }
  if (opaque) {
    if (A->o->whiteouts == CRATER_WHITEOUT_OVERLAY) {
      if (fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
        return crater_error_sys(err, errno, "set opaque xattr");
      return 0;
    }
    return prune(A, pfd, ".", parent, false, err);
  }
  cleanup_free char *vpath = parent[0] ? xasprintf("%s/%s", parent, victim) : xstrdup(victim);
  bool written = pathset_has(&A->touched, vpath);
  if (A->o->whiteouts == CRATER_WHITEOUT_DELETE)
    return prune(A, pfd, victim, vpath, true, err);
  if (written) {
    /* The layer itself wrote below the victim: hide only the lower
     * contents by making the directory opaque. */
    cleanup_close int vfd = openat(pfd, victim, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (vfd >= 0 && fsetxattr(vfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
      return crater_error_sys(err, errno, "set opaque xattr");
    return 0;
  }
  if (crater__remove_at(pfd, victim, err) < 0)
    return -1;
  if (mknodat(pfd, victim, S_IFCHR | 0000, makedev(0, 0)) < 0)
    return crater_error_sys(err, errno, "mknod whiteout %s", victim);
  if (fchownat(pfd, victim, crater__archive.entry_uid(e), crater__archive.entry_gid(e),
               AT_SYMLINK_NOFOLLOW) < 0)
    return crater_error_sys(err, errno, "chown whiteout %s", victim);
  return 0;
}

static int
apply_entry(apply_t *A, struct archive_entry *e, crater_error_t *err)
{
  const char *raw = crater__archive.entry_pathname(e);
  if (raw == NULL)
    raw = crater__archive.entry_pathname_utf8(e);
  if (raw == NULL)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "entry without a name");
  cleanup_free char *path = xmalloc(strlen(raw) + 1);
  if (crater__clean_path(raw, path, err) < 0)
    return -1;
  mode_t type = crater__archive.entry_filetype(e);
  bool hardlink = crater__archive.entry_hardlink(e) != NULL;

  if (path[0] == '\0') { /* "./": metadata of the root itself */
    if (hardlink || type != AE_IFDIR)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                               "entry %s: root is not a directory", raw);
    cleanup_close int fd = crater__resolve_dir(&A->r, "", false, err);
    if (fd < 0 || set_meta_fd(A, e, fd, true, err) < 0)
      return crater_error_wrap(err, "entry %s", raw);
    defer_dir_times(A, "", e);
    return 0;
  }

  char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  cleanup_free char *parent = slash ? xstrndup(path, (size_t) (slash - path)) : xstrdup("");

  if (records_parents(A) && parent[0])
    note_parents(A, parent);
  if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
    if (do_whiteout(A, e, parent, base, err) < 0)
      return crater_error_wrap(err, "entry %s", raw);
    return 0;
  }
  if (!hardlink && (type == AE_IFCHR || type == AE_IFBLK) &&
      (A->o->flags & CRATER_APPLY_NO_DEVICES))
    return crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                             "entry %s: device nodes are not allowed", raw);

  int pfd = parent_fd(A, parent, err);
  if (pfd < 0)
    return crater_error_wrap(err, "entry %s", raw);
  touch(A, path);

  int rc;
  if (hardlink)
    rc = do_hardlink(A, e, pfd, base, path, err);
  else {
    switch (type) {
    case AE_IFREG:
      rc = do_file(A, e, pfd, base, err);
      break;
    case AE_IFDIR:
      rc = do_dir(A, e, pfd, base, path, err);
      break;
    case AE_IFLNK:
      rc = do_symlink(A, e, pfd, base, err);
      cache_drop(A); /* paths through it now resolve elsewhere */
      break;
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
      rc = do_node(A, e, pfd, base, type, err);
      break;
    case AE_IFSOCK:
      rc = 0; /* sockets are not carried in images */
      break;
    default:
      rc = crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "unsupported entry type 0%o",
                             (unsigned) type);
    }
  }
  if (rc < 0)
    return crater_error_wrap(err, "entry %s", raw);
  return 0;
}

/* --- driver ------------------------------------------------------------- */

static la_ssize_t
read_cb(struct archive *a, void *data, const void **buf)
{
  apply_t *A = data;
  size_t n;
  crater_error_t e = NULL;
  if (crater__lstream_read(A->s, buf, &n, &e) < 0) {
    crater__archive.set_error(a, EIO, "%s", e->msg);
    crater__lstream_set_error(A->s, &e);
    return -1;
  }
  return (la_ssize_t) n;
}

static int
run(apply_t *A, crater_error_t *err)
{
  A->a = crater__archive.read_new();
  crater__archive.read_support_format_tar(A->a);
  crater__archive.read_support_filter_none(A->a);
  if (crater__archive.read_open(A->a, A, NULL, read_cb, NULL) != ARCHIVE_OK) {
    if (crater__lstream_take_error(A->s, err))
      return -1;
    return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "open tar: %s",
                             crater__archive.error_string(A->a));
  }
  for (;;) {
    struct archive_entry *e;
    int r = crater__archive.read_next_header(A->a, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      if (crater__lstream_take_error(A->s, err))
        return -1;
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "read tar: %s",
                               crater__archive.error_string(A->a));
    }
    A->entries++;
    if (apply_entry(A, e, err) < 0)
      return -1;
  }
  if (crater__lstream_drain(A->s, err) < 0)
    return -1;
  cache_drop(A);
  if (fix_dir_times(A, err) < 0)
    return -1;
  return has_lowers(A) ? fix_implicit_parents(A, err) : 0;
}

int
crater_archive_apply(int root_dirfd, int layer_fd, const crater_apply_opts_t *opts,
                     crater_apply_result_t *out, crater_error_t *err)
{
  static const crater_apply_opts_t defaults = { 0 };
  if (crater__archive_load(err) < 0)
    return crater_error_wrap(err, "apply layer");
  if (opts == NULL)
    opts = &defaults;
  apply_t A = { .o = opts, .cache_fd = -1 };
  A.r.root = root_dirfd;
  A.r.no_openat2 = (opts->flags & CRATER_APPLY_NO_OPENAT2) != 0;
  int ret = -1;
  A.s = crater__lstream_open(layer_fd, opts->compression, opts->decoder, opts->max_size, err);
  if (A.s == NULL)
    goto done;
  if (run(&A, err) < 0)
    goto done;
  char diff_id[80];
  uint64_t size;
  crater__lstream_digest(A.s, diff_id, &size);
  if (opts->expected_diff_id && strcmp(opts->expected_diff_id, diff_id) != 0) {
    crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "diff ID mismatch: expected %s, got %s",
                      opts->expected_diff_id, diff_id);
    goto done;
  }
  if (out) {
    memcpy(out->diff_id, diff_id, sizeof out->diff_id);
    out->size = size;
    out->entries = A.entries;
    out->implicit = NULL;
    out->nimplicit = 0;
    if ((opts->flags & CRATER_APPLY_RECORD_IMPLICIT) && !has_lowers(&A) && records_parents(&A))
      list_implicit_parents(&A, out);
  }
  ret = 0;
done:
  if (A.a)
    crater__archive.read_free(A.a);
  crater__lstream_free(A.s);
  cache_drop(&A);
  for (size_t i = 0; i < A.ndirs; i++)
    free(A.dirs[i].path);
  free(A.dirs);
  pathset_free(&A.touched);
  pathset_free(&A.parents);
  if (ret < 0)
    crater_error_wrap(err, "apply layer");
  return ret;
}

int
crater_archive_compression_parse(const char *s, crater_compression_t *out, crater_error_t *err)
{
  size_t n = s ? strlen(s) : 0;
  if (s && (strcmp(s, "gzip") == 0 || (n > 5 && strcmp(s + n - 5, "+gzip") == 0) ||
            (n > 5 && strcmp(s + n - 5, ".gzip") == 0)))
    *out = CRATER_COMPRESSION_GZIP;
  else if (s && (strcmp(s, "zstd") == 0 || (n > 5 && strcmp(s + n - 5, "+zstd") == 0)))
    *out = CRATER_COMPRESSION_ZSTD;
  else if (s && (strcmp(s, "none") == 0 || (n > 4 && strcmp(s + n - 4, ".tar") == 0) ||
                 (n > 4 && strcmp(s + n - 4, "/tar") == 0)))
    *out = CRATER_COMPRESSION_NONE;
  else
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "unknown layer compression '%s'",
                             s ? s : "(null)");
  return 0;
}
