/*
 * crater_archive_diff: turns a snapshot's changes into an OCI layer.
 *
 * The upper tree (and the lower one in two-tree mode) is walked one
 * directory at a time with names sorted bytewise, so the output is
 * deterministic: a directory's entry comes before its children, a
 * whiteout sits where its victim's name sorts.  In overlay mode every
 * upper entry is emitted, 0/0 character devices become `.wh.NAME` and a
 * directory with trusted.overlay.opaque=y is followed by its
 * `.wh..wh..opq`.  In two-tree mode names only in lower become whiteouts,
 * names only in upper are emitted with their whole subtree, and names in
 * both are emitted when type, mode, owner, size, mtime, link target, rdev
 * or xattrs differ -- or, for regular files whose mtime has no sub-second
 * part (and so cannot be trusted), when the contents differ.
 *
 * libarchive's writer produces the tar (pax, only where needed); the bytes
 * go through a callback that hashes them (diff ID), compresses them (ISA-L
 * deflate for gzip, libzstd) and hashes and writes the result to out_fd.
 * libarchive, ISA-L, libzstd and libcrypto are all loaded on first use
 * (archive_sym.h, isal_sym.h, zstd_sym.h, content/crypto_sym.h).
 * All tree access is fd-relative with O_NOFOLLOW.
 */
#include <dirent.h>
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
#include "archive/isal_sym.h"
#include "archive/zstd_sym.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define CBUF (1u << 20)

typedef struct {
  dev_t dev;
  ino_t ino;
  char *path;
} inode_t;

typedef struct {
  const crater_diff_opts_t *o;
  struct archive *w;
  int out_fd;
  crater_digester_t *md_u, *md_c;
  uint64_t usize, csize, entries;
  struct isal_zstream *gz;
  ZSTD_CCtx *zs;
  unsigned char *cbuf;
  unsigned char *iobuf;
  crater_error_t error; /* from the write callback */
  inode_t *inodes;      /* hardlink map (linear probing on ino) */
  size_t icap, in;
} diff_t;

/* --- output: hash, compress, write -------------------------------------- */

static int
emit_compressed(diff_t *D, const void *buf, size_t n, crater_error_t *err)
{
  if (n == 0)
    return 0;
  crater_digester_update(D->md_c, buf, n, NULL);
  D->csize += n;
  return crater__write_all(D->out_fd, buf, n, err);
}

static int
compress_chunk(diff_t *D, const void *buf, size_t n, bool end, crater_error_t *err)
{
  if (D->gz) {
    struct isal_zstream *z = D->gz;
    z->next_in = (uint8_t *) buf;
    z->avail_in = (uint32_t) n;
    z->end_of_stream = end;
    do {
      z->next_out = D->cbuf;
      z->avail_out = CBUF;
      if (crater__isal.deflate(z) != COMP_OK)
        return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "gzip: deflate failed");
      if (emit_compressed(D, D->cbuf, CBUF - z->avail_out, err) < 0)
        return -1;
    } while (z->avail_in > 0 || z->avail_out == 0 ||
             (end && z->internal_state.state != ZSTATE_END));
    return 0;
  }
  if (D->zs) {
    ZSTD_inBuffer ib = { buf, n, 0 };
    size_t rc;
    do {
      ZSTD_outBuffer ob = { D->cbuf, CBUF, 0 };
      rc = crater__zstd.compressStream2(D->zs, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
      if (crater__zstd.isError(rc))
        return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "zstd: %s",
                                 crater__zstd.getErrorName(rc));
      if (emit_compressed(D, D->cbuf, ob.pos, err) < 0)
        return -1;
    } while (ib.pos < ib.size || (end && rc != 0));
    return 0;
  }
  return emit_compressed(D, buf, n, err);
}

static la_ssize_t
write_cb(struct archive *a, void *data, const void *buf, size_t n)
{
  diff_t *D = data;
  crater_error_t e = NULL;
  crater_digester_update(D->md_u, buf, n, NULL);
  D->usize += n;
  if (compress_chunk(D, buf, n, false, &e) < 0) {
    crater__archive.set_error(a, EIO, "%s", e->msg);
    crater_error_release(&D->error);
    crater_error_move(&D->error, &e);
    return -1;
  }
  return (la_ssize_t) n;
}

static int
werr(diff_t *D, crater_error_t *err, const char *what)
{
  if (D->error) {
    crater_error_move(err, &D->error);
    return crater_error_wrap(err, "%s", what);
  }
  return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "%s: %s", what,
                           crater__archive.error_string(D->w));
}

/* --- tree reading helpers ----------------------------------------------- */

