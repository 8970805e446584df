/*
 * crater: the command's front end.  A small static program (musl where the
 * toolchain has it) that decides, before anything heavy is loaded, where a
 * command runs:
 *
 *   - when a `crater daemon` serves this root's socket, the command goes to
 *     one of its warm workers: argv, environ, umask, the working directory
 *     and stdin/stdout/stderr themselves (SCM_RIGHTS) travel over the
 *     socket, signals this process gets follow as "sig N" lines, and the
 *     worker's exit code becomes ours (src/daemon/protocol.h);
 *   - otherwise it execs crater-embedded beside it (LuaJIT, SQLite, the
 *     whole core: the daemonless mode), with the same argv.
 *
 * The socket: $CRATER_SOCKET, else <state>/crater.sock where state is
 * $CRATER_STATE, /run/crater for the default root, or ROOT/run for a root
 * given by a --root flag before the command or $CRATER_ROOT: the daemon
 * binds the same path (lua/crater/cli/daemon.lua).  CRATER_NO_DAEMON=1
 * always runs embedded, and so does CRATER_LUA_DIR (Lua sources of the
 * client's own), `crater daemon` and `crater repl`.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/protocol.h"

extern char **environ;

static int conn = -1;

/* Finds the command word after the global flags; *root gets a --root
 * given before it.  Flags taking a value: --root, --namespace/-n,
 * --format, --config (also as --flag=value): M.global_flags of
 * lua/crater/cli/init.lua, which this must follow. */
static const char *
command_word(int argc, char **argv, const char **root)
{
  static const char *const valued[] = { "--root", "--namespace", "-n", "--format", "--config" };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0)
      return i + 1 < argc ? argv[i + 1] : NULL;
    if (a[0] != '-' || a[1] == '\0')
      return a;
    if (strncmp(a, "--root=", 7) == 0) {
      *root = a + 7;
      continue;
    }
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
      if (strcmp(a, valued[k]) == 0) {
        if (k == 0 && i + 1 < argc)
          *root = argv[i + 1];
        i++;
        break;
      }
    }
  }
  return NULL;
}

/* The daemon's socket for this invocation (see the top of the file): the
 * state dir of crater.containers.state_dir and lua/crater/cli/daemon.lua's
 * socket_path, which this must follow.  0, or -1 when the path does not
 * fit a sockaddr_un. */
static int
socket_path(const char *root, struct sockaddr_un *sa)
{
  const char *s = getenv("CRATER_SOCKET");
  const char *state = getenv("CRATER_STATE");
  int n;
  if (root == NULL)
    root = getenv("CRATER_ROOT");
  if (s != NULL && *s != '\0')
    n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s", s);
  else if (state != NULL && *state != '\0')
    n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", state, CRATER_SOCKET_NAME);
  else if (root == NULL || strcmp(root, CRATER_DEFAULT_ROOT) == 0)
    n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", CRATER_DEFAULT_STATE,
                 CRATER_SOCKET_NAME);
  else
    n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/run/%s", root, CRATER_SOCKET_NAME);
  sa->sun_family = AF_UNIX;
  return n > 0 && (size_t) n < sizeof sa->sun_path ? 0 : -1;
}

/* A growing payload of NUL-terminated fields. */
struct buf {
  char *p;
  size_t len, cap;
};

static int
put(struct buf *b, const char *s)
{
  size_t n = strlen(s) + 1;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (np == NULL)
      return -1;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

static int
put_int(struct buf *b, const char *fmt, long v)
{
  char num[32];
  snprintf(num, sizeof num, fmt, v);
  return put(b, num);
}

static void
forward_signal(int sig)
{
  int saved = errno;
  char line[16];
  int n = snprintf(line, sizeof line, "sig %d\n", sig);
  if (conn >= 0)
    (void) send(conn, line, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT);
  errno = saved;
}

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2 };

/* Sends the request; fds[] are ours to close afterwards. */
static int
send_request(int fd, const struct buf *b, const int fds[CRATER_CLI_NFDS])
{
  char head[CRATER_CLI_MAGIC_LEN + sizeof(uint32_t)];
  uint32_t len = (uint32_t) b->len;
  memcpy(head, CRATER_CLI_MAGIC, CRATER_CLI_MAGIC_LEN);
  memcpy(head + CRATER_CLI_MAGIC_LEN, &len, sizeof len);
  size_t first = b->len < 65536 ? b->len : 65536;
  struct iovec iov[2] = { { head, sizeof head }, { b->p, first } };
  union {
    char buf[CMSG_SPACE(sizeof(int) * CRATER_CLI_NFDS)];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr msg = {
    .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf
  };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * CRATER_CLI_NFDS);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * CRATER_CLI_NFDS);
  ssize_t w;
  do
    w = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0)
    return -1;
  /* what sendmsg did not take, header included, goes as plain bytes */
  size_t done = (size_t) w;
  if (done < sizeof head) {
    if (crater_cli_send_all(fd, head + done, sizeof head - done) != 0)
      return -1;
    done = sizeof head;
  }
  size_t off = done - sizeof head;
  return crater_cli_send_all(fd, b->p + off, b->len - off);
}

