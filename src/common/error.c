/*
 * Error values: construction, wrapping and kind names.  See error.h.
 */
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static const char *const kind_names[CRATER_ERR__COUNT] = {
  [CRATER_ERR_UNKNOWN] = "unknown",
  [CRATER_ERR_INVALID_ARGUMENT] = "invalid_argument",
  [CRATER_ERR_NOT_FOUND] = "not_found",
  [CRATER_ERR_ALREADY_EXISTS] = "already_exists",
  [CRATER_ERR_FAILED_PRECONDITION] = "failed_precondition",
  [CRATER_ERR_UNAVAILABLE] = "unavailable",
  [CRATER_ERR_DATA_LOSS] = "data_loss",
  [CRATER_ERR_INTERNAL] = "internal",
  [CRATER_ERR_PERMISSION_DENIED] = "permission_denied",
  [CRATER_ERR_RESOURCE_EXHAUSTED] = "resource_exhausted",
  [CRATER_ERR_ABORTED] = "aborted",
  [CRATER_ERR_CANCELED] = "canceled",
  [CRATER_ERR_DEADLINE_EXCEEDED] = "deadline_exceeded",
  [CRATER_ERR_NOT_IMPLEMENTED] = "not_implemented",
};

const char *
crater_errkind_name(crater_errkind_t kind)
{
  if ((int) kind < 0 || kind >= CRATER_ERR__COUNT)
    return "unknown";
  return kind_names[kind];
}

crater_errkind_t
crater_errkind_from_errno(int status)
{
  switch (status) {
  case 0:
    return CRATER_ERR_UNKNOWN;
  case ENOENT:
  case ESRCH:
    return CRATER_ERR_NOT_FOUND;
  case EEXIST:
    return CRATER_ERR_ALREADY_EXISTS;
  case EINVAL:
  case ENAMETOOLONG:
  case ELOOP:
  case EXDEV:
  case ENOTDIR:
  case EISDIR:
    return CRATER_ERR_INVALID_ARGUMENT;
  case EACCES:
  case EPERM:
  case EROFS:
    return CRATER_ERR_PERMISSION_DENIED;
  case ENOSPC:
  case ENOMEM:
  case EMFILE:
  case ENFILE:
  case EDQUOT:
    return CRATER_ERR_RESOURCE_EXHAUSTED;
  case EBUSY:
  case ENOTEMPTY:
  case EAGAIN:
    return CRATER_ERR_FAILED_PRECONDITION;
  case ETIMEDOUT:
    return CRATER_ERR_DEADLINE_EXCEEDED;
  case ECONNREFUSED:
  case ECONNRESET:
  case EHOSTUNREACH:
  case ENETUNREACH:
    return CRATER_ERR_UNAVAILABLE;
  case ENOSYS:
  case EOPNOTSUPP:
    return CRATER_ERR_NOT_IMPLEMENTED;
  case EINTR:
  case ECANCELED:
    return CRATER_ERR_CANCELED;
  case EIO:
  case EBADMSG:
    return CRATER_ERR_DATA_LOSS;
  default:
    return CRATER_ERR_INTERNAL;
  }
}

static int
error_vmake(crater_error_t *err, crater_errkind_t kind, int status, const char *suffix,
            const char *fmt, va_list ap)
{
  char *msg = xvasprintf(fmt, ap);
  if (suffix) {
    char *full = xasprintf("%s: %s", msg, suffix);
    free(msg);
    msg = full;
  }
  if (err == NULL) {
    free(msg);
    return -1;
  }
  if (*err) /* keep the first error; never leak */
    crater_error_release(err);
  struct crater_error_s *e = xmalloc(sizeof *e);
  e->status = status;
  e->kind = kind;
  e->msg = msg;
  *err = e;
  return -1;
}

int
crater_error_make(crater_error_t *err, crater_errkind_t kind, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int r = error_vmake(err, kind, status, NULL, fmt, ap);
  va_end(ap);
  return r;
}

int
crater_error_sys(crater_error_t *err, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int r = error_vmake(err, crater_errkind_from_errno(status), status, strerror(status), fmt, ap);
  va_end(ap);
  return r;
}

int
crater_error_wrap(crater_error_t *err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  char *ctx = xvasprintf(fmt, ap);
  va_end(ap);
  char *msg = xasprintf("%s: %s", ctx, (*err)->msg);
  free(ctx);
  free((*err)->msg);
  (*err)->msg = msg;
  return -1;
}

void
crater_error_release(crater_error_t *err)
{
  if (err == NULL || *err == NULL)
    return;
  free((*err)->msg);
  free(*err);
  *err = NULL;
}

void
crater_error_move(crater_error_t *dst, crater_error_t *src)
{
  crater_error_release(dst);
  *dst = *src;
  *src = NULL;
}
