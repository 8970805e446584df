/*
 * Tiny assertion helpers for the C unit tests (tests/<domain>/test_*.c).
 * Exit 77 means "skipped" (ctest SKIP_RETURN_CODE).
 */
#ifndef CRATER_TESTS_CHECK_H
#define CRATER_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

/* CHECK_OK(call) expects call >= 0 (or non-NULL) with `err` in scope. */
#define CHECK_OK(call)                                                                             \
  do {                                                                                             \
    if ((call) < 0) {                                                                              \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,                         \
              err ? err->msg : "(no error set)");                                                  \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#define CHECK_STREQ(a, b)                                                                          \
  do {                                                                                             \
    const char *_a = (a), *_b = (b);                                                               \
    if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0) {                                         \
      fprintf(stderr, "%s:%d: '%s' != '%s'\n", __FILE__, __LINE__, _a ? _a : "(null)",             \
              _b ? _b : "(null)");                                                                 \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#define SKIP(why)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "SKIP: %s\n", why);                                                            \
    exit(77);                                                                                      \
  } while (0)

/* Makes a fresh temp dir under $CRATER_TEST_TMP (or /tmp); malloc'd. */
static inline char *
test_tmpdir(const char *name)
{
  const char *base = getenv("CRATER_TEST_TMP");
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/%s.XXXXXX", base ? base : "/tmp", name);
  if (base) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
    if (system(cmd) != 0)
      exit(1);
  }
  char *d = mkdtemp(tmpl);
  if (d == NULL) {
    perror("mkdtemp");
    exit(1);
  }
  return strdup(d);
}

/* Removes a dir made by test_tmpdir (read-only parts included) and frees
 * its name. */
static inline void
test_rmtree(char *dir)
{
  char cmd[8300];
  snprintf(cmd, sizeof cmd, "chmod -R u+w '%s' && rm -rf '%s'", dir, dir);
  CHECK(system(cmd) == 0);
  free(dir);
}

#endif
