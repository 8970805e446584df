/*
 * libzstd, loaded on first use (dlopen "libzstd.so.1"): crater links no
 * libzstd symbol, so commands that never decompress or compress a zstd
 * layer do not pay for loading it at start-up (docs/architecture.md,
 * "Start-up: lazy-loaded libraries").  <zstd.h> is still included, for
 * types and constants only.
 *
 * Call crater__zstd_load() before anything else; afterwards call libzstd
 * through the table, member = function name without its "ZSTD_" prefix:
 * crater__zstd.createDCtx() for ZSTD_createDCtx(), crater__zstd.isError(rc)
 * for ZSTD_isError(rc).
 */
#ifndef CRATER_ARCHIVE_ZSTD_SYM_H
#define CRATER_ARCHIVE_ZSTD_SYM_H

#include <zstd.h>

#include "common/error.h"

/* One pointer per libzstd function crater uses; __typeof__ keeps each
 * signature exactly the one <zstd.h> declares.  Filled once by
 * crater__zstd_load() and read-only afterwards. */
struct crater__zstd_api {
  __typeof__(ZSTD_isError) *isError;
  __typeof__(ZSTD_getErrorName) *getErrorName;
  __typeof__(ZSTD_createDCtx) *createDCtx;
  __typeof__(ZSTD_freeDCtx) *freeDCtx;
  __typeof__(ZSTD_decompressStream) *decompressStream;
  __typeof__(ZSTD_createCCtx) *createCCtx;
  __typeof__(ZSTD_freeCCtx) *freeCCtx;
  __typeof__(ZSTD_compressStream2) *compressStream2;
};
extern struct crater__zstd_api crater__zstd;

/* Loads libzstd.so.1 and resolves the table, once per process
 * (pthread_once; safe from any thread).  Returns 0, or <0 with UNAVAILABLE
 * ("libzstd.so.1 not found: apt-get install libzstd1 (...)") when the
 * library or one of its symbols is missing; every later call reports the
 * same error.  err may be NULL. */
int crater__zstd_load(crater_error_t *err);

#endif
