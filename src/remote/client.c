/*
 * The registry client and its request engine.
 *
 * Every HTTP exchange is a crater__xfer_t driven through the client's curl
 * multi handle by crater__xfer_run_all().  The loop owns all policy that is
 * the same for every operation:
 *  - auth: on 401 the WWW-Authenticate challenge is handled at the top of
 *    the loop (never inside a curl callback): Basic -> the caller's
 *    credentials; Bearer -> a token from the realm (with Basic credentials
 *    when we have them), cached per scope until expires_in; then the
 *    request is repeated once;
 *  - redirects are followed here, not by curl, so the Authorization header
 *    is attached per attempt and only when the target has the registry's
 *    origin (scheme, host, port);
 *  - retries with exponential backoff and jitter on 5xx, 429 (Retry-After
 *    honoured, capped) and broken connections/timeouts; a blob download that
 *    made progress resumes with Range from its sink's offset and does not
 *    use up its retries.
 * Operations (ops.c) fill in an xfer and run it.  See remote.h and
 * docs/design/remote.md.
 */
#define CRATER_REMOTE_ENGINE 1
#include "remote/remote_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "content/digest.h"
#include "remote/remote.h"

#define ERRBODY_MAX (64 * 1024)
#define TOKEN_BODY_MAX (1 << 20)
#define MAX_REDIRECTS 10
#define MAX_RESUMES 1000
#define REPORT_EVERY_NS (100 * 1000000LL)
#define HEARTBEAT_NS (500 * 1000000LL)

typedef struct {
  char *scope;
  char *token;
  int64_t expires_ns; /* monotonic */
} token_t;

typedef enum { AUTH_NONE, AUTH_BASIC, AUTH_BEARER } auth_mode_t;

struct crater_remote_s {
  char *host;
  char *base; /* "https://host" */
  bool plain_http;
  char *ca_file, *cert_file, *key_file;
  bool insecure;
  char *username, *password;
  long connect_timeout_ms, low_speed_limit, low_speed_time;
  int retries;
  long backoff_base_ms, backoff_max_ms;
  char *user_agent;

  CURLM *multi;
  CURLSH *share;
  CURL *token_easy;

  auth_mode_t auth_mode;
  token_t *tokens;
  size_t ntokens;
  crater_remote_stats_t stats;
  uint32_t rng;
};

static uint32_t
rng_next(crater_remote_t *c)
{
  uint32_t x = c->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  c->rng = x ? x : 0x9e3779b9u;
  return c->rng;
}

static void
wipe_free(char *s)
{
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

const char *
crater__remote_base(const crater_remote_t *c)
{
  return c->base;
}

const char *
crater__remote_host(const crater_remote_t *c)
{
  return c->host;
}

const char *
crater__short_digest(const char *d, char buf[32])
{
  const char *colon = d ? strchr(d, ':') : NULL;
  if (colon == NULL || strlen(colon + 1) <= 12)
    return d ? d : "(null)";
  snprintf(buf, 32, "%.*s%.12s..", (int) (colon + 1 - d), d, colon + 1);
  return buf;
}

char *
crater__digest_of(const char *alg, const void *buf, size_t n, crater_error_t *err)
{
  crater_digest_alg_t a = strcmp(alg, "sha512") == 0 ? CRATER_DIGEST_SHA512 : CRATER_DIGEST_SHA256;
  char out[CRATER_DIGEST_MAX];
  if (crater_digest_buf(a, buf, n, out, err) < 0)
    return NULL;
  return xstrdup(out);
}

crater_remote_t *
crater_remote_new(const crater_remote_options_t *o, crater_error_t *err)
{
  /* the only way in to the engine: every other entry point takes a client */
  if (crater__curl_load(err) < 0)
    return NULL;
  if (o == NULL || o->host == NULL || *o->host == '\0' || strpbrk(o->host, "/?#@ \t\r\n") != NULL) {
    /* never echo a host with '@': it may carry user:password */
    if (o && o->host && strchr(o->host, '@'))
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                        "remote: host must be \"name[:port]\" without credentials "
                        "(pass username and password instead)");
    else
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                        "remote: host must be \"name[:port]\", got \"%s\"",
                        o && o->host ? o->host : "");
    return NULL;
  }
  if ((o->cert_file == NULL) != (o->key_file == NULL)) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                      "remote %s: cert_file and key_file go together", o->host);
    return NULL;
  }
  if ((o->username == NULL) != (o->password == NULL)) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                      "remote %s: username and password go together", o->host);
    return NULL;
  }
  /* TLS files are checked by curl at connect time, with its message */
  crater_remote_t *c = xmalloc0(sizeof *c);
  c->host = xstrdup(o->host);
  c->plain_http = o->plain_http;
  c->base = xasprintf("%s://%s", o->plain_http ? "http" : "https", o->host);
  c->ca_file = xstrdup(o->ca_file);
  c->cert_file = xstrdup(o->cert_file);
  c->key_file = xstrdup(o->key_file);
  c->insecure = o->insecure_skip_verify;
  c->username = xstrdup(o->username);
  c->password = xstrdup(o->password);
  c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
  c->low_speed_limit = o->low_speed_limit > 0 ? o->low_speed_limit : 1;
  c->low_speed_time = o->low_speed_time > 0 ? o->low_speed_time : 30;
  c->retries = o->retries == 0 ? 4 : (o->retries < 0 ? 0 : o->retries);
  c->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : 200;
  c->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
  c->user_agent = o->user_agent ? xstrdup(o->user_agent) : xstrdup("crater/" CRATER_VERSION);
  c->rng = (uint32_t) (crater__mono_ns() ^ ((int64_t) getpid() << 16)) | 1u;

  c->multi = crater__curl.multi_init();
  c->share = crater__curl.share_init();
  c->token_easy = crater__curl.easy_init();
  if (c->multi == NULL || c->share == NULL || c->token_easy == NULL) {
    crater_remote_free(c);
    crater_error_make(err, CRATER_ERR_INTERNAL, 0, "remote %s: curl init failed", o->host);
    return NULL;
  }
  crater__curl.share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  crater__curl.share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  return c;
}

