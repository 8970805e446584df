/* Unit tests for content/digest.c: strict validation, hashing, paths; the
 * libcrypto-free SHA-256 of short buffers against OpenSSL's. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "content/digest.h"

static const char *H64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void
bad(const char *d)
{
  crater_error_t err = NULL;
  if (crater_digest_validate(d, &err) >= 0) {
    fprintf(stderr, "accepted bad digest '%s'\n", d ? d : "(null)");
    exit(1);
  }
  CHECK(err->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&err);
}

int
main(void)
{
  crater_error_t err = NULL;
  char buf[512];

  snprintf(buf, sizeof buf, "sha256:%s", H64);
  CHECK(crater_digest_validate(buf, &err) == CRATER_DIGEST_SHA256);
  char h128[129];
  for (int i = 0; i < 128; i++)
    h128[i] = "0123456789abcdef"[i % 16];
  h128[128] = 0;
  snprintf(buf, sizeof buf, "sha512:%s", h128);
  CHECK(crater_digest_validate(buf, &err) == CRATER_DIGEST_SHA512);

  /* algorithms */
  bad(NULL);
  bad("");
  bad(H64);
  snprintf(buf, sizeof buf, "md5:%s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "SHA256:%s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha384:%s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha512:%s", H64);
  bad(buf); /* wrong length for alg */
  snprintf(buf, sizeof buf, "sha256:%s", h128);
  bad(buf);
  /* uppercase, length, junk */
  snprintf(buf, sizeof buf, "sha256:%.63sA", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha256:%.63s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha256:%s0", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha256:%.63s ", H64);
  bad(buf);
  snprintf(buf, sizeof buf, " sha256:%s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha256:%s\n", H64);
  bad(buf);
  /* path tricks */
  bad("sha256:../../../../etc/passwd");
  snprintf(buf, sizeof buf, "sha256:../%.61s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha256:/%.63s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha256/../%s", H64);
  bad(buf);
  snprintf(buf, sizeof buf, "sha256::%.63s", H64);
  bad(buf);

  crater_error_t e = NULL;
  CHECK(crater_digest_validate("sha256:xyz", &e) < 0);
  CHECK(strstr(e->msg, "sha256:xyz") != NULL);
  crater_error_release(&e);

  /* blob path: only built from validated digests */
  snprintf(buf, sizeof buf, "sha256:%s", H64);
  char *p = crater_digest_blob_path("/r/content", buf, &err);
  CHECK(p != NULL);
  char want[256];
  snprintf(want, sizeof want, "/r/content/blobs/sha256/%s", H64);
  CHECK_STREQ(p, want);
  free(p);
  CHECK(crater_digest_blob_path("/r/content", "sha256:../x", &e) == NULL);
  crater_error_release(&e);

  /* hashing: empty string and "abc", incremental and "so far" */
  crater_digester_t *d = crater_digester_new(CRATER_DIGEST_SHA256, &err);
  CHECK(d != NULL);
  char out[CRATER_DIGEST_MAX];
  CHECK_OK(crater_digester_digest(d, out, &err));
  snprintf(want, sizeof want, "sha256:%s", H64);
  CHECK_STREQ(out, want);
  CHECK_OK(crater_digester_update(d, "a", 1, &err));
  CHECK_OK(crater_digester_update(d, "bc", 2, &err));
  CHECK_OK(crater_digester_digest(d, out, &err));
  CHECK_STREQ(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_OK(crater_digester_digest(d, out, &err)); /* repeatable */
  CHECK_STREQ(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  crater_digester_free(d);

  d = crater_digester_new(CRATER_DIGEST_SHA512, &err);
  CHECK_OK(crater_digester_update(d, "abc", 3, &err));
  CHECK_OK(crater_digester_digest(d, out, &err));
  CHECK_STREQ(out, "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                   "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  CHECK(crater_digest_validate(out, &err) == CRATER_DIGEST_SHA512);
  crater_digester_free(d);

  int fds[2];
  CHECK(pipe(fds) == 0);
  CHECK(write(fds[1], "abc", 3) == 3);
  close(fds[1]);
  CHECK_OK(crater_digest_fd(CRATER_DIGEST_SHA256, fds[0], out, &err));
  close(fds[0]);
  CHECK_STREQ(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  CHECK(crater_digest_alg_parse("sha512", &err) == CRATER_DIGEST_SHA512);
  CHECK(crater_digest_alg_parse("sha1", &e) < 0);
  crater_error_release(&e);

  /* crater_digest_buf computes SHA-256 of up to 4 KiB itself: the FIPS
   * 180-2 vectors, then every length from 0 to 4200 (both sides of the
   * limit, every padding case) of pseudo-random bytes against OpenSSL's
   * digester */
  CHECK_OK(crater_digest_buf(CRATER_DIGEST_SHA256, "abc", 3, out, &err));
  CHECK_STREQ(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_OK(crater_digest_buf(CRATER_DIGEST_SHA256, "", 0, out, &err));
  snprintf(buf, sizeof buf, "sha256:%s", H64);
  CHECK_STREQ(out, buf);
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK_OK(crater_digest_buf(CRATER_DIGEST_SHA256, two, strlen(two), out, &err));
  CHECK_STREQ(out, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  static unsigned char data[4200];
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < sizeof data; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    data[i] = (unsigned char) x;
  }
  char ref[160];
  for (size_t n = 0; n <= sizeof data; n++) {
    CHECK_OK(crater_digest_buf(CRATER_DIGEST_SHA256, data, n, out, &err));
    crater_digester_t *o = crater_digester_new(CRATER_DIGEST_SHA256, &err);
    CHECK(o != NULL);
    CHECK_OK(crater_digester_update(o, data, n, &err));
    CHECK_OK(crater_digester_digest(o, ref, &err));
    crater_digester_free(o);
    if (strcmp(out, ref) != 0) {
      fprintf(stderr, "sha256 of %zu bytes: %s, OpenSSL %s\n", n, out, ref);
      return 1;
    }
  }
  return 0;
}
