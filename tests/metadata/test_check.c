/* crater check: finds corrupt blobs, orphan files, missing blobs and stale
 * ingests; reports only without repair; repair fixes them; quick samples. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "metadata/store.h"

static crater_error_t err;

static void
put(crater_store_t *s, const char *ns, const char *ref, const char *data, char *dg)
{
  crater_store_writer_t *w = crater_store_writer_open(s, ns, ref, NULL, 0, &err);
  CHECK(w != NULL);
  CHECK_OK(crater_content_writer_write(crater_store_writer_content(w), data, strlen(data), &err));
  CHECK_OK(crater_store_writer_commit(w, -1, NULL, NULL, dg, &err));
  crater_store_writer_close(w);
}

int
main(void)
{
  char *tmp = test_tmpdir("check");
  crater_store_t *s = crater_store_open(tmp, &err);
  CHECK(s != NULL);
  char good[CRATER_DIGEST_MAX], bad[CRATER_DIGEST_MAX], gone[CRATER_DIGEST_MAX],
      orphan[CRATER_DIGEST_MAX];
  put(s, "default", "good", "good blob", good);
  put(s, "default", "bad", "bad blob", bad);
  put(s, "default", "gone", "gone blob", gone);
  put(s, "other", "orphan", "orphan blob", orphan);

  crater_check_report_t rep;
  crater_check_opts_t o = { 0 };
  CHECK_OK(crater_store_check(s, &o, &rep, &err));
  CHECK(rep.checked == 4 && rep.ncorrupt + rep.norphans + rep.nmissing + rep.nstale == 0);
  crater_check_report_clear(&rep);

  /* corrupt one blob, remove another's file, drop a record, leave ingests */
  char *p = crater_content_path(crater_store_content(s), bad, &err);
  CHECK(chmod(p, 0644) == 0);
  FILE *f = fopen(p, "r+");
  CHECK(f != NULL);
  fputs("BAD", f);
  fclose(f);
  free(p);
  p = crater_content_path(crater_store_content(s), gone, &err);
  CHECK(unlink(p) == 0);
  free(p);
  CHECK_OK(
      crater__db_exec(crater_store_db(s), "DELETE FROM content WHERE namespace = 'other'", &err));
  crater_store_writer_t *w = crater_store_writer_open(s, "default", "old-ingest", NULL, 0, &err);
  CHECK_OK(crater_content_writer_write(crater_store_writer_content(w), "x", 1, &err));
  crater_store_writer_close(w);
  crater_store_writer_t *live =
      crater_store_writer_open(s, "default", "live-ingest", NULL, 0, &err);
  CHECK(live != NULL);
  char broken[4200];
  snprintf(broken, sizeof broken, "%s/content/ingest/junk", tmp);
  CHECK(mkdir(broken, 0700) == 0);

  o.stale_after_s = 0; /* default 24 h: nothing stale yet except broken */
  CHECK_OK(crater_store_check(s, &o, &rep, &err));
  CHECK(rep.ncorrupt == 1 && strcmp(rep.corrupt[0].digest, bad) == 0 && rep.corrupt[0].detail);
  CHECK(rep.norphans == 1 && strcmp(rep.orphans[0].digest, orphan) == 0);
  CHECK(rep.nmissing == 1 && strcmp(rep.missing[0].digest, gone) == 0 &&
        strcmp(rep.missing[0].ns, "default") == 0);
  CHECK(rep.nstale == 1 && strcmp(rep.stale[0].detail, "ingest/junk") == 0);
  CHECK(!rep.repaired);
  crater_check_report_clear(&rep);
  /* report only: nothing changed */
  CHECK_OK(crater_content_stat(crater_store_content(s), orphan, NULL, &err));

  /* make the idle ingest old; the live one stays (its lock is held) */
  char dpath[4200];
  crater_ingest_status_t *ing;
  size_t n;
  CHECK_OK(crater_store_content_status(s, "default", &ing, &n, &err));
  CHECK(n == 2);
  crater_ingest_status_free(ing, n);
  snprintf(dpath, sizeof dpath,
           "find '%s/content/ingest' -name data -exec touch -d '3 days ago' {} +", tmp);
  CHECK(system(dpath) == 0);
  o.repair = true;
  CHECK_OK(crater_store_check(s, &o, &rep, &err));
  CHECK(rep.ncorrupt == 1 && rep.norphans == 1 && rep.nmissing == 1);
  CHECK(rep.nstale == 2); /* old-ingest + junk; live-ingest is locked */
  CHECK(rep.repaired);
  crater_check_report_clear(&rep);
  crater_error_t e = NULL;
  CHECK(crater_store_content_info(s, "default", bad, NULL, &e) < 0);
  crater_error_release(&e);
  CHECK(crater_content_stat(crater_store_content(s), bad, NULL, &e) < 0);
  crater_error_release(&e);
  CHECK(crater_content_stat(crater_store_content(s), orphan, NULL, &e) < 0);
  crater_error_release(&e);
  CHECK_OK(crater_store_content_status(s, "default", &ing, &n, &err));
  CHECK(n == 1 && strcmp(ing[0].ref, "live-ingest") == 0);
  crater_ingest_status_free(ing, n);
  CHECK_OK(crater_store_writer_abort(live, &err));

  o.repair = false;
  CHECK_OK(crater_store_check(s, &o, &rep, &err));
  CHECK(rep.checked == 1 && rep.ncorrupt + rep.norphans + rep.nmissing + rep.nstale == 0);
  crater_check_report_clear(&rep);

  /* quick samples: with 30 blobs it re-hashes 8, still finds orphans */
  for (int i = 0; i < 30; i++) {
    char data[32], ref[32], dg[CRATER_DIGEST_MAX];
    snprintf(data, sizeof data, "sample %d", i);
    snprintf(ref, sizeof ref, "s%d", i);
    put(s, "default", ref, data, dg);
  }
  o.quick = true;
  CHECK_OK(crater_store_check(s, &o, &rep, &err));
  CHECK(rep.checked == 8);
  crater_check_report_clear(&rep);

  crater_store_close(s);
  test_rmtree(tmp);
  return 0;
}
