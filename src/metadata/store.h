/*
 * The store: one crater root opened for use.  It owns the content store
 * (<root>/content) and the metadata database (<root>/metadata.db) and
 * enforces the namespace rules on top of both, as containerd's
 * core/metadata wraps its local content store:
 *
 *  - every object (content record, image, lease, later snapshots and
 *    containers) lives in a namespace; creating one in a missing namespace
 *    creates the namespace;
 *  - blobs are shared on disk but visible in a namespace only once
 *    ingested or added there; labels are per (namespace, digest);
 *  - deleting content removes the namespace's record, and the blob file
 *    only when no namespace refers to it any more;
 *  - ingests are per namespace: ref "r" in namespace "ns" is the content
 *    store ingest "ns/r" (namespace names cannot contain '/').
 *
 * A store handle is not thread-safe; open one per thread or serialise.
 * Several processes may open the same root at once (see db.h).
 *
 * Label filters (docs/design/metadata.md): a list of filter strings is
 * OR-ed; within one string, comma-separated clauses are AND-ed.  A clause
 * is `field`, `field==value` or `field!=value`; fields are `labels."k"`
 * (or `labels.k` for keys made of [A-Za-z0-9_./-]) and, per object,
 * `digest`, `size` (content) or `name`, `target.digest`,
 * `target.media_type` (images).  Values are bare (up to the next ',') or
 * double-quoted with \" and \\ escapes.  A bare field tests presence.
 */
#ifndef CRATER_METADATA_STORE_H
#define CRATER_METADATA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/labels.h"
#include "content/content.h"
#include "metadata/db.h"

typedef struct crater_store_s crater_store_t;

/* Opens root, creating it (0711), content/ and metadata.db as needed.
 * Free with crater_store_close. */
CRATER_PUBLIC crater_store_t *crater_store_open(const char *root, crater_error_t *err);
/* NULL tolerated; writers must be closed first. */
CRATER_PUBLIC void crater_store_close(crater_store_t *s);
CRATER_PUBLIC const char *crater_store_root(const crater_store_t *s);
CRATER_PUBLIC crater_content_t *crater_store_content(crater_store_t *s);
CRATER_PUBLIC crater_db_t *crater_store_db(crater_store_t *s);

/* ---- namespaces ---------------------------------------------------------- */

typedef struct {
  char *name;
  crater_labels_t labels;
  int64_t created_at, updated_at; /* ns */
} crater_namespace_t;

/* Checks a namespace name: [a-z0-9]([a-z0-9._-]*[a-z0-9])?, at most 76
 * characters.  INVALID_ARGUMENT naming the problem. */
CRATER_PUBLIC int crater_namespace_validate(const char *name, crater_error_t *err);

/* ALREADY_EXISTS when present.  labels may be NULL. */
CRATER_PUBLIC int crater_store_namespace_create(crater_store_t *s, const char *name,
                                                const crater_labels_t *labels, crater_error_t *err);
CRATER_PUBLIC int crater_store_namespace_get(crater_store_t *s, const char *name,
                                             crater_namespace_t *out, crater_error_t *err);
/* Sorted by name; free with crater_namespaces_free. */
CRATER_PUBLIC int crater_store_namespace_list(crater_store_t *s, crater_namespace_t **out,
                                              size_t *n, crater_error_t *err);
/* Refused with FAILED_PRECONDITION while the namespace holds objects:
 * "namespace x: not empty: 3 content blobs, 1 image". */
CRATER_PUBLIC int crater_store_namespace_delete(crater_store_t *s, const char *name,
                                                crater_error_t *err);
/* Merges labels (an empty value removes a key), or replaces them all. */
CRATER_PUBLIC int crater_store_namespace_set_labels(crater_store_t *s, const char *name,
                                                    const crater_labels_t *labels, bool replace,
                                                    crater_error_t *err);
CRATER_PUBLIC void crater_namespace_clear(crater_namespace_t *ns);
CRATER_PUBLIC void crater_namespaces_free(crater_namespace_t *arr, size_t n);

/* Creates ns if missing, inside the caller's transaction (internal). */
int crater__store_ensure_namespace(crater_store_t *s, const char *ns, crater_error_t *err);
/* Fails with NOT_FOUND unless ns exists (internal; validates the name). */
int crater__store_namespace_exists(crater_store_t *s, const char *ns, crater_error_t *err);

/* ---- label filters ------------------------------------------------------- */

typedef struct crater_filter_s crater_filter_t;

/* Field lookup for filter matching: returns the value of field for rec, or
 * NULL when it has none.  Label fields arrive as "labels.<key>". */
typedef const char *(*crater_filter_lookup_fn)(const void *rec, const char *field, char *scratch,
                                               size_t scratch_len);

/* Parses filter strings (n may be 0: matches everything).  NULL +
 * INVALID_ARGUMENT with the offending text. */
