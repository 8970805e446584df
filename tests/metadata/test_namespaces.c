/* Namespaces: name validation, create/get/list/labels, implicit creation
 * by objects, delete refused while non-empty (saying what it holds). */
#include "check.h"
#include "metadata/store.h"

static crater_error_t err;

static void
bad_name(const char *n)
{
  crater_error_t e = NULL;
  if (crater_namespace_validate(n, &e) == 0) {
    fprintf(stderr, "accepted namespace '%s'\n", n);
    exit(1);
  }
  CHECK(e->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&e);
}

int
main(void)
{
  char *tmp = test_tmpdir("namespaces");
  crater_store_t *s = crater_store_open(tmp, &err);
  CHECK(s != NULL);
  crater_error_t e = NULL;

  CHECK_OK(crater_namespace_validate("default", &err));
  CHECK_OK(crater_namespace_validate("k8s.io", &err));
  CHECK_OK(crater_namespace_validate("a", &err));
  CHECK_OK(crater_namespace_validate("a-b_c.d9", &err));
  char longname[80];
  memset(longname, 'a', 76);
  longname[76] = 0;
  CHECK_OK(crater_namespace_validate(longname, &err));
  longname[76] = 'a';
  longname[77] = 0;
  bad_name(longname);
  bad_name("");
  bad_name("Default");
  bad_name("-a");
  bad_name("a-");
  bad_name(".a");
  bad_name("a/b");
  bad_name("..");
  bad_name("a b");

  crater_labels_t l = { 0 };
  crater_labels_set(&l, "team", "core");
  CHECK_OK(crater_store_namespace_create(s, "one", &l, &err));
  CHECK(crater_store_namespace_create(s, "one", NULL, &e) < 0);
  CHECK(e->kind == CRATER_ERR_ALREADY_EXISTS);
  crater_error_release(&e);
  CHECK(crater_store_namespace_create(s, "Bad", NULL, &e) < 0);
  crater_error_release(&e);

  crater_namespace_t ns;
  CHECK_OK(crater_store_namespace_get(s, "one", &ns, &err));
  CHECK_STREQ(ns.name, "one");
  CHECK_STREQ(crater_labels_get(&ns.labels, "team"), "core");
  crater_namespace_clear(&ns);
  CHECK(crater_store_namespace_get(s, "nope", &ns, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);

  /* labels: merge, delete by empty value, replace */
  crater_labels_clear(&l);
  crater_labels_set(&l, "env", "prod");
  CHECK_OK(crater_store_namespace_set_labels(s, "one", &l, false, &err));
  CHECK_OK(crater_store_namespace_get(s, "one", &ns, &err));
  CHECK(ns.labels.n == 2);
  crater_namespace_clear(&ns);
  crater_labels_clear(&l);
  crater_labels_set(&l, "team", "");
  CHECK_OK(crater_store_namespace_set_labels(s, "one", &l, false, &err));
  CHECK_OK(crater_store_namespace_get(s, "one", &ns, &err));
  CHECK(ns.labels.n == 1 && crater_labels_get(&ns.labels, "env"));
  crater_namespace_clear(&ns);
  crater_labels_clear(&l);
  crater_labels_set(&l, "x", "y");
  CHECK_OK(crater_store_namespace_set_labels(s, "one", &l, true, &err));
  CHECK_OK(crater_store_namespace_get(s, "one", &ns, &err));
  CHECK(ns.labels.n == 1 && strcmp(crater_labels_get(&ns.labels, "x"), "y") == 0);
  crater_namespace_clear(&ns);
  crater_labels_clear(&l);
  CHECK(crater_store_namespace_set_labels(s, "nope", NULL, false, &e) < 0 &&
        e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);

  /* objects create their namespace implicitly */
  crater_image_t img = {
    .name = "docker.io/library/busybox:latest",
    .media_type = "application/vnd.oci.image.index.v1+json",
    .digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    .size = 0
  };
  CHECK_OK(crater_store_image_create(s, "two", &img, &err));
  crater_store_writer_t *w = crater_store_writer_open(s, "two", "blob-a", NULL, 0, &err);
  CHECK(w != NULL);
  CHECK_OK(crater_content_writer_write(crater_store_writer_content(w), "aaa", 3, &err));
  CHECK(crater_store_writer_commit(w, 3, NULL, NULL, NULL, &err) == CRATER_CONTENT_COMMITTED);
  crater_store_writer_close(w);
  w = crater_store_writer_open(s, "two", "blob-b", NULL, 0, &err);
  CHECK_OK(crater_content_writer_write(crater_store_writer_content(w), "bbb", 3, &err));
  CHECK(crater_store_writer_commit(w, 3, NULL, NULL, NULL, &err) == CRATER_CONTENT_COMMITTED);
  crater_store_writer_close(w);
  CHECK_OK(crater_store_lease_create(s, "two", "pull-1", NULL, 0, &err));

  crater_namespace_t *all;
  size_t n;
  CHECK_OK(crater_store_namespace_list(s, &all, &n, &err));
  CHECK(n == 2 && strcmp(all[0].name, "one") == 0 && strcmp(all[1].name, "two") == 0);
  crater_namespaces_free(all, n);

  /* delete refused while non-empty, with what it holds */
  CHECK(crater_store_namespace_delete(s, "two", &e) < 0);
  CHECK(e->kind == CRATER_ERR_FAILED_PRECONDITION);
  CHECK_STREQ(e->msg, "namespace two: not empty: 2 content blobs, 1 image, 1 lease");
  crater_error_release(&e);
  /* an ingest holds it too */
  w = crater_store_writer_open(s, "two", "pending", NULL, 0, &err);
  crater_store_writer_close(w);
  CHECK_OK(crater_store_lease_delete(s, "two", "pull-1", &err));
  CHECK_OK(crater_store_image_delete(s, "two", img.name, &err));
  CHECK(crater_store_namespace_delete(s, "two", &e) < 0);
  CHECK_STREQ(e->msg, "namespace two: not empty: 2 content blobs, 1 ingest");
  crater_error_release(&e);
  CHECK_OK(crater_store_content_abort(s, "two", "pending", &err));
  CHECK_OK(crater_store_content_delete(
      s, "two", "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0", &err));
  CHECK_OK(crater_store_content_delete(
      s, "two", "sha256:3e744b9dc39389baf0c5a0660589b8402f3dbb49b89b3e75f2c9355852a3c677", &err));
  CHECK_OK(crater_store_namespace_delete(s, "two", &err));
  CHECK(crater_store_namespace_delete(s, "two", &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  CHECK_OK(crater_store_namespace_delete(s, "one", &err));

  crater_store_close(s);
  test_rmtree(tmp);
  return 0;
}
