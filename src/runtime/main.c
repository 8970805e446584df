/*
 * crater-runtime command line, compatible with runc's so a shim (or any OCI
 * tooling) can drive either binary the same way:
 *
 *   crater-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug]
 *                  [--go-fd N] COMMAND [OPTIONS] ID ...
 *
 * Options accept one or two dashes and "--opt value" or "--opt=value", as
 * runc's urfave/cli does.  Errors go to stderr and, with --log, to the log
 * file (JSON lines with --log-format json, which containerd shims parse).
 *
 * --go-fd N (crater's own, for crater-shim): the runtime starts, then reads
 * one byte from fd N before it looks at the bundle, so its exec and
 * start-up overlap the client still writing the bundle.  EOF instead of
 * the byte: it exits with status 125 having touched nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include "common/util.h"
#include "runtime.h"

typedef struct {
  const char *name; /* long name */
  char short_name;
  bool has_arg;
  bool multi;
} opt_def_t;

typedef struct {
  const char *vals[16];
  int count[16];
  const char *multi[16][64];
  char *pos[256];
  int npos;
} parsed_t;

/* Parses argv[i..] against defs; positional args are kept in order.
 * Stops option parsing after the first positional when stop_at_pos (exec
 * args belong to the container). */
static int
parse_opts(int argc, char **argv, const opt_def_t *defs, parsed_t *p, bool stop_at_pos,
           crater_error_t *err)
{
  memset(p, 0, sizeof *p);
  for (int i = 0; i < argc; i++) {
    char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      for (i++; i < argc && p->npos < 255; i++)
        p->pos[p->npos++] = argv[i];
      break;
    }
    if (a[0] != '-' || a[1] == '\0' || (stop_at_pos && p->npos > 0)) {
      if (p->npos < 255)
        p->pos[p->npos++] = a;
      if (stop_at_pos && p->npos > 0) {
        for (i++; i < argc && p->npos < 255; i++)
          p->pos[p->npos++] = argv[i];
        break;
      }
      continue;
    }
    const char *n = a + 1 + (a[1] == '-');
    const char *eq = strchr(n, '=');
    size_t nl = eq ? (size_t) (eq - n) : strlen(n);
    int k;
    for (k = 0; defs && defs[k].name; k++)
      if ((strlen(defs[k].name) == nl && strncmp(defs[k].name, n, nl) == 0) ||
          (nl == 1 && defs[k].short_name == n[0]))
        break;
    if (defs == NULL || defs[k].name == NULL)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "flag provided but not defined: %s", a);
    const char *v = "true";
    if (defs[k].has_arg) {
      if (eq)
        v = eq + 1;
      else if (i + 1 < argc)
        v = argv[++i];
      else
        return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                                 "flag needs an argument: %s", a);
    } else if (eq) {
      v = eq + 1;
    }
    if (defs[k].multi && p->count[k] < 64)
      p->multi[k][p->count[k]] = v;
    p->count[k]++;
    p->vals[k] = v;
  }
  return 0;
}

static bool
flag_on(parsed_t *p, int k)
{
  return p->vals[k] && strcmp(p->vals[k], "false") != 0;
}

static int
need_id(parsed_t *p, const char *cmd, crater_error_t *err)
{
  if (p->npos < 1)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "%s: container id is required", cmd);
  return 0;
}

static int
print_json(json_t *o)
{
  char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  printf("%s\n", s);
  free(s);
  fflush(stdout);
  return 0;
}

static int
preserve_count(const char *v)
{
  int n = v ? atoi(v) : 0;
  const char *lf = getenv("LISTEN_FDS");
  if (lf && atoi(lf) > 0)
    n += atoi(lf);
  return n;
}

/* --- commands ------------------------------------------------------------ */

static const opt_def_t create_defs[] = {
  { "bundle", 'b', true, false },
  { "console-socket", 0, true, false },
  { "pid-file", 0, true, false },
  { "no-pivot", 0, false, false },
  { "no-new-keyring", 0, false, false },
  { "preserve-fds", 0, true, false },
  { "detach", 'd', false, false },
  { "keep", 0, false, false },
  { NULL, 0, false, false },
};

