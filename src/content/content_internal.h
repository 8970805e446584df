/*
 * Privates shared by the content store's files (content.c, ingest.c,
 * copy.c).
 */
#ifndef CRATER_CONTENT_INTERNAL_H
#define CRATER_CONTENT_INTERNAL_H

#include "content/content.h"

struct crater_content_s {
  char *dir;        /* <root>/content */
  char *blobs_dir;  /* <dir>/blobs */
  char *ingest_dir; /* <dir>/ingest */
};

struct crater_content_writer_s {
  crater_content_t *c;
  char *ref;
  char *path;     /* ingest/<hash> */
  char *expected; /* may be NULL */
  int64_t total;
  int64_t offset;
  int lock_fd;
  int data_fd;
  crater_digester_t *dg;
  bool synced; /* data fsynced since the last write */
  bool done;   /* committed or aborted */
};

/* Path of the ingest directory for ref: ingest/<sha256 of ref> (malloc'd);
 * NULL + UNAVAILABLE when libcrypto cannot be loaded (a ref longer than
 * CRATER__SHA256_SMALL_MAX). */
char *crater__content_ingest_path(crater_content_t *c, const char *ref, crater_error_t *err);

/* SHA-256 without libcrypto, for short one-shot inputs (sha256_small.c):
 * crater_digest_buf uses it up to this many bytes. */
#define CRATER__SHA256_SMALL_MAX 4096
void crater__sha256_small(const void *buf, size_t n, unsigned char out[32]);

#endif
