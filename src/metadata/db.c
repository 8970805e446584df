/*
 * SQLite connection handling: pragmas, transactions, migrations and error
 * mapping for the metadata database.  See db.h.
 */
#include "metadata/db.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"

#define BUSY_TIMEOUT_MS 10000
/* WAL size (frames) at which a commit checkpoints at once (SQLite's
 * default wal_autocheckpoint), and at which a connection that has
 * committed checkpoints when it closes.  See wal_hook. */
#define WAL_CKPT_COMMIT_FRAMES 1000
#define WAL_CKPT_CLOSE_FRAMES 200
/* the WAL file's layout (sqlite.org/fileformat2.html#walformat) */
#define WAL_HEADER_BYTES 32
#define WAL_FRAME_HEADER_BYTES 24

/* Prepared statements are kept for the connection's life and handed out
 * again by SQL text (crater__db_prepare / crater__db_release): preparing
 * costs ~30,000 instructions a statement, and a `crater run` used to
 * prepare 43, a dozen of them twice.  A statement in use is never handed
 * out twice: a nested use of the same SQL prepares another one, which is
 * kept too while there is room. */
#define STMT_CACHE_MAX 128

typedef struct {
  char *sql;
  uint32_t hash;
  bool busy;
  sqlite3_stmt *st;
} cached_stmt_t;

struct crater_db_s {
  sqlite3 *h;
  char *path;
  int wal_frames;     /* WAL size after this connection's last commit, 0 if none */
  int64_t busy_since; /* busy_wait: when this wait began */
  size_t nstmts;
  cached_stmt_t stmts[STMT_CACHE_MAX];
};

static crater_errkind_t
kind_of(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return CRATER_ERR_UNAVAILABLE;
  case SQLITE_CONSTRAINT:
    return CRATER_ERR_FAILED_PRECONDITION;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
  case SQLITE_IOERR:
    return CRATER_ERR_DATA_LOSS;
  case SQLITE_FULL:
  case SQLITE_NOMEM:
    return CRATER_ERR_RESOURCE_EXHAUSTED;
  case SQLITE_PERM:
  case SQLITE_READONLY:
  case SQLITE_AUTH:
    return CRATER_ERR_PERMISSION_DENIED;
  case SQLITE_CANTOPEN:
    return CRATER_ERR_UNAVAILABLE;
  default:
    return CRATER_ERR_INTERNAL;
  }
}

int
crater__db_error(crater_db_t *db, int rc, crater_error_t *err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *ctx = xvasprintf(fmt, ap);
  va_end(ap);
  const char *msg = db && db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc);
  return crater_error_make(err, kind_of(rc), 0, "%s: %s", ctx, msg);
}

int
crater__db_exec(crater_db_t *db, const char *sql, crater_error_t *err)
{
  int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return crater__db_error(db, rc, err, "metadata %s", db->path);
  return 0;
}

static uint32_t
sql_hash(const char *s)
{
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 16777619u;
  return h;
}

sqlite3_stmt *
crater__db_prepare(crater_db_t *db, const char *sql, crater_error_t *err)
{
  uint32_t hash = sql_hash(sql);
  for (size_t i = 0; i < db->nstmts; i++) {
    cached_stmt_t *c = &db->stmts[i];
    if (!c->busy && c->hash == hash && strcmp(c->sql, sql) == 0) {
      c->busy = true;
      return c->st;
    }
  }
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK) {
    crater__db_error(db, rc, err, "metadata: prepare");
    return NULL;
  }
  if (db->nstmts < STMT_CACHE_MAX)
    db->stmts[db->nstmts++] = (cached_stmt_t){ xstrdup(sql), hash, true, st };
  return st;
}

void
crater__db_release(crater_db_t *db, sqlite3_stmt *st)
{
  if (st == NULL)
    return;
  for (size_t i = db->nstmts; i-- > 0;) {
    if (db->stmts[i].st == st) {
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      db->stmts[i].busy = false;
      return;
    }
  }
  sqlite3_finalize(st);
}

size_t
crater_db_cached_sql(crater_db_t *db, const char **out, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < db->nstmts && n < max; i++) {
    bool seen = false; /* a nested use may have cached a second copy */
    for (size_t j = 0; j < n && !seen; j++)
      seen = strcmp(out[j], db->stmts[i].sql) == 0;
    if (!seen)
      out[n++] = db->stmts[i].sql;
  }
  return n;
}

bool
crater_db_warm(crater_db_t *db, const char *sql)
{
  /* the cache's own way in and out: found or prepared (and kept while
   * there is room), then given back unused */
  sqlite3_stmt *st = crater__db_prepare(db, sql, NULL);
  if (st == NULL)
    return false;
  bool kept = crater__db_stmt_cached(db, st);
  crater__db_release(db, st);
  return kept;
}

