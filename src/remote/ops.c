/*
 * Registry operations on top of the request engine (client.c): ping,
 * manifest resolve/fetch/push, blob fetch (one or many at once), blob
 * existence, blob push (HEAD, mount, monolithic or chunked upload) and tag
 * listing, plus the file sink the Lua binding uses to stream blobs straight
 * into content-store ingest files.  Every repo, reference and digest is
 * syntax-checked before it is spliced into a URL.
 */
#define CRATER_REMOTE_ENGINE 1
#include "remote/remote_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "remote/remote.h"

static const char DEFAULT_ACCEPT[] =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, "
    "application/vnd.docker.distribution.manifest.v1+json;q=0.5";

static void
xfer_cleanup(crater__xfer_t *x)
{
  crater__xfer_clear(x);
}
#define cleanup_xfer __attribute__((cleanup(xfer_cleanup)))

static int
check_repo(crater_remote_t *c, const char *repo, crater_error_t *err)
{
  if (!crater__repo_valid(repo))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "%s: invalid repository name \"%s\"", crater__remote_host(c),
                             repo ? repo : "");
  return 0;
}

static int
check_digest(crater_remote_t *c, const char *repo, const char *d, crater_error_t *err)
{
  if (!crater__digest_valid(d))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "%s/%s: invalid digest \"%s\"",
                             crater__remote_host(c), repo, d ? d : "");
  return 0;
}

/* "<base>/v2/<repo>/<kind>/<ref>" (kind: "manifests" or "blobs"). */
static char *
url_for(crater_remote_t *c, const char *repo, const char *kind, const char *ref)
{
  return xasprintf("%s/v2/%s/%s/%s", crater__remote_base(c), repo, kind, ref);
}

static char *
pull_scope(const char *repo)
{
  return xasprintf("repository:%s:pull", repo);
}

/* Media type from a Content-Type value: drops parameters and blanks. */
static char *
media_type_of(const char *ct)
{
  if (ct == NULL)
    return NULL;
  size_t n = strcspn(ct, ";");
  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  return n ? xstrndup(ct, n) : NULL;
}

/* ---- ping ------------------------------------------------------------------ */

int
crater_remote_ping(crater_remote_t *c, crater_error_t *err)
{
  cleanup_free char *url = xasprintf("%s/v2/", crater__remote_base(c));
  cleanup_xfer crater__xfer_t x;
  crater__xfer_init(&x, c, "GET", url, "", "ping %s", crater__remote_host(c));
  x.to_mem = true;
  x.mem_max = 64 * 1024;
  return crater__xfer_run(&x, err);
}

/* ---- manifests ----------------------------------------------------------- */

int
crater_remote_fetch_manifest(crater_remote_t *c, const char *repo, const char *ref,
                             const char *accept, char **body, size_t *len,
                             crater_remote_descriptor_t *desc, crater_error_t *err)
{
  if (check_repo(c, repo, err) < 0)
    return -1;
  if (!crater__ref_valid(ref))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "%s/%s: invalid reference \"%s\"",
                             crater__remote_host(c), repo, ref ? ref : "");
  cleanup_free char *url = url_for(c, repo, "manifests", ref);
  cleanup_free char *scope = pull_scope(repo);
  cleanup_xfer crater__xfer_t x;
  char sb[32];
  crater__xfer_init(&x, c, "GET", url, scope, "fetch manifest %s from %s/%s",
                    crater__short_digest(ref, sb), crater__remote_host(c), repo);
  x.accept = accept ? accept : DEFAULT_ACCEPT;
  x.to_mem = true;
  x.mem_max = CRATER_REMOTE_MANIFEST_MAX;
  if (crater__xfer_run(&x, err) < 0)
    return -1;

  const char *alg = "sha256";
  const char *want = NULL;
  if (strchr(ref, ':')) {
    want = ref;
    alg = strncmp(ref, "sha512:", 7) == 0 ? "sha512" : "sha256";
  } else if (x.h_digest && crater__digest_valid(x.h_digest)) {
    want = x.h_digest;
    alg = strncmp(x.h_digest, "sha512:", 7) == 0 ? "sha512" : "sha256";
  }
  cleanup_free char *got = crater__digest_of(alg, x.mem ? x.mem : "", x.mem_len, err);
  if (got == NULL)
    return crater_error_wrap(err, "%s", x.what);
  if (want && strcmp(want, got) != 0)
    return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0,
                             "%s: digest mismatch: %s %s, content is %s", x.what,
                             want == ref ? "asked for" : "registry says", want, got);
  desc->media_type = media_type_of(x.h_ctype);
  desc->digest = steal_pointer(&got);
  desc->size = (int64_t) x.mem_len;
  if (x.mem == NULL)
    x.mem = xstrdup("");
  *len = x.mem_len;
  *body = steal_pointer(&x.mem);
  return 0;
}

