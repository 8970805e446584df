/*
 * OCI hooks: each hook is run with the container state JSON on its stdin,
 * its own args/env, stdout folded into stderr, and a timeout (SIGKILL when
 * it expires).  Which hooks are fatal is the caller's decision.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime.h"

static char **
strv_from_json(json_t *a, const char *first)
{
  size_t n = json_array_size(a);
  char **v = xcalloc(n + 2, sizeof *v);
  size_t k = 0;
  if (n == 0 && first)
    v[k++] = (char *) first;
  for (size_t i = 0; i < n; i++)
    if (json_is_string(json_array_get(a, i)))
      v[k++] = (char *) json_string_value(json_array_get(a, i));
  return v;
}

static int
run_one(json_t *hook, const char *kind, const char *state, crater_error_t *err)
{
  const char *path = crater__js(hook, "path");
  if (path == NULL)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "%s hook without path",
                             kind);
  json_int_t timeout = crater__ji(hook, "timeout", 0);
  cleanup_free char **argv = strv_from_json(json_object_get(hook, "args"), path);
  cleanup_free char **envp = strv_from_json(json_object_get(hook, "env"), NULL);
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return crater_error_sys(err, errno, "%s hook %s: pipe", kind, path);
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return crater_error_sys(err, errno, "%s hook %s: fork", kind, path);
  }
  if (pid == 0) {
    dup2(p[0], 0);
    dup2(2, 1);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execve(path, argv, envp);
    fprintf(stderr, "exec %s hook %s: %s\n", kind, path, strerror(errno));
    _exit(127);
  }
  close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  if (write(p[1], state, strlen(state)) < 0 && errno != EPIPE)
    crater__rt_log("warning", "%s hook %s: write state: %s", kind, path, strerror(errno));
  close(p[1]);
  int pfd = (int) syscall(SYS_pidfd_open, pid, 0);
  if (pfd >= 0) {
    struct pollfd pf = { .fd = pfd, .events = POLLIN };
    int r;
    do
      r = poll(&pf, 1, timeout > 0 ? (int) timeout * 1000 : -1);
    while (r < 0 && errno == EINTR);
    close(pfd);
    if (r == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      return crater_error_make(err, CRATER_ERR_DEADLINE_EXCEEDED, ETIMEDOUT,
                               "%s hook %s: timed out after %llds", kind, path,
                               (long long) timeout);
    }
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return crater_error_sys(err, errno, "%s hook %s: wait", kind, path);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFSIGNALED(status))
    return crater_error_make(err, CRATER_ERR_ABORTED, 0, "%s hook %s: killed by signal %d", kind,
                             path, WTERMSIG(status));
  return crater_error_make(err, CRATER_ERR_ABORTED, 0, "%s hook %s: exit status %d", kind, path,
                           WEXITSTATUS(status));
}

/* config.hooks.<kind>, NULL when absent */
static json_t *
hooks_of(json_t *config, const char *kind)
{
  return json_object_get(crater__jpath(config, "hooks"), kind);
}

bool
crater__hooks_present(json_t *config, const char *kind)
{
  return json_array_size(hooks_of(config, kind)) > 0;
}

int
crater__hooks_run(json_t *config, const char *kind, json_t *state, crater_error_t *err)
{
  json_t *hooks = hooks_of(config, kind);
  if (json_array_size(hooks) == 0)
    return 0;
  char *s = json_dumps(state, JSON_COMPACT);
  size_t i;
  json_t *h;
  int r = 0;
  json_array_foreach(hooks, i, h)
  {
    rt_debug("running %s hook %zu", kind, i);
    if ((r = run_one(h, kind, s, err)) < 0)
      break;
  }
  free(s);
  return r;
}