void
crater_remote_free(crater_remote_t *c)
{
  if (c == NULL)
    return;
  if (c->token_easy)
    crater__curl.easy_cleanup(c->token_easy);
  if (c->multi)
    crater__curl.multi_cleanup(c->multi);
  if (c->share)
    crater__curl.share_cleanup(c->share);
  for (size_t i = 0; i < c->ntokens; i++) {
    free(c->tokens[i].scope);
    wipe_free(c->tokens[i].token);
  }
  free(c->tokens);
  wipe_free(c->username);
  wipe_free(c->password);
  free(c->host);
  free(c->base);
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  free(c->user_agent);
  free(c);
}

void
crater_remote_stats(const crater_remote_t *c, crater_remote_stats_t *out)
{
  *out = c->stats;
}

void
crater_remote_descriptor_clear(crater_remote_descriptor_t *d)
{
  if (d == NULL)
    return;
  free(d->media_type);
  free(d->digest);
  d->media_type = d->digest = NULL;
  d->size = 0;
}

/* ---- common curl setup -------------------------------------------------- */

static void
setup_common(crater_remote_t *c, CURL *e)
{
  crater__curl_setopt(e, CURLOPT_NOSIGNAL, 1L);
  crater__curl_setopt(e, CURLOPT_USERAGENT, c->user_agent);
  crater__curl_setopt(e, CURLOPT_SHARE, c->share);
  crater__curl_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  crater__curl_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  crater__curl_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
  crater__curl_setopt(e, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
  crater__curl_setopt(e, CURLOPT_LOW_SPEED_TIME, c->low_speed_time);
  crater__curl_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  crater__curl_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
  crater__curl_setopt(e, CURLOPT_NETRC, (long) CURL_NETRC_IGNORED);
  if (c->ca_file)
    crater__curl_setopt(e, CURLOPT_CAINFO, c->ca_file);
  if (c->cert_file) {
    crater__curl_setopt(e, CURLOPT_SSLCERT, c->cert_file);
    crater__curl_setopt(e, CURLOPT_SSLKEY, c->key_file);
  }
  if (c->insecure) {
    crater__curl_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    crater__curl_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

static char *
basic_header(const crater_remote_t *c)
{
  cleanup_free char *raw = xasprintf("%s:%s", c->username, c->password);
  size_t n = strlen(raw);
  char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
  crater__base64_encode(raw, n, b64);
  explicit_bzero(raw, n);
  char *h = xasprintf("Authorization: Basic %s", b64);
  explicit_bzero(b64, strlen(b64));
  free(b64);
  return h;
}

static const token_t *
token_lookup(crater_remote_t *c, const char *scope)
{
  int64_t now = crater__mono_ns();
  for (size_t i = 0; i < c->ntokens; i++)
    if (strcmp(c->tokens[i].scope, scope) == 0 && c->tokens[i].expires_ns > now)
      return &c->tokens[i];
  return NULL;
}

static void
token_store(crater_remote_t *c, const char *scope, const char *token, int64_t expires_ns)
{
  for (size_t i = 0; i < c->ntokens; i++) {
    if (strcmp(c->tokens[i].scope, scope) == 0) {
      wipe_free(c->tokens[i].token);
      c->tokens[i].token = xstrdup(token);
      c->tokens[i].expires_ns = expires_ns;
      return;
    }
  }
  c->tokens = xrealloc(c->tokens, (c->ntokens + 1) * sizeof *c->tokens);
  c->tokens[c->ntokens].scope = xstrdup(scope);
  c->tokens[c->ntokens].token = xstrdup(token);
  c->tokens[c->ntokens].expires_ns = expires_ns;
  c->ntokens++;
}

/* The Authorization header line for a request to url, or NULL.  *sent
 * gets a copy of the bearer token used (for answer_challenge). */
static char *
auth_header_for(crater_remote_t *c, const char *url, const char *scope, char **sent)
{
  if (!crater__same_origin(url, c->base))
    return NULL;
  if (c->auth_mode == AUTH_BASIC && c->username)
    return basic_header(c);
  if (c->auth_mode == AUTH_BEARER) {
    const token_t *t = token_lookup(c, scope ? scope : "");
    if (t) {
      *sent = xstrdup(t->token);
      return xasprintf("Authorization: Bearer %s", t->token);
    }
  }
  return NULL;
}

/* ---- xfer lifecycle ----------------------------------------------------- */

void
crater__xfer_init(crater__xfer_t *x, crater_remote_t *c, const char *method, const char *url,
                  const char *scope, const char *what_fmt, ...)
{
  memset(x, 0, sizeof *x);
  x->c = c;
  x->method = method;
  x->url = xstrdup(url);
  x->scope = xstrdup(scope ? scope : "");
  x->body_fd = -1;
  x->expected = -1;
  va_list ap;
  va_start(ap, what_fmt);
  x->what = xvasprintf(what_fmt, ap);
  va_end(ap);
}

static void
reset_attempt(crater__xfer_t *x)
{
  x->status = 0;
  x->body_started = x->err_body = x->restart_zero = false;
  x->got = 0;
  free(x->h_ctype);
  free(x->h_digest);
  free(x->h_location);
  free(x->h_wwwauth);
  free(x->h_retry_after);
  free(x->h_crange);
  free(x->h_range);
  x->h_ctype = x->h_digest = x->h_location = x->h_wwwauth = NULL;
  x->h_retry_after = x->h_crange = x->h_range = NULL;
  free(x->errbody);
  x->errbody = NULL;
  x->errlen = x->errcap = 0;
  x->mem_len = 0;
  x->body_pos = 0;
  crater_error_release(&x->cb_err);
}

void
crater__xfer_clear(crater__xfer_t *x)
{
  if (x == NULL)
    return;
  if (x->easy) {
    crater__curl.multi_remove_handle(x->c->multi, x->easy);
    crater__curl.easy_cleanup(x->easy);
    x->easy = NULL;
  }
  crater__curl.slist_free_all(x->hdrs);
  x->hdrs = NULL;
  reset_attempt(x);
  free(x->url);
  free(x->what);
  free(x->scope);
  free(x->extra_header);
  free(x->mem);
  wipe_free(x->sent_bearer);
  x->sent_bearer = NULL;
  crater_error_release(&x->err);
  x->url = x->what = x->scope = x->extra_header = x->mem = NULL;
}

/* ---- curl callbacks (no Lua, no longjmp: record and return) ------------- */

static char *
header_value(const char *line, size_t n, const char *name)
{
  size_t k = strlen(name);
  if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
    return NULL;
  const char *v = line + k + 1;
  const char *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  return xstrndup(v, (size_t) (end - v));
}

static void
set_hdr(char **slot, char *v)
{
  if (v) {
    free(*slot);
    *slot = v;
  }
}

static size_t
on_header(char *buf, size_t size, size_t nitems, void *ud)
{
  crater__xfer_t *x = ud;
  size_t n = size * nitems;
  if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
    /* a new response (e.g. after 100 Continue): forget earlier headers */
    free(x->h_ctype);
    free(x->h_digest);
    free(x->h_location);
    free(x->h_wwwauth);
    free(x->h_retry_after);
    free(x->h_crange);
    free(x->h_range);
    x->h_ctype = x->h_digest = x->h_location = x->h_wwwauth = NULL;
    x->h_retry_after = x->h_crange = x->h_range = NULL;
    const char *sp = memchr(buf, ' ', n);
    x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    return n;
  }
  set_hdr(&x->h_ctype, header_value(buf, n, "Content-Type"));
  set_hdr(&x->h_digest, header_value(buf, n, "Docker-Content-Digest"));
  set_hdr(&x->h_location, header_value(buf, n, "Location"));
  set_hdr(&x->h_retry_after, header_value(buf, n, "Retry-After"));
  set_hdr(&x->h_crange, header_value(buf, n, "Content-Range"));
  set_hdr(&x->h_range, header_value(buf, n, "Range"));
  char *wa = header_value(buf, n, "WWW-Authenticate");
  if (wa) {
    if (x->h_wwwauth) { /* several headers: join as one list */
      char *j = xasprintf("%s, %s", x->h_wwwauth, wa);
      free(wa);
      wa = j;
    }
    set_hdr(&x->h_wwwauth, wa);
  }
  return n;
}

static void
mem_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
  if (*len + n + 1 > *cap) {
    size_t nc = *cap ? *cap : 4096;
    while (nc < *len + n + 1)
      nc *= 2;
    *buf = xrealloc(*buf, nc);
    *cap = nc;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
}

/* First body bytes of a 2xx answer: decide what the stream means for the
 * sink (resume accepted, Range ignored, wrong size). Returns <0 to abort. */
static int
body_begin(crater__xfer_t *x)
{
  crater_remote_sink_t *s = x->sink;
  curl_off_t clen = -1;
  crater__curl_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
  if (s == NULL) {
    if (x->to_mem && clen > 0 && (uint64_t) clen > x->mem_max)
      return crater_error_make(&x->cb_err, CRATER_ERR_RESOURCE_EXHAUSTED, 0,
                               "%s: response of %" PRId64 " bytes exceeds the limit of %zu",
                               x->what, (int64_t) clen, x->mem_max);
    return 0;
  }
  if (x->start_off > 0) {
    if (x->status == 206) {
      int64_t a, b, total;
      if (crater__parse_content_range(x->h_crange, &a, &b, &total) < 0 || a != x->start_off ||
          (x->expected >= 0 && total >= 0 && total != x->expected)) {
        /* not the piece we asked for: start over from 0 */
        x->restart_zero = true;
        return crater_error_make(&x->cb_err, CRATER_ERR_UNAVAILABLE, 0,
                                 "%s: unusable Content-Range \"%s\" for offset %" PRId64, x->what,
                                 x->h_crange ? x->h_crange : "", x->start_off);
      }
    } else {
      /* the server ignored Range and sends everything: truncate the sink */
      crater_debug("remote: %s: Range ignored (HTTP %ld), restarting from 0", x->what, x->status);
      if (s->reset(s->ud, &x->cb_err) < 0)
        return crater_error_wrap(&x->cb_err, "%s: reset sink", x->what);
      x->start_off = 0;
    }
  }
  if (x->expected >= 0 && clen >= 0 && x->start_off + clen != x->expected)
    return crater_error_make(&x->cb_err, CRATER_ERR_DATA_LOSS, 0,
                             "%s: size mismatch: registry sends %" PRId64
                             " bytes, descriptor says %" PRId64,
                             x->what, (int64_t) (x->start_off + clen), x->expected);
  return 0;
}

static size_t
on_write(char *buf, size_t size, size_t nmemb, void *ud)
{
  crater__xfer_t *x = ud;
  size_t n = size * nmemb;
  if (!x->body_started) {
    x->body_started = true;
    x->err_body = x->status < 200 || x->status >= 300;
    if (!x->err_body && body_begin(x) < 0)
      return 0;
  }
  if (x->err_body) {
    if (x->errlen < ERRBODY_MAX) {
      size_t take = n < ERRBODY_MAX - x->errlen ? n : ERRBODY_MAX - x->errlen;
      mem_append(&x->errbody, &x->errlen, &x->errcap, buf, take);
    }
    return n;
  }
  if (x->sink) {
    if (x->expected >= 0 && x->start_off + x->got + (int64_t) n > x->expected) {
      crater_error_make(&x->cb_err, CRATER_ERR_DATA_LOSS, 0,
                        "%s: size mismatch: more than the %" PRId64 " bytes of the descriptor",
                        x->what, x->expected);
      return 0;
    }
    if (x->sink->write(x->sink->ud, buf, n, &x->cb_err) < 0) {
      crater_error_wrap(&x->cb_err, "%s", x->what);
      return 0;
    }
    x->got += (int64_t) n;
    return n;
  }
  if (x->to_mem) {
    if (x->mem_len + n > x->mem_max) {
      crater_error_make(&x->cb_err, CRATER_ERR_RESOURCE_EXHAUSTED, 0,
                        "%s: response exceeds the limit of %zu bytes", x->what, x->mem_max);
      return 0;
    }
    mem_append(&x->mem, &x->mem_len, &x->mem_cap, buf, n);
  }
  x->got += (int64_t) n;
  return n;
}

static size_t
on_read(char *buf, size_t size, size_t nitems, void *ud)
{
  crater__xfer_t *x = ud;
  size_t want = size * nitems;
  int64_t left = x->body_len - x->body_pos;
  if (left <= 0)
    return 0;
  if ((int64_t) want > left)
    want = (size_t) left;
  if (x->body_mem) {
    memcpy(buf, x->body_mem + x->body_pos, want);
  } else {
    ssize_t r;
    do
      r = pread(x->body_fd, buf, want, (off_t) (x->body_off + x->body_pos));
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
      if (r == 0)
        crater_error_make(&x->cb_err, CRATER_ERR_DATA_LOSS, 0,
                          "%s: source ended at %" PRId64 " of %" PRId64 " bytes", x->what,
                          x->body_off + x->body_pos, x->body_off + x->body_len);
      else
        crater_error_sys(&x->cb_err, errno, "%s: read source", x->what);
      return CURL_READFUNC_ABORT;
    }
    want = (size_t) r;
  }
  x->body_pos += (int64_t) want;
  return want;
}

static int
on_seek(void *ud, curl_off_t off, int origin)
{
  crater__xfer_t *x = ud;
  if (origin != SEEK_SET || off < 0 || off > x->body_len)
    return CURL_SEEKFUNC_CANTSEEK;
  x->body_pos = off;
  return CURL_SEEKFUNC_OK;
}

/* ---- one attempt --------------------------------------------------------- */

static void
add_header(crater__xfer_t *x, const char *line)
{
  x->hdrs = crater__curl.slist_append(x->hdrs, line);
}

static int
start_attempt(crater__xfer_t *x)
{
  crater_remote_t *c = x->c;
  reset_attempt(x);
  if (x->easy == NULL)
    x->easy = crater__curl.easy_init();
  else
    crater__curl.easy_reset(x->easy);
  if (x->easy == NULL)
    abort();
  crater__curl.slist_free_all(x->hdrs);
  x->hdrs = NULL;

  CURL *e = x->easy;
  setup_common(c, e);
  x->curl_errbuf[0] = '\0';
  crater__curl_setopt(e, CURLOPT_ERRORBUFFER, x->curl_errbuf);
  crater__curl_setopt(e, CURLOPT_URL, x->url);
  crater__curl_setopt(e, CURLOPT_PRIVATE, x);
  crater__curl_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  crater__curl_setopt(e, CURLOPT_HEADERDATA, x);
  crater__curl_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  crater__curl_setopt(e, CURLOPT_WRITEDATA, x);

  if (strcmp(x->method, "HEAD") == 0) {
    crater__curl_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(x->method, "POST") == 0) {
    crater__curl_setopt(e, CURLOPT_POST, 1L);
    if (x->has_body) {
      crater__curl_setopt(e, CURLOPT_READFUNCTION, on_read);
      crater__curl_setopt(e, CURLOPT_READDATA, x);
      crater__curl_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) x->body_len);
    } else {
      crater__curl_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
      crater__curl_setopt(e, CURLOPT_COPYPOSTFIELDS, "");
    }
  } else if (strcmp(x->method, "PUT") == 0 || strcmp(x->method, "PATCH") == 0) {
    crater__curl_setopt(e, CURLOPT_UPLOAD, 1L);
    if (strcmp(x->method, "PATCH") == 0)
      crater__curl_setopt(e, CURLOPT_CUSTOMREQUEST, "PATCH");
    crater__curl_setopt(e, CURLOPT_READFUNCTION, on_read);
    crater__curl_setopt(e, CURLOPT_READDATA, x);
    crater__curl_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    crater__curl_setopt(e, CURLOPT_SEEKDATA, x);
    crater__curl_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) (x->has_body ? x->body_len : 0));
  } else if (strcmp(x->method, "GET") != 0) {
    crater__curl_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
  }

  add_header(x, "Expect:");
  if (x->accept) {
    cleanup_free char *h = xasprintf("Accept: %s", x->accept);
    add_header(x, h);
  }
  if (x->content_type) {
    cleanup_free char *h = xasprintf("Content-Type: %s", x->content_type);
    add_header(x, h);
  }
  if (x->extra_header)
    add_header(x, x->extra_header);

  x->start_off = 0;
  if (x->sink) {
    /* big reads: fewer write(2) calls into the ingest file */
    crater__curl_setopt(e, CURLOPT_BUFFERSIZE, 512L * 1024);
    int64_t off = x->sink->offset(x->sink->ud);
    if (off < 0 || (x->expected >= 0 && off > x->expected)) {
      if (x->sink->reset(x->sink->ud, &x->cb_err) < 0)
        return crater_error_wrap(&x->cb_err, "%s: reset sink", x->what);
      off = 0;
    }
    x->start_off = off;
    if (off > 0) {
      char h[64];
      snprintf(h, sizeof h, "Range: bytes=%" PRId64 "-", off);
      add_header(x, h);
    }
  }

  wipe_free(x->sent_bearer);
  x->sent_bearer = NULL;
  char *auth = auth_header_for(c, x->url, x->scope, &x->sent_bearer);
  if (auth) {
    add_header(x, auth);
    explicit_bzero(auth, strlen(auth));
    free(auth);
  }
  crater__curl_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
  c->stats.requests++;
  crater_debug("remote: %s %s (attempt %d)", x->method, x->url, x->attempt + 1);
  return 0;
}

