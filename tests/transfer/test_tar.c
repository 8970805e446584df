/*
 * Unit test for src/transfer/tar.c: the pax writer is deterministic and
 * its output reads back; the reader refuses `..`, absolute names, escaping
 * symlinks and hardlinks, and reports inner symlinks as resolved aliases.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/cleanup.h"
#include "transfer/transfer.h"

static void
write_tar(const char *path, const char *blob_path)
{
  crater_error_t err = NULL;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0);
  crater_tar_writer_t *w = crater_tar_writer_new(fd, &err);
  CHECK(w != NULL);
  CHECK_OK(crater_tar_writer_add_data(w, "oci-layout", "{}", 2, &err));
  CHECK_OK(crater_tar_writer_add_dir(w, "blobs", &err));
  int bfd = open(blob_path, O_RDONLY | O_CLOEXEC);
  CHECK(bfd >= 0);
  CHECK_OK(crater_tar_writer_add_fd(w, "blobs/x", bfd, 11, &err));
  CHECK(crater_tar_writer_add_fd(w, "blobs/short", bfd, 100, &err) < 0);
  CHECK(err->kind == CRATER_ERR_DATA_LOSS);
  crater_error_release(&err);
  close(bfd);
  crater_tar_writer_free(w); /* unfinished: truncated archive */
  close(fd);

  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  w = crater_tar_writer_new(fd, &err);
  CHECK(w != NULL);
  CHECK_OK(crater_tar_writer_add_data(w, "oci-layout", "{}", 2, &err));
  CHECK_OK(crater_tar_writer_add_dir(w, "blobs", &err));
  bfd = open(blob_path, O_RDONLY | O_CLOEXEC);
  CHECK_OK(crater_tar_writer_add_fd(w, "blobs/x", bfd, 11, &err));
  CHECK(crater_tar_writer_add_data(w, "../bad", "", 0, &err) < 0);
  crater_error_release(&err);
  CHECK_OK(crater_tar_writer_finish(w, &err));
  crater_tar_writer_free(w);
  close(bfd);
  close(fd);
}

static int
collect(void *ud, const void *buf, size_t n, crater_error_t *err)
{
  (void) err;
  char *out = ud;
  strncat(out, buf, n);
  return 0;
}

/* Expects the single-member archive made by cmd to be refused. */
static void
refused(const char *dir, const char *py, const char *what)
{
  char cmd[8192], tar[4096];
  snprintf(tar, sizeof tar, "%s/refused.tar", dir);
  snprintf(
      cmd, sizeof cmd,
      "python3 -c 'import tarfile,io,sys\nt=tarfile.open(sys.argv[1],\"w\")\n%s\nt.close()' %s", py,
      tar);
  CHECK(system(cmd) == 0);
  crater_error_t err = NULL;
  crater_tar_reader_t *r = crater_tar_reader_open(tar, &err);
  CHECK(r != NULL);
  crater_tar_entry_t e;
  int rc;
  while ((rc = crater_tar_reader_next(r, &e, &err)) > 0)
    ;
  CHECK(rc < 0);
  CHECK(err->kind == CRATER_ERR_INVALID_ARGUMENT);
  if (strstr(err->msg, what) == NULL) {
    fprintf(stderr, "message %s lacks %s\n", err->msg, what);
    exit(1);
  }
  crater_error_release(&err);
  crater_tar_reader_free(r);
}

int
main(void)
{
  crater_error_t err = NULL;
  cleanup_free char *dir = test_tmpdir("transfer-tar");
  char blob[4096], a[4096], b[4096];
  snprintf(blob, sizeof blob, "%s/blob", dir);
  snprintf(a, sizeof a, "%s/a.tar", dir);
  snprintf(b, sizeof b, "%s/b.tar", dir);
  FILE *f = fopen(blob, "w");
  CHECK(f != NULL);
  fputs("hello world", f);
  fclose(f);
  write_tar(a, blob);
  sleep(1); /* mtimes must not leak into the archive */
  write_tar(b, blob);
  char cmd[8300];
  snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
  CHECK(system(cmd) == 0);

  crater_tar_reader_t *r = crater_tar_reader_open(a, &err);
  CHECK(r != NULL);
  crater_tar_entry_t e;
  CHECK(crater_tar_reader_next(r, &e, &err) == 1);
  CHECK_STREQ(e.name, "oci-layout");
  CHECK(crater_tar_reader_next(r, &e, &err) == 1);
  CHECK(e.is_dir);
  CHECK_STREQ(e.name, "blobs");
  CHECK(crater_tar_reader_next(r, &e, &err) == 1);
  CHECK_STREQ(e.name, "blobs/x");
  CHECK(e.size == 11);
  char got[64] = "";
  CHECK(crater_tar_reader_copy(r, collect, got, &err) == 11);
  CHECK_STREQ(got, "hello world");
  CHECK(crater_tar_reader_next(r, &e, &err) == 0);
  crater_tar_reader_free(r);

  refused(dir, "i=tarfile.TarInfo(\"a/../../x\");t.addfile(i,io.BytesIO(b\"\"))", "a/../../x");
  refused(dir, "i=tarfile.TarInfo(\"/abs\");t.addfile(i,io.BytesIO(b\"\"))", "absolute");
  refused(dir,
          "i=tarfile.TarInfo(\"d/l\");i.type=tarfile.SYMTYPE;i.linkname=\"../../etc\";t.addfile(i)",
          "leaves the archive");
  refused(dir, "i=tarfile.TarInfo(\"h\");i.type=tarfile.LNKTYPE;i.linkname=\"x\";t.addfile(i)",
          "hardlink");
  refused(dir, "i=tarfile.TarInfo(\"fifo\");i.type=tarfile.FIFOTYPE;t.addfile(i)", "not a regular");

  /* inner symlink: an alias */
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import tarfile,sys\nt=tarfile.open(sys.argv[1],\"w\")\n"
           "i=tarfile.TarInfo(\"id/layer.tar\");i.type=tarfile.SYMTYPE;i.linkname=\"../"
           "x.tar\";t.addfile(i)\n"
           "t.close()' %s/ok.tar",
           dir);
  CHECK(system(cmd) == 0);
  snprintf(a, sizeof a, "%s/ok.tar", dir);
  r = crater_tar_reader_open(a, &err);
  CHECK(r != NULL);
  CHECK(crater_tar_reader_next(r, &e, &err) == 1);
  CHECK_STREQ(e.link, "x.tar");
  crater_tar_reader_free(r);

  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  return 0;
}
