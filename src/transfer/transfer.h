/*
 * Image transfer archives: reading and writing the tarballs images travel
 * in (OCI image layout tars, docker-archive tars) with libarchive.
 *
 * Unlike src/archive (layer apply), nothing here ever touches the
 * filesystem on behalf of the archive: members are handed to the caller as
 * byte streams (the Lua import workflow pipes them into content-store
 * ingests), so an archive can never write outside anything.  The reader
 * still refuses members a well-formed image archive never has: absolute
 * names, names with a `..` component, hardlinks, symlinks whose target is
 * absolute or leads out of the archive, and any type other than regular
 * files, directories and symlinks; the error names the member.  A symlink
 * is only reported as an alias (its target resolved lexically to another
 * member name, e.g. docker-archive's `<id>/layer.tar -> ../<hex>.tar`):
 * nothing is ever followed on a filesystem.
 *
 * The writer produces deterministic pax archives: every entry has mtime 0,
 * uid/gid 0, no user/group names, mode 0644 (files) or 0755 (dirs), in the
 * order the caller adds them.  Nothing here is thread-safe per object; distinct
 * readers/writers may be used from distinct threads.
 *
 *     crater_tar_reader_t *r = crater_tar_reader_open("img.tar", &err);
 *     crater_tar_entry_t e;
 *     while ((rc = crater_tar_reader_next(r, &e, &err)) > 0)
 *       crater_tar_reader_copy(r, sink_write, ud, &err);
 *     crater_tar_reader_free(r);
 */
#ifndef CRATER_TRANSFER_TRANSFER_H
#define CRATER_TRANSFER_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef struct crater_tar_reader_s crater_tar_reader_t;
typedef struct crater_tar_writer_s crater_tar_writer_t;

typedef struct {
  const char *name; /* normalised ("./" prefixes and trailing "/" removed);
                       valid until the next call on the reader */
  int64_t size;     /* data bytes (0 for directories and symlinks) */
  bool is_dir;
  const char *link; /* symlinks: the member it names, resolved lexically
                       against the symlink's directory ("a/b"); else NULL */
} crater_tar_entry_t;

/* Opens a tar file (ustar, pax or GNU; uncompressed or gzip).  Free with
 * crater_tar_reader_free. */
CRATER_PUBLIC crater_tar_reader_t *crater_tar_reader_open(const char *path, crater_error_t *err);
/* NULL tolerated. */
CRATER_PUBLIC void crater_tar_reader_free(crater_tar_reader_t *r);

/* Advances to the next member.  Returns 1 with *out filled, 0 at the end,
 * <0 on a corrupt archive (DATA_LOSS) or a refused member
 * (INVALID_ARGUMENT, message names it).  Entries named "." are skipped. */
CRATER_PUBLIC int crater_tar_reader_next(crater_tar_reader_t *r, crater_tar_entry_t *out,
                                         crater_error_t *err);

/* Reads up to n bytes of the current member's data; returns the count (0
 * at the member's end). */
CRATER_PUBLIC ssize_t crater_tar_reader_read(crater_tar_reader_t *r, void *buf, size_t n,
                                             crater_error_t *err);

/* Sink for crater_tar_reader_copy: returns <0 with *err to stop. */
typedef int (*crater_tar_write_fn)(void *ud, const void *buf, size_t n, crater_error_t *err);

/* Streams the rest of the current member into write.  Returns the number
 * of bytes passed on, or <0.  A member shorter than its header says is
 * DATA_LOSS. */
CRATER_PUBLIC int64_t crater_tar_reader_copy(crater_tar_reader_t *r, crater_tar_write_fn write,
                                             void *ud, crater_error_t *err);

/* Creates a pax writer on fd (not closed by the writer). */
CRATER_PUBLIC crater_tar_writer_t *crater_tar_writer_new(int fd, crater_error_t *err);
/* Adds a directory entry. */
CRATER_PUBLIC int crater_tar_writer_add_dir(crater_tar_writer_t *w, const char *name,
                                            crater_error_t *err);
/* Adds a regular file holding len bytes of data. */
CRATER_PUBLIC int crater_tar_writer_add_data(crater_tar_writer_t *w, const char *name,
                                             const void *data, size_t len, crater_error_t *err);
/* Adds a regular file with size bytes read from fd at offsets 0..size
 * (pread; the fd position is unused).  A file shorter than size is
 * DATA_LOSS. */
CRATER_PUBLIC int crater_tar_writer_add_fd(crater_tar_writer_t *w, const char *name, int fd,
                                           int64_t size, crater_error_t *err);
/* Writes the end-of-archive blocks.  The writer must still be freed. */
CRATER_PUBLIC int crater_tar_writer_finish(crater_tar_writer_t *w, crater_error_t *err);
/* NULL tolerated; an unfinished archive is left truncated. */
CRATER_PUBLIC void crater_tar_writer_free(crater_tar_writer_t *w);

/* Checks a member name: relative, no empty/`.`-only result, no `..`
 * component.  Returns 0 or <0 with INVALID_ARGUMENT. */
CRATER_PUBLIC int crater_tar_check_name(const char *name, crater_error_t *err);

#endif