/* ---- outcomes ------------------------------------------------------------ */

static crater_errkind_t
kind_of_status(long st)
{
  switch (st) {
  case 400:
  case 411:
  case 413:
  case 414:
  case 415:
  case 422:
    return CRATER_ERR_INVALID_ARGUMENT;
  case 401:
  case 403:
    return CRATER_ERR_PERMISSION_DENIED;
  case 404:
    return CRATER_ERR_NOT_FOUND;
  case 405:
  case 501:
    return CRATER_ERR_NOT_IMPLEMENTED;
  case 409:
  case 412:
  case 416:
    return CRATER_ERR_FAILED_PRECONDITION;
  case 408:
  case 429:
    return CRATER_ERR_UNAVAILABLE;
  default:
    return st >= 500 ? CRATER_ERR_UNAVAILABLE : CRATER_ERR_UNKNOWN;
  }
}

/* "HTTP 404: blob unknown to registry" from the status and the registry's
 * JSON error body when there is one. */
static char *
http_error_text(crater__xfer_t *x)
{
  if (x->errbody && x->errlen) {
    json_t *j = json_loadb(x->errbody, x->errlen, 0, NULL);
    json_t *errs = j ? json_object_get(j, "errors") : NULL;
    json_t *e0 = json_is_array(errs) ? json_array_get(errs, 0) : NULL;
    const char *m = e0 ? json_string_value(json_object_get(e0, "message")) : NULL;
    const char *code = e0 ? json_string_value(json_object_get(e0, "code")) : NULL;
    char *r = NULL;
    if (m && *m)
      r = xasprintf("HTTP %ld: %s", x->status, m);
    else if (code)
      r = xasprintf("HTTP %ld: %s", x->status, code);
    json_decref(j);
    if (r)
      return r;
  }
  const char *reason = NULL;
  switch (x->status) {
  case 400:
    reason = "bad request";
    break;
  case 401:
    reason = "unauthorized";
    break;
  case 403:
    reason = "forbidden";
    break;
  case 404:
    reason = "not found";
    break;
  case 405:
    reason = "method not allowed";
    break;
  case 416:
    reason = "range not satisfiable";
    break;
  case 429:
    reason = "too many requests";
    break;
  case 500:
    reason = "internal server error";
    break;
  case 502:
    reason = "bad gateway";
    break;
  case 503:
    reason = "service unavailable";
    break;
  case 504:
    reason = "gateway timeout";
    break;
  }
  return reason ? xasprintf("HTTP %ld: %s", x->status, reason) : xasprintf("HTTP %ld", x->status);
}

