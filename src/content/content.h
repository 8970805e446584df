/*
 * The content store: immutable blobs addressed by digest, written through
 * resumable ingests.  This layer knows nothing about namespaces or labels;
 * src/metadata/store.h wraps it with the SQLite records that give blobs
 * their per-namespace visibility (as containerd's core/metadata/content.go
 * wraps its local store).
 *
 * Layout under the content directory (normally <root>/content):
 *   blobs/<alg>/<hex>          immutable blob, mode 0444, created by rename
 *   ingest/<sha256(ref)>/      one in-progress write:
 *       lock                   flock()ed exclusively by the live writer
 *       data                   bytes written so far
 *       ref                    the ref, verbatim
 *       startedat              decimal nanoseconds since the epoch (the
 *                              data file's mtime is the update time)
 *       total, expected        optional size / digest announced at open
 *
 * Lifecycle of a write:
 *
 *   w = crater_content_writer_open(c, "layer-1", "sha256:ab..", 1234, &err);
 *   crater_content_writer_write(w, buf, n, &err);   ... repeatedly
 *   st = crater_content_writer_commit(w, 1234, "sha256:ab..", dgst, &err);
 *   crater_content_writer_close(w);
 *
 * A writer whose process dies (even by SIGKILL) leaves its ingest behind
 * and releases the lock with the process; opening a writer on the same ref
 * re-hashes the data and continues at its end.  While a writer is alive, a
 * second writer for the same ref fails with FAILED_PRECONDITION
 * ("ref X locked").  Commit verifies size and digest, fsyncs the data,
 * renames it into blobs/ and fsyncs the directory, so a crash at any point
 * leaves either no blob or a complete, verified one.
 */
#ifndef CRATER_CONTENT_CONTENT_H
#define CRATER_CONTENT_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "content/digest.h"

typedef struct crater_content_s crater_content_t;
typedef struct crater_content_writer_s crater_content_writer_t;

/* Result of a successful commit. */
enum {
  CRATER_CONTENT_COMMITTED = 0, /* the blob was created by this commit */
  CRATER_CONTENT_EXISTS = 1,    /* it was already there; the ingest is gone */
};

typedef struct {
  char digest[CRATER_DIGEST_MAX];
  int64_t size;
  int64_t created_at; /* ns since the epoch (blob mtime) */
} crater_blob_info_t;

typedef struct {
  char *ref;
  char *expected;     /* NULL when not announced */
  int64_t offset;     /* bytes in data */
  int64_t total;      /* announced size, 0 when unknown */
  int64_t started_at; /* ns */
  int64_t updated_at; /* ns */
  bool active;        /* a live writer holds the lock */
} crater_ingest_status_t;

/* Opens (creating blobs/ and ingest/) the content store at dir.  Free with
 * crater_content_close. */
CRATER_PUBLIC crater_content_t *crater_content_open(const char *dir, crater_error_t *err);
/* NULL tolerated.  Writers must be closed first. */
CRATER_PUBLIC void crater_content_close(crater_content_t *c);
CRATER_PUBLIC const char *crater_content_dir(const crater_content_t *c);

/* Stats a blob: NOT_FOUND when absent, INVALID_ARGUMENT for a bad digest. */
CRATER_PUBLIC int crater_content_stat(crater_content_t *c, const char *digest,
                                      crater_blob_info_t *out, crater_error_t *err);
/* Path of an existing blob (malloc'd), for readers that want their own fd. */
CRATER_PUBLIC char *crater_content_path(crater_content_t *c, const char *digest,
                                        crater_error_t *err);
/* Opens a blob read-only; returns the fd (caller closes). */
CRATER_PUBLIC int crater_content_open_blob(crater_content_t *c, const char *digest,
                                           crater_error_t *err);
/* Reads up to n bytes at offset; returns the count (short at EOF). */
CRATER_PUBLIC ssize_t crater_content_read(crater_content_t *c, const char *digest, int64_t offset,
                                          void *buf, size_t n, crater_error_t *err);
/* Deletes a blob file; NOT_FOUND when absent. */
CRATER_PUBLIC int crater_content_delete(crater_content_t *c, const char *digest,
                                        crater_error_t *err);

/* Calls fn for every blob on disk (sha256 then sha512, directory order).
 * Files whose names are not valid digests are skipped.  A negative return
 * from fn stops the walk and is returned. */
typedef int (*crater_content_walk_fn)(const crater_blob_info_t *info, void *ud,
                                      crater_error_t *err);
CRATER_PUBLIC int crater_content_walk(crater_content_t *c, crater_content_walk_fn fn, void *ud,
                                      crater_error_t *err);

