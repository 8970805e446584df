/*
 * ISA-L (libisal), loaded on first use (dlopen "libisal.so.2"): crater
 * links no ISA-L symbol, so commands that never inflate or deflate a gzip
 * layer do not pay for loading it at start-up (docs/architecture.md,
 * "Start-up: lazy-loaded libraries").  <isa-l/igzip_lib.h> is still
 * included, for the stream structs and constants only.
 *
 * Call crater__isal_load() before anything else; afterwards call ISA-L
 * through the table, member = function name without its "isal_" prefix:
 * crater__isal.inflate(z) for isal_inflate(z).
 */
#ifndef CRATER_ARCHIVE_ISAL_SYM_H
#define CRATER_ARCHIVE_ISAL_SYM_H

#include <isa-l/igzip_lib.h>

#include "common/error.h"

/* One pointer per ISA-L function crater uses; __typeof__ keeps each
 * signature exactly the one <isa-l/igzip_lib.h> declares.  Filled once by
 * crater__isal_load() and read-only afterwards. */
struct crater__isal_api {
  __typeof__(isal_inflate_init) *inflate_init;
  __typeof__(isal_inflate_reset) *inflate_reset;
  __typeof__(isal_inflate) *inflate;
  __typeof__(isal_deflate_init) *deflate_init;
  __typeof__(isal_deflate) *deflate;
};
extern struct crater__isal_api crater__isal;

/* Loads libisal.so.2 and resolves the table, once per process
 * (pthread_once; safe from any thread).  Returns 0, or <0 with UNAVAILABLE
 * ("libisal.so.2 not found: apt-get install libisal2 (...)") when the
 * library or one of its symbols is missing; every later call reports the
 * same error.  err may be NULL. */
int crater__isal_load(crater_error_t *err);

#endif
