/*
 * Unit test of the runtime's seccomp compiler with the shipped default
 * profile (policies/seccomp-default.json): in a child that loads it,
 * unshare/mount/keyctl/bpf fail with EPERM, clone3 with ENOSYS, clone with
 * namespace flags with EPERM, while ordinary calls work.  Also checks the
 * signal-name parser used by `kill`.  The runtime's sources are compiled in
 * directly (they are a program, not part of libcrater).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "runtime/rtutil.c"
#include "runtime/seccomp.c"

/* state.c is not linked in; the helpers above do not need it */
bool
crater__cgroup_frozen(const char *path)
{
  (void) path;
  return false;
}

static int
child(json_t *prof)
{
  crater_error_t err = NULL;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return 10;
  if (crater__seccomp_apply(prof, &err) < 0) {
    fprintf(stderr, "apply: %s\n", err->msg);
    return 11;
  }
  if (unshare(CLONE_NEWNS) == 0 || errno != EPERM)
    return 12;
  if (mount("none", "/mnt", "tmpfs", 0, NULL) == 0 || errno != EPERM)
    return 13;
  if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
    return 14;
  if (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
    return 15;
  if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
    return 16;
  if (syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL) != -1 || errno != EPERM)
    return 17;
  pid_t p = fork(); /* plain clone is allowed */
  if (p < 0)
    return 18;
  if (p == 0)
    _exit(0);
  waitpid(p, NULL, 0);
  if (getpid() <= 0 || access("/", F_OK) < 0)
    return 19;
  return 0;
}

int
main(void)
{
  CHECK(crater__parse_signal("KILL") == SIGKILL);
  CHECK(crater__parse_signal("SIGTERM") == SIGTERM);
  CHECK(crater__parse_signal("sigusr1") == SIGUSR1);
  CHECK(crater__parse_signal("9") == 9);
  CHECK(crater__parse_signal("RTMIN+2") == SIGRTMIN + 2);
  CHECK(crater__parse_signal("NOPE") < 0);
  CHECK(crater__parse_signal("0") < 0);

  char path[4096];
  snprintf(path, sizeof path, "%s", __FILE__);
  char *slash = strrchr(path, '/');
  CHECK(slash != NULL);
  snprintf(slash, sizeof path - (size_t) (slash - path), "/../../policies/seccomp-default.json");
  json_error_t je;
  json_t *prof = json_load_file(path, 0, &je);
  if (prof == NULL) {
    fprintf(stderr, "load %s: %s\n", path, je.text);
    return 1;
  }
  CHECK(strcmp(json_string_value(json_object_get(prof, "defaultAction")), "SCMP_ACT_ERRNO") == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0)
    _exit(child(prof));
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "child failed: status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
    return 1;
  }
  json_decref(prof);
  return 0;
}
