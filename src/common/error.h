/*
 * Error values for the whole C core.
 *
 * Every fallible function takes a trailing `crater_error_t *err` and returns
 * an int (< 0 on failure) or a pointer (NULL on failure).  On failure *err
 * holds an allocated error {status, kind, msg}; on success *err is left
 * untouched.  Callers add context while the error travels up with
 * crater_error_wrap(), giving chains such as
 *   "pull x: unpack sha256:ab..: mkdir /a: Permission denied".
 * Branch on the kind, never on the text.  See docs/design/errors.md.
 */
#ifndef CRATER_COMMON_ERROR_H
#define CRATER_COMMON_ERROR_H

#include <stdarg.h>

#ifndef CRATER_PUBLIC
#define CRATER_PUBLIC __attribute__((visibility("default")))
#endif

#define CRATER_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Error kinds, mirroring containerd's errdefs. */
typedef enum {
  CRATER_ERR_UNKNOWN = 0,
  CRATER_ERR_INVALID_ARGUMENT,
  CRATER_ERR_NOT_FOUND,
  CRATER_ERR_ALREADY_EXISTS,
  CRATER_ERR_FAILED_PRECONDITION,
  CRATER_ERR_UNAVAILABLE,
  CRATER_ERR_DATA_LOSS,
  CRATER_ERR_INTERNAL,
  CRATER_ERR_PERMISSION_DENIED,
  CRATER_ERR_RESOURCE_EXHAUSTED,
  CRATER_ERR_ABORTED,
  CRATER_ERR_CANCELED,
  CRATER_ERR_DEADLINE_EXCEEDED,
  CRATER_ERR_NOT_IMPLEMENTED,
  CRATER_ERR__COUNT
} crater_errkind_t;

struct crater_error_s {
  int status; /* errno-style value, 0 when not from a syscall */
  crater_errkind_t kind;
  char *msg; /* owned */
};
typedef struct crater_error_s *crater_error_t;

/* Stores a new error in *err (which must be NULL) and returns -1. */
CRATER_PUBLIC int crater_error_make(crater_error_t *err, crater_errkind_t kind, int status,
                                    const char *fmt, ...) CRATER_PRINTF(4, 5);

/* Like crater_error_make for a failed syscall: the message gets
 * ": strerror(status)" appended and the kind is derived from status. */
CRATER_PUBLIC int crater_error_sys(crater_error_t *err, int status, const char *fmt, ...)
    CRATER_PRINTF(3, 4);

/* Prefixes "<context>: " to the message of *err and returns -1. */
CRATER_PUBLIC int crater_error_wrap(crater_error_t *err, const char *fmt, ...) CRATER_PRINTF(2, 3);

/* Frees *err (NULL tolerated) and sets it to NULL. */
CRATER_PUBLIC void crater_error_release(crater_error_t *err);

/* Moves *src into *dst (which must be NULL). */
CRATER_PUBLIC void crater_error_move(crater_error_t *dst, crater_error_t *src);

/* Lower-case snake name of a kind ("not_found"); never NULL. */
CRATER_PUBLIC const char *crater_errkind_name(crater_errkind_t kind);

/* Maps an errno value to the closest kind. */
CRATER_PUBLIC crater_errkind_t crater_errkind_from_errno(int status);

#endif
