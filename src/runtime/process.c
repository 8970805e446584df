/*
 * The last steps before a container process runs its program, shared by the
 * container init and `exec`: rlimits, cwd (resolved inside the root),
 * console, then user/groups, capabilities (bounding, effective, permitted,
 * inheritable, ambient via libcap), no_new_privileges, closing every fd not
 * handed over, seccomp as late as possible and execve.
 *
 * seccomp ordering: with noNewPrivileges the filter is loaded just before
 * execve (after capabilities are dropped); without it the kernel requires
 * CAP_SYS_ADMIN to load a filter, so it is loaded before the user switch,
 * and the profile must then allow the few calls that follow (setresuid,
 * capset, prctl, close_range, execve), as with runc.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "common/signals_default.h"
#include "common/util.h"
#include "runtime.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const struct {
  const char *name;
  int res;
} rlimits[] = {
  { "RLIMIT_AS", RLIMIT_AS },
  { "RLIMIT_CORE", RLIMIT_CORE },
  { "RLIMIT_CPU", RLIMIT_CPU },
  { "RLIMIT_DATA", RLIMIT_DATA },
  { "RLIMIT_FSIZE", RLIMIT_FSIZE },
  { "RLIMIT_LOCKS", RLIMIT_LOCKS },
  { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
  { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
  { "RLIMIT_NICE", RLIMIT_NICE },
  { "RLIMIT_NOFILE", RLIMIT_NOFILE },
  { "RLIMIT_NPROC", RLIMIT_NPROC },
  { "RLIMIT_RSS", RLIMIT_RSS },
  { "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
  { "RLIMIT_RTTIME", RLIMIT_RTTIME },
  { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
  { "RLIMIT_STACK", RLIMIT_STACK },
};

int
crater__process_rlimits(json_t *process, crater_error_t *err)
{
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(process, "rlimits"), i, r)
  {
    const char *t = crater__js(r, "type");
    size_t k;
    for (k = 0; t && k < sizeof rlimits / sizeof *rlimits; k++)
      if (strcmp(t, rlimits[k].name) == 0)
        break;
    if (t == NULL || k == sizeof rlimits / sizeof *rlimits)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "unknown rlimit '%s'",
                               t ? t : "");
    struct rlimit rl = { (rlim_t) crater__ji(r, "soft", 0), (rlim_t) crater__ji(r, "hard", 0) };
    if (setrlimit(rlimits[k].res, &rl) < 0)
      return crater_error_sys(err, errno, "set %s", t);
  }
  return 0;
}

int
crater__process_cwd(json_t *process, crater_error_t *err)
{
  const char *cwd = crater__js(process, "cwd");
  if (cwd == NULL || *cwd == '\0')
    cwd = "/";
  if (cwd[0] != '/')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "cwd %s: must be an absolute path", cwd);
  cleanup_close int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    return crater_error_sys(err, errno, "open /");
  cleanup_close int fd = crater__open_in_root(root, cwd, true, true, err);
  if (fd < 0)
    return crater_error_wrap(err, "cwd %s", cwd);
  if (fchdir(fd) < 0)
    return crater_error_sys(err, errno, "chdir %s", cwd);
  return 0;
}

static const char *
env_get(json_t *process, const char *key)
{
  size_t i, kl = strlen(key);
  json_t *e;
  json_array_foreach(json_object_get(process, "env"), i, e)
  {
    const char *s = json_string_value(e);
    if (s && strncmp(s, key, kl) == 0 && s[kl] == '=')
      return s + kl + 1;
  }
  return NULL;
}

char *
crater__process_lookup(json_t *process, crater_error_t *err)
{
  json_t *args = json_object_get(process, "args");
  const char *a0 = json_string_value(json_array_get(args, 0));
  if (a0 == NULL || *a0 == '\0') {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "process.args must not be empty");
    return NULL;
  }
  struct stat st;
  if (strchr(a0, '/')) {
    /* refused at create, as runc does, rather than by execve after start:
     * missing, not a regular file, or not executable */
    if (!crater__is_executable(a0, &st)) {
      /* st_mode 0: nothing there (errno says why) */
      crater_error_sys(err, st.st_mode == 0 ? errno : EACCES, "exec: %s%s", a0,
                       S_ISDIR(st.st_mode) ? " (a directory)" : "");
      return NULL;
    }
    return xstrdup(a0);
  }
  const char *path = env_get(process, "PATH");
  cleanup_free char *dup = xstrdup(path ? path : DEFAULT_PATH);
  char *save = NULL;
  for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    char *c = xasprintf("%s/%s", *d ? d : ".", a0);
    if (crater__is_executable(c, &st))
      return c;
    free(c);
  }
  crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT,
                    "exec: \"%s\": executable file not found in $PATH", a0);
  return NULL;
}

