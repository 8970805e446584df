/*
 * A sealed copy of an executable (the CVE-2019-5736 defence): an
 * anonymous memfd holding the file's bytes, sealed against writes, growth,
 * shrinking and further sealing, to be fexecve'd.  Header-only and libc
 * only: crater-runtime (src/runtime/sealed.c) and crater-shim, which links
 * nothing of libcrater, both make one.
 */
#ifndef CRATER_COMMON_SEALED_COPY_H
#define CRATER_COMMON_SEALED_COPY_H

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define CRATER_EXEC_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* Copies the file open at src into a new memfd named name and seals it.
 * Returns the memfd (close-on-exec) or -1 with errno set; *what (may be
 * NULL) names the step that failed. */
static inline int
crater__sealed_copy(int src, const char *name, const char **what)
{
  const char *step = "memfd_create";
  int mfd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  struct stat st;
  if (mfd < 0)
    goto fail;
  step = "stat";
  if (fstat(src, &st) < 0)
    goto fail;
  step = "copy";
  for (off_t off = 0; off < st.st_size;) {
    ssize_t n = sendfile(mfd, src, &off, (size_t) (st.st_size - off));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = EIO;
      goto fail;
    }
  }
  /* F_SEAL_WRITE fails with EBUSY while something still holds a reference
   * to one of the pages (seen once in ~100 runs under load: page migration
   * or compaction); the kernel already waits a little, so retry a few
   * times before giving up */
  step = "seal";
  for (int tries = 0;; tries++) {
    if (fcntl(mfd, F_ADD_SEALS, CRATER_EXEC_SEALS) == 0)
      return mfd;
    if (errno != EBUSY || tries == 20)
      goto fail;
    usleep(1000 * (useconds_t) (tries + 1));
  }
fail:
  if (what)
    *what = step;
  if (mfd >= 0) {
    int e = errno;
    close(mfd);
    errno = e;
  }
  return -1;
}

#endif
