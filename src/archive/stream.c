/*
 * The layer reader: compressed bytes from an fd, decoded (ISA-L inflate for
 * gzip, libzstd for zstd, or libarchive's filters for comparison), hashed
 * (sha256 of the uncompressed stream = the diff ID), counted and stopped at
 * max_size.  It hands out one decompressed block at a time, so a layer is
 * never buffered whole.  The compression the caller names (from the media
 * type) must match the magic bytes at the start of the blob.
 *
 * Decoding (read, inflate, sha256, count) runs on its own thread, a few
 * blocks ahead of the apply thread that parses the tar and writes the
 * files: the two halves cost about the same CPU, so one layer uses two
 * cores (the last layer of a parallel unpack, a single-layer image).  The
 * blocks and any error reach the reader in stream order, so the result is
 * the same as decoding inline (CRATER_APPLY_NO_PIPELINE=1 does that, for
 * comparison, and when the thread cannot be created).
 *
 * ISA-L and libzstd are loaded on first use (archive/isal_sym.h,
 * archive/zstd_sym.h), when a stream of their kind is opened.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive_internal.h"
#include "archive/archive_sym.h"
#include "archive/isal_sym.h"
#include "archive/zstd_sym.h"
#include "common/util.h"
#include "common/xalloc.h"

#define NSLOT 4 /* blocks decoded ahead (1 MiB each) */