typedef struct {
  char **names;
  size_t n;
} names_t;

static int
cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
names_free(names_t *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->names[i]);
  free(l->names);
  l->names = NULL;
  l->n = 0;
}

/* Sorted names of the directory dfd (-1: empty). */
static int
list_dir(int dfd, names_t *out, crater_error_t *err)
{
  out->names = NULL;
  out->n = 0;
  if (dfd < 0)
    return 0;
  int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open");
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return crater_error_sys(err, errno, "opendir");
  }
  cleanup_dir DIR *dir = d;
  size_t cap = 0;
  struct dirent *de;
  while ((errno = 0, de = readdir(dir)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (out->n == cap) {
      cap = cap ? cap * 2 : 32;
      out->names = xrealloc(out->names, cap * sizeof *out->names);
    }
    out->names[out->n++] = xstrdup(de->d_name);
  }
  if (errno != 0) {
    int e = errno;
    names_free(out);
    return crater_error_sys(err, e, "readdir");
  }
  if (out->n > 1)
    qsort(out->names, out->n, sizeof *out->names, cmp_names);
  return 0;
}

typedef struct {
  char *name;
  void *value;
  size_t size;
} xattr_t;

typedef struct {
  xattr_t *v;
  size_t n;
} xattrs_t;

static void
xattrs_free(xattrs_t *x)
{
  for (size_t i = 0; i < x->n; i++) {
    free(x->v[i].name);
    free(x->v[i].value);
  }
  free(x->v);
  x->v = NULL;
  x->n = 0;
}

static int
cmp_xattr(const void *a, const void *b)
{
  return strcmp(((const xattr_t *) a)->name, ((const xattr_t *) b)->name);
}

/* Reads the shareable xattrs of dfd/name (not following), sorted. */
static int
read_xattrs(int dfd, const char *name, xattrs_t *out, crater_error_t *err)
{
  out->v = NULL;
  out->n = 0;
  char path[4200];
  snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dfd, name);
  ssize_t len = llistxattr(path, NULL, 0);
  if (len < 0) {
    if (errno == ENOTSUP || errno == ENODATA)
      return 0;
    return crater_error_sys(err, errno, "listxattr %s", name);
  }
  if (len == 0)
    return 0;
  cleanup_free char *list = xmalloc((size_t) len + 1);
  len = llistxattr(path, list, (size_t) len);
  if (len < 0)
    return crater_error_sys(err, errno, "listxattr %s", name);
  size_t cap = 0;
  for (char *k = list; k < list + len; k += strlen(k) + 1) {
    if (crater__xattr_is_private(k))
      continue;
    ssize_t vl = lgetxattr(path, k, NULL, 0);
    if (vl < 0) {
      if (errno == ENODATA)
        continue;
      xattrs_free(out);
      return crater_error_sys(err, errno, "getxattr %s %s", name, k);
    }
    void *v = xmalloc((size_t) vl + 1);
    vl = lgetxattr(path, k, v, (size_t) vl);
    if (vl < 0) {
      free(v);
      xattrs_free(out);
      return crater_error_sys(err, errno, "getxattr %s %s", name, k);
    }
    if (out->n == cap) {
      cap = cap ? cap * 2 : 4;
      out->v = xrealloc(out->v, cap * sizeof *out->v);
    }
    out->v[out->n++] = (xattr_t){ xstrdup(k), v, (size_t) vl };
  }
  if (out->n > 1)
    qsort(out->v, out->n, sizeof *out->v, cmp_xattr);
  return 0;
}

static bool
xattrs_equal(const xattrs_t *a, const xattrs_t *b)
{
  if (a->n != b->n)
    return false;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i].name, b->v[i].name) != 0 || a->v[i].size != b->v[i].size ||
        memcmp(a->v[i].value, b->v[i].value, a->v[i].size) != 0)
      return false;
  return true;
}

static bool
is_opaque(int dfd, const char *name)
{
  char path[4200], v[4];
  snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dfd, name);
  ssize_t n = lgetxattr(path, "trusted.overlay.opaque", v, sizeof v);
  return n == 1 && v[0] == 'y';
}

