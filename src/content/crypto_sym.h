/*
 * libcrypto, loaded on first use (dlopen "libcrypto.so.3"): crater links no
 * libcrypto symbol, so commands that never hash anything do not pay for
 * loading it (~4,200 BIND_NOW symbol relocations and its constructor, about
 * 0.6 ms of every start; docs/architecture.md, "Start-up: lazy-loaded
 * libraries").  <openssl/sha.h> is still included, for the context types
 * and digest lengths only.
 *
 * Only the SHA-2 functions of content/digest.c go through here (see there
 * for why not EVP); everything else hashes through crater_digest_*.
 * Call crater__crypto_load() before anything else; afterwards call
 * libcrypto through the table, member = OpenSSL's function name:
 * crater__crypto.SHA256_Update(&ctx, buf, n).
 */
#ifndef CRATER_CONTENT_CRYPTO_SYM_H
#define CRATER_CONTENT_CRYPTO_SYM_H

/* SHA256_Init & co. are deprecated in OpenSSL 3 but kept (digest.c) */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED 1
#endif
#include <openssl/sha.h>

#include "common/error.h"

/* One pointer per libcrypto function crater uses; __typeof__ keeps each
 * signature exactly the one <openssl/sha.h> declares.  Filled once by
 * crater__crypto_load() and read-only afterwards. */
struct crater__crypto_api {
  __typeof__(SHA256_Init) *SHA256_Init;
  __typeof__(SHA256_Update) *SHA256_Update;
  __typeof__(SHA256_Final) *SHA256_Final;
  __typeof__(SHA512_Init) *SHA512_Init;
  __typeof__(SHA512_Update) *SHA512_Update;
  __typeof__(SHA512_Final) *SHA512_Final;
};
extern struct crater__crypto_api crater__crypto;

/* Loads libcrypto.so.3 and resolves the table, once per process
 * (pthread_once; safe from any thread).  Returns 0, or <0 with UNAVAILABLE
 * ("libcrypto.so.3 not found: apt-get install libssl3 (...)") when the
 * library or one of its symbols is missing; every later call reports the
 * same error.  err may be NULL.  crater_digester_new() calls it, so code
 * that hashes through crater_digest_* never needs to. */
int crater__crypto_load(crater_error_t *err);

#endif