static bool
transient_curl(CURLcode rc)
{
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_COULDNT_RESOLVE_HOST:
    return true;
  default:
    return false;
  }
}

static void
fail(crater__xfer_t *x, crater_errkind_t kind, const char *detail)
{
  crater_error_release(&x->err);
  crater_error_make(&x->err, kind, 0, "%s: %s", x->what, detail);
  x->state = XF_DONE;
}

/* Schedules another attempt, or fails when the retries are used up.
 * progress: the failed attempt moved a resumable download forward. */
static void
retry_or_fail(crater__xfer_t *x, crater_errkind_t kind, const char *detail, bool progress)
{
  crater_remote_t *c = x->c;
  if (progress && x->sink && x->resumes < MAX_RESUMES) {
    /* the download advanced: resume right away without using a retry */
    x->resumes++;
    c->stats.resumes++;
    x->attempt = 0;
    x->not_before_ns = 0;
    x->state = XF_PENDING;
    crater_debug("remote: %s: %s; resuming", x->what, detail);
    return;
  }
  if (x->attempt >= c->retries) {
    cleanup_free char *d = c->retries > 0
                               ? xasprintf("%s (after %d attempts)", detail, x->attempt + 1)
                               : xstrdup(detail);
    fail(x, kind, d);
    return;
  }
  int64_t delay = -1;
  if (x->h_retry_after)
    delay = crater__parse_retry_after(x->h_retry_after, time(NULL));
  if (delay < 0)
    delay = crater__backoff_ms(x->attempt, c->backoff_base_ms, c->backoff_max_ms, rng_next(c));
  if (delay > c->backoff_max_ms)
    delay = c->backoff_max_ms;
  x->attempt++;
  c->stats.retries++;
  x->not_before_ns = crater__mono_ns() + delay * 1000000LL;
  x->state = XF_PENDING;
  crater_debug("remote: %s: %s; retry %d in %" PRId64 " ms", x->what, detail, x->attempt, delay);
}

