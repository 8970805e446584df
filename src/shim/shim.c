/*
 * crater-shim: the per-task supervisor.
 *
 * One shim runs per task, detached from the crater process that started it
 * (with --daemonize the shim calls setsid and forks, the first process
 * exiting at once: the shim is in a session and process group of its own,
 * re-parented to init or the nearest sub-reaper).  The shim:
 *   - makes itself a child sub-reaper, so the container's init (forked by the
 *     OCI runtime, which then exits) and every exec'd process are reparented
 *     to it and it can collect their exit status;
 *   - runs `<runtime> create` for the task, then `start` when asked (or, with
 *     --start, `<runtime> run --detach`: one runtime process instead of two);
 *   - owns the container's stdio: pipes (or a pty master received over a
 *     console socket) pumped to FIFOs in the task dir (for attach), to a log
 *     file (json-lines or raw), or /dev/null;
 *   - writes the exit status and time of every process atomically (tmp +
 *     rename) into the task dir, so a new client finds them even after the
 *     shim is gone;
 *   - serves a line protocol on <taskdir>/shim.sock (see docs/design/shim.md).
 *
 * The shim deliberately uses only libc (no libcrater, no jansson) and
 * allocates lazily, so an idle shim stays well under 1 MiB of RSS.  It never
 * leaks its descriptors into the container: everything is O_CLOEXEC and the
 * runtime is exec'd after close_range() of everything but stdio.
 *
 * Usage:
 *   crater-shim --dir TASKDIR --id ID --runtime PATH [--runtime-root DIR]
 *               [--stdio fifo|attach|log|null] [--log FILE] [--log-format json|raw]
 *               [--tty] [--start] [--ready-fd N] [--daemonize] [--seal-runtime]
 *               [--delete-on-exit] [--wait-go] [--prestart] [--dir-fd N]
 * --stdio fifo: the FIFOs in TASKDIR carry stdio, and a container blocks
 * when nobody reads its output (a foreground client is attached from the
 * start).  --stdio attach (a detached task): stdin as with fifo, but the
 * output goes to the FIFOs only while a client is attached (it opens their
 * read ends, then sends "attach"); otherwise it is dropped.
 * TASKDIR is also the OCI bundle (config.json + rootfs).  The result of
 * `create` (or of `run --detach` with --start: "ok PID" or "err MSG") is written to the ready fd,
 * which is then closed; the client reads it to learn that the task exists.
 * --seal-runtime: the runtime is crater-runtime, which runs only from a
 * sealed copy of itself (CVE-2019-5736); the shim makes that copy and
 * execs it, so the runtime does not have to exec a second time.
 * --delete-on-exit: `<runtime> delete` runs as soon as the init exits (a
 * transient task whose init has its own pid namespace); the client's
 * `delete` request then only waits for it.
 * --wait-go: the ready fd is a socket; after its own set-up the shim waits
 * there for "go" (the client is still writing the bundle), and exits
 * leaving nothing behind on EOF.  The line may name more: "go
 * delete-on-exit" (what the client decided while the shim started), "go
 * mntns" (the report carries the init's mount namespace: init_mntns).
 * --prestart (with --wait-go and --start, no --tty; crater-runtime only):
 * the runtime is started before "go" too, with its stdio in place, and
 * waits for it on its --go-fd, so its exec and start-up also overlap the
 * client writing the bundle.  The FIFOs of --stdio fifo must exist when
 * the shim starts.
 * --dir-fd N: TASKDIR is also open as fd N (the shim fchdirs there), so
 * the client may rename it while the shim starts; --dir names it in
 * messages only.
 * --id - (with --wait-go): the id comes on the go line ("go id=ID ..."):
 * a spare shim, started before anyone asked for a task (a `crater daemon`
 * worker keeps one ready).  With --prestart its runtime is started with
 * "-" for the id too and gets the real one with its go byte.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/sealed_copy.h"
#include "common/signals_default.h"

#define MAX_PROCS 64
#define MAX_CONNS 64
#define MAX_PUMPS (MAX_PROCS * 3)
#define BUF_SIZE 32768
#define LINE_MAX_REQ 4096

enum { ST_CREATED, ST_RUNNING, ST_PAUSED, ST_STOPPED };
static const char *const status_names[] = { "created", "running", "paused", "stopped" };

/* A one-way byte pump src -> dst with one buffer of backpressure. */
struct pump {
  int used;
  int src, dst; /* dst may be shared (log file): not owned if shared */
  int own_dst;
  int json;           /* json-lines log records */
  const char *stream; /* "stdout"/"stderr" for json */
  char *buf;
  size_t off, len;
  struct proc *p;
  int closing; /* stdin after close_stdin: drain the FIFO, then close */
  /* --stdio attach: the output FIFO this pump writes to while a client is
   * attached ("attach" request); without one, output is dropped, so a
   * detached container never blocks on it */
  char lazy[96];
};

/* The init process ("" id) or an exec'd process. */
struct proc {
  int used;
  char id[80];
  pid_t pid;
  int exited;
  int status;
  int64_t exited_at;
  int tty;
  int master; /* pty master, -1 without tty */
  int in_w;   /* write end of the process's stdin (pipe or master) */
  struct pump *stdin_pump;
};

struct conn {
  int fd;
  char *buf; /* LINE_MAX_REQ bytes, allocated on accept */
  size_t len;
  struct proc *waiting; /* blocked in "wait" on this process */
};

static struct proc procs[MAX_PROCS];
static struct pump pumps[MAX_PUMPS];
static struct conn conns[MAX_CONNS];
static int listen_fd = -1, sig_fd = -1;
static const char *task_id, *runtime, *runtime_root;
static char go_id[80]; /* --id -: the id the go line gave */
static int seal_runtime;
static int started, paused, deleting;

/* ---- small helpers ------------------------------------------------------ */

/* Formats one newline-terminated line into b (truncated to fit, never
 * carrying the NUL); returns its length, or -1 when formatting failed. */
static int
vformat_line(char *b, size_t size, const char *fmt, va_list ap)
{
  int n = vsnprintf(b, size - 1, fmt, ap);
  if (n < 0)
    return -1;
  if ((size_t) n > size - 2)
    n = (int) (size - 2);
  b[n++] = '\n';
  return n;
}

static void
logmsg(const char *fmt, ...)
{
  char b[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vformat_line(b, sizeof b, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if (write(2, b, n) < 0) {
    /* nothing to do: stderr is the shim log */
  }
}

static int64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
write_all(int fd, const void *buf, size_t n)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t) w;
  }
  return 0;
}

static void
set_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Writes path atomically: tmp + rename.  Readers see the old file or the
 * whole new one, and the data survives the shim (or crater) crashing,
 * which is what the task dir must survive: it lives in /run (tmpfs), gone
 * at power loss together with the containers it describes, so an fsync
 * buys nothing but 2-10 ms per write on a disk-backed state dir. */