int
crater__send_fd(int sock, int fd, const char *name, crater_error_t *err)
{
  char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
  struct iovec iov = { .iov_base = (void *) name, .iov_len = strlen(name) };
  struct msghdr mh = {
    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf
  };
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
    return crater_error_sys(err, errno, "send fd over socket");
  return 0;
}

int
crater__process_console(int sockfd, json_t *process, crater_error_t *err)
{
  cleanup_close int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return crater_error_sys(err, errno, "open /dev/ptmx");
  if (unlockpt(master) < 0)
    return crater_error_sys(err, errno, "unlockpt");
  char name[128];
  if (ptsname_r(master, name, sizeof name) != 0)
    return crater_error_sys(err, errno, "ptsname");
  cleanup_close int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    return crater_error_sys(err, errno, "open %s", name);
  json_t *size = json_object_get(process, "consoleSize");
  if (json_is_object(size)) {
    struct winsize ws = { .ws_row = (unsigned short) crater__ji(size, "height", 0),
                          .ws_col = (unsigned short) crater__ji(size, "width", 0) };
    if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
      return crater_error_sys(err, errno, "set console size");
  }
  /* the name runc sends along with the master */
  if (crater__send_fd(sockfd, master, "/dev/ptmx", err) < 0)
    return crater_error_wrap(err, "console socket");
  setsid();
  if (ioctl(slave, TIOCSCTTY, 0) < 0)
    return crater_error_sys(err, errno, "set controlling terminal");
  for (int i = 0; i < 3; i++)
    if (dup2(slave, i) < 0)
      return crater_error_sys(err, errno, "dup2 console");
  return 0;
}

int
crater__process_console_mount(crater_error_t *err)
{
  char name[64];
  int r = ttyname_r(0, name, sizeof name);
  if (r != 0)
    return crater_error_sys(err, r, "console: name of the terminal");
  if (mount(name, "/dev/console", NULL, MS_BIND, NULL) < 0)
    return crater_error_sys(err, errno, "bind %s on /dev/console", name);
  return 0;
}

static int
cap_list(json_t *caps, const char *key, cap_value_t *out, int *n, bool *present)
{
  json_t *a = json_object_get(caps, key);
  *n = 0;
  *present = json_is_array(a);
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v)
  {
    const char *s = json_string_value(v);
    char lower[64];
    snprintf(lower, sizeof lower, "%s", s ? s : "");
    for (char *p = lower; *p; p++)
      *p = (char) (*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    cap_value_t c;
    if (cap_from_name(lower, &c) < 0 || c > (cap_value_t) cap_max_bits() - 1) {
      rt_debug("capability %s unknown to this kernel, ignored", s ? s : "?");
      continue;
    }
    if (*n < 64)
      out[(*n)++] = c;
  }
  return 0;
}

static int
set_caps(json_t *caps, crater_error_t *err)
{
  cap_value_t eff[64], perm[64], inh[64], amb[64];
  int ne, np, ni, na;
  bool pe, pp, pi, pa;
  cap_list(caps, "effective", eff, &ne, &pe);
  cap_list(caps, "permitted", perm, &np, &pp);
  cap_list(caps, "inheritable", inh, &ni, &pi);
  cap_list(caps, "ambient", amb, &na, &pa);
  cap_t c = cap_init();
  if ((ne && cap_set_flag(c, CAP_EFFECTIVE, ne, eff, CAP_SET) < 0) ||
      (np && cap_set_flag(c, CAP_PERMITTED, np, perm, CAP_SET) < 0) ||
      (ni && cap_set_flag(c, CAP_INHERITABLE, ni, inh, CAP_SET) < 0)) {
    cap_free(c);
    return crater_error_sys(err, errno, "build capability set");
  }
  int r = cap_set_proc(c);
  int e = errno;
  cap_free(c);
  if (r < 0)
    return crater_error_sys(err, e, "set capabilities");
  if (CAP_AMBIENT_SUPPORTED()) {
    cap_reset_ambient();
    for (int i = 0; i < na; i++)
      if (cap_set_ambient(amb[i], CAP_SET) < 0) /* needs the cap in P and I: skip, as runc */
        rt_debug("ambient capability %d not raised: %s", amb[i], strerror(errno));
  }
  return 0;
}

static int
drop_bounding(json_t *caps, crater_error_t *err)
{
  cap_value_t bnd[64];
  int nb;
  bool present;
  cap_list(caps, "bounding", bnd, &nb, &present);
  for (cap_value_t c = 0; c < (cap_value_t) cap_max_bits(); c++) {
    bool keep = false;
    for (int i = 0; i < nb; i++)
      keep |= bnd[i] == c;
    if (!keep && cap_drop_bound(c) < 0 && errno != EINVAL)
      return crater_error_sys(err, errno, "drop capability %d from bounding set", c);
  }
  return 0;
}

