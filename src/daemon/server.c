/*
 * craterd: the warm-worker daemon behind `crater daemon` (server.h,
 * protocol.h, docs/design/daemon.md).
 */
#include "daemon/server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "daemon/protocol.h"

#define MAX_WORKERS 64

/* On the notify pipe, beside a worker's pid (it took a command) and its
 * negated pid (its command left work for the janitor): its pid with this
 * bit, back to idle after a command.  Pids stay below 2^22 (pid_max). */
#define NOTE_IDLE 0x40000000

/* What the daemon and its workers share (a MAP_SHARED page made before the
 * first fork): how many workers are idle (waiting for a command, or warming
 * up for one), at most max_idle; and the generation, which SIGHUP bumps so
 * that a worker busy meanwhile does not come back with its old store
 * connection. */
struct pool {
  atomic_int idle;
  atomic_int generation;
  int max_idle;
};
static struct pool *pool;
static int my_generation;
static pid_t daemon_pid;

/* a worker's side: the notify pipe to the daemon, then its client */
static int notify_fd = -1;
static int conn_fd = -1;
static volatile sig_atomic_t finished;
static char *payload; /* argv and environ point into it for the command's life */

static int
fill_sockaddr(const char *path, struct sockaddr_un *sa, crater_error_t *err)
{
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa->sun_path)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "socket path %s is longer than %zu bytes", path,
                             sizeof sa->sun_path - 1);
  strcpy(sa->sun_path, path);
  return 0;
}

/* PATH.lock, flock'd by the daemon for its life: two daemons started at
 * once could otherwise both find no one answering, and the second unlink
 * the first one's fresh socket.  Workers close their copy. */
static int lock_fd = -1;

static int
take_lock(const char *path, crater_error_t *err)
{
  char lp[sizeof((struct sockaddr_un *) 0)->sun_path + 8];
  snprintf(lp, sizeof lp, "%s.lock", path);
  int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return crater_error_sys(err, errno, "open %s", lp);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, 0, "a daemon already serves %s",
                               path);
    return crater_error_sys(err, e, "lock %s", lp);
  }
  lock_fd = fd;
  return 0;
}

int
crater__daemon_listen(const char *path, crater_error_t *err)
{
  struct sockaddr_un sa;
  if (fill_sockaddr(path, &sa, err) < 0 || (lock_fd < 0 && take_lock(path, err) < 0))
    return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return crater_error_sys(err, errno, "socket");
  if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0) {
    close(fd);
    return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, 0, "a daemon already serves %s", path);
  }
  if (errno == ECONNREFUSED)
    unlink(path); /* left by a daemon that was killed */
  mode_t old = umask(0177);
  int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
  int e = errno;
  umask(old);
  if (r != 0 || chmod(path, 0600) != 0 || listen(fd, SOMAXCONN) != 0) {
    e = r != 0 ? e : errno;
    close(fd);
    return crater_error_sys(err, e, "listen on %s", path);
  }
  return fd;
}

/* Drops pid from the idle workers; whether it was one. */
static int
remove_idle(pid_t *idle, int *n, pid_t pid)
{
  for (int i = 0; i < *n; i++) {
    if (idle[i] == pid) {
      idle[i] = idle[--*n];
      return 1;
    }
  }
  return 0;
}

/* Reads what the workers wrote on the notify pipe (a burst of clients can
 * queue many): a worker's pid when it took a command, which drops it from
 * the idle ones; its pid | NOTE_IDLE when it came back after one (it
 * counted itself in pool->idle first); and its negated pid when its
 * command left work for the janitor.  Returns how many of the latter came. */
static int
drain_taken(int fd, pid_t *idle, int *nidle)
{
  pid_t took[64];
  ssize_t n;
  int notes = 0;
  while ((n = read(fd, took, sizeof took)) > 0) {
    for (ssize_t i = 0; i < n / (ssize_t) sizeof(pid_t); i++) {
      if (took[i] < 0)
        notes++;
      else if (took[i] & NOTE_IDLE) {
        if (*nidle < MAX_WORKERS)
          idle[(*nidle)++] = took[i] & ~NOTE_IDLE;
      } else
        remove_idle(idle, nidle, took[i]);
    }
  }
  return notes;
}

