/*
 * The fast ingest path: copy an fd into a writer with hashing and writing
 * overlapped.
 *
 * A helper thread reads the source into a small ring of buffers, publishes
 * each buffer to the calling thread, which only hashes, and pwrite()s the
 * same buffer into the ingest's data file meanwhile (starting writeback
 * with sync_file_range, so the fsync before commit has little left).  The
 * bytes hashed are exactly the bytes written, even if the source changes
 * under us, so the commit's digest check keeps its meaning.  On this host
 * SHA-256 (with SHA-NI) is the bottleneck; the writes ride along on the
 * second core.  Measured alternatives are in docs/design/metadata.md.
 */
#include "content/content_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define NBUF 4
#define BUFSZ (4u << 20)

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *buf[NBUF];
  size_t len[NBUF];
  bool filled[NBUF]; /* read, not yet hashed: the slot is busy */
  size_t nfilled;    /* slots published so far */
  bool eof;          /* the helper publishes no more slots */
  int rerr, werr;    /* errno of a failed read / write, 0 if none */
  bool stop;         /* the hasher gave up */
  int src, dst;
  int64_t off;       /* file offset of the next write */
} ring_t;

/* The helper: read a slot, publish it for hashing, write it, move on.  A
 * slot is reused only after the hasher released it; the helper's own
 * write of it finished before it moved on. */
static void *
io_main(void *arg)
{
  ring_t *r = arg;
  int64_t synced_to = r->off;
  for (size_t idx = 0;; idx = (idx + 1) % NBUF) {
    pthread_mutex_lock(&r->mu);
    while (r->filled[idx] && !r->stop)
      pthread_cond_wait(&r->cv, &r->mu);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    if (stop)
      break;
    size_t got = 0;
    int e = 0;
    while (got < BUFSZ) {
      ssize_t n = read(r->src, r->buf[idx] + got, BUFSZ - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        e = errno;
        break;
      }
      if (n == 0)
        break;
      got += (size_t) n;
    }
    pthread_mutex_lock(&r->mu);
    if (e)
      r->rerr = e;
    if (got > 0 && !e) {
      r->len[idx] = got;
      r->filled[idx] = true;
      r->nfilled++;
    }
    if (got == 0 || e)
      r->eof = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (got == 0 || e)
      break;
    /* write the same bytes the hasher is reading (both read-only) */
    size_t done = 0;
    while (done < got) {
      ssize_t w = pwrite(r->dst, r->buf[idx] + done, got - done, r->off + (off_t) done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        e = errno;
        break;
      }
      done += (size_t) w;
    }
    r->off += (int64_t) done;
    if (e) {
      pthread_mutex_lock(&r->mu);
      r->werr = e;
      r->eof = true;
      pthread_cond_broadcast(&r->cv);
      pthread_mutex_unlock(&r->mu);
      break;
    }
    /* start writeback early so the fsync before commit has little left */
    if (r->off - synced_to >= (16 << 20)) {
      sync_file_range(r->dst, synced_to, r->off - synced_to, SYNC_FILE_RANGE_WRITE);
      synced_to = r->off;
    }
    if (got < BUFSZ) { /* short read: EOF next; save a read() */
      pthread_mutex_lock(&r->mu);
      r->eof = true;
      pthread_cond_broadcast(&r->cv);
      pthread_mutex_unlock(&r->mu);
      break;
    }
  }
  return NULL;
}

