/*
 * Registry transport: the OCI distribution (Docker registry v2) HTTP API
 * over libcurl.
 *
 * A crater_remote_t is a client for ONE registry host ("127.0.0.1:5000",
 * "registry-1.docker.io").  It owns a curl multi handle (the connection
 * pool), a share handle (DNS cache, TLS sessions), the host's auth state and
 * a bearer-token cache keyed by scope.  The caller (the Lua workflow) decides
 * policy: which host, plain HTTP or not, which credentials; the client does
 * the mechanics: auth challenges, redirects, retries with backoff, range
 * resume, size checks while streaming, concurrency.
 *
 * Lifecycle:
 *
 *     crater_remote_options_t o = { .host = "127.0.0.1:5000", .plain_http = true };
 *     crater_remote_t *c = crater_remote_new(&o, &err);
 *     crater_remote_descriptor_t d;
 *     crater_remote_resolve(c, "library/busybox", "latest", &d, &err);
 *     ... crater_remote_fetch_many(c, reqs, n, 4, progress, ud, errs, &err);
 *     crater_remote_descriptor_clear(&d);
 *     crater_remote_free(c);
 *
 * Threads: a client is used by one thread at a time.  Nothing here calls
 * back into Lua except through the progress callback, which runs from the
 * top-level transfer loop, never from inside a curl callback.  Sinks, on the
 * other hand, run inside curl callbacks and must not longjmp.
 *
 * Credentials are copied into the client, sent only in Authorization
 * headers (never in URLs), never logged and never put into error messages.
 * See docs/design/remote.md.
 */
#ifndef CRATER_REMOTE_REMOTE_H
#define CRATER_REMOTE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef struct crater_remote_s crater_remote_t;

/* Options for crater_remote_new.  Strings are copied; NULL means unset.
 * Zero numbers mean "default". */
typedef struct {
  const char *host;          /* "host[:port]", required */
  bool plain_http;           /* http:// instead of https:// */
  const char *ca_file;       /* extra CA bundle (PEM); system CAs otherwise */
  const char *cert_file;     /* client certificate (PEM) */
  const char *key_file;      /* client key (PEM) */
  bool insecure_skip_verify; /* do not verify the peer certificate/host */
  const char *username;      /* Basic credentials (also used for tokens) */
  const char *password;
  long connect_timeout_ms; /* default 30000 */
  long low_speed_limit;    /* bytes/s; default 1 */
  long low_speed_time;     /* seconds below the limit; default 30 */
  int retries;             /* extra attempts per request; default 4; <0 = none */
  long backoff_base_ms;    /* first retry delay; default 200 */
  long backoff_max_ms;     /* cap on any delay incl. Retry-After; default 30000 */
  const char *user_agent;  /* default "crater/<version>" */
} crater_remote_options_t;

/* Creates a client.  Returns NULL and fills *err on bad options. */
CRATER_PUBLIC crater_remote_t *crater_remote_new(const crater_remote_options_t *opts,
                                                 crater_error_t *err);

/* Frees the client (NULL tolerated); wipes credentials and tokens. */
CRATER_PUBLIC void crater_remote_free(crater_remote_t *c);

/* Counters for tests and diagnostics. */
typedef struct {
  unsigned requests;       /* HTTP requests sent to the registry */
  unsigned token_requests; /* requests to a bearer-token realm */
  unsigned retries;        /* requests repeated after an error */
  unsigned resumes;        /* blob downloads continued with Range */
} crater_remote_stats_t;
CRATER_PUBLIC void crater_remote_stats(const crater_remote_t *c, crater_remote_stats_t *out);

/* A content descriptor as seen by the registry.  Strings are malloc'd; free
 * with crater_remote_descriptor_clear. */
typedef struct {
  char *media_type;
  char *digest; /* "sha256:<hex>" */
  int64_t size;
} crater_remote_descriptor_t;
CRATER_PUBLIC void crater_remote_descriptor_clear(crater_remote_descriptor_t *d);

/* GET /v2/: checks the registry answers and the credentials work (a 401
 * is followed through the auth flow). */
CRATER_PUBLIC int crater_remote_ping(crater_remote_t *c, crater_error_t *err);

/* Resolves a tag or digest to a descriptor: HEAD the manifest, falling
 * back to GET when HEAD gives no digest (the digest is then computed from
 * the body).  The Accept list covers OCI index/manifest, Docker manifest
 * list/schema2 and schema1 (so the caller can refuse schema1 by its media
 * type).  Fills *out; the caller clears it. */
CRATER_PUBLIC int crater_remote_resolve(crater_remote_t *c, const char *repo, const char *ref,
                                        crater_remote_descriptor_t *out, crater_error_t *err);

/* Maximum manifest size accepted by crater_remote_fetch_manifest. */
#define CRATER_REMOTE_MANIFEST_MAX (4u << 20)

/* GETs a manifest into memory (refused with RESOURCE_EXHAUSTED once more
 * than 4 MiB arrive).  accept may be NULL for the default list.  When ref
 * is a digest the body is verified against it (DATA_LOSS on mismatch).
 * *body (malloc'd, NUL-terminated, *len bytes) and desc (media type from
 * Content-Type, digest, size) go to the caller. */
