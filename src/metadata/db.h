/*
 * The metadata database: one SQLite file (<root>/metadata.db) shared by
 * every process that opens the root (CLI commands, the daemon, tests).
 *
 * Concurrency rules (docs/design/metadata.md):
 *  - WAL journal, foreign_keys=ON, busy_timeout 10 s on every connection;
 *  - every write runs inside crater_db_begin() (BEGIN IMMEDIATE), so the
 *    write lock is taken up front and no transaction fails half-way with
 *    SQLITE_BUSY on upgrade;
 *  - a connection belongs to one thread at a time.
 *
 * The schema is versioned with PRAGMA user_version and upgraded by the
 * ordered forward migrations in schema.c when the database is opened.
 */
#ifndef CRATER_METADATA_DB_H
#define CRATER_METADATA_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/labels.h"

typedef struct crater_db_s crater_db_t;

/* One forward migration: version N is reached by running migration N-1
 * (0-based index) on a database at version N-1.  See schema.c. */
typedef struct {
  const char *name;
  const char *sql;
} crater_db_migration_t;

extern const crater_db_migration_t crater__db_migrations[];
extern const int crater__db_nmigrations;

/* Opens (creating) path, sets the pragmas and migrates to the latest
 * version.  A database newer than this build is refused
 * (FAILED_PRECONDITION).  Free with crater_db_close. */
CRATER_PUBLIC crater_db_t *crater_db_open(const char *path, crater_error_t *err);

/* Like crater_db_open but migrates only up to version target (tests of
 * migrations build old databases with it). */
crater_db_t *crater__db_open_version(const char *path, int target, crater_error_t *err);

/* NULL tolerated. */
CRATER_PUBLIC void crater_db_close(crater_db_t *db);

CRATER_PUBLIC sqlite3 *crater_db_handle(crater_db_t *db);

/* Current PRAGMA user_version, or -1. */
CRATER_PUBLIC int crater_db_version(crater_db_t *db, crater_error_t *err);

/* The version a freshly opened database reaches. */
CRATER_PUBLIC int crater_db_latest_version(void);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK.  rollback never fails (it logs). */
CRATER_PUBLIC int crater_db_begin(crater_db_t *db, crater_error_t *err);
CRATER_PUBLIC int crater_db_commit(crater_db_t *db, crater_error_t *err);
CRATER_PUBLIC void crater_db_rollback(crater_db_t *db);

/* Runs SQL without results. */
int crater__db_exec(crater_db_t *db, const char *sql, crater_error_t *err);

/* A prepared statement for sql, from the connection's cache when one is
 * free (prepared once, kept until crater_db_close); NULL + error naming the
 * SQLite message.  Give it back with crater__db_release, never
 * sqlite3_finalize. */
sqlite3_stmt *crater__db_prepare(crater_db_t *db, const char *sql, crater_error_t *err);

/* Resets a statement from crater__db_prepare (bindings cleared) and returns
 * it to the cache (finalizes it when it was not kept).  NULL tolerated. */
void crater__db_release(crater_db_t *db, sqlite3_stmt *st);

/* Whether st is kept in db's statement cache (tests). */
bool crater__db_stmt_cached(crater_db_t *db, sqlite3_stmt *st);

/* The SQL of the statements in db's cache, each once, into out (at most
 * max; pointers into the cache, valid until crater_db_close).  With
 * crater_db_warm, a `crater daemon` worker prepares before its command
 * what the last commands used (preparing is ~30,000 instructions a
 * statement; a `crater run` uses ~28). */
CRATER_PUBLIC size_t crater_db_cached_sql(crater_db_t *db, const char **out, size_t max);

/* Prepares sql into db's cache, unless it is there or the cache is full.
 * Never runs it: a statement is used only when code asks for its exact
 * text.  False when it was not kept (full, or SQLite refused the text). */
CRATER_PUBLIC bool crater_db_warm(crater_db_t *db, const char *sql);

/* From now on this process's connections leave the WAL to
 * crater_db_checkpoint, which a `crater daemon` janitor runs while the
 * daemon is idle: their commits never checkpoint, and their close only
 * checkpoints PASSIVE, past 1000 frames.  The TRUNCATE checkpoint a
 * connection otherwise makes at close (past 200 frames) blocks every
 * writer while it copies and syncs (5-8 ms here), and the next command
 * of a busy daemon waited that long, one `crater run` in eight. */
CRATER_PUBLIC void crater_db_defer_checkpoints(bool on);

/* Checkpoints the WAL into the database and truncates it: PASSIVE, then
 * TRUNCATE, neither waiting for other connections (UNAVAILABLE when one
 * is in the way).  Only when the WAL file holds min_frames frames or more
 * (0: always): a checkpoint syncs the database, and the next command
 * coming meanwhile waited for it.  For a `crater daemon` janitor. */
CRATER_PUBLIC int crater_db_checkpoint(crater_db_t *db, int min_frames, crater_error_t *err);

/* Makes an error from the connection's last SQLite failure: "<ctx>: <sqlite
 * message>", kind from the result code (BUSY/LOCKED -> UNAVAILABLE,
 * CONSTRAINT -> FAILED_PRECONDITION, CORRUPT -> DATA_LOSS, ...). */
int crater__db_error(crater_db_t *db, int rc, crater_error_t *err, const char *fmt, ...)
    CRATER_PRINTF(4, 5);

/* Steps a statement that returns no rows (SQLITE_DONE expected). */
int crater__db_step_done(crater_db_t *db, sqlite3_stmt *st, crater_error_t *err);

/* Binds a string (copied by SQLite); NULL binds NULL. */
void crater__db_bind_text(sqlite3_stmt *st, int idx, const char *s);

/* Column text as a malloc'd copy (NULL for SQL NULL). */
char *crater__db_column_strdup(sqlite3_stmt *st, int col);

/* Label tables have the shape <table>(namespace, <idcol>, key, value).
 * load appends the labels of (ns, id) to *out; store sets them (replace:
 * drop the others first; an empty value deletes a key).  table and idcol
 * are trusted identifiers from our own code, never user input. */
int crater__db_labels_load(crater_db_t *db, const char *table, const char *idcol, const char *ns,
                           const char *id, crater_labels_t *out, crater_error_t *err);
int crater__db_labels_store(crater_db_t *db, const char *table, const char *idcol, const char *ns,
                            const char *id, const crater_labels_t *labels, bool replace,
                            crater_error_t *err);

#endif