int
crater_content_writer_copy_fd(crater_content_writer_t *w, int fd, crater_error_t *err)
{
  if (w->done)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, EINVAL,
                             "writer %s: already committed or aborted", w->ref);
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  ring_t r = { .src = fd, .dst = w->data_fd, .off = w->offset };
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  for (int i = 0; i < NBUF; i++)
    r.buf[i] = xmalloc(BUFSZ);
  pthread_t th;
  int ret = 0;
  int64_t hashed = 0;
  if ((errno = pthread_create(&th, NULL, io_main, &r)) != 0) {
    ret = crater_error_sys(err, errno, "ingest %s: start I/O thread", w->ref);
    goto free_bufs;
  }
  /* this thread only hashes: SHA-256 is the bottleneck */
  for (size_t idx = 0, seen = 0;; idx = (idx + 1) % NBUF, seen++) {
    pthread_mutex_lock(&r.mu);
    while (r.nfilled == seen && !r.eof)
      pthread_cond_wait(&r.cv, &r.mu);
    bool have = r.nfilled > seen;
    pthread_mutex_unlock(&r.mu);
    if (!have)
      break;
    if (crater_digester_update(w->dg, r.buf[idx], r.len[idx], err) < 0) {
      ret = -1;
      break;
    }
    hashed += (int64_t) r.len[idx];
    pthread_mutex_lock(&r.mu);
    r.filled[idx] = false;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
  }
  pthread_mutex_lock(&r.mu);
  r.stop = true;
  pthread_cond_broadcast(&r.cv);
  pthread_mutex_unlock(&r.mu);
  pthread_join(th, NULL);

  if (ret == 0 && r.rerr)
    ret = crater_error_sys(err, r.rerr, "ingest %s: read source", w->ref);
  if (ret == 0 && r.werr)
    ret = crater_error_sys(err, r.werr, "ingest %s: write", w->ref);
  if (ret == 0 && r.off != w->offset + hashed)
    ret = crater_error_make(err, CRATER_ERR_INTERNAL, 0,
                            "ingest %s: wrote %lld bytes but hashed %lld", w->ref,
                            (long long) (r.off - w->offset), (long long) hashed);
  if (ret < 0) {
    /* digest and data may disagree now: refuse further use; a new writer
     * re-hashes what is on disk */
    w->done = true;
  } else {
    w->offset += hashed;
    w->synced = false;
  }
free_bufs:
  for (int i = 0; i < NBUF; i++)
    free(r.buf[i]);
  pthread_cond_destroy(&r.cv);
  pthread_mutex_destroy(&r.mu);
  return ret;
}

int
crater_content_writer_skip_fd(crater_content_writer_t *w, int fd, crater_error_t *err)
{
  if (w->offset == 0)
    return 0;
  if (lseek(fd, w->offset, SEEK_CUR) >= 0)
    return 0;
  if (errno != ESPIPE)
    return crater_error_sys(err, errno, "ingest %s: seek source to %lld", w->ref,
                            (long long) w->offset);
  char buf[65536];
  int64_t left = w->offset;
  while (left > 0) {
    ssize_t n = read(fd, buf, left < (int64_t) sizeof buf ? (size_t) left : sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return crater_error_sys(err, errno, "ingest %s: skip source", w->ref);
    if (n == 0)
      return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, EINVAL,
                               "ingest %s: source shorter than the %lld bytes "
                               "already ingested",
                               w->ref, (long long) w->offset);
    left -= n;
  }
  return 0;
}

int
crater_content_ingest_fd(crater_content_t *c, const char *ref, int fd,
                         const char *expected, int64_t size, char *out,
                         crater_error_t *err)
{
  crater_content_writer_t *w =
      crater_content_writer_open(c, ref, expected, size > 0 ? size : 0, err);
  if (w == NULL)
    return -1;
  if (crater_content_writer_skip_fd(w, fd, err) < 0
      || crater_content_writer_copy_fd(w, fd, err) < 0) {
    crater_content_writer_close(w);
    return -1;
  }
  int r = crater_content_writer_commit(w, size > 0 ? size : -1, expected, out, err);
  if (r < 0 && (*err)->kind == CRATER_ERR_DATA_LOSS) {
    /* wrong bytes: resuming cannot help, drop them */
    crater_content_writer_abort(w, NULL);
    return -1;
  }
  crater_content_writer_close(w);
  return r;
}