struct crater__lstream_s {
  int fd;
  crater_compression_t compression;
  crater_decoder_t decoder;
  uint64_t max_size;
  uint64_t total;
  crater_digester_t *md;
  unsigned char *in; /* compressed input */
  size_t in_len, in_off;
  bool in_eof;
  unsigned char *out; /* the block being decoded (one of slot[]) */
  bool done;
  struct inflate_state *isal;
  bool isal_member_done;
  ZSTD_DCtx *zstd;
  struct archive *raw;  /* CRATER_DECODER_LIBARCHIVE */
  crater_error_t error; /* recorded failure, for libarchive callbacks */
  /* decoded blocks: slot[k % NSLOT] holds block k.  The decoder fills
   * blocks [released, released + NSLOT); the reader has been handed blocks
   * below `handed` and still uses block handed - 1 until its next read. */
  unsigned char *slot[NSLOT];
  size_t slot_len[NSLOT];
  uint64_t produced, handed, released;
  bool end;               /* no block after `produced`: EOF or end_err */
  crater_error_t end_err; /* the decoder's failure, reported in order */
  bool stop;              /* the reader is done: decoder exits */
  bool threaded;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static const char *
compression_name(crater_compression_t c)
{
  switch (c) {
  case CRATER_COMPRESSION_GZIP:
    return "gzip";
  case CRATER_COMPRESSION_ZSTD:
    return "zstd";
  default:
    return "none";
  }
}

static int
fill_input(crater__lstream_t *s, crater_error_t *err)
{
  if (s->in_off < s->in_len || s->in_eof)
    return 0;
  ssize_t n;
  do
    n = read(s->fd, s->in, CRATER__ARCHIVE_INBUF);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return crater_error_sys(err, errno, "read layer");
  s->in_len = (size_t) n;
  s->in_off = 0;
  if (n == 0)
    s->in_eof = true;
  return 0;
}

static int
check_magic(crater__lstream_t *s, crater_error_t *err)
{
  /* Read until we have 4 bytes or EOF. */
  while (s->in_len < 4 && !s->in_eof) {
    ssize_t n = read(s->fd, s->in + s->in_len, CRATER__ARCHIVE_INBUF - s->in_len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return crater_error_sys(err, errno, "read layer");
    if (n == 0)
      s->in_eof = true;
    s->in_len += (size_t) n;
  }
  const unsigned char *m = s->in;
  crater_compression_t found = CRATER_COMPRESSION_NONE;
  if (s->in_len >= 2 && m[0] == 0x1f && m[1] == 0x8b)
    found = CRATER_COMPRESSION_GZIP;
  else if (s->in_len >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
    found = CRATER_COMPRESSION_ZSTD;
  if (found != s->compression)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "layer compression is %s but the data is %s",
                             compression_name(s->compression), compression_name(found));
  return 0;
}

static int raw_open(crater__lstream_t *s, crater_error_t *err);
static void *decoder_main(void *arg);
static void stop_decoder(crater__lstream_t *s);

crater__lstream_t *
crater__lstream_open(int fd, crater_compression_t compression, crater_decoder_t decoder,
                     uint64_t max_size, crater_error_t *err)
{
  crater__lstream_t *s = xmalloc0(sizeof *s);
  s->fd = fd;
  s->compression = compression;
  s->decoder = decoder;
  s->max_size = max_size;
  s->md = crater_digester_new(CRATER_DIGEST_SHA256, err);
  if (s->md == NULL)
    goto fail;
  s->in = xmalloc(CRATER__ARCHIVE_INBUF);
  for (size_t k = 0; k < NSLOT; k++)
    s->slot[k] = xmalloc(CRATER__ARCHIVE_BUF);
  s->out = s->slot[0];
  if (check_magic(s, err) < 0)
    goto fail;
  if (compression != CRATER_COMPRESSION_NONE && decoder == CRATER_DECODER_LIBARCHIVE) {
    if (raw_open(s, err) < 0)
      goto fail;
  } else if (compression == CRATER_COMPRESSION_GZIP) {
    if (crater__isal_load(err) < 0)
      goto fail;
    s->isal = xmalloc0(sizeof *s->isal);
    crater__isal.inflate_init(s->isal);
    s->isal->crc_flag = ISAL_GZIP;
  } else if (compression == CRATER_COMPRESSION_ZSTD) {
    if (crater__zstd_load(err) < 0)
      goto fail;
    s->zstd = crater__zstd.createDCtx();
    if (s->zstd == NULL) {
      crater_error_make(err, CRATER_ERR_INTERNAL, 0, "zstd: out of memory");
      goto fail;
    }
  }
  const char *np = getenv("CRATER_APPLY_NO_PIPELINE");
  if (np == NULL || np[0] == '\0' || strcmp(np, "0") == 0) {
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->threaded = pthread_create(&s->thread, NULL, decoder_main, s) == 0;
    if (!s->threaded) {
      pthread_cond_destroy(&s->cv);
      pthread_mutex_destroy(&s->mu);
    }
  }
  return s;
fail:
  crater__lstream_free(s);
  return NULL;
}

void
crater__lstream_free(crater__lstream_t *s)
{
  if (s == NULL)
    return;
  stop_decoder(s);
  crater_digester_free(s->md);
  free(s->in);
  for (size_t k = 0; k < NSLOT; k++)
    free(s->slot[k]);
  crater_error_release(&s->end_err);
  free(s->isal);
  if (s->zstd)
    crater__zstd.freeDCtx(s->zstd);
  if (s->raw)
    crater__archive.read_free(s->raw);
  crater_error_release(&s->error);
  free(s);
}

/* --- decoders: each fills s->out, returns bytes (0 = end) or <0 --------- */

static ssize_t
decode_none(crater__lstream_t *s, crater_error_t *err)
{
  if (s->in_off < s->in_len) { /* bytes read while checking the magic */
    size_t n = s->in_len - s->in_off;
    memcpy(s->out, s->in + s->in_off, n);
    s->in_off = s->in_len;
    return (ssize_t) n;
  }
  if (s->in_eof)
    return 0;
  ssize_t n;
  do
    n = read(s->fd, s->out, CRATER__ARCHIVE_BUF);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return crater_error_sys(err, errno, "read layer");
  if (n == 0)
    s->in_eof = true;
  return n;
}

static ssize_t
decode_isal(crater__lstream_t *s, crater_error_t *err)
{
  struct inflate_state *z = s->isal;
  z->next_out = s->out;
  z->avail_out = CRATER__ARCHIVE_BUF;
  while (z->avail_out > 0) {
    if (fill_input(s, err) < 0)
      return -1;
    if (s->isal_member_done) {
      /* Another gzip member may follow (concatenated gzip). */
      if (s->in_off == s->in_len)
        break;
      crater__isal.inflate_reset(z);
      z->crc_flag = ISAL_GZIP;
      s->isal_member_done = false;
    }
    if (s->in_off == s->in_len && s->in_eof)
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "gzip: unexpected end of layer");
    z->next_in = s->in + s->in_off;
    z->avail_in = (uint32_t) (s->in_len - s->in_off);
    int rc = crater__isal.inflate(z);
    s->in_off = s->in_len - z->avail_in;
    if (rc != ISAL_DECOMP_OK)
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0,
                               "gzip: corrupt stream (isa-l error %d)", rc);
    if (z->block_state == ISAL_BLOCK_FINISH)
      s->isal_member_done = true;
  }
  return (ssize_t) (CRATER__ARCHIVE_BUF - z->avail_out);
}

