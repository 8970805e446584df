/*
 * Transfer tarballs over libarchive: a member-by-member reader that hands
 * data to the caller (never to the filesystem) and refuses members an
 * image archive has no business carrying, and a deterministic pax writer.
 * See transfer.h.
 */
#include "transfer/transfer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive_sym.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

#define BUF_SIZE (256u << 10)

struct crater_tar_reader_s {
  struct archive *a;
  char *path;
  char *name; /* current member, normalised */
  char *link; /* current symlink's resolved target */
  unsigned char *buf;
};

struct crater_tar_writer_s {
  struct archive *a;
  unsigned char *buf;
};

int
crater_tar_check_name(const char *name, crater_error_t *err)
{
  if (name[0] == '/')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "refusing archive member %s: absolute name", name);
  const char *p = name;
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t) (slash - p) : strlen(p);
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                               "refusing archive member %s: name contains '..'", name);
    p += len;
    if (*p == '/')
      p++;
  }
  return 0;
}

/* "./a/b/" -> "a/b"; "./" -> "". */
static char *
normalise(const char *name)
{
  while (name[0] == '.' && name[1] == '/')
    name += 2;
  while (name[0] == '/' && name[1] == '/') /* keep one leading '/' for the check */
    name++;
  char *s = xstrdup(name);
  size_t n = strlen(s);
  while (n > 1 && s[n - 1] == '/')
    s[--n] = '\0';
  if (strcmp(s, ".") == 0)
    s[0] = '\0';
  return s;
}

/* Resolves symlink target against the directory of member name, purely
 * lexically; NULL when it is absolute, empty or climbs above the root. */
static char *
resolve_link(const char *name, const char *target)
{
  if (target[0] == '/' || target[0] == '\0')
    return NULL;
  const char *slash = strrchr(name, '/');
  size_t dlen = slash ? (size_t) (slash - name) : 0;
  size_t cap = dlen + strlen(target) + 2;
  char *out = xmalloc(cap);
  memcpy(out, name, dlen);
  size_t len = dlen;
  out[len] = '\0';
  const char *p = target;
  while (*p) {
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t) (end - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      if (len == 0) {
        free(out);
        return NULL;
      }
      char *up = strrchr(out, '/');
      len = up ? (size_t) (up - out) : 0;
      out[len] = '\0';
    } else if (n > 0 && !(n == 1 && p[0] == '.')) {
      if (len > 0)
        out[len++] = '/';
      memcpy(out + len, p, n);
      len += n;
      out[len] = '\0';
    }
    p += n;
    if (*p == '/')
      p++;
  }
  if (len == 0) {
    free(out);
    return NULL;
  }
  return out;
}

static int
archive_fail(crater_error_t *err, struct archive *a, crater_errkind_t kind, const char *what)
{
  const char *m = crater__archive.error_string(a);
  return crater_error_make(err, kind, crater__archive.errnum(a) > 0 ? crater__archive.errnum(a) : 0,
                           "%s: %s", what, m ? m : "libarchive error");
}

crater_tar_reader_t *
crater_tar_reader_open(const char *path, crater_error_t *err)
{
  if (crater__archive_load(err) < 0)
    return NULL;
  crater_tar_reader_t *r = xcalloc(1, sizeof *r);
  r->path = xstrdup(path);
  r->buf = xmalloc(BUF_SIZE);
  r->a = crater__archive.read_new();
  if (r->a == NULL) {
    crater_tar_reader_free(r);
    crater_error_make(err, CRATER_ERR_INTERNAL, ENOMEM, "%s: archive_read_new failed", path);
    return NULL;
  }
  crater__archive.read_support_format_tar(r->a);
  crater__archive.read_support_filter_gzip(r->a);
  crater__archive.read_support_filter_none(r->a);
  if (crater__archive.read_open_filename(r->a, path, BUF_SIZE) != ARCHIVE_OK) {
    int e = crater__archive.errnum(r->a);
    if (e == ENOENT || e == EACCES || e == EISDIR)
      crater_error_sys(err, e, "open %s", path);
    else
      archive_fail(err, r->a, CRATER_ERR_INVALID_ARGUMENT, path);
    crater_tar_reader_free(r);
    return NULL;
  }
  return r;
}

void
crater_tar_reader_free(crater_tar_reader_t *r)
{
  if (r == NULL)
    return;
  if (r->a)
    crater__archive.read_free(r->a);
  free(r->path);
  free(r->name);
  free(r->link);
  free(r->buf);
  free(r);
}

int
crater_tar_reader_next(crater_tar_reader_t *r, crater_tar_entry_t *out, crater_error_t *err)
{
  for (;;) {
    struct archive_entry *e = NULL;
    int rc = crater__archive.read_next_header(r->a, &e);
    if (rc == ARCHIVE_EOF)
      return 0;
    if (rc < ARCHIVE_WARN)
      return archive_fail(err, r->a, CRATER_ERR_DATA_LOSS, r->path);
    const char *raw = crater__archive.entry_pathname(e);
    if (raw == NULL || raw[0] == '\0')
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                               "%s: refusing archive member with an unreadable name", r->path);
    free(r->name);
    r->name = normalise(raw);
    if (r->name[0] == '\0')
      continue; /* "." */
    if (crater_tar_check_name(r->name, err) < 0)
      return -1;
    if (crater__archive.entry_hardlink(e) != NULL)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                               "refusing archive member %s: hardlink", r->name);
    mode_t t = crater__archive.entry_filetype(e);
    free(r->link);
    r->link = NULL;
    if (t == AE_IFLNK) {
      const char *target = crater__archive.entry_symlink(e);
      r->link = target ? resolve_link(r->name, target) : NULL;
      if (r->link == NULL)
        return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                                 "refusing archive member %s: symlink to %s leaves the archive",
                                 r->name, target ? target : "(none)");
      out->name = r->name;
      out->is_dir = false;
      out->size = 0;
      out->link = r->link;
      return 1;
    }
    out->link = NULL;
    if (t != AE_IFREG && t != AE_IFDIR)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                               "refusing archive member %s: not a regular file or directory",
                               r->name);
    out->name = r->name;
    out->is_dir = t == AE_IFDIR;
    out->size = out->is_dir ? 0 : crater__archive.entry_size(e);
    if (out->size < 0)
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "archive member %s: bad size",
                               r->name);
    return 1;
  }
}