static int
write_file_durable(const char *path, const char *data)
{
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  if (write_all(fd, data, strlen(data)) < 0) {
    close(fd);
    unlink(tmp);
    return -1;
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int
read_small(const char *path, char *buf, size_t n)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t r = read(fd, buf, n - 1);
  close(fd);
  if (r < 0)
    return -1;
  buf[r] = 0;
  return (int) r;
}

/* Last error message of the runtime: runtime.err (its stderr), else the
 * last "msg" of its json log. */
static void
runtime_error(char *out, size_t n)
{
  char b[8192];
  out[0] = 0;
  int r = read_small("runtime.err", b, sizeof b);
  if (r > 0) {
    while (r > 0 && (b[r - 1] == '\n' || b[r - 1] == ' '))
      b[--r] = 0;
    char *nl = strrchr(b, '\n');
    const char *src = nl ? nl + 1 : b;
    size_t l = strlen(src);
    if (l >= n)
      l = n - 1;
    memcpy(out, src, l);
    out[l] = 0;
  }
  if (out[0])
    goto clean;
  int fd = open("runtime.log", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    off_t sz = lseek(fd, 0, SEEK_END);
    off_t from = sz > (off_t) sizeof b - 1 ? sz - (off_t) sizeof b + 1 : 0;
    ssize_t got = pread(fd, b, sizeof b - 1, from);
    close(fd);
    if (got > 0) {
      b[got] = 0;
      char *m = NULL, *s = b;
      while ((s = strstr(s, "\"msg\":\"")) != NULL) {
        m = s + 7;
        s = m;
      }
      if (m) {
        size_t k = 0;
        for (; *m && *m != '"' && k + 1 < n; m++) {
          if (*m == '\\' && m[1])
            m++;
          out[k++] = *m;
        }
        out[k] = 0;
      }
    }
  }
clean:
  if (!out[0])
    snprintf(out, n, "runtime failed (no message)");
  for (char *c = out; *c; c++)
    if (*c == '\n' || *c == '\r')
      *c = ' ';
}

/* ---- running the OCI runtime --------------------------------------------- */

extern char **environ;

/* In the runtime's child: execs a sealed memfd copy of the runtime (what
 * crater-runtime would otherwise make and re-exec itself; see
 * src/runtime/sealed.c, which recognises the seals).  Returns only on
 * failure, and then the runtime is exec'd from its path and seals itself. */
static void
exec_sealed(const char **argv)
{
  int src = open(runtime, O_RDONLY | O_CLOEXEC);
  if (src < 0)
    return;
  int mfd = crater__sealed_copy(src, "crater-runtime", NULL);
  close(src);
  if (mfd < 0)
    return;
  fexecve(mfd, (char *const *) argv, environ);
  close(mfd);
}

/* Starts `<runtime> [--root R] --log runtime.log --log-format json ARGS...`
 * with the given stdio (-1 = /dev/null; stderr -1 = runtime.err).  With
 * go_fd >= 0 (crater-runtime only) the runtime gets it as fd 3 and
 * `--go-fd 3`: it starts, then waits there for a byte before it reads the
 * bundle.  Returns its pid, -1 if it could not be forked. */
static pid_t
spawn_runtime(const char *const *args, int in, int out, int errfd, int go_fd)
{
  const char *argv[40];
  int k = 0;
  argv[k++] = runtime;
  if (runtime_root && runtime_root[0]) {
    argv[k++] = "--root";
    argv[k++] = runtime_root;
  }
  argv[k++] = "--log";
  argv[k++] = "runtime.log";
  argv[k++] = "--log-format";
  argv[k++] = "json";
  if (go_fd >= 0) {
    argv[k++] = "--go-fd";
    argv[k++] = "3";
  }
  for (int i = 0; args[i] && k < 39; i++)
    argv[k++] = args[i];
  argv[k] = NULL;

  int errf = open("runtime.err", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  /* A runtime started before "go" runs while the client is still busy on
   * another CPU: a new process is placed on the least loaded CPU at fork,
   * and with two busy that was often the client's, where the runtime's
   * exec then took 1.5 ms instead of 0.3.  Forked pinned to the CPU this
   * shim runs on (which it leaves idle, waiting), it starts there; both
   * get their CPUs back at once. */
  cpu_set_t cpus, here;
  int pin = go_fd >= 0 && sched_getaffinity(0, sizeof cpus, &cpus) == 0;
  if (pin) {
    CPU_ZERO(&here);
    CPU_SET(sched_getcpu(), &here);
    pin = sched_setaffinity(0, sizeof here, &here) == 0;
  }
  pid_t pid = fork();
  if (pin)
    sched_setaffinity(0, sizeof cpus, &cpus);
  if (pid == 0) {
    int nul = open("/dev/null", O_RDWR);
    int fds[4] = { in >= 0 ? in : nul, out >= 0 ? out : nul,
                   errfd >= 0 ? errfd : (errf >= 0 ? errf : nul), go_fd };
    /* dup to high numbers first so dup2 into 0..3 never clobbers a source */
    int hi[4];
    for (int i = 0; i < 4; i++)
      hi[i] = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD, 10) : -1;
    for (int i = 0; i < 4; i++)
      if (hi[i] >= 0)
        dup2(hi[i], i);
    syscall(SYS_close_range, go_fd >= 0 ? 4 : 3, ~0U, 0);
    /* the runtime, and through it the container, gets none of the shim's
     * ignored signals (PIPE, HUP, INT) */
    crater__signals_default();
    if (seal_runtime && (strcmp(args[0], "create") == 0 || strcmp(args[0], "run") == 0 ||
                         strcmp(args[0], "exec") == 0))
      exec_sealed(argv);
    execv(runtime, (char *const *) argv);
    _exit(127);
  }
  if (errf >= 0)
    close(errf);
  return pid;
}

/* The exit code of a wait status: the code, or 128+sig when killed. */
static int
exit_code(int st)
{
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Waits for the runtime process pid.  Other children are left for the
 * main loop to reap.  Returns its exit code, -1 if it could not be
 * waited for. */
static int
wait_runtime(pid_t pid)
{
  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR)
      return -1;
  }
  return exit_code(st);
}

/* Runs the runtime (spawn_runtime) and waits for it.  Returns the exit
 * code, -1 if it could not run. */
static int
run_runtime(const char *const *args, int in, int out, int errfd)
{
  pid_t pid = spawn_runtime(args, in, out, errfd, -1);
  if (pid < 0)
    return -1;
  return wait_runtime(pid);
}

/* --delete-on-exit: `<runtime> delete` started as soon as the init exits,
 * while the client is told of the exit, instead of when the client asks.
 * For a transient task (`crater run --rm`) whose init has its own pid
 * namespace: nothing of the container outlives its init. */
static int delete_on_exit;
static pid_t early_delete = -1;      /* running early delete, or -1 */
static int early_delete_status = -1; /* its exit code once reaped, -1 before */

/* The init's mount namespace, held from its creation until its exit has
 * been reported.  When the init of a container with a mount namespace of
 * its own exits, the kernel tears that namespace down in the exit itself:
 * its mounts, the rootfs overlay's superblock, each an expedited RCU grace
 * period (~0.25 ms each here), before the exit is reported to its parent.
 * Held here, the teardown comes when the last holder closes it: this shim
 * once it has answered the "wait" requests, or (with "go mntns", a copy
 * sent with the report over the ready socket) the client, once it has
 * answered its own (a `crater daemon` worker: after its command's exit
 * code has reached the front end).  Nothing of the namespace is reachable
 * meanwhile: its only process has exited. */
