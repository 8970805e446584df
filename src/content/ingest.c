/*
 * Ingests: resumable, lock-protected writers that become blobs by atomic
 * rename.  See content.h for the layout and the lifecycle.
 *
 * The lock is an flock() on ingest/<h>/lock, so it dies with the process
 * that holds it and a SIGKILLed writer can be resumed at once.  Abort
 * takes the same lock before removing the directory; a writer that wins
 * the lock on a directory that was just removed notices (the lock file is
 * no longer linked) and starts over.
 */
#include "content/content_internal.h"
#include "content/crypto_sym.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define MAX_REF 4096

char *
crater__content_ingest_path(crater_content_t *c, const char *ref, crater_error_t *err)
{
  char dgst[CRATER_DIGEST_MAX];
  if (crater_digest_buf(CRATER_DIGEST_SHA256, ref, strlen(ref), dgst, err) < 0)
    return NULL;
  return crater__path_join(c->ingest_dir, dgst + strlen("sha256:"));
}

/* Reads a small file under dir; NULL when absent (err untouched) or on
 * error (err set). */
static char *
read_small(const char *dir, const char *name, bool *missing, crater_error_t *err)
{
  cleanup_free char *p = crater__path_join(dir, name);
  crater_error_t e = NULL;
  char *s = crater__read_file(p, MAX_REF, NULL, &e);
  *missing = false;
  if (s == NULL) {
    if (e->kind == CRATER_ERR_NOT_FOUND) {
      *missing = true;
      crater_error_release(&e);
    } else {
      crater_error_move(err, &e);
    }
  }
  return s;
}

/* Writes a small file by tmp + rename (no fsync: ingests are scratch). */
static int
write_small(const char *dir, const char *name, const char *value, crater_error_t *err)
{
  cleanup_free char *p = crater__path_join(dir, name);
  cleanup_free char *tmp = xasprintf("%s.tmp", p);
  cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return crater_error_sys(err, errno, "create %s", tmp);
  if (crater__write_all(fd, value, strlen(value), err) < 0)
    return crater_error_wrap(err, "%s", tmp);
  if (rename(tmp, p) < 0)
    return crater_error_sys(err, errno, "rename %s", p);
  return 0;
}

static int64_t
parse_i64(const char *s)
{
  return s ? strtoll(s, NULL, 10) : 0;
}

/* Hashes fd from offset 0 to EOF with pread; returns the length. */
static int64_t
hash_fd(crater_digester_t *dg, int fd, crater_error_t *err)
{
  size_t cap = 1 << 20;
  cleanup_free char *buf = xmalloc(cap);
  int64_t off = 0;
  for (;;) {
    ssize_t r = pread(fd, buf, cap, off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return crater_error_sys(err, errno, "read");
    if (r == 0)
      return off;
    if (crater_digester_update(dg, buf, (size_t) r, err) < 0)
      return -1;
    off += r;
  }
}

/* Opens and locks ingest/<h>/lock, creating the directory; retries when an
 * abort removed the directory between our open and our lock. */
static int
lock_ingest(const char *path, const char *ref, bool create, crater_error_t *err)
{
  cleanup_free char *lockp = crater__path_join(path, "lock");
  for (int attempt = 0; attempt < 8; attempt++) {
    if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
      return crater_error_sys(err, errno, "ref %s: mkdir %s", ref, path);
    int fd = open(lockp, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0) {
      if (errno == ENOENT && create)
        continue;
      if (errno == ENOENT)
        return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "ref %s: no such ingest", ref);
      return crater_error_sys(err, errno, "ref %s: open %s", ref, lockp);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      int e = errno;
      close(fd);
      if (e == EWOULDBLOCK)
        return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, EBUSY, "ref %s locked", ref);
      return crater_error_sys(err, e, "ref %s: lock", ref);
    }
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(lockp, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
      return fd;
    close(fd); /* removed under us by an abort: start over */
    if (!create)
      return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "ref %s: no such ingest", ref);
  }
  return crater_error_make(err, CRATER_ERR_ABORTED, EAGAIN, "ref %s: ingest keeps disappearing",
                           ref);
}

