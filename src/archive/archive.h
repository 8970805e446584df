/*
 * Layer apply and diff: the bridge between OCI layer tarballs and
 * snapshot directories.
 *
 * crater_archive_apply() streams a (gzip, zstd or uncompressed) OCI layer
 * into a directory.  libarchive only *reads* tar headers and data; every
 * filesystem write is done here, relative to the root's directory fd, with
 * every parent path resolved inside the root (openat2 RESOLVE_IN_ROOT, or a
 * component-by-component O_NOFOLLOW walk when the kernel lacks openat2) and
 * every leaf operated on without following symlinks.  Names that escape
 * lexically (`..` above the root, absolute names, hardlink targets outside)
 * reject the whole layer; symlinks met while resolving are interpreted as
 * inside the root (chroot semantics), so they can never lead out of it.
 * On any error the caller discards the snapshot: apply does not roll back.
 *
 * crater_archive_diff() produces an OCI layer from a snapshot: either an
 * overlayfs upper directory (whiteout devices and opaque xattrs become OCI
 * whiteouts) or the comparison of two full trees.
 *
 * Both functions are thread-safe for distinct roots and keep no global
 * state, so independent layers may be applied in parallel into their own
 * snapshots.  See docs/design/archive.md.
 */
#ifndef CRATER_ARCHIVE_H
#define CRATER_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* Compression of a layer blob, from its media type. */
typedef enum {
  CRATER_COMPRESSION_NONE = 0, /* ...tar */
  CRATER_COMPRESSION_GZIP,     /* ...tar+gzip */
  CRATER_COMPRESSION_ZSTD,     /* ...tar+zstd */
} crater_compression_t;

/* How OCI whiteouts are materialised. */
typedef enum {
  /* overlayfs upper dir: `.wh.NAME` becomes a 0/0 character device NAME,
   * `.wh..wh..opq` sets trusted.overlay.opaque=y on its directory. */
  CRATER_WHITEOUT_OVERLAY = 0,
  /* native/btrfs (layer applied onto a copy of its parent): `.wh.NAME`
   * removes NAME, `.wh..wh..opq` removes every child of its directory that
   * this layer did not itself write. */
  CRATER_WHITEOUT_DELETE,
} crater_whiteout_mode_t;

/* Which gzip/zstd decoder apply uses (a benchmark knob; AUTO is best). */
typedef enum {
  CRATER_DECODER_AUTO = 0,   /* ISA-L inflate for gzip, libzstd for zstd */
  CRATER_DECODER_LIBARCHIVE, /* libarchive's own filters (zlib, libzstd) */
} crater_decoder_t;

/* Apply flags. */
enum {
  /* Never call openat2: use the O_NOFOLLOW component walk (tests). */
  CRATER_APPLY_NO_OPENAT2 = 1u << 0,
  /* Reject character/block device entries (rootless-style policy). */
  CRATER_APPLY_NO_DEVICES = 1u << 1,
  /* Overlay mode without lowers (a layer applied in isolation, in parallel
   * with its lower layers): list in out->implicit the parent directories
   * the layer created without a directory entry of its own, so that
   * crater_archive_fix_parents can give them the lower directories'
   * metadata once the lowers exist. */
  CRATER_APPLY_RECORD_IMPLICIT = 1u << 2,
};

typedef struct {
  crater_compression_t compression; /* from the media type; checked by magic */
  crater_whiteout_mode_t whiteouts;
  crater_decoder_t decoder;
  uint64_t max_size;            /* uncompressed bytes; 0 = unlimited */
  const char *expected_diff_id; /* "sha256:<hex>" or NULL */
  unsigned flags;               /* CRATER_APPLY_* */
  /* Overlay mode only: the snapshot's lower layers (directory fds, nearest
   * first; borrowed), so apply can do what overlayfs copy-up would: a
   * hardlink to a file of a lower layer copies that file up first, and a
   * parent directory the layer creates implicitly takes the owner, mode,
   * xattrs and times of the lower directory it covers (else the upper's
   * 0755 root directory would hide them through the mount). */
  const int *lower_fds;
  size_t nlowers;
} crater_apply_opts_t;

typedef struct {
  char diff_id[80]; /* "sha256:<hex>" of the uncompressed tar stream */
  uint64_t size;    /* uncompressed bytes read (the whole tar stream) */
  uint64_t entries; /* tar entries processed */
  /* CRATER_APPLY_RECORD_IMPLICIT: implicit parent dirs (relative paths,
   * owned; free with crater_apply_result_clear).  Else NULL/0. */
  char **implicit;
  size_t nimplicit;
} crater_apply_result_t;

/* Frees out->implicit (safe on a zeroed result). */
CRATER_PUBLIC void crater_apply_result_clear(crater_apply_result_t *r);