static int init_mntns = -1;
static int send_mntns; /* "go mntns": the report carries a copy */

static int
open_mntns(pid_t pid)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int) pid);
  return open(path, O_RDONLY | O_CLOEXEC); /* -1 when the init is gone already */
}

/* The early delete of a stopped crater-runtime container done here, without
 * starting the runtime (a process start, ~1 ms of a `crater run --rm`):
 * crater-runtime lists the container's cgroup dirs in <root>/<id>/cleanup
 * when its `delete` would do nothing else (no poststop hook).  Removes the
 * cgroups (rmdir: refused while a process or a sub-cgroup is left), then the
 * state dir's files, state.json last, and the dir.  Anything unexpected
 * (no such file, another format, a subdirectory, a refused rmdir) returns
 * -1 with the state still there, and `<runtime> delete` does it all. */
static int
delete_inline(void)
{
  char dir[PATH_MAX], path[PATH_MAX + 16], list[4096];
  if (!runtime_root || !runtime_root[0] ||
      snprintf(dir, sizeof dir, "%s/%s", runtime_root, task_id) >= (int) sizeof dir)
    return -1;
  snprintf(path, sizeof path, "%s/cleanup", dir);
  int n = read_small(path, list, sizeof list);
  char *nl = n > 0 && n < (int) sizeof list - 1 ? strchr(list, '\n') : NULL;
  if (nl == NULL)
    return -1;
  *nl = '\0';
  if (strcmp(list, "crater-runtime cleanup 1") != 0)
    return -1;
  DIR *d = opendir(dir);
  if (d == NULL)
    return -1;
  int ok = 1;
  struct dirent *e;
  while (ok && (e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && e->d_type != DT_REG &&
        e->d_type != DT_FIFO)
      ok = 0;
  char *line = nl + 1;
  for (; ok && (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
    *nl = '\0';
    if (line[0] != '/' || (rmdir(line) < 0 && errno != ENOENT))
      ok = 0;
  }
  if (ok && *line != '\0')
    ok = 0; /* a last line without its newline: not the whole list */
  rewinddir(d);
  while (ok && (e = readdir(d)) != NULL)
    if (e->d_type != DT_DIR && strcmp(e->d_name, "state.json") != 0 &&
        unlinkat(dirfd(d), e->d_name, 0) < 0)
      ok = 0;
  if (ok && unlinkat(dirfd(d), "state.json", 0) < 0 && errno != ENOENT)
    ok = 0;
  closedir(d);
  return ok && rmdir(dir) == 0 ? 0 : -1;
}

/* ---- pumps --------------------------------------------------------------- */

static void file_name(char *out, size_t n, const struct proc *p, const char *what);

static struct pump *
pump_add(int src, int dst, int own_dst, int json, const char *stream, struct proc *p)
{
  for (int i = 0; i < MAX_PUMPS; i++) {
    if (!pumps[i].used) {
      struct pump *u = &pumps[i];
      memset(u, 0, sizeof *u);
      u->used = 1;
      u->src = src;
      u->dst = dst;
      u->own_dst = own_dst;
      u->json = json;
      u->stream = stream;
      u->p = p;
      set_nonblock(src);
      return u;
    }
  }
  return NULL;
}

static void
pump_close(struct pump *u)
{
  if (!u->used)
    return;
  if (u->src >= 0)
    close(u->src);
  if (u->own_dst && u->dst >= 0)
    close(u->dst);
  free(u->buf);
  if (u->p && u->p->stdin_pump == u)
    u->p->stdin_pump = NULL;
  memset(u, 0, sizeof *u);
}

/* Makes u write to the FIFO `path` only while a client is attached. */
static void
pump_lazy(struct pump *u, const char *path)
{
  if (u) {
    snprintf(u->lazy, sizeof u->lazy, "%s", path);
    u->own_dst = 1;
  }
}

/* "attach": opens the output FIFOs of p that a client now reads (it opened
 * its ends first).  Returns how many are connected. */
static int
pump_attach(const struct proc *p)
{
  char out_path[96], err_path[96];
  file_name(out_path, sizeof out_path, p, "stdout");
  file_name(err_path, sizeof err_path, p, "stderr");
  int n = 0;
  for (int i = 0; i < MAX_PUMPS; i++) {
    struct pump *u = &pumps[i];
    if (!u->used || !u->lazy[0] ||
        (strcmp(u->lazy, out_path) != 0 && strcmp(u->lazy, err_path) != 0))
      continue;
    if (u->dst < 0)
      u->dst = open(u->lazy, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    n += u->dst >= 0;
  }
  return n;
}

/* Closes p's stdin: EOF for the process (^D on a pty, which has no
 * half-close). */
static void
stdin_finish(struct proc *p)
{
  if (p->stdin_pump)
    pump_close(p->stdin_pump);
  if (p->master >= 0) {
    char eot = 4;
    if (write(p->master, &eot, 1) < 0) {
      /* ignored: the process may be gone */
    }
  } else if (p->in_w >= 0) {
    close(p->in_w);
    p->in_w = -1;
  }
}

/* A stdin pump after close_stdin: what the client wrote before it asked is
 * still in the FIFO (and maybe the buffer), and is delivered first; once
 * the FIFO is empty the process's stdin is closed.  Never blocks: a
 * process not reading its stdin leaves the rest to the poll loop.  Returns
 * 1 once stdin is closed. */
static int
stdin_drain(struct pump *u)
{
  for (;;) {
    if (u->len > 0) {
      ssize_t w = write(u->dst, u->buf + u->off, u->len);
      if (w < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
      if (w <= 0)
        break; /* the process closed its stdin */
      u->off += (size_t) w;
      u->len -= (size_t) w;
      continue;
    }
    if (!u->buf && !(u->buf = malloc(BUF_SIZE)))
      break;
    ssize_t r = read(u->src, u->buf, BUF_SIZE);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break; /* empty: the shim holds a write end, so no EOF, EAGAIN */
    u->off = 0;
    u->len = (size_t) r;
  }
  stdin_finish(u->p);
  return 1;
}

/* Appends one json-lines record {"time","stream","log"} for data[0..n). */
static void
json_record(int fd, const char *stream, const char *data, size_t n)
{
  char head[128], ts[64];
  struct timespec t;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &t);
  gmtime_r(&t.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  int hn = snprintf(head, sizeof head, "{\"time\":\"%s.%09ldZ\",\"stream\":\"%s\",\"log\":\"", ts,
                    t.tv_nsec, stream);
  char *out = malloc(hn + n * 6 + 8);
  if (!out)
    return;
  memcpy(out, head, hn);
  size_t k = hn;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char) data[i];
    if (c == '"' || c == '\\') {
      out[k++] = '\\';
      out[k++] = c;
    } else if (c == '\n') {
      out[k++] = '\\';
      out[k++] = 'n';
    } else if (c == '\r') {
      out[k++] = '\\';
      out[k++] = 'r';
    } else if (c == '\t') {
      out[k++] = '\\';
      out[k++] = 't';
    } else if (c < 0x20) {
      k += sprintf(out + k, "\\u%04x", c);
    } else {
      out[k++] = c;
    }
  }
  memcpy(out + k, "\"}\n", 3);
  k += 3;
  write_all(fd, out, k);
  free(out);
}

static void
json_lines(int fd, const char *stream, const char *data, size_t n)
{
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (data[i] == '\n') {
      json_record(fd, stream, data + start, i + 1 - start);
      start = i + 1;
    }
  }
  if (start < n)
    json_record(fd, stream, data + start, n - start);
}

/* Moves what it can; returns -1 when the pump is finished (EOF/error). */
static int
pump_run(struct pump *u, int revents_src, int revents_dst)
{
  if (u->len == 0 && (revents_src & (POLLIN | POLLHUP | POLLERR))) {
    if (!u->buf && !(u->buf = malloc(BUF_SIZE)))
      return 0;
    ssize_t r = read(u->src, u->buf, BUF_SIZE);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
      return -1; /* EOF, or EIO from a pty master whose slave is gone */
    if (r > 0) {
      if (u->dst < 0) {
        return 0; /* discard */
      }
      if (u->json) {
        json_lines(u->dst, u->stream, u->buf, (size_t) r);
        return 0;
      }
      u->off = 0;
      u->len = (size_t) r;
      revents_dst = POLLOUT;
    }
  }
  if (u->len > 0 && (revents_dst & (POLLOUT | POLLERR | POLLHUP))) {
    ssize_t w = write(u->dst, u->buf + u->off, u->len);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      u->len = 0;       /* reader gone for good: drop */
      if (u->lazy[0]) { /* ... until a client attaches again */
        close(u->dst);
        u->dst = -1;
      }
    } else if (w > 0) {
      u->off += (size_t) w;
      u->len -= (size_t) w;
    }
  }
  return 0;
}

