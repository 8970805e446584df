/* libcurl, libarchive, libcrypto, libzstd and ISA-L are dlopen'ed on first
 * use (common/dl.h, remote/curl_sym.h, archive/archive_sym.h,
 * content/crypto_sym.h, archive/zstd_sym.h, archive/isal_sym.h): crater,
 * crater/core.so and the runtime must not have them as DT_NEEDED (nor the
 * runtime SQLite), this program must not have them mapped until a loader
 * runs, the loaders work (and are idempotent), and a missing library fails
 * with UNAVAILABLE and an install hint -- also through the public entry
 * points, with the real libraries hidden in a private mount namespace. */
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive/archive_internal.h"
#include "archive/archive_sym.h"
#include "archive/isal_sym.h"
#include "archive/zstd_sym.h"
#include "check.h"
#include "common/cleanup.h"
#include "common/dl.h"
#include "content/content.h"
#include "content/crypto_sym.h"
#include "remote/curl_sym.h"
#include "transfer/transfer.h"

#define LAZY_RE "libcurl|libarchive|libcrypto|libssl|libzstd|libisal"

/* True when readelf -d lists a NEEDED entry for one of the lazy libs. */
static int
needs_lazy_lib(const char *path)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "readelf -d '%s' | grep NEEDED | grep -E '" LAZY_RE "'", path);
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
  /* bin/crater is the front end; crater-embedded runs the commands.
   * crater-runtime is exec'd up to three times per container start: no
   * libcrypto (4,000+ BIND_NOW relocations) may creep in there either */
  const char *bins[] = { "bin/crater", "bin/crater-embedded", "crater/core.so",
                         "bin/crater-runtime" };
  for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", build, bins[i]);
    if (access(path, R_OK) != 0) {
      fprintf(stderr, "missing %s (build everything first)\n", path);
      exit(1);
    }
    if (needs_lazy_lib(path)) {
      fprintf(stderr, "%s links one of " LAZY_RE "\n", path);
      exit(1);
    }
  }
  /* this test program links libcrater too (its path: /proc/self/exe in
   * readelf's shell would be readelf, which needs libzstd) */
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = '\0';
  CHECK(!needs_lazy_lib(self));
  /* nor SQLite in the runtime.  The sanitizer tree links it without
   * --as-needed, so only the real one. */
