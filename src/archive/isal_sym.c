#include "archive/isal_sym.h"

#include <pthread.h>
#include <stddef.h>

#include "common/dl.h"

struct crater__isal_api crater__isal;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static crater__dl_state_t load_state;

#define SYM(f)                                                                                     \
  {                                                                                                \
    "isal_" #f, offsetof(struct crater__isal_api, f)                                               \
  }
static const crater__dl_sym_t syms[] = {
  SYM(inflate_init), SYM(inflate_reset), SYM(inflate), SYM(deflate_init), SYM(deflate),
};
#undef SYM
_Static_assert(sizeof syms / sizeof syms[0] * sizeof(void (*)(void)) ==
                   sizeof(struct crater__isal_api),
               "every crater__isal member has a symbol");

static void
load(void)
{
  crater__dl_load(&load_state, "libisal.so.2", "libisal2", syms, sizeof syms / sizeof syms[0],
                  &crater__isal);
}

int
crater__isal_load(crater_error_t *err)
{
  pthread_once(&load_once, load);
  return crater__dl_status(&load_state, err);
}