/* Dies of sig, as the worker serving us did.  At once: a worker dumping
 * core closes our connection only when the dump is written (seconds, on a
 * slow disk), and the dump is its, so none of ours (it would be written
 * as the same "core" in the same directory). */
static void
die_of(int sig)
{
  struct rlimit none = { 0, 0 };
  setrlimit(RLIMIT_CORE, &none);
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigprocmask(SIG_UNBLOCK, &one, NULL);
  raise(sig);
}

/* Runs the command through the daemon on fd.  Returns its exit code, or
 * -1 when it must run embedded instead (nothing of it has run). */
static int
forward(int fd, const char *embedded, int argc, char **argv)
{
  struct buf b = { 0 };
  int fds[CRATER_CLI_NFDS];
  char ident[64];
  if (crater_cli_ident(embedded, ident, sizeof ident) != 0)
    return -1;
  mode_t mask = umask(0);
  umask(mask);
  int bad = put(&b, ident) || put_int(&b, "%lo", (long) mask) || put_int(&b, "%ld", argc);
  for (int i = 0; i < argc && !bad; i++)
    bad = put(&b, argv[i]);
  long envc = 0;
  for (char **e = environ; *e != NULL; e++)
    envc++;
  bad = bad || put_int(&b, "%ld", envc);
  for (char **e = environ; *e != NULL && !bad; e++)
    bad = put(&b, *e);
  if (bad || b.len > CRATER_CLI_MAX_PAYLOAD) {
    free(b.p);
    return -1;
  }
  for (int i = 0; i < 3; i++)
    fds[i] = i;
  fds[3] = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fds[3] < 0)
    fds[3] = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int sent = fds[3] >= 0 ? send_request(fd, &b, fds) : -1;
  free(b.p);
  for (int i = 0; i < CRATER_CLI_NFDS; i++)
    if (fds[i] > 2)
      close(fds[i]);
  if (sent != 0)
    return -1;

  conn = fd;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
    sigaction(forwarded[i], &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct crater_cli_lines lines = { .have = 0 };
  char *line;
  int taken = 0, v;
  while ((line = crater_cli_next_line(fd, &lines)) != NULL) {
    if (sscanf(line, "exit %d", &v) == 1)
      return v;
    if (strcmp(line, "embedded") == 0)
      return -1;
    if (strcmp(line, "run") == 0)
      taken = 1;
    if (sscanf(line, "signal %d", &v) == 1 && v > 0 && v < NSIG)
      die_of(v);
  }
  if (!taken)
    return -1; /* gone before it took the command: nothing of it ran */
  fputs("crater: the daemon's worker ended without an exit status (see crater daemon's log)\n",
        stderr);
  return 1;
}

int
main(int argc, char **argv)
{
  /* A closed stdin, stdout or stderr becomes /dev/null first: else the
   * next descriptor opened takes its number (the daemon's socket would
   * travel as the command's stdin, or crater-embedded's database be
   * written to as its stdout). */
  for (int i = 0; i < 3; i++)
    if (fcntl(i, F_GETFD) < 0 && open("/dev/null", O_RDWR) != i)
      return 125;
  char embedded[PATH_MAX];
  const char *env_bin = getenv("CRATER_EMBEDDED");
  if (env_bin != NULL && *env_bin != '\0') {
    snprintf(embedded, sizeof embedded, "%s", env_bin);
  } else {
    ssize_t n = readlink("/proc/self/exe", embedded, sizeof embedded - 32);
    if (n <= 0) {
      fputs("crater: cannot read /proc/self/exe to find crater-embedded (set CRATER_EMBEDDED)\n",
            stderr);
      return 1;
    }
    embedded[n] = '\0';
    char *slash = strrchr(embedded, '/');
    strcpy(slash != NULL ? slash + 1 : embedded, "crater-embedded");
  }

  const char *root = NULL;
  const char *cmd = command_word(argc, argv, &root);
  const char *no = getenv("CRATER_NO_DAEMON");
  const char *lua_dir =
      getenv("CRATER_LUA_DIR"); /* sources of its own: a worker has the daemon's */
  if (cmd != NULL && strcmp(cmd, "daemon") != 0 && strcmp(cmd, "repl") != 0 &&
      !(no != NULL && *no != '\0' && strcmp(no, "0") != 0) &&
      (lua_dir == NULL || *lua_dir == '\0')) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    if (socket_path(root, &sa) == 0) {
      int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0) {
        int rc = forward(fd, embedded, argc, argv);
        if (rc >= 0)
          return rc;
        /* run embedded: the signals we took over go back to defaults */
        conn = -1;
        for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
          signal(forwarded[i], SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
      }
      if (fd >= 0)
        close(fd);
    }
  }
  execv(embedded, argv);
  fprintf(stderr, "crater: cannot run %s: %s\n", embedded, strerror(errno));
  return 127;
}
