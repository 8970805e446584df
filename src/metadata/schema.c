/*
 * The metadata schema as an ordered list of forward migrations.
 *
 * PRAGMA user_version holds the number of migrations applied.  Opening a
 * database at version v runs crater__db_migrations[v], [v+1], ... each in
 * its own BEGIN IMMEDIATE transaction together with the user_version bump
 * (db.c, migrate()).
 *
 * How to add a migration (later domains: snapshots, containers, GC...):
 *   1. Append a new entry at the END of the array below.  Never edit,
 *      reorder or remove an entry that has shipped: databases in the field
 *      already ran it.  Fix mistakes with a further migration.
 *   2. Plain SQL only; it runs inside a transaction, so no VACUUM and no
 *      PRAGMA journal_mode.  Use CREATE TABLE / ALTER TABLE ADD COLUMN /
 *      CREATE INDEX; to change a column, build a new table, copy, drop,
 *      rename (https://sqlite.org/lang_altertable.html, "12 steps").
 *   3. Namespaced tables take (namespace TEXT NOT NULL REFERENCES
 *      namespaces(name)) and a primary key starting with namespace, so a
 *      namespace cannot be dropped under them; label tables follow the
 *      shape <thing>_labels(namespace, <id>, key, value) so the helpers in
 *      db.c work; then list the table in namespaces.c `holders` so
 *      `namespace delete` reports it.
 *   4. Add a case to tests/metadata/test_migrations.c that opens a database
 *      built at the previous version and checks the new shape.
 * Timestamps are INTEGER nanoseconds since the epoch.
 */
#include "metadata/db.h"

const crater_db_migration_t crater__db_migrations[] = {
  /* 1 */
  { "namespaces and content",
    "CREATE TABLE namespaces ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE namespace_labels ("
    "  namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (namespace, key));"
    "CREATE TABLE content ("
    "  namespace TEXT NOT NULL REFERENCES namespaces(name),"
    "  digest TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (namespace, digest));"
    "CREATE INDEX content_by_digest ON content(digest);"
    "CREATE TABLE content_labels ("
    "  namespace TEXT NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (namespace, digest, key),"
    "  FOREIGN KEY (namespace, digest) REFERENCES content(namespace, digest)"
    "    ON DELETE CASCADE);" },
  /* 2 */
  { "images", "CREATE TABLE images ("
              "  namespace TEXT NOT NULL REFERENCES namespaces(name),"
              "  name TEXT NOT NULL,"
              "  media_type TEXT NOT NULL,"
              "  digest TEXT NOT NULL,"
              "  size INTEGER NOT NULL,"
              "  created_at INTEGER NOT NULL,"
              "  updated_at INTEGER NOT NULL,"
              "  PRIMARY KEY (namespace, name));"
              "CREATE INDEX images_by_digest ON images(digest);"
              "CREATE TABLE image_labels ("
              "  namespace TEXT NOT NULL,"
              "  name TEXT NOT NULL,"
              "  key TEXT NOT NULL,"
              "  value TEXT NOT NULL,"
              "  PRIMARY KEY (namespace, name, key),"
              "  FOREIGN KEY (namespace, name) REFERENCES images(namespace, name)"
              "    ON DELETE CASCADE ON UPDATE CASCADE);" },
  /* 3 */
  { "leases", "CREATE TABLE leases ("
              "  namespace TEXT NOT NULL REFERENCES namespaces(name),"
              "  id TEXT NOT NULL,"
              "  created_at INTEGER NOT NULL,"
              "  expire_at INTEGER," /* NULL: never */
              "  PRIMARY KEY (namespace, id));"
              "CREATE TABLE lease_labels ("
              "  namespace TEXT NOT NULL,"
              "  id TEXT NOT NULL,"
              "  key TEXT NOT NULL,"
              "  value TEXT NOT NULL,"
              "  PRIMARY KEY (namespace, id, key),"
              "  FOREIGN KEY (namespace, id) REFERENCES leases(namespace, id)"
              "    ON DELETE CASCADE);"
              "CREATE TABLE lease_resources ("
              "  namespace TEXT NOT NULL,"
              "  lease TEXT NOT NULL,"
              "  kind TEXT NOT NULL," /* content | ingest | snapshots/<name> */
              "  key TEXT NOT NULL,"
              "  PRIMARY KEY (namespace, lease, kind, key),"
              "  FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id)"
              "    ON DELETE CASCADE);"
              "CREATE INDEX lease_resources_by_key ON lease_resources(kind, key);" },
  /* 4 (snapshot metadata; src/metadata/snapshots.c) */
  { "snapshots", "CREATE TABLE snapshots ("
                 "  id INTEGER PRIMARY KEY AUTOINCREMENT," /* backend dir name */
                 "  namespace TEXT NOT NULL REFERENCES namespaces(name),"
                 "  snapshotter TEXT NOT NULL,"
                 "  key TEXT NOT NULL,"
                 "  parent INTEGER REFERENCES snapshots(id)," /* no cascade: remove refused */
                 "  kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),"
                 "  created_at INTEGER NOT NULL,"
                 "  updated_at INTEGER NOT NULL,"
                 "  UNIQUE (namespace, snapshotter, key));"
                 "CREATE INDEX snapshots_by_parent ON snapshots(parent);"
                 "CREATE TABLE snapshot_labels ("
                 "  namespace TEXT NOT NULL,"
                 "  id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,"
                 "  key TEXT NOT NULL,"
                 "  value TEXT NOT NULL,"
                 "  PRIMARY KEY (namespace, id, key));" },
  /* 5 (container metadata; src/metadata/containers.c) */
  { "containers", "CREATE TABLE containers ("
                  "  namespace TEXT NOT NULL REFERENCES namespaces(name),"
                  "  id TEXT NOT NULL,"
                  "  image TEXT,"
                  "  snapshotter TEXT,"
                  "  snapshot_key TEXT,"
                  "  spec TEXT NOT NULL," /* OCI runtime spec, JSON */
                  "  runtime TEXT NOT NULL,"
                  "  runtime_options TEXT," /* JSON object or NULL */
                  "  extensions TEXT,"      /* JSON object or NULL */
                  "  created_at INTEGER NOT NULL,"
                  "  updated_at INTEGER NOT NULL,"
                  "  PRIMARY KEY (namespace, id));"
                  "CREATE INDEX containers_by_snapshot ON containers(snapshotter, snapshot_key);"
                  "CREATE TABLE container_labels ("
                  "  namespace TEXT NOT NULL,"
                  "  id TEXT NOT NULL,"
                  "  key TEXT NOT NULL,"
                  "  value TEXT NOT NULL,"
                  "  PRIMARY KEY (namespace, id, key),"
                  "  FOREIGN KEY (namespace, id) REFERENCES containers(namespace, id)"
                  "    ON DELETE CASCADE);" },
};

const int crater__db_nmigrations =
    (int) (sizeof crater__db_migrations / sizeof crater__db_migrations[0]);