/* Opens a writer for ref (any non-empty string up to 4096 bytes), resuming
 * an existing ingest.  expected (may be NULL) chooses the hash algorithm
 * and is checked at commit; total > 0 announces the size. */
CRATER_PUBLIC crater_content_writer_t *
crater_content_writer_open(crater_content_t *c, const char *ref, const char *expected,
                           int64_t total, crater_error_t *err);
/* Appends n bytes at the writer's offset. */
CRATER_PUBLIC int crater_content_writer_write(crater_content_writer_t *w, const void *buf, size_t n,
                                              crater_error_t *err);
/* Copies fd (from its current position) to EOF into the writer, hashing
 * on this thread while a helper thread writes and starts writeback. */
CRATER_PUBLIC int crater_content_writer_copy_fd(crater_content_writer_t *w, int fd,
                                                crater_error_t *err);
/* Positions source fd for a resumed ingest: skips as many bytes as the
 * writer already holds (lseek when fd is seekable, else reads and discards
 * them). */
CRATER_PUBLIC int crater_content_writer_skip_fd(crater_content_writer_t *w, int fd,
                                                crater_error_t *err);
CRATER_PUBLIC int64_t crater_content_writer_offset(const crater_content_writer_t *w);
CRATER_PUBLIC const char *crater_content_writer_ref(const crater_content_writer_t *w);
/* Digest of the bytes written so far into out (CRATER_DIGEST_MAX). */
CRATER_PUBLIC int crater_content_writer_digest(crater_content_writer_t *w, char *out,
                                               crater_error_t *err);
/* Verifies size (size < 0: not checked; else must equal the offset) and
 * digest (expected NULL: the one given at open, if any), then fsyncs the
 * data.  Size mismatch: FAILED_PRECONDITION; digest mismatch: DATA_LOSS;
 * both say expected and actual.  The computed digest goes into out.
 * Commit calls this; the metadata layer calls it first to fsync outside
 * its database lock. */
CRATER_PUBLIC int crater_content_writer_verify(crater_content_writer_t *w, int64_t size,
                                               const char *expected, char *out,
                                               crater_error_t *err);
/* Verifies, then publishes the blob by atomic rename and removes the
 * ingest.  Returns CRATER_CONTENT_COMMITTED or CRATER_CONTENT_EXISTS; on
 * failure nothing appears in blobs/ and the ingest stays for resume or
 * abort.  After success the writer only accepts close. */
CRATER_PUBLIC int crater_content_writer_commit(crater_content_writer_t *w, int64_t size,
                                               const char *expected, char *out,
                                               crater_error_t *err);
/* Releases the lock and frees w, keeping the ingest for a later resume.
 * NULL tolerated. */
CRATER_PUBLIC void crater_content_writer_close(crater_content_writer_t *w);
/* Removes the ingest and frees w (also on failure). */
CRATER_PUBLIC int crater_content_writer_abort(crater_content_writer_t *w, crater_error_t *err);

/* Status of one ingest by ref: NOT_FOUND when there is none. */
CRATER_PUBLIC int crater_content_status(crater_content_t *c, const char *ref,
                                        crater_ingest_status_t *out, crater_error_t *err);
/* All ingests whose ref starts with prefix (NULL: all), malloc'd array. */
CRATER_PUBLIC int crater_content_status_list(crater_content_t *c, const char *prefix,
                                             crater_ingest_status_t **out, size_t *n,
                                             crater_error_t *err);
CRATER_PUBLIC void crater_ingest_status_clear(crater_ingest_status_t *st);
CRATER_PUBLIC void crater_ingest_status_free(crater_ingest_status_t *arr, size_t n);
/* Removes the ingest for ref: NOT_FOUND when absent, FAILED_PRECONDITION
 * while a writer holds it. */
CRATER_PUBLIC int crater_content_abort(crater_content_t *c, const char *ref, crater_error_t *err);
/* Removes an ingest directory by its name under ingest/ (check --repair of
 * broken ingests that have no readable ref).  Refused while locked. */
CRATER_PUBLIC int crater_content_remove_ingest_dir(crater_content_t *c, const char *name,
                                                   crater_error_t *err);
/* Lists ingest directory names that have no readable ref file (broken). */
CRATER_PUBLIC int crater_content_broken_ingests(crater_content_t *c, char ***names, size_t *n,
                                                crater_error_t *err);

/* Convenience: ingest everything from fd as ref (resuming an existing
 * ingest of that ref by skipping the bytes it already holds), verify and
 * commit.  Returns COMMITTED or EXISTS; the digest goes into out. */
CRATER_PUBLIC int crater_content_ingest_fd(crater_content_t *c, const char *ref, int fd,
                                           const char *expected, int64_t size, char *out,
                                           crater_error_t *err);

#endif