static void
finish(crater__xfer_t *x, CURLcode rc)
{
  crater_remote_t *c = x->c;
  crater__curl.multi_remove_handle(c->multi, x->easy);
  if (x->status == 0)
    crater__curl_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
  crater_debug("remote: %s %s -> %ld (%s)", x->method, x->url, x->status,
               crater__curl.easy_strerror(rc));

  if (x->cb_err) {
    if (x->restart_zero && x->sink) {
      crater_error_t e = NULL;
      if (x->sink->reset(x->sink->ud, &e) < 0) {
        crater_error_move(&x->err, &e);
        x->state = XF_DONE;
        return;
      }
      retry_or_fail(x, x->cb_err->kind, x->cb_err->msg + strlen(x->what) + 2, false);
      return;
    }
    crater_error_move(&x->err, &x->cb_err);
    x->state = XF_DONE;
    return;
  }
  if (rc != CURLE_OK) {
    /* curl's generic text ("Failure when receiving data from the peer")
     * plus its error buffer, which names the TLS problem (e.g. the
     * server's "certificate required" alert) */
    char detail[2 * CURL_ERROR_SIZE];
    if (x->curl_errbuf[0] != '\0')
      snprintf(detail, sizeof detail, "%s: %s", crater__curl.easy_strerror(rc), x->curl_errbuf);
    else
      snprintf(detail, sizeof detail, "%s", crater__curl.easy_strerror(rc));
    /* A TLS alert from the server (a missing or rejected client
     * certificate, an unknown CA, no common protocol version) is its
     * answer, not a network hiccup: no retries.  OpenSSL names it in the
     * error buffer ("... alert bad certificate"). */
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
        rc == CURLE_SSL_CERTPROBLEM || strstr(x->curl_errbuf, " alert ") != NULL) {
      fail(x, CRATER_ERR_PERMISSION_DENIED, detail);
      return;
    }
    if (transient_curl(rc)) {
      bool progress = x->sink && x->got > 0 && x->status >= 200 && x->status < 300;
      retry_or_fail(
          x, rc == CURLE_OPERATION_TIMEDOUT ? CRATER_ERR_DEADLINE_EXCEEDED : CRATER_ERR_UNAVAILABLE,
          detail, progress);
      return;
    }
    fail(x, CRATER_ERR_UNAVAILABLE, detail);
    return;
  }

  long st = x->status;
  if (st >= 200 && st < 300) {
    if (x->sink && x->expected >= 0 && strcmp(x->method, "HEAD") != 0 &&
        x->start_off + x->got != x->expected) {
      char d[160];
      snprintf(d, sizeof d, "size mismatch: received %" PRId64 " bytes, descriptor says %" PRId64,
               x->start_off + x->got, x->expected);
      fail(x, CRATER_ERR_DATA_LOSS, d);
      return;
    }
    x->state = XF_DONE;
    return;
  }
  if ((st == 301 || st == 302 || st == 303 || st == 307 || st == 308) && x->h_location) {
    if (++x->redirects > MAX_REDIRECTS) {
      fail(x, CRATER_ERR_UNAVAILABLE, "too many redirects");
      return;
    }
    char *next = crater__resolve_url(x->url, x->h_location);
    if (next == NULL || (strncmp(next, "http://", 7) != 0 && strncmp(next, "https://", 8) != 0)) {
      free(next);
      fail(x, CRATER_ERR_UNAVAILABLE, "redirect to an invalid location");
      return;
    }
    crater_debug("remote: %s: redirected (%ld) to %s", x->what, st, next);
    free(x->url);
    x->url = next;
    if (st == 303 || ((st == 301 || st == 302) && strcmp(x->method, "POST") == 0)) {
      x->method = "GET";
      x->has_body = false;
    }
    x->not_before_ns = 0;
    x->state = XF_PENDING;
    return;
  }
  cleanup_free char *text = http_error_text(x);
  if (st == 401) {
    if (!x->auth_retried && x->h_wwwauth) {
      x->auth_retried = true;
      x->state = XF_WAIT_AUTH;
      return;
    }
    cleanup_free char *d =
        xasprintf("%s (%s)", text,
                  c->username ? "credentials rejected"
                              : "authentication required, no credentials for this host");
    fail(x, CRATER_ERR_PERMISSION_DENIED, d);
    return;
  }
  if (st == 416 && x->sink && x->start_off > 0 && !x->restart_zero) {
    /* the held bytes do not fit the blob (unknown size): start over */
    crater_error_t e = NULL;
    if (x->sink->reset(x->sink->ud, &e) < 0) {
      crater_error_move(&x->err, &e);
      x->state = XF_DONE;
      return;
    }
    x->restart_zero = true;
    retry_or_fail(x, CRATER_ERR_FAILED_PRECONDITION, text, false);
    return;
  }
  if (st == 429 || (st >= 500 && st != 501 && st != 505)) {
    retry_or_fail(x, CRATER_ERR_UNAVAILABLE, text, false);
    return;
  }
  fail(x, kind_of_status(st), text);
}

