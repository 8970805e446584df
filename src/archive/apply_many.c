/*
 * Parallel layer apply: independent layers (overlay upper dirs) applied on
 * a small pool of threads, each layer on one thread (its decompressor and
 * its filesystem writes), each into its own root.  Used by crater.unpack
 * for stored layers (core.archive_apply_many); pull's streamed apply runs
 * the same job per pipe-fed thread (crater_apply_job_run).  Workers share
 * nothing but the next-job counter.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/archive_sym.h"
#include "common/xalloc.h"

int
crater_apply_job_run(crater_apply_job_t *job, bool drain)
{
  int rc = crater_archive_apply(job->root_dirfd, job->layer_fd, &job->opts, &job->res, &job->err);
  if (drain) {
    char buf[65536];
    ssize_t n;
    while ((n = read(job->layer_fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
      ;
  }
  job->done = true;
  return rc;
}

typedef struct {
  crater_apply_job_t *jobs;
  size_t n;
  atomic_size_t next;
} pool_t;

static void *
worker(void *arg)
{
  pool_t *p = arg;
  for (;;) {
    size_t i = atomic_fetch_add(&p->next, 1);
    if (i >= p->n)
      return NULL;
    crater_apply_job_run(&p->jobs[i], false);
  }
}

int
crater_archive_apply_many(crater_apply_job_t *jobs, size_t n, size_t parallel, crater_error_t *err)
{
  if (n == 0)
    return 0;
  /* libarchive is dlopen'ed on first use: load it before any thread runs */
  if (crater__archive_load(err) < 0)
    return crater_error_wrap(err, "apply layers");
  if (parallel == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    parallel = c > 0 ? (size_t) c : 1;
  }
  if (parallel > n)
    parallel = n;
  pool_t pool = { .jobs = jobs, .n = n };
  atomic_init(&pool.next, 0);
  pthread_t *th = xcalloc(parallel, sizeof *th);
  size_t started = 0;
  /* the calling thread is one of the workers */
  for (size_t t = 1; t < parallel; t++) {
    if (pthread_create(&th[t], NULL, worker, &pool) != 0)
      break;
    started = t;
  }
  worker(&pool);
  for (size_t t = 1; t <= started; t++)
    pthread_join(th[t], NULL);
  free(th);
  return 0;
}