static int
cmd_create(int argc, char **argv, bool run, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, create_defs, &p, false, err) < 0 ||
      need_id(&p, run ? "run" : "create", err) < 0)
    return -1;
  crater_create_opts_t o = {
    .id = p.pos[0],
    .bundle = p.vals[0],
    .console_socket = p.vals[1],
    .console_fd = -1,
    .pid_file = p.vals[2],
    .no_pivot = flag_on(&p, 3),
    .preserve_fds = preserve_count(p.vals[5]),
    .detach = flag_on(&p, 6),
    .want_state = run,
  };
  if (!run)
    return crater_runtime_create(&o, err) < 0 ? -1 : 0;
  /* started from the state just made, not from state.json read back */
  cleanup_state crater_state_t *state = NULL;
  if (!o.detach)
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  /* a terminal in the foreground without --console-socket: the pty is
   * proxied to our own stdio (console.c), as runc does */
  int sv[2] = { -1, -1 };
  if (!o.detach && o.console_socket == NULL) {
    if (crater__console_pair(sv, err) < 0)
      return -1;
    o.console_fd = sv[1];
  }
  pid_t pid = crater_runtime_create(&o, err);
  state = o.state;
  cleanup_close int start_fd = o.start_fd; /* the init may already run */
  if (sv[1] >= 0)
    close(sv[1]);
  cleanup_close int master = -1;
  crater_error_t e = NULL;
  if (pid >= 0 && o.terminal && sv[0] >= 0 && (master = crater__console_recv(sv[0], err)) < 0) {
    crater_runtime_delete(o.id, true, &e);
    crater_error_release(&e);
    pid = -1;
  }
  if (sv[0] >= 0)
    close(sv[0]);
  if (pid < 0)
    return -1;
  int fifo_fd = start_fd;
  start_fd = -1;
  if (crater_runtime_start_state(state, fifo_fd, err) < 0) {
    crater_runtime_delete(o.id, true, &e);
    crater_error_release(&e);
    return -1;
  }
  if (o.detach)
    return 0;
  int code = master >= 0 ? crater__console_proxy(master, pid, err) : crater__wait_forward(pid, err);
  if (!flag_on(&p, 7) && crater_runtime_delete(o.id, true, &e) < 0) {
    crater__rt_log("warning", "delete %s: %s", o.id, e->msg);
    crater_error_release(&e);
  }
  return code;
}

static int
cmd_start(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, NULL, &p, false, err) < 0 || need_id(&p, "start", err) < 0)
    return -1;
  return crater_runtime_start(p.pos[0], err);
}

static int
cmd_state(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, NULL, &p, false, err) < 0 || need_id(&p, "state", err) < 0)
    return -1;
  cleanup_state crater_state_t *s = crater__state_load(p.pos[0], err);
  if (s == NULL)
    return -1;
  cleanup_json json_t *o = crater__state_json(s, crater__state_status(s));
  return print_json(o);
}

static const opt_def_t kill_defs[] = { { "all", 'a', false, false }, { NULL, 0, false, false } };

static int
cmd_kill(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, kill_defs, &p, false, err) < 0 || need_id(&p, "kill", err) < 0)
    return -1;
  int sig = p.npos > 1 ? crater__parse_signal(p.pos[1]) : SIGTERM;
  if (sig < 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "unknown signal \"%s\"",
                             p.pos[1]);
  cleanup_state crater_state_t *s = crater__state_load(p.pos[0], err);
  if (s == NULL)
    return -1;
  crater_status_t st = crater__state_status(s);
  if (st == ST_STOPPED && !flag_on(&p, 0))
    return crater_error_make(err, CRATER_ERR_NOT_FOUND, ESRCH, "container not running");
  if (flag_on(&p, 0) && s->cgroup_path)
    return crater__cgroup_kill_all(s->cgroup_path, sig, err);
  if (kill(s->pid, sig) < 0)
    return crater_error_sys(err, errno, "kill %d", (int) s->pid);
  return 0;
}

static const opt_def_t delete_defs[] = { { "force", 'f', false, false },
                                         { NULL, 0, false, false } };