/* ---- bearer tokens -------------------------------------------------------- */

typedef struct {
  char *buf;
  size_t len, cap;
  bool over;
} membuf_t;

static size_t
token_write(char *p, size_t size, size_t nmemb, void *ud)
{
  membuf_t *m = ud;
  size_t n = size * nmemb;
  if (m->len + n > TOKEN_BODY_MAX) {
    m->over = true;
    return 0;
  }
  mem_append(&m->buf, &m->len, &m->cap, p, n);
  return n;
}

/* Appends each space-separated word of src to the list in *dst unless present. */
static void
scope_union(char **dst, const char *src)
{
  cleanup_free char *copy = xstrdup(src ? src : "");
  char *save = NULL;
  for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
    bool have = false;
    cleanup_free char *d2 = xstrdup(*dst);
    char *s2 = NULL;
    for (char *v = strtok_r(d2, " ", &s2); v; v = strtok_r(NULL, " ", &s2))
      if (strcmp(v, w) == 0)
        have = true;
    if (!have) {
      char *n = **dst ? xasprintf("%s %s", *dst, w) : xstrdup(w);
      free(*dst);
      *dst = n;
    }
  }
}

/* Fetches a token from realm for scopes (space-separated) and caches it
 * under each key in keys[]. Blocking; runs from the top of the loop. */
