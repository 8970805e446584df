/*
 * Blob side of the content store: open, stat, read, delete, walk.  Writes
 * go through ingest.c.  See content.h for the layout.
 */
#include "content/content_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

crater_content_t *
crater_content_open(const char *dir, crater_error_t *err)
{
  crater_content_t *c = xmalloc0(sizeof *c);
  c->dir = xstrdup(dir);
  c->blobs_dir = crater__path_join(dir, "blobs");
  c->ingest_dir = crater__path_join(dir, "ingest");
  if (crater__mkdir_p(c->blobs_dir, 0755, err) < 0 ||
      crater__mkdir_p(c->ingest_dir, 0700, err) < 0) {
    crater_error_wrap(err, "open content store %s", dir);
    crater_content_close(c);
    return NULL;
  }
  return c;
}

void
crater_content_close(crater_content_t *c)
{
  if (c == NULL)
    return;
  free(c->dir);
  free(c->blobs_dir);
  free(c->ingest_dir);
  free(c);
}

const char *
crater_content_dir(const crater_content_t *c)
{
  return c->dir;
}

int
crater_content_stat(crater_content_t *c, const char *digest, crater_blob_info_t *out,
                    crater_error_t *err)
{
  cleanup_free char *p = crater_digest_blob_path(c->dir, digest, err);
  if (p == NULL)
    return -1;
  struct stat st;
  if (stat(p, &st) < 0) {
    if (errno == ENOENT)
      return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "content %s: not found", digest);
    return crater_error_sys(err, errno, "stat content %s", digest);
  }
  if (out) {
    snprintf(out->digest, sizeof out->digest, "%s", digest);
    out->size = st.st_size;
    out->created_at = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  }
  return 0;
}

char *
crater_content_path(crater_content_t *c, const char *digest, crater_error_t *err)
{
  if (crater_content_stat(c, digest, NULL, err) < 0)
    return NULL;
  return crater_digest_blob_path(c->dir, digest, err);
}

int
crater_content_open_blob(crater_content_t *c, const char *digest, crater_error_t *err)
{
  cleanup_free char *p = crater_digest_blob_path(c->dir, digest, err);
  if (p == NULL)
    return -1;
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT)
      return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "content %s: not found", digest);
    return crater_error_sys(err, errno, "open content %s", digest);
  }
  return fd;
}

ssize_t
crater_content_read(crater_content_t *c, const char *digest, int64_t offset, void *buf, size_t n,
                    crater_error_t *err)
{
  if (offset < 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "read %s: negative offset %lld", digest, (long long) offset);
  cleanup_close int fd = crater_content_open_blob(c, digest, err);
  if (fd < 0)
    return -1;
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (char *) buf + got, n - got, offset + (off_t) got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return crater_error_sys(err, errno, "read content %s", digest);
    if (r == 0)
      break;
    got += (size_t) r;
  }
  return (ssize_t) got;
}

int
crater_content_delete(crater_content_t *c, const char *digest, crater_error_t *err)
{
  cleanup_free char *p = crater_digest_blob_path(c->dir, digest, err);
  if (p == NULL)
    return -1;
  if (unlink(p) < 0) {
    if (errno == ENOENT)
      return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "delete content %s: not found",
                               digest);
    return crater_error_sys(err, errno, "delete content %s", digest);
  }
  return 0;
}

int
crater_content_walk(crater_content_t *c, crater_content_walk_fn fn, void *ud, crater_error_t *err)
{
  static const crater_digest_alg_t walk_algs[] = { CRATER_DIGEST_SHA256, CRATER_DIGEST_SHA512 };
  for (size_t a = 0; a < 2; a++) {
    const char *alg = crater_digest_alg_name(walk_algs[a]);
    cleanup_free char *dir = crater__path_join(c->blobs_dir, alg);
    cleanup_dir DIR *d = opendir(dir);
    if (d == NULL) {
      if (errno == ENOENT)
        continue;
      return crater_error_sys(err, errno, "walk %s", dir);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      crater_blob_info_t info;
      if (de->d_name[0] == '.')
        continue;
      if ((size_t) snprintf(info.digest, sizeof info.digest, "%s:%s", alg, de->d_name) >=
              sizeof info.digest ||
          crater_digest_validate(info.digest, NULL) < 0)
        continue;
      struct stat st;
      if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        continue;
      info.size = st.st_size;
      info.created_at = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
      int r = fn(&info, ud, err);
      if (r < 0)
        return r;
    }
  }
  return 0;
}