bool
crater__db_stmt_cached(crater_db_t *db, sqlite3_stmt *st)
{
  for (size_t i = 0; i < db->nstmts; i++)
    if (db->stmts[i].st == st)
      return true;
  return false;
}

/* BEGIN / COMMIT / ROLLBACK through cached statements; an SQLite code. */
static int
run_cached(crater_db_t *db, const char *sql)
{
  sqlite3_stmt *st = crater__db_prepare(db, sql, NULL);
  if (st == NULL)
    return sqlite3_errcode(db->h);
  int rc = sqlite3_step(st);
  crater__db_release(db, st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int
crater__db_step_done(crater_db_t *db, sqlite3_stmt *st, crater_error_t *err)
{
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return crater__db_error(db, rc, err, "metadata");
  return 0;
}

void
crater__db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
  if (s)
    sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(st, idx);
}

char *
crater__db_column_strdup(sqlite3_stmt *st, int col)
{
  const unsigned char *s = sqlite3_column_text(st, col);
  return s ? xstrdup((const char *) s) : NULL;
}

int
crater_db_begin(crater_db_t *db, crater_error_t *err)
{
  int rc = run_cached(db, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK)
    return crater__db_error(db, rc, err, "metadata: begin transaction");
  return 0;
}

int
crater_db_commit(crater_db_t *db, crater_error_t *err)
{
  int rc = run_cached(db, "COMMIT");
  if (rc != SQLITE_OK) {
    crater__db_error(db, rc, err, "metadata: commit transaction");
    crater_db_rollback(db);
    return -1;
  }
  return 0;
}

void
crater_db_rollback(crater_db_t *db)
{
  if (sqlite3_get_autocommit(db->h))
    return; /* nothing open (SQLite may have rolled back already) */
  int rc = run_cached(db, "ROLLBACK");
  if (rc != SQLITE_OK)
    crater_warn("metadata: rollback: %s", sqlite3_errmsg(db->h));
}

int
crater_db_version(crater_db_t *db, crater_error_t *err)
{
  sqlite3_stmt *st = crater__db_prepare(db, "PRAGMA user_version", err);
  if (st == NULL)
    return -1;
  int v = -1;
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  else
    crater__db_error(db, SQLITE_ERROR, err, "metadata: read user_version");
  crater__db_release(db, st);
  return v;
}

int
crater_db_latest_version(void)
{
  return crater__db_nmigrations;
}

/* Runs pending migrations up to target, each in its own IMMEDIATE
 * transaction that re-reads the version, so two processes opening an old
 * database at once migrate it exactly once. */
static int
migrate(crater_db_t *db, int target, crater_error_t *err)
{
  for (;;) {
    /* read first: a database at the version wanted (every open but the
     * first) takes no write lock, which would hold up a writer elsewhere
     * (a `crater daemon` worker opens its store while a command runs) */
    int v = crater_db_version(db, err);
    if (v < 0)
      return crater_error_wrap(err, "migrate %s", db->path);
    if (v >= target && v <= crater__db_nmigrations)
      return 0;
    if (crater_db_begin(db, err) < 0)
      return crater_error_wrap(err, "migrate %s", db->path);
    v = crater_db_version(db, err);
    if (v < 0)
      goto fail;
    if (v > crater__db_nmigrations) {
      crater_db_rollback(db);
      return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                               "metadata %s: schema version %d is newer than "
                               "this build (%d)",
                               db->path, v, crater__db_nmigrations);
    }
    if (v >= target) {
      crater_db_rollback(db);
      return 0;
    }
    const crater_db_migration_t *m = &crater__db_migrations[v];
    int rc = sqlite3_exec(db->h, m->sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      crater__db_error(db, rc, err, "migration %d (%s)", v + 1, m->name);
      goto fail;
    }
    cleanup_free char *set = xasprintf("PRAGMA user_version = %d", v + 1);
    if (crater__db_exec(db, set, err) < 0 || crater_db_commit(db, err) < 0)
      goto fail;
    crater_debug("metadata %s: migrated to version %d (%s)", db->path, v + 1, m->name);
  }
fail:
  crater_db_rollback(db);
  return crater_error_wrap(err, "migrate %s", db->path);
}

/* Replaces SQLite's wal_autocheckpoint hook.  The first connection of each
 * process rebuilds the wal-index by reading every frame of the persistent
 * WAL (~1 us per frame), so a WAL left at up to 1000 frames costs every
 * short-lived CLI process up to ~1.5 ms at open.  Commits still checkpoint
 * at 1000 frames (long-lived processes close rarely); in addition a
 * connection that has committed checkpoints at close when the WAL holds
 * WAL_CKPT_CLOSE_FRAMES or more, after its command's work is done (a
 * TRUNCATE one: see crater_db_close).  Read-only processes never
 * checkpoint, and neither do those that defer checkpoints
 * (crater_db_defer_checkpoints). */