static int
cmd_delete(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, delete_defs, &p, false, err) < 0 || need_id(&p, "delete", err) < 0)
    return -1;
  crater_error_t e = NULL;
  if (crater_runtime_delete(p.pos[0], flag_on(&p, 0), &e) < 0) {
    if (e->kind == CRATER_ERR_NOT_FOUND && flag_on(&p, 0)) {
      crater_error_release(&e);
      return 0;
    }
    crater_error_move(err, &e);
    return -1;
  }
  return 0;
}

static const opt_def_t exec_defs[] = {
  { "process", 'p', true, false },
  { "tty", 't', false, false },
  { "detach", 'd', false, false },
  { "pid-file", 0, true, false },
  { "console-socket", 0, true, false },
  { "env", 'e', true, true },
  { "cwd", 0, true, false },
  { "user", 'u', true, false },
  { "cap", 'c', true, true },
  { "no-new-privs", 0, false, false },
  { "preserve-fds", 0, true, false },
  { "additional-gids", 'g', true, true },
  { NULL, 0, false, false },
};

static int
cmd_exec(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, exec_defs, &p, true, err) < 0 || need_id(&p, "exec", err) < 0)
    return -1;
  cleanup_json json_t *proc = NULL;
  if (p.vals[0]) {
    json_error_t je;
    proc = json_load_file(p.vals[0], 0, &je);
    if (proc == NULL)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "load process %s: %s",
                               p.vals[0], je.text);
  } else {
    if (p.npos < 2)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "exec: args or --process are required");
    cleanup_state crater_state_t *s = crater__state_load(p.pos[0], err);
    if (s == NULL)
      return -1;
    json_t *config = crater__state_config(s, err);
    if (config == NULL)
      return -1;
    proc = json_deep_copy(json_object_get(config, "process"));
    if (proc == NULL)
      proc = json_object();
    json_t *args = json_array();
    for (int i = 1; i < p.npos; i++)
      json_array_append_new(args, json_string(p.pos[i]));
    json_object_set_new(proc, "args", args);
    json_object_set_new(proc, "terminal", json_boolean(flag_on(&p, 1)));
    json_t *env = json_object_get(proc, "env");
    if (!json_is_array(env))
      json_object_set_new(proc, "env", env = json_array());
    for (int i = 0; i < p.count[5] && i < 64; i++)
      json_array_append_new(env, json_string(p.multi[5][i]));
    if (p.vals[6])
      json_object_set_new(proc, "cwd", json_string(p.vals[6]));
    if (p.vals[7]) {
      json_t *u = json_object();
      json_object_set_new(u, "uid", json_integer(atoi(p.vals[7])));
      const char *c = strchr(p.vals[7], ':');
      json_object_set_new(u, "gid", json_integer(c ? atoi(c + 1) : 0));
      json_object_set_new(proc, "user", u);
    }
    json_t *user = json_object_get(proc, "user");
    if (p.count[11] && json_is_object(user)) {
      json_t *g = json_array();
      for (int i = 0; i < p.count[11] && i < 64; i++)
        json_array_append_new(g, json_integer(atoi(p.multi[11][i])));
      json_object_set_new(user, "additionalGids", g);
    }
    json_t *caps = json_object_get(proc, "capabilities");
    for (int i = 0; i < p.count[8] && i < 64 && json_is_object(caps); i++) {
      static const char *const sets[] = { "bounding", "effective", "permitted", "inheritable",
                                          NULL };
      for (int k = 0; sets[k]; k++) {
        json_t *a = json_object_get(caps, sets[k]);
        if (json_is_array(a))
          json_array_append_new(a, json_string(p.multi[8][i]));
      }
    }
    if (flag_on(&p, 9))
      json_object_set_new(proc, "noNewPrivileges", json_true());
  }
  if (flag_on(&p, 1) && !json_is_true(json_object_get(proc, "terminal")))
    json_object_set_new(proc, "terminal", json_true());
  crater_exec_opts_t o = { .id = p.pos[0],
                           .process = proc,
                           .pid_file = p.vals[3],
                           .console_socket = p.vals[4],
                           .detach = flag_on(&p, 2),
                           .preserve_fds = preserve_count(p.vals[10]) };
  return crater_runtime_exec(&o, err);
}

