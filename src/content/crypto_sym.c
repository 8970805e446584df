#include "content/crypto_sym.h"

#include <pthread.h>
#include <stddef.h>

#include "common/dl.h"

struct crater__crypto_api crater__crypto;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static crater__dl_state_t load_state;

#define SYM(f)                                                                                     \
  {                                                                                                \
#f, offsetof(struct crater__crypto_api, f)                                                     \
  }
static const crater__dl_sym_t syms[] = {
  SYM(SHA256_Init), SYM(SHA256_Update), SYM(SHA256_Final),
  SYM(SHA512_Init), SYM(SHA512_Update), SYM(SHA512_Final),
};
#undef SYM
_Static_assert(sizeof syms / sizeof syms[0] * sizeof(void (*)(void)) ==
                   sizeof(struct crater__crypto_api),
               "every crater__crypto member has a symbol");

static void
load(void)
{
  crater__dl_load(&load_state, "libcrypto.so.3", "libssl3", syms, sizeof syms / sizeof syms[0],
                  &crater__crypto);
}

int
crater__crypto_load(crater_error_t *err)
{
  pthread_once(&load_once, load);
  return crater__dl_status(&load_state, err);
}