static int
fetch_token(crater_remote_t *c, const char *realm, const char *service, const char *scopes,
            const char *const *keys, size_t nkeys, crater_error_t *err)
{
  if (strncmp(realm, "https://", 8) != 0 && strncmp(realm, "http://", 7) != 0)
    return crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                             "fetch token: realm \"%s\" is not an http(s) URL", realm);
  if (c->username && !c->plain_http && strncmp(realm, "http://", 7) == 0)
    return crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                             "fetch token: realm %s is plain http while the registry uses "
                             "https; refusing to send credentials there",
                             realm);
  CURL *e = c->token_easy;
  cleanup_free char *url = xstrdup(realm);
  char sep = strchr(url, '?') ? '&' : '?';
  if (service && *service) {
    char *esc = crater__curl.easy_escape(e, service, 0);
    char *n = xasprintf("%s%cservice=%s", url, sep, esc);
    crater__curl.free(esc);
    free(url);
    url = n;
    sep = '&';
  }
  cleanup_free char *copy = xstrdup(scopes);
  char *save = NULL;
  for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
    char *esc = crater__curl.easy_escape(e, w, 0);
    char *n = xasprintf("%s%cscope=%s", url, sep, esc);
    crater__curl.free(esc);
    free(url);
    url = n;
    sep = '&';
  }

  long st = 0;
  membuf_t body = { 0 };
  CURLcode rc = CURLE_OK;
  for (int attempt = 0;; attempt++) {
    crater__curl.easy_reset(e);
    setup_common(c, e);
    crater__curl_setopt(e, CURLOPT_URL, url);
    crater__curl_setopt(e, CURLOPT_WRITEFUNCTION, token_write);
    crater__curl_setopt(e, CURLOPT_WRITEDATA, &body);
    struct curl_slist *h = NULL;
    char *auth = c->username ? basic_header(c) : NULL;
    if (auth) {
      h = crater__curl.slist_append(h, auth);
      explicit_bzero(auth, strlen(auth));
      free(auth);
    }
    crater__curl_setopt(e, CURLOPT_HTTPHEADER, h);
    free(body.buf);
    memset(&body, 0, sizeof body);
    c->stats.token_requests++;
    rc = crater__curl.easy_perform(e);
    crater__curl.slist_free_all(h);
    st = 0;
    crater__curl_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    bool again = (rc != CURLE_OK && transient_curl(rc)) || st == 429 || (st >= 500 && st != 501);
    if (!again || attempt >= c->retries)
      break;
    long ms = crater__backoff_ms(attempt, c->backoff_base_ms, c->backoff_max_ms, rng_next(c));
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
  }
  /* realm URLs carry no secrets; the query has only service and scope */
  if (rc != CURLE_OK) {
    free(body.buf);
    return crater_error_make(err, CRATER_ERR_UNAVAILABLE, 0, "fetch token from %s: %s", realm,
                             body.over ? "response too large" : crater__curl.easy_strerror(rc));
  }
  if (st != 200) {
    free(body.buf);
    return crater_error_make(
        err, st == 401 || st == 403 ? CRATER_ERR_PERMISSION_DENIED : kind_of_status(st), 0,
        "fetch token from %s: HTTP %ld%s", realm, st,
        st == 401 || st == 403
            ? (c->username ? " (credentials rejected)" : " (no credentials for this host)")
            : "");
  }
  json_t *j = json_loadb(body.buf ? body.buf : "", body.len, 0, NULL);
  if (body.buf)
    explicit_bzero(body.buf, body.len);
  free(body.buf);
  const char *tok = j ? json_string_value(json_object_get(j, "token")) : NULL;
  if (tok == NULL || *tok == '\0')
    tok = j ? json_string_value(json_object_get(j, "access_token")) : NULL;
  if (tok == NULL || *tok == '\0') {
    json_decref(j);
    return crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                             "fetch token from %s: answer has no token", realm);
  }
  json_t *ei = json_object_get(j, "expires_in");
  int64_t secs = json_is_integer(ei) ? (int64_t) json_integer_value(ei) : 60;
  if (secs < 60)
    secs = 60; /* the distribution spec's minimum */
  /* renew a little early so a token never expires on the wire */
  int64_t exp = crater__mono_ns() + (secs - 5) * 1000000000LL;
  for (size_t i = 0; i < nkeys; i++)
    token_store(c, keys[i], tok, exp);
  json_decref(j);
  return 0;
}

