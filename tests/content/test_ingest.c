/* Unit tests for content ingest: write/commit, resume (after close and
 * after SIGKILL), writer exclusion, size/digest mismatch, existing blobs,
 * crash between write and rename, abort, read/walk/delete, the fd path. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "content/content.h"

static crater_error_t err;

static int
count_blobs(const char *cdir)
{
  char p[4096];
  snprintf(p, sizeof p, "%s/blobs/sha256", cdir);
  DIR *d = opendir(p);
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static void
digest_of(const void *buf, size_t n, char *out)
{
  crater_digester_t *d = crater_digester_new(CRATER_DIGEST_SHA256, &err);
  CHECK(d != NULL);
  CHECK_OK(crater_digester_update(d, buf, n, &err));
  CHECK_OK(crater_digester_digest(d, out, &err));
  crater_digester_free(d);
}

static int
count_walk(const crater_blob_info_t *info, void *ud, crater_error_t *e)
{
  (*(int *) ud)++;
  return 0;
}

/* Forks a child that writes n bytes of 'x' to ref, optionally verifies
 * (fsync, everything but the rename), then tells us and waits to be
 * killed.  Returns the child's pid after it reported. */
static pid_t
spawn_writer(crater_content_t *c, const char *ref, size_t n, bool verify)
{
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    crater_content_writer_t *w = crater_content_writer_open(c, ref, NULL, 0, &err);
    if (w == NULL)
      _exit(3);
    char *buf = malloc(n);
    memset(buf, 'x', n);
    if (crater_content_writer_write(w, buf, n, &err) < 0)
      _exit(4);
    char dg[CRATER_DIGEST_MAX];
    if (verify && crater_content_writer_verify(w, (int64_t) n, NULL, dg, &err) < 0)
      _exit(5);
    if (write(p[1], "k", 1) != 1)
      _exit(6);
    for (;;)
      pause();
  }
  close(p[1]);
  char ch;
  CHECK(read(p[0], &ch, 1) == 1);
  close(p[0]);
  return pid;
}