/* drain_taken, and work for the janitor when a worker noted some:
 * *dirty, since *since unless it already was. */
static void
drain_notes(int fd, pid_t *idle, int *nidle, bool *dirty, long long *since)
{
  if (drain_taken(fd, idle, nidle) > 0 && !*dirty) {
    *dirty = true;
    *since = crater__mono_ms();
  }
}

/* The janitor runs once the daemon has been idle this long, so that it
 * does not compete with a burst of commands (on a 2-CPU host removing each
 * container's snapshot data right after it cost ~0.3 ms a `run --rm`
 * back to back); at the latest this long after the first work for it. */
#define JANITOR_IDLE_MS 200
#define JANITOR_MAX_DELAY_MS 5000

/* How long the daemon waits for a worker to come back from its command
 * before it forks one to keep `workers - 1` idle. */
#define AHEAD_GRACE_MS 50

/* In a new worker, right after fork: a session of its own (no controlling
 * terminal: a command's terminal is its client's), default signals, and
 * death with the daemon while idle. */
static void
become_worker(pid_t daemon, const sigset_t *mask)
{
  setsid();
  for (int s = 1; s < NSIG; s++)
    signal(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, mask, NULL);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != daemon)
    _exit(0);
}

/* Forks the janitor: a worker that serves no command, named so (ps,
 * pgrep) that nobody takes it for one.  Returns 0 in it (which holds none
 * of the daemon's descriptors; lfd may be closed already: -1), its pid in
 * the daemon, or -1. */
static pid_t
fork_janitor(const int np[2], int sfd, int lfd, pid_t daemon, const sigset_t *mask)
{
  pid_t p = fork();
  if (p == 0) {
    close(np[0]);
    close(np[1]);
    close(sfd);
    if (lfd >= 0)
      close(lfd);
    if (lock_fd >= 0)
      close(lock_fd);
    lock_fd = -1;
    become_worker(daemon, mask);
    prctl(PR_SET_NAME, "crater-janitor");
  }
  return p;
}