CRATER_PUBLIC crater_filter_t *crater_filter_parse(const char *const *filters, size_t n,
                                                   crater_error_t *err);
CRATER_PUBLIC bool crater_filter_match(const crater_filter_t *f, crater_filter_lookup_fn lookup,
                                       const void *rec);
CRATER_PUBLIC void crater_filter_free(crater_filter_t *f);

/* ---- namespaced content ---------------------------------------------------- */

typedef struct {
  char digest[CRATER_DIGEST_MAX];
  int64_t size;
  int64_t created_at, updated_at; /* ns */
  crater_labels_t labels;
} crater_content_record_t;

/* NOT_FOUND unless the blob is visible in ns. */
CRATER_PUBLIC int crater_store_content_info(crater_store_t *s, const char *ns, const char *digest,
                                            crater_content_record_t *out, crater_error_t *err);
/* Records of ns matching filters (see above), sorted by digest. */
CRATER_PUBLIC int crater_store_content_list(crater_store_t *s, const char *ns,
                                            const char *const *filters, size_t nfilters,
                                            crater_content_record_t **out, size_t *n,
                                            crater_error_t *err);
CRATER_PUBLIC int crater_store_content_set_labels(crater_store_t *s, const char *ns,
                                                  const char *digest, const crater_labels_t *labels,
                                                  bool replace, crater_error_t *err);
/* Makes an existing blob visible in ns (NOT_FOUND if no such blob on disk;
 * ALREADY_EXISTS if already visible). */
CRATER_PUBLIC int crater_store_content_add(crater_store_t *s, const char *ns, const char *digest,
                                           const crater_labels_t *labels, crater_error_t *err);
/* Removes ns's record, and the blob when no namespace refers to it. */
CRATER_PUBLIC int crater_store_content_delete(crater_store_t *s, const char *ns, const char *digest,
                                              crater_error_t *err);
/* Path / fd / bytes of a blob visible in ns. */
CRATER_PUBLIC char *crater_store_content_path(crater_store_t *s, const char *ns, const char *digest,
                                              crater_error_t *err);
CRATER_PUBLIC int crater_store_content_open(crater_store_t *s, const char *ns, const char *digest,
                                            crater_error_t *err);
CRATER_PUBLIC ssize_t crater_store_content_read(crater_store_t *s, const char *ns,
                                                const char *digest, int64_t offset, void *buf,
                                                size_t n, crater_error_t *err);
/* Ingests of ns; the refs in *out are without the namespace prefix. */
CRATER_PUBLIC int crater_store_content_status(crater_store_t *s, const char *ns,
                                              crater_ingest_status_t **out, size_t *n,
                                              crater_error_t *err);
CRATER_PUBLIC int crater_store_content_abort(crater_store_t *s, const char *ns, const char *ref,
                                             crater_error_t *err);
CRATER_PUBLIC void crater_content_record_clear(crater_content_record_t *r);
CRATER_PUBLIC void crater_content_records_free(crater_content_record_t *arr, size_t n);

/* A namespaced writer: a content writer whose commit also records the blob
 * in the namespace.  Same lifecycle as crater_content_writer_t. */
typedef struct crater_store_writer_s crater_store_writer_t;

CRATER_PUBLIC crater_store_writer_t *crater_store_writer_open(crater_store_t *s, const char *ns,
                                                              const char *ref, const char *expected,
                                                              int64_t size, crater_error_t *err);
CRATER_PUBLIC crater_content_writer_t *crater_store_writer_content(crater_store_writer_t *w);
/* Commits (see crater_content_writer_commit) and records the blob in ns
 * with labels (may be NULL; merged when the record exists).  Returns
 * CRATER_CONTENT_COMMITTED, or CRATER_CONTENT_EXISTS when ns already had
 * the blob; the ingest is gone either way. */
CRATER_PUBLIC int crater_store_writer_commit(crater_store_writer_t *w, int64_t size,
                                             const char *expected, const crater_labels_t *labels,
                                             char *out, crater_error_t *err);
/* Keeps the ingest; NULL tolerated. */
CRATER_PUBLIC void crater_store_writer_close(crater_store_writer_t *w);
/* Removes the ingest and frees w. */
CRATER_PUBLIC int crater_store_writer_abort(crater_store_writer_t *w, crater_error_t *err);

/* The fast path: ingest fd into ns as ref (resuming), verify, commit,
 * record with labels.  Returns COMMITTED or EXISTS; digest into out.  A
 * digest mismatch drops the ingest; other failures keep it for resume. */
CRATER_PUBLIC int crater_store_content_ingest_fd(crater_store_t *s, const char *ns, const char *ref,
                                                 int fd, const char *expected, int64_t size,
                                                 const crater_labels_t *labels, char *out,
                                                 crater_error_t *err);

