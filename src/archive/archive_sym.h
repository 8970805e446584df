/*
 * libarchive, loaded on first use (dlopen "libarchive.so.13"): crater links
 * no libarchive symbol, so commands that never read or write a tar do not
 * pay for loading it and its dependencies (docs/architecture.md, "Start-up:
 * lazy-loaded libraries").  <archive.h> and <archive_entry.h> are still
 * included, for types and constants only.
 *
 * Call crater__archive_load() before anything else; afterwards call
 * libarchive through the table, member = function name without its
 * "archive_" prefix: crater__archive.read_new() for archive_read_new(),
 * crater__archive.entry_pathname(e) for archive_entry_pathname(e), except
 * archive_errno(), which is crater__archive.errnum() (errno is a macro).
 */
#ifndef CRATER_ARCHIVE_ARCHIVE_SYM_H
#define CRATER_ARCHIVE_ARCHIVE_SYM_H

#include <archive.h>
#include <archive_entry.h>

#include "common/error.h"

/* One pointer per libarchive function crater uses; __typeof__ keeps each
 * signature exactly the one the headers declare.  Filled once by
 * crater__archive_load() and read-only afterwards. */
struct crater__archive_api {
  __typeof__(archive_entry_atime) *entry_atime;
  __typeof__(archive_entry_atime_is_set) *entry_atime_is_set;
  __typeof__(archive_entry_atime_nsec) *entry_atime_nsec;
  __typeof__(archive_entry_filetype) *entry_filetype;
  __typeof__(archive_entry_free) *entry_free;
  __typeof__(archive_entry_gid) *entry_gid;
  __typeof__(archive_entry_hardlink) *entry_hardlink;
  __typeof__(archive_entry_mtime) *entry_mtime;
  __typeof__(archive_entry_mtime_nsec) *entry_mtime_nsec;
  __typeof__(archive_entry_new) *entry_new;
  __typeof__(archive_entry_pathname) *entry_pathname;
  __typeof__(archive_entry_pathname_utf8) *entry_pathname_utf8;
  __typeof__(archive_entry_perm) *entry_perm;
  __typeof__(archive_entry_rdevmajor) *entry_rdevmajor;
  __typeof__(archive_entry_rdevminor) *entry_rdevminor;
  __typeof__(archive_entry_set_filetype) *entry_set_filetype;
  __typeof__(archive_entry_set_gid) *entry_set_gid;
  __typeof__(archive_entry_set_hardlink) *entry_set_hardlink;
  __typeof__(archive_entry_set_mode) *entry_set_mode;
  __typeof__(archive_entry_set_mtime) *entry_set_mtime;
  __typeof__(archive_entry_set_pathname) *entry_set_pathname;
  __typeof__(archive_entry_set_perm) *entry_set_perm;
  __typeof__(archive_entry_set_rdevmajor) *entry_set_rdevmajor;
  __typeof__(archive_entry_set_rdevminor) *entry_set_rdevminor;
  __typeof__(archive_entry_set_size) *entry_set_size;
  __typeof__(archive_entry_set_symlink) *entry_set_symlink;
  __typeof__(archive_entry_set_uid) *entry_set_uid;
  __typeof__(archive_entry_size) *entry_size;
  __typeof__(archive_entry_symlink) *entry_symlink;
  __typeof__(archive_entry_uid) *entry_uid;
  __typeof__(archive_entry_xattr_add_entry) *entry_xattr_add_entry;
  __typeof__(archive_entry_xattr_next) *entry_xattr_next;
  __typeof__(archive_entry_xattr_reset) *entry_xattr_reset;
  __typeof__(archive_errno) *errnum;
  __typeof__(archive_error_string) *error_string;
  __typeof__(archive_read_data) *read_data;
  __typeof__(archive_read_data_block) *read_data_block;
  __typeof__(archive_read_free) *read_free;
  __typeof__(archive_read_new) *read_new;
  __typeof__(archive_read_next_header) *read_next_header;
  __typeof__(archive_read_open) *read_open;
  __typeof__(archive_read_open_filename) *read_open_filename;
  __typeof__(archive_read_support_filter_gzip) *read_support_filter_gzip;
  __typeof__(archive_read_support_filter_none) *read_support_filter_none;
  __typeof__(archive_read_support_filter_zstd) *read_support_filter_zstd;
  __typeof__(archive_read_support_format_raw) *read_support_format_raw;
  __typeof__(archive_read_support_format_tar) *read_support_format_tar;
  __typeof__(archive_set_error) *set_error;
  __typeof__(archive_write_add_filter_none) *write_add_filter_none;
  __typeof__(archive_write_close) *write_close;
  __typeof__(archive_write_data) *write_data;
  __typeof__(archive_write_free) *write_free;
  __typeof__(archive_write_header) *write_header;
  __typeof__(archive_write_new) *write_new;
  __typeof__(archive_write_open) *write_open;
  __typeof__(archive_write_open_fd) *write_open_fd;
  __typeof__(archive_write_set_format_pax) *write_set_format_pax;
};
extern struct crater__archive_api crater__archive;

/* Loads libarchive.so.13 and resolves the table, once per process
 * (pthread_once; safe from any thread).  Returns 0, or <0 with UNAVAILABLE
 * ("libarchive.so.13 not found: apt-get install libarchive13 (...)") when
 * the library or one of its symbols is missing; every later call reports
 * the same error.  err may be NULL.  Code that hands libarchive work to
 * other threads calls it first, in the calling thread. */
int crater__archive_load(crater_error_t *err);

#endif
