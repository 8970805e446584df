/*
 * exec: a new process inside a running container.  The runtime forks an
 * intermediate process that joins the init's namespaces through
 * /proc/<init>/ns/<type> (user first, mount last, so the new process ends up
 * rooted in the container), which forks the process itself (setns(pid)
 * only applies to children) and reports its pid.  The runtime puts that pid
 * in the container's cgroup, then releases it; the process sets up cwd,
 * rlimits, console, user, capabilities, seccomp and execs.  The sync socket
 * is close-on-exec: EOF means the execve happened, an ERROR message carries
 * what failed.  The runtime is a child subreaper so a foreground exec can
 * wait for its grandchild and return its exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

static const struct {
  const char *name;
  int flag;
  const char *proc;
} order[] = {
  { "user", CLONE_NEWUSER, "user" }, { "ipc", CLONE_NEWIPC, "ipc" },
  { "uts", CLONE_NEWUTS, "uts" },    { "network", CLONE_NEWNET, "net" },
  { "pid", CLONE_NEWPID, "pid" },    { "cgroup", CLONE_NEWCGROUP, "cgroup" },
  { "mount", CLONE_NEWNS, "mnt" },
};
#define N_ORDER (sizeof order / sizeof *order)

static bool
has_ns(json_t *config, const char *type)
{
  size_t i;
  json_t *ns;
  json_array_foreach(crater__jpath(config, "linux.namespaces"), i, ns)
  {
    const char *t = crater__js(ns, "type");
    if (t && strcmp(t, type) == 0)
      return true;
  }
  return false;
}

static int
stage2(json_t *process, json_t *seccomp, int sync, int console_fd, int preserve,
       crater_error_t *err)
{
  if (crater__sync_recv(sync, SYNC_GO, NULL, err) < 0)
    return -1;
  if (crater__jb(process, "terminal", false)) {
    if (crater__process_console(console_fd, process, err) < 0)
      return -1;
    close(console_fd);
  } else {
    setsid();
  }
  if (crater__process_rlimits(process, err) < 0 || crater__process_cwd(process, err) < 0)
    return -1;
  cleanup_free char *exe = crater__process_lookup(process, err);
  if (exe == NULL)
    return -1;
  return crater__process_exec(process, seccomp, exe, preserve, err);
}

int
crater_runtime_exec(crater_exec_opts_t *o, crater_error_t *err)
{
  cleanup_state crater_state_t *s = crater__state_load(o->id, err);
  if (s == NULL)
    return -1;
  crater_status_t st = crater__state_status(s);
  if (st != ST_RUNNING && st != ST_CREATED)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                             "cannot exec in a %s container", crater__status_name(st));
  json_t *config = crater__state_config(s, err);
  if (config == NULL)
    return -1;
  int fds[N_ORDER];
  int ret = -1, sync[2] = { -1, -1 }, console = -1, console_peer = -1, master = -1;
  pid_t pid = -1;
  for (size_t i = 0; i < N_ORDER; i++) {
    fds[i] = -1;
    if (!has_ns(config, order[i].name))
      continue;
    cleanup_free char *p = xasprintf("/proc/%d/ns/%s", (int) s->pid, order[i].proc);
    if ((fds[i] = open(p, O_RDONLY | O_CLOEXEC)) < 0) {
      crater_error_sys(err, errno, "open %s", p);
      goto done;
    }
  }
  if (crater__jb(o->process, "terminal", false) && o->console_socket == NULL) {
    /* in the foreground the pty is proxied to our stdio (console.c) */
    if (o->detach) {
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                        "--tty with --detach requires --console-socket");
      goto done;
    }
    int sv[2];
    if (crater__console_pair(sv, err) < 0)
      goto done;
    console = sv[1];
    console_peer = sv[0];
  } else if (crater__jb(o->process, "terminal", false)) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", o->console_socket);
    console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (console < 0 || connect(console, (struct sockaddr *) &sa, sizeof sa) < 0) {
      crater_error_sys(err, errno, "connect console socket %s", o->console_socket);
      goto done;
    }
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
    crater_error_sys(err, errno, "socketpair");
    goto done;
  }
  bool self_cgroup = s->cgroup_path && crater__cgroup_can_enter_self();
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (crater__seccomp_prepare(crater__jpath(config, "linux.seccomp"), err) < 0)
    goto done;
  /* v2: the process that joins the namespaces is cloned into the cgroup
   * (no move afterwards, see cgroup.c); the one it forks inherits it.  On
   * a hybrid host into the unified hierarchy's, and it joins the v1 ones
   * itself (self_cgroup) */
  pid_t mid = s->cgroup_path ? crater__cgroup_clone_into(s->cgroup_path, 0) : -1;
  bool cloned = mid >= 0;
  bool born_in_cgroup = cloned && crater__cgroup_is_v2();
  if (!cloned)
    mid = fork();
  if (mid < 0) {
    crater_error_sys(err, errno, "fork");
    goto done;
  }
  if (mid == 0) {
    crater_error_t e = NULL;
    close(sync[0]);
    /* join the cgroup while still on the host (cheap self-move, see
     * cgroup.c); the process forked below inherits it */
    if (self_cgroup && crater__cgroup_enter_self(s->cgroup_path, &e) < 0) {
      crater_error_wrap(&e, "cgroup %s", s->cgroup_path);
      crater__sync_send_error(sync[1], e);
      _exit(1);
    }
    for (size_t i = 0; i < N_ORDER; i++)
      if (fds[i] >= 0 && setns(fds[i], order[i].flag) < 0) {
        crater_error_sys(&e, errno, "join %s namespace of %s", order[i].name, o->id);
        crater__sync_send_error(sync[1], e);
        _exit(1);
      }
    pid_t p = fork();
    if (p < 0) {
      crater_error_sys(&e, errno, "fork");
      crater__sync_send_error(sync[1], e);
      _exit(1);
    }
    if (p == 0) {
      stage2(o->process, crater__jpath(config, "linux.seccomp"), sync[1], console, o->preserve_fds,
             &e);
      crater__sync_send_error(sync[1], e);
      _exit(127);
    }
    crater__sync_send(sync[1], SYNC_PID, p, &e);
    _exit(0);
  }
  close(sync[1]);
  sync[1] = -1;
  int v = 0;
  int r = crater__sync_recv(sync[0], SYNC_PID, &v, err);
  waitpid(mid, NULL, 0);
  if (r < 0)
    goto done;
  pid = v;
  if (s->cgroup_path && !self_cgroup && !born_in_cgroup &&
      crater__cgroup_enter(s->cgroup_path, pid, err) < 0)
    goto done;
  if (crater__sync_send(sync[0], SYNC_GO, 0, err) < 0)
    goto done;
  {
    crater_error_t e = NULL;
    r = crater__sync_recv(sync[0], SYNC_READY, NULL, &e);
    if (r < 0 && e->kind != CRATER_ERR_ABORTED) { /* EOF = exec happened */
      crater_error_move(err, &e);
      goto done;
    }
    crater_error_release(&e);
  }
  if (o->pid_file) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d", (int) pid);
    cleanup_free char *abs = NULL;
    if (o->pid_file[0] != '/') {
      char cwd[4096];
      abs = crater__path_join(getcwd(cwd, sizeof cwd) ? cwd : "/", o->pid_file);
    }
    if (crater__write_file_replace(abs ? abs : o->pid_file, buf, (size_t) n, 0644, err) < 0)
      goto done;
  }
  if (o->detach) {
    ret = 0;
    pid = -1;
    goto done;
  }
  close(sync[0]);
  sync[0] = -1;
  if (console_peer >= 0 && (master = crater__console_recv(console_peer, err)) < 0)
    goto done;
  ret = master >= 0 ? crater__console_proxy(master, pid, err) : crater__wait_forward(pid, err);
  pid = -1;
done:
  if (ret < 0 && pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  for (size_t i = 0; i < N_ORDER; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  for (int i = 0; i < 2; i++)
    if (sync[i] >= 0)
      close(sync[i]);
  if (console >= 0)
    close(console);
  if (console_peer >= 0)
    close(console_peer);
  if (master >= 0)
    close(master);
  return ret;
}
