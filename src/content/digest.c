/*
 * Digest validation and hashing.  See digest.h.
 *
 * Hashing uses OpenSSL's SHA256_* / SHA512_* functions, not EVP: the same
 * assembly (SHA-NI, AVX2), but no provider fetch.  The first EVP digest of
 * a process loads openssl.cnf and builds the default provider's method
 * store: ~5 million instructions, a third of `crater image ls`
 * (callgrind), paid by every command that hashes anything.  The
 * functions are deprecated in OpenSSL 3 but kept; the warning is
 * silenced (content/crypto_sym.h).
 *
 * libcrypto is not linked: crater_digester_new() loads it on first use
 * (content/crypto_sym.h) and every call goes through crater__crypto, the
 * same functions through a pointer, so hashing runs exactly as fast.
 */
#include "content/digest.h"

#include "content/content_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "content/crypto_sym.h"

struct crater_digester_s {
  crater_digest_alg_t alg;
  union {
    SHA256_CTX s256;
    SHA512_CTX s512;
  } u;
};

static const struct {
  const char *name;
  size_t hexlen;
} algs[] = {
  [CRATER_DIGEST_SHA256] = { "sha256", 64 },
  [CRATER_DIGEST_SHA512] = { "sha512", 128 },
};

const char *
crater_digest_alg_name(crater_digest_alg_t alg)
{
  return algs[alg].name;
}

size_t
crater_digest_hex_len(crater_digest_alg_t alg)
{
  return algs[alg].hexlen;
}

int
crater_digest_alg_parse(const char *name, crater_error_t *err)
{
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
    if (name && strcmp(name, algs[i].name) == 0)
      return (int) i;
  return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                           "unsupported digest algorithm '%.32s'", name ? name : "(null)");
}

int
crater_digest_validate(const char *digest, crater_error_t *err)
{
  if (digest == NULL)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "digest: missing");
  const char *colon = strchr(digest, ':');
  if (colon == NULL)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "invalid digest '%.140s': no algorithm", digest);
  int alg = -1;
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
    size_t l = strlen(algs[i].name);
    if ((size_t) (colon - digest) == l && strncmp(digest, algs[i].name, l) == 0)
      alg = (int) i;
  }
  if (alg < 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "invalid digest '%.140s': unsupported algorithm", digest);
  const char *hex = colon + 1;
  size_t n = strlen(hex);
  if (n != algs[alg].hexlen)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "invalid digest '%.140s': %s needs %zu hex "
                             "characters, got %zu",
                             digest, algs[alg].name, algs[alg].hexlen, n);
  for (size_t i = 0; i < n; i++) {
    char c = hex[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "invalid digest '%.140s': character %zu is not "
                               "lowercase hex",
                               digest, i + 1);
  }
  return alg;
}

char *
crater_digest_blob_path(const char *content_dir, const char *digest, crater_error_t *err)
{
  int alg = crater_digest_validate(digest, err);
  if (alg < 0)
    return NULL;
  return xasprintf("%s/blobs/%s/%s", content_dir, algs[alg].name, strchr(digest, ':') + 1);
}

crater_digester_t *
crater_digester_new(crater_digest_alg_t alg, crater_error_t *err)
{
  if (crater__crypto_load(err) < 0)
    return NULL;
  crater_digester_t *d = xmalloc0(sizeof *d);
  d->alg = alg;
  int ok = alg == CRATER_DIGEST_SHA512 ? crater__crypto.SHA512_Init(&d->u.s512)
                                       : crater__crypto.SHA256_Init(&d->u.s256);
  if (ok != 1) {
    free(d);
    crater_error_make(err, CRATER_ERR_INTERNAL, 0, "%s: OpenSSL digest init failed",
                      algs[alg].name);
    return NULL;
  }
  return d;
}

int
crater_digester_update(crater_digester_t *d, const void *buf, size_t n, crater_error_t *err)
{
  if (n == 0)
    return 0;
  int ok = d->alg == CRATER_DIGEST_SHA512 ? crater__crypto.SHA512_Update(&d->u.s512, buf, n)
                                          : crater__crypto.SHA256_Update(&d->u.s256, buf, n);
  if (ok != 1)
    return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "%s: OpenSSL digest update failed",
                             algs[d->alg].name);
  return 0;
}

int
crater_digester_digest(crater_digester_t *d, char *out, crater_error_t *err)
{
  unsigned char md[SHA512_DIGEST_LENGTH];
  size_t len;
  int ok;
  if (d->alg == CRATER_DIGEST_SHA512) {
    SHA512_CTX copy = d->u.s512; /* plain structs: finalising a copy */
    ok = crater__crypto.SHA512_Final(md, &copy);
    len = SHA512_DIGEST_LENGTH;
  } else {
    SHA256_CTX copy = d->u.s256;
    ok = crater__crypto.SHA256_Final(md, &copy);
    len = SHA256_DIGEST_LENGTH;
  }
  if (ok != 1)
    return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "%s: OpenSSL digest final failed",
                             algs[d->alg].name);
  size_t nl = strlen(algs[d->alg].name);
  memcpy(out, algs[d->alg].name, nl);
  out[nl] = ':';
  crater__hex_encode(md, len, out + nl + 1);
  return 0;
}

crater_digest_alg_t
crater_digester_alg(const crater_digester_t *d)
{
  return d->alg;
}

void
crater_digester_free(crater_digester_t *d)
{
  if (d == NULL)
    return;
  explicit_bzero(d, sizeof *d);
  free(d);
}

int
crater_digest_buf(crater_digest_alg_t alg, const void *buf, size_t n, char *out,
                  crater_error_t *err)
{
  if (alg == CRATER_DIGEST_SHA256 && n <= CRATER__SHA256_SMALL_MAX) {
    /* no libcrypto load (~0.5 ms) for a chain ID or a ref name */
    unsigned char md[32];
    crater__sha256_small(buf, n, md);
    memcpy(out, "sha256:", 7);
    crater__hex_encode(md, sizeof md, out + 7);
    return 0;
  }
  crater_digester_t *d = crater_digester_new(alg, err);
  if (d == NULL)
    return -1;
  int r = crater_digester_update(d, buf, n, err);
  if (r >= 0)
    r = crater_digester_digest(d, out, err);
  crater_digester_free(d);
  return r;
}

int
crater_digest_fd(crater_digest_alg_t alg, int fd, char *out, crater_error_t *err)
{
  crater_digester_t *d = crater_digester_new(alg, err);
  if (d == NULL)
    return -1;
  size_t cap = 1 << 20;
  cleanup_free char *buf = xmalloc(cap);
  int ret = 0;
  for (;;) {
    ssize_t r = read(fd, buf, cap);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      ret = crater_error_sys(err, errno, "read");
      break;
    }
    if (r == 0)
      break;
    if ((ret = crater_digester_update(d, buf, (size_t) r, err)) < 0)
      break;
  }
  if (ret == 0)
    ret = crater_digester_digest(d, out, err);
  crater_digester_free(d);
  return ret;
}