static const opt_def_t ps_defs[] = { { "format", 'f', true, false }, { NULL, 0, false, false } };

static int
cmd_ps(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, ps_defs, &p, false, err) < 0 || need_id(&p, "ps", err) < 0)
    return -1;
  cleanup_state crater_state_t *s = crater__state_load(p.pos[0], err);
  if (s == NULL)
    return -1;
  size_t n = 0;
  cleanup_free pid_t *pids = s->cgroup_path ? crater__cgroup_pids(s->cgroup_path, &n, err) : NULL;
  if (pids == NULL && s->cgroup_path)
    return -1;
  if (p.vals[0] && strcmp(p.vals[0], "json") == 0) {
    cleanup_json json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append_new(a, json_integer(pids[i]));
    char *str = json_dumps(a, JSON_COMPACT);
    printf("%s\n", str);
    free(str);
    return 0;
  }
  printf("PID\n");
  for (size_t i = 0; i < n; i++)
    printf("%d\n", (int) pids[i]);
  return 0;
}

static int
cmd_pause(int argc, char **argv, bool pause, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, NULL, &p, false, err) < 0 ||
      need_id(&p, pause ? "pause" : "resume", err) < 0)
    return -1;
  cleanup_state crater_state_t *s = crater__state_load(p.pos[0], err);
  if (s == NULL)
    return -1;
  crater_status_t st = crater__state_status(s);
  if (pause ? (st != ST_RUNNING && st != ST_CREATED) : st != ST_PAUSED)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0, "container %s is %s, not %s",
                             p.pos[0], crater__status_name(st), pause ? "running" : "paused");
  if (s->cgroup_path == NULL)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0, "container %s has no cgroup",
                             p.pos[0]);
  return crater__cgroup_freeze(s->cgroup_path, pause, err);
}

static const opt_def_t events_defs[] = {
  { "stats", 0, false, false },
  { "interval", 0, true, false },
  { NULL, 0, false, false },
};

static int
cmd_events(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, events_defs, &p, false, err) < 0 || need_id(&p, "events", err) < 0)
    return -1;
  int interval = p.vals[1] ? atoi(p.vals[1]) : 5;
  for (;;) {
    cleanup_state crater_state_t *s = crater__state_load(p.pos[0], err);
    if (s == NULL)
      return -1;
    if (crater__state_status(s) == ST_STOPPED && !flag_on(&p, 0))
      return 0;
    json_t *data = s->cgroup_path ? crater__cgroup_stats(s->cgroup_path, err) : NULL;
    if (data == NULL)
      return -1;
    cleanup_json json_t *ev =
        json_pack("{s:s,s:s,s:o}", "type", "stats", "id", p.pos[0], "data", data);
    char *str = json_dumps(ev, JSON_COMPACT);
    printf("%s\n", str);
    free(str);
    fflush(stdout);
    if (flag_on(&p, 0))
      return 0;
    sleep((unsigned) (interval > 0 ? interval : 5));
  }
}

static const opt_def_t list_defs[] = {
  { "format", 'f', true, false },
  { "quiet", 'q', false, false },
  { NULL, 0, false, false },
};

static int
cmd_list(int argc, char **argv, crater_error_t *err)
{
  parsed_t p;
  if (parse_opts(argc, argv, list_defs, &p, false, err) < 0)
    return -1;
  bool json = p.vals[0] && strcmp(p.vals[0], "json") == 0;
  cleanup_json json_t *a = json_array();
  DIR *d = opendir(crater__rt_opts.root);
  struct dirent *e;
  if (!json && !flag_on(&p, 1))
    printf("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n");
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    crater_error_t le = NULL;
    cleanup_state crater_state_t *s = crater__state_load(e->d_name, &le);
    crater_error_release(&le);
    if (s == NULL)
      continue;
    crater_status_t st = crater__state_status(s);
    if (json)
      json_array_append_new(a, crater__state_json(s, st));
    else if (flag_on(&p, 1))
      printf("%s\n", s->id);
    else
      printf("%s\t%d\t%s\t%s\t%s\troot\n", s->id, st == ST_STOPPED ? 0 : (int) s->pid,
             crater__status_name(st), s->bundle, s->created);
  }
  if (d)
    closedir(d);
  if (json) {
    char *str = json_dumps(a, JSON_COMPACT);
    printf("%s\n", str);
    free(str);
  }
  return 0;
}

