/*
 * Defence against CVE-2019-5736: a process inside the container could open
 * /proc/<runtime pid>/exe while the runtime is joining the container and
 * later write through it, replacing the host binary.  Before any command
 * that enters a container, crater-runtime copies itself once into a memfd,
 * seals it (no write, grow, shrink or further sealing) and re-executes from
 * it with fexecve, so /proc/<pid>/exe names an immutable anonymous file,
 * never the host binary.  Detection of "already sealed" is by the seals on
 * /proc/self/exe, so no environment variable can fake it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime.h"

#define WANT_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

extern char **environ;

int
crater__ensure_sealed(char **argv, crater_error_t *err)
{
  cleanup_close int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0)
    return crater_error_sys(err, errno, "open /proc/self/exe");
  int seals = fcntl(self, F_GET_SEALS);
  if (seals >= 0 && (seals & WANT_SEALS) == WANT_SEALS)
    return 0;
  cleanup_close int mfd = memfd_create("crater-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0)
    return crater_error_sys(err, errno, "memfd_create");
  struct stat st;
  if (fstat(self, &st) < 0)
    return crater_error_sys(err, errno, "stat /proc/self/exe");
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = sendfile(mfd, self, &off, (size_t) (st.st_size - off));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return crater_error_sys(err, n < 0 ? errno : EIO, "copy /proc/self/exe to memfd");
  }
  /* F_SEAL_WRITE fails with EBUSY while something still holds a reference
   * to one of the pages (seen once in ~100 runs under load: page migration
   * or compaction); the kernel already waits a little, so retry a few
   * times before giving up */
  int r;
  for (int tries = 0; (r = fcntl(mfd, F_ADD_SEALS, WANT_SEALS)) < 0 && errno == EBUSY && tries < 20;
       tries++)
    usleep(1000 * (tries + 1));
  if (r < 0)
    return crater_error_sys(err, errno, "seal memfd");
  fexecve(mfd, argv, environ);
  return crater_error_sys(err, errno, "re-exec from sealed memfd");
}
