/*
 * ingest_bench: times crater_content_ingest_fd on one file into a content
 * store (bench/ingest.sh builds and runs it next to `openssl dgst`).
 *
 *   ingest_bench CONTENT_DIR FILE [REF]
 * prints "<seconds> <digest> <committed|exists>".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "content/content.h"

int
main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: %s CONTENT_DIR FILE [REF]\n", argv[0]);
    return 2;
  }
  crater_error_t err = NULL;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  crater_content_t *c = crater_content_open(argv[1], &err);
  int fd = c ? open(argv[2], O_RDONLY | O_CLOEXEC) : -1;
  char dg[CRATER_DIGEST_MAX];
  int r = -1;
  if (getenv("INGEST_BENCH_PHASES") && fd >= 0) {
    /* the same steps as crater_content_ingest_fd, timed one by one */
    struct timespec t1, t2;
    crater_content_writer_t *w =
        crater_content_writer_open(c, argc > 3 ? argv[3] : "bench", NULL, 0, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (w && crater_content_writer_copy_fd(w, fd, &err) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t2);
      r = crater_content_writer_commit(w, -1, NULL, dg, &err);
      clock_gettime(CLOCK_MONOTONIC, &b);
      fprintf(stderr, "open %.3f copy+hash %.3f fsync+commit %.3f\n",
              (double) (t1.tv_sec - a.tv_sec) + (t1.tv_nsec - a.tv_nsec) / 1e9,
              (double) (t2.tv_sec - t1.tv_sec) + (t2.tv_nsec - t1.tv_nsec) / 1e9,
              (double) (b.tv_sec - t2.tv_sec) + (b.tv_nsec - t2.tv_nsec) / 1e9);
    }
    crater_content_writer_close(w);
  } else if (fd >= 0) {
    r = crater_content_ingest_fd(c, argc > 3 ? argv[3] : "bench", fd, NULL, -1, dg, &err);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (r < 0) {
    fprintf(stderr, "ingest_bench: %s\n", err ? err->msg : "cannot open input");
    return 1;
  }
  printf("%.3f %s %s\n", (double) (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, dg,
         r == CRATER_CONTENT_EXISTS ? "exists" : "committed");
  close(fd);
  crater_content_close(c);
  return 0;
}