int
crater__daemon_serve(int lfd, const char *path, int workers, crater_error_t *err)
{
  if (workers < 1)
    workers = 1;
  if (workers > MAX_WORKERS)
    workers = MAX_WORKERS;
  struct stat bound;
  if (stat(path, &bound) != 0)
    return crater_error_sys(err, errno, "stat %s", path);
  int np[2];
  if (pipe2(np, O_CLOEXEC | O_NONBLOCK) != 0)
    return crater_error_sys(err, errno, "pipe");
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, &old);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) {
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(np[0]);
    close(np[1]);
    return crater_error_sys(err, e, "signalfd");
  }
  pool = mmap(NULL, sizeof *pool, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (pool == MAP_FAILED) {
    int e = errno;
    pool = NULL;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(sfd);
    close(np[0]);
    close(np[1]);
    return crater_error_sys(err, e, "mmap");
  }
  atomic_init(&pool->idle, 0);
  atomic_init(&pool->generation, 0);
  pool->max_idle = workers;
  fflush(NULL); /* nothing buffered may be written twice */
  pid_t self = getpid(), idle[MAX_WORKERS], janitor = 0;
  daemon_pid = self;
  int nidle = 0, early = 0;
  /* workers kept ready ahead of demand: all of them at start and after
   * SIGHUP; then one fewer (`workers - 1`), so that one command after
   * another is served by workers coming back, and no new one is forked
   * (and warmed up: ~1.6 ms of CPU) for each.  One missing from those is
   * forked only once it has been missing for AHEAD_GRACE_MS: the worker
   * that served the last command is usually back by then.  A command that
   * finds none idle gets one forked at once (the listening socket is
   * polled meanwhile). */
  bool refill = true, demand = false;
  long long short_since = 0;
  /* work for a janitor: at start, what a daemon stopped or killed before
   * may have left */
  bool dirty = true;
  long long dirty_since = crater__mono_ms(), last_event = dirty_since;
  for (;;) {
    long long now = crater__mono_ms();
    if (dirty && janitor == 0 &&
        (now - last_event >= JANITOR_IDLE_MS || now - dirty_since >= JANITOR_MAX_DELAY_MS)) {
      pid_t p = fork_janitor(np, sfd, lfd, self, &old);
      if (p == 0)
        return 2;
      if (p > 0) {
        janitor = p;
        dirty = false;
      } else {
        crater_warn("daemon: fork the janitor: %s", strerror(errno));
        last_event = now; /* try again after another idle spell */
      }
    }
    int want = refill ? workers : workers - 1, ahead = want, idle_now = atomic_load(&pool->idle);
    if (idle_now >= want) {
      short_since = 0;
    } else if (!refill && !demand) {
      if (short_since == 0)
        short_since = now;
      if (now - short_since < AHEAD_GRACE_MS)
        ahead = idle_now; /* not yet */
    }
    if (demand && ahead < 1)
      ahead = 1;
    demand = false;
    while (atomic_load(&pool->idle) < ahead && nidle < MAX_WORKERS) {
      atomic_fetch_add(&pool->idle, 1);
      pid_t p = fork();
      if (p == 0) {
        close(np[0]);
        close(sfd);
        if (lock_fd >= 0)
          close(lock_fd); /* the daemon's alone: it goes with the daemon */
        lock_fd = -1;
        notify_fd = np[1];
        my_generation = atomic_load(&pool->generation);
        become_worker(self, &old);
        return 1;
      }
      if (p < 0) {
        atomic_fetch_sub(&pool->idle, 1);
        crater_warn("daemon: fork: %s", strerror(errno));
        break;
      }
      idle[nidle++] = p;
    }
    if (atomic_load(&pool->idle) >= workers)
      refill = false;
    /* a client waiting with no worker idle: one more (POLLIN on the
     * listening socket, polled only then) */
    struct pollfd pf[3] = { { .fd = np[0], .events = POLLIN },
                            { .fd = sfd, .events = POLLIN },
                            { .fd = lfd, .events = POLLIN } };
    nfds_t npf = atomic_load(&pool->idle) == 0 && nidle < MAX_WORKERS ? 3 : 2;
    int timeout = -1;
    if (atomic_load(&pool->idle) < want) {
      long long left = short_since > 0 ? AHEAD_GRACE_MS - (now - short_since) : 0;
      timeout = left > 0 ? (int) left : 1000;
    }
    if (dirty && janitor == 0) {
      long long due = JANITOR_IDLE_MS - (now - last_event);
      long long late = JANITOR_MAX_DELAY_MS - (now - dirty_since);
      long long wait = due < late ? due : late;
      wait = wait < 1 ? 1 : wait;
      if (timeout < 0 || wait < timeout)
        timeout = (int) wait;
    }
    int ready = poll(pf, npf, timeout);
    if (ready < 0 && errno != EINTR)
      break;
    if (ready > 0)
      last_event = crater__mono_ms();
    if (pf[0].revents & POLLIN)
      early = 0;
    if (npf == 3 && (pf[2].revents & POLLIN))
      demand = true; /* forked at the top of the next round */
    if (!(pf[1].revents & POLLIN)) {
      drain_notes(np[0], idle, &nidle, &dirty, &dirty_since);
      continue;
    }
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof si) != (ssize_t) sizeof si)
      continue;
    /* every worker that took a command said so before it could exit */
    drain_notes(np[0], idle, &nidle, &dirty, &dirty_since);
    if (si.ssi_signo == SIGCHLD) {
      int st;
      pid_t p;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        if (p == janitor) {
          janitor = 0;
          continue;
        }
        if (!remove_idle(idle, &nidle, p))
          continue; /* a worker that ended after a command */
        atomic_fetch_sub(&pool->idle, 1);
        crater_warn("daemon: worker %d ended while idle (status 0x%x)", (int) p, st);
        /* a worker that cannot start must not make a fork loop */
        if (++early > 3) {
          struct timespec ts = { 0, 200 * 1000 * 1000 };
          nanosleep(&ts, NULL);
        }
      }
    } else if (si.ssi_signo == SIGHUP) {
      /* busy workers of this generation end after their command */
      atomic_fetch_add(&pool->generation, 1);
      for (int i = 0; i < nidle; i++) {
        kill(idle[i], SIGKILL);
        atomic_fetch_sub(&pool->idle, 1);
      }
      nidle = 0; /* reaped above when they go; replaced now */
      refill = true;
    } else {
      break; /* SIGTERM, SIGINT */
    }
  }
  close(lfd);
  struct stat now;
  if (stat(path, &now) == 0 && now.st_ino == bound.st_ino && now.st_dev == bound.st_dev)
    unlink(path);
  /* an idle worker holds nothing but a read-only store connection and
   * its spare shim (which its end gives EOF: the shim removes itself):
   * KILL also ends one that was stopped, which TERM would leave us
   * waiting on */
  for (int i = 0; i < nidle; i++)
    kill(idle[i], SIGKILL);
  for (int i = 0; i < nidle; i++)
    waitpid(idle[i], NULL, 0);
  /* the janitor finishes; one more runs for work noted since */
  if (janitor > 0)
    waitpid(janitor, NULL, 0);
  drain_notes(np[0], idle, &nidle, &dirty, &dirty_since);
  if (dirty) {
    pid_t p = fork_janitor(np, sfd, -1, self, &old);
    if (p == 0)
      return 2;
    if (p > 0)
      waitpid(p, NULL, 0);
  }
  /* a stop signal that came again meanwhile (`kill -TERM -PGID PID` sends
   * two) is taken here: unblocked, it would end the daemon before its
   * caller's last words */
  struct signalfd_siginfo si;
  if (fcntl(sfd, F_SETFL, O_NONBLOCK) == 0)
    while (read(sfd, &si, sizeof si) == (ssize_t) sizeof si) {
    }
  close(sfd);
  close(np[0]);
  close(np[1]);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return 0;
}

