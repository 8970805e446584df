#include "archive/archive_sym.h"

#include <pthread.h>
#include <stddef.h>

#include "common/dl.h"

struct crater__archive_api crater__archive;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static crater__dl_state_t load_state;

#define SYM(f)                                                                                     \
  {                                                                                                \
    "archive_" #f, offsetof(struct crater__archive_api, f)                                         \
  }
static const crater__dl_sym_t syms[] = {
  SYM(entry_atime),
  SYM(entry_atime_is_set),
  SYM(entry_atime_nsec),
  SYM(entry_filetype),
  SYM(entry_free),
  SYM(entry_gid),
  SYM(entry_hardlink),
  SYM(entry_mtime),
  SYM(entry_mtime_nsec),
  SYM(entry_new),
  SYM(entry_pathname),
  SYM(entry_pathname_utf8),
  SYM(entry_perm),
  SYM(entry_rdevmajor),
  SYM(entry_rdevminor),
  SYM(entry_set_filetype),
  SYM(entry_set_gid),
  SYM(entry_set_hardlink),
  SYM(entry_set_mode),
  SYM(entry_set_mtime),
  SYM(entry_set_pathname),
  SYM(entry_set_perm),
  SYM(entry_set_rdevmajor),
  SYM(entry_set_rdevminor),
  SYM(entry_set_size),
  SYM(entry_set_symlink),
  SYM(entry_set_uid),
  SYM(entry_size),
  SYM(entry_symlink),
  SYM(entry_uid),
  SYM(entry_xattr_add_entry),
  SYM(entry_xattr_next),
  SYM(entry_xattr_reset),
  { "archive_errno", offsetof(struct crater__archive_api, errnum) },
  SYM(error_string),
  SYM(read_data),
  SYM(read_data_block),
  SYM(read_free),
  SYM(read_new),
  SYM(read_next_header),
  SYM(read_open),
  SYM(read_open_filename),
  SYM(read_support_filter_gzip),
  SYM(read_support_filter_none),
  SYM(read_support_filter_zstd),
  SYM(read_support_format_raw),
  SYM(read_support_format_tar),
  SYM(set_error),
  SYM(write_add_filter_none),
  SYM(write_close),
  SYM(write_data),
  SYM(write_free),
  SYM(write_header),
  SYM(write_new),
  SYM(write_open),
  SYM(write_open_fd),
  SYM(write_set_format_pax),
};
#undef SYM
_Static_assert(sizeof syms / sizeof syms[0] * sizeof(void (*)(void)) ==
                   sizeof(struct crater__archive_api),
               "every crater__archive member has a symbol");

static void
load(void)
{
  crater__dl_load(&load_state, "libarchive.so.13", "libarchive13", syms,
                  sizeof syms / sizeof syms[0], &crater__archive);
}

int
crater__archive_load(crater_error_t *err)
{
  pthread_once(&load_once, load);
  return crater__dl_status(&load_state, err);
}
