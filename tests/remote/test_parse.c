/* Unit tests for the pure parts of the registry transport (remote/parse.c):
 * WWW-Authenticate challenges, Retry-After, Content-Range and upload Range,
 * the backoff schedule, redirect origin comparison, URL resolution and the
 * syntax checks on repos, references and digests. */
#include <time.h>

#include "check.h"
#include "remote/curl_sym.h"
#include "remote/remote_internal.h"

static void
test_challenges(void)
{
  crater_error_t err = NULL;
  crater__challenge_t *c = NULL;
  size_t n = 0;

  CHECK_OK(crater__parse_challenges(
      "Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\","
      "scope=\"repository:library/busybox:pull,push\"",
      &c, &n, &err));
  CHECK(n == 1);
  CHECK_STREQ(c[0].scheme, "bearer");
  CHECK_STREQ(crater__challenge_param(&c[0], "realm"), "https://auth.example.com/token");
  CHECK_STREQ(crater__challenge_param(&c[0], "SERVICE"), "registry.example.com");
  CHECK_STREQ(crater__challenge_param(&c[0], "scope"), "repository:library/busybox:pull,push");
  crater__challenges_free(c, n);

  /* escapes, blanks, unquoted values, a second challenge, an error param */
  CHECK_OK(crater__parse_challenges(
      "  Bearer  realm = \"http://127.0.0.1:8/t?a=1,b=2\" , service=fake,"
      "scope=\"repository:a/b:pull repository:c:pull\",error=\"insufficient_scope\","
      " Basic realm=\"say \\\"hi\\\", ok\"",
      &c, &n, &err));
  CHECK(n == 2);
  CHECK_STREQ(crater__challenge_param(&c[0], "realm"), "http://127.0.0.1:8/t?a=1,b=2");
  CHECK_STREQ(crater__challenge_param(&c[0], "service"), "fake");
  CHECK_STREQ(crater__challenge_param(&c[0], "scope"), "repository:a/b:pull repository:c:pull");
  CHECK_STREQ(crater__challenge_param(&c[0], "error"), "insufficient_scope");
  CHECK_STREQ(c[1].scheme, "basic");
  CHECK_STREQ(crater__challenge_param(&c[1], "realm"), "say \"hi\", ok");
  CHECK(crater__challenge_param(&c[1], "scope") == NULL);
  crater__challenges_free(c, n);

  /* token68 and a bare scheme */
  CHECK_OK(crater__parse_challenges("Negotiate abc123==, Basic", &c, &n, &err));
  CHECK(n == 2);
  CHECK_STREQ(c[0].scheme, "negotiate");
  CHECK_STREQ(c[0].token68, "abc123==");
  CHECK_STREQ(c[1].scheme, "basic");
  CHECK(c[1].n == 0);
  crater__challenges_free(c, n);

  /* malformed: unterminated quote, garbage after a value */
  CHECK(crater__parse_challenges("Bearer realm=\"abc", &c, &n, &err) < 0);
  CHECK(err && err->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&err);
  CHECK(crater__parse_challenges("Bearer realm=\"a\" junk", &c, &n, &err) < 0);
  crater_error_release(&err);

  CHECK_OK(crater__parse_challenges("", &c, &n, &err));
  CHECK(n == 0);
  crater__challenges_free(c, n);
}

static void
test_retry_after(void)
{
  time_t now = 1700000000; /* 2023-11-14T22:13:20Z */
  CHECK(crater__parse_retry_after("3", now) == 3000);
  CHECK(crater__parse_retry_after(" 0 ", now) == 0);
  CHECK(crater__parse_retry_after("Tue, 14 Nov 2023 22:13:25 GMT", now) == 5000);
  CHECK(crater__parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0);
  CHECK(crater__parse_retry_after("soon", now) == -1);
  CHECK(crater__parse_retry_after("-1", now) == -1);
  CHECK(crater__parse_retry_after("3x", now) == -1);
  CHECK(crater__parse_retry_after("", now) == -1);
  CHECK(crater__parse_retry_after(NULL, now) == -1);
}

static void
test_ranges(void)
{
  int64_t a, b, t;
  CHECK(crater__parse_content_range("bytes 100-199/200", &a, &b, &t) == 0);
  CHECK(a == 100 && b == 199 && t == 200);
  CHECK(crater__parse_content_range("bytes 0-0/*", &a, &b, &t) == 0);
  CHECK(a == 0 && b == 0 && t == -1);
  CHECK(crater__parse_content_range("bytes 5-4/10", &a, &b, &t) < 0);
  CHECK(crater__parse_content_range("bytes 5-10/10", &a, &b, &t) < 0);
  CHECK(crater__parse_content_range("bytes */10", &a, &b, &t) < 0);
  CHECK(crater__parse_content_range("items 1-2/3", &a, &b, &t) < 0);
  CHECK(crater__parse_content_range("bytes 1-2/3 x", &a, &b, &t) < 0);
  CHECK(crater__parse_content_range("bytes 99999999999999999999-1/2", &a, &b, &t) < 0);

  CHECK(crater__parse_upload_range("0-1023", &a, &b) == 0 && a == 0 && b == 1023);
  CHECK(crater__parse_upload_range("bytes=0-9", &a, &b) == 0 && b == 9);
  CHECK(crater__parse_upload_range("0-", &a, &b) < 0);
  CHECK(crater__parse_upload_range("9-0", &a, &b) < 0);
}