static int
read_full(int fd, char *p, size_t n)
{
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t) r;
  }
  return 0;
}

static void
say(const char *line)
{
  (void) crater_cli_send_all(conn_fd, line, strlen(line));
}

/* "signal N\n" to the client before dying of N, so that it dies of N too */
static void
report_fatal(int sig)
{
  char line[24] = "signal ", *p = line + 7;
  char digits[4];
  int n = 0, v = sig;
  do
    digits[n++] = (char) ('0' + v % 10);
  while ((v /= 10) > 0 && n < 4);
  while (n > 0)
    *p++ = digits[--n];
  *p++ = '\n';
  if (conn_fd >= 0 && !finished)
    (void) send(conn_fd, line, (size_t) (p - line), MSG_NOSIGNAL | MSG_DONTWAIT);
  raise(sig); /* SA_RESETHAND | SA_NODEFER: the default action now */
}

static const int fatal_signals[] = { SIGHUP, SIGINT,  SIGQUIT, SIGILL,  SIGABRT, SIGFPE,  SIGSEGV,
                                     SIGBUS, SIGPIPE, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU };

/* A watcher's own state: a worker serves command after command, and the
 * watcher of the last one may still be reading its client's EOF when the
 * next has begun; it frees it when it ends. */
struct watch {
  int go;                     /* the read end of its go pipe */
  int fd;                     /* its own copy of the client's socket, -1 before go */
  volatile sig_atomic_t done; /* the exit code went: EOF is no death */
};
static struct watch *watch;
static int watch_go = -1; /* the go pipe's write end */