crater_content_writer_t *
crater_content_writer_open(crater_content_t *c, const char *ref, const char *expected,
                           int64_t total, crater_error_t *err)
{
  if (ref == NULL || ref[0] == '\0' || strlen(ref) > MAX_REF) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "ingest ref must be 1 to %d bytes",
                      MAX_REF);
    return NULL;
  }
  if (expected && crater_digest_validate(expected, err) < 0) {
    crater_error_wrap(err, "writer %s", ref);
    return NULL;
  }
  if (total < 0) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "writer %s: negative size %lld",
                      ref, (long long) total);
    return NULL;
  }
  /* a writer hashes what it is given: without libcrypto, fail before
   * anything of the ingest is made */
  if (crater__crypto_load(err) < 0) {
    crater_error_wrap(err, "writer %s", ref);
    return NULL;
  }
  cleanup_free char *stored_ref = NULL;
  cleanup_free char *datap = NULL;
  crater_content_writer_t *w = xmalloc0(sizeof *w);
  w->c = c;
  w->ref = xstrdup(ref);
  w->data_fd = -1;
  w->lock_fd = -1;
  w->path = crater__content_ingest_path(c, ref, err);
  if (w->path == NULL)
    goto fail_wrap;
  w->lock_fd = lock_ingest(w->path, ref, true, err);
  if (w->lock_fd < 0)
    goto fail;

  bool missing;
  stored_ref = read_small(w->path, "ref", &missing, err);
  if (stored_ref == NULL && !missing)
    goto fail_wrap;
  if (stored_ref && strcmp(stored_ref, ref) != 0) {
    crater_error_make(err, CRATER_ERR_INTERNAL, 0, "ingest %s holds ref '%.200s', not '%.200s'",
                      w->path, stored_ref, ref);
    goto fail;
  }
  if (stored_ref == NULL) {
    cleanup_free char *now = xasprintf("%" PRId64, crater__now_ns());
    if (write_small(w->path, "startedat", now, err) < 0 ||
        write_small(w->path, "ref", ref, err) < 0)
      goto fail_wrap;
  }
  if (total > 0) {
    cleanup_free char *t = xasprintf("%" PRId64, total);
    if (write_small(w->path, "total", t, err) < 0)
      goto fail_wrap;
    w->total = total;
  } else {
    cleanup_free char *t = read_small(w->path, "total", &missing, err);
    if (t == NULL && !missing)
      goto fail_wrap;
    w->total = parse_i64(t);
  }
  if (expected) {
    if (write_small(w->path, "expected", expected, err) < 0)
      goto fail_wrap;
    w->expected = xstrdup(expected);
  } else {
    w->expected = read_small(w->path, "expected", &missing, err);
    if (w->expected == NULL && !missing)
      goto fail_wrap;
    if (w->expected && crater_digest_validate(w->expected, NULL) < 0) {
      free(w->expected);
      w->expected = NULL;
    }
  }
  datap = crater__path_join(w->path, "data");
  w->data_fd = open(datap, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (w->data_fd < 0) {
    crater_error_sys(err, errno, "open %s", datap);
    goto fail_wrap;
  }
  int alg = w->expected ? crater_digest_validate(w->expected, NULL) : CRATER_DIGEST_SHA256;
  w->dg = crater_digester_new((crater_digest_alg_t) alg, err);
  if (w->dg == NULL)
    goto fail_wrap;
  w->offset = hash_fd(w->dg, w->data_fd, err); /* resume: re-hash what is there */
  if (w->offset < 0)
    goto fail_wrap;
  return w;

fail_wrap:
  crater_error_wrap(err, "writer %s", ref);
fail:
  w->done = true;
  crater_content_writer_close(w);
  return NULL;
}