static void
test_backoff(void)
{
  /* rnd = 0 gives the fixed half: d - d/2 */
  CHECK(crater__backoff_ms(0, 200, 30000, 0) == 100);
  CHECK(crater__backoff_ms(1, 200, 30000, 0) == 200);
  CHECK(crater__backoff_ms(2, 200, 30000, 0) == 400);
  CHECK(crater__backoff_ms(20, 200, 30000, 0) == 15000);
  CHECK(crater__backoff_ms(60, 200, 30000, 0xffffffffu) <= 30000);
  for (uint32_t r = 0; r < 1000; r += 7) {
    long d = crater__backoff_ms(3, 200, 30000, r * 2654435761u);
    CHECK(d >= 800 && d <= 1600);
  }
  /* growth never exceeds the cap */
  long prev = 0;
  for (int i = 0; i < 40; i++) {
    long d = crater__backoff_ms(i, 100, 5000, 0);
    CHECK(d >= prev && d <= 5000);
    prev = d;
  }
}

static void
test_origin(void)
{
  CHECK(crater__same_origin("https://Reg.Example.com/v2/", "https://reg.example.com:443/x"));
  CHECK(crater__same_origin("http://127.0.0.1:5000/v2/a", "http://127.0.0.1:5000/b?c=d"));
  CHECK(!crater__same_origin("http://127.0.0.1:5000/", "http://127.0.0.1:5001/"));
  CHECK(!crater__same_origin("http://127.0.0.1:5000/", "https://127.0.0.1:5000/"));
  CHECK(!crater__same_origin("https://reg.example.com/", "https://cdn.example.com/"));
  CHECK(!crater__same_origin("https://reg.example.com/", "https://reg.example.com.evil.org/"));
  CHECK(!crater__same_origin("https://reg.example.com/", "https://reg.example.com@evil.org/"));
  CHECK(!crater__same_origin("http://localhost:80/", "http://127.0.0.1/"));
  CHECK(crater__same_origin("http://localhost/", "http://localhost:80/"));
  CHECK(!crater__same_origin("https://a/", "not a url"));
  CHECK(!crater__same_origin(NULL, "https://a/"));

  char *u = crater__resolve_url("http://127.0.0.1:5000/v2/a/blobs/uploads/",
                                "/v2/a/blobs/uploads/uuid?_state=x");
  CHECK_STREQ(u, "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=x");
  free(u);
  u = crater__resolve_url("http://127.0.0.1:5000/v2/a/blobs/sha256:ab", "http://other:1/b?x=1");
  CHECK_STREQ(u, "http://other:1/b?x=1");
  free(u);
}

static void
test_syntax(void)
{
  const char *d256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  CHECK(crater__digest_valid(d256));
  CHECK(!crater__digest_valid(
      "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
  CHECK(!crater__digest_valid("sha256:e3b0"));
  CHECK(!crater__digest_valid("md5:d41d8cd98f00b204e9800998ecf8427e"));
  CHECK(!crater__digest_valid("sha256:../../etc/passwd"));
  CHECK(crater__repo_valid("library/busybox"));
  CHECK(crater__repo_valid("a/b-c/d_e/f.g/h__i"));
  CHECK(!crater__repo_valid("Library/busybox"));
  CHECK(!crater__repo_valid("a/../b"));
  CHECK(!crater__repo_valid("a?b"));
  CHECK(!crater__repo_valid("a/"));
  CHECK(!crater__repo_valid("/a"));
  CHECK(!crater__repo_valid(""));
  CHECK(crater__ref_valid("latest"));
  CHECK(crater__ref_valid("v1.2_3-rc"));
  CHECK(crater__ref_valid(d256));
  CHECK(!crater__ref_valid("-x"));
  CHECK(!crater__ref_valid("a/b"));
  CHECK(!crater__ref_valid("a?b"));
}

int
main(void)
{
  /* Retry-After dates and URLs are parsed by libcurl, loaded on demand */
  crater_error_t err = NULL;
  CHECK_OK(crater__curl_load(&err));
  test_challenges();
  test_retry_after();
  test_ranges();
  test_backoff();
  test_origin();
  test_syntax();
  return 0;
}
