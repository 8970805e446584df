/*
 * Allocation helpers that abort on out-of-memory.  See xalloc.h.
 */
#include "common/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(void)
{
  fputs("crater: out of memory\n", stderr);
  abort();
}

void *
xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    oom();
  return p;
}

void *
xmalloc0(size_t n)
{
  return xcalloc(1, n);
}

void *
xcalloc(size_t nmemb, size_t n)
{
  void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
  if (p == NULL)
    oom();
  return p;
}

void *
xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (q == NULL)
    oom();
  return q;
}

char *
xstrdup(const char *s)
{
  if (s == NULL)
    return NULL;
  char *d = strdup(s);
  if (d == NULL)
    oom();
  return d;
}

char *
xstrndup(const char *s, size_t n)
{
  if (s == NULL)
    return NULL;
  char *d = strndup(s, n);
  if (d == NULL)
    oom();
  return d;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    oom();
  return s;
}

char *
xasprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = xvasprintf(fmt, ap);
  va_end(ap);
  return s;
}