static int
check_usable(crater_content_writer_t *w, crater_error_t *err)
{
  if (w->done)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, EINVAL,
                             "writer %s: already committed or aborted", w->ref);
  return 0;
}

int
crater_content_writer_write(crater_content_writer_t *w, const void *buf, size_t n,
                            crater_error_t *err)
{
  if (check_usable(w, err) < 0)
    return -1;
  const char *p = buf;
  size_t left = n;
  while (left > 0) {
    ssize_t r = pwrite(w->data_fd, p, left, w->offset + (off_t) (n - left));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      /* keep offset and digest in step with what is durable in data */
      int e = errno;
      if (n > left) {
        crater_digester_update(w->dg, buf, n - left, NULL);
        w->offset += (int64_t) (n - left);
      }
      return crater_error_sys(err, e, "write ref %s", w->ref);
    }
    p += r;
    left -= (size_t) r;
  }
  if (crater_digester_update(w->dg, buf, n, err) < 0)
    return -1;
  w->offset += (int64_t) n;
  w->synced = false;
  return 0;
}

int64_t
crater_content_writer_offset(const crater_content_writer_t *w)
{
  return w->offset;
}

const char *
crater_content_writer_ref(const crater_content_writer_t *w)
{
  return w->ref;
}

int
crater_content_writer_digest(crater_content_writer_t *w, char *out, crater_error_t *err)
{
  if (check_usable(w, err) < 0)
    return -1;
  return crater_digester_digest(w->dg, out, err);
}

int
crater_content_writer_verify(crater_content_writer_t *w, int64_t size, const char *expected,
                             char *out, crater_error_t *err)
{
  if (check_usable(w, err) < 0)
    return -1;
  if (expected == NULL)
    expected = w->expected;
  if (size < 0 && w->total > 0)
    size = w->total;
  if (size >= 0 && size != w->offset)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, EINVAL,
                             "commit %s: size mismatch: expected %lld, got %lld", w->ref,
                             (long long) size, (long long) w->offset);
  int alg = CRATER_DIGEST_SHA256;
  if (expected && (alg = crater_digest_validate(expected, err)) < 0)
    return crater_error_wrap(err, "commit %s", w->ref);
  if ((crater_digest_alg_t) alg == crater_digester_alg(w->dg)) {
    if (crater_digester_digest(w->dg, out, err) < 0)
      return crater_error_wrap(err, "commit %s", w->ref);
  } else {
    crater_digester_t *dg = crater_digester_new((crater_digest_alg_t) alg, err);
    int64_t r = dg ? hash_fd(dg, w->data_fd, err) : -1;
    if (r >= 0)
      r = crater_digester_digest(dg, out, err);
    crater_digester_free(dg);
    if (r < 0)
      return crater_error_wrap(err, "commit %s", w->ref);
  }
  if (expected && strcmp(expected, out) != 0)
    return crater_error_make(err, CRATER_ERR_DATA_LOSS, EBADMSG,
                             "commit %s: digest mismatch: expected %s, got %s", w->ref, expected,
                             out);
  if (!w->synced) {
    if (fsync(w->data_fd) < 0)
      return crater_error_sys(err, errno, "commit %s: fsync", w->ref);
    w->synced = true;
  }
  return 0;
}

static int
remove_ingest(crater_content_writer_t *w, crater_error_t *err)
{
  return crater__remove_all(w->path, err);
}

