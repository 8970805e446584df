/*
 * Task bindings: the process plumbing lua/crater/tasks.lua needs and plain
 * LuaJIT lacks.
 *
 *   core.shim_spawn(argv, {stderr=path, dir=path}) -> pending shim | nil, msg, kind
 *       Starts crater-shim detached: posix_spawn (no copy of this process's
 *       page tables), and the shim's --daemonize (setsid, fork, the first
 *       process exits), so the shim is re-parented to init or the nearest
 *       sub-reaper, has its own session and process group, and survives
 *       this process.  argv[1] is the shim path; "--daemonize --ready-fd 3
 *       --wait-go" is appended (and "--dir-fd 4" with opts.dir: the task
 *       dir, opened here, which the caller may then rename).  The shim starts now and waits before
 *       running the runtime, so its start overlaps the caller's work on the
 *       bundle: pending:go([words]) -> "ok PID" [, fd] | nil, msg, kind lets
 *       it run (`create`, or `run --detach`) and returns its report (words:
 *       what the caller decided meanwhile, e.g. "delete-on-exit"; with
 *       "mntns", fd: the init's mount namespace, for the caller to hold);
 *       pending:abort() (also __gc) makes it exit without running anything
 *       and waits until it has (it leaves no file behind); pending:release()
 *       does the same without waiting; pending:reap() waits for the first
 *       process only (a spare shim, left waiting).
 *   core.shim_request(taskdir, line [, timeout_ms]) -> reply | nil, msg, kind
 *       One request/reply on <taskdir>/shim.sock (timeout -1 = forever).
 *       A missing or refusing socket is kind "unavailable" (shim dead).
 *   core.mkfifo(path [, mode]) -> true | nil, msg, kind
 *   core.kill(pid, sig) -> true | nil, msg, kind ; core.pid_alive(pid)
 *   core.tty_size([fd]) -> cols, rows | nil
 *   core.io_open{stdin=, stdout=, stderr=} -> io handle (fifo fds, opened now
 *       so no output is lost before the task starts)
 *   io:run{taskdir=, exec=, tty=, stdin=bool, signals=bool} -> true
 *       Copies our stdin to the stdin fifo and the output fifos to our
 *       stdout/stderr until the outputs reach EOF; forwards SIGINT, SIGTERM,
 *       SIGHUP, SIGQUIT to the process (kill) and SIGWINCH as resize; puts
 *       the terminal in raw mode with tty=true and restores it on the way
 *       out.  io:close() is idempotent and also run by __gc.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "lua/lua_util.h"

#define IO_MT "crater.task_io"
#define PENDING_MT "crater.shim_pending"

extern char **environ;

static int
fail_errno(lua_State *L, int e, const char *fmt, const char *what)
{
  cleanup_error crater_error_t err = NULL;
  crater_error_sys(&err, e, fmt, what);
  return crater__lua_fail(L, &err);
}

static int
fail_kind(lua_State *L, crater_errkind_t kind, const char *msg)
{
  crater_error_t err = NULL;
  crater_error_make(&err, kind, 0, "%s", msg);
  return crater__lua_fail(L, &err);
}

static void
free_argv(char **argv)
{
  if (!argv)
    return;
  for (char **p = argv; *p; p++)
    free(*p);
  free(argv);
}

/* A shim from shim_spawn, waiting for "go": the socket to it and the
 * pid of its first process, not yet reaped (-1 once reaped). */
struct pending {
  int fd;
  pid_t first;
};

/* Reaps p's first shim process (it forks the shim and exits at once),
 * once. */
static void
reap_first(struct pending *p)
{
  int st;
  while (p->first > 0 && waitpid(p->first, &st, 0) < 0 && errno == EINTR) {
  }
  p->first = -1;
}