static const char *
inode_lookup(diff_t *D, const struct stat *st, const char *path)
{
  if (D->icap == 0 || (D->in + 1) * 2 > D->icap) {
    size_t cap = D->icap ? D->icap * 2 : 256;
    inode_t *t = xcalloc(cap, sizeof *t);
    for (size_t i = 0; i < D->icap; i++) {
      if (!D->inodes[i].path)
        continue;
      size_t j = (size_t) D->inodes[i].ino & (cap - 1);
      while (t[j].path)
        j = (j + 1) & (cap - 1);
      t[j] = D->inodes[i];
    }
    free(D->inodes);
    D->inodes = t;
    D->icap = cap;
  }
  size_t j = (size_t) st->st_ino & (D->icap - 1);
  for (; D->inodes[j].path; j = (j + 1) & (D->icap - 1))
    if (D->inodes[j].ino == st->st_ino && D->inodes[j].dev == st->st_dev)
      return D->inodes[j].path;
  D->inodes[j] = (inode_t){ st->st_dev, st->st_ino, xstrdup(path) };
  D->in++;
  return NULL;
}

/* --- entries ------------------------------------------------------------ */

static int
write_whiteout(diff_t *D, const char *dir, const char *name, crater_error_t *err)
{
  cleanup_free char *p = dir[0] ? xasprintf("%s/.wh.%s", dir, name) : xasprintf(".wh.%s", name);
  struct archive_entry *e = crater__archive.entry_new();
  crater__archive.entry_set_pathname(e, p);
  crater__archive.entry_set_filetype(e, AE_IFREG);
  crater__archive.entry_set_perm(e, 0);
  crater__archive.entry_set_size(e, 0);
  crater__archive.entry_set_mtime(e, 0, 0);
  int r = crater__archive.write_header(D->w, e);
  crater__archive.entry_free(e);
  if (r < ARCHIVE_WARN)
    return werr(D, err, p);
  D->entries++;
  return 0;
}

static int
write_entry(diff_t *D, int dfd, const char *name, const char *path, const struct stat *st,
            crater_error_t *err)
{
  struct archive_entry *e = crater__archive.entry_new();
  int ret = -1;
  cleanup_close int fd = -1;
  xattrs_t xa = { 0 };
  crater__archive.entry_set_pathname(e, path);
  crater__archive.entry_set_mode(e, st->st_mode);
  crater__archive.entry_set_uid(e, st->st_uid);
  crater__archive.entry_set_gid(e, st->st_gid);
  crater__archive.entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
  if (S_ISLNK(st->st_mode)) {
    char target[4097];
    ssize_t n = readlinkat(dfd, name, target, sizeof target - 1);
    if (n < 0) {
      crater_error_sys(err, errno, "readlink %s", path);
      goto done;
    }
    target[n] = '\0';
    crater__archive.entry_set_symlink(e, target);
  } else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
    crater__archive.entry_set_rdevmajor(e, major(st->st_rdev));
    crater__archive.entry_set_rdevminor(e, minor(st->st_rdev));
  }
  const char *first = NULL;
  if (S_ISREG(st->st_mode) && st->st_nlink > 1)
    first = inode_lookup(D, st, path);
  if (first) {
    crater__archive.entry_set_hardlink(e, first);
    crater__archive.entry_set_size(e, 0);
  } else {
    if (read_xattrs(dfd, name, &xa, err) < 0)
      goto done;
    for (size_t i = 0; i < xa.n; i++)
      crater__archive.entry_xattr_add_entry(e, xa.v[i].name, xa.v[i].value, xa.v[i].size);
    if (S_ISREG(st->st_mode)) {
      crater__archive.entry_set_size(e, st->st_size);
      fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        crater_error_sys(err, errno, "open %s", path);
        goto done;
      }
    }
  }
  if (crater__archive.write_header(D->w, e) < ARCHIVE_WARN) {
    werr(D, err, path);
    goto done;
  }
  D->entries++;
  if (fd >= 0) {
    int64_t left = st->st_size;
    while (left > 0) {
      ssize_t n = read(fd, D->iobuf, left < CBUF ? (size_t) left : CBUF);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        crater_error_sys(err, errno, "read %s", path);
        goto done;
      }
      if (n == 0) {
        crater_error_make(err, CRATER_ERR_ABORTED, 0, "%s shrank while being read", path);
        goto done;
      }
      if (crater__archive.write_data(D->w, D->iobuf, (size_t) n) < 0) {
        werr(D, err, path);
        goto done;
      }
      left -= n;
    }
  }
  ret = 0;
done:
  xattrs_free(&xa);
  crater__archive.entry_free(e);
  return ret;
}

