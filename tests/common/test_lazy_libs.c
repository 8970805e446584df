/* libcurl and libarchive are dlopen'ed on first use (common/dl.h,
 * remote/curl_sym.h, archive/archive_sym.h): crater, crater/core.so and the
 * runtime must not have them as DT_NEEDED (nor the runtime libcrypto or
 * SQLite), this program must not have them
 * mapped until a loader runs, the loaders work (and are idempotent), and a
 * missing library fails with UNAVAILABLE and an install hint. */
#include <dlfcn.h>
#include <stddef.h>
#include <unistd.h>

#include "archive/archive_sym.h"
#include "check.h"
#include "common/dl.h"
#include "remote/curl_sym.h"
#include "transfer/transfer.h"

/* True when readelf -d lists a libcurl or libarchive NEEDED entry. */
static int
needs_lazy_lib(const char *path)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "readelf -d '%s' | grep NEEDED | grep -E 'libcurl|libarchive'", path);
  return system(cmd) == 0;
}

static void
test_no_needed(void)
{
  const char *build = getenv("CRATER_BUILD");
  if (build == NULL)
    SKIP("CRATER_BUILD not set");
  if (system("readelf --version >/dev/null 2>&1") != 0)
    SKIP("readelf not installed (binutils)");
  const char *bins[] = { "bin/crater", "crater/core.so", "bin/crater-runtime" };
  for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", build, bins[i]);
    if (access(path, R_OK) != 0) {
      fprintf(stderr, "missing %s (build everything first)\n", path);
      exit(1);
    }
    if (needs_lazy_lib(path)) {
      fprintf(stderr, "%s links libcurl or libarchive\n", path);
      exit(1);
    }
  }
  /* this test program links libcrater too */
  CHECK(!needs_lazy_lib("/proc/self/exe"));
  /* crater-runtime is exec'd up to three times per container start: no
   * libcrypto (4,000+ BIND_NOW relocations) nor SQLite may creep in.  The
   * sanitizer tree links it without --as-needed, so only the real one. */
#ifndef __SANITIZE_ADDRESS__
  char cmd[4300];
  snprintf(
      cmd, sizeof cmd,
      "readelf -d '%s/bin/crater-runtime' | grep NEEDED | grep -E 'libcrypto|libssl|libsqlite'",
      build);
  if (system(cmd) == 0) {
    fprintf(stderr, "crater-runtime links libcrypto, libssl or libsqlite3\n");
    exit(1);
  }
#endif
}

static int
mapped(const char *soname)
{
  void *h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
  if (h)
    dlclose(h);
  return h != NULL;
}

static void
test_loaders(void)
{
  crater_error_t err = NULL;
  CHECK(!mapped("libcurl.so.4"));
  CHECK(!mapped("libarchive.so.13"));

  CHECK_OK(crater__curl_load(&err));
  CHECK_OK(crater__curl_load(&err)); /* once, then cached */
  CHECK(mapped("libcurl.so.4"));
  CHECK(!mapped("libarchive.so.13"));
  CHECK(crater__curl.easy_strerror(CURLE_OK) != NULL);
  CURL *e = crater__curl.easy_init();
  CHECK(e != NULL);
  CHECK(crater__curl_setopt(e, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK);
  CHECK(crater__curl_setopt(e, CURLOPT_TIMEOUT_MS, 1L) == CURLE_OK);
  long code = -1;
  CHECK(crater__curl_getinfo(e, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK);
  CHECK(code == 0);
  crater__curl.easy_cleanup(e);

  /* a public entry point loads libarchive by itself */
  crater_tar_writer_t *w = crater_tar_writer_new(-1, &err);
  crater_error_release(&err);
  crater_tar_writer_free(w);
  CHECK(mapped("libarchive.so.13"));
  CHECK_OK(crater__archive_load(&err));
  struct archive_entry *ae = crater__archive.entry_new();
  CHECK(ae != NULL);
  crater__archive.entry_set_pathname(ae, "a/b");
  CHECK_STREQ(crater__archive.entry_pathname(ae), "a/b");
  crater__archive.entry_free(ae);
}

struct two_fns {
  int (*a)(void);
  int (*b)(void);
};

static void
test_missing(void)
{
  crater_error_t err = NULL;
  crater__dl_state_t st = { 0 };
  struct two_fns t = { 0 };
  const crater__dl_sym_t syms[] = { { "curl_easy_init", offsetof(struct two_fns, a) } };
  CHECK(crater__dl_load(&st, "libcrater-no-such-lib.so.7", "no-such-package", syms, 1, &t) < 0);
  CHECK(crater__dl_status(&st, &err) < 0);
  CHECK(err->kind == CRATER_ERR_UNAVAILABLE);
  fprintf(stderr, "expected: %s\n", err->msg);
  CHECK(strncmp(err->msg, "libcrater-no-such-lib.so.7 not found: apt-get install no-such-package",
                strlen("libcrater-no-such-lib.so.7 not found: apt-get install no-such-package")) ==
        0);
  crater_error_release(&err);
  CHECK(crater__dl_status(&st, NULL) < 0);

  /* a missing symbol fails the whole load and leaves the table alone */
  crater__dl_state_t st2 = { 0 };
  const crater__dl_sym_t syms2[] = { { "curl_easy_init", offsetof(struct two_fns, a) },
                                     { "curl_no_such_function", offsetof(struct two_fns, b) } };
  CHECK(crater__dl_load(&st2, "libcurl.so.4", "libcurl4", syms2, 2, &t) < 0);
  CHECK(t.a == NULL && t.b == NULL);
  CHECK(crater__dl_status(&st2, &err) < 0);
  CHECK(err->kind == CRATER_ERR_UNAVAILABLE);
  CHECK(strstr(err->msg, "curl_no_such_function") != NULL);
  crater_error_release(&err);
}

int
main(void)
{
  test_loaders();
  test_missing();
  test_no_needed();
  return 0;
}
