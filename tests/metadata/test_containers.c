/* Containers: id validation, create/get/list/update/delete, kinds
 * (already_exists, not_found, invalid_argument), JSON checks, field-path
 * updates and immutable fields, labels and filters, namespace scoping,
 * delete refusing a namespace that holds containers, and the migration
 * from the previous schema version. */
#include <sqlite3.h>

#include "check.h"
#include "metadata/containers.h"
#include "metadata/db.h"
#include "metadata/store.h"

static crater_error_t err;

static void
expect_kind(int r, crater_errkind_t kind, const char *what)
{
  crater_error_t *e = &err;
  if (r >= 0 || *e == NULL || (*e)->kind != kind) {
    fprintf(stderr, "%s: want kind %s, got r=%d %s (%s)\n", what, crater_errkind_name(kind), r,
            *e ? crater_errkind_name((*e)->kind) : "-", *e ? (*e)->msg : "");
    exit(1);
  }
  crater_error_release(e);
}

static void
bad_id(const char *id)
{
  expect_kind(crater_container_id_validate(id, &err), CRATER_ERR_INVALID_ARGUMENT, id);
}

static void
check_migration(const char *tmp)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/old.db", tmp);
  int latest = crater_db_latest_version();
  /* find our migration by name, build the db just before it */
  int mine = -1;
  for (int i = 0; i < crater__db_nmigrations; i++)
    if (strcmp(crater__db_migrations[i].name, "containers") == 0)
      mine = i;
  CHECK(mine >= 0);
  crater_db_t *db = crater__db_open_version(path, mine, &err);
  CHECK(db != NULL);
  CHECK(crater_db_version(db, &err) == mine);
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(crater_db_handle(db),
                           "SELECT count(*) FROM sqlite_master WHERE name = 'containers'", -1, &st,
                           NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0);
  sqlite3_finalize(st);
  crater_db_close(db);
  db = crater_db_open(path, &err);
  CHECK(db != NULL);
  CHECK(crater_db_version(db, &err) == latest);
  CHECK(sqlite3_prepare_v2(crater_db_handle(db),
                           "SELECT count(*) FROM sqlite_master WHERE name IN "
                           "('containers', 'container_labels')",
                           -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 2);
  sqlite3_finalize(st);
  crater_db_close(db);
}

