/*
 * Pure parsers and policy arithmetic for the registry transport:
 * WWW-Authenticate challenges, Retry-After, Content-Range and upload Range
 * headers, the retry backoff schedule, redirect origin comparison and the
 * syntax checks applied to everything spliced into a URL.  No I/O here;
 * tests/remote/test_parse.c covers it.  See remote_internal.h.
 */
#include "remote/remote_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/xalloc.h"
#include "remote/curl_sym.h"

/* RFC 9110 tchar */
static bool
is_tchar(int c)
{
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *
skip_ows(const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

static const char *
skip_ows_commas(const char *p)
{
  while (*p == ' ' || *p == '\t' || *p == ',')
    p++;
  return p;
}

static char *
lower_dup(const char *s, size_t n)
{
  char *r = xstrndup(s, n);
  for (char *q = r; *q; q++)
    *q = (char) tolower((unsigned char) *q);
  return r;
}

/* Reads a quoted-string at p (which points at '"'); returns the position
 * after the closing quote and the unescaped value in *out, or NULL. */
static const char *
read_quoted(const char *p, char **out)
{
  size_t cap = strlen(p) + 1, n = 0;
  char *buf = xmalloc(cap);
  p++;
  while (*p && *p != '"') {
    if (*p == '\\') {
      p++;
      if (*p == '\0')
        break;
    }
    buf[n++] = *p++;
  }
  if (*p != '"') {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *out = buf;
  return p + 1;
}

void
crater__challenges_free(crater__challenge_t *c, size_t n)
{
  for (size_t i = 0; c && i < n; i++) {
    free(c[i].scheme);
    free(c[i].token68);
    for (size_t j = 0; j < c[i].n; j++) {
      free(c[i].params[j].key);
      free(c[i].params[j].value);
    }
    free(c[i].params);
  }
  free(c);
}

const char *
crater__challenge_param(const crater__challenge_t *c, const char *key)
{
  for (size_t i = 0; c && i < c->n; i++)
    if (strcasecmp(c->params[i].key, key) == 0)
      return c->params[i].value;
  return NULL;
}

/* Looks ahead from p (at a token): is this "token OWS =" but not a
 * token68 ending in '='?  Then it is an auth-param, not a new scheme. */
static bool
is_param_start(const char *p)
{
  const char *q = p;
  while (is_tchar((unsigned char) *q))
    q++;
  if (q == p)
    return false;
  q = skip_ows(q);
  if (*q != '=')
    return false;
  q = skip_ows(q + 1);
  /* "abc==" or "abc=" followed by end/comma is token68 padding */
  return *q != '=' && *q != ',' && *q != '\0';
}

int
crater__parse_challenges(const char *hdr, crater__challenge_t **out, size_t *n, crater_error_t *err)
{
  crater__challenge_t *list = NULL;
  size_t count = 0;
  const char *p = skip_ows_commas(hdr ? hdr : "");

  while (*p) {
    const char *s = p;
    while (is_tchar((unsigned char) *p))
      p++;
    if (p == s)
      goto bad;
    list = xrealloc(list, (count + 1) * sizeof *list);
    crater__challenge_t *c = &list[count++];
    memset(c, 0, sizeof *c);
    c->scheme = lower_dup(s, (size_t) (p - s));
    p = skip_ows(p);

    /* token68 form: "Negotiate abc==" */
    if (*p && *p != ',' && !is_param_start(p)) {
      const char *t = p;
      while (*p && *p != ',' && *p != ' ' && *p != '\t')
        p++;
      c->token68 = xstrndup(t, (size_t) (p - t));
      p = skip_ows_commas(p);
      continue;
    }
    /* auth-params until the next challenge (a token not followed by '=') */
    for (;;) {
      p = skip_ows_commas(p);
      if (*p == '\0' || !is_param_start(p))
        break;
      const char *k = p;
      while (is_tchar((unsigned char) *p))
        p++;
      char *key = lower_dup(k, (size_t) (p - k));
      p = skip_ows(p);
      p = skip_ows(p + 1); /* '=' */
      char *val = NULL;
      if (*p == '"') {
        p = read_quoted(p, &val);
        if (p == NULL) {
          free(key);
          goto bad;
        }
      } else {
        const char *v = p;
        while (is_tchar((unsigned char) *p) || *p == '/' || *p == ':')
          p++;
        val = xstrndup(v, (size_t) (p - v));
      }
      c->params = xrealloc(c->params, (c->n + 1) * sizeof *c->params);
      c->params[c->n].key = key;
      c->params[c->n].value = val;
      c->n++;
      p = skip_ows(p);
      if (*p && *p != ',') {
        goto bad;
      }
    }
  }
  *out = list;
  *n = count;
  return 0;

bad:
  crater__challenges_free(list, count);
  return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                           "malformed WWW-Authenticate header near offset %zu", (size_t) (p - hdr));
}

int64_t
crater__parse_retry_after(const char *v, time_t now)
{
  if (v == NULL)
    return -1;
  v = skip_ows(v);
  if (*v == '\0')
    return -1;
  if (isdigit((unsigned char) *v)) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    end = (char *) skip_ows(end);
    if (errno || *end != '\0' || s > 86400ULL * 365)
      return -1;
    return (int64_t) s * 1000;
  }
  time_t t = crater__curl.getdate(v, NULL);
  if (t == (time_t) -1)
    return -1;
  return t <= now ? 0 : (int64_t) (t - now) * 1000;
}

static int
parse_i64(const char **pp, int64_t *out)
{
  const char *p = *pp;
  if (!isdigit((unsigned char) *p))
    return -1;
  int64_t v = 0;
  while (isdigit((unsigned char) *p)) {
    if (v > (INT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (*p++ - '0');
  }
  *out = v;
  *pp = p;
  return 0;
}

int
crater__parse_content_range(const char *v, int64_t *start, int64_t *end, int64_t *total)
{
  if (v == NULL)
    return -1;
  const char *p = skip_ows(v);
  if (strncasecmp(p, "bytes", 5) != 0)
    return -1;
  p += 5;
  if (*p != ' ' && *p != '=')
    return -1;
  p = skip_ows(p + 1);
  if (parse_i64(&p, start) < 0 || *p++ != '-' || parse_i64(&p, end) < 0)
    return -1;
  if (*p++ != '/')
    return -1;
  if (*p == '*') {
    *total = -1;
    p++;
  } else if (parse_i64(&p, total) < 0) {
    return -1;
  }
  p = skip_ows(p);
  if (*p != '\0' || *end < *start || (*total >= 0 && *end >= *total))
    return -1;
  return 0;
}

int
crater__parse_upload_range(const char *v, int64_t *start, int64_t *end)
{
  if (v == NULL)
    return -1;
  const char *p = skip_ows(v);
  if (strncasecmp(p, "bytes=", 6) == 0)
    p += 6;
  if (parse_i64(&p, start) < 0 || *p++ != '-' || parse_i64(&p, end) < 0)
    return -1;
  p = skip_ows(p);
  return (*p == '\0' && *end >= *start) ? 0 : -1;
}

long
crater__backoff_ms(int attempt, long base_ms, long max_ms, uint32_t rnd)
{
  if (base_ms <= 0)
    base_ms = 1;
  if (max_ms < base_ms)
    max_ms = base_ms;
  long d = base_ms;
  for (int i = 0; i < attempt && d < max_ms; i++)
    d *= 2;
  if (d > max_ms)
    d = max_ms;
  long half = d / 2;
  return (d - half) + (long) (rnd % (uint32_t) (half + 1));
}

/* Splits an absolute URL into lower-case scheme, host and a numeric port. */
static int
origin_of(const char *url, char **scheme, char **host, long *port)
{
  CURLU *u = crater__curl.url();
  char *s = NULL, *h = NULL, *pt = NULL;
  int r = -1;
  if (crater__curl.url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
    goto out;
  if (crater__curl.url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
      crater__curl.url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
      crater__curl.url_get(u, CURLUPART_PORT, &pt, CURLU_DEFAULT_PORT) != CURLUE_OK)
    goto out;
  *scheme = lower_dup(s, strlen(s));
  *host = lower_dup(h, strlen(h));
  *port = strtol(pt, NULL, 10);
  r = 0;
out:
  crater__curl.free(s);
  crater__curl.free(h);
  crater__curl.free(pt);
  crater__curl.url_cleanup(u);
  return r;
}

bool
crater__same_origin(const char *a, const char *b)
{
  cleanup_free char *sa = NULL, *ha = NULL, *sb = NULL, *hb = NULL;
  long pa = 0, pb = 0;
  if (a == NULL || b == NULL || origin_of(a, &sa, &ha, &pa) < 0 || origin_of(b, &sb, &hb, &pb) < 0)
    return false;
  return strcmp(sa, sb) == 0 && strcmp(ha, hb) == 0 && pa == pb;
}

char *
crater__resolve_url(const char *base, const char *ref)
{
  CURLU *u = crater__curl.url();
  char *s = NULL, *r = NULL;
  if (crater__curl.url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
      crater__curl.url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK &&
      crater__curl.url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
    r = xstrdup(s);
  crater__curl.free(s);
  crater__curl.url_cleanup(u);
  return r;
}

bool
crater__digest_valid(const char *d)
{
  if (d == NULL)
    return false;
  size_t hexlen;
  if (strncmp(d, "sha256:", 7) == 0) {
    d += 7;
    hexlen = 64;
  } else if (strncmp(d, "sha512:", 7) == 0) {
    d += 7;
    hexlen = 128;
  } else {
    return false;
  }
  size_t i = 0;
  for (; d[i]; i++)
    if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
      return false;
  return i == hexlen;
}

bool
crater__repo_valid(const char *repo)
{
  if (repo == NULL || *repo == '\0' || strlen(repo) > 255)
    return false;
  /* path components: [a-z0-9]+ separated by . _ __ -+ ; joined by '/' */
  const char *p = repo;
  while (*p) {
    if (!(islower((unsigned char) *p) || isdigit((unsigned char) *p)))
      return false;
    while (islower((unsigned char) *p) || isdigit((unsigned char) *p))
      p++;
    if (*p == '\0')
      break;
    if (*p == '/') {
      p++;
      continue;
    }
    if (*p == '.' || *p == '-' || *p == '_') {
      while (*p == '.' || *p == '-' || *p == '_')
        p++;
      continue;
    }
    return false;
  }
  return repo[strlen(repo) - 1] != '/' && strstr(repo, "..") == NULL;
}

bool
crater__ref_valid(const char *ref)
{
  if (ref == NULL || *ref == '\0')
    return false;
  if (strchr(ref, ':'))
    return crater__digest_valid(ref);
  /* tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127} */
  size_t n = strlen(ref);
  if (n > 128 || !(isalnum((unsigned char) ref[0]) || ref[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char) ref[i]) || strchr("._-", ref[i])))
      return false;
  return true;
}
