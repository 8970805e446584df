/*
 * A JSON well-formedness check that allocates nothing (json_check.h).
 * Recursive descent over the bytes; every error sets a reason and stops.
 */
#include "common/json_check.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

struct scan {
  const unsigned char *p, *end, *start;
  const char *why;
};

static bool
fail(struct scan *s, const char *why)
{
  if (s->why == NULL)
    s->why = why;
  return false;
}

static void
skip_ws(struct scan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

/* One UTF-8 sequence starting at s->p (a byte >= 0x80): no overlongs, no
 * surrogates, nothing above U+10FFFF. */
static bool
utf8_seq(struct scan *s)
{
  unsigned c = *s->p;
  int n;
  unsigned cp, min;
  if (c >= 0xc2 && c <= 0xdf)
    n = 1, cp = c & 0x1f, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef)
    n = 2, cp = c & 0x0f, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4)
    n = 3, cp = c & 0x07, min = 0x10000;
  else
    return fail(s, "invalid UTF-8");
  if (s->end - s->p <= n)
    return fail(s, "invalid UTF-8");
  for (int i = 1; i <= n; i++) {
    unsigned b = s->p[i];
    if ((b & 0xc0) != 0x80)
      return fail(s, "invalid UTF-8");
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return fail(s, "invalid UTF-8");
  s->p += n + 1;
  return true;
}

static int
hex4(const unsigned char *p)
{
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = p[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return -1;
    v = v * 16 + d;
  }
  return v;
}

/* \uXXXX at s->p (after the backslash and 'u'); pairs surrogates. */
static bool
unicode_escape(struct scan *s)
{
  if (s->end - s->p < 4)
    return fail(s, "invalid escape");
  int v = hex4(s->p);
  if (v < 0)
    return fail(s, "invalid escape");
  s->p += 4;
  if (v == 0)
    return fail(s, "\\u0000 is not allowed");
  if (v >= 0xdc00 && v <= 0xdfff)
    return fail(s, "invalid Unicode escape (lone low surrogate)");
  if (v >= 0xd800 && v <= 0xdbff) {
    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
      return fail(s, "invalid Unicode escape (lone high surrogate)");
    int lo = hex4(s->p + 2);
    if (lo < 0)
      return fail(s, "invalid escape");
    if (lo < 0xdc00 || lo > 0xdfff)
      return fail(s, "invalid Unicode escape (bad surrogate pair)");
    s->p += 6;
  }
  return true;
}

static bool
string(struct scan *s)
{
  s->p++; /* the opening quote */
  while (s->p < s->end) {
    unsigned c = *s->p;
    if (c == '"') {
      s->p++;
      return true;
    }
    if (c < 0x20)
      return fail(s, "control character in string");
    if (c >= 0x80) {
      if (!utf8_seq(s))
        return false;
      continue;
    }
    s->p++;
    if (c != '\\')
      continue;
    if (s->p >= s->end)
      break;
    c = *s->p++;
    if (c == 'u') {
      if (!unicode_escape(s))
        return false;
    } else if (!strchr("\"\\/bfnrt", (int) c) || c == '\0') {
      return fail(s, "invalid escape");
    }
  }
  return fail(s, "unterminated string");
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void
make_c_locale(void)
{
  c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
}

static bool
number(struct scan *s)
{
  const unsigned char *b = s->p;
  bool real = false;
  if (s->p < s->end && *s->p == '-')
    s->p++;
  if (s->p >= s->end || *s->p < '0' || *s->p > '9')
    return fail(s, "invalid number");
  if (*s->p == '0') {
    s->p++;
    if (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      return fail(s, "invalid number (leading zero)");
  } else {
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  if (s->p < s->end && *s->p == '.') {
    real = true;
    s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return fail(s, "invalid number");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    real = true;
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return fail(s, "invalid number");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  /* range, as jansson: integers within int64, reals finite */
  char buf[64];
  size_t n = (size_t) (s->p - b);
  if (!real) {
    bool neg = *b == '-';
    const unsigned char *d = b + neg;
    uint64_t v = 0, lim = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    for (; d < s->p; d++) {
      unsigned digit = (unsigned) (*d - '0');
      if (v > (lim - digit) / 10)
        return fail(s, "integer out of range");
      v = v * 10 + digit;
    }
    return true;
  }
  char *heap = NULL, *t = buf;
  if (n >= sizeof buf) {
    heap = malloc(n + 1);
    if (heap == NULL)
      return fail(s, "out of memory");
    t = heap;
  }
  memcpy(t, b, n);
  t[n] = '\0';
  errno = 0;
  /* the C locale's decimal point whatever the process's locale is */
  pthread_once(&c_locale_once, make_c_locale);
  double d = c_locale ? strtod_l(t, NULL, c_locale) : strtod(t, NULL);
  free(heap);
  if (errno == ERANGE && isinf(d))
    return fail(s, "real number out of range");
  return true;
}

static bool
literal(struct scan *s, const char *word)
{
  size_t n = strlen(word);
  if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return fail(s, "invalid token");
  s->p += n;
  return true;
}

/* After a member of an object or array: 1 after a ',' (another member
 * follows), 0 after the closing bracket, -1 (failed) on anything else. */
static int
next_member(struct scan *s, char close)
{
  skip_ws(s);
  if (s->p < s->end && *s->p == ',') {
    s->p++;
    return 1;
  }
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return 0;
  }
  fail(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
  return -1;
}

static bool
value(struct scan *s, int depth)
{
  if (depth > MAX_DEPTH)
    return fail(s, "nesting too deep");
  skip_ws(s);
  if (s->p >= s->end)
    return fail(s, "unexpected end of text");
  switch (*s->p) {
  case '{':
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
      s->p++;
      return true;
    }
    for (;;) {
      skip_ws(s);
      if (s->p >= s->end || *s->p != '"')
        return fail(s, "expected a string key");
      if (!string(s))
        return false;
      skip_ws(s);
      if (s->p >= s->end || *s->p != ':')
        return fail(s, "expected ':'");
      s->p++;
      if (!value(s, depth + 1))
        return false;
      int more = next_member(s, '}');
      if (more <= 0)
        return more == 0;
    }
  case '[':
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
      s->p++;
      return true;
    }
    for (;;) {
      if (!value(s, depth + 1))
        return false;
      int more = next_member(s, ']');
      if (more <= 0)
        return more == 0;
    }
  case '"':
    return string(s);
  case 't':
    return literal(s, "true");
  case 'f':
    return literal(s, "false");
  case 'n':
    return literal(s, "null");
  default:
    return number(s);
  }
}

bool
crater__json_check(const char *text, size_t len, bool want_object, const char **why, size_t *at)
{
  struct scan s = { (const unsigned char *) text, (const unsigned char *) text + len,
                    (const unsigned char *) text, NULL };
  bool ok = false;
  skip_ws(&s);
  if (want_object && (s.p >= s.end || *s.p != '{'))
    fail(&s, "not a JSON object");
  else if (value(&s, 1)) {
    skip_ws(&s);
    ok = s.p == s.end || fail(&s, "text after the value");
  }
  if (!ok) {
    if (why)
      *why = s.why;
    if (at)
      *at = (size_t) (s.p - s.start);
  }
  return ok;
}