static bool checkpoints_deferred;

void
crater_db_defer_checkpoints(bool on)
{
  checkpoints_deferred = on;
}

static int
wal_hook(void *arg, sqlite3 *h, const char *name, int frames)
{
  crater_db_t *db = arg;
  db->wal_frames = frames;
  if (frames >= WAL_CKPT_COMMIT_FRAMES && !checkpoints_deferred &&
      sqlite3_wal_checkpoint_v2(h, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) == SQLITE_OK)
    db->wal_frames = 0;
  return SQLITE_OK;
}

/* The busy handler.  SQLite's own sleeps 1, 2, 5, 10... ms between
 * tries, so a writer that met another process's write transaction lost a
 * millisecond at least, when most of them hold the lock for a tenth of
 * that here (a `crater run` and a `crater daemon` worker warming up for
 * the next one meet often).  This one tries again after 50 us, doubling
 * up to 10 ms, for BUSY_TIMEOUT_MS in all. */
static int
busy_wait(void *arg, int count)
{
  crater_db_t *db = arg;
  int64_t now = crater__mono_ns();
  if (count == 0)
    db->busy_since = now;
  else if (now - db->busy_since > (int64_t) BUSY_TIMEOUT_MS * 1000000)
    return 0;
  usleep(count < 8 ? 50u << count : 10000u);
  return 1;
}