/* The watcher thread, one per command: the client's lines ("sig N" is
 * delivered to this process as the client got it); EOF means the client
 * died, and so does its command.  Started while the worker waits (a
 * thread's start took ~0.05 ms of the command): it begins once the
 * command is the worker's, told so on its go pipe. */

static void *
watch_client(void *arg)
{
  struct watch *w = arg;
  char go;
  if (read(w->go, &go, 1) == 1 && w->fd >= 0) {
    struct crater_cli_lines lines = { .have = 0 };
    char *line;
    int sig;
    while ((line = crater_cli_next_line(w->fd, &lines)) != NULL) {
      if (sscanf(line, "sig %d", &sig) == 1 && sig > 0 && sig < NSIG)
        kill(getpid(), sig);
    }
    if (!w->done)
      kill(getpid(), SIGKILL);
  }
  close(w->go);
  if (w->fd >= 0)
    close(w->fd);
  free(w);
  return NULL;
}

/* Points out[0..n-1] at the next n fields from p; returns what follows
 * them, or NULL when they run past end. */
static char *
take_fields(char *p, const char *end, long n, char **out)
{
  for (long i = 0; i < n; i++) {
    if (p >= end)
      return NULL;
    out[i] = p;
    p += strlen(p) + 1;
  }
  return p;
}

/* Splits the payload's fields; NULL when it is not what protocol.h says. */
static char **
parse_fields(char *p, size_t len, const char **ident, mode_t *mask, char ***envp)
{
  char *end = p + len, *f[3], *c[1];
  if (len == 0 || end[-1] != '\0' || (p = take_fields(p, end, 3, f)) == NULL)
    return NULL;
  *ident = f[0];
  *mask = (mode_t) strtoul(f[1], NULL, 8) & 0777;
  long argc = strtol(f[2], NULL, 10);
  if (argc < 1 || argc > (long) len)
    return NULL;
  char **argv = calloc((size_t) argc + 1, sizeof *argv), **env = NULL;
  if (argv == NULL || (p = take_fields(p, end, argc, argv)) == NULL ||
      (p = take_fields(p, end, 1, c)) == NULL)
    goto bad;
  long envc = strtol(c[0], NULL, 10);
  if (envc < 0 || envc > (long) len || (env = calloc((size_t) envc + 1, sizeof *env)) == NULL ||
      take_fields(p, end, envc, env) == NULL)
    goto bad;
  *envp = env;
  return argv;
bad:
  free(env);
  free(argv);
  return NULL;
}

/* Receives the request's head with its descriptors, then the payload. */
static int
receive(int fds[CRATER_CLI_NFDS], size_t *len, crater_error_t *err)
{
  char head[CRATER_CLI_MAGIC_LEN + sizeof(uint32_t)];
  union {
    char buf[CMSG_SPACE(sizeof(int) * CRATER_CLI_NFDS)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = { head, sizeof head };
  struct msghdr msg = {
    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf
  };
  ssize_t r;
  do
    r = recvmsg(conn_fd, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  int got = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int tmp[16];
      if (n > 16)
        n = 16;
      memcpy(tmp, CMSG_DATA(c), n * sizeof(int));
      for (size_t i = 0; i < n; i++) {
        if (got < CRATER_CLI_NFDS)
          fds[got++] = tmp[i];
        else
          close(tmp[i]);
      }
    }
  }
  if (r <= 0 || (msg.msg_flags & MSG_CTRUNC) || got != CRATER_CLI_NFDS)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "daemon: a request without its %d descriptors", CRATER_CLI_NFDS);
  if ((size_t) r < sizeof head && read_full(conn_fd, head + r, sizeof head - (size_t) r) != 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "daemon: a request cut short");
  uint32_t n;
  memcpy(&n, head + CRATER_CLI_MAGIC_LEN, sizeof n);
  if (memcmp(head, CRATER_CLI_MAGIC, CRATER_CLI_MAGIC_LEN) != 0 || n == 0 ||
      n > CRATER_CLI_MAX_PAYLOAD)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "daemon: not a crater request");
  payload = malloc(n);
  if (payload == NULL || read_full(conn_fd, payload, n) != 0)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "daemon: a request cut short");
  *len = n;
  return 0;
}