static ssize_t
decode_zstd(crater__lstream_t *s, crater_error_t *err)
{
  ZSTD_outBuffer ob = { s->out, CRATER__ARCHIVE_BUF, 0 };
  while (ob.pos < ob.size) {
    if (fill_input(s, err) < 0)
      return -1;
    if (s->in_off == s->in_len && s->in_eof) {
      if (!s->isal_member_done && s->total + ob.pos == 0)
        break;
      if (!s->isal_member_done)
        return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "zstd: unexpected end of layer");
      break;
    }
    ZSTD_inBuffer ib = { s->in, s->in_len, s->in_off };
    size_t rc = crater__zstd.decompressStream(s->zstd, &ob, &ib);
    s->in_off = ib.pos;
    if (crater__zstd.isError(rc))
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "zstd: %s",
                               crater__zstd.getErrorName(rc));
    s->isal_member_done = rc == 0; /* a frame ended */
  }
  return (ssize_t) ob.pos;
}

/* libarchive as a pure decompressor: the "raw" format over its gzip/zstd
 * filter, fed from our input buffer. */
static ssize_t
raw_read_cb(struct archive *a, void *data, const void **buf)
{
  crater__lstream_t *s = data;
  crater_error_t e = NULL;
  if (fill_input(s, &e) < 0) {
    crater__archive.set_error(a, EIO, "%s", e->msg);
    crater_error_release(&e);
    return -1;
  }
  *buf = s->in + s->in_off;
  size_t n = s->in_len - s->in_off;
  s->in_off = s->in_len;
  return (ssize_t) n;
}

static int
raw_open(crater__lstream_t *s, crater_error_t *err)
{
  s->raw = crater__archive.read_new();
  crater__archive.read_support_filter_gzip(s->raw);
  crater__archive.read_support_filter_zstd(s->raw);
  crater__archive.read_support_format_raw(s->raw);
  struct archive_entry *ae;
  if (crater__archive.read_open(s->raw, s, NULL, raw_read_cb, NULL) != ARCHIVE_OK ||
      crater__archive.read_next_header(s->raw, &ae) != ARCHIVE_OK)
    return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "decompress: %s",
                             crater__archive.error_string(s->raw));
  return 0;
}

static ssize_t
decode_libarchive(crater__lstream_t *s, crater_error_t *err)
{
  size_t got = 0;
  while (got < CRATER__ARCHIVE_BUF) {
    la_ssize_t n = crater__archive.read_data(s->raw, s->out + got, CRATER__ARCHIVE_BUF - got);
    if (n < 0)
      return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "decompress: %s",
                               crater__archive.error_string(s->raw));
    if (n == 0)
      break;
    got += (size_t) n;
  }
  return (ssize_t) got;
}