/* Applies the layer read from layer_fd (read sequentially to EOF; not
 * closed) onto the directory root_dirfd (not closed).  opts may be NULL
 * (uncompressed, overlay whiteouts, no limit).  out may be NULL.
 *
 * Errors (kind): INVALID_ARGUMENT for a hostile or malformed layer (path
 * escapes, compression magic not matching opts->compression), DATA_LOSS for
 * a corrupt stream or a diff ID mismatch, RESOURCE_EXHAUSTED when the
 * uncompressed stream exceeds opts->max_size, PERMISSION_DENIED for device
 * entries under CRATER_APPLY_NO_DEVICES, errno kinds for filesystem
 * failures.  After an error the root holds a partial apply and must be
 * discarded by the caller; nothing outside the root is ever touched.
 * Files are not fsynced (the snapshotter syncs once at commit). */
CRATER_PUBLIC int crater_archive_apply(int root_dirfd, int layer_fd,
                                       const crater_apply_opts_t *opts, crater_apply_result_t *out,
                                       crater_error_t *err);

/* The overlay copy-up fix-up of an isolated apply, run later: each
 * directory paths[i] (relative to root_dirfd, as listed by
 * CRATER_APPLY_RECORD_IMPLICIT) takes the owner, mode, xattrs and times of
 * the directory opts->lower_fds show at that path, exactly as
 * crater_archive_apply with those lowers would have done at its end.  Paths
 * no longer a directory in the root, or without a lower directory, are
 * skipped.  A no-op unless opts is overlay mode with lowers. */
CRATER_PUBLIC int crater_archive_fix_parents(int root_dirfd, const char *const *paths, size_t n,
                                             const crater_apply_opts_t *opts, crater_error_t *err);

/* One layer of crater_archive_apply_many (or of an apply thread fed by a
 * pipe: crater_apply_job_run). */
typedef struct {
  int root_dirfd;            /* borrowed */
  int layer_fd;              /* borrowed; read to EOF */
  crater_apply_opts_t opts;  /* strings and lower_fds borrowed */
  crater_apply_result_t res; /* on success */
  crater_error_t err;        /* on failure (owned by the caller) */
  bool done;
} crater_apply_job_t;

/* Runs one job (job->err set on failure).  When drain is set the layer fd
 * is read to EOF afterwards even if the apply stopped early, so a writer on
 * the other end of a pipe never blocks. */
CRATER_PUBLIC int crater_apply_job_run(crater_apply_job_t *job, bool drain);

/* Applies n independent layers, each into its own root, on up to parallel
 * threads (0 = the number of online CPUs), taking jobs in array order (put
 * the biggest first for the shortest makespan).  Every job gets its own
 * res/err; returns <0 only when no thread could run at all (err set, no job
 * run).  Only for roots that do not depend on each other (overlay upper
 * dirs; not native/btrfs copies of a parent being applied). */
CRATER_PUBLIC int crater_archive_apply_many(crater_apply_job_t *jobs, size_t n, size_t parallel,
                                            crater_error_t *err);

typedef struct {
  crater_compression_t compression;
  /* upper_dirfd is an overlayfs upper dir: 0/0 char devices are whiteouts
   * and trusted.overlay.opaque=y marks opaque directories; lower is then
   * only used for nothing and may be -1. */
  bool upper_is_overlay;
} crater_diff_opts_t;

typedef struct {
  char diff_id[80]; /* "sha256:<hex>" of the uncompressed tar */
  char digest[80];  /* "sha256:<hex>" of the bytes written to out_fd */
  uint64_t size;    /* bytes written to out_fd */
  uint64_t uncompressed_size;
  uint64_t entries; /* tar entries written (whiteouts included) */
} crater_diff_result_t;

/* Writes to out_fd an OCI layer holding the changes from lower_dirfd (-1 =
 * empty lower) to upper_dirfd: additions and modifications as entries,
 * deletions as `.wh.NAME`, opaque directories as `.wh..wh..opq`, entries
 * sorted by path (byte order, parents first), hardlinks preserved within
 * the layer, xattrs (except trusted.overlay.* / user.overlay.*), devices.
 * Two trees are compared by type, mode, uid/gid, size, mtime, link target,
 * rdev and xattrs, and by content when the mtime has no sub-second part.
 * opts may be NULL (uncompressed, two-tree mode).  out may be NULL.
 * Does not close any fd. */
CRATER_PUBLIC int crater_archive_diff(int lower_dirfd, int upper_dirfd, int out_fd,
                                      const crater_diff_opts_t *opts, crater_diff_result_t *out,
                                      crater_error_t *err);

/* Parses "gzip"/"zstd"/"none" (also media types ending in +gzip, +zstd,
 * .tar); returns <0 with INVALID_ARGUMENT otherwise. */
CRATER_PUBLIC int crater_archive_compression_parse(const char *s, crater_compression_t *out,
                                                   crater_error_t *err);

#endif