int
crater_remote_resolve(crater_remote_t *c, const char *repo, const char *ref,
                      crater_remote_descriptor_t *out, crater_error_t *err)
{
  if (check_repo(c, repo, err) < 0)
    return -1;
  if (!crater__ref_valid(ref))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "%s/%s: invalid reference \"%s\"",
                             crater__remote_host(c), repo, ref ? ref : "");
  cleanup_free char *url = url_for(c, repo, "manifests", ref);
  cleanup_free char *scope = pull_scope(repo);
  {
    cleanup_xfer crater__xfer_t x;
    crater__xfer_init(&x, c, "HEAD", url, scope, "resolve %s/%s:%s", crater__remote_host(c), repo,
                      ref);
    x.accept = DEFAULT_ACCEPT;
    crater_error_t e = NULL;
    if (crater__xfer_run(&x, &e) < 0) {
      /* some registries refuse HEAD; a GET settles everything but these */
      if (e->kind == CRATER_ERR_NOT_FOUND || e->kind == CRATER_ERR_PERMISSION_DENIED) {
        crater_error_move(err, &e);
        return -1;
      }
      crater_error_release(&e);
    } else {
      curl_off_t clen = -1;
      crater__curl_getinfo(x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
      const char *d = strchr(ref, ':') ? ref : x.h_digest;
      char *mt = media_type_of(x.h_ctype);
      if (d && crater__digest_valid(d) && clen >= 0 && mt) {
        out->media_type = mt;
        out->digest = xstrdup(d);
        out->size = (int64_t) clen;
        return 0;
      }
      free(mt);
    }
  }
  cleanup_free char *body = NULL;
  size_t len = 0;
  if (crater_remote_fetch_manifest(c, repo, ref, NULL, &body, &len, out, err) < 0)
    return crater_error_wrap(err, "resolve %s/%s:%s", crater__remote_host(c), repo, ref);
  return 0;
}

/* ---- file sink ------------------------------------------------------------- */

static int
fsink_write(void *ud, const void *buf, size_t n, crater_error_t *err)
{
  crater_remote_file_sink_t *fs = ud;
  if (crater__write_all(fs->fd, buf, n, err) < 0)
    return crater_error_wrap(err, "write %s", fs->path);
  fs->size += (int64_t) n;
  return 0;
}

static int64_t
fsink_offset(void *ud)
{
  crater_remote_file_sink_t *fs = ud;
  return fs->size;
}

static int
fsink_reset(void *ud, crater_error_t *err)
{
  crater_remote_file_sink_t *fs = ud;
  if (ftruncate(fs->fd, 0) < 0)
    return crater_error_sys(err, errno, "truncate %s", fs->path);
  fs->size = 0;
  return 0;
}

int
crater_remote_file_sink_open(crater_remote_file_sink_t *fs, const char *path, crater_error_t *err)
{
  memset(fs, 0, sizeof *fs);
  fs->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fs->fd < 0)
    return crater_error_sys(err, errno, "open %s", path);
  struct stat st;
  if (fstat(fs->fd, &st) < 0) {
    int e = errno;
    close(fs->fd);
    fs->fd = -1;
    return crater_error_sys(err, e, "stat %s", path);
  }
  fs->size = st.st_size;
  fs->path = xstrdup(path);
  fs->sink.write = fsink_write;
  fs->sink.offset = fsink_offset;
  fs->sink.reset = fsink_reset;
  fs->sink.ud = fs;
  return 0;
}

int
crater_remote_file_sink_close(crater_remote_file_sink_t *fs, crater_error_t *err)
{
  int r = 0;
  if (fs->fd >= 0 && close(fs->fd) < 0)
    r = crater_error_sys(err, errno, "close %s", fs->path);
  fs->fd = -1;
  free(fs->path);
  fs->path = NULL;
  return r;
}

/* ---- blobs ------------------------------------------------------------------ */