/* Decodes the next block into s->out, counts and hashes it: bytes (0 = end
 * of stream) or -1. */
static ssize_t
decode_block(crater__lstream_t *s, crater_error_t *err)
{
  ssize_t n;
  if (s->raw)
    n = decode_libarchive(s, err);
  else if (s->isal)
    n = decode_isal(s, err);
  else if (s->zstd)
    n = decode_zstd(s, err);
  else
    n = decode_none(s, err);
  if (n <= 0)
    return n;
  if (s->max_size && s->total + (uint64_t) n > s->max_size)
    return crater_error_make(err, CRATER_ERR_RESOURCE_EXHAUSTED, 0,
                             "layer expands beyond the limit of %llu bytes",
                             (unsigned long long) s->max_size);
  s->total += (uint64_t) n;
  crater_digester_update(s->md, s->out, (size_t) n, NULL);
  return n;
}

/* The decoder thread: fills free slots in order until the end of the
 * stream, a failure, or the reader stops it. */
static void *
decoder_main(void *arg)
{
  crater__lstream_t *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (!s->stop && s->produced - s->released >= NSLOT)
      pthread_cond_wait(&s->cv, &s->mu);
    bool stop = s->stop;
    uint64_t k = s->produced;
    pthread_mutex_unlock(&s->mu);
    if (stop)
      return NULL;
    s->out = s->slot[k % NSLOT];
    crater_error_t e = NULL;
    ssize_t n = decode_block(s, &e);
    pthread_mutex_lock(&s->mu);
    if (n > 0) {
      s->slot_len[k % NSLOT] = (size_t) n;
      s->produced = k + 1;
    } else {
      s->end = true;
      s->end_err = e;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (n <= 0)
      return NULL;
  }
}

static void
stop_decoder(crater__lstream_t *s)
{
  if (!s->threaded)
    return;
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  s->threaded = false;
  s->done = true; /* nothing more is decoded */
}

int
crater__lstream_read(crater__lstream_t *s, const void **buf, size_t *len, crater_error_t *err)
{
  *len = 0;
  *buf = s->slot[0]; /* s->out belongs to the decoder thread */
  if (!s->threaded) {
    if (s->done)
      return 0;
    ssize_t n = decode_block(s, err);
    if (n < 0)
      return -1;
    if (n == 0)
      s->done = true;
    *len = (size_t) n;
    return 0;
  }
  pthread_mutex_lock(&s->mu);
  /* the block handed out last time is free again */
  if (s->released < s->handed) {
    s->released = s->handed;
    pthread_cond_broadcast(&s->cv);
  }
  while (s->produced == s->handed && !s->end)
    pthread_cond_wait(&s->cv, &s->mu);
  int rc = 0;
  if (s->produced > s->handed) {
    uint64_t k = s->handed++;
    *buf = s->slot[k % NSLOT];
    *len = s->slot_len[k % NSLOT];
  } else if (s->end_err) {
    rc = crater_error_make(err, s->end_err->kind, s->end_err->status, "%s", s->end_err->msg);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int
crater__lstream_drain(crater__lstream_t *s, crater_error_t *err)
{
  const void *b;
  size_t n;
  do {
    if (crater__lstream_read(s, &b, &n, err) < 0)
      return -1;
  } while (n > 0);
  return 0;
}

void
crater__lstream_digest(crater__lstream_t *s, char *out, uint64_t *size)
{
  stop_decoder(s); /* after the end of the stream: it has already returned */
  crater_digester_digest(s->md, out, NULL);
  if (size)
    *size = s->total;
}

bool
crater__lstream_take_error(crater__lstream_t *s, crater_error_t *err)
{
  if (s->error == NULL)
    return false;
  crater_error_move(err, &s->error);
  return true;
}

void
crater__lstream_set_error(crater__lstream_t *s, crater_error_t *e)
{
  crater_error_release(&s->error);
  crater_error_move(&s->error, e);
}
