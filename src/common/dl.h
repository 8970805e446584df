/*
 * Lazy loading of shared libraries most commands never need (libcurl,
 * libarchive, libcrypto, libzstd, ISA-L) into a table of function
 * pointers, so that commands which never touch them do not pay their
 * dynamic loading at start-up (docs/architecture.md, "Start-up:
 * lazy-loaded libraries").
 *
 * Each library has its own loader built on these helpers
 * (remote/curl_sym.h, archive/archive_sym.h, content/crypto_sym.h,
 * archive/zstd_sym.h, archive/isal_sym.h); call sites go through the
 * loader's table, never through the library's symbols, so none of them is
 * a DT_NEEDED entry of crater, crater/core.so or the test programs.
 */
#ifndef CRATER_COMMON_DL_H
#define CRATER_COMMON_DL_H

#include <stddef.h>

#include "common/error.h"

/* One symbol to resolve: its name in the library and the offset of the
 * function pointer that receives it in the loader's table. */
typedef struct {
  const char *name;
  size_t offset;
} crater__dl_sym_t;

/* Outcome of a load, kept by the loader for every later caller. */
typedef struct {
  void *handle; /* dlopen handle, never closed; NULL on failure */
  int failed;
  crater_errkind_t kind; /* when failed */
  char msg[384];         /* when failed */
} crater__dl_state_t;

/* Opens soname (RTLD_NOW | RTLD_LOCAL) and stores every symbol of syms[n]
 * into table.  On failure fills st (kind UNAVAILABLE, "<soname> not found:
 * apt-get install <package> (...)" or "<soname>: missing symbol <name>"),
 * leaves table untouched and returns -1; returns 0 otherwise.  Not
 * thread-safe by itself: loaders call it under pthread_once. */
int crater__dl_load(crater__dl_state_t *st, const char *soname, const char *package,
                    const crater__dl_sym_t *syms, size_t n, void *table);

/* Records a failure after a successful dlopen (e.g. a failed library init). */
void crater__dl_fail(crater__dl_state_t *st, crater_errkind_t kind, const char *msg);

/* Returns 0 when st holds a successful load, otherwise stores a copy of the
 * recorded error in *err (err may be NULL) and returns -1. */
int crater__dl_status(const crater__dl_state_t *st, crater_error_t *err);

#endif
