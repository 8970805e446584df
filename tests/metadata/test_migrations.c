/* Metadata schema: fresh databases reach the latest version with WAL and
 * foreign keys; an older database (built at version 1 with data) migrates
 * forward keeping its rows; a newer one is refused. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "metadata/db.h"
#include "metadata/store.h"

static crater_error_t err;

static int
table_exists(crater_db_t *db, const char *name)
{
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(crater_db_handle(db),
                           "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1", -1, &st,
                           NULL) == SQLITE_OK);
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int r = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return r;
}

static int
pragma_int(crater_db_t *db, const char *sql)
{
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(crater_db_handle(db), sql, -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW);
  int v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

int
main(void)
{
  char *tmp = test_tmpdir("migrations");
  char path[8400];
  CHECK(crater_db_latest_version() >= 3);

  /* fresh */
  snprintf(path, sizeof path, "%s/fresh.db", tmp);
  crater_db_t *db = crater_db_open(path, &err);
  CHECK(db != NULL);
  CHECK(crater_db_version(db, &err) == crater_db_latest_version());
  CHECK(pragma_int(db, "PRAGMA foreign_keys") == 1);
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(crater_db_handle(db), "PRAGMA journal_mode", -1, &st, NULL) == 0);
  CHECK(sqlite3_step(st) == SQLITE_ROW);
  CHECK_STREQ((const char *) sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  CHECK(table_exists(db, "images") && table_exists(db, "lease_resources"));
  crater_db_close(db);
  /* reopening is a no-op, and takes no write lock: it opens while another
   * connection writes (a `crater daemon` worker opens its store while a
   * command runs), where waiting for it took up to busy_timeout */
  crater_db_t *writer = crater_db_open(path, &err);
  CHECK(writer != NULL);
  CHECK_OK(crater_db_begin(writer, &err));
  CHECK_OK(crater__db_exec(writer, "INSERT INTO namespaces VALUES ('busy', 1, 1)", &err));
  db = crater_db_open(path, &err); /* (before: NULL after busy_timeout) */
  CHECK(db && crater_db_version(db, &err) == crater_db_latest_version());
  crater_db_close(db);
  CHECK_OK(crater_db_commit(writer, &err));
  crater_db_close(writer);

  /* an old (version 1) database with data migrates forward */
  snprintf(path, sizeof path, "%s/old.db", tmp);
  db = crater__db_open_version(path, 1, &err);
  CHECK(db != NULL);
  CHECK(crater_db_version(db, &err) == 1);
  CHECK(table_exists(db, "content") && !table_exists(db, "images"));
  CHECK_OK(crater__db_exec(db,
                           "INSERT INTO namespaces VALUES ('old', 1, 1);"
                           "INSERT INTO content VALUES ('old', 'sha256:"
                           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',"
                           " 0, 1, 1);",
                           &err));
  crater_db_close(db);
  db = crater_db_open(path, &err);
  CHECK(db != NULL);
  CHECK(crater_db_version(db, &err) == crater_db_latest_version());
  CHECK(table_exists(db, "images") && table_exists(db, "leases"));
  CHECK(pragma_int(db, "SELECT count(*) FROM content WHERE namespace = 'old'") == 1);
  crater_db_close(db);

  /* a database newer than this build is refused */
  snprintf(path, sizeof path, "%s/new.db", tmp);
  db = crater_db_open(path, &err);
  char *set = NULL;
  CHECK(asprintf(&set, "PRAGMA user_version = %d", crater_db_latest_version() + 1) > 0);
  CHECK_OK(crater__db_exec(db, set, &err));
  free(set);
  crater_db_close(db);
  crater_error_t e = NULL;
  CHECK(crater_db_open(path, &e) == NULL);
  CHECK(e->kind == CRATER_ERR_FAILED_PRECONDITION && strstr(e->msg, "newer"));
  crater_error_release(&e);

  /* the store opens a root with everything in it */
  char root[4000];
  snprintf(root, sizeof root, "%s/root", tmp);
  crater_store_t *s = crater_store_open(root, &err);
  CHECK(s != NULL);
  snprintf(path, sizeof path, "%s/metadata.db", root);
  CHECK(access(path, F_OK) == 0);
  snprintf(path, sizeof path, "%s/content/blobs", root);
  CHECK(access(path, F_OK) == 0);
  struct stat sb;
  CHECK(stat(root, &sb) == 0 && (sb.st_mode & 0777) == 0711);
  crater_store_close(s);

  test_rmtree(tmp);
  return 0;
}