int
crater_remote_fetch_many(crater_remote_t *c, const crater_remote_fetch_t *reqs, size_t n,
                         size_t max_parallel, crater_remote_progress_fn progress, void *ud,
                         crater_error_t *errs, crater_error_t *err)
{
  if (n == 0)
    return 0;
  crater__xfer_t *xv = xcalloc(n, sizeof *xv);
  crater__xfer_t **xs = xcalloc(n, sizeof *xs);
  size_t nx = 0;
  for (size_t i = 0; i < n; i++) {
    const crater_remote_fetch_t *r = &reqs[i];
    char sb[32];
    crater__xfer_init(&xv[i], c, "GET", "", "", "fetch blob %s from %s/%s",
                      crater__short_digest(r->digest, sb), crater__remote_host(c),
                      r->repo ? r->repo : "");
    xv[i].state = XF_DONE;
    if (check_repo(c, r->repo, &xv[i].err) < 0 ||
        check_digest(c, r->repo, r->digest, &xv[i].err) < 0)
      continue;
    if (r->sink == NULL) {
      crater_error_make(&xv[i].err, CRATER_ERR_INVALID_ARGUMENT, 0, "%s: no sink", xv[i].what);
      continue;
    }
    free(xv[i].url);
    xv[i].url = url_for(c, r->repo, "blobs", r->digest);
    free(xv[i].scope);
    xv[i].scope = pull_scope(r->repo);
    xv[i].sink = r->sink;
    xv[i].expected = r->size;
    int64_t have = r->sink->offset(r->sink->ud);
    if (r->size >= 0 && have == r->size) {
      /* already complete (a resumed ingest): nothing to transfer */
      xv[i].start_off = have;
      if (progress)
        progress(ud, i, have, r->size);
      continue;
    }
    xv[i].state = XF_PENDING;
    xs[nx++] = &xv[i];
  }
  crater__xfer_run_all(c, xs, nx, max_parallel, progress, ud);

  size_t failed = 0, first = n;
  for (size_t i = 0; i < n; i++) {
    if (xv[i].err) {
      if (first == n)
        first = i;
      failed++;
      crater_error_move(&errs[i], &xv[i].err);
    }
  }
  int rc = 0;
  if (failed) {
    rc = crater_error_make(err, errs[first]->kind, 0, "%zu of %zu blob downloads failed; first: %s",
                           failed, n, errs[first]->msg);
  }
  for (size_t i = 0; i < n; i++)
    crater__xfer_clear(&xv[i]);
  free(xv);
  free(xs);
  return rc;
}

int
crater_remote_fetch_blob(crater_remote_t *c, const char *repo, const char *digest, int64_t size,
                         crater_remote_sink_t *sink, crater_error_t *err)
{
  crater_remote_fetch_t r = { .repo = repo, .digest = digest, .size = size, .sink = sink };
  crater_error_t one = NULL;
  if (crater_remote_fetch_many(c, &r, 1, 1, NULL, NULL, &one, err) < 0) {
    crater_error_release(err);
    crater_error_move(err, &one);
    return -1;
  }
  return 0;
}

static int
blob_head(crater_remote_t *c, const char *repo, const char *digest, const char *scope,
          crater_error_t *err)
{
  cleanup_free char *url = url_for(c, repo, "blobs", digest);
  cleanup_xfer crater__xfer_t x;
  char sb[32];
  crater__xfer_init(&x, c, "HEAD", url, scope, "check blob %s in %s/%s",
                    crater__short_digest(digest, sb), crater__remote_host(c), repo);
  crater_error_t e = NULL;
  if (crater__xfer_run(&x, &e) < 0) {
    if (e->kind == CRATER_ERR_NOT_FOUND) {
      crater_error_release(&e);
      return 0;
    }
    crater_error_move(err, &e);
    return -1;
  }
  return 1;
}

int
crater_remote_blob_exists(crater_remote_t *c, const char *repo, const char *digest,
                          crater_error_t *err)
{
  if (check_repo(c, repo, err) < 0 || check_digest(c, repo, digest, err) < 0)
    return -1;
  cleanup_free char *scope = pull_scope(repo);
  return blob_head(c, repo, digest, scope, err);
}

/* url + "?digest=<d>" or "&digest=<d>". */
static char *
with_digest(const char *url, const char *digest)
{
  return xasprintf("%s%cdigest=%s", url, strchr(url, '?') ? '&' : '?', digest);
}

