/*
 * Helpers for the archive unit tests: build layers with mktar.py (python3
 * tarfile, which writes hostile names verbatim), apply them, compare trees
 * with treecmp.py.  Header-only so the CMake test glob needs no changes.
 */
#ifndef CRATER_TESTS_ARCHIVE_TEST_H
#define CRATER_TESTS_ARCHIVE_TEST_H

#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "archive/archive.h"
#include "common/cleanup.h"
#include "check.h"

static char test_srcdir[4096];
static char *test_root; /* per-test temp dir */

static inline void
test_init(const char *name)
{
  if (geteuid() != 0)
    SKIP("needs root (chown, mknod, trusted.* xattrs)");
  if (system("python3 -c 'import tarfile' 2>/dev/null") != 0)
    SKIP("needs python3");
  char f[4096];
  snprintf(f, sizeof f, "%s", __FILE__);
  snprintf(test_srcdir, sizeof test_srcdir, "%s", dirname(f));
  test_root = test_tmpdir(name);
}

static inline int
sh(const char *fmt, ...)
{
  char cmd[16384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* Path under the test's temp dir (static buffer rotation). */
static inline const char *
tp(const char *fmt, ...)
{
  static char bufs[8][4096];
  static int k;
  char rel[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rel, sizeof rel, fmt, ap);
  va_end(ap);
  char *b = bufs[k++ & 7];
  snprintf(b, 4096, "%s/%s", test_root, rel);
  return b;
}

/* Writes layer `out` from the line spec (see mktar.py). comp: gzip, none,
 * zstd (tar compressed here with libzstd). */
static inline void
mktar(const char *out, const char *comp, const char *spec)
{
  char specf[4200];
  snprintf(specf, sizeof specf, "%s.spec", out);
  FILE *f = fopen(specf, "w");
  CHECK(f != NULL);
  fputs(spec, f);
  fclose(f);
  bool zstd = strcmp(comp, "zstd") == 0;
  CHECK(sh("python3 %s/mktar.py '%s%s' %s < '%s'", test_srcdir, out, zstd ? ".raw" : "",
           zstd ? "none" : comp, specf) == 0);
  if (zstd) {
    char raw[4200];
    snprintf(raw, sizeof raw, "%s.raw", out);
    FILE *in = fopen(raw, "rb");
    CHECK(in != NULL);
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    rewind(in);
    char *src = malloc((size_t) n);
    CHECK(fread(src, 1, (size_t) n, in) == (size_t) n);
    fclose(in);
    size_t cap = ZSTD_compressBound((size_t) n);
    char *dst = malloc(cap);
    size_t z = ZSTD_compress(dst, cap, src, (size_t) n, 3);
    CHECK(!ZSTD_isError(z));
    FILE *o = fopen(out, "wb");
    CHECK(o && fwrite(dst, 1, z, o) == z);
    fclose(o);
    free(src);
    free(dst);
  }
}

/* Applies layer file onto dir (created if missing). */
static inline int
apply_path(const char *dir, const char *layer, const crater_apply_opts_t *o,
           crater_apply_result_t *res, crater_error_t *err)
{
  mkdir(dir, 0755);
  int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(root >= 0);
  int lfd = open(layer, O_RDONLY | O_CLOEXEC);
  CHECK(lfd >= 0);
  int rc = crater_archive_apply(root, lfd, o, res, err);
  close(root);
  close(lfd);
  return rc;
}

/* Compares two trees with treecmp.py (extra: e.g. "--mtime"). */
static inline int
treecmp(const char *a, const char *b, const char *extra)
{
  return sh("python3 %s/treecmp.py cmp '%s' '%s' %s", test_srcdir, a, b, extra ? extra : "");
}

static inline void
write_text(const char *path, const char *s)
{
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fputs(s, f);
  fclose(f);
}

static inline int
read_text(const char *path, char *buf, size_t n)
{
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t k = fread(buf, 1, n - 1, f);
  buf[k] = '\0';
  fclose(f);
  return (int) k;
}

static inline void
test_done(void)
{
  if (getenv("CRATER_TEST_KEEP") == NULL)
    sh("rm -rf '%s'", test_root);
}

#endif
