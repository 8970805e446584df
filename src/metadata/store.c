/*
 * The store handle: opens a root's content store and metadata database
 * together.  See store.h.
 */
#include "metadata/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

crater_store_t *
crater_store_open(const char *root, crater_error_t *err)
{
  if (root == NULL || root[0] == '\0') {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "open store: empty root");
    return NULL;
  }
  crater_store_t *s = xmalloc0(sizeof *s);
  /* Absolute, always: paths under the root end up in mount options and
   * task files that other processes (the shim, the runtime) use from
   * other working directories. */
  if (root[0] == '/') {
    s->root = xstrdup(root);
  } else {
    cleanup_free char *cwd = getcwd(NULL, 0);
    if (cwd == NULL) {
      crater_error_sys(err, errno, "open store %s: current directory", root);
      free(s);
      return NULL;
    }
    s->root = crater__path_join(cwd, root);
  }
  root = s->root;
  cleanup_free char *cdir = crater__path_join(root, "content");
  cleanup_free char *dbp = crater__path_join(root, "metadata.db");
  struct stat st;
  bool fresh = stat(root, &st) < 0;
  if (crater__mkdir_p(root, 0711, err) < 0)
    goto fail;
  if (fresh)
    chmod(root, 0711); /* umask must not loosen or tighten the root */
  s->content = crater_content_open(cdir, err);
  if (s->content == NULL)
    goto fail;
  s->db = crater_db_open(dbp, err);
  if (s->db == NULL)
    goto fail;
  return s;
fail:
  crater_error_wrap(err, "open store %s", root);
  crater_store_close(s);
  return NULL;
}

void
crater_store_close(crater_store_t *s)
{
  if (s == NULL)
    return;
  crater_db_close(s->db);
  crater_content_close(s->content);
  free(s->root);
  free(s);
}

const char *
crater_store_root(const crater_store_t *s)
{
  return s->root;
}

crater_content_t *
crater_store_content(crater_store_t *s)
{
  return s->content;
}

crater_db_t *
crater_store_db(crater_store_t *s)
{
  return s->db;
}

char *
crater__store_ingest_key(const char *ns, const char *ref)
{
  return xasprintf("%s/%s", ns, ref);
}