/* Location of an upload answer resolved against the request URL. */
static char *
upload_location(crater__xfer_t *x, crater_error_t *err)
{
  char *loc = x->h_location ? crater__resolve_url(x->url, x->h_location) : NULL;
  if (loc == NULL)
    crater_error_make(err, CRATER_ERR_UNAVAILABLE, 0, "%s: HTTP %ld without a usable Location",
                      x->what, x->status);
  return loc;
}

int
crater_remote_push_blob(crater_remote_t *c, const char *repo, const char *digest, int64_t size,
                        int fd, const crater_remote_push_opts_t *opts, crater_error_t *err)
{
  if (check_repo(c, repo, err) < 0 || check_digest(c, repo, digest, err) < 0)
    return -1;
  const char *from = opts ? opts->mount_from : NULL;
  int64_t chunk = opts ? opts->chunk_size : 0;
  if (from && !crater__repo_valid(from))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "%s: invalid mount source repository \"%s\"", crater__remote_host(c),
                             from);
  if (size < 0 || fd < 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "push blob: need a size and a source fd");
  char sb[32];
  const char *sd = crater__short_digest(digest, sb);
  const char *host = crater__remote_host(c);
  cleanup_free char *scope =
      from && strcmp(from, repo) != 0
          ? xasprintf("repository:%s:pull,push repository:%s:pull", repo, from)
          : xasprintf("repository:%s:pull,push", repo);

  int have = blob_head(c, repo, digest, scope, err);
  if (have < 0)
    return crater_error_wrap(err, "push blob %s to %s/%s", sd, host, repo);
  if (have)
    return CRATER_REMOTE_PUSH_EXISTS;

  /* start an upload session (or mount) */
  cleanup_free char *location = NULL;
  {
    cleanup_free char *url = NULL;
    if (from && strcmp(from, repo) != 0)
      url = xasprintf("%s/v2/%s/blobs/uploads/?mount=%s&from=%s", crater__remote_base(c), repo,
                      digest, from);
    else
      url = xasprintf("%s/v2/%s/blobs/uploads/", crater__remote_base(c), repo);
    cleanup_xfer crater__xfer_t x;
    crater__xfer_init(&x, c, "POST", url, scope, "push blob %s to %s/%s: start upload", sd, host,
                      repo);
    if (crater__xfer_run(&x, err) < 0)
      return -1;
    if (x.status == 201 && from)
      return CRATER_REMOTE_PUSH_MOUNTED;
    if (x.status != 202)
      return crater_error_make(err, CRATER_ERR_UNAVAILABLE, 0, "%s: unexpected HTTP %ld", x.what,
                               x.status);
    location = upload_location(&x, err);
    if (location == NULL)
      return -1;
  }

  /* chunked: PATCH pieces, each answered with the next Location */
  int64_t sent = 0;
  if (chunk > 0) {
    while (sent < size) {
      int64_t n = size - sent < chunk ? size - sent : chunk;
      cleanup_xfer crater__xfer_t x;
      crater__xfer_init(&x, c, "PATCH", location, scope,
                        "push blob %s to %s/%s: upload bytes %" PRId64 "-%" PRId64, sd, host, repo,
                        sent, sent + n - 1);
      x.has_body = true;
      x.body_fd = fd;
      x.body_off = sent;
      x.body_len = n;
      x.content_type = "application/octet-stream";
      x.extra_header = xasprintf("Content-Range: %" PRId64 "-%" PRId64, sent, sent + n - 1);
      if (crater__xfer_run(&x, err) < 0)
        return -1;
      if (x.status != 202)
        return crater_error_make(err, CRATER_ERR_UNAVAILABLE, 0, "%s: unexpected HTTP %ld", x.what,
                                 x.status);
      int64_t a, b;
      if (x.h_range && crater__parse_upload_range(x.h_range, &a, &b) == 0 && b != sent + n - 1)
        return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0,
                                 "%s: registry holds bytes %s, expected 0-%" PRId64, x.what,
                                 x.h_range, sent + n - 1);
      char *next = upload_location(&x, err);
      if (next == NULL)
        return -1;
      free(location);
      location = next;
      sent += n;
    }
  }

  /* PUT ?digest= with the rest of the bytes (all of them when monolithic) */
  cleanup_free char *put_url = with_digest(location, digest);
  cleanup_xfer crater__xfer_t x;
  crater__xfer_init(&x, c, "PUT", put_url, scope, "push blob %s to %s/%s: commit upload", sd, host,
                    repo);
  x.has_body = true;
  x.body_fd = fd;
  x.body_off = sent;
  x.body_len = size - sent;
  x.content_type = "application/octet-stream";
  if (crater__xfer_run(&x, err) < 0)
    return -1;
  if (x.status != 201 && x.status != 204)
    return crater_error_make(err, CRATER_ERR_UNAVAILABLE, 0, "%s: unexpected HTTP %ld", x.what,
                             x.status);
  if (x.h_digest && strcmp(x.h_digest, digest) != 0)
    return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "%s: registry stored %s", x.what,
                             x.h_digest);
  return CRATER_REMOTE_PUSH_UPLOADED;
}