/* Answers the 401 of x from its challenge; x goes back to pending. */
static int
answer_challenge(crater__xfer_t *x, crater_error_t *err)
{
  crater_remote_t *c = x->c;
  crater__challenge_t *ch = NULL;
  size_t n = 0;
  if (crater__parse_challenges(x->h_wwwauth, &ch, &n, err) < 0)
    return -1;
  const crater__challenge_t *bearer = NULL, *basic = NULL;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(ch[i].scheme, "bearer") == 0 && !bearer)
      bearer = &ch[i];
    else if (strcmp(ch[i].scheme, "basic") == 0 && !basic)
      basic = &ch[i];
  }
  int r = 0;
  const token_t *have = bearer ? token_lookup(c, x->scope) : NULL;
  if (have && (x->sent_bearer == NULL || strcmp(have->token, x->sent_bearer) != 0)) {
    /* a concurrent transfer got a token for this scope meanwhile: use it */
    c->auth_mode = AUTH_BEARER;
  } else if (bearer) {
    const char *realm = crater__challenge_param(bearer, "realm");
    const char *service = crater__challenge_param(bearer, "service");
    const char *cscope = crater__challenge_param(bearer, "scope");
    if (realm == NULL) {
      r = crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                            "Bearer challenge without a realm");
    } else {
      cleanup_free char *scopes = xstrdup(cscope ? cscope : "");
      scope_union(&scopes, x->scope);
      const char *keys[3] = { x->scope, cscope ? cscope : "", scopes };
      r = fetch_token(c, realm, service, scopes, keys, 3, err);
      if (r == 0)
        c->auth_mode = AUTH_BEARER;
    }
  } else if (basic) {
    if (c->username == NULL)
      r = crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                            "HTTP 401: authentication required, no credentials for this host");
    else
      c->auth_mode = AUTH_BASIC;
  } else {
    r = crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                          "HTTP 401: unsupported authentication scheme \"%s\"",
                          n ? ch[0].scheme : "");
  }
  crater__challenges_free(ch, n);
  return r;
}

/* ---- the loop ------------------------------------------------------------- */

static void
report(crater__xfer_t *x, size_t i, crater_remote_progress_fn progress, void *ud, int64_t now,
       bool force, bool *cancel)
{
  if (progress == NULL || x->sink == NULL || *cancel)
    return;
  int64_t done = x->start_off + x->got;
  /* New bytes are reported at most every REPORT_EVERY_NS; unchanged
   * progress is re-reported every HEARTBEAT_NS, so a consumer that
   * throttles its own output (the progress display) catches up on the last
   * value and shows a stall as one, instead of freezing on an older value. */
  if (!force && (now - x->last_report_ns < REPORT_EVERY_NS ||
                 (done == x->last_reported && now - x->last_report_ns < HEARTBEAT_NS)))
    return;
  x->last_reported = done;
  x->last_report_ns = now;
  if (progress(ud, i, done, x->expected) != 0)
    *cancel = true;
}

size_t
crater__xfer_run_all(crater_remote_t *c, crater__xfer_t **xs, size_t n, size_t max_parallel,
                     crater_remote_progress_fn progress, void *ud)
{
  if (max_parallel == 0)
    max_parallel = 4;
  bool cancel = false;
  for (;;) {
    int64_t now = crater__mono_ns();
    size_t running = 0, live = 0;
    bool busy = false;
    for (size_t i = 0; i < n; i++) {
      crater__xfer_t *x = xs[i];
      if (x->state == XF_WAIT_AUTH) {
        crater_error_t e = NULL;
        if (answer_challenge(x, &e) < 0) {
          crater_error_wrap(&e, "%s", x->what);
          crater_error_move(&x->err, &e);
          x->state = XF_DONE;
          report(x, i, progress, ud, now, true, &cancel);
        } else {
          x->state = XF_PENDING;
          x->not_before_ns = 0;
        }
        busy = true;
      }
      if (x->state == XF_RUNNING)
        running++;
    }
    if (cancel) {
      for (size_t i = 0; i < n; i++) {
        crater__xfer_t *x = xs[i];
        if (x->state == XF_DONE)
          continue;
        if (x->state == XF_RUNNING)
          crater__curl.multi_remove_handle(c->multi, x->easy);
        fail(x, CRATER_ERR_CANCELED, "canceled");
      }
      break;
    }
    int64_t next_wake = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
      crater__xfer_t *x = xs[i];
      if (x->state == XF_PENDING) {
        live++;
        if (running >= max_parallel)
          continue;
        if (x->not_before_ns > now) {
          if (x->not_before_ns < next_wake)
            next_wake = x->not_before_ns;
          continue;
        }
        if (start_attempt(x) < 0) {
          crater_error_move(&x->err, &x->cb_err);
          x->state = XF_DONE;
          continue;
        }
        crater__curl.multi_add_handle(c->multi, x->easy);
        x->state = XF_RUNNING;
        running++;
      } else if (x->state == XF_RUNNING) {
        live++;
      }
    }
    if (live == 0)
      break;

    int still = 0;
    crater__curl.multi_perform(c->multi, &still);
    CURLMsg *m;
    int left;
    while ((m = crater__curl.multi_info_read(c->multi, &left)) != NULL) {
      if (m->msg != CURLMSG_DONE)
        continue;
      crater__xfer_t *x = NULL;
      crater__curl_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &x);
      finish(x, m->data.result);
      busy = true;
      if (x->state == XF_DONE)
        for (size_t i = 0; i < n; i++)
          if (xs[i] == x)
            report(x, i, progress, ud, crater__mono_ns(), true, &cancel);
    }
    now = crater__mono_ns();
    for (size_t i = 0; i < n; i++)
      if (xs[i]->state == XF_RUNNING)
        report(xs[i], i, progress, ud, now, false, &cancel);
    if (busy || cancel)
      continue;
    long timeout = 200;
    if (next_wake != INT64_MAX) {
      int64_t ms = (next_wake - now) / 1000000LL + 1;
      if (ms < timeout)
        timeout = ms < 0 ? 0 : (long) ms;
    }
    crater__curl.multi_poll(c->multi, NULL, 0, (int) timeout, NULL);
  }
  size_t failed = 0;
  for (size_t i = 0; i < n; i++)
    if (xs[i]->err)
      failed++;
  return failed;
}

int
crater__xfer_run(crater__xfer_t *x, crater_error_t *err)
{
  crater__xfer_t *one[1] = { x };
  if (crater__xfer_run_all(x->c, one, 1, 1, NULL, NULL) == 0)
    return 0;
  crater_error_move(err, &x->err);
  return -1;
}
