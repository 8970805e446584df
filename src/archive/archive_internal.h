/*
 * Privates shared by the archive sources: the decompressing, hashing,
 * size-limited layer reader (stream.c), path resolution inside a root
 * (resolve.c) and small tree helpers.
 */
#ifndef CRATER_ARCHIVE_INTERNAL_H
#define CRATER_ARCHIVE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "archive/archive.h"
#include "content/digest.h"

#define CRATER__ARCHIVE_BUF (1u << 20)     /* decompressed block handed to libarchive */
#define CRATER__ARCHIVE_INBUF (256u << 10) /* compressed read size */

/* A layer stream: compressed bytes from fd -> decoder -> sha256 + size
 * limit -> consumer.  One instance per apply; not thread-safe. */
typedef struct crater__lstream_s crater__lstream_t;

/* Opens a reader on fd.  Reads the first bytes to check the magic against
 * compression (mismatch: INVALID_ARGUMENT).  max_size 0 = unlimited. */
crater__lstream_t *crater__lstream_open(int fd, crater_compression_t compression,
                                        crater_decoder_t decoder, uint64_t max_size,
                                        crater_error_t *err);

/* Returns the next decompressed block (valid until the next call) and its
 * length in *len; *len == 0 at the end.  Returns <0 on failure. */
int crater__lstream_read(crater__lstream_t *s, const void **buf, size_t *len, crater_error_t *err);

/* Reads and hashes everything left (tar padding after the end marker). */
int crater__lstream_drain(crater__lstream_t *s, crater_error_t *err);

/* "sha256:<hex>" of everything returned so far (out >= 72 bytes) and the
 * uncompressed size. */
void crater__lstream_digest(crater__lstream_t *s, char *out, uint64_t *size);

/* Takes the error recorded by a failed read (used after libarchive
 * reports a callback failure); returns false when there is none. */
bool crater__lstream_take_error(crater__lstream_t *s, crater_error_t *err);

/* Parks *e (moved) as the stream's error, for libarchive callbacks. */
void crater__lstream_set_error(crater__lstream_t *s, crater_error_t *e);

void crater__lstream_free(crater__lstream_t *s);

/* Path resolution inside a root. */
typedef struct {
  int root;        /* the root dirfd (borrowed) */
  bool no_openat2; /* forced, or learned from ENOSYS */
} crater__resolver_t;

/* Opens (O_RDONLY|O_DIRECTORY) the directory `rel` (a cleaned relative path,
 * "" for the root) inside the root, following symlinks as if the root were
 * "/".  With create, missing components are created as 0755 directories.
 * Returns the fd or <0 (errno kinds; ENOTDIR when a component is not a
 * directory). */
int crater__resolve_dir(crater__resolver_t *r, const char *rel, bool create, crater_error_t *err);

/* Lexically cleans a tar member name into out (size >= strlen(name)+1):
 * strips "./" and duplicate slashes, folds "a/../b".  Returns 0, or <0 with
 * INVALID_ARGUMENT when the name is absolute or climbs above the root.
 * The result is "" for the root itself. */
int crater__clean_path(const char *name, char *out, crater_error_t *err);

/* Removes name in dirfd: unlink, or a recursive removal for a directory
 * (never following symlinks).  A missing name is not an error. */
int crater__remove_at(int dirfd, const char *name, crater_error_t *err);

/* True for xattr names never carried in layers (overlay metadata). */
bool crater__xattr_is_private(const char *name);

#endif