/* ---- processes --------------------------------------------------------- */

static struct proc *
proc_find(const char *id)
{
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].used && strcmp(procs[i].id, id) == 0)
      return &procs[i];
  return NULL;
}

static struct proc *
proc_new(const char *id)
{
  for (int i = 0; i < MAX_PROCS; i++) {
    if (!procs[i].used) {
      struct proc *p = &procs[i];
      memset(p, 0, sizeof *p);
      p->used = 1;
      snprintf(p->id, sizeof p->id, "%s", id);
      p->master = -1;
      p->in_w = -1;
      return p;
    }
  }
  return NULL;
}

static void
file_name(char *out, size_t n, const struct proc *p, const char *what)
{
  if (p->id[0])
    snprintf(out, n, "exec-%s.%s", p->id, what);
  else
    snprintf(out, n, "%s", what);
}

static void reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(int fd, const char *fmt, ...)
{
  char b[LINE_MAX_REQ];
  va_list ap;
  va_start(ap, fmt);
  int n = vformat_line(b, sizeof b, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  /* replies are tiny; a client that does not read them only loses them */
  if (send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
    /* ignored */
  }
}

static void
proc_exited(struct proc *p, int st)
{
  p->exited = 1;
  p->status = exit_code(st);
  p->exited_at = now_ns();
  char path[256], data[128];
  file_name(path, sizeof path, p, "exit");
  snprintf(data, sizeof data, "%d %lld\n", p->status, (long long) p->exited_at);
  if (write_file_durable(path, data) < 0)
    logmsg("crater-shim: write %s: %s", path, strerror(errno));
  if (p->stdin_pump)
    pump_close(p->stdin_pump);
  if (p->in_w >= 0 && p->master < 0) {
    close(p->in_w);
    p->in_w = -1;
  }
  for (int i = 0; i < MAX_CONNS; i++) {
    if (conns[i].fd >= 0 && conns[i].waiting == p) {
      reply(conns[i].fd, "ok %d %lld", p->status, (long long) p->exited_at);
      conns[i].waiting = NULL;
    }
  }
  if (delete_on_exit && !p->id[0] && early_delete < 0 && early_delete_status < 0) {
    const char *a[] = { "delete", "--force", task_id, NULL };
    if (delete_inline() == 0)
      early_delete_status = 0;
    else if ((early_delete = spawn_runtime(a, -1, -1, -1, -1)) < 0)
      early_delete_status = -2; /* could not start: the delete request runs it */
  }
  if (!p->id[0] && init_mntns >= 0) {
    close(init_mntns); /* the teardown, when ours was the last reference */
    init_mntns = -1;
  }
}

static void
reap(void)
{
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0)
      return;
    if (pid == early_delete) {
      early_delete = -1;
      early_delete_status = exit_code(st);
      continue;
    }
    for (int i = 0; i < MAX_PROCS; i++)
      if (procs[i].used && !procs[i].exited && procs[i].pid == pid)
        proc_exited(&procs[i], st);
  }
}

static int
read_pid(const char *path)
{
  char b[32];
  if (read_small(path, b, sizeof b) <= 0)
    return -1;
  return atoi(b);
}

/* Receives the pty master sent by the runtime over the console socket. */
static int
recv_master(int lfd)
{
  struct pollfd pf = { .fd = lfd, .events = POLLIN };
  if (poll(&pf, 1, 5000) <= 0)
    return -1;
  int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return -1;
  char data[256];
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = { data, sizeof data };
  struct msghdr m = {
    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf
  };
  int fd = -1;
  if (recvmsg(c, &m, MSG_CMSG_CLOEXEC) >= 0) {
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (cm && cm->cmsg_type == SCM_RIGHTS)
      memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  }
  close(c);
  return fd;
}

static int
console_listen(void)
{
  unlink("console.sock");
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  /* bound relative to our cwd (the task dir); the runtime is given the
   * absolute path when it fits in sun_path, else this relative one (runc
   * chdirs into the bundle, which is the same dir) */
  memcpy(a.sun_path, "console.sock", sizeof "console.sock");
  if (s < 0 || bind(s, (struct sockaddr *) &a, sizeof a) < 0 || listen(s, 1) < 0) {
    if (s >= 0)
      close(s);
    return -1;
  }
  return s;
}

static int
open_fifo(const char *path, int flags)
{
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISFIFO(st.st_mode))
    return -1;
  return open(path, flags | O_NONBLOCK | O_CLOEXEC);
}

/* A container id as crater takes one: [A-Za-z0-9][A-Za-z0-9_.-]*, at most
 * 76 characters (containers.valid_id). */
static int
valid_id(const char *id)
{
  size_t n = strlen(id);
  if (n == 0 || n > 76 || !isalnum((unsigned char) id[0]))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char) id[i]) && !strchr("_.-", id[i]))
      return 0;
  return 1;
}

/* --wait-go: reads the client's line from the ready socket: "go", then
 * words for what the client decided while the shim was starting:
 * "delete-on-exit", "mntns" (send_mntns), and "id=ID" for a spare shim
 * (--id -), which needs one.  True for go, false on anything else or EOF
 * (the client gave up). */
