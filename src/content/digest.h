/*
 * Content digests: strict validation of "<alg>:<hex>" strings, an
 * incremental digester over OpenSSL's SHA-2 functions (libcrypto, loaded on
 * first use), and the mapping from a digest to its blob path.
 *
 * Only two forms are accepted, exactly as written by crater itself:
 *   sha256:<64 lowercase hex>     sha512:<128 lowercase hex>
 * A digest string is never used to build a path before it has passed
 * crater_digest_validate(), so "sha256:../../x" can never escape the store.
 */
#ifndef CRATER_CONTENT_DIGEST_H
#define CRATER_CONTENT_DIGEST_H

#include <stddef.h>

#include "common/error.h"

typedef enum {
  CRATER_DIGEST_SHA256 = 0,
  CRATER_DIGEST_SHA512 = 1,
} crater_digest_alg_t;

/* Longest digest string including the NUL ("sha512:" + 128 hex + NUL). */
#define CRATER_DIGEST_MAX 136

/* Validates digest strictly.  Returns its algorithm (>= 0), or -1 with an
 * INVALID_ARGUMENT error naming the digest and the reason. */
CRATER_PUBLIC int crater_digest_validate(const char *digest, crater_error_t *err);

/* Parses an algorithm name ("sha256", "sha512"); -1 + INVALID_ARGUMENT. */
CRATER_PUBLIC int crater_digest_alg_parse(const char *name, crater_error_t *err);

/* "sha256" / "sha512". */
CRATER_PUBLIC const char *crater_digest_alg_name(crater_digest_alg_t alg);

/* Number of hex characters of a digest of alg (64 / 128). */
CRATER_PUBLIC size_t crater_digest_hex_len(crater_digest_alg_t alg);

/* Builds "<content_dir>/blobs/<alg>/<hex>" for a digest, validating it
 * first.  Returns a malloc'd path or NULL + INVALID_ARGUMENT. */
CRATER_PUBLIC char *crater_digest_blob_path(const char *content_dir, const char *digest,
                                            crater_error_t *err);

/* Incremental digester.  Not thread-safe; one per stream. */
typedef struct crater_digester_s crater_digester_t;

/* Creates a digester for alg, loading libcrypto on first use
 * (content/crypto_sym.h).  NULL + UNAVAILABLE ("libcrypto.so.3 not found:
 * apt-get install libssl3 (...)") when libcrypto cannot be loaded, NULL +
 * INTERNAL if OpenSSL refuses.  Free with crater_digester_free. */
CRATER_PUBLIC crater_digester_t *crater_digester_new(crater_digest_alg_t alg, crater_error_t *err);

/* Feeds n bytes. */
CRATER_PUBLIC int crater_digester_update(crater_digester_t *d, const void *buf, size_t n,
                                         crater_error_t *err);

/* Writes "<alg>:<hex>" of everything fed so far into out (at least
 * CRATER_DIGEST_MAX bytes).  The digester stays usable: this finalises a
 * copy, so it can report the digest "so far" and keep going. */
CRATER_PUBLIC int crater_digester_digest(crater_digester_t *d, char *out, crater_error_t *err);

CRATER_PUBLIC crater_digest_alg_t crater_digester_alg(const crater_digester_t *d);

/* Frees d; NULL tolerated. */
CRATER_PUBLIC void crater_digester_free(crater_digester_t *d);

/* One-shot helper: "<alg>:<hex>" of n bytes at buf into out.  Fails as
 * crater_digester_new() does; SHA-256 of up to 4 KiB is computed without
 * libcrypto (never fails). */
CRATER_PUBLIC int crater_digest_buf(crater_digest_alg_t alg, const void *buf, size_t n, char *out,
                                    crater_error_t *err);

/* One-shot helper: digest of a whole fd from its current position to EOF.
 * Fails as crater_digester_new() does, or with the read error. */
CRATER_PUBLIC int crater_digest_fd(crater_digest_alg_t alg, int fd, char *out, crater_error_t *err);

#endif
