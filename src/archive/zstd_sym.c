#include "archive/zstd_sym.h"

#include <pthread.h>
#include <stddef.h>

#include "common/dl.h"

struct crater__zstd_api crater__zstd;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static crater__dl_state_t load_state;

#define SYM(f)                                                                                     \
  {                                                                                                \
    "ZSTD_" #f, offsetof(struct crater__zstd_api, f)                                               \
  }
static const crater__dl_sym_t syms[] = {
  SYM(isError),          SYM(getErrorName), SYM(createDCtx), SYM(freeDCtx),
  SYM(decompressStream), SYM(createCCtx),   SYM(freeCCtx),   SYM(compressStream2),
};
#undef SYM
_Static_assert(sizeof syms / sizeof syms[0] * sizeof(void (*)(void)) ==
                   sizeof(struct crater__zstd_api),
               "every crater__zstd member has a symbol");

static void
load(void)
{
  crater__dl_load(&load_state, "libzstd.so.1", "libzstd1", syms, sizeof syms / sizeof syms[0],
                  &crater__zstd);
}

int
crater__zstd_load(crater_error_t *err)
{
  pthread_once(&load_once, load);
  return crater__dl_status(&load_state, err);
}
