/* Namespaced content, images and leases: visibility per namespace, labels
 * and filters, exists-status, delete reference counting, images CRUD with
 * filters, leases with resources. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "metadata/store.h"

static crater_error_t err;

static int
ingest(crater_store_t *s, const char *ns, const char *ref, const char *data, const char *labels_kv,
       char *dg)
{
  crater_labels_t l = { 0 };
  if (labels_kv) {
    char *k = strdup(labels_kv), *eq = strchr(k, '=');
    *eq = 0;
    crater_labels_set(&l, k, eq + 1);
    free(k);
  }
  crater_store_writer_t *w = crater_store_writer_open(s, ns, ref, NULL, 0, &err);
  CHECK(w != NULL);
  CHECK_OK(crater_content_writer_write(crater_store_writer_content(w), data, strlen(data), &err));
  int r = crater_store_writer_commit(w, (int64_t) strlen(data), NULL, &l, dg, &err);
  CHECK_OK(r);
  crater_store_writer_close(w);
  crater_labels_clear(&l);
  return r;
}

static size_t
list_count(crater_store_t *s, const char *ns, const char *f1, const char *f2)
{
  const char *fs[2] = { f1, f2 };
  crater_content_record_t *recs;
  size_t n;
  CHECK_OK(crater_store_content_list(s, ns, fs, f2 ? 2 : f1 ? 1 : 0, &recs, &n, &err));
  crater_content_records_free(recs, n);
  return n;
}

int
main(void)
{
  char *tmp = test_tmpdir("content_meta");
  crater_store_t *s = crater_store_open(tmp, &err);
  CHECK(s != NULL);
  crater_error_t e = NULL;
  char a[CRATER_DIGEST_MAX], b[CRATER_DIGEST_MAX], c[CRATER_DIGEST_MAX];

  CHECK(ingest(s, "ns1", "a", "blob a", "kind=layer", a) == CRATER_CONTENT_COMMITTED);
  CHECK(ingest(s, "ns1", "b", "blob b", "kind=config", b) == CRATER_CONTENT_COMMITTED);
  /* same bytes again in ns1: exists; ingest gone */
  CHECK(ingest(s, "ns1", "a2", "blob a", NULL, c) == CRATER_CONTENT_EXISTS);
  CHECK_STREQ(c, a);
  crater_ingest_status_t *ing;
  size_t n;
  CHECK_OK(crater_store_content_status(s, "ns1", &ing, &n, &err));
  CHECK(n == 0);
  crater_ingest_status_free(ing, n);

  /* visible in ns1 only */
  crater_content_record_t rec;
  CHECK_OK(crater_store_content_info(s, "ns1", a, &rec, &err));
  CHECK(rec.size == 6 && rec.created_at > 0);
  CHECK_STREQ(crater_labels_get(&rec.labels, "kind"), "layer");
  crater_content_record_clear(&rec);
  CHECK(crater_store_content_info(s, "ns2", a, &rec, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  char buf[16];
  CHECK(crater_store_content_read(s, "ns2", a, 0, buf, 6, &e) < 0);
  crater_error_release(&e);
  CHECK(crater_store_content_path(s, "ns2", a, &e) == NULL);
  crater_error_release(&e);
  CHECK(crater_store_content_read(s, "ns1", a, 5, buf, 6, &err) == 1 && buf[0] == 'a');
  char *p = crater_store_content_path(s, "ns1", a, &err);
  CHECK(p && access(p, R_OK) == 0);
  free(p);
  CHECK(crater_store_content_info(s, "ns1", "sha256:../../x", &rec, &e) < 0 &&
        e->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&e);

  /* ingesting in ns2 makes it visible there (the blob file is shared) */
  CHECK(ingest(s, "ns2", "a", "blob a", "owner=two", c) == CRATER_CONTENT_COMMITTED);
  CHECK_OK(crater_store_content_info(s, "ns2", a, &rec, &err));
  CHECK(crater_labels_get(&rec.labels, "kind") == NULL); /* labels are per namespace */
  crater_content_record_clear(&rec);
  /* explicit add */
  CHECK_OK(crater_store_content_add(s, "ns3", b, NULL, &err));
  CHECK(crater_store_content_add(s, "ns3", b, NULL, &e) < 0 &&
        e->kind == CRATER_ERR_ALREADY_EXISTS);
  crater_error_release(&e);

  /* filters */
  CHECK(list_count(s, "ns1", NULL, NULL) == 2);
  CHECK(list_count(s, "ns1", "labels.\"kind\"==layer", NULL) == 1);
  CHECK(list_count(s, "ns1", "labels.kind==\"config\"", NULL) == 1);
  CHECK(list_count(s, "ns1", "labels.kind", NULL) == 2);
  CHECK(list_count(s, "ns1", "labels.kind!=layer", NULL) == 1);
  CHECK(list_count(s, "ns1", "labels.kind==layer", "labels.kind==config") == 2);
  CHECK(list_count(s, "ns1", "labels.kind==layer,labels.kind==config", NULL) == 0);
  CHECK(list_count(s, "ns1", "labels.nope", NULL) == 0);
  CHECK(list_count(s, "ns1", "size==6,labels.kind==layer", NULL) == 1);
  const char *badf[] = { "labels.\"unterminated==x" };
  crater_content_record_t *recs;
  CHECK(crater_store_content_list(s, "ns1", badf, 1, &recs, &n, &e) < 0 &&
        e->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&e);
  const char *badf2[] = { "labels.x=y" };
  CHECK(crater_store_content_list(s, "ns1", badf2, 1, &recs, &n, &e) < 0);
  crater_error_release(&e);

  /* labels update */
  crater_labels_t l = { 0 };
  crater_labels_set(&l, "gc.root", "yes");
  CHECK_OK(crater_store_content_set_labels(s, "ns1", a, &l, false, &err));
  CHECK(list_count(s, "ns1", "labels.\"gc.root\"==yes,labels.kind==layer", NULL) == 1);
  CHECK_OK(crater_store_content_set_labels(s, "ns1", a, &l, true, &err));
  CHECK(list_count(s, "ns1", "labels.kind==layer", NULL) == 0);
  CHECK(crater_store_content_set_labels(s, "ns2", b, &l, false, &e) < 0 &&
        e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  crater_labels_clear(&l);

  /* delete: record goes; the blob stays while another namespace has it */
  CHECK_OK(crater_store_content_delete(s, "ns1", a, &err));
  CHECK(crater_store_content_info(s, "ns1", a, &rec, &e) < 0);
  crater_error_release(&e);
  CHECK_OK(crater_content_stat(crater_store_content(s), a, NULL, &err));
  CHECK_OK(crater_store_content_delete(s, "ns2", a, &err));
  CHECK(crater_content_stat(crater_store_content(s), a, NULL, &e) < 0 &&
        e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  CHECK(crater_store_content_delete(s, "ns2", a, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);

  /* namespaced ingests: same ref in two namespaces are separate */
  crater_store_writer_t *w1 = crater_store_writer_open(s, "ns1", "same", NULL, 0, &err);
  crater_store_writer_t *w2 = crater_store_writer_open(s, "ns2", "same", NULL, 0, &err);
  CHECK(w1 && w2);
  CHECK(crater_store_writer_open(s, "ns1", "same", NULL, 0, &e) == NULL &&
        e->kind == CRATER_ERR_FAILED_PRECONDITION);
  crater_error_release(&e);
  CHECK_OK(crater_content_writer_write(crater_store_writer_content(w1), "12", 2, &err));
  crater_store_writer_close(w1);
  crater_store_writer_close(w2);
  CHECK_OK(crater_store_content_status(s, "ns1", &ing, &n, &err));
  CHECK(n == 1 && strcmp(ing[0].ref, "same") == 0 && ing[0].offset == 2 && !ing[0].active);
  crater_ingest_status_free(ing, n);
  CHECK_OK(crater_store_content_abort(s, "ns1", "same", &err));
  CHECK_OK(crater_store_content_abort(s, "ns2", "same", &err));

  /* fast path through the store */
  char fpath[4200];
  snprintf(fpath, sizeof fpath, "%s/file", tmp);
  FILE *f = fopen(fpath, "w");
  fputs("file content", f);
  fclose(f);
  int fd = open(fpath, O_RDONLY);
  crater_labels_set(&l, "src", "file");
  CHECK(crater_store_content_ingest_fd(s, "ns4", "file", fd, NULL, 12, &l, c, &err) ==
        CRATER_CONTENT_COMMITTED);
  crater_labels_clear(&l);
  close(fd);
  CHECK(list_count(s, "ns4", "labels.src==file", NULL) == 1);

  /* images */
  crater_image_t img = { .name = "example.com/app:1",
                         .media_type = "application/vnd.oci.image.manifest.v1+json",
                         .digest = b,
                         .size = 6 };
  crater_labels_set(&img.labels, "tier", "web");
  CHECK_OK(crater_store_image_create(s, "ns1", &img, &err));
  CHECK(crater_store_image_create(s, "ns1", &img, &e) < 0 && e->kind == CRATER_ERR_ALREADY_EXISTS);
  crater_error_release(&e);
  crater_image_t got;
  CHECK_OK(crater_store_image_get(s, "ns1", "example.com/app:1", &got, &err));
  CHECK_STREQ(got.digest, b);
  CHECK(got.size == 6 && got.created_at > 0);
  CHECK_STREQ(crater_labels_get(&got.labels, "tier"), "web");
  crater_image_clear(&got);
  img.size = 7;
  img.digest = c;
  CHECK_OK(crater_store_image_update(s, "ns1", &img, &err));
  CHECK_OK(crater_store_image_get(s, "ns1", "example.com/app:1", &got, &err));
  CHECK(got.size == 7 && strcmp(got.digest, c) == 0);
  crater_image_clear(&got);
  img.name = "example.com/app:2";
  CHECK(crater_store_image_update(s, "ns1", &img, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  CHECK_OK(crater_store_image_create(s, "ns1", &img, &err));
  img.digest = "sha256:nothex";
  CHECK(crater_store_image_create(s, "ns1", &img, &e) < 0 &&
        e->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&e);
  crater_labels_clear(&img.labels);
  crater_image_t *imgs;
  const char *ff[] = { "name==example.com/app:2" };
  CHECK_OK(crater_store_image_list(s, "ns1", ff, 1, &imgs, &n, &err));
  CHECK(n == 1);
  crater_images_free(imgs, n);
  CHECK_OK(crater_store_image_list(s, "ns1", NULL, 0, &imgs, &n, &err));
  CHECK(n == 2);
  crater_images_free(imgs, n);
  CHECK_OK(crater_store_image_delete(s, "ns1", "example.com/app:2", &err));
  CHECK(crater_store_image_delete(s, "ns1", "example.com/app:2", &e) < 0 &&
        e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);

  /* leases */
  crater_labels_set(&l, "purpose", "pull");
  CHECK_OK(crater_store_lease_create(s, "ns1", "pull-1", &l, 3600, &err));
  crater_labels_clear(&l);
  CHECK(crater_store_lease_create(s, "ns1", "pull-1", NULL, 0, &e) < 0 &&
        e->kind == CRATER_ERR_ALREADY_EXISTS);
  crater_error_release(&e);
  CHECK(crater_store_lease_create(s, "ns1", "bad id", NULL, 0, &e) < 0);
  crater_error_release(&e);
  CHECK_OK(crater_store_lease_add_resource(s, "ns1", "pull-1", "content", b, &err));
  CHECK_OK(crater_store_lease_add_resource(s, "ns1", "pull-1", "content", b, &err));
  CHECK_OK(crater_store_lease_add_resource(s, "ns1", "pull-1", "ingest", "layer-3", &err));
  CHECK_OK(crater_store_lease_add_resource(s, "ns1", "pull-1", "snapshots/overlayfs", "k1", &err));
  CHECK(crater_store_lease_add_resource(s, "ns1", "pull-1", "bogus", "x", &e) < 0);
  crater_error_release(&e);
  CHECK(crater_store_lease_add_resource(s, "ns1", "nolease", "ingest", "x", &e) < 0 &&
        e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  crater_lease_t *leases;
  CHECK_OK(crater_store_lease_list(s, "ns1", &leases, &n, &err));
  CHECK(n == 1 && leases[0].nresources == 3 && leases[0].expire_at > leases[0].created_at);
  CHECK_STREQ(crater_labels_get(&leases[0].labels, "purpose"), "pull");
  crater_leases_free(leases, n);
  CHECK_OK(crater_store_lease_delete(s, "ns1", "pull-1", &err));
  CHECK(crater_store_lease_delete(s, "ns1", "pull-1", &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  CHECK_OK(crater_store_lease_list(s, "ns1", &leases, &n, &err));
  CHECK(n == 0);
  crater_leases_free(leases, n);

  crater_store_close(s);
  test_rmtree(tmp);
  return 0;
}