static int
cmd_features(crater_error_t *err)
{
  json_t *caps = json_array();
  for (cap_value_t c = 0; c < (cap_value_t) cap_max_bits(); c++) {
    char *n = cap_to_name(c);
    if (n) {
      char up[64];
      snprintf(up, sizeof up, "%s", n);
      for (char *q = up; *q; q++)
        *q = (char) (*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
      json_array_append_new(caps, json_string(up));
      cap_free(n);
    }
  }
  const struct scmp_version *sv = seccomp_version();
  cleanup_free char *scver = xasprintf("%u.%u.%u", sv->major, sv->minor, sv->micro);
  json_t *o = json_pack(
      "{s:s,s:s,s:[s,s,s,s,s,s],s:[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]"
      ","
      "s:{s:[s,s,s,s,s,s,s],s:o,s:{s:b,s:b,s:b,s:b,s:b},"
      "s:{s:b,s:[s,s,s,s,s,s,s,s,s],s:[s,s,s,s,s,s,s],s:[s,s,s],s:[s,s,s]},"
      "s:{s:b},s:{s:b}},s:{s:s,s:s,s:s,s:s}}",
      "ociVersionMin", "1.0.0", "ociVersionMax", "1.1.0", "hooks", "prestart", "createRuntime",
      "createContainer", "startContainer", "poststart", "poststop", "mountOptions", "async",
      "atime", "bind", "dev", "diratime", "dirsync", "exec", "mand", "noatime", "nodev",
      "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind",
      "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared",
      "slave", "strictatime", "suid", "sync", "unbindable", "linux", "namespaces", "cgroup", "ipc",
      "mount", "network", "pid", "user", "uts", "capabilities", caps, "cgroup", "v1", true, "v2",
      true, "systemd", false, "systemdUser", false, "rdma", false, "seccomp", "enabled", true,
      "actions", "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
      "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
      "operators", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
      "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE", "archs", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64",
      "SCMP_ARCH_X32", "knownFlags", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
      "SECCOMP_FILTER_FLAG_TSYNC", "apparmor", "enabled", false, "selinux", "enabled", false,
      "annotations", "io.crater.runtime.version", CRATER_VERSION,
      "io.github.seccomp.libseccomp.version", scver, "io.crater.runtime.seccomp.default",
      "crater-runtime default-seccomp", "io.crater.runtime.cgroup.mode",
      crater__cgroup_is_v2() ? "v2" : "v1");
  if (o == NULL)
    return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "encode features");
  print_json(o);
  json_decref(o);
  return 0;
}

static void
usage(FILE *f)
{
  fprintf(
      f,
      "usage: crater-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] "
      "[--go-fd N] COMMAND ...\n"
      "commands:\n"
      "  create --bundle B [--pid-file F] [--console-socket S] [--no-pivot] [--preserve-fds N] ID\n"
      "  start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID\n"
      "  run --bundle B [--detach] [--pid-file F] [--console-socket S] [--keep] ID\n"
      "  exec [--process JSON | ARGS...] [--tty] [--detach] [--pid-file F] [--console-socket S]\n"
      "       [--env K=V] [--cwd D] [--user U[:G]] [--cap CAP] [--no-new-privs] ID [ARGS...]\n"
      "  ps [--format table|json] ID | pause ID | resume ID | list [--format json] [-q]\n"
      "  events [--stats] [--interval S] ID | features | default-seccomp | version\n");
}

