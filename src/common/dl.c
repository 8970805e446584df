#include "common/dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int
crater__dl_load(crater__dl_state_t *st, const char *soname, const char *package,
                const crater__dl_sym_t *syms, size_t n, void *table)
{
  void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *why = dlerror();
    snprintf(st->msg, sizeof st->msg, "%s not found: apt-get install %s (%s)", soname, package,
             why ? why : "dlopen failed");
    st->kind = CRATER_ERR_UNAVAILABLE;
    st->failed = 1;
    return -1;
  }
  /* resolve everything before touching the table: all or nothing */
  void *fns[n > 0 ? n : 1];
  for (size_t i = 0; i < n; i++) {
    dlerror();
    fns[i] = dlsym(h, syms[i].name);
    if (fns[i] == NULL) {
      snprintf(st->msg, sizeof st->msg, "%s: missing symbol %s (too old? apt-get install %s)",
               soname, syms[i].name, package);
      st->kind = CRATER_ERR_UNAVAILABLE;
      st->failed = 1;
      dlclose(h);
      return -1;
    }
  }
  /* POSIX: dlsym's void * converts to a function pointer of the same size */
  for (size_t i = 0; i < n; i++)
    memcpy((char *) table + syms[i].offset, &fns[i], sizeof fns[i]);
  st->handle = h;
  st->failed = 0;
  return 0;
}

void
crater__dl_fail(crater__dl_state_t *st, crater_errkind_t kind, const char *msg)
{
  snprintf(st->msg, sizeof st->msg, "%s", msg);
  st->kind = kind;
  st->failed = 1;
}

int
crater__dl_status(const crater__dl_state_t *st, crater_error_t *err)
{
  if (!st->failed)
    return 0;
  if (err == NULL)
    return -1;
  return crater_error_make(err, st->kind, 0, "%s", st->msg);
}
