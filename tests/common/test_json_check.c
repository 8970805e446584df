/*
 * crater__json_check against jansson (its reference: json_loadb with
 * JSON_DECODE_ANY): the same verdict on hand-picked valid and broken texts,
 * on every JSON file of the repository, and on many random mutations of
 * them (bytes changed, dropped, duplicated, truncated).  Also the object
 * requirement and the reported reason.
 */
#include <dirent.h>
#include <jansson.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "common/json_check.h"

static int compared;

static bool
jansson_ok(const char *s, size_t n, bool want_object)
{
  json_error_t je;
  json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &je);
  bool ok = j != NULL && (!want_object || json_is_object(j));
  json_decref(j);
  return ok;
}

static void
same(const char *s, size_t n)
{
  for (int obj = 0; obj < 2; obj++) {
    bool want = jansson_ok(s, n, obj);
    const char *why = NULL;
    bool got = crater__json_check(s, n, obj, &why, NULL);
    if (got != want) {
      fprintf(stderr, "verdict differs (object=%d): jansson %d, json_check %d (%s) on [%.*s]\n",
              obj, want, got, why ? why : "", (int) (n > 200 ? 200 : n), s);
      exit(1);
    }
    if (!got)
      CHECK(why != NULL);
    compared++;
  }
}

static void
same_str(const char *s)
{
  same(s, strlen(s));
}

static const char *cases[] = {
  "{}",
  "[]",
  "\"\"",
  "0",
  "-0",
  "1",
  "-1",
  "1.5",
  "-1.5e3",
  "1E+2",
  "1e-2",
  "0.0",
  "true",
  "false",
  "null",
  " {\"a\" : [1, 2, {\"b\": null}] } ",
  "{\"a\":1,\"a\":2}",
  "\"\\u00e9\\n\\t\\\"\\\\\\/\"",
  "\"\\ud83d\\ude00\"",
  "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
  "[1,2,3]",
  "[[[[]]]]",
  "9223372036854775807",
  "-9223372036854775808",
  "9223372036854775808",
  "-9223372036854775809",
  "1e308",
  "1e309",
  "-1e309",
  "1e-400",
  "123456789012345678901234567890.5",
  /* broken */
  "",
  " ",
  "{",
  "}",
  "[",
  "]",
  "{\"a\"}",
  "{\"a\":}",
  "{a:1}",
  "{\"a\":1,}",
  "[1,]",
  "[,1]",
  "01",
  "-",
  "+1",
  ".5",
  "1.",
  "1e",
  "1e+",
  "0x10",
  "NaN",
  "Infinity",
  "tru",
  "truee",
  "nul",
  "[true false]",
  "\"abc",
  "\"\\x\"",
  "\"\\u12\"",
  "\"\\u0000\"",
  "\"\\ud800\"",
  "\"\\udc00\"",
  "\"\\ud800\\u0041\"",
  "\"\\ud800x\"",
  "\"a\tb\"",
  "\"\x01\"",
  "\"\xc0\xaf\"",
  "\"\xe0\x80\xaf\"",
  "\"\xed\xa0\x80\"",
  "\"\xf4\x90\x80\x80\"",
  "\"\xff\"",
  "\"\xc3\"",
  "1 2",
  "{} {}",
  "[1] x",
  "\xef\xbb\xbf{}",
  "{\"a\":1}\x00",
  "[\"a\" \"b\"]",
  "{\"a\" 1}",
  "{\"a\":1 \"b\":2}",
  "[-]",
  "[1.e5]",
  "[--1]",
};

/* depth levels of arrays, or of objects {"a":...} around an empty one */
static void
nested(int depth, bool arrays)
{
  size_t n = arrays ? (size_t) depth * 2 : (size_t) (depth - 1) * 6 + 2;
  char *s = malloc(n + 1), *p = s;
  for (int i = 0; i < depth - 1; i++) {
    memcpy(p, arrays ? "[" : "{\"a\":", arrays ? 1 : 5);
    p += arrays ? 1 : 5;
  }
  memcpy(p, arrays ? "[]" : "{}", 2);
  p += 2;
  for (int i = 0; i < depth - 1; i++)
    *p++ = arrays ? ']' : '}';
  *p = '\0';
  same(s, (size_t) (p - s));
  free(s);
}

static char *
slurp(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t) sz + 1);
  *n = fread(b, 1, (size_t) sz, f);
  fclose(f);
  return b;
}

/* Random mutations of a valid text (deterministic seed). */
static void
mutate(const char *s, size_t n, unsigned *seed)
{
  static const char alphabet[] = "{}[]:,\"\\ 0123456789.eE+-tfnul\x01\x7f\xc3\xa9\xff";
  char *b = malloc(n + 8);
  for (int round = 0; round < 60; round++) {
    memcpy(b, s, n);
    size_t m = n;
    size_t at = n ? (size_t) rand_r(seed) % n : 0;
    switch (rand_r(seed) % 4) {
    case 0: /* change a byte */
      if (m)
        b[at] = alphabet[(size_t) rand_r(seed) % (sizeof alphabet - 1)];
      break;
    case 1: /* drop a byte */
      if (m) {
        memmove(b + at, b + at + 1, m - at - 1);
        m--;
      }
      break;
    case 2: /* insert a byte */
      memmove(b + at + 1, b + at, m - at);
      b[at] = alphabet[(size_t) rand_r(seed) % (sizeof alphabet - 1)];
      m++;
      break;
    default: /* truncate */
      m = at;
      break;
    }
    same(b, m);
  }
  free(b);
}