#ifndef __SANITIZE_ADDRESS__
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "readelf -d '%s/bin/crater-runtime' | grep NEEDED | grep libsqlite",
           build);
  if (system(cmd) == 0) {
    fprintf(stderr, "crater-runtime links libsqlite3\n");
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

/* Opens a layer stream over a pipe holding just the magic bytes of its
 * compression (what crater__lstream_open checks before loading the
 * decoder); NULL + err on failure. */
static crater__lstream_t *
open_stream(crater_compression_t comp, crater_error_t *err)
{
  static const unsigned char gz[] = { 0x1f, 0x8b }, zs[] = { 0x28, 0xb5, 0x2f, 0xfd };
  int p[2];
  CHECK(pipe(p) == 0);
  if (comp == CRATER_COMPRESSION_GZIP)
    CHECK(write(p[1], gz, sizeof gz) == (ssize_t) sizeof gz);
  else
    CHECK(write(p[1], zs, sizeof zs) == (ssize_t) sizeof zs);
  close(p[1]);
  crater__lstream_t *s = crater__lstream_open(p[0], comp, CRATER_DECODER_AUTO, 0, err);
  close(p[0]); /* no decoder thread (CRATER_APPLY_NO_PIPELINE): done reading */
  return s;
}

static const char *const all_libs[] = { "libcrypto.so.3", "libzstd.so.1", "libisal.so.2",
                                        "libcurl.so.4", "libarchive.so.13" };

static void
test_loaders(void)
{
  crater_error_t err = NULL;
  for (size_t i = 0; i < sizeof all_libs / sizeof all_libs[0]; i++)
    if (mapped(all_libs[i])) {
      fprintf(stderr, "%s mapped before its loader ran\n", all_libs[i]);
      exit(1);
    }

  /* a short SHA-256 (a chain ID, a ref name) needs no libcrypto */
  char out[CRATER_DIGEST_MAX];
  CHECK_OK(crater_digest_buf(CRATER_DIGEST_SHA256, "abc", 3, out, &err));
  CHECK_STREQ(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(!mapped("libcrypto.so.3"));
  /* libcrypto: loaded by the first digester (libcurl needs it too, so first) */
  crater_digester_t *dg = crater_digester_new(CRATER_DIGEST_SHA256, &err);
  CHECK(dg != NULL);
  crater_digester_free(dg);
  CHECK(mapped("libcrypto.so.3"));
  CHECK_OK(crater__crypto_load(&err));
  CHECK_OK(crater__crypto_load(&err)); /* once, then cached */
  CHECK(!mapped("libzstd.so.1") && !mapped("libisal.so.2"));

  /* ISA-L and libzstd: loaded by the layer stream that needs them */
  crater__lstream_t *s = open_stream(CRATER_COMPRESSION_GZIP, &err);
  CHECK(s != NULL);
  crater__lstream_free(s);
  CHECK(mapped("libisal.so.2"));
  CHECK(!mapped("libzstd.so.1"));
  CHECK_OK(crater__isal_load(&err));
  CHECK_OK(crater__isal_load(&err));
  struct inflate_state *z = malloc(sizeof *z);
  memset(z, 0xff, sizeof *z);
  crater__isal.inflate_init(z);
  CHECK(z->block_state == ISAL_BLOCK_NEW_HDR);
  free(z);

  s = open_stream(CRATER_COMPRESSION_ZSTD, &err);
  CHECK(s != NULL);
  crater__lstream_free(s);
  CHECK(mapped("libzstd.so.1"));
  CHECK_OK(crater__zstd_load(&err));
  CHECK_OK(crater__zstd_load(&err));
  ZSTD_DCtx *dz = crater__zstd.createDCtx();
  CHECK(dz != NULL);
  crater__zstd.freeDCtx(dz);
  CHECK(crater__zstd.isError((size_t) -1) && !crater__zstd.isError(0));
  CHECK(!mapped("libcurl.so.4") && !mapped("libarchive.so.13"));

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

/* err holds UNAVAILABLE whose message contains want; released. */
static void
check_unavailable(crater_error_t *err, const char *want)
{
  CHECK(*err != NULL);
  fprintf(stderr, "expected: %s\n", (*err)->msg);
  CHECK((*err)->kind == CRATER_ERR_UNAVAILABLE);
  CHECK(strstr((*err)->msg, want) != NULL);
  crater_error_release(err);
}

/* Run by test_hidden in a fresh process that cannot load libcrypto,
 * libzstd or ISA-L: every path that needs one fails cleanly. */
static int
run_hidden(void)
{
  crater_error_t err = NULL;
  char out[CRATER_DIGEST_MAX];
  const char *crypto = "libcrypto.so.3 not found: apt-get install libssl3";
  CHECK(crater_digester_new(CRATER_DIGEST_SHA256, &err) == NULL);
  check_unavailable(&err, crypto);
  CHECK(crater_digest_buf(CRATER_DIGEST_SHA512, "x", 1, out, &err) < 0);
  check_unavailable(&err, crypto);
  /* short SHA-256 digests are computed without it */
  CHECK_OK(crater_digest_buf(CRATER_DIGEST_SHA256, "abc", 3, out, &err));
  CHECK_STREQ(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(crater_digest_fd(CRATER_DIGEST_SHA256, 0, out, &err) < 0);
  check_unavailable(&err, crypto);
  CHECK(crater__crypto_load(&err) < 0);
  check_unavailable(&err, crypto);

  /* the content store: a writer cannot hash what it is given; status
   * and abort, which only name the ingest directory, still answer */
  cleanup_free char *dir = test_tmpdir("lazy-hidden");
  crater_content_t *c = crater_content_open(dir, &err);
  CHECK(c != NULL);
  CHECK(crater_content_writer_open(c, "ref-1", NULL, 0, &err) == NULL);
  check_unavailable(&err, crypto);
  crater_ingest_status_t ist;
  CHECK(crater_content_status(c, "ref-1", &ist, &err) < 0);
  CHECK(err != NULL && err->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&err);
  crater_content_close(c);

  /* layer streams hash what they decode: libcrypto first */
  CHECK(open_stream(CRATER_COMPRESSION_GZIP, &err) == NULL);
  check_unavailable(&err, crypto);

  CHECK(crater__zstd_load(&err) < 0);
  check_unavailable(&err, "libzstd.so.1 not found: apt-get install libzstd1");
  CHECK(crater__zstd_load(&err) < 0); /* the same, every time */
  check_unavailable(&err, "libzstd.so.1 not found: apt-get install libzstd1");
  CHECK(crater__isal_load(&err) < 0);
  check_unavailable(&err, "libisal.so.2 not found: apt-get install libisal2");

  /* and crater itself starts without them */
  const char *build = getenv("CRATER_BUILD");
  if (build) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s/bin/crater' --version >/dev/null", build);
    CHECK(system(cmd) == 0);
  }
  return 0;
}

/* The path ld.so would open for soname (already loaded here). */
static void
lib_path(const char *soname, char *out, size_t n)
{
  void *h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
  CHECK(h != NULL);
  struct link_map *lm = NULL;
  CHECK(dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0);
  CHECK(realpath(lm->l_name, out) != NULL && strlen(out) < n);
  dlclose(h);
}

/* Re-runs this program with libcrypto, libzstd and ISA-L replaced by
 * /dev/null (bind mounts in a private mount namespace; needs root). */
static void
test_hidden(char *argv0)
{
  char paths[3][4096];
  lib_path("libcrypto.so.3", paths[0], sizeof paths[0]);
  lib_path("libzstd.so.1", paths[1], sizeof paths[1]);
  lib_path("libisal.so.2", paths[2], sizeof paths[2]);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
      _exit(77);
    for (size_t i = 0; i < 3; i++)
      if (mount("/dev/null", paths[i], NULL, MS_BIND, NULL) < 0) {
        perror(paths[i]);
        _exit(1);
      }
    execl("/proc/self/exe", argv0, "hidden", (char *) NULL);
    _exit(127);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    fprintf(stderr, "note: hidden-library checks skipped (needs root for a mount namespace)\n");
    return;
  }
  CHECK(WEXITSTATUS(status) == 0);
}

int
main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "hidden") == 0)
    return run_hidden();
  setenv("CRATER_APPLY_NO_PIPELINE", "1", 1);
  test_loaders();
  test_missing();
  test_hidden(argv[0]);
  test_no_needed();
  return 0;
}