int
crater_content_writer_commit(crater_content_writer_t *w, int64_t size, const char *expected,
                             char *out, crater_error_t *err)
{
  char dgst[CRATER_DIGEST_MAX];
  if (crater_content_writer_verify(w, size, expected, dgst, err) < 0)
    return -1;
  int alg = crater_digest_validate(dgst, err);
  cleanup_free char *algdir =
      crater__path_join(w->c->blobs_dir, crater_digest_alg_name((crater_digest_alg_t) alg));
  cleanup_free char *blob = crater_digest_blob_path(w->c->dir, dgst, err);
  cleanup_free char *datap = crater__path_join(w->path, "data");
  if (mkdir(algdir, 0755) < 0 && errno != EEXIST)
    return crater_error_sys(err, errno, "commit %s: mkdir %s", w->ref, algdir);
  if (fchmod(w->data_fd, 0444) < 0)
    return crater_error_sys(err, errno, "commit %s: chmod", w->ref);
  int status = CRATER_CONTENT_COMMITTED;
  if (renameat2(AT_FDCWD, datap, AT_FDCWD, blob, RENAME_NOREPLACE) < 0) {
    int e = errno;
    if (e == EEXIST) {
      status = CRATER_CONTENT_EXISTS;
    } else if (e == EINVAL || e == ENOSYS) {
      /* filesystem without RENAME_NOREPLACE: identical content, so a
       * plain rename over an existing blob is harmless */
      struct stat st;
      if (stat(blob, &st) == 0)
        status = CRATER_CONTENT_EXISTS;
      else if (rename(datap, blob) < 0)
        return crater_error_sys(err, errno, "commit %s: rename to %s", w->ref, dgst);
    } else {
      fchmod(w->data_fd, 0644);
      return crater_error_sys(err, e, "commit %s: rename to %s", w->ref, dgst);
    }
  }
  if (status == CRATER_CONTENT_COMMITTED && crater__fsync_dir(algdir, err) < 0)
    return crater_error_wrap(err, "commit %s", w->ref);
  w->done = true;
  if (out)
    memcpy(out, dgst, strlen(dgst) + 1);
  crater_error_t e = NULL;
  if (remove_ingest(w, &e) < 0) { /* the blob is safe; a leftover is check's job */
    crater_warn("commit %s: %s", w->ref, e->msg);
    crater_error_release(&e);
  }
  return status;
}

void
crater_content_writer_close(crater_content_writer_t *w)
{
  if (w == NULL)
    return;
  if (w->data_fd >= 0)
    close(w->data_fd);
  if (w->lock_fd >= 0)
    close(w->lock_fd); /* releases the flock */
  crater_digester_free(w->dg);
  free(w->ref);
  free(w->path);
  free(w->expected);
  free(w);
}

int
crater_content_writer_abort(crater_content_writer_t *w, crater_error_t *err)
{
  int r = 0;
  if (!w->done && (r = remove_ingest(w, err)) < 0)
    crater_error_wrap(err, "abort %s", w->ref);
  w->done = true;
  crater_content_writer_close(w);
  return r;
}

int
crater_content_abort(crater_content_t *c, const char *ref, crater_error_t *err)
{
  if (ref == NULL || ref[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "abort: empty ref");
  cleanup_free char *path = crater__content_ingest_path(c, ref, err);
  if (path == NULL)
    return crater_error_wrap(err, "abort %s", ref);
  cleanup_close int fd = lock_ingest(path, ref, false, err);
  if (fd < 0)
    return crater_error_wrap(err, "abort");
  if (crater__remove_all(path, err) < 0)
    return crater_error_wrap(err, "abort %s", ref);
  return 0;
}

static bool
is_locked(const char *path)
{
  cleanup_free char *lockp = crater__path_join(path, "lock");
  cleanup_close int fd = open(lockp, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  if (flock(fd, LOCK_SH | LOCK_NB) < 0)
    return errno == EWOULDBLOCK;
  return false;
}

static int
read_status(const char *path, crater_ingest_status_t *out, crater_error_t *err)
{
  bool missing;
  memset(out, 0, sizeof *out);
  out->ref = read_small(path, "ref", &missing, err);
  if (out->ref == NULL) {
    if (missing)
      crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "ingest %s: no ref", path);
    return -1;
  }
  cleanup_free char *started = read_small(path, "startedat", &missing, NULL);
  cleanup_free char *total = read_small(path, "total", &missing, NULL);
  out->expected = read_small(path, "expected", &missing, NULL);
  out->started_at = parse_i64(started);
  out->total = parse_i64(total);
  cleanup_free char *datap = crater__path_join(path, "data");
  struct stat st;
  if (stat(datap, &st) == 0) {
    out->offset = st.st_size;
    out->updated_at = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  } else {
    out->updated_at = out->started_at;
  }
  out->active = is_locked(path);
  return 0;
}

int
crater_content_status(crater_content_t *c, const char *ref, crater_ingest_status_t *out,
                      crater_error_t *err)
{
  cleanup_free char *path = crater__content_ingest_path(c, ref, err);
  if (path == NULL) {
    memset(out, 0, sizeof *out);
    return crater_error_wrap(err, "status %s", ref);
  }
  crater_error_t e = NULL;
  if (read_status(path, out, &e) < 0) {
    crater_ingest_status_clear(out);
    if (e->kind == CRATER_ERR_NOT_FOUND) {
      crater_error_release(&e);
      return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "status %s: no such ingest", ref);
    }
    crater_error_move(err, &e);
    return crater_error_wrap(err, "status %s", ref);
  }
  return 0;
}

