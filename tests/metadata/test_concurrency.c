/* Two processes on one fresh root at once: both create and migrate the
 * database, then write concurrently (images, blobs, labels, shared blobs
 * in one namespace); afterwards nothing is lost and every record has its
 * blob. */
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "metadata/store.h"

#define N 60

static crater_error_t err;

static int
child(const char *root, int id)
{
  crater_store_t *s = crater_store_open(root, &err);
  if (s == NULL) {
    fprintf(stderr, "child %d: %s\n", id, err->msg);
    return 2;
  }
  for (int k = 0; k < N; k++) {
    char name[64], data[64], ref[64], dg[CRATER_DIGEST_MAX];
    snprintf(name, sizeof name, "img-%d-%d", id, k);
    snprintf(data, sizeof data, "child %d blob %d", id, k);
    snprintf(ref, sizeof ref, "ref-%d-%d", id, k);
    crater_store_writer_t *w = crater_store_writer_open(s, "shared", ref, NULL, 0, &err);
    if (w == NULL ||
        crater_content_writer_write(crater_store_writer_content(w), data, strlen(data), &err) < 0 ||
        crater_store_writer_commit(w, -1, NULL, NULL, dg, &err) < 0)
      goto fail;
    crater_store_writer_close(w);
    /* both children commit the same bytes under different refs */
    snprintf(data, sizeof data, "common blob %d", k);
    snprintf(ref, sizeof ref, "common-%d-%d", id, k);
    w = crater_store_writer_open(s, "shared", ref, NULL, 0, &err);
    if (w == NULL ||
        crater_content_writer_write(crater_store_writer_content(w), data, strlen(data), &err) < 0 ||
        crater_store_writer_commit(w, -1, NULL, NULL, dg, &err) < 0)
      goto fail;
    crater_store_writer_close(w);
    crater_image_t img = {
      .name = name, .media_type = "application/x-test", .digest = dg, .size = 1
    };
    crater_labels_set(&img.labels, "child", id ? "1" : "0");
    int r = crater_store_image_create(s, "shared", &img, &err);
    crater_labels_clear(&img.labels);
    if (r < 0)
      goto fail;
    crater_labels_t l = { 0 };
    char key[32];
    snprintf(key, sizeof key, "c%d-%d", id, k);
    crater_labels_set(&l, key, "v");
    r = crater_store_namespace_set_labels(s, "shared", &l, false, &err);
    crater_labels_clear(&l);
    if (r < 0)
      goto fail;
  }
  crater_store_close(s);
  return 0;
fail:
  fprintf(stderr, "child %d: %s\n", id, err ? err->msg : "?");
  return 1;
}

int
main(void)
{
  char *tmp = test_tmpdir("concurrency");
  char root[4200];
  snprintf(root, sizeof root, "%s/root", tmp);
  pid_t pids[2];
  for (int i = 0; i < 2; i++) {
    pids[i] = fork();
    CHECK(pids[i] >= 0);
    if (pids[i] == 0)
      _exit(child(root, i));
  }
  for (int i = 0; i < 2; i++) {
    int st;
    CHECK(waitpid(pids[i], &st, 0) == pids[i]);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  crater_store_t *s = crater_store_open(root, &err);
  CHECK(s != NULL);
  crater_image_t *imgs;
  size_t n;
  CHECK_OK(crater_store_image_list(s, "shared", NULL, 0, &imgs, &n, &err));
  CHECK(n == 2 * N);
  crater_images_free(imgs, n);
  crater_content_record_t *recs;
  CHECK_OK(crater_store_content_list(s, "shared", NULL, 0, &recs, &n, &err));
  CHECK(n == 3 * N); /* N per child + N common */
  crater_content_records_free(recs, n);
  crater_namespace_t ns;
  CHECK_OK(crater_store_namespace_get(s, "shared", &ns, &err));
  CHECK(ns.labels.n == 2 * N);
  crater_namespace_clear(&ns);
  crater_check_report_t rep;
  crater_check_opts_t o = { 0 };
  CHECK_OK(crater_store_check(s, &o, &rep, &err));
  CHECK(rep.checked == 3 * N && rep.ncorrupt == 0 && rep.norphans == 0 && rep.nmissing == 0 &&
        rep.nstale == 0);
  crater_check_report_clear(&rep);
  crater_ingest_status_t *ing;
  CHECK_OK(crater_store_content_status(s, "shared", &ing, &n, &err));
  CHECK(n == 0);
  crater_ingest_status_free(ing, n);
  crater_store_close(s);
  test_rmtree(tmp);
  return 0;
}
