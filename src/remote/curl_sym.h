/*
 * libcurl, loaded on first use (dlopen "libcurl.so.4"): crater links no
 * libcurl symbol, so commands that never talk to a registry do not pay for
 * loading it and its ~40 dependencies (docs/architecture.md, "Start-up:
 * lazy-loaded libraries").  <curl/curl.h> is still included, for types and
 * constants only.
 *
 * Call crater__curl_load() before anything else; afterwards call libcurl
 * through the table: crater__curl.easy_init() for curl_easy_init() and so
 * on, and crater__curl_setopt() / crater__curl_getinfo() for the variadic
 * curl_easy_setopt() / curl_easy_getinfo(), which keep libcurl's
 * compile-time type checks (typecheck-gcc.h).
 */
#ifndef CRATER_REMOTE_CURL_SYM_H
#define CRATER_REMOTE_CURL_SYM_H

#include <curl/curl.h>

#include "common/error.h"

/* One pointer per libcurl function crater uses; __typeof__ keeps each
 * signature exactly the one <curl/curl.h> declares.  Filled once by
 * crater__curl_load() and read-only afterwards. */
struct crater__curl_api {
  __typeof__(curl_global_init) *global_init;
  __typeof__(curl_easy_init) *easy_init;
  __typeof__(curl_easy_setopt) *easy_setopt;   /* use crater__curl_setopt() */
  __typeof__(curl_easy_getinfo) *easy_getinfo; /* use crater__curl_getinfo() */
  __typeof__(curl_easy_perform) *easy_perform;
  __typeof__(curl_easy_reset) *easy_reset;
  __typeof__(curl_easy_cleanup) *easy_cleanup;
  __typeof__(curl_easy_strerror) *easy_strerror;
  __typeof__(curl_easy_escape) *easy_escape;
  __typeof__(curl_free) *free;
  __typeof__(curl_getdate) *getdate;
  __typeof__(curl_multi_init) *multi_init;
  __typeof__(curl_multi_add_handle) *multi_add_handle;
  __typeof__(curl_multi_remove_handle) *multi_remove_handle;
  __typeof__(curl_multi_perform) *multi_perform;
  __typeof__(curl_multi_poll) *multi_poll;
  __typeof__(curl_multi_info_read) *multi_info_read;
  __typeof__(curl_multi_cleanup) *multi_cleanup;
  __typeof__(curl_share_init) *share_init;
  __typeof__(curl_share_setopt) *share_setopt;
  __typeof__(curl_share_cleanup) *share_cleanup;
  __typeof__(curl_slist_append) *slist_append;
  __typeof__(curl_slist_free_all) *slist_free_all;
  __typeof__(curl_url) *url;
  __typeof__(curl_url_set) *url_set;
  __typeof__(curl_url_get) *url_get;
  __typeof__(curl_url_cleanup) *url_cleanup;
};
extern struct crater__curl_api crater__curl;

/* Loads libcurl.so.4, resolves the table and runs
 * curl_global_init(CURL_GLOBAL_DEFAULT), once per process (pthread_once;
 * safe from any thread).  Returns 0, or <0 with UNAVAILABLE ("libcurl.so.4
 * not found: apt-get install libcurl4 (...)") when the library or one of
 * its symbols is missing, INTERNAL when curl_global_init fails; every later
 * call reports the same error.  err may be NULL. */
int crater__curl_load(crater_error_t *err);

/* curl_easy_setopt / curl_easy_getinfo through the table.  The block-scope
 * pointer named like the libcurl function makes libcurl's own type-checking
 * macro (which ends by calling `curl_easy_setopt(...)`) call the loaded
 * function instead of the link-time symbol. */
#define crater__curl_setopt(handle, option, value)                                                 \
  __extension__({                                                                                  \
    __typeof__(curl_easy_setopt) *const curl_easy_setopt = crater__curl.easy_setopt;               \
    curl_easy_setopt(handle, option, value);                                                       \
  })
#define crater__curl_getinfo(handle, info, arg)                                                    \
  __extension__({                                                                                  \
    __typeof__(curl_easy_getinfo) *const curl_easy_getinfo = crater__curl.easy_getinfo;            \
    curl_easy_getinfo(handle, info, arg);                                                          \
  })

#endif