int
crater_content_status_list(crater_content_t *c, const char *prefix, crater_ingest_status_t **out,
                           size_t *n, crater_error_t *err)
{
  *out = NULL;
  *n = 0;
  cleanup_dir DIR *d = opendir(c->ingest_dir);
  if (d == NULL)
    return crater_error_sys(err, errno, "list ingests %s", c->ingest_dir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *path = crater__path_join(c->ingest_dir, de->d_name);
    crater_ingest_status_t st;
    crater_error_t e = NULL;
    if (read_status(path, &st, &e) < 0) { /* vanished or broken: skip */
      crater_error_release(&e);
      crater_ingest_status_clear(&st);
      continue;
    }
    if (prefix && !crater__str_has_prefix(st.ref, prefix)) {
      crater_ingest_status_clear(&st);
      continue;
    }
    *out = xrealloc(*out, (*n + 1) * sizeof **out);
    (*out)[(*n)++] = st;
  }
  return 0;
}

void
crater_ingest_status_clear(crater_ingest_status_t *st)
{
  if (st == NULL)
    return;
  free(st->ref);
  free(st->expected);
  st->ref = st->expected = NULL;
}

void
crater_ingest_status_free(crater_ingest_status_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    crater_ingest_status_clear(&arr[i]);
  free(arr);
}

int
crater_content_broken_ingests(crater_content_t *c, char ***names, size_t *n, crater_error_t *err)
{
  *names = NULL;
  *n = 0;
  cleanup_dir DIR *d = opendir(c->ingest_dir);
  if (d == NULL)
    return crater_error_sys(err, errno, "list ingests %s", c->ingest_dir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    cleanup_free char *refp = xasprintf("%s/%s/ref", c->ingest_dir, de->d_name);
    cleanup_free char *path = crater__path_join(c->ingest_dir, de->d_name);
    if (access(refp, R_OK) == 0 || is_locked(path))
      continue;
    *names = xrealloc(*names, (*n + 1) * sizeof **names);
    (*names)[(*n)++] = xstrdup(de->d_name);
  }
  return 0;
}

int
crater_content_remove_ingest_dir(crater_content_t *c, const char *name, crater_error_t *err)
{
  if (name[0] == '\0' || name[0] == '.' || strchr(name, '/'))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "ingest dir '%.100s': invalid name", name);
  cleanup_free char *path = crater__path_join(c->ingest_dir, name);
  cleanup_free char *lockp = crater__path_join(path, "lock");
  cleanup_close int fd = open(lockp, O_RDONLY | O_CLOEXEC);
  if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, EBUSY, "ingest %s locked", name);
  return crater__remove_all(path, err);
}