static void
kill_child(pid_t pid)
{
  int st;
  CHECK(kill(pid, SIGKILL) == 0);
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

int
main(void)
{
  char *tmp = test_tmpdir("ingest");
  char cdir[4096];
  snprintf(cdir, sizeof cdir, "%s/content", tmp);
  crater_content_t *c = crater_content_open(cdir, &err);
  CHECK(c != NULL);
  char dg[CRATER_DIGEST_MAX], want[CRATER_DIGEST_MAX];
  crater_error_t e = NULL;

  /* write + commit */
  digest_of("hello world", 11, want);
  crater_content_writer_t *w = crater_content_writer_open(c, "ref-1", want, 11, &err);
  CHECK(w != NULL);
  CHECK_OK(crater_content_writer_write(w, "hello ", 6, &err));
  CHECK(crater_content_writer_offset(w) == 6);
  crater_ingest_status_t st;
  CHECK_OK(crater_content_status(c, "ref-1", &st, &err));
  CHECK(st.offset == 6 && st.total == 11 && st.active && st.started_at > 0);
  CHECK_STREQ(st.ref, "ref-1");
  CHECK_STREQ(st.expected, want);
  crater_ingest_status_clear(&st);
  CHECK_OK(crater_content_writer_write(w, "world", 5, &err));
  CHECK(crater_content_writer_commit(w, 11, want, dg, &err) == CRATER_CONTENT_COMMITTED);
  crater_content_writer_close(w);
  CHECK_STREQ(dg, want);
  CHECK(count_blobs(cdir) == 1);
  CHECK(crater_content_status(c, "ref-1", &st, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  crater_blob_info_t info;
  CHECK_OK(crater_content_stat(c, want, &info, &err));
  CHECK(info.size == 11);
  char *bp = crater_content_path(c, want, &err);
  struct stat sb;
  CHECK(bp && stat(bp, &sb) == 0 && (sb.st_mode & 0777) == 0444);
  free(bp);
  char rb[32];
  CHECK(crater_content_read(c, want, 6, rb, 3, &err) == 3 && memcmp(rb, "wor", 3) == 0);
  CHECK(crater_content_read(c, want, 0, rb, sizeof rb, &err) == 11);
  CHECK(crater_content_read(c, want, 20, rb, 3, &err) == 0);

  /* committing an existing blob is not an error; the ingest goes away */
  w = crater_content_writer_open(c, "ref-dup", NULL, 0, &err);
  CHECK_OK(crater_content_writer_write(w, "hello world", 11, &err));
  CHECK(crater_content_writer_commit(w, -1, NULL, dg, &err) == CRATER_CONTENT_EXISTS);
  crater_content_writer_close(w);
  CHECK(crater_content_status(c, "ref-dup", &st, &e) < 0);
  crater_error_release(&e);
  CHECK(count_blobs(cdir) == 1);

  /* resume after close */
  w = crater_content_writer_open(c, "ref-2", NULL, 0, &err);
  CHECK_OK(crater_content_writer_write(w, "abc", 3, &err));
  crater_content_writer_close(w);
  w = crater_content_writer_open(c, "ref-2", NULL, 0, &err);
  CHECK(w != NULL && crater_content_writer_offset(w) == 3);
  CHECK_OK(crater_content_writer_write(w, "def", 3, &err));
  CHECK_OK(crater_content_writer_digest(w, dg, &err));
  digest_of("abcdef", 6, want);
  CHECK_STREQ(dg, want);

  /* second writer refused while the first is alive (same process, other
   * open file description) */
  CHECK(crater_content_writer_open(c, "ref-2", NULL, 0, &e) == NULL);
  CHECK(e->kind == CRATER_ERR_FAILED_PRECONDITION);
  CHECK_STREQ(e->msg, "ref ref-2 locked");
  crater_error_release(&e);
  CHECK(crater_content_abort(c, "ref-2", &e) < 0 && e->kind == CRATER_ERR_FAILED_PRECONDITION);
  crater_error_release(&e);

  /* size mismatch: FAILED_PRECONDITION, expected vs actual, nothing visible */
  CHECK(crater_content_writer_commit(w, 7, NULL, dg, &e) < 0);
  CHECK(e->kind == CRATER_ERR_FAILED_PRECONDITION);
  CHECK(strstr(e->msg, "size mismatch: expected 7, got 6") != NULL);
  crater_error_release(&e);
  /* digest mismatch: DATA_LOSS, expected vs actual, nothing visible */
  char wrong[CRATER_DIGEST_MAX];
  digest_of("abcdeF", 6, wrong);
  CHECK(crater_content_writer_commit(w, 6, wrong, dg, &e) < 0);
  CHECK(e->kind == CRATER_ERR_DATA_LOSS);
  CHECK(strstr(e->msg, wrong) && strstr(e->msg, want) && strstr(e->msg, "expected"));
  crater_error_release(&e);
  CHECK(count_blobs(cdir) == 1);
  CHECK(crater_content_stat(c, wrong, NULL, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  /* abort removes the ingest */
  CHECK_OK(crater_content_writer_abort(w, &err));
  CHECK(crater_content_status(c, "ref-2", &st, &e) < 0);
  crater_error_release(&e);
  CHECK(crater_content_abort(c, "ref-2", &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);

  /* a live writer in another process excludes us; SIGKILL frees the ref
   * and the ingest resumes at its offset */
  pid_t pid = spawn_writer(c, "ref-kill", 100000, false);
  CHECK(crater_content_writer_open(c, "ref-kill", NULL, 0, &e) == NULL);
  CHECK(e->kind == CRATER_ERR_FAILED_PRECONDITION);
  crater_error_release(&e);
  CHECK_OK(crater_content_status(c, "ref-kill", &st, &err));
  CHECK(st.active && st.offset == 100000);
  crater_ingest_status_clear(&st);
  kill_child(pid);
  CHECK_OK(crater_content_status(c, "ref-kill", &st, &err));
  CHECK(!st.active);
  crater_ingest_status_clear(&st);
  w = crater_content_writer_open(c, "ref-kill", NULL, 0, &err);
  CHECK(w != NULL);
  CHECK(crater_content_writer_offset(w) == 100000);
  char *buf = malloc(100001);
  memset(buf, 'x', 100001);
  CHECK_OK(crater_content_writer_write(w, "x", 1, &err));
  digest_of(buf, 100001, want);
  CHECK(crater_content_writer_commit(w, 100001, want, dg, &err) == CRATER_CONTENT_COMMITTED);
  crater_content_writer_close(w);
  CHECK(count_blobs(cdir) == 2);

  /* crash between write (even fsync) and rename: no visible blob */
  pid = spawn_writer(c, "ref-crash", 5000, true);
  kill_child(pid);
  memset(buf, 'x', 5000);
  digest_of(buf, 5000, want);
  CHECK(crater_content_stat(c, want, NULL, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  CHECK(count_blobs(cdir) == 2);
  crater_ingest_status_t *all;
  size_t n;
  CHECK_OK(crater_content_status_list(c, NULL, &all, &n, &err));
  CHECK(n == 1 && strcmp(all[0].ref, "ref-crash") == 0 && all[0].offset == 5000);
  crater_ingest_status_free(all, n);
  w = crater_content_writer_open(c, "ref-crash", NULL, 0, &err);
  CHECK(crater_content_writer_commit(w, 5000, want, dg, &err) == CRATER_CONTENT_COMMITTED);
  crater_content_writer_close(w);
  CHECK(count_blobs(cdir) == 3);

  /* fast path from a file, with resume, and from a pipe */
  size_t big = (9u << 20) + 12345;
  char *data = malloc(big);
  for (size_t i = 0; i < big; i++)
    data[i] = (char) (i * 2654435761u >> 13);
  digest_of(data, big, want);
  char fpath[4200];
  snprintf(fpath, sizeof fpath, "%s/src", tmp);
  int fd = open(fpath, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0 && write(fd, data, big) == (ssize_t) big);
  w = crater_content_writer_open(c, "ref-fd", NULL, 0, &err);
  CHECK_OK(crater_content_writer_write(w, data, 1000, &err)); /* partial, resumed below */
  crater_content_writer_close(w);
  CHECK(lseek(fd, 0, SEEK_SET) == 0);
  CHECK(crater_content_ingest_fd(c, "ref-fd", fd, want, (int64_t) big, dg, &err) ==
        CRATER_CONTENT_COMMITTED);
  CHECK_STREQ(dg, want);
  CHECK_OK(crater_content_stat(c, want, &info, &err));
  CHECK(info.size == (int64_t) big);
  CHECK(crater_content_read(c, want, 4u << 20, rb, 16, &err) == 16);
  CHECK(memcmp(rb, data + (4u << 20), 16) == 0);
  /* same file again: exists */
  CHECK(lseek(fd, 0, SEEK_SET) == 0);
  CHECK(crater_content_ingest_fd(c, "ref-fd2", fd, NULL, -1, dg, &err) == CRATER_CONTENT_EXISTS);
  /* wrong expected digest: DATA_LOSS, nothing visible, ingest dropped */
  CHECK(lseek(fd, 0, SEEK_SET) == 0);
  data[0] ^= 1;
  digest_of(data, big, wrong);
  CHECK(crater_content_ingest_fd(c, "ref-fd3", fd, wrong, -1, dg, &e) < 0);
  CHECK(e->kind == CRATER_ERR_DATA_LOSS);
  crater_error_release(&e);
  CHECK(crater_content_stat(c, wrong, NULL, &e) < 0);
  crater_error_release(&e);
  CHECK(crater_content_status(c, "ref-fd3", &st, &e) < 0);
  crater_error_release(&e);
  close(fd);
  int pp[2];
  CHECK(pipe(pp) == 0);
  pid = fork();
  if (pid == 0) {
    close(pp[0]);
    write(pp[1], "piped data", 10);
    _exit(0);
  }
  close(pp[1]);
  CHECK(crater_content_ingest_fd(c, "ref-pipe", pp[0], NULL, 10, dg, &err) ==
        CRATER_CONTENT_COMMITTED);
  close(pp[0]);
  waitpid(pid, NULL, 0);
  digest_of("piped data", 10, want);
  CHECK_STREQ(dg, want);

  /* sha512 via expected */
  crater_digester_t *d5 = crater_digester_new(CRATER_DIGEST_SHA512, &err);
  crater_digester_update(d5, "five-twelve", 11, &err);
  crater_digester_digest(d5, want, &err);
  crater_digester_free(d5);
  w = crater_content_writer_open(c, "ref-512", want, 0, &err);
  CHECK_OK(crater_content_writer_write(w, "five-twelve", 11, &err));
  CHECK(crater_content_writer_commit(w, 11, NULL, dg, &err) == CRATER_CONTENT_COMMITTED);
  crater_content_writer_close(w);
  CHECK_STREQ(dg, want);
  CHECK_OK(crater_content_stat(c, want, NULL, &err));

  /* walk and delete */
  int count = 0;
  CHECK_OK(crater_content_walk(c, count_walk, &count, &err));
  CHECK(count == 6);
  CHECK_OK(crater_content_delete(c, want, &err));
  CHECK(crater_content_delete(c, want, &e) < 0 && e->kind == CRATER_ERR_NOT_FOUND);
  crater_error_release(&e);
  CHECK(crater_content_writer_open(c, "", NULL, 0, &e) == NULL);
  crater_error_release(&e);
  CHECK(crater_content_writer_open(c, "r", "sha256:../../etc", 0, &e) == NULL);
  CHECK(e->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&e);

  crater_content_close(c);
  free(buf);
  free(data);
  test_rmtree(tmp);
  return 0;
}