static int
same_content(int lfd, int ufd, const char *name, off_t size, unsigned char *buf, bool *same,
             crater_error_t *err)
{
  cleanup_close int a = openat(lfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  cleanup_close int b = openat(ufd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (a < 0 || b < 0)
    return crater_error_sys(err, errno, "open %s", name);
  const size_t half = CBUF / 2;
  *same = true;
  while (size > 0) {
    ssize_t na = crater__read_all(a, buf, half, err);
    if (na < 0)
      return -1;
    ssize_t nb = crater__read_all(b, buf + half, half, err);
    if (nb < 0)
      return -1;
    if (na != nb || memcmp(buf, buf + half, (size_t) na) != 0) {
      *same = false;
      return 0;
    }
    if (na == 0)
      break;
    size -= na;
  }
  return 0;
}

static int
changed(diff_t *D, int lfd, int ufd, const char *name, const struct stat *l, const struct stat *u,
        bool *out, crater_error_t *err)
{
  *out = true;
  if ((l->st_mode & S_IFMT) != (u->st_mode & S_IFMT) || l->st_mode != u->st_mode ||
      l->st_uid != u->st_uid || l->st_gid != u->st_gid)
    return 0;
  if (!S_ISDIR(u->st_mode) && (l->st_size != u->st_size || l->st_mtim.tv_sec != u->st_mtim.tv_sec ||
                               l->st_mtim.tv_nsec != u->st_mtim.tv_nsec))
    return 0;
  if (S_ISDIR(u->st_mode) &&
      (l->st_mtim.tv_sec != u->st_mtim.tv_sec || l->st_mtim.tv_nsec != u->st_mtim.tv_nsec))
    return 0;
  if ((S_ISCHR(u->st_mode) || S_ISBLK(u->st_mode)) && l->st_rdev != u->st_rdev)
    return 0;
  if (S_ISLNK(u->st_mode)) {
    char a[4097], b[4097];
    ssize_t na = readlinkat(lfd, name, a, sizeof a - 1);
    ssize_t nb = readlinkat(ufd, name, b, sizeof b - 1);
    if (na < 0 || nb < 0)
      return crater_error_sys(err, errno, "readlink %s", name);
    if (na != nb || memcmp(a, b, (size_t) na) != 0)
      return 0;
  }
  xattrs_t xl, xu;
  if (read_xattrs(lfd, name, &xl, err) < 0)
    return -1;
  if (read_xattrs(ufd, name, &xu, err) < 0) {
    xattrs_free(&xl);
    return -1;
  }
  bool same_x = xattrs_equal(&xl, &xu);
  xattrs_free(&xl);
  xattrs_free(&xu);
  if (!same_x)
    return 0;
  if (S_ISREG(u->st_mode) && u->st_mtim.tv_nsec == 0) {
    bool same = true;
    if (same_content(lfd, ufd, name, u->st_size, D->iobuf, &same, err) < 0)
      return -1;
    if (!same)
      return 0;
  }
  *out = false;
  return 0;
}

static int walk(diff_t *D, int lfd, int ufd, const char *prefix, crater_error_t *err);

/* Emits upper entry dfd/name and, for a directory, its subtree compared
 * with lower directory lfd_child (-1: everything is new). */
static int
emit(diff_t *D, int ufd, const char *name, const char *path, const struct stat *st, bool write_it,
     int lfd_child, crater_error_t *err)
{
  if (write_it && write_entry(D, ufd, name, path, st, err) < 0)
    return -1;
  if (!S_ISDIR(st->st_mode))
    return 0;
  if (D->o->upper_is_overlay && is_opaque(ufd, name) &&
      write_whiteout(D, path, ".wh..opq", err) < 0)
    return -1;
  cleanup_close int sub = openat(ufd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0)
    return crater_error_sys(err, errno, "open %s", path);
  return walk(D, lfd_child, sub, path, err);
}

static int
walk(diff_t *D, int lfd, int ufd, const char *prefix, crater_error_t *err)
{
  names_t ln = { 0 }, un = { 0 };
  int ret = -1;
  if (list_dir(ufd, &un, err) < 0)
    return crater_error_wrap(err, "list %s", prefix[0] ? prefix : "/");
  if (list_dir(D->o->upper_is_overlay ? -1 : lfd, &ln, err) < 0) {
    crater_error_wrap(err, "list lower %s", prefix[0] ? prefix : "/");
    goto done;
  }
  size_t i = 0, j = 0;
  while (i < ln.n || j < un.n) {
    int c = i >= ln.n ? 1 : j >= un.n ? -1 : strcmp(ln.names[i], un.names[j]);
    const char *name = c < 0 ? ln.names[i] : un.names[j];
    cleanup_free char *path = prefix[0] ? xasprintf("%s/%s", prefix, name) : xstrdup(name);
    if (c < 0) { /* only in lower: deleted */
      if (write_whiteout(D, prefix, name, err) < 0)
        goto done;
      i++;
      continue;
    }
    struct stat us;
    if (fstatat(ufd, name, &us, AT_SYMLINK_NOFOLLOW) < 0) {
      crater_error_sys(err, errno, "stat %s", path);
      goto done;
    }
    if (D->o->upper_is_overlay && S_ISCHR(us.st_mode) && us.st_rdev == makedev(0, 0)) {
      if (write_whiteout(D, prefix, name, err) < 0)
        goto done;
      j++;
      continue;
    }
    if (c > 0) { /* only in upper: new */
      if (emit(D, ufd, name, path, &us, true, -1, err) < 0)
        goto done;
      j++;
      continue;
    }
    struct stat ls;
    if (fstatat(lfd, name, &ls, AT_SYMLINK_NOFOLLOW) < 0) {
      crater_error_sys(err, errno, "stat lower %s", path);
      goto done;
    }
    bool ch;
    if (changed(D, lfd, ufd, name, &ls, &us, &ch, err) < 0)
      goto done;
    cleanup_close int lsub = -1;
    if (S_ISDIR(us.st_mode) && S_ISDIR(ls.st_mode)) {
      lsub = openat(lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (lsub < 0) {
        crater_error_sys(err, errno, "open lower %s", path);
        goto done;
      }
    }
    if (emit(D, ufd, name, path, &us, ch, lsub, err) < 0)
      goto done;
    i++;
    j++;
  }
  ret = 0;
done:
  names_free(&ln);
  names_free(&un);
  return ret;
}

int
crater_archive_diff(int lower_dirfd, int upper_dirfd, int out_fd, const crater_diff_opts_t *opts,
                    crater_diff_result_t *out, crater_error_t *err)
{
  static const crater_diff_opts_t defaults = { 0 };
  if (crater__archive_load(err) < 0)
    return crater_error_wrap(err, "diff");
  diff_t D = { .o = opts ? opts : &defaults, .out_fd = out_fd };
  int ret = -1;
  if ((D.md_u = crater_digester_new(CRATER_DIGEST_SHA256, err)) == NULL ||
      (D.md_c = crater_digester_new(CRATER_DIGEST_SHA256, err)) == NULL)
    goto done;
  D.cbuf = xmalloc(CBUF);
  D.iobuf = xmalloc(CBUF);
  if (D.o->compression == CRATER_COMPRESSION_GZIP) {
    if (crater__isal_load(err) < 0)
      goto done;
    D.gz = xmalloc0(sizeof *D.gz);
    crater__isal.deflate_init(D.gz);
    D.gz->gzip_flag = IGZIP_GZIP;
    D.gz->level = 1;
    D.gz->level_buf_size = ISAL_DEF_LVL1_DEFAULT;
    D.gz->level_buf = xmalloc(ISAL_DEF_LVL1_DEFAULT);
  } else if (D.o->compression == CRATER_COMPRESSION_ZSTD) {
    if (crater__zstd_load(err) < 0)
      goto done;
    D.zs = crater__zstd.createCCtx();
    if (D.zs == NULL) {
      crater_error_make(err, CRATER_ERR_INTERNAL, 0, "zstd: out of memory");
      goto done;
    }
  }
  D.w = crater__archive.write_new();
  crater__archive.write_set_format_pax(D.w); /* full pax: keeps sub-second mtimes */
  crater__archive.write_add_filter_none(D.w);
  if (crater__archive.write_open(D.w, &D, NULL, write_cb, NULL) != ARCHIVE_OK) {
    werr(&D, err, "open tar writer");
    goto done;
  }
  if (walk(&D, lower_dirfd, upper_dirfd, "", err) < 0)
    goto done;
  if (crater__archive.write_close(D.w) != ARCHIVE_OK) {
    werr(&D, err, "close tar");
    goto done;
  }
  if (compress_chunk(&D, NULL, 0, true, err) < 0)
    goto done;
  if (out) {
    crater_digester_digest(D.md_u, out->diff_id, NULL);
    crater_digester_digest(D.md_c, out->digest, NULL);
    out->size = D.csize;
    out->uncompressed_size = D.usize;
    out->entries = D.entries;
  }
  ret = 0;
done:
  if (D.w)
    crater__archive.write_free(D.w);
  crater_digester_free(D.md_u);
  crater_digester_free(D.md_c);
  if (D.gz)
    free(D.gz->level_buf);
  free(D.gz);
  if (D.zs)
    crater__zstd.freeCCtx(D.zs);
  free(D.cbuf);
  free(D.iobuf);
  for (size_t i = 0; i < D.icap; i++)
    free(D.inodes[i].path);
  free(D.inodes);
  crater_error_release(&D.error);
  if (ret < 0)
    crater_error_wrap(err, "diff");
  return ret;
}
