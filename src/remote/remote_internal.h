/*
 * Privates shared by the remote transport files (client.c, parse.c) and
 * the unit tests in tests/remote/: the pure header parsers and policy
 * arithmetic, kept free of I/O so they can be tested on their own.
 * crater__parse_retry_after, crater__same_origin and crater__resolve_url
 * call libcurl: crater__curl_load() (remote/curl_sym.h) must have
 * succeeded first, as it has once any crater_remote_t exists.
 */
#ifndef CRATER_REMOTE_INTERNAL_H
#define CRATER_REMOTE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"

/* One auth-param of a challenge; key lower-cased, value unquoted. */
typedef struct {
  char *key;
  char *value;
} crater__auth_param_t;

/* One challenge of a WWW-Authenticate header (RFC 9110 section 11). */
typedef struct {
  char *scheme;  /* lower-cased: "bearer", "basic" */
  char *token68; /* rare; NULL when params are used */
  crater__auth_param_t *params;
  size_t n;
} crater__challenge_t;

/* Parses every challenge of a WWW-Authenticate value, e.g.
 *   Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"
 * Quoted strings may contain commas, '=' and backslash escapes.  Returns 0
 * and a malloc'd array (free with crater__challenges_free), or -1 with
 * INVALID_ARGUMENT on malformed input. */
int crater__parse_challenges(const char *hdr, crater__challenge_t **out, size_t *n,
                             crater_error_t *err);
void crater__challenges_free(crater__challenge_t *c, size_t n);
/* Value of param key (case-insensitive) or NULL. */
const char *crater__challenge_param(const crater__challenge_t *c, const char *key);

/* Retry-After: delta-seconds or an HTTP-date (relative to now).  Returns
 * the delay in ms (0 for a past date) or -1 when unparsable. */
int64_t crater__parse_retry_after(const char *v, time_t now);

/* Content-Range of a 206: "bytes <start>-<end>/<total|*>".  *total is -1
 * for '*'.  Returns 0 or -1 when malformed (or end < start). */
int crater__parse_content_range(const char *v, int64_t *start, int64_t *end, int64_t *total);

/* Range header of an upload status: "0-<end>" (or "bytes=0-<end>").
 * Returns 0 or -1. */
int crater__parse_upload_range(const char *v, int64_t *start, int64_t *end);

/* Delay before retry number attempt (0-based): base * 2^attempt capped at
 * max, with "equal jitter" (half fixed, half random from rnd). */
long crater__backoff_ms(int attempt, long base_ms, long max_ms, uint32_t rnd);

/* True when both absolute URLs have the same scheme, host (case-insensitive)
 * and port (default ports filled in).  Credentials are only sent when the
 * target of a redirect has the registry's origin. */
bool crater__same_origin(const char *a, const char *b);

/* Resolves ref (absolute, or relative like "/v2/x/blobs/uploads/uuid?s=1")
 * against base.  malloc'd, NULL when invalid. */
char *crater__resolve_url(const char *base, const char *ref);

/* True for "<alg>:<hex>" with a known algorithm (sha256, sha512) and exact
 * lower-case hex length: the only strings used as digests in URLs. */
bool crater__digest_valid(const char *d);

/* Repo names and references are spliced into URL paths: allow only the
 * distribution grammar's characters (no '?', '#', '%', "..", spaces). */
bool crater__repo_valid(const char *repo);
bool crater__ref_valid(const char *ref);

/* ---- the request engine (client.c), used by the operations (ops.c) ---- */
#ifdef CRATER_REMOTE_ENGINE

#include "remote/curl_sym.h"

#include "remote/remote.h"

typedef enum { XF_PENDING, XF_RUNNING, XF_WAIT_AUTH, XF_DONE } crater__xstate_t;

/* One logical request, possibly sent several times (retries, redirects,
 * auth).  Filled by an operation with crater__xfer_init + fields, run by
 * crater__xfer_run_all, released with crater__xfer_clear. */
typedef struct crater__xfer {
  crater_remote_t *c;
  CURL *easy;
  struct curl_slist *hdrs;
  crater__xstate_t state;

  /* request */
  const char *method; /* "GET", "HEAD", "POST", "PUT", "PATCH" */
  char *url;          /* absolute; changes on redirect */
  char *what;         /* "fetch blob sha256:ab.. from host/repo" */
  char *scope;        /* token scope(s) wanted, space-separated */
  const char *accept;
  const char *content_type;
  char *extra_header;   /* e.g. "Content-Range: 0-99" */
  int body_fd;          /* upload from fd (pread) ... */
  const char *body_mem; /* ... or from memory */
  int64_t body_off, body_len, body_pos;
  bool has_body;

  /* response destination: sink, memory (to_mem, mem_max) or discarded */
  crater_remote_sink_t *sink;
  int64_t expected; /* sink: full size, <0 unknown */
  bool to_mem;
  size_t mem_max;
  char *mem;
  size_t mem_len, mem_cap;

  /* per attempt */
  long status;
  bool body_started, err_body, restart_zero;
  int64_t start_off, got;
  char *h_ctype, *h_digest, *h_location, *h_wwwauth, *h_retry_after, *h_crange, *h_range;
  char *errbody;
  size_t errlen, errcap;
  crater_error_t cb_err;             /* raised inside a curl callback: final */
  char curl_errbuf[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER: TLS library detail */

  /* across attempts */
  int attempt, redirects, resumes;
  bool auth_retried;
  char *sent_bearer; /* token sent with the last attempt (wiped) */
  int64_t not_before_ns;
  int64_t last_report_ns, last_reported;
  crater_error_t err; /* final error when state == XF_DONE and failed */
} crater__xfer_t;

/* Sets up x for method on url (copied); what is a printf description. */
void crater__xfer_init(crater__xfer_t *x, crater_remote_t *c, const char *method, const char *url,
                       const char *scope, const char *what_fmt, ...)
    __attribute__((format(printf, 6, 7)));
void crater__xfer_clear(crater__xfer_t *x);

/* Runs every xfer to completion (up to max_parallel at once).  Each ends
 * XF_DONE with x->err set on failure.  Returns the number that failed. */
size_t crater__xfer_run_all(crater_remote_t *c, crater__xfer_t **xs, size_t n, size_t max_parallel,
                            crater_remote_progress_fn progress, void *ud);

/* Runs one xfer; on failure moves its error to *err and returns -1. */
int crater__xfer_run(crater__xfer_t *x, crater_error_t *err);

/* "https://host" of the client, and "<host>/<repo>" for messages. */
const char *crater__remote_base(const crater_remote_t *c);
const char *crater__remote_host(const crater_remote_t *c);

/* "sha256:<12 hex>.." for messages (static buffer per call site: pass buf). */
const char *crater__short_digest(const char *d, char buf[32]);

/* sha256/sha512 digest string of buf (alg "sha256" or "sha512"); malloc'd,
 * or NULL + UNAVAILABLE when libcrypto cannot be loaded. */
char *crater__digest_of(const char *alg, const void *buf, size_t n, crater_error_t *err);

#endif /* CRATER_REMOTE_ENGINE */

#endif /* CRATER_REMOTE_INTERNAL_H */