static int
same_binary(const char *ident)
{
  char mine[64];
  return crater_cli_ident("/proc/self/exe", mine, sizeof mine) == 0 && strcmp(mine, ident) == 0;
}

void
crater__daemon_note_cleanup(void)
{
  pid_t note = -getpid();
  if (notify_fd >= 0)
    (void) write(notify_fd, &note, sizeof note);
}

/* Starts watch_client, all signals blocked in it (they are the
 * command's); false when it could not be (the command runs unwatched). */
static bool
start_watcher(void)
{
  int gp[2];
  struct watch *w = malloc(sizeof *w);
  if (w == NULL || pipe2(gp, O_CLOEXEC) != 0) {
    free(w);
    return false;
  }
  w->go = gp[0];
  w->fd = -1;
  w->done = 0;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int te = pthread_create(&t, NULL, watch_client, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (te != 0) {
    crater_warn("daemon: watcher thread: %s", strerror(te));
    close(gp[0]);
    close(gp[1]);
    free(w);
    return false;
  }
  pthread_detach(t);
  watch = w;
  watch_go = gp[1];
  return true;
}

/* Lets the watcher go: on the command's client (dup'ed, -1: it ends at
 * once). */
static void
release_watcher(int fd)
{
  if (watch_go < 0)
    return;
  watch->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
  if (write(watch_go, "g", 1) != 1)
    crater_warn("daemon: start the watcher: %s", strerror(errno));
  close(watch_go);
  watch_go = -1;
}

/* What a worker is between commands, kept when it takes its first one
 * and put back by crater__daemon_rejoin: the command takes over its
 * environment, directory, umask, signal dispositions and mask. */
static struct {
  bool kept;
  char **env;
  int cwd;
  mode_t umask;
  sigset_t mask;
  struct sigaction act[NSIG];
  int fds; /* descriptors open then */
} between;

static int
count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* readdir's own */
}

static void
keep_between(void)
{
  if (between.kept)
    return;
  size_t n = 0;
  for (char **e = environ; *e != NULL; e++)
    n++;
  between.env = xcalloc(n + 1, sizeof *between.env);
  for (size_t i = 0; i < n; i++)
    between.env[i] = xstrdup(environ[i]);
  between.cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  between.umask = umask(022);
  umask(between.umask);
  sigprocmask(SIG_SETMASK, NULL, &between.mask);
  for (int s = 1; s < NSIG; s++)
    sigaction(s, NULL, &between.act[s]);
  between.fds = count_fds();
  between.kept = true;
}

