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
#include <unistd.h>

#include "common/sealed_copy.h"
#include "runtime.h"

extern char **environ;

int
crater__ensure_sealed(char **argv, crater_error_t *err)
{
  cleanup_close int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0)
    return crater_error_sys(err, errno, "open /proc/self/exe");
  int seals = fcntl(self, F_GET_SEALS);
  if (seals >= 0 && (seals & CRATER_EXEC_SEALS) == CRATER_EXEC_SEALS)
    return 0;
  const char *what = NULL;
  cleanup_close int mfd = crater__sealed_copy(self, "crater-runtime", &what);
  if (mfd < 0)
    return crater_error_sys(err, errno, "sealed copy of /proc/self/exe: %s", what);
  fexecve(mfd, argv, environ);
  return crater_error_sys(err, errno, "re-exec from sealed memfd");
}