/* "HOME=<dir>" from the container's /etc/passwd (read before the user
 * switch), "/" when the uid has no entry. */
static char *
passwd_home(uid_t uid)
{
  FILE *f = fopen("/etc/passwd", "re");
  char line[1024];
  while (f && fgets(line, sizeof line, f)) {
    char *fields[7] = { 0 }, *save = NULL, *p = line;
    int n = 0;
    for (char *t = strsep(&p, ":"); t && n < 7; t = strsep(&p, ":"))
      fields[n++] = t;
    (void) save;
    if (n >= 6 && fields[2] && (uid_t) strtoul(fields[2], NULL, 10) == uid && *fields[5]) {
      fclose(f);
      return xasprintf("HOME=%s", fields[5]);
    }
  }
  if (f)
    fclose(f);
  return xstrdup("HOME=/");
}

int
crater__process_exec(json_t *process, json_t *seccomp, const char *exe, int preserve_fds,
                     crater_error_t *err)
{
  json_t *user = json_object_get(process, "user");
  uid_t uid = (uid_t) crater__ji(user, "uid", 0);
  gid_t gid = (gid_t) crater__ji(user, "gid", 0);
  json_t *caps = json_object_get(process, "capabilities");
  bool nnp = crater__jb(process, "noNewPrivileges", false);

  umask((mode_t) crater__ji(user, "umask", 022));
  crater__signals_default();
  if (json_is_object(caps) && drop_bounding(caps, err) < 0)
    return -1;
  if (!nnp && seccomp && crater__seccomp_apply(seccomp, err) < 0)
    return -1;
  json_t *ag = json_object_get(user, "additionalGids");
  size_t ng = json_array_size(ag);
  gid_t groups[ng + 1];
  for (size_t i = 0; i < ng; i++)
    groups[i] = (gid_t) json_integer_value(json_array_get(ag, i));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return crater_error_sys(err, errno, "keep capabilities");
  if (setgroups(ng, groups) < 0 && !(errno == EPERM && ng == 0))
    return crater_error_sys(err, errno, "setgroups");
  if (setresgid(gid, gid, gid) < 0)
    return crater_error_sys(err, errno, "setgid %u", gid);
  if (setresuid(uid, uid, uid) < 0)
    return crater_error_sys(err, errno, "setuid %u", uid);
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
    return crater_error_sys(err, errno, "clear keep capabilities");
  if (json_is_object(caps) && set_caps(caps, err) < 0)
    return -1;
  if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return crater_error_sys(err, errno, "set no_new_privileges");
  /* HOME for processes that rely on it, as runc does */
  json_t *env = json_object_get(process, "env");
  size_t n = json_array_size(env);
  char **envp = xcalloc(n + 2, sizeof *envp);
  size_t k = 0;
  bool has_home = false;
  for (size_t i = 0; i < n; i++) {
    const char *s = json_string_value(json_array_get(env, i));
    if (s == NULL)
      continue;
    has_home |= strncmp(s, "HOME=", 5) == 0;
    envp[k++] = (char *) s;
  }
  cleanup_free char *home = NULL;
  if (!has_home)
    envp[k++] = home = passwd_home(uid);
  json_t *args = json_object_get(process, "args");
  size_t na = json_array_size(args);
  char **argv = xcalloc(na + 1, sizeof *argv);
  for (size_t i = 0; i < na; i++)
    argv[i] = (char *) json_string_value(json_array_get(args, i));

  /* every fd beyond stdio and the preserved ones closes on exec */
  if (syscall(SYS_close_range, 3 + preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = 3 + preserve_fds; fd < 65536; fd++)
      fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (nnp && seccomp) {
    int nfd = crater__seccomp_apply(seccomp, err);
    if (nfd < 0)
      return -1;
    const char *listener = crater__js(seccomp, "listenerPath");
    if (nfd > 0 && listener) {
      int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_un sa = { .sun_family = AF_UNIX };
      snprintf(sa.sun_path, sizeof sa.sun_path, "%s", listener);
      if (s < 0 || connect(s, (struct sockaddr *) &sa, sizeof sa) < 0 ||
          crater__send_fd(s, nfd, "seccomp", err) < 0)
        return err && *err ? -1 : crater_error_sys(err, errno, "seccomp listener %s", listener);
      close(s);
      close(nfd);
    }
  }
  execve(exe, argv, envp);
  int e = errno;
  free(envp);
  free(argv);
  return crater_error_sys(err, e, "exec %s", exe);
}