char **
crater__daemon_accept(int lfd, crater_error_t *err)
{
  keep_between();
  bool watcher = start_watcher();
  int c;
  do
    c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  while (c < 0 && errno == EINTR);
  if (c < 0) {
    release_watcher(-1);
    return crater_error_sys(err, errno, "daemon: accept"), NULL;
  }
  /* taken: no longer idle (the daemon forks another when none is left) */
  if (pool != NULL)
    atomic_fetch_sub(&pool->idle, 1);
  pid_t me = getpid();
  if (notify_fd >= 0)
    (void) write(notify_fd, &me, sizeof me); /* kept for crater__daemon_note_cleanup */
  prctl(PR_SET_PDEATHSIG, 0);                /* a command outlives a daemon stopped meanwhile */
  conn_fd = c;

  struct ucred cr;
  socklen_t cl = sizeof cr;
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != 0) {
    say("embedded\n"); /* the socket is root's: run it yourself */
    return crater_error_make(err, CRATER_ERR_PERMISSION_DENIED, 0,
                             "daemon: a client that is not root (uid %d)", (int) cr.uid),
           NULL;
  }
  int fds[CRATER_CLI_NFDS] = { -1, -1, -1, -1 };
  size_t len = 0;
  const char *ident = NULL;
  mode_t mask = 022;
  char **argv = NULL, **env = NULL;
  if (receive(fds, &len, err) == 0) {
    argv = parse_fields(payload, len, &ident, &mask, &env);
    if (argv == NULL)
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "daemon: a malformed request");
    else if (!same_binary(ident)) {
      say("embedded\n");
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                        "daemon: a client of another crater build");
      free(argv);
      free(env);
      argv = NULL;
    }
  }
  if (argv == NULL) {
    for (int i = 0; i < CRATER_CLI_NFDS; i++)
      if (fds[i] >= 0)
        close(fds[i]);
    free(payload);
    payload = NULL;
    release_watcher(-1);
    return NULL;
  }

  /* become the client's command */
  for (int i = 0; i < 3; i++) {
    dup2(fds[i], i);
    close(fds[i]);
  }
  if (fchdir(fds[3]) != 0)
    crater_warn("daemon: fchdir: %s", strerror(errno));
  close(fds[3]);
  umask(mask);
  clearenv();
  for (char **e = env; *e != NULL; e++)
    putenv(*e); /* into payload, which lives as long as we do */
  free(env);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = report_fatal;
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
    sigaction(fatal_signals[i], &sa, NULL);

  say("run\n"); /* from here on, the command is ours */
  if (watcher)
    release_watcher(c);
  return argv;
}

void
crater__daemon_finish(int code)
{
  if (conn_fd < 0)
    return;
  char line[32];
  snprintf(line, sizeof line, "exit %d\n", code);
  fflush(NULL);
  /* the client's stdio goes now: a pipe it writes to ends with it */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int i = 0; i < 3 && null >= 0; i++)
    dup2(null, i);
  if (null > 2)
    close(null);
  finished = 1;
  if (watch != NULL)
    watch->done = 1; /* the client's EOF from now on is no death */
  watch = NULL;
  say(line);
  close(conn_fd);
  conn_fd = -1;
}

bool
crater__daemon_rejoin(void)
{
  if (!between.kept || conn_fd >= 0 || pool == NULL)
    return false;
  /* the idle worker's process state back: what the command took over
   * (the dispositions kept before the first command: report_fatal's too) */
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      sigaction(s, &between.act[s], NULL);
  alarm(0);
  sigprocmask(SIG_SETMASK, &between.mask, NULL);
  clearenv();
  for (char **e = between.env; *e != NULL; e++)
    putenv(*e);
  free(payload); /* the command's environment pointed into it */
  payload = NULL;
  umask(between.umask);
  if (between.cwd < 0 || fchdir(between.cwd) != 0)
    return false;
  /* stdio is /dev/null since crater__daemon_finish; what the command's
   * stdin had buffered, or its EOF, is not the next one's */
  __fpurge(stdin);
  clearerr(stdin);
  clearerr(stdout);
  clearerr(stderr);
  finished = 0;
  /* ... unless something of the command could outlive it here: a child
   * still running, a controlling terminal, descriptors left open */
  pid_t reaped;
  while ((reaped = waitpid(-1, NULL, WNOHANG)) > 0) {
  }
  if (reaped == 0)
    return false;
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty >= 0) {
    close(tty);
    return false;
  }
  int fds = count_fds(); /* (with the mount namespaces it still holds) */
  if (fds < 0 || fds > between.fds + 4)
    return false;
  /* a generation that SIGHUP ended, or a daemon that is gone: no */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != daemon_pid || atomic_load(&pool->generation) != my_generation)
    return false;
  int n = atomic_load(&pool->idle);
  do {
    if (n >= pool->max_idle)
      return false; /* enough are idle */
  } while (!atomic_compare_exchange_weak(&pool->idle, &n, n + 1));
  pid_t note = getpid() | NOTE_IDLE;
  if (notify_fd >= 0)
    (void) write(notify_fd, &note, sizeof note);
  return true;
}