static int
l_shim_spawn(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *errpath = lua_istable(L, 2) ? crater__lua_opt_field_string(L, 2, "stderr") : NULL;
  const char *dirpath = lua_istable(L, 2) ? crater__lua_opt_field_string(L, 2, "dir") : NULL;
  size_t n = lua_objlen(L, 1);
  if (n == 0)
    return luaL_argerror(L, 1, "empty argv");
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, (int) i);
    if (!lua_isstring(L, -1))
      return luaL_argerror(L, 1, "argv entries must be strings");
    lua_pop(L, 1);
  }
  /* copy everything C keeps before creating any resource */
  char **argv = xcalloc(n + 7, sizeof *argv);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, (int) i);
    argv[i - 1] = xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  argv[n] = xstrdup("--daemonize");
  argv[n + 1] = xstrdup("--ready-fd");
  argv[n + 2] = xstrdup("3");
  argv[n + 3] = xstrdup("--wait-go");
  if (dirpath) {
    argv[n + 4] = xstrdup("--dir-fd");
    argv[n + 5] = xstrdup("4");
  }
  int e = 0;
  int rp[2] = { -1, -1 };
  int ready_w = -1, errf = -1, dirf = -1;
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  /* a socket pair: the shim reads "go" from it and reports on it */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rp) < 0) {
    e = errno;
    goto spawned;
  }
  /* the child's fds 0-3 are made from these; above 9 none of them is
   * overwritten before it is read (our own stdio may be closed) */
  ready_w = fcntl(rp[1], F_DUPFD_CLOEXEC, 10);
  errf = errpath ? open(errpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
  if (errf >= 0 && errf < 10) {
    int hi = fcntl(errf, F_DUPFD_CLOEXEC, 10);
    close(errf);
    errf = hi;
  }
  if (ready_w < 0) {
    e = errno;
    goto spawned;
  }
  if (dirpath) {
    dirf = open(dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int hi = dirf >= 0 ? fcntl(dirf, F_DUPFD_CLOEXEC, 10) : -1;
    if (dirf >= 0)
      close(dirf);
    dirf = hi;
    if (dirf < 0) {
      e = errno;
      goto spawned;
    }
  }
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&fa, 0, 1);
  posix_spawn_file_actions_adddup2(&fa, errf >= 0 ? errf : 0, 2);
  posix_spawn_file_actions_adddup2(&fa, ready_w, 3);
  if (dirf >= 0)
    posix_spawn_file_actions_adddup2(&fa, dirf, 4);
  posix_spawn_file_actions_addclosefrom_np(&fa, dirf >= 0 ? 5 : 4);
  e = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
spawned:
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (ready_w >= 0)
    close(ready_w);
  if (errf >= 0)
    close(errf);
  if (dirf >= 0)
    close(dirf);
  if (rp[1] >= 0)
    close(rp[1]);
  if (e != 0) {
    if (rp[0] >= 0)
      close(rp[0]);
    cleanup_free char *what = xstrdup(argv[0]);
    free_argv(argv);
    return fail_errno(L, e, "spawn shim %s", what);
  }
  free_argv(argv);
  /* the shim just spawned would otherwise wait for this client's time
   * slice (its start took 1.7 instead of 0.2 ms) */
  crater__leave_cpu(pid);
  /* the first shim process is reaped by go() or abort(): waiting for it
   * here would wait for its exec, the very time the caller overlaps */
  struct pending *ud = lua_newuserdata(L, sizeof *ud);
  ud->fd = rp[0];
  ud->first = pid;
  luaL_getmetatable(L, PENDING_MT);
  lua_setmetatable(L, -2);
  return 1;
}

/* Reads the shim's one-line report from fd (then closed) and pushes it,
 * or nil, msg, kind when the shim exited without one.  A descriptor the
 * shim sent with it (SCM_RIGHTS, close-on-exec here) is pushed second, as
 * a number (the caller's to close). */
