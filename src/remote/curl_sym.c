#include "remote/curl_sym.h"

#include <pthread.h>
#include <stddef.h>

#include "common/dl.h"

struct crater__curl_api crater__curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static crater__dl_state_t load_state;

#define SYM(f)                                                                                     \
  {                                                                                                \
    "curl_" #f, offsetof(struct crater__curl_api, f)                                               \
  }
static const crater__dl_sym_t syms[] = {
  SYM(global_init),      SYM(easy_init),
  SYM(easy_setopt),      SYM(easy_getinfo),
  SYM(easy_perform),     SYM(easy_reset),
  SYM(easy_cleanup),     SYM(easy_strerror),
  SYM(easy_escape),      SYM(free),
  SYM(getdate),          SYM(multi_init),
  SYM(multi_add_handle), SYM(multi_remove_handle),
  SYM(multi_perform),    SYM(multi_poll),
  SYM(multi_info_read),  SYM(multi_cleanup),
  SYM(share_init),       SYM(share_setopt),
  SYM(share_cleanup),    SYM(slist_append),
  SYM(slist_free_all),   SYM(url),
  SYM(url_set),          SYM(url_get),
  SYM(url_cleanup),
};
#undef SYM
_Static_assert(sizeof syms / sizeof syms[0] * sizeof(void (*)(void)) ==
                   sizeof(struct crater__curl_api),
               "every crater__curl member has a symbol");

static void
load(void)
{
  if (crater__dl_load(&load_state, "libcurl.so.4", "libcurl4", syms, sizeof syms / sizeof syms[0],
                      &crater__curl) < 0)
    return;
  if (crater__curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    crater__dl_fail(&load_state, CRATER_ERR_INTERNAL, "curl_global_init failed");
}

int
crater__curl_load(crater_error_t *err)
{
  pthread_once(&load_once, load);
  return crater__dl_status(&load_state, err);
}
