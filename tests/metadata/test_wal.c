/* The metadata connection's WAL handling: a writer that meets another
 * connection's write transaction waits for it (the busy handler) instead
 * of failing; a connection closing after 200 frames truncates the WAL,
 * unless checkpoints are deferred (a `crater daemon` worker), when only
 * crater_db_checkpoint (its janitor's) does. */
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "metadata/db.h"

static crater_error_t err;

static long long
file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? (long long) st.st_size : -1;
}

/* n transactions of one row each: n frames or more in the WAL */
static void
write_rows(crater_db_t *db, int n)
{
  for (int i = 0; i < n; i++) {
    CHECK_OK(crater_db_begin(db, &err));
    CHECK_OK(crater__db_exec(db, "INSERT INTO t (v) VALUES (randomblob(300))", &err));
    CHECK_OK(crater_db_commit(db, &err));
  }
}

static void *
commit_later(void *arg)
{
  struct timespec ts = { 0, 50 * 1000 * 1000 };
  nanosleep(&ts, NULL);
  CHECK_OK(crater_db_commit(arg, &err));
  return NULL;
}

int
main(void)
{
  char *tmp = test_tmpdir("wal");
  char path[8400], wal[8500];
  snprintf(path, sizeof path, "%s/meta.db", tmp);
  snprintf(wal, sizeof wal, "%s-wal", path);

  crater_db_t *a = crater_db_open(path, &err);
  CHECK(a != NULL);
  CHECK_OK(crater__db_exec(a, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)", &err));

  /* another connection's write transaction: this one waits, then writes */
  crater_db_t *b = crater_db_open(path, &err);
  CHECK(b != NULL);
  CHECK_OK(crater_db_begin(a, &err));
  CHECK_OK(crater__db_exec(a, "INSERT INTO t (v) VALUES ('a')", &err));
  pthread_t th;
  CHECK(pthread_create(&th, NULL, commit_later, a) == 0);
  CHECK_OK(crater_db_begin(b, &err));
  CHECK_OK(crater__db_exec(b, "INSERT INTO t (v) VALUES ('b')", &err));
  CHECK_OK(crater_db_commit(b, &err));
  pthread_join(th, NULL);
  crater_db_close(b);

  /* a connection that wrote 200 frames and more truncates the WAL at close */
  write_rows(a, 250);
  CHECK(file_size(wal) > 200 * 4096);
  crater_db_close(a);
  CHECK(file_size(wal) == 0);

  /* deferred: its commits and its close leave the WAL, under 1000 frames */
  crater_db_defer_checkpoints(true);
  a = crater_db_open(path, &err);
  CHECK(a != NULL);
  write_rows(a, 250);
  long long grown = file_size(wal);
  CHECK(grown > 200 * 4096);
  crater_db_close(a);
  CHECK(file_size(wal) == grown);
  /* ... the janitor's checkpoint truncates it, the rows all there; not
   * while it holds fewer frames than it was asked to wait for */
  a = crater_db_open(path, &err);
  CHECK(a != NULL);
  CHECK_OK(crater_db_checkpoint(a, 1000, &err));
  CHECK(file_size(wal) == grown);
  CHECK_OK(crater_db_checkpoint(a, 0, &err));
  CHECK(file_size(wal) == 0);
  sqlite3_stmt *st;
  CHECK(sqlite3_prepare_v2(crater_db_handle(a), "SELECT count(*) FROM t", -1, &st, NULL) ==
        SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == 502);
  sqlite3_finalize(st);
  /* ... and a reader in the way: refused (UNAVAILABLE), nothing lost */
  write_rows(a, 5);
  b = crater_db_open(path, &err);
  CHECK(b != NULL);
  CHECK_OK(crater__db_exec(b, "BEGIN", &err)); /* a read transaction */
  CHECK(sqlite3_prepare_v2(crater_db_handle(b), "SELECT count(*) FROM t", -1, &st, NULL) ==
        SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW);
  write_rows(a, 5); /* b reads an older snapshot now */
  CHECK(crater_db_checkpoint(a, 0, &err) < 0);
  CHECK(err->kind == CRATER_ERR_UNAVAILABLE);
  crater_error_release(&err);
  sqlite3_finalize(st);
  crater_db_rollback(b);
  crater_db_close(b);
  CHECK_OK(crater_db_checkpoint(a, 0, &err));
  CHECK(file_size(wal) == 0);
  crater_db_close(a);
  crater_db_defer_checkpoints(false);
  free(tmp);
  return 0;
}
