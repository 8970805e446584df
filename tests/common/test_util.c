/* common/util.h encoders: crater__base64_encode (the registry client's
 * Basic auth header, which used to call libcrypto's EVP_EncodeBlock) and
 * crater__hex_encode. */
#include "check.h"
#include "common/util.h"

static void
b64(const char *in, size_t n, const char *want)
{
  char out[128];
  CHECK(4 * ((n + 2) / 3) + 1 <= sizeof out);
  crater__base64_encode(in, n, out);
  CHECK_STREQ(out, want);
}

int
main(void)
{
  /* RFC 4648 section 10 */
  b64("", 0, "");
  b64("f", 1, "Zg==");
  b64("fo", 2, "Zm8=");
  b64("foo", 3, "Zm9v");
  b64("foob", 4, "Zm9vYg==");
  b64("fooba", 5, "Zm9vYmE=");
  b64("foobar", 6, "Zm9vYmFy");
  /* every output character, high bits, embedded NUL */
  b64("\x00\x10\x83\x10\x51\x87\x20\x92\x8b\x30\xd3\x8f\x41\x14\x93\x51\x55\x97\x61\x96\x9b\x71"
      "\xd7\x9f\x82\x18\xa3\x92\x59\xa7\xa2\x9a\xab\xb2\xdb\xaf\xc3\x1c\xb3\xd3\x5d\xb7\xe3\x9e"
      "\xbb\xf3\xdf\xbf",
      48, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
  b64("user:p\xc3\xa4ss", 10, "dXNlcjpww6Rzcw==");

  char hex[7];
  crater__hex_encode((const unsigned char *) "\x00\xab\xff", 3, hex);
  CHECK_STREQ(hex, "00abff");

  /* the monotonic clock: never backwards, ms the same clock as ns */
  int64_t a = crater__mono_ns(), ms = crater__mono_ms(), b = crater__mono_ns();
  CHECK(a > 0 && b >= a);
  CHECK(ms >= a / 1000000 && ms <= b / 1000000);
  return 0;
}