crater_db_t *
crater__db_open_version(const char *path, int target, crater_error_t *err)
{
  crater_db_t *db = xmalloc0(sizeof *db);
  db->path = xstrdup(path);
  int rc = sqlite3_open_v2(path, &db->h,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    crater__db_error(db, rc, err, "open metadata %s", path);
    crater_db_close(db);
    return NULL;
  }
  sqlite3_busy_handler(db->h, busy_wait, db);
  sqlite3_extended_result_codes(db->h, 1);
  /* Most connections belong to short-lived CLI processes, each usually the
   * last one open: by default SQLite then checkpoints and deletes the WAL on
   * close (fdatasync of WAL and database) and the next process's first
   * commit syncs a fresh WAL header — four fdatasyncs per `crater run`,
   * 4-40 ms on a busy disk.  So: no checkpoint on close, and a persistent
   * WAL file.  Durability is unchanged (commits are in the WAL with
   * synchronous=NORMAL); checkpoints still run at wal_autocheckpoint. */
  int on = 1;
  sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  sqlite3_file_control(db->h, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
  sqlite3_wal_hook(db->h, wal_hook, db);
  /* Switching a new database to WAL needs a moment of exclusive access and
   * SQLite reports SQLITE_BUSY for it without calling the busy handler when
   * another process is creating or migrating the same file; so the whole
   * set-up is retried (with backoff) for as long as busy_timeout. */
  int64_t deadline = crater__mono_ns() + (int64_t) BUSY_TIMEOUT_MS * 1000000;
  for (useconds_t backoff = 1000;; backoff = backoff < 64000 ? backoff * 2 : backoff) {
    crater_error_t e = NULL;
    if (crater__db_exec(db, "PRAGMA journal_mode=WAL", &e) == 0 &&
        crater__db_exec(db, "PRAGMA foreign_keys=ON", &e) == 0 &&
        crater__db_exec(db, "PRAGMA synchronous=NORMAL", &e) == 0 && migrate(db, target, &e) == 0)
      break;
    if (e->kind != CRATER_ERR_UNAVAILABLE || crater__mono_ns() > deadline) {
      if (err)
        crater_error_move(err, &e);
      crater_error_release(&e);
      crater_db_close(db);
      return NULL;
    }
    crater_error_release(&e);
    usleep(backoff);
  }
  return db;
}

crater_db_t *
crater_db_open(const char *path, crater_error_t *err)
{
  return crater__db_open_version(path, crater__db_nmigrations, err);
}

/* Frames the WAL file holds, from its size (it only shrinks when
 * truncated); 0 when there is none. */
static long long
wal_file_frames(crater_db_t *db)
{
  cleanup_free char *wal = xasprintf("%s-wal", db->path);
  struct stat st;
  int page = 0;
  sqlite3_stmt *q = crater__db_prepare(db, "PRAGMA page_size", NULL);
  if (q && sqlite3_step(q) == SQLITE_ROW)
    page = sqlite3_column_int(q, 0);
  crater__db_release(db, q);
  if (page <= 0 || stat(wal, &st) != 0 || st.st_size <= WAL_HEADER_BYTES)
    return 0;
  return (st.st_size - WAL_HEADER_BYTES) / (page + WAL_FRAME_HEADER_BYTES);
}

int
crater_db_checkpoint(crater_db_t *db, int min_frames, crater_error_t *err)
{
  if (min_frames > 0 && wal_file_frames(db) < min_frames)
    return 0;
  /* the copy (and its fsync) while writers go on, then only the reset */
  sqlite3_busy_timeout(db->h, 0);
  int rc = sqlite3_wal_checkpoint_v2(db->h, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_wal_checkpoint_v2(db->h, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
  sqlite3_busy_handler(db->h, busy_wait, db);
  if (rc != SQLITE_OK)
    return crater__db_error(db, rc, err, "metadata: checkpoint");
  db->wal_frames = 0;
  return 0;
}

void
crater_db_close(crater_db_t *db)
{
  if (db == NULL)
    return;
  if (db->h) {
    if (checkpoints_deferred && db->wal_frames >= WAL_CKPT_COMMIT_FRAMES) {
      /* the cap on a WAL that no idle moment lets crater_db_checkpoint
       * truncate: PASSIVE never holds a writer up */
      sqlite3_busy_timeout(db->h, 0);
      sqlite3_wal_checkpoint_v2(db->h, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (!checkpoints_deferred && db->wal_frames >= WAL_CKPT_CLOSE_FRAMES) {
      /* TRUNCATE, not PASSIVE: a checkpointed WAL keeps its frames until a
       * writer restarts it, and the next process would still read them
       * all.  With no busy handler it never waits: while another process
       * writes or reads, it only does what PASSIVE would. */
      sqlite3_busy_timeout(db->h, 0);
      sqlite3_wal_checkpoint_v2(db->h, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    for (size_t i = 0; i < db->nstmts; i++) {
      sqlite3_finalize(db->stmts[i].st);
      free(db->stmts[i].sql);
    }
    sqlite3_close_v2(db->h);
  }
  free(db->path);
  free(db);
}

sqlite3 *
crater_db_handle(crater_db_t *db)
{
  return db->h;
}

int
crater__db_labels_load(crater_db_t *db, const char *table, const char *idcol, const char *ns,
                       const char *id, crater_labels_t *out, crater_error_t *err)
{
  cleanup_free char *sql = xasprintf(
      "SELECT key, value FROM %s WHERE namespace = ?1 AND %s = ?2 ORDER BY key", table, idcol);
  sqlite3_stmt *st = crater__db_prepare(db, sql, err);
  if (st == NULL)
    return -1;
  crater__db_bind_text(st, 1, ns);
  crater__db_bind_text(st, 2, id);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    crater_labels_set(out, (const char *) sqlite3_column_text(st, 0),
                      (const char *) sqlite3_column_text(st, 1));
  crater__db_release(db, st);
  if (rc != SQLITE_DONE)
    return crater__db_error(db, rc, err, "metadata: load labels");
  return 0;
}

int
crater__db_labels_store(crater_db_t *db, const char *table, const char *idcol, const char *ns,
                        const char *id, const crater_labels_t *labels, bool replace,
                        crater_error_t *err)
{
  if (labels && crater_labels_validate(labels, err) < 0)
    return -1;
  if (replace) {
    cleanup_free char *sql =
        xasprintf("DELETE FROM %s WHERE namespace = ?1 AND %s = ?2", table, idcol);
    sqlite3_stmt *st = crater__db_prepare(db, sql, err);
    if (st == NULL)
      return -1;
    crater__db_bind_text(st, 1, ns);
    crater__db_bind_text(st, 2, id);
    int r = crater__db_step_done(db, st, err);
    crater__db_release(db, st);
    if (r < 0)
      return -1;
  }
  if (labels == NULL || labels->n == 0)
    return 0;
  cleanup_free char *up =
      xasprintf("INSERT INTO %s (namespace, %s, key, value) VALUES (?1, ?2, ?3, ?4) "
                "ON CONFLICT DO UPDATE SET value = excluded.value",
                table, idcol);
  cleanup_free char *del =
      xasprintf("DELETE FROM %s WHERE namespace = ?1 AND %s = ?2 AND key = ?3", table, idcol);
  sqlite3_stmt *ups = crater__db_prepare(db, up, err);
  sqlite3_stmt *dels = ups ? crater__db_prepare(db, del, err) : NULL;
  int r = ups && dels ? 0 : -1;
  for (size_t i = 0; r == 0 && i < labels->n; i++) {
    bool remove = labels->items[i].value[0] == '\0';
    sqlite3_stmt *st = remove ? dels : ups;
    sqlite3_reset(st);
    crater__db_bind_text(st, 1, ns);
    crater__db_bind_text(st, 2, id);
    crater__db_bind_text(st, 3, labels->items[i].key);
    if (!remove)
      crater__db_bind_text(st, 4, labels->items[i].value);
    r = crater__db_step_done(db, st, err);
  }
  crater__db_release(db, ups);
  crater__db_release(db, dels);
  return r;
}