ssize_t
crater_tar_reader_read(crater_tar_reader_t *r, void *buf, size_t n, crater_error_t *err)
{
  la_ssize_t got = crater__archive.read_data(r->a, buf, n);
  if (got < 0)
    return archive_fail(err, r->a, CRATER_ERR_DATA_LOSS, r->name ? r->name : r->path);
  return got;
}

int64_t
crater_tar_reader_copy(crater_tar_reader_t *r, crater_tar_write_fn write, void *ud,
                       crater_error_t *err)
{
  int64_t total = 0;
  for (;;) {
    ssize_t got = crater_tar_reader_read(r, r->buf, BUF_SIZE, err);
    if (got < 0)
      return -1;
    if (got == 0)
      return total;
    if (write(ud, r->buf, (size_t) got, err) < 0)
      return crater_error_wrap(err, "archive member %s", r->name);
    total += got;
  }
}

/* ---- writer ---------------------------------------------------------------- */

crater_tar_writer_t *
crater_tar_writer_new(int fd, crater_error_t *err)
{
  if (crater__archive_load(err) < 0)
    return NULL;
  crater_tar_writer_t *w = xcalloc(1, sizeof *w);
  w->a = crater__archive.write_new();
  if (w->a == NULL) {
    free(w);
    crater_error_make(err, CRATER_ERR_INTERNAL, ENOMEM, "archive_write_new failed");
    return NULL;
  }
  if (crater__archive.write_set_format_pax(w->a) != ARCHIVE_OK ||
      crater__archive.write_add_filter_none(w->a) != ARCHIVE_OK ||
      crater__archive.write_open_fd(w->a, fd) != ARCHIVE_OK) {
    archive_fail(err, w->a, CRATER_ERR_INTERNAL, "tar writer");
    crater_tar_writer_free(w);
    return NULL;
  }
  return w;
}

void
crater_tar_writer_free(crater_tar_writer_t *w)
{
  if (w == NULL)
    return;
  if (w->a)
    crater__archive.write_free(w->a);
  free(w->buf);
  free(w);
}

static int
write_header(crater_tar_writer_t *w, const char *name, mode_t type, int64_t size,
             crater_error_t *err)
{
  if (crater_tar_check_name(name, err) < 0)
    return -1;
  struct archive_entry *e = crater__archive.entry_new();
  if (e == NULL)
    return crater_error_make(err, CRATER_ERR_INTERNAL, ENOMEM, "archive_entry_new failed");
  crater__archive.entry_set_pathname(e, name);
  crater__archive.entry_set_filetype(e, type);
  crater__archive.entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
  crater__archive.entry_set_size(e, size);
  crater__archive.entry_set_mtime(e, 0, 0);
  crater__archive.entry_set_uid(e, 0);
  crater__archive.entry_set_gid(e, 0);
  int rc = crater__archive.write_header(w->a, e);
  crater__archive.entry_free(e);
  if (rc != ARCHIVE_OK)
    return archive_fail(err, w->a, CRATER_ERR_INTERNAL, name);
  return 0;
}

int
crater_tar_writer_add_dir(crater_tar_writer_t *w, const char *name, crater_error_t *err)
{
  return write_header(w, name, AE_IFDIR, 0, err);
}

int
crater_tar_writer_add_data(crater_tar_writer_t *w, const char *name, const void *data, size_t len,
                           crater_error_t *err)
{
  if (write_header(w, name, AE_IFREG, (int64_t) len, err) < 0)
    return -1;
  const unsigned char *p = data;
  while (len > 0) {
    la_ssize_t n = crater__archive.write_data(w->a, p, len);
    if (n <= 0)
      return archive_fail(err, w->a, CRATER_ERR_INTERNAL, name);
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

int
crater_tar_writer_add_fd(crater_tar_writer_t *w, const char *name, int fd, int64_t size,
                         crater_error_t *err)
{
  if (write_header(w, name, AE_IFREG, size, err) < 0)
    return -1;
  if (w->buf == NULL)
    w->buf = xmalloc(BUF_SIZE);
  int64_t off = 0;
  while (off < size) {
    size_t want = (size_t) (size - off < BUF_SIZE ? size - off : BUF_SIZE);
    ssize_t got = pread(fd, w->buf, want, off);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return crater_error_sys(err, errno, "read %s", name);
    }
    if (got == 0)
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "%s: file ends at %lld of %lld bytes",
                               name, (long long) off, (long long) size);
    size_t done = 0;
    while (done < (size_t) got) {
      la_ssize_t n = crater__archive.write_data(w->a, w->buf + done, (size_t) got - done);
      if (n <= 0)
        return archive_fail(err, w->a, CRATER_ERR_INTERNAL, name);
      done += (size_t) n;
    }
    off += got;
  }
  return 0;
}

int
crater_tar_writer_finish(crater_tar_writer_t *w, crater_error_t *err)
{
  if (crater__archive.write_close(w->a) != ARCHIVE_OK)
    return archive_fail(err, w->a, CRATER_ERR_INTERNAL, "finish archive");
  return 0;
}
