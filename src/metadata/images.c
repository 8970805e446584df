/*
 * Images: per-namespace names pointing at a target descriptor (media type,
 * digest, size) with labels, as containerd's core/metadata/images.go.
 * The pull workflow (Lua) creates and updates them; GC treats them as
 * roots.
 */
#include "metadata/store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

static int
validate(const char *ns, const crater_image_t *img, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  if (img->name == NULL || img->name[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "image: empty name");
  if (strlen(img->name) > 4096)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "image %.64s...: name too long", img->name);
  if (img->media_type == NULL || img->media_type[0] == '\0')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "image %s: target needs a media type", img->name);
  if (crater_digest_validate(img->digest, err) < 0)
    return crater_error_wrap(err, "image %s: target", img->name);
  if (img->size < 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "image %s: negative target size", img->name);
  if (crater_labels_validate(&img->labels, err) < 0)
    return crater_error_wrap(err, "image %s", img->name);
  return 0;
}

static int
write_image(crater_store_t *s, const char *ns, const crater_image_t *img, bool create,
            crater_error_t *err)
{
  if (validate(ns, img, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  if (create && crater__store_ensure_namespace(s, ns, err) < 0)
    return crater__store_rollback(s);
  const char *sql = create ? "INSERT INTO images (namespace, name, media_type, digest, size, "
                             "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) "
                             "ON CONFLICT DO NOTHING"
                           : "UPDATE images SET media_type = ?3, digest = ?4, size = ?5, "
                             "updated_at = ?6 WHERE namespace = ?1 AND name = ?2";
  sqlite3_stmt *st = crater__db_prepare(s->db, sql, err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, img->name);
  crater__db_bind_text(st, 3, img->media_type);
  crater__db_bind_text(st, 4, img->digest);
  sqlite3_bind_int64(st, 5, img->size);
  sqlite3_bind_int64(st, 6, crater__now_ns());
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    return crater__store_rollback(s);
  if (sqlite3_changes(crater_db_handle(s->db)) == 0) {
    crater_db_rollback(s->db);
    if (create)
      return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, EEXIST,
                               "image %s: already exists in namespace %s", img->name, ns);
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT,
                             "image %s: not found in namespace %s", img->name, ns);
  }
  if (crater__db_labels_store(s->db, "image_labels", "name", ns, img->name, &img->labels, true,
                              err) < 0 ||
      crater_db_commit(s->db, err) < 0) {
    crater_db_rollback(s->db);
    return crater_error_wrap(err, "%s image %s", create ? "create" : "update", img->name);
  }
  return 0;
}

int
crater_store_image_create(crater_store_t *s, const char *ns, const crater_image_t *img,
                          crater_error_t *err)
{
  return write_image(s, ns, img, true, err);
}

int
crater_store_image_update(crater_store_t *s, const char *ns, const crater_image_t *img,
                          crater_error_t *err)
{
  return write_image(s, ns, img, false, err);
}

static void
clear_image(void *rec)
{
  crater_image_clear(rec);
}

#define IMAGE_COLS "name, media_type, digest, size, created_at, updated_at"

static int
load_image(crater_store_t *s, const char *ns, sqlite3_stmt *st, void *rec, crater_error_t *err)
{
  crater_image_t *out = rec;
  memset(out, 0, sizeof *out);
  out->name = crater__db_column_strdup(st, 0);
  out->media_type = crater__db_column_strdup(st, 1);
  out->digest = crater__db_column_strdup(st, 2);
  out->size = sqlite3_column_int64(st, 3);
  out->created_at = sqlite3_column_int64(st, 4);
  out->updated_at = sqlite3_column_int64(st, 5);
  return crater__db_labels_load(s->db, "image_labels", "name", ns, out->name, &out->labels, err);
}

int
crater_store_image_get(crater_store_t *s, const char *ns, const char *name, crater_image_t *out,
                       crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  return crater__meta_get(s, ns, name,
                          "SELECT " IMAGE_COLS " FROM images WHERE namespace = ?1 AND name = ?2",
                          "image", load_image, clear_image, out, err);
}

static const char *
image_lookup(const void *rec, const char *field, char *scratch, size_t len)
{
  const crater_image_t *img = rec;
  if (strncmp(field, "labels.", 7) == 0)
    return crater_labels_get(&img->labels, field + 7);
  if (strcmp(field, "name") == 0)
    return img->name;
  if (strcmp(field, "target.digest") == 0)
    return img->digest;
  if (strcmp(field, "target.media_type") == 0 || strcmp(field, "target.mediatype") == 0)
    return img->media_type;
  if (strcmp(field, "target.size") == 0) {
    snprintf(scratch, len, "%" PRId64, img->size);
    return scratch;
  }
  return NULL;
}

int
crater_store_image_list(crater_store_t *s, const char *ns, const char *const *filters,
                        size_t nfilters, crater_image_t **out, size_t *n, crater_error_t *err)
{
  void *arr;
  int r = crater__meta_list(
      s, ns, "SELECT " IMAGE_COLS " FROM images WHERE namespace = ?1 ORDER BY name", filters,
      nfilters, sizeof **out, load_image, image_lookup, clear_image, &arr, n, "images", err);
  *out = arr;
  return r;
}

int
crater_store_image_delete(crater_store_t *s, const char *ns, const char *name, crater_error_t *err)
{
  if (crater_namespace_validate(ns, err) < 0)
    return -1;
  if (crater_db_begin(s->db, err) < 0)
    return -1;
  sqlite3_stmt *st =
      crater__db_prepare(s->db, "DELETE FROM images WHERE namespace = ?1 AND name = ?2", err);
  if (st == NULL)
    return crater__store_rollback(s);
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, name);
  int r = crater__db_step_done(s->db, st, err);
  crater__db_release(s->db, st);
  if (r < 0)
    return crater__store_rollback(s);
  if (sqlite3_changes(crater_db_handle(s->db)) == 0) {
    crater_db_rollback(s->db);
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT,
                             "image %s: not found in namespace %s", name ? name : "", ns);
  }
  if (crater_db_commit(s->db, err) < 0)
    return crater_error_wrap(err, "delete image %s", name);
  return 0;
}

void
crater_image_clear(crater_image_t *img)
{
  if (img == NULL)
    return;
  free(img->name);
  free(img->media_type);
  free(img->digest);
  img->name = img->media_type = img->digest = NULL;
  crater_labels_clear(&img->labels);
}

void
crater_images_free(crater_image_t *arr, size_t n)
{
  for (size_t i = 0; i < n; i++)
    crater_image_clear(&arr[i]);
  free(arr);
}