CRATER_PUBLIC int crater_remote_fetch_manifest(crater_remote_t *c, const char *repo,
                                               const char *ref, const char *accept, char **body,
                                               size_t *len, crater_remote_descriptor_t *desc,
                                               crater_error_t *err);

/* Where blob bytes go.  All ops run inside curl callbacks: they must not
 * call Lua or longjmp.
 *  write:  appends n bytes; <0 with *err aborts the transfer (not retried).
 *  offset: bytes already held (a download resumes from there with Range).
 *  reset:  drops everything held (server ignored Range: restart from 0). */
typedef struct {
  int (*write)(void *ud, const void *buf, size_t n, crater_error_t *err);
  int64_t (*offset)(void *ud);
  int (*reset)(void *ud, crater_error_t *err);
  void *ud;
} crater_remote_sink_t;

/* A file sink: appends to path (created 0644 if missing), resumes from its
 * current size, truncates on reset.  Close with crater_remote_file_sink_close. */
typedef struct {
  crater_remote_sink_t sink;
  int fd;
  int64_t size;
  char *path;
} crater_remote_file_sink_t;
CRATER_PUBLIC int crater_remote_file_sink_open(crater_remote_file_sink_t *fs, const char *path,
                                               crater_error_t *err);
CRATER_PUBLIC int crater_remote_file_sink_close(crater_remote_file_sink_t *fs, crater_error_t *err);

/* One blob download for crater_remote_fetch_many. */
typedef struct {
  const char *repo;
  const char *digest;
  int64_t size;               /* expected size; <0 = unknown (not checked) */
  crater_remote_sink_t *sink; /* borrowed */
} crater_remote_fetch_t;

/* Progress of transfer i: done of total bytes (total <0 when unknown).
 * Called from the transfer loop (not from curl callbacks), at most about
 * every 100 ms per transfer and once when it finishes.  Returning nonzero
 * cancels every transfer still running (their errors become CANCELED). */
typedef int (*crater_remote_progress_fn)(void *ud, size_t i, int64_t done, int64_t total);

/* Downloads n blobs with up to max_parallel (default 4 when 0) running at
 * once over the client's connection pool.  Each blob is streamed into its
 * sink, continuing from sink->offset with a Range request; the size is
 * checked while streaming (longer than size: DATA_LOSS at once; shorter at
 * the end: DATA_LOSS).  Broken connections resume with Range; 5xx, 429 and
 * timeouts retry with backoff.  Digests are NOT verified here: the content
 * store does that at commit.
 *
 * errs (n entries, caller zeroes them) receives one error per failed
 * request.  Returns 0 when all succeeded, -1 when some failed (then *err
 * says how many and repeats the first) . */
CRATER_PUBLIC int crater_remote_fetch_many(crater_remote_t *c, const crater_remote_fetch_t *reqs,
                                           size_t n, size_t max_parallel,
                                           crater_remote_progress_fn progress, void *ud,
                                           crater_error_t *errs, crater_error_t *err);

/* One blob download; same rules as fetch_many. */
CRATER_PUBLIC int crater_remote_fetch_blob(crater_remote_t *c, const char *repo, const char *digest,
                                           int64_t size, crater_remote_sink_t *sink,
                                           crater_error_t *err);

/* HEAD the blob: 1 present, 0 absent, <0 error. */
CRATER_PUBLIC int crater_remote_blob_exists(crater_remote_t *c, const char *repo,
                                            const char *digest, crater_error_t *err);

typedef enum {
  CRATER_REMOTE_PUSH_EXISTS = 1, /* HEAD found it: nothing sent */
  CRATER_REMOTE_PUSH_MOUNTED,    /* cross-repository mount succeeded */
  CRATER_REMOTE_PUSH_UPLOADED,   /* bytes uploaded */
} crater_remote_push_result_t;

typedef struct {
  const char *mount_from; /* repo on the same registry to mount from, or NULL */
  int64_t chunk_size;     /* >0: chunked PATCH upload in pieces of this size;
                             0: monolithic PUT (default) */
} crater_remote_push_opts_t;

/* Pushes size bytes read from fd (at offsets 0..size, with pread: the fd's
 * position is not used) as blob digest.  HEAD first (skip when present),
 * then mount when opts->mount_from is set, else POST + PUT (monolithic) or
 * POST + PATCH... + PUT (chunked).  Returns a crater_remote_push_result_t
 * (>0) or -1. opts may be NULL. */
CRATER_PUBLIC int crater_remote_push_blob(crater_remote_t *c, const char *repo, const char *digest,
                                          int64_t size, int fd,
                                          const crater_remote_push_opts_t *opts,
                                          crater_error_t *err);

/* PUTs a manifest under ref (a tag or a digest) with Content-Type
 * media_type.  *digest_out (may be NULL) gets the sha256 digest of body. */
CRATER_PUBLIC int crater_remote_push_manifest(crater_remote_t *c, const char *repo, const char *ref,
                                              const char *body, size_t len, const char *media_type,
                                              char **digest_out, crater_error_t *err);

/* GET /v2/<repo>/tags/list (first page, up to 10000 tags): *tags is a
 * malloc'd array of malloc'd strings, *n its length. */
CRATER_PUBLIC int crater_remote_list_tags(crater_remote_t *c, const char *repo, char ***tags,
                                          size_t *n, crater_error_t *err);

#endif