static const opt_def_t global_defs[] = {
  { "root", 0, true, false },
  { "log", 0, true, false },
  { "log-format", 0, true, false },
  { "debug", 0, false, false },
  { "systemd-cgroup", 0, false, false },
  { "rootless", 0, true, false },
  { "criu", 0, true, false },
  { "help", 'h', false, false },
  { "version", 'v', false, false },
  { "go-fd", 0, true, false },
  { NULL, 0, false, false },
};

/* --go-fd: a network namespace made while the runtime waits for "go", so
 * that creating it (~0.26 ms on the build hosts, most of the init's clone)
 * and bringing its loopback up are not on the container's start path.  A
 * child sharing our descriptor table unshares it, opens it and exits with
 * the descriptor's number.  It runs while we wait for "go" (a go that
 * comes first waits only for what is left of it: the runtime is not always
 * ready before its client).  Returns the child's pid, or -1 (then the
 * init's clone makes one as usual). */
static pid_t
premade_netns_start(void)
{
  pid_t pid =
      (pid_t) syscall(SYS_clone, (unsigned long) (CLONE_FILES | SIGCHLD), NULL, NULL, NULL, NULL);
  if (pid == 0) {
    crater_error_t e = NULL;
    if (unshare(CLONE_NEWNET) < 0 || crater__loopback_up(&e) < 0)
      _exit(255);
    int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    _exit(fd >= 0 && fd < 255 ? fd : 255);
  }
  return pid;
}

/* The namespace's descriptor from premade_netns_start's child, or -1. */
static int
premade_netns_finish(pid_t pid)
{
  int st;
  if (pid < 0)
    return -1;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(st) && WEXITSTATUS(st) < 255 ? WEXITSTATUS(st) : -1;
}

/* --go-fd: waits for the go byte on fd, reaping the network namespace's
 * child (netns, its pid, or -1) meanwhile when it exits first: a spare's
 * runtime may wait long, and that child would stay a zombie.  Sets
 * *netns_fd from it (premade_netns_finish).  False on EOF (the starter
 * gave up).  The byte may be followed by the container id, for a runtime
 * started before its container had one (its ID operand is "-"): copied
 * into id (idsz bytes), else id is left empty.  The fd is closed either
 * way: nothing of it reaches a container. */