int
crater_remote_push_manifest(crater_remote_t *c, const char *repo, const char *ref, const char *body,
                            size_t len, const char *media_type, char **digest_out,
                            crater_error_t *err)
{
  if (check_repo(c, repo, err) < 0)
    return -1;
  if (!crater__ref_valid(ref))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "%s/%s: invalid reference \"%s\"",
                             crater__remote_host(c), repo, ref ? ref : "");
  if (media_type == NULL || *media_type == '\0' || strpbrk(media_type, "\r\n"))
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "push manifest: invalid media type");
  if (len > CRATER_REMOTE_MANIFEST_MAX)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "push manifest: %zu bytes exceeds the 4 MiB limit", len);
  cleanup_free char *dg = crater__digest_of("sha256", body, len, err);
  if (dg == NULL)
    return crater_error_wrap(err, "push manifest to %s/%s:%s", crater__remote_host(c), repo, ref);
  if (strchr(ref, ':') && strncmp(ref, "sha256:", 7) == 0 && strcmp(ref, dg) != 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "push manifest to %s/%s@%s: body has digest %s",
                             crater__remote_host(c), repo, ref, dg);
  cleanup_free char *url = url_for(c, repo, "manifests", ref);
  cleanup_free char *scope = xasprintf("repository:%s:pull,push", repo);
  cleanup_xfer crater__xfer_t x;
  char sb[32];
  crater__xfer_init(&x, c, "PUT", url, scope, "push manifest %s to %s/%s:%s",
                    crater__short_digest(dg, sb), crater__remote_host(c), repo, ref);
  x.has_body = true;
  x.body_mem = body;
  x.body_len = (int64_t) len;
  x.content_type = media_type;
  if (crater__xfer_run(&x, err) < 0)
    return -1;
  if (x.h_digest && crater__digest_valid(x.h_digest) && strncmp(x.h_digest, "sha256:", 7) == 0 &&
      strcmp(x.h_digest, dg) != 0)
    return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "%s: registry says digest %s", x.what,
                             x.h_digest);
  if (digest_out)
    *digest_out = steal_pointer(&dg);
  return 0;
}

int
crater_remote_list_tags(crater_remote_t *c, const char *repo, char ***tags, size_t *n,
                        crater_error_t *err)
{
  if (check_repo(c, repo, err) < 0)
    return -1;
  cleanup_free char *url = xasprintf("%s/v2/%s/tags/list?n=10000", crater__remote_base(c), repo);
  cleanup_free char *scope = pull_scope(repo);
  cleanup_xfer crater__xfer_t x;
  crater__xfer_init(&x, c, "GET", url, scope, "list tags of %s/%s", crater__remote_host(c), repo);
  x.to_mem = true;
  x.mem_max = 4u << 20;
  if (crater__xfer_run(&x, err) < 0)
    return -1;
  json_error_t je;
  json_t *j = json_loadb(x.mem ? x.mem : "", x.mem_len, 0, &je);
  json_t *arr = j ? json_object_get(j, "tags") : NULL;
  if (j == NULL || (arr && !json_is_array(arr) && !json_is_null(arr))) {
    json_decref(j);
    return crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "%s: malformed answer", x.what);
  }
  size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
  char **out = xcalloc(cnt + 1, sizeof *out);
  size_t k = 0;
  for (size_t i = 0; i < cnt; i++) {
    const char *s = json_string_value(json_array_get(arr, i));
    if (s)
      out[k++] = xstrdup(s);
  }
  json_decref(j);
  *tags = out;
  *n = k;
  return 0;
}