int
main(void)
{
  char *tmp = test_tmpdir("containers");
  check_migration(tmp);
  crater_store_t *s = crater_store_open(tmp, &err);
  CHECK(s != NULL);

  /* ids */
  CHECK_OK(crater_container_id_validate("a", &err));
  CHECK_OK(crater_container_id_validate("Web-1_x.y", &err));
  char longid[80];
  memset(longid, 'a', 76);
  longid[76] = 0;
  CHECK_OK(crater_container_id_validate(longid, &err));
  longid[76] = 'a';
  longid[77] = 0;
  bad_id(longid);
  bad_id("");
  bad_id("-a");
  bad_id(".a");
  bad_id("a/b");
  bad_id("a b");
  bad_id("..");

  /* create + get */
  crater_container_t c = { 0 };
  c.id = "web";
  c.image = "docker.io/library/busybox:latest";
  c.snapshotter = "overlayfs";
  c.snapshot_key = "web";
  c.spec = "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"sh\"]}}";
  c.runtime = "crater";
  c.runtime_options = "{\"root\":\"/run/x\"}";
  crater_labels_set(&c.labels, "team", "core");
  crater_labels_set(&c.labels, "env", "prod");
  CHECK_OK(crater_store_container_create(s, "default", &c, &err));
  CHECK(c.created_at > 0 && c.updated_at == c.created_at);
  int64_t made_at = c.created_at;
  expect_kind(crater_store_container_create(s, "default", &c, &err), CRATER_ERR_ALREADY_EXISTS,
              "duplicate create");
  /* same id in another namespace is another container (namespace created) */
  CHECK_OK(crater_store_container_create(s, "other", &c, &err));

  crater_container_t got;
  CHECK_OK(crater_store_container_get(s, "default", "web", &got, &err));
  CHECK_STREQ(got.id, "web");
  CHECK(got.created_at == made_at);
  CHECK_STREQ(got.image, c.image);
  CHECK_STREQ(got.snapshotter, "overlayfs");
  CHECK_STREQ(got.snapshot_key, "web");
  CHECK_STREQ(got.spec, c.spec);
  CHECK_STREQ(got.runtime, "crater");
  CHECK_STREQ(got.runtime_options, c.runtime_options);
  CHECK(got.extensions == NULL);
  CHECK_STREQ(crater_labels_get(&got.labels, "team"), "core");
  CHECK(got.labels.n == 2);
  CHECK(got.created_at > 0 && got.created_at == got.updated_at);
  int64_t created = got.created_at;
  crater_container_clear(&got);
  expect_kind(crater_store_container_get(s, "default", "nope", &got, &err), CRATER_ERR_NOT_FOUND,
              "get missing");
  expect_kind(crater_store_container_get(s, "default", "a/b", &got, &err),
              CRATER_ERR_INVALID_ARGUMENT, "get bad id");

  /* validation on create */
  crater_container_t bad = { .id = "bad", .spec = "[1,2]", .runtime = "runc" };
  expect_kind(crater_store_container_create(s, "default", &bad, &err), CRATER_ERR_INVALID_ARGUMENT,
              "spec not an object");
  bad.spec = "{nope";
  expect_kind(crater_store_container_create(s, "default", &bad, &err), CRATER_ERR_INVALID_ARGUMENT,
              "spec not json");
  bad.spec = NULL;
  expect_kind(crater_store_container_create(s, "default", &bad, &err), CRATER_ERR_INVALID_ARGUMENT,
              "spec missing");
  bad.spec = "{}";
  bad.runtime = NULL;
  expect_kind(crater_store_container_create(s, "default", &bad, &err), CRATER_ERR_INVALID_ARGUMENT,
              "runtime missing");
  bad.runtime = "runc";
  bad.snapshot_key = "k";
  expect_kind(crater_store_container_create(s, "default", &bad, &err), CRATER_ERR_INVALID_ARGUMENT,
              "key without snapshotter");
  bad.snapshot_key = NULL;
  bad.extensions = "3";
  expect_kind(crater_store_container_create(s, "default", &bad, &err), CRATER_ERR_INVALID_ARGUMENT,
              "extensions not an object");
  expect_kind(crater_store_container_create(s, "Bad NS", &c, &err), CRATER_ERR_INVALID_ARGUMENT,
              "bad namespace");

  /* a rootfs-directory container: no image, no snapshot */
  crater_container_t dirc = { .id = "plain",
                              .spec = "{\"root\":{\"path\":\"/tmp/r\"}}",
                              .runtime = "runc",
                              .extensions = "{\"x\":{\"y\":1}}" };
  CHECK_OK(crater_store_container_create(s, "default", &dirc, &err));

  /* list + filters */
  crater_container_t *arr;
  size_t n;
  CHECK_OK(crater_store_container_list(s, "default", NULL, 0, &arr, &n, &err));
  CHECK(n == 2);
  CHECK_STREQ(arr[0].id, "plain");
  CHECK_STREQ(arr[1].id, "web");
  CHECK_STREQ(arr[0].extensions, "{\"x\":{\"y\":1}}");
  crater_containers_free(arr, n);
  const char *f1[] = { "labels.team==core" };
  CHECK_OK(crater_store_container_list(s, "default", f1, 1, &arr, &n, &err));
  CHECK(n == 1 && strcmp(arr[0].id, "web") == 0);
  crater_containers_free(arr, n);
  const char *f2[] = { "runtime==runc", "image==docker.io/library/busybox:latest" };
  CHECK_OK(crater_store_container_list(s, "default", f2, 2, &arr, &n, &err));
  CHECK(n == 2);
  crater_containers_free(arr, n);
  const char *f3[] = { "labels.\"unterminated" };
  expect_kind(crater_store_container_list(s, "default", f3, 1, &arr, &n, &err),
              CRATER_ERR_INVALID_ARGUMENT, "bad filter");
  CHECK_OK(crater_store_container_list(s, "empty-ns", NULL, 0, &arr, &n, &err));
  CHECK(n == 0);
  crater_containers_free(arr, n);

  /* update: one label key, then full update, immutable fields */
  crater_container_t up = { .id = "web" };
  crater_labels_set(&up.labels, "team", "");
  crater_labels_set(&up.labels, "new", "1");
  const char *fl[] = { "labels.team", "labels.new" };
  CHECK_OK(crater_store_container_update(s, "default", &up, fl, 2, &err));
  CHECK_OK(crater_store_container_get(s, "default", "web", &got, &err));
  CHECK(got.labels.n == 2);
  CHECK(crater_labels_get(&got.labels, "team") == NULL);
  CHECK_STREQ(crater_labels_get(&got.labels, "env"), "prod");
  CHECK_STREQ(crater_labels_get(&got.labels, "new"), "1");
  CHECK_STREQ(got.spec, c.spec); /* untouched */
  CHECK(got.created_at == created && got.updated_at >= created);
  crater_container_clear(&got);
  crater_labels_clear(&up.labels);

  const char *fs[] = { "spec" };
  up.spec = "{\"ociVersion\":\"1.1.0\"}";
  CHECK_OK(crater_store_container_update(s, "default", &up, fs, 1, &err));
  CHECK_OK(crater_store_container_get(s, "default", "web", &got, &err));
  CHECK_STREQ(got.spec, up.spec);
  CHECK_STREQ(got.image, c.image);
  CHECK(got.labels.n == 2);
  crater_container_clear(&got);

  const char *fi[] = { "snapshot_key" };
  expect_kind(crater_store_container_update(s, "default", &up, fi, 1, &err),
              CRATER_ERR_INVALID_ARGUMENT, "immutable path");
  const char *fu[] = { "nonsense" };
  expect_kind(crater_store_container_update(s, "default", &up, fu, 1, &err),
              CRATER_ERR_INVALID_ARGUMENT, "unknown path");
  crater_container_t full = c;
  full.labels = (crater_labels_t){ 0 };
  full.runtime = "runc";
  expect_kind(crater_store_container_update(s, "default", &full, NULL, 0, &err),
              CRATER_ERR_INVALID_ARGUMENT, "runtime changed");
  full.runtime = "crater";
  full.image = "other:1";
  CHECK_OK(crater_store_container_update(s, "default", &full, NULL, 0, &err));
  CHECK_OK(crater_store_container_get(s, "default", "web", &got, &err));
  CHECK_STREQ(got.image, "other:1");
  CHECK(got.labels.n == 0); /* full update replaces labels */
  crater_container_clear(&got);
  full.id = "ghost";
  expect_kind(crater_store_container_update(s, "default", &full, NULL, 0, &err),
              CRATER_ERR_NOT_FOUND, "update missing");
  up.spec = "not json";
  expect_kind(crater_store_container_update(s, "default", &up, fs, 1, &err),
              CRATER_ERR_INVALID_ARGUMENT, "update bad spec");

  /* namespace delete names the containers it holds */
  crater_error_t e = NULL;
  CHECK(crater_store_namespace_delete(s, "other", &e) < 0);
  CHECK(e->kind == CRATER_ERR_FAILED_PRECONDITION);
  if (strstr(e->msg, "1 container") == NULL) {
    fprintf(stderr, "namespace delete message does not name containers: %s\n", e->msg);
    exit(1);
  }
  crater_error_release(&e);

  /* delete */
  CHECK_OK(crater_store_container_delete(s, "other", "web", &err));
  CHECK_OK(crater_store_namespace_delete(s, "other", &err));
  CHECK_OK(crater_store_container_delete(s, "default", "web", &err));
  expect_kind(crater_store_container_delete(s, "default", "web", &err), CRATER_ERR_NOT_FOUND,
              "delete twice");
  CHECK_OK(crater_store_container_delete(s, "default", "plain", &err));
  /* labels went with the rows (cascade) */
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(crater_db_handle(crater_store_db(s)),
                           "SELECT count(*) FROM container_labels", -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0);
  sqlite3_finalize(st);

  crater_labels_clear(&c.labels);
  crater_store_close(s);
  test_rmtree(tmp);
  return 0;
}
