/*
 * Scope-bound cleanup with __attribute__((cleanup)), as crun's utils.h.
 * Each helper tolerates NULL / -1, so ownership is handed out by nulling
 * the local:  char *p = steal_pointer(&buf);
 */
#ifndef CRATER_COMMON_CLEANUP_H
#define CRATER_COMMON_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"

static inline void
cleanup_freep(void *p)
{
  void **pp = (void **) p;
  free(*pp);
}

static inline void
cleanup_closep(int *fd)
{
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
}

static inline void
cleanup_fclosep(FILE **f)
{
  if (*f)
    fclose(*f);
}

static inline void
cleanup_closedirp(DIR **d)
{
  if (*d)
    closedir(*d);
}

static inline void
cleanup_errorp(crater_error_t *e)
{
  crater_error_release(e);
}

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(cleanup_fclosep)))
#define cleanup_dir __attribute__((cleanup(cleanup_closedirp)))
#define cleanup_error __attribute__((cleanup(cleanup_errorp)))

static inline void *
crater_steal_ptr(void *pp)
{
  void **p = (void **) pp;
  void *r = *p;
  *p = NULL;
  return r;
}
#define steal_pointer(pp) crater_steal_ptr(pp)

static inline int
steal_fd(int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#endif