/* ---- images ------------------------------------------------------------------ */

typedef struct {
  char *name;
  char *media_type; /* target */
  char *digest;     /* target */
  int64_t size;     /* target */
  crater_labels_t labels;
  int64_t created_at, updated_at; /* ns; ignored on create/update */
} crater_image_t;

/* ALREADY_EXISTS when the name is taken in ns. */
CRATER_PUBLIC int crater_store_image_create(crater_store_t *s, const char *ns,
                                            const crater_image_t *img, crater_error_t *err);
CRATER_PUBLIC int crater_store_image_get(crater_store_t *s, const char *ns, const char *name,
                                         crater_image_t *out, crater_error_t *err);
CRATER_PUBLIC int crater_store_image_list(crater_store_t *s, const char *ns,
                                          const char *const *filters, size_t nfilters,
                                          crater_image_t **out, size_t *n, crater_error_t *err);
/* Replaces target and labels of an existing image (NOT_FOUND otherwise). */
CRATER_PUBLIC int crater_store_image_update(crater_store_t *s, const char *ns,
                                            const crater_image_t *img, crater_error_t *err);
CRATER_PUBLIC int crater_store_image_delete(crater_store_t *s, const char *ns, const char *name,
                                            crater_error_t *err);
CRATER_PUBLIC void crater_image_clear(crater_image_t *img);
CRATER_PUBLIC void crater_images_free(crater_image_t *arr, size_t n);

/* ---- leases ------------------------------------------------------------------ */

typedef struct {
  char *kind; /* "content", "ingest", "snapshots/<snapshotter>" */
  char *key;  /* digest, ingest ref, snapshot key */
} crater_lease_resource_t;

typedef struct {
  char *id;
  crater_labels_t labels;
  int64_t created_at;
  int64_t expire_at; /* ns; 0 = never */
  crater_lease_resource_t *resources;
  size_t nresources;
} crater_lease_t;

/* expire_seconds <= 0: never expires.  ALREADY_EXISTS when taken. */
CRATER_PUBLIC int crater_store_lease_create(crater_store_t *s, const char *ns, const char *id,
                                            const crater_labels_t *labels, int64_t expire_seconds,
                                            crater_error_t *err);
CRATER_PUBLIC int crater_store_lease_list(crater_store_t *s, const char *ns, crater_lease_t **out,
                                          size_t *n, crater_error_t *err);
CRATER_PUBLIC int crater_store_lease_delete(crater_store_t *s, const char *ns, const char *id,
                                            crater_error_t *err);
/* Adds a resource to a lease (idempotent).  kind as above. */
CRATER_PUBLIC int crater_store_lease_add_resource(crater_store_t *s, const char *ns, const char *id,
                                                  const char *kind, const char *key,
                                                  crater_error_t *err);
CRATER_PUBLIC int crater_store_lease_delete_resource(crater_store_t *s, const char *ns,
                                                     const char *id, const char *kind,
                                                     const char *key, crater_error_t *err);
CRATER_PUBLIC void crater_lease_clear(crater_lease_t *l);
CRATER_PUBLIC void crater_leases_free(crater_lease_t *arr, size_t n);

/* ---- check (fsck) ---------------------------------------------------------- */

typedef struct {
  bool quick;            /* re-hash a sample instead of every blob */
  bool repair;           /* delete/fix what is found (else report only) */
  int64_t stale_after_s; /* ingests idle this long are stale; <= 0: 24 h */
} crater_check_opts_t;

typedef struct {
  char *digest; /* corrupt/orphan/missing */
  char *ns;     /* missing: the namespace of the dangling record */
  char *detail; /* corrupt: actual digest; stale: ingest ref or dir */
} crater_check_item_t;

typedef struct {
  size_t checked; /* blobs re-hashed */
  crater_check_item_t *corrupt;
  size_t ncorrupt;
  crater_check_item_t *orphans;
  size_t norphans;
  crater_check_item_t *missing;
  size_t nmissing;
  crater_check_item_t *stale;
  size_t nstale;
  bool repaired; /* repair ran and fixed everything found */
} crater_check_report_t;

/* Checks the root: re-hashes blobs (all, or a sample when quick) and
 * reports corrupt blobs, orphan blob files (no record in any namespace),
 * records whose blob is missing, and stale ingests (no live writer, idle
 * longer than stale_after_s, or broken).  Deletes nothing unless repair:
 * then corrupt blobs and their records, orphan files, missing records and
 * stale ingests are removed.  Clear the report with
 * crater_check_report_clear. */
CRATER_PUBLIC int crater_store_check(crater_store_t *s, const crater_check_opts_t *opts,
                                     crater_check_report_t *out, crater_error_t *err);
CRATER_PUBLIC void crater_check_report_clear(crater_check_report_t *r);

#endif