static bool
wait_go(int fd, pid_t netns, int *netns_fd, char *id, size_t idsz)
{
  int pfd = netns > 0 ? (int) syscall(SYS_pidfd_open, netns, 0) : -1;
  for (;;) {
    struct pollfd pf[2] = { { .fd = fd, .events = POLLIN }, { .fd = pfd, .events = POLLIN } };
    if (poll(pf, pfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
      break;
    if (pfd >= 0 && pf[1].revents) {
      close(pfd);
      pfd = -1;
      *netns_fd = premade_netns_finish(netns);
      netns = -1;
    }
    if (pf[0].revents)
      break;
  }
  if (pfd >= 0)
    close(pfd);
  if (netns > 0)
    *netns_fd = premade_netns_finish(netns);
  char b[128];
  size_t n = 0;
  ssize_t k;
  /* the starter closes its end right after writing: read to EOF */
  while (n < sizeof b - 1 &&
         ((k = read(fd, b + n, sizeof b - 1 - n)) > 0 || (k < 0 && errno == EINTR)))
    n += k > 0 ? (size_t) k : 0;
  close(fd);
  b[n] = '\0';
  id[0] = '\0';
  if (n == 0 || b[0] != 'g')
    return false;
  if (n - 1 >= idsz)
    return false;       /* no id is that long */
  memcpy(id, b + 1, n); /* with its NUL */
  return true;
}

int
main(int argc, char **argv)
{
  crater_error_t err = NULL;
  int i = 1, go_fd = -1;
  static char go_id[80];
  /* global options up to the command */
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *n = argv[i] + 1 + (argv[i][1] == '-');
    const char *eq = strchr(n, '=');
    size_t nl = eq ? (size_t) (eq - n) : strlen(n);
    int k;
    for (k = 0; global_defs[k].name; k++)
      if ((strlen(global_defs[k].name) == nl && strncmp(global_defs[k].name, n, nl) == 0) ||
          (nl == 1 && global_defs[k].short_name == n[0]))
        break;
    if (global_defs[k].name == NULL) {
      fprintf(stderr, "crater-runtime: flag provided but not defined: %s\n", argv[i]);
      return 2;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (global_defs[k].has_arg && v == NULL && i + 1 < argc)
      v = argv[++i];
    switch (k) {
    case 0:
      crater__rt_opts.root = v;
      break;
    case 1:
      crater__rt_opts.log_path = v;
      break;
    case 2:
      crater__rt_opts.log_json = v && strcmp(v, "json") == 0;
      break;
    case 3:
      crater__rt_opts.debug = true;
      break;
    case 4:
      crater__rt_log("warning", "--systemd-cgroup: no systemd manager, using cgroupfs");
      break;
    case 7:
      usage(stdout);
      return 0;
    case 8:
      printf("crater-runtime version %s\nspec: %s\n", CRATER_VERSION, CRATER_OCI_VERSION);
      return 0;
    case 9:
      go_fd = v ? atoi(v) : -1;
      if (go_fd < 3) {
        fprintf(stderr, "crater-runtime: --go-fd: expected a descriptor above 2, got %s\n",
                v ? v : "nothing");
        return 2;
      }
      break;
    default:
      break;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[i++];
  int sub_argc = argc - i;
  char **sub_argv = argv + i;
  if (strcmp(cmd, "create") == 0 || strcmp(cmd, "run") == 0 || strcmp(cmd, "exec") == 0) {
    if (crater__ensure_sealed(argv, &err) < 0)
      goto fail;
  }
  if (go_fd >= 0) {
    pid_t netns = -1;
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "create") == 0) {
      netns = premade_netns_start();
      if (crater__cgroup_is_v2())
        crater__devices_bpf_preload();
    }
    bool go = wait_go(go_fd, netns, &crater__rt_opts.premade_netns, go_id, sizeof go_id);
    if (!go)
      return 125;
    /* a spare's runtime: "-" stands for the id its go brought */
    bool spare = sub_argc > 0 && strcmp(sub_argv[sub_argc - 1], "-") == 0;
    if (spare != (go_id[0] != '\0')) {
      fprintf(stderr, "crater-runtime: --go-fd: %s\n",
              spare ? "the container id is \"-\" and go did not bring one"
                    : "go brought a container id, and the command has its own");
      return 2;
    }
    if (spare)
      sub_argv[sub_argc - 1] = go_id;
  }
  int r;
  if (strcmp(cmd, "create") == 0)
    r = cmd_create(sub_argc, sub_argv, false, &err);
  else if (strcmp(cmd, "run") == 0)
    r = cmd_create(sub_argc, sub_argv, true, &err);
  else if (strcmp(cmd, "start") == 0)
    r = cmd_start(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "state") == 0)
    r = cmd_state(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "kill") == 0)
    r = cmd_kill(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "delete") == 0)
    r = cmd_delete(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "exec") == 0)
    r = cmd_exec(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "ps") == 0)
    r = cmd_ps(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)
    r = cmd_pause(sub_argc, sub_argv, cmd[0] == 'p', &err);
  else if (strcmp(cmd, "events") == 0)
    r = cmd_events(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "list") == 0)
    r = cmd_list(sub_argc, sub_argv, &err);
  else if (strcmp(cmd, "features") == 0)
    r = cmd_features(&err);
  else if (strcmp(cmd, "default-seccomp") == 0) {
    fputs((const char *) crater__seccomp_default_json, stdout);
    r = 0;
  } else if (strcmp(cmd, "version") == 0) {
    printf("crater-runtime version %s\nspec: %s\n", CRATER_VERSION, CRATER_OCI_VERSION);
    r = 0;
  } else if (strcmp(cmd, "help") == 0) {
    usage(stdout);
    r = 0;
  } else {
    usage(stderr);
    fprintf(stderr, "crater-runtime: unknown command %s\n", cmd);
    return 2;
  }
  if (r >= 0)
    return r;
fail:
  crater__rt_log("error", "%s: %s", cmd, err && err->msg ? err->msg : "failed");
  crater_error_release(&err);
  return 1;
}
