/*
 * The fast ingest path: copy an fd into a writer with hashing and writing
 * overlapped.
 *
 * The calling thread reads the source in 128 KiB pieces into a ring of
 * 4 MiB buffers and hashes each piece right after reading it, while it is
 * still in this core's cache (as `openssl dgst` does); a writer thread
 * writes each full buffer into the ingest's data file, with O_DIRECT where
 * the filesystem allows it (no page-cache copy, no dirty throttling, almost
 * no CPU: the host has two cores and SHA-256 needs one), else buffered with
 * early writeback through sync_file_range.  The bytes hashed are exactly
 * the bytes written, even if the source changes under us, so the commit's
 * digest check keeps its meaning.  Alternatives and figures:
 * docs/design/metadata.md and bench/ingest.sh.
 */
#include "content/content_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define NBUF 8
#define BUFSZ (4u << 20)
#define ALIGN 4096

/* Piece size for read + hash: small enough that the bytes read() copies
 * are still in this core's cache when the hash reads them (openssl dgst
 * does the same with 8 KiB), large enough to keep syscalls cheap. */
#define PIECE (128u << 10)

/* The calling thread (reader + hasher) fills chunk k in slot k % NBUF once
 * chunk k - NBUF has been written; the writer thread takes chunks in order
 * as they are published. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *buf[NBUF];
  size_t len[NBUF];
  uint64_t nread, nwritten; /* chunks published / written */
  bool eof;                 /* no more chunks will be published */
  bool stop;                /* the writer failed */
  int werr;
  int dst;        /* buffered fd (the writer's data_fd) */
  int dst_direct; /* O_DIRECT fd on the same file, or -1 */
  int64_t off;    /* file offset of the next write */
} ring_t;

static int
write_chunk(ring_t *r, const char *p, size_t n)
{
  int fd = r->dst;
  if (r->dst_direct >= 0 && r->off % ALIGN == 0 && n % ALIGN == 0)
    fd = r->dst_direct;
  size_t done = 0;
  while (done < n) {
    ssize_t w = pwrite(fd, p + done, n - done, r->off + (off_t) done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno == EINVAL && fd == r->dst_direct) {
      /* the filesystem refuses this direct write: buffered from now on */
      close(r->dst_direct);
      r->dst_direct = -1;
      fd = r->dst;
      continue;
    }
    if (w < 0)
      return errno;
    done += (size_t) w;
  }
  r->off += (int64_t) n;
  return 0;
}

static void *
writer_main(void *arg)
{
  ring_t *r = arg;
  int64_t synced_to = r->off;
  for (uint64_t k = 0;; k++) {
    pthread_mutex_lock(&r->mu);
    while (r->nread <= k && !r->eof)
      pthread_cond_wait(&r->cv, &r->mu);
    bool have = r->nread > k;
    pthread_mutex_unlock(&r->mu);
    if (!have)
      break;
    int e = write_chunk(r, r->buf[k % NBUF], r->len[k % NBUF]);
    /* buffered writes: start writeback early so the fsync has little left */
    if (e == 0 && r->dst_direct < 0 && r->off - synced_to >= (16 << 20)) {
      sync_file_range(r->dst, synced_to, r->off - synced_to, SYNC_FILE_RANGE_WRITE);
      synced_to = r->off;
    }
    pthread_mutex_lock(&r->mu);
    if (e) {
      r->werr = e;
      r->stop = true;
    } else {
      r->nwritten++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (e)
      break;
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
  ring_t r = { .dst = w->data_fd, .dst_direct = -1, .off = w->offset };
  cleanup_free char *datap = crater__path_join(w->path, "data");
  /* O_DIRECT skips the page cache copy and the dirty-page throttling; where
   * the filesystem has no O_DIRECT (tmpfs) the open fails and we write
   * buffered. */
  r.dst_direct = open(datap, O_WRONLY | O_DIRECT | O_CLOEXEC);
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  for (int i = 0; i < NBUF; i++)
    if (posix_memalign((void **) &r.buf[i], ALIGN, BUFSZ) != 0)
      abort(); /* out of memory, like xmalloc */
  pthread_t wr;
  int ret = 0, rerr = 0;
  int64_t hashed = 0, pos = w->offset;
  if ((errno = pthread_create(&wr, NULL, writer_main, &r)) != 0) {
    ret = crater_error_sys(err, errno, "ingest %s: start writer thread", w->ref);
    goto free_bufs;
  }
  for (uint64_t k = 0;; k++) {
    size_t idx = k % NBUF;
    pthread_mutex_lock(&r.mu);
    while (!r.stop && k >= NBUF && r.nwritten <= k - NBUF)
      pthread_cond_wait(&r.cv, &r.mu);
    bool stop = r.stop;
    pthread_mutex_unlock(&r.mu);
    if (stop)
      break;
    size_t want = BUFSZ;
    if (pos % ALIGN) /* resumed at an odd offset: realign after this chunk */
      want = ALIGN - (size_t) (pos % ALIGN);
    size_t got = 0;
    while (got < want) {
      size_t piece = want - got < PIECE ? want - got : PIECE;
      ssize_t n = read(fd, r.buf[idx] + got, piece);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        rerr = errno;
        break;
      }
      if (n == 0)
        break;
      if (crater_digester_update(w->dg, r.buf[idx] + got, (size_t) n, err) < 0) {
        ret = -1;
        break;
      }
      got += (size_t) n;
    }
    hashed += (int64_t) got;
    pos += (int64_t) got;
    bool last = got < want || rerr || ret < 0;
    pthread_mutex_lock(&r.mu);
    if (got > 0) {
      r.len[idx] = got;
      r.nread++;
    }
    if (last)
      r.eof = true;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    if (last)
      break;
  }
  pthread_mutex_lock(&r.mu);
  r.eof = true;
  pthread_cond_broadcast(&r.cv);
  pthread_mutex_unlock(&r.mu);
  pthread_join(wr, NULL);

  if (ret == 0 && rerr)
    ret = crater_error_sys(err, rerr, "ingest %s: read source", w->ref);
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
  if (r.dst_direct >= 0)
    close(r.dst_direct);
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
crater_content_ingest_fd(crater_content_t *c, const char *ref, int fd, const char *expected,
                         int64_t size, char *out, crater_error_t *err)
{
  crater_content_writer_t *w =
      crater_content_writer_open(c, ref, expected, size > 0 ? size : 0, err);
  if (w == NULL)
    return -1;
  if (crater_content_writer_skip_fd(w, fd, err) < 0 ||
      crater_content_writer_copy_fd(w, fd, err) < 0) {
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