static int
push_reply(lua_State *L, int fd)
{
  char buf[4096];
  size_t len = 0;
  int passed = -1;
  for (;;) {
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    int r = poll(&pf, 1, 120000);
    if (r == 0)
      break;
    if (r < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    union {
      struct cmsghdr h;
      char b[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = { .iov_base = buf + len, .iov_len = sizeof buf - 1 - len };
    struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b
    };
    ssize_t k = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    if (k < 0 && errno == EINTR)
      continue;
    for (struct cmsghdr *c = k >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
        continue;
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
        int got;
        memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
        if (passed < 0)
          passed = got;
        else
          close(got);
      }
    }
    if (k <= 0)
      break;
    len += (size_t) k;
    if (len >= sizeof buf - 1)
      break;
  }
  close(fd);
  buf[len] = 0;
  while (len > 0 && buf[len - 1] == '\n')
    buf[--len] = 0;
  if (len == 0) {
    if (passed >= 0)
      close(passed);
    return fail_kind(L, CRATER_ERR_UNAVAILABLE, "shim exited without reporting (see shim.log)");
  }
  lua_pushstring(L, buf);
  if (passed < 0)
    return 1;
  lua_pushinteger(L, passed);
  return 2;
}

static struct pending *
check_pending(lua_State *L)
{
  return luaL_checkudata(L, 1, PENDING_MT);
}

/* pending:go([words]) -> "ok PID" [, fd] | nil, msg, kind.  words: what
 * the client decided while the shim started ("delete-on-exit"), sent on
 * the "go" line.  With "mntns" among them, fd is the init's mount
 * namespace, open (close-on-exec) for the caller to hold. */
static int
l_pending_go(lua_State *L)
{
  struct pending *p = check_pending(L);
  const char *words = luaL_optstring(L, 2, NULL);
  char line[128];
  int n = snprintf(line, sizeof line, "go%s%s\n", words && words[0] ? " " : "", words ? words : "");
  if (n < 0 || (size_t) n >= sizeof line || memchr(line, '\n', (size_t) n - 1))
    return luaL_argerror(L, 2, "go words: one short line");
  if (p->fd < 0)
    return fail_kind(L, CRATER_ERR_FAILED_PRECONDITION, "shim already started or aborted");
  int f = p->fd;
  p->fd = -1;
  reap_first(p);
  ssize_t w;
  do
    w = send(f, line, (size_t) n, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  /* a shim that died before reading finds no reader here: its report (or
   * its absence) still says what happened */
  return push_reply(L, f);
}

/* pending:reap() -> true: waits for the shim's first process (it forks the
 * shim and exits at once), which go() and abort() otherwise reap: a spare
 * shim may wait long, and that process would stay a zombie meanwhile. */
static int
l_pending_reap(lua_State *L)
{
  struct pending *p = check_pending(L);
  reap_first(p);
  lua_pushboolean(L, 1);
  return 1;
}

/* pending:alive() -> bool: whether the shim still waits for "go" (its
 * end of the socket neither closed nor written to). */
static int
l_pending_alive(lua_State *L)
{
  struct pending *p = check_pending(L);
  struct pollfd pf = { .fd = p->fd, .events = POLLIN };
  lua_pushboolean(L, p->fd >= 0 && poll(&pf, 1, 0) == 0);
  return 1;
}

/* core.close_fd(fd) -> true | nil, msg, kind: closes a descriptor a
 * binding handed out as a number (pending:go's mount namespace). */
static int
l_close_fd(lua_State *L)
{
  int fd = (int) luaL_checkinteger(L, 1);
  if (fd < 3)
    return luaL_argerror(L, 1, "not a descriptor to close");
  if (close(fd) < 0) {
    char what[16];
    snprintf(what, sizeof what, "%d", fd);
    return fail_errno(L, errno, "close %s", what);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* pending:release() -> true: as abort(), without waiting: the shim gets
 * EOF and removes what it made by itself, off the caller's path. */
static int
l_pending_release(lua_State *L)
{
  struct pending *p = check_pending(L);
  reap_first(p);
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
  lua_pushboolean(L, 1);
  return 1;
}

/* pending:abort() -> true: the shim exits without running the runtime;
 * returns once it has closed its end (it has removed its files by then). */
static int
l_pending_abort(lua_State *L)
{
  struct pending *p = check_pending(L);
  reap_first(p);
  if (p->fd >= 0) {
    int f = p->fd;
    p->fd = -1;
    shutdown(f, SHUT_WR); /* EOF for the shim: not "go" */
    char b[256];
    struct pollfd pf = { .fd = f, .events = POLLIN };
    while (poll(&pf, 1, 5000) > 0 && read(f, b, sizeof b) > 0) {
    }
    close(f);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Connects to <dir>/shim.sock, through /proc/self/fd when the path is too
 * long for sun_path.  Returns the socket or -1 with errno set. */
static int
shim_connect(const char *dir)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  cleanup_close int dfd = -1;
  if (strlen(dir) + sizeof "/shim.sock" <= sizeof a.sun_path) {
    snprintf(a.sun_path, sizeof a.sun_path, "%s/shim.sock", dir);
  } else {
    dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
      return -1;
    snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/shim.sock", dfd);
  }
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return -1;
  if (connect(s, (struct sockaddr *) &a, sizeof a) < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

/* Sends one request line to the shim of dir.  Returns the connected socket
 * or -1 after pushing nil, msg, kind. */
static int
shim_send(lua_State *L, const char *dir, const char *line, size_t ln)
{
  if (ln == 0 || memchr(line, '\n', ln))
    return luaL_argerror(L, 2, "request must be one non-empty line");
  int s = shim_connect(dir);
  if (s < 0) {
    int e = errno;
    if (e == ENOENT || e == ECONNREFUSED)
      fail_kind(L, CRATER_ERR_UNAVAILABLE, "shim not running");
    else
      fail_errno(L, e, "connect %s/shim.sock", dir);
    return -1;
  }
  cleanup_free char *req = xmalloc(ln + 1);
  memcpy(req, line, ln);
  req[ln] = '\n';
  if (send(s, req, ln + 1, MSG_NOSIGNAL) < 0) {
    int e = errno;
    close(s);
    fail_errno(L, e, "send to shim in %s", dir);
    return -1;
  }
  return s;
}

/* Reads the one-line reply on s (and closes s): pushes it, or nil, msg, kind. */
static int
shim_recv(lua_State *L, int s, int timeout)
{
  char buf[4096];
  size_t len = 0;
  for (;;) {
    struct pollfd pf = { .fd = s, .events = POLLIN };
    int r = poll(&pf, 1, timeout);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0) {
      close(s);
      return fail_kind(L, CRATER_ERR_DEADLINE_EXCEEDED, "shim did not answer in time");
    }
    if (r < 0) {
      int e = errno;
      close(s);
      return fail_errno(L, e, "poll shim socket %s", "");
    }
    ssize_t k = read(s, buf + len, sizeof buf - 1 - len);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    len += (size_t) k;
    if (memchr(buf, '\n', len) || len >= sizeof buf - 1)
      break;
  }
  close(s);
  buf[len] = 0;
  char *nl = memchr(buf, '\n', len);
  if (!nl)
    return fail_kind(L, CRATER_ERR_UNAVAILABLE, "shim closed the connection (shim died?)");
  *nl = 0;
  lua_pushstring(L, buf);
  return 1;
}

/* core.shim_request(dir, line[, timeout_ms]) -> reply line | nil, msg, kind */
static int
l_shim_request(lua_State *L)
{
  const char *dir = luaL_checkstring(L, 1);
  size_t ln;
  const char *line = luaL_checklstring(L, 2, &ln);
  int timeout = (int) luaL_optinteger(L, 3, 30000);
  int s = shim_send(L, dir, line, ln);
  if (s < 0)
    return 3;
  return shim_recv(L, s, timeout);
}

/* core.shim_send(dir, line) -> fd | nil, msg, kind: sends a request without
 * waiting, so the caller can work while the shim does; core.shim_recv(fd,
 * timeout_ms) then reads the reply and closes fd (always). */
static int
l_shim_send(lua_State *L)
{
  const char *dir = luaL_checkstring(L, 1);
  size_t ln;
  const char *line = luaL_checklstring(L, 2, &ln);
  int s = shim_send(L, dir, line, ln);
  if (s < 0)
    return 3;
  lua_pushinteger(L, s);
  return 1;
}

static int
l_shim_recv(lua_State *L)
{
  int s = (int) luaL_checkinteger(L, 1);
  int timeout = (int) luaL_optinteger(L, 2, 30000);
  if (s < 0)
    return luaL_argerror(L, 1, "bad descriptor");
  return shim_recv(L, s, timeout);
}

static int
l_mkfifo(lua_State *L)
{
  const char *p = luaL_checkstring(L, 1);
  mode_t m = (mode_t) luaL_optinteger(L, 2, 0600);
  if (mkfifo(p, m) < 0 && errno != EEXIST)
    return fail_errno(L, errno, "mkfifo %s", p);
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_kill(lua_State *L)
{
  pid_t pid = (pid_t) luaL_checkinteger(L, 1);
  int sig = (int) luaL_checkinteger(L, 2);
  if (pid <= 0)
    return luaL_argerror(L, 1, "pid must be positive");
  if (kill(pid, sig) < 0) {
    char b[32];
    snprintf(b, sizeof b, "%d", (int) pid);
    return fail_errno(L, errno, "kill %s", b);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int
l_pid_alive(lua_State *L)
{
  pid_t pid = (pid_t) luaL_checkinteger(L, 1);
  char b[1024];
  const char *st = crater__proc_stat_fields(pid, b, sizeof b);
  lua_pushboolean(L, st && *st != 'Z' && *st != 'X');
  return 1;
}

static int
l_tty_size(lua_State *L)
{
  int fd = (int) luaL_optinteger(L, 1, 0);
  struct winsize ws;
  if (!isatty(fd) || ioctl(fd, TIOCGWINSZ, &ws) < 0)
    return 0;
  lua_pushinteger(L, ws.ws_col);
  lua_pushinteger(L, ws.ws_row);
  return 2;
}

static int
l_isatty(lua_State *L)
{
  lua_pushboolean(L, isatty((int) luaL_optinteger(L, 1, 0)));
  return 1;
}

/* ---- io handle ------------------------------------------------------------ */

typedef struct {
  int in, out, err; /* fifo fds, -1 when absent */
} task_io_t;

static void
io_close_fds(task_io_t *io)
{
  int *f[3] = { &io->in, &io->out, &io->err };
  for (int i = 0; i < 3; i++) {
    if (*f[i] >= 0)
      close(*f[i]);
    *f[i] = -1;
  }
}

static int
l_io_open(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *in = crater__lua_opt_field_string(L, 1, "stdin");
  const char *out = crater__lua_opt_field_string(L, 1, "stdout");
  const char *er = crater__lua_opt_field_string(L, 1, "stderr");
  task_io_t *io = lua_newuserdata(L, sizeof *io);
  io->in = io->out = io->err = -1;
  luaL_getmetatable(L, IO_MT);
  lua_setmetatable(L, -2);
  /* outputs: read ends, non-blocking open so it never waits for a writer;
   * stdin: O_RDWR so the open succeeds before the shim exists */
  const char *paths[3] = { in, out, er };
  int flags[3] = { O_RDWR, O_RDONLY | O_NONBLOCK, O_RDONLY | O_NONBLOCK };
  int *fds[3] = { &io->in, &io->out, &io->err };
  for (int i = 0; i < 3; i++) {
    if (!paths[i])
      continue;
    *fds[i] = open(paths[i], flags[i] | O_CLOEXEC);
    if (*fds[i] < 0) {
      int e = errno;
      io_close_fds(io);
      return fail_errno(L, e, "open fifo %s", paths[i]);
    }
  }
  return 1;
}

static task_io_t *
check_io(lua_State *L)
{
  return luaL_checkudata(L, 1, IO_MT);
}

static int
l_io_close(lua_State *L)
{
  io_close_fds(check_io(L));
  return 0;
}

/* Fire-and-forget request to the shim (used from the copy loop). */
static void
notify_shim(const char *dir, const char *line)
{
  int s = shim_connect(dir);
  if (s < 0)
    return;
  char b[512];
  int n = snprintf(b, sizeof b, "%s\n", line);
  if (send(s, b, (size_t) n, MSG_NOSIGNAL) >= 0) {
    struct pollfd pf = { .fd = s, .events = POLLIN };
    if (poll(&pf, 1, 5000) > 0 && read(s, b, sizeof b) < 0) {
      /* reply ignored */
    }
  }
  close(s);
}

struct ibuf {
  char data[16384];
  size_t off, len;
};

static int
l_io_run(lua_State *L)
{
  task_io_t *io = check_io(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *dir_l = crater__lua_opt_field_string(L, 2, "taskdir");
  const char *exec_l = crater__lua_opt_field_string(L, 2, "exec");
  int tty = crater__lua_opt_field_bool(L, 2, "tty", 0);
  int use_stdin = crater__lua_opt_field_bool(L, 2, "stdin", io->in >= 0);
  int signals = crater__lua_opt_field_bool(L, 2, "signals", 1);
  if (!dir_l)
    return luaL_argerror(L, 2, "taskdir required");
  cleanup_free char *dir = xstrdup(dir_l);
  cleanup_free char *exec = xstrdup(exec_l);

  struct termios saved;
  int raw = tty && use_stdin && isatty(0) && tcgetattr(0, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t); /* the container's pty does the output processing */
    tcsetattr(0, TCSANOW, &t);
  }
  if (tty && isatty(0)) {
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0) {
      char line[128];
      snprintf(line, sizeof line, "resize %s %u %u", exec ? exec : "-", ws.ws_col, ws.ws_row);
      notify_shim(dir, line);
    }
  }
  sigset_t set, old;
  sigemptyset(&set);
  int sfd = -1;
  if (signals) {
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGWINCH);
    sigprocmask(SIG_BLOCK, &set, &old);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  }
  struct ibuf *ib = use_stdin && io->in >= 0 ? xmalloc0(sizeof *ib) : NULL;
  int in_open = ib != NULL;
  int out_fd = io->out, err_fd = io->err;
  char buf[32768];
  while (out_fd >= 0 || err_fd >= 0) {
    struct pollfd pf[5];
    int n = 0, i_sig = -1, i_in = -1, i_fifo = -1, i_out = -1, i_err = -1;
    if (sfd >= 0) {
      pf[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };
      i_sig = n++;
    }
    if (in_open && ib->len == 0) {
      pf[n] = (struct pollfd){ .fd = 0, .events = POLLIN };
      i_in = n++;
    }
    if (ib && ib->len > 0) {
      pf[n] = (struct pollfd){ .fd = io->in, .events = POLLOUT };
      i_fifo = n++;
    }
    if (out_fd >= 0) {
      pf[n] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
      i_out = n++;
    }
    if (err_fd >= 0) {
      pf[n] = (struct pollfd){ .fd = err_fd, .events = POLLIN };
      i_err = n++;
    }
    if (poll(pf, (nfds_t) n, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (i_sig >= 0 && pf[i_sig].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        char line[160];
        if (si.ssi_signo == SIGWINCH) {
          struct winsize ws;
          if (!tty || ioctl(0, TIOCGWINSZ, &ws) < 0)
            continue;
          snprintf(line, sizeof line, "resize %s %u %u", exec ? exec : "-", ws.ws_col, ws.ws_row);
        } else if (exec) {
          snprintf(line, sizeof line, "kill %u exec %s", si.ssi_signo, exec);
        } else {
          snprintf(line, sizeof line, "kill %u", si.ssi_signo);
        }
        notify_shim(dir, line);
      }
    }
    if (i_in >= 0 && pf[i_in].revents) {
      ssize_t r = read(0, ib->data, sizeof ib->data);
      if (r > 0) {
        ib->off = 0;
        ib->len = (size_t) r;
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        in_open = 0;
        char line[160];
        snprintf(line, sizeof line, "close_stdin %s", exec ? exec : "-");
        notify_shim(dir, line);
      }
    }
    if (i_fifo >= 0 && pf[i_fifo].revents) {
      ssize_t w = write(io->in, ib->data + ib->off, ib->len);
      if (w > 0) {
        ib->off += (size_t) w;
        ib->len -= (size_t) w;
      } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
        ib->len = 0;
        in_open = 0;
      }
    }
    int *fds[2] = { &out_fd, &err_fd };
    int idx[2] = { i_out, i_err };
    for (int k = 0; k < 2; k++) {
      if (idx[k] < 0 || !pf[idx[k]].revents)
        continue;
      ssize_t r = read(*fds[k], buf, sizeof buf);
      if (r > 0) {
        cleanup_error crater_error_t e = NULL;
        crater__write_all(k == 0 ? 1 : 2, buf, (size_t) r, &e);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        *fds[k] = -1; /* closed with the handle */
      }
    }
  }
  free(ib);
  if (sfd >= 0) {
    close(sfd);
    /* drop what is pending so unblocking does not kill us */
    struct timespec zero = { 0, 0 };
    while (sigtimedwait(&set, NULL, &zero) > 0) {
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
  }
  if (raw)
    tcsetattr(0, TCSANOW, &saved);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg io_methods[] = {
  { "run", l_io_run },
  { "close", l_io_close },
  { "__gc", l_io_close },
  { NULL, NULL },
};

static const luaL_Reg task_funcs[] = {
  { "shim_spawn", l_shim_spawn }, { "shim_request", l_shim_request },
  { "shim_send", l_shim_send },   { "shim_recv", l_shim_recv },
  { "mkfifo", l_mkfifo },         { "kill", l_kill },
  { "pid_alive", l_pid_alive },   { "tty_size", l_tty_size },
  { "isatty", l_isatty },         { "io_open", l_io_open },
  { "close_fd", l_close_fd },     { NULL, NULL },
};

void
crater__lua_open_task(lua_State *L)
{
  crater__lua_newclass(L, IO_MT, io_methods);
  static const luaL_Reg pending_methods[] = {
    { "go", l_pending_go },
    { "abort", l_pending_abort },
    { "reap", l_pending_reap },
    { "release", l_pending_release },
    { "__gc", l_pending_abort },
    { "alive", l_pending_alive },
    { NULL, NULL },
  };
  crater__lua_newclass(L, PENDING_MT, pending_methods);
  luaL_register(L, NULL, task_funcs);
}
