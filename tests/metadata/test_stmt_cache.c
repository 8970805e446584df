/* The connection's prepared-statement cache (db.c): a released statement is
 * handed out again for the same SQL, reset and with its bindings cleared;
 * one in use is never handed out twice (a nested use gets its own); a
 * released statement holds no read transaction (a writer of another
 * connection commits); transactions run through cached statements; a
 * statement still in use at close is finalized (ASan's leak check). */
#include <unistd.h>

#include "check.h"
#include "metadata/db.h"

static crater_error_t err;

int
main(void)
{
  char *tmp = test_tmpdir("stmt-cache");
  char path[8400];
  snprintf(path, sizeof path, "%s/m.db", tmp);
  crater_db_t *db = crater_db_open(path, &err);
  CHECK(db != NULL);
  CHECK(crater__db_exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)", &err) == 0);

  /* the same SQL, released in between: the same statement */
  const char *ins = "INSERT INTO t (k, v) VALUES (?1, ?2)";
  sqlite3_stmt *a = crater__db_prepare(db, ins, &err);
  CHECK(a != NULL && crater__db_stmt_cached(db, a));
  crater__db_bind_text(a, 1, "one");
  crater__db_bind_text(a, 2, "1");
  CHECK(crater__db_step_done(db, a, &err) == 0);
  crater__db_release(db, a);
  sqlite3_stmt *b = crater__db_prepare(db, ins, &err);
  CHECK(b == a);
  /* reset, bindings cleared: v is NULL */
  crater__db_bind_text(b, 1, "two");
  CHECK(crater__db_step_done(db, b, &err) == 0);
  crater__db_release(db, b);

  const char *sel = "SELECT v FROM t WHERE k = ?1";
  sqlite3_stmt *s1 = crater__db_prepare(db, sel, &err);
  crater__db_bind_text(s1, 1, "two");
  CHECK(sqlite3_step(s1) == SQLITE_ROW);
  CHECK(sqlite3_column_type(s1, 0) == SQLITE_NULL);
  /* in use: a nested prepare of the same SQL gets another statement */
  sqlite3_stmt *s2 = crater__db_prepare(db, sel, &err);
  CHECK(s2 != NULL && s2 != s1);
  crater__db_bind_text(s2, 1, "one");
  CHECK(sqlite3_step(s2) == SQLITE_ROW);
  CHECK_STREQ((const char *) sqlite3_column_text(s2, 0), "1");
  crater__db_release(db, s2);
  crater__db_release(db, s1);
  /* both kept, each handed out again */
  sqlite3_stmt *s3 = crater__db_prepare(db, sel, &err);
  sqlite3_stmt *s4 = crater__db_prepare(db, sel, &err);
  CHECK((s3 == s1 && s4 == s2) || (s3 == s2 && s4 == s1));
  crater__db_release(db, s3);
  crater__db_release(db, s4);

  /* a released statement holds no read transaction: after reading, another
   * connection checkpoints the whole WAL (a reader would pin it) */
  s1 = crater__db_prepare(db, sel, &err);
  crater__db_bind_text(s1, 1, "one");
  CHECK(sqlite3_step(s1) == SQLITE_ROW);
  crater__db_release(db, s1);
  crater_db_t *other = crater_db_open(path, &err);
  CHECK(other != NULL);
  CHECK(crater_db_begin(other, &err) == 0);
  CHECK(crater__db_exec(other, "INSERT INTO t (k, v) VALUES ('three', '3')", &err) == 0);
  CHECK(crater_db_commit(other, &err) == 0);
  int logged = -1, done = -1;
  CHECK(sqlite3_wal_checkpoint_v2(crater_db_handle(other), "main", SQLITE_CHECKPOINT_TRUNCATE,
                                  &logged, &done) == SQLITE_OK);
  CHECK(logged == 0 && done == 0);
  crater_db_close(other);

  /* transactions through cached statements: rollback undoes, commit keeps;
   * a failed statement's error names SQLite's message */
  CHECK(crater_db_begin(db, &err) == 0);
  CHECK(crater__db_exec(db, "INSERT INTO t (k, v) VALUES ('four', '4')", &err) == 0);
  crater_db_rollback(db);
  CHECK(crater_db_begin(db, &err) == 0);
  sqlite3_stmt *dup = crater__db_prepare(db, ins, &err);
  crater__db_bind_text(dup, 1, "one");
  CHECK(crater__db_step_done(db, dup, &err) < 0);
  CHECK(err && strstr(err->msg, "UNIQUE constraint failed"));
  crater_error_release(&err);
  crater__db_release(db, dup);
  CHECK(crater_db_commit(db, &err) == 0);
  s1 = crater__db_prepare(db, "SELECT count(*) FROM t", &err);
  CHECK(sqlite3_step(s1) == SQLITE_ROW && sqlite3_column_int(s1, 0) == 3);
  crater__db_release(db, s1);

  /* a statement the cache does not keep (none here) and NULL are tolerated;
   * one left in use is finalized by close */
  crater__db_release(db, NULL);
  (void) crater__db_prepare(db, sel, &err);
  crater_db_close(db);

  test_rmtree(tmp);
  return 0;
}