/* Appends a random JSON value (valid, but edgy: escapes, UTF-8, numbers
 * with exponents, empty containers, duplicate keys) to buf. */
static void
gen(char *buf, size_t *n, size_t cap, int depth, unsigned *seed)
{
  static const char *atoms[] = {
    "0",
    "-0",
    "17",
    "-3.25",
    "1e10",
    "2E-3",
    "-9223372036854775808",
    "1.5e+300",
    "true",
    "false",
    "null",
    "\"\"",
    "\"plain\"",
    "\"esc \\n\\t\\\"\\\\\\/\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
    "\"/usr/bin\"",
  };
  if (*n + 64 >= cap)
    return;
  int kind = depth > 6 ? 2 : rand_r(seed) % 4;
  if (kind == 0 || kind == 1) {
    bool obj = kind == 0;
    buf[(*n)++] = obj ? '{' : '[';
    int k = rand_r(seed) % 5;
    for (int i = 0; i < k && *n + 64 < cap; i++) {
      if (i)
        buf[(*n)++] = ',';
      if (rand_r(seed) % 3 == 0)
        buf[(*n)++] = ' ';
      if (obj) {
        int w = snprintf(buf + *n, cap - *n, "\"k%d\":", rand_r(seed) % 3);
        *n += (size_t) w;
      }
      gen(buf, n, cap, depth + 1, seed);
    }
    buf[(*n)++] = obj ? '}' : ']';
  } else {
    const char *a = atoms[(size_t) rand_r(seed) % (sizeof atoms / sizeof atoms[0])];
    size_t l = strlen(a);
    memcpy(buf + *n, a, l);
    *n += l;
  }
}

static void
walk(const char *dir, unsigned *seed, int *files)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "build") == 0 ||
        strncmp(e->d_name, "build-", 6) == 0)
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) < 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      walk(path, seed, files);
    } else if (S_ISREG(st.st_mode) && strlen(e->d_name) > 5 &&
               strcmp(e->d_name + strlen(e->d_name) - 5, ".json") == 0 && st.st_size < 1 << 20) {
      size_t n;
      char *s = slurp(path, &n);
      if (s) {
        same(s, n);
        mutate(s, n, seed);
        (*files)++;
        free(s);
      }
    }
  }
  closedir(d);
}

/* Sets LC_NUMERIC to a locale whose decimal point is ','. */
static bool
comma_locale(void)
{
  if (setlocale(LC_NUMERIC, "de_DE.UTF-8") || setlocale(LC_NUMERIC, "fr_FR.UTF-8"))
    return true;
  char dir[] = "/tmp/crater-locale.XXXXXX";
  if (mkdtemp(dir) == NULL)
    return false;
  char cmd[256];
  snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
  bool ok = system(cmd) == 0 && setenv("LOCPATH", dir, 1) == 0 &&
            setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return ok && strcmp(localeconv()->decimal_point, ",") == 0;
}

int
main(void)
{
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    same_str(cases[i]);
  /* embedded NUL bytes and a string with a NUL escape and raw NUL */
  same("\"a\0b\"", 5);
  same("[1]\0", 4);
  for (int d = 2046; d <= 2050; d++) {
    nested(d, true);
    nested(d, false);
  }

  /* numbers in a locale whose decimal point is a comma (built with
   * localedef when none is installed): the same verdicts */
  if (comma_locale()) {
    const char *nums[] = { "1.5",     "-0.25e3", "[1.5,2.5]", "1.7976931348623157e308",
                           "1.8e308", "1e309" };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
      same_str(nums[i]);
    CHECK(crater__json_check("{\"a\":1.5}", 9, true, NULL, NULL));
    setlocale(LC_NUMERIC, "C");
  } else {
    printf("no de_DE/fr_FR locale: the comma-decimal-point case is not run\n");
  }

  /* the reason and offset of a failure */
  const char *why = NULL;
  size_t at = 0;
  CHECK(!crater__json_check("[1, 2", 5, false, &why, &at));
  CHECK(why != NULL && at == 5);
  CHECK(!crater__json_check("[1]", 3, true, &why, &at));
  CHECK(strcmp(why, "not a JSON object") == 0);
  const char *ok = " {\"k\": [true]}\n";
  CHECK(crater__json_check(ok, strlen(ok), true, NULL, NULL));

  /* every JSON file of the source tree, and mutations of each */
  char root[4096];
  snprintf(root, sizeof root, "%s", __FILE__);
  char *slash = strrchr(root, '/');
  CHECK(slash != NULL);
  snprintf(slash, sizeof root - (size_t) (slash - root), "/../..");
  unsigned seed = 12345;
  int files = 0;
  walk(root, &seed, &files);
  CHECK(files > 0);
  /* random documents and mutations of them */
  static char doc[1 << 16];
  for (int i = 0; i < 2000; i++) {
    size_t n = 0;
    gen(doc, &n, sizeof doc, 0, &seed);
    CHECK(jansson_ok(doc, n, false));
    same(doc, n);
    mutate(doc, n, &seed);
  }
  printf("json_check agrees with jansson on %d verdicts (%d repository files)\n", compared, files);
  return 0;
}