static int
go_received(int fd)
{
  char b[160];
  size_t n = 0;
  for (;;) {
    if (n == sizeof b - 1)
      return 0;
    ssize_t k = read(fd, b + n, 1);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return 0;
    if (b[n] == '\n')
      break;
    n++;
  }
  b[n] = '\0';
  if (strncmp(b, "go", 2) != 0 || (b[2] != '\0' && b[2] != ' '))
    return 0;
  char *save = NULL;
  for (char *w = strtok_r(b + 2, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
    if (strcmp(w, "delete-on-exit") == 0) {
      delete_on_exit = 1;
    } else if (strcmp(w, "mntns") == 0) {
      send_mntns = 1;
    } else if (strncmp(w, "id=", 3) == 0 && strcmp(task_id, "-") == 0 && valid_id(w + 3)) {
      snprintf(go_id, sizeof go_id, "%s", w + 3);
      task_id = go_id;
    } else {
      return 0; /* a word we do not know: refuse rather than guess */
    }
  }
  return strcmp(task_id, "-") != 0; /* a spare shim must be told its id */
}

/* run_runtime for crater-runtime started before the client's "go"
 * (--prestart): the runtime execs and starts while the client is still
 * writing the bundle, and waits on a pipe (its --go-fd) that gets a byte
 * once "go" arrives on gate.  Returns the exit code, -1 if it could not
 * run, -2 if the client gave up (the runtime then exits having touched
 * nothing). */
static int
run_runtime_gated(const char *const *args, int in, int out, int errfd, int gate)
{
  int gp[2];
  if (pipe2(gp, O_CLOEXEC) < 0)
    return -1;
  pid_t pid = spawn_runtime(args, in, out, errfd, gp[0]);
  close(gp[0]);
  if (pid < 0) {
    close(gp[1]);
    return -1;
  }
  /* the go byte, followed by the id for a runtime started as a spare's
   * (its command line has "-" for it) */
  int go = go_received(gate);
  char msg[sizeof go_id + 1] = "g";
  if (go_id[0])
    snprintf(msg, sizeof msg, "g%s", go_id);
  if (go && write(gp[1], msg, strlen(msg)) != (ssize_t) strlen(msg))
    go = 0;
  close(gp[1]);
  int rc = wait_runtime(pid);
  return go ? rc : -2;
}

/* Sets up stdio for a process about to be created by the runtime and runs
 * the runtime with `args`.  mode: fifo|log|null.  On success fills p.
 * gate >= 0: the runtime starts before the client's "go" on it
 * (run_runtime_gated); -2 when the client gave up instead. */
static int
create_proc(struct proc *p, const char *const *args_notty, const char *const *args_tty,
            const char *mode, int log_fd, int log_json, int gate, char *errmsg, size_t errn)
{
  char in_path[256], out_path[256], err_path[256], pid_path[256];
  file_name(in_path, sizeof in_path, p, "stdin");
  file_name(out_path, sizeof out_path, p, "stdout");
  file_name(err_path, sizeof err_path, p, "stderr");
  file_name(pid_path, sizeof pid_path, p, "pid");
  int fifo = strcmp(mode, "fifo") == 0, logm = strcmp(mode, "log") == 0;
  int att = strcmp(mode, "attach") == 0; /* output FIFOs only while attached */
  int in_fifo = fifo || att ? open_fifo(in_path, O_RDWR) : -1;
  int out_dst = fifo ? open_fifo(out_path, O_RDWR) : -1;
  int err_dst = fifo ? open_fifo(err_path, O_RDWR) : -1;
  int out_owned = 1, err_owned = 1;
  if (logm) {
    out_dst = err_dst = log_fd;
    out_owned = err_owned = 0;
  }
  int rc = -1;
  if (p->tty) {
    int cs = console_listen();
    if (cs < 0) {
      snprintf(errmsg, errn, "console socket: %s", strerror(errno));
      goto fail;
    }
    rc = run_runtime(args_tty, -1, -1, -1);
    if (rc != 0) {
      close(cs);
      runtime_error(errmsg, errn);
      goto fail;
    }
    p->master = recv_master(cs);
    close(cs);
    unlink("console.sock");
    if (p->master < 0) {
      snprintf(errmsg, errn, "no pty master received from the runtime");
      goto fail_started;
    }
    int m2 = fcntl(p->master, F_DUPFD_CLOEXEC, 3);
    p->in_w = p->master;
    set_nonblock(p->master);
    if (out_dst >= 0 || logm)
      pump_add(m2, out_dst, out_owned, log_json && logm, "stdout", NULL);
    else if (att)
      pump_lazy(pump_add(m2, -1, 0, 0, "stdout", NULL), out_path);
    else
      pump_add(m2, -1, 0, 0, "stdout", NULL);
    if (in_fifo >= 0)
      p->stdin_pump = pump_add(in_fifo, p->master, 0, 0, "stdin", p);
    if (err_dst >= 0 && err_owned)
      close(err_dst);
  } else {
    int inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
    if (in_fifo >= 0 && pipe2(inp, O_CLOEXEC) < 0)
      goto pipefail;
    if ((out_dst >= 0 || logm || att) && pipe2(outp, O_CLOEXEC) < 0)
      goto pipefail;
    if ((err_dst >= 0 || logm || att) && pipe2(errp, O_CLOEXEC) < 0)
      goto pipefail;
    int ef = errp[1] >= 0 ? errp[1] : -1;
    rc = gate >= 0 ? run_runtime_gated(args_notty, inp[0], outp[1], ef, gate)
                   : run_runtime(args_notty, inp[0], outp[1], ef);
    if (inp[0] >= 0)
      close(inp[0]);
    if (outp[1] >= 0)
      close(outp[1]);
    if (errp[1] >= 0)
      close(errp[1]);
    if (rc != 0) {
      if (rc != -2)
        runtime_error(errmsg, errn);
      if (inp[1] >= 0)
        close(inp[1]);
      if (outp[0] >= 0)
        close(outp[0]);
      if (errp[0] >= 0)
        close(errp[0]);
      goto fail;
    }
    if (inp[1] >= 0) {
      p->in_w = inp[1];
      set_nonblock(p->in_w);
      p->stdin_pump = pump_add(in_fifo, p->in_w, 0, 0, "stdin", p);
      in_fifo = -1;
    }
    if (outp[0] >= 0) {
      struct pump *u = pump_add(outp[0], out_dst, out_owned, log_json && logm, "stdout", NULL);
      if (att)
        pump_lazy(u, out_path);
      out_dst = -1;
    }
    if (errp[0] >= 0) {
      struct pump *u = pump_add(errp[0], err_dst, err_owned, log_json && logm, "stderr", NULL);
      if (att)
        pump_lazy(u, err_path);
      err_dst = -1;
    }
    goto after;
  pipefail:
    snprintf(errmsg, errn, "pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
      if (inp[i] >= 0)
        close(inp[i]);
      if (outp[i] >= 0)
        close(outp[i]);
      if (errp[i] >= 0)
        close(errp[i]);
    }
    goto fail;
  after:
    if (in_fifo >= 0)
      close(in_fifo);
    if (out_dst >= 0 && out_owned)
      close(out_dst);
    if (err_dst >= 0 && err_owned)
      close(err_dst);
  }
  p->pid = read_pid(pid_path);
  if (p->pid <= 0) {
    snprintf(errmsg, errn, "runtime wrote no pid to %s", pid_path);
    return -1;
  }
  return 0;
fail_started:
fail:
  if (in_fifo >= 0 && !p->stdin_pump)
    close(in_fifo);
  if (out_dst >= 0 && out_owned && !p->tty)
    close(out_dst);
  if (err_dst >= 0 && err_owned && !p->tty)
    close(err_dst);
  return rc == -2 ? -2 : -1;
}

/* ---- control protocol --------------------------------------------------- */

static int
parse_sig(const char *s)
{
  static const struct {
    const char *n;
    int v;
  } names[] = { { "HUP", SIGHUP },   { "INT", SIGINT },    { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
                { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },  { "TERM", SIGTERM }, { "CONT", SIGCONT },
                { "STOP", SIGSTOP }, { "WINCH", SIGWINCH } };
  if (s[0] >= '0' && s[0] <= '9')
    return atoi(s);
  if (strncmp(s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(names[i].n, s) == 0)
      return names[i].v;
  return -1;
}

static int
task_status(void)
{
  struct proc *init = proc_find("");
  if (init->exited)
    return ST_STOPPED;
  if (paused)
    return ST_PAUSED;
  return started ? ST_RUNNING : ST_CREATED;
}

static void
handle_line(struct conn *c, char *line)
{
  char *argv[16];
  int argc = 0;
  for (char *tok = strtok(line, " \t\r"); tok && argc < 15; tok = strtok(NULL, " \t\r"))
    argv[argc++] = tok;
  argv[argc] = NULL;
  if (argc == 0)
    return;
  const char *cmd = argv[0];
  struct proc *init = proc_find("");
  char em[1024];
  char sigbuf[16];

  if (strcmp(cmd, "state") == 0) {
    reply(c->fd, "ok %s %d %d %lld", status_names[task_status()], (int) init->pid,
          init->exited ? init->status : -1, (long long) init->exited_at);
  } else if (strcmp(cmd, "start") == 0) {
    if (started || init->exited) {
      reply(c->fd, "err failed_precondition task %s already started", task_id);
      return;
    }
    const char *a[] = { "start", task_id, NULL };
    if (run_runtime(a, -1, -1, -1) != 0) {
      runtime_error(em, sizeof em);
      reply(c->fd, "err internal start %s: %s", task_id, em);
      return;
    }
    started = 1;
    reply(c->fd, "ok %d", (int) init->pid);
  } else if (strcmp(cmd, "kill") == 0 && argc >= 2) {
    /* kill SIG [all] | kill SIG exec EXECID */
    int sig = parse_sig(argv[1]);
    if (sig <= 0) {
      reply(c->fd, "err invalid_argument unknown signal %s", argv[1]);
      return;
    }
    if (argc >= 4 && strcmp(argv[2], "exec") == 0) {
      struct proc *p = proc_find(argv[3]);
      if (!p || p->exited) {
        reply(c->fd, "err not_found process %s not running", argv[3]);
        return;
      }
      if (kill(p->pid, sig) < 0) {
        reply(c->fd, "err internal kill %d: %s", (int) p->pid, strerror(errno));
        return;
      }
      reply(c->fd, "ok");
      return;
    }
    int all = argc >= 3 && strcmp(argv[2], "all") == 0;
    if (init->exited && !all) {
      reply(c->fd, "err not_found task %s is not running", task_id);
      return;
    }
    snprintf(sigbuf, sizeof sigbuf, "%d", sig);
    const char *a1[] = { "kill", task_id, sigbuf, NULL };
    const char *a2[] = { "kill", "--all", task_id, sigbuf, NULL };
    if (!all && started) {
      /* signalling init directly avoids a runtime round trip */
      if (kill(init->pid, sig) < 0 && errno != ESRCH) {
        reply(c->fd, "err internal kill %d: %s", (int) init->pid, strerror(errno));
        return;
      }
    } else if (run_runtime(all ? a2 : a1, -1, -1, -1) != 0) {
      runtime_error(em, sizeof em);
      if (!init->exited) {
        reply(c->fd, "err internal kill %s: %s", task_id, em);
        return;
      }
    }
    reply(c->fd, "ok");
  } else if (strcmp(cmd, "wait") == 0) {
    struct proc *p = argc >= 2 ? proc_find(argv[1]) : init;
    if (!p) {
      reply(c->fd, "err not_found process %s", argv[1]);
      return;
    }
    if (p->exited)
      reply(c->fd, "ok %d %lld", p->status, (long long) p->exited_at);
    else
      c->waiting = p;
  } else if (strcmp(cmd, "attach") == 0) {
    /* attach [EXECID|-]: a client has opened the FIFOs' read ends; the
     * output goes there until it leaves.  "ok N": N outputs connected (0:
     * the process has exited and its output is closed) */
    struct proc *p = argc >= 2 && strcmp(argv[1], "-") != 0 ? proc_find(argv[1]) : init;
    if (!p) {
      reply(c->fd, "err not_found process %s", argv[1]);
      return;
    }
    reply(c->fd, "ok %d", pump_attach(p));
  } else if ((strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)) {
    const char *a[] = { cmd, task_id, NULL };
    if (init->exited) {
      reply(c->fd, "err failed_precondition task %s is stopped", task_id);
      return;
    }
    if (run_runtime(a, -1, -1, -1) != 0) {
      runtime_error(em, sizeof em);
      reply(c->fd, "err internal %s %s: %s", cmd, task_id, em);
      return;
    }
    paused = strcmp(cmd, "pause") == 0;
    reply(c->fd, "ok");
  } else if (strcmp(cmd, "exec") == 0 && argc >= 4) {
    /* exec EXECID tty(0|1) mode(fifo|null) */
    if (init->exited || !started) {
      reply(c->fd, "err failed_precondition task %s is not running", task_id);
      return;
    }
    if (proc_find(argv[1])) {
      reply(c->fd, "err already_exists exec %s exists", argv[1]);
      return;
    }
    if (strchr(argv[1], '/') || strlen(argv[1]) > 64) {
      reply(c->fd, "err invalid_argument bad exec id");
      return;
    }
    struct proc *p = proc_new(argv[1]);
    if (!p) {
      reply(c->fd, "err resource_exhausted too many processes");
      return;
    }
    p->tty = atoi(argv[2]);
    char procjson[256], pidf[256], sockp[PATH_MAX + 16], cwd[PATH_MAX];
    file_name(procjson, sizeof procjson, p, "json");
    file_name(pidf, sizeof pidf, p, "pid");
    if (getcwd(cwd, sizeof cwd) && strlen(cwd) + 14 < sizeof((struct sockaddr_un *) 0)->sun_path)
      snprintf(sockp, sizeof sockp, "%s/console.sock", cwd);
    else
      snprintf(sockp, sizeof sockp, "console.sock");
    const char *an[] = { "exec", "-d", "--pid-file", pidf, "--process", procjson, task_id, NULL };
    const char *at[] = { "exec",      "-d",     "--pid-file",       pidf,
                         "--process", procjson, "--console-socket", sockp,
                         task_id,     NULL };
    if (create_proc(p, an, at, argv[3], -1, 0, -1, em, sizeof em) < 0) {
      if (p->master >= 0)
        close(p->master);
      p->used = 0;
      reply(c->fd, "err internal exec %s in %s: %s", argv[1], task_id, em);
      return;
    }
    reply(c->fd, "ok %d", (int) p->pid);
  } else if (strcmp(cmd, "resize") == 0 && argc >= 4) {
    /* resize EXECID|- W H */
    struct proc *p = strcmp(argv[1], "-") == 0 ? init : proc_find(argv[1]);
    if (!p || p->master < 0) {
      reply(c->fd, "err failed_precondition process has no tty");
      return;
    }
    struct winsize ws = { .ws_col = (unsigned short) atoi(argv[2]),
                          .ws_row = (unsigned short) atoi(argv[3]) };
    if (ioctl(p->master, TIOCSWINSZ, &ws) < 0) {
      reply(c->fd, "err internal resize: %s", strerror(errno));
      return;
    }
    reply(c->fd, "ok");
  } else if (strcmp(cmd, "close_stdin") == 0) {
    struct proc *p = argc >= 2 && strcmp(argv[1], "-") != 0 ? proc_find(argv[1]) : init;
    if (!p) {
      reply(c->fd, "err not_found process");
      return;
    }
    if (p->stdin_pump) {
      /* the client wrote all it had before asking: deliver it, then close */
      p->stdin_pump->closing = 1;
      stdin_drain(p->stdin_pump);
    } else {
      stdin_finish(p);
    }
    reply(c->fd, "ok");
  } else if (strcmp(cmd, "pid") == 0) {
    reply(c->fd, "ok %d", (int) getpid());
  } else if (strcmp(cmd, "delete") == 0) {
    int force = argc >= 2 && strcmp(argv[1], "force") == 0;
    if (!init->exited && started && !force) {
      reply(c->fd, "err failed_precondition task %s is running (stop it or use force)", task_id);
      return;
    }
    const char *a[] = { "delete", "--force", task_id, NULL };
    int rc;
    if (early_delete > 0) {
      int st;
      while (waitpid(early_delete, &st, 0) < 0 && errno == EINTR) {
      }
      early_delete = -1;
      early_delete_status = exit_code(st);
    }
    if (early_delete_status == 0)
      rc = 0; /* done when the init exited */
    else
      rc = run_runtime(a, -1, -1, -1);
    if (rc != 0) {
      runtime_error(em, sizeof em);
      reply(c->fd, "err internal delete %s: %s", task_id, em);
      return;
    }
    /* the runtime killed what was left; collect it */
    for (int i = 0; i < 50 && !init->exited; i++) {
      reap();
      if (!init->exited)
        usleep(10000);
    }
    reply(c->fd, "ok %d %lld", init->exited ? init->status : 137, (long long) init->exited_at);
    deleting = 1;
  } else {
    reply(c->fd, "err invalid_argument unknown request %s", cmd);
  }
}

static void
conn_close(struct conn *c)
{
  close(c->fd);
  c->fd = -1;
  c->waiting = NULL;
  c->len = 0;
  free(c->buf);
  c->buf = NULL;
}

static void
conn_read(struct conn *c)
{
  ssize_t r = read(c->fd, c->buf + c->len, LINE_MAX_REQ - 1 - c->len);
  if (r <= 0) {
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    conn_close(c);
    return;
  }
  c->len += (size_t) r;
  char *nl;
  while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
    *nl = 0;
    size_t used = (size_t) (nl - c->buf) + 1;
    char line[LINE_MAX_REQ];
    memcpy(line, c->buf, used);
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    handle_line(c, line);
    if (c->fd < 0)
      return;
  }
  if (c->len >= LINE_MAX_REQ - 1) {
    reply(c->fd, "err invalid_argument request too long");
    conn_close(c);
  }
}

/* ---- main ---------------------------------------------------------------- */

static void
usage(void)
{
  logmsg(
      "usage: crater-shim --dir TASKDIR --id ID --runtime PATH [--runtime-root DIR] "
      "[--stdio fifo|attach|log|null] [--log FILE] [--log-format json|raw] [--tty] [--ready-fd N]");
  exit(2);
}

/* Writes the report line (n bytes of b) to the ready fd and closes it;
 * with pass >= 0 (the fd is a socket), that descriptor goes with the line
 * (SCM_RIGHTS). */
static void
report(int fd, int pass, const char *b, size_t n)
{
  if (fd < 0)
    return;
  ssize_t w = -1;
  if (pass >= 0) {
    union {
      struct cmsghdr h;
      char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = { .iov_base = (void *) b, .iov_len = n };
    struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass, sizeof pass);
    do
      w = sendmsg(fd, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
  }
  if (w < 0) /* nothing to pass, or not a socket: the line alone */
    w = 0;
  if ((size_t) w < n)
    write_all(fd, b + w, n - (size_t) w);
  close(fd);
}

static void ready(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
ready(int fd, const char *fmt, ...)
{
  char b[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vformat_line(b, sizeof b, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b[0] = '\n';
    n = 1;
  }
  report(fd, -1, b, (size_t) n);
}

/* --wait-go: the client gave up before the task existed (EOF instead of
 * "go": it aborted, or it was killed half-way): remove what it and we put
 * in the task dir, then the dir when that left it empty (a rootfs still
 * mounted there, or anything else, keeps it), so that a client killed
 * while it made the task leaves no half-made task behind. */
static int
gave_up(void)
{
  static const char *const files[] = { "runtime.err", "runtime.log", "shim.sock",    "shim.pid",
                                       "pid",         "config.json", "task.json",    "stdin",
                                       "stdout",      "stderr",      "console.sock", "log.json",
                                       "shim.log" };
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    unlink(files[i]);
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd)) {
    rmdir("rootfs");
    rmdir(cwd);
  }
  return 0;
}

int
main(int argc, char **argv)
{
  const char *dir = NULL, *mode = "null", *log_path = NULL, *log_format = "json";
  int tty = 0, ready_fd = -1, dir_fd = -1, start_now = 0, daemonize = 0, wait_go = 0, prestart = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--tty") == 0) {
      tty = 1;
      continue;
    }
    if (strcmp(a, "--start") == 0) {
      start_now = 1;
      continue;
    }
    if (strcmp(a, "--daemonize") == 0) {
      daemonize = 1;
      continue;
    }
    if (strcmp(a, "--seal-runtime") == 0) {
      seal_runtime = 1;
      continue;
    }
    if (strcmp(a, "--delete-on-exit") == 0) {
      delete_on_exit = 1;
      continue;
    }
    if (strcmp(a, "--wait-go") == 0) {
      wait_go = 1;
      continue;
    }
    if (strcmp(a, "--prestart") == 0) {
      prestart = 1;
      continue;
    }
    if (!v)
      usage();
    i++;
    if (strcmp(a, "--dir") == 0)
      dir = v;
    else if (strcmp(a, "--id") == 0)
      task_id = v;
    else if (strcmp(a, "--runtime") == 0)
      runtime = v;
    else if (strcmp(a, "--runtime-root") == 0)
      runtime_root = v;
    else if (strcmp(a, "--stdio") == 0)
      mode = v;
    else if (strcmp(a, "--log") == 0)
      log_path = v;
    else if (strcmp(a, "--log-format") == 0)
      log_format = v;
    else if (strcmp(a, "--ready-fd") == 0)
      ready_fd = atoi(v);
    else if (strcmp(a, "--dir-fd") == 0)
      dir_fd = atoi(v);
    else
      usage();
  }
  if (!dir || !task_id || !runtime || (strcmp(task_id, "-") == 0 && !wait_go))
    usage();
  if (daemonize) {
    /* a session of our own, led by a process that exits now: the shim
     * never acquires a controlling terminal, and its starter reaps the
     * leader at once instead of forking twice itself */
    setsid();
    pid_t p = fork();
    if (p < 0) {
      ready(ready_fd, "err internal fork: %s", strerror(errno));
      return 1;
    }
    if (p > 0)
      _exit(0);
  }
  if (ready_fd >= 0)
    fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
  for (int i = 0; i < MAX_CONNS; i++)
    conns[i].fd = -1;

  /* --dir-fd: the task dir as an open descriptor, so the client may
   * rename the dir into place while the shim starts (tasks.prespawn) */
  if ((dir_fd >= 0 ? fchdir(dir_fd) : chdir(dir)) < 0) {
    ready(ready_fd, "err not_found task dir %s: %s", dir, strerror(errno));
    return 1;
  }
  if (dir_fd >= 0)
    close(dir_fd);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

  char pidbuf[32];
  snprintf(pidbuf, sizeof pidbuf, "%d\n", (int) getpid());
  write_file_durable("shim.pid", pidbuf);

  /* control socket first, so a client finds us as soon as create is done */
  unlink("shim.sock");
  listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof sa.sun_path, "shim.sock");
  if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0 ||
      listen(listen_fd, 16) < 0) {
    ready(ready_fd, "err internal control socket %s/shim.sock: %s", dir, strerror(errno));
    return 1;
  }
  chmod("shim.sock", 0600);

  int log_fd = -1;
  if (strcmp(mode, "log") == 0) {
    log_fd =
        open(log_path ? log_path : "log.json", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0) {
      ready(ready_fd, "err internal open log %s: %s", log_path ? log_path : "log.json",
            strerror(errno));
      return 1;
    }
  }

  /* --prestart: the runtime starts now and waits for "go" itself (in
   * create_proc); without it, the runtime starts once "go" has come */
  int gate = -1;
  if (wait_go && prestart && start_now && !tty)
    gate = ready_fd;
  else if (wait_go && !go_received(ready_fd))
    return gave_up();

  struct proc *init = proc_new("");
  init->tty = tty;
  char em[1024];
  char cwd[PATH_MAX], sockp[PATH_MAX + 16];
  if (getcwd(cwd, sizeof cwd) && strlen(cwd) + 14 < sizeof sa.sun_path)
    snprintf(sockp, sizeof sockp, "%s/console.sock", cwd);
  else
    snprintf(sockp, sizeof sockp, "console.sock");
  /* --start: `run --detach` creates and starts in one runtime process (the
   * client has already asked the task.pre_start policy) */
  const char *verb = start_now ? "run" : "create", *det = start_now ? "--detach" : NULL;
  const char *an[] = { verb, "--bundle", ".", "--pid-file", "pid", task_id, NULL, NULL };
  const char *at[] = { verb,  "--bundle", ".",  "--pid-file", "pid", "--console-socket",
                       sockp, task_id,    NULL, NULL };
  if (det) { /* flags before the id: runc stops parsing flags at the first argument */
    an[5] = det;
    an[6] = task_id;
    at[7] = det;
    at[8] = task_id;
  }
  int cr =
      create_proc(init, an, at, mode, log_fd, strcmp(log_format, "json") == 0, gate, em, sizeof em);
  if (cr == -2)
    return gave_up();
  if (cr < 0) {
    ready(ready_fd, "err internal %s %s: %s", verb, task_id, em);
    const char *d[] = { "delete", "--force", task_id, NULL };
    run_runtime(d, -1, -1, -1);
    unlink("shim.sock");
    return 1;
  }
  if (log_fd >= 0 && strcmp(mode, "log") == 0) {
    /* the pumps share it; keep our copy until exit */
  }
  started = start_now;
  init_mntns = open_mntns(init->pid);
  {
    char ok[32];
    int n = snprintf(ok, sizeof ok, "ok %d\n", (int) init->pid);
    report(ready_fd, send_mntns ? init_mntns : -1, ok, (size_t) n);
  }

  struct pollfd pfd[2 + MAX_CONNS + 2 * MAX_PUMPS];
  struct {
    int kind; /* 0 sig, 1 listen, 2 conn, 3 pump src, 4 pump dst */
    int idx;
  } map[2 + MAX_CONNS + 2 * MAX_PUMPS];
  int finish_at_drain = 0;
  for (;;) {
    /* handled in this order: the pumps first, so that when a process
     * exits, the end of its output (which its exit closes) reaches the
     * client before the shim turns to the exit (SIGCHLD) itself */
    int n = 0;
    int live_pumps = 0;
    for (int i = 0; i < MAX_PUMPS; i++) {
      struct pump *u = &pumps[i];
      if (!u->used)
        continue;
      live_pumps++;
      if (u->len == 0) {
        pfd[n] = (struct pollfd){ .fd = u->src, .events = POLLIN };
        map[n].kind = 3;
      } else {
        pfd[n] = (struct pollfd){ .fd = u->dst, .events = POLLOUT };
        map[n].kind = 4;
      }
      map[n++].idx = i;
    }
    pfd[n] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
    map[n++].kind = 0;
    pfd[n] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
    map[n++].kind = 1;
    for (int i = 0; i < MAX_CONNS; i++) {
      if (conns[i].fd >= 0) {
        pfd[n] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
        map[n].kind = 2;
        map[n++].idx = i;
      }
    }
    if (deleting) {
      /* delete answered: drain output briefly, then exit */
      if (!finish_at_drain)
        finish_at_drain = 1;
      if (live_pumps == 0 || finish_at_drain++ > 20)
        break;
    }
    int r = poll(pfd, (nfds_t) n, deleting ? 50 : -1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      logmsg("crater-shim: poll: %s", strerror(errno));
      break;
    }
    for (int k = 0; k < n; k++) {
      if (!pfd[k].revents)
        continue;
      switch (map[k].kind) {
      case 0: {
        struct signalfd_siginfo si;
        while (read(sig_fd, &si, sizeof si) == sizeof si) {
        }
        reap();
        break;
      }
      case 1: {
        int c;
        while ((c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
          int placed = 0;
          for (int i = 0; i < MAX_CONNS && !placed; i++) {
            if (conns[i].fd < 0) {
              if (!(conns[i].buf = malloc(LINE_MAX_REQ)))
                break;
              conns[i].fd = c;
              conns[i].len = 0;
              conns[i].waiting = NULL;
              placed = 1;
            }
          }
          if (!placed) {
            reply(c, "err resource_exhausted too many connections");
            close(c);
          }
        }
        break;
      }
      case 2:
        if (conns[map[k].idx].fd >= 0)
          conn_read(&conns[map[k].idx]);
        break;
      case 3:
      case 4: {
        struct pump *u = &pumps[map[k].idx];
        if (!u->used)
          break;
        int rs = map[k].kind == 3 ? pfd[k].revents : 0;
        int rd = map[k].kind == 4 ? pfd[k].revents : 0;
        if (u->closing)
          stdin_drain(u);
        else if (pump_run(u, rs, rd) < 0)
          pump_close(u);
        break;
      }
      }
    }
  }
  for (int i = 0; i < MAX_PUMPS; i++)
    pump_close(&pumps[i]);
  unlink("shim.sock");
  return 0;
}
