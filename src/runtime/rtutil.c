/*
 * Small helpers of crater-runtime: logging to stderr and --log (text or
 * runc-style JSON lines, which shims read back for error messages), spec
 * JSON access, signal names, /proc/<pid>/stat and the parent/child sync
 * messages.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

crater_rt_opts_t crater__rt_opts = { .root = CRATER_RUNTIME_DEFAULT_ROOT, .premade_netns = -1 };

void
crater__rt_log(const char *level, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cleanup_free char *msg = xvasprintf(fmt, ap);
  va_end(ap);
  if (strcmp(level, "debug") != 0 || crater__rt_opts.log_path == NULL)
    fprintf(stderr, "crater-runtime: %s%s%s\n", strcmp(level, "error") ? level : "",
            strcmp(level, "error") ? ": " : "", msg);
  if (crater__rt_opts.log_path == NULL)
    return;
  int fd = open(crater__rt_opts.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  cleanup_free char *now = crater__rfc3339_now();
  cleanup_free char *line = NULL;
  if (crater__rt_opts.log_json) {
    json_t *o = json_pack("{s:s,s:s,s:s}", "level", level, "msg", msg, "time", now);
    char *s = json_dumps(o, JSON_COMPACT);
    line = xasprintf("%s\n", s);
    free(s);
    json_decref(o);
  } else {
    line = xasprintf("time=\"%s\" level=%s msg=\"%s\"\n", now, level, msg);
  }
  if (write(fd, line, strlen(line)) < 0) {
    /* nothing sensible to do */
  }
  close(fd);
}

const char *
crater__js(json_t *o, const char *key)
{
  json_t *v = o ? json_object_get(o, key) : NULL;
  return json_is_string(v) ? json_string_value(v) : NULL;
}

json_int_t
crater__ji(json_t *o, const char *key, json_int_t def)
{
  json_t *v = o ? json_object_get(o, key) : NULL;
  if (json_is_integer(v))
    return json_integer_value(v);
  if (json_is_real(v))
    return (json_int_t) json_real_value(v);
  return def;
}

bool
crater__jb(json_t *o, const char *key, bool def)
{
  json_t *v = o ? json_object_get(o, key) : NULL;
  return json_is_boolean(v) ? json_is_true(v) : def;
}

json_t *
crater__jpath(json_t *o, const char *dotted)
{
  char buf[256];
  snprintf(buf, sizeof buf, "%s", dotted);
  char *save = NULL;
  for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
    o = json_is_object(o) ? json_object_get(o, k) : NULL;
  return o;
}

int
crater__write_strat(int dirfd, const char *name, const char *s, crater_error_t *err)
{
  int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_TRUNC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open %s", name);
  ssize_t n = write(fd, s, strlen(s));
  int e = errno;
  close(fd);
  if (n < 0)
    return crater_error_sys(err, e, "write '%s' to %s", s, name);
  return 0;
}

int
crater__write_str(const char *path, const char *s, crater_error_t *err)
{
  return crater__write_strat(AT_FDCWD, path, s, err);
}

static const struct {
  const char *name;
  int sig;
} signames[] = {
  { "HUP", SIGHUP },       { "INT", SIGINT },   { "QUIT", SIGQUIT },     { "ILL", SIGILL },
  { "TRAP", SIGTRAP },     { "ABRT", SIGABRT }, { "IOT", SIGIOT },       { "BUS", SIGBUS },
  { "FPE", SIGFPE },       { "KILL", SIGKILL }, { "USR1", SIGUSR1 },     { "SEGV", SIGSEGV },
  { "USR2", SIGUSR2 },     { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },     { "TERM", SIGTERM },
  { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT },     { "STOP", SIGSTOP },
  { "TSTP", SIGTSTP },     { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU },     { "URG", SIGURG },
  { "XCPU", SIGXCPU },     { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },
  { "WINCH", SIGWINCH },   { "IO", SIGIO },     { "POLL", SIGPOLL },     { "PWR", SIGPWR },
  { "SYS", SIGSYS },
};

int
crater__parse_signal(const char *s)
{
  if (s == NULL || *s == '\0')
    return -1;
  if (isdigit((unsigned char) *s)) {
    char *end;
    long v = strtol(s, &end, 10);
    return (*end || v <= 0 || v > SIGRTMAX) ? -1 : (int) v;
  }
  if (strncasecmp(s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < sizeof signames / sizeof *signames; i++)
    if (strcasecmp(s, signames[i].name) == 0)
      return signames[i].sig;
  if (strncasecmp(s, "RTMIN", 5) == 0) {
    int off = s[5] == '+' ? atoi(s + 6) : 0;
    return SIGRTMIN + off <= SIGRTMAX ? SIGRTMIN + off : -1;
  }
  if (strncasecmp(s, "RTMAX", 5) == 0) {
    int off = s[5] == '-' ? atoi(s + 6) : 0;
    return SIGRTMAX - off >= SIGRTMIN ? SIGRTMAX - off : -1;
  }
  return -1;
}

int
crater__proc_stat(pid_t pid, unsigned long long *start, char *state)
{
  char buf[1024];
  char *p = crater__proc_stat_fields(pid, buf, sizeof buf);
  if (p == NULL)
    return -1;
  if (state)
    *state = *p;
  /* fields after ')' start at field 3 (state); starttime is field 22 */
  int field = 3;
  char *save = NULL;
  for (char *t = strtok_r(p, " ", &save); t; t = strtok_r(NULL, " ", &save), field++)
    if (field == 22) {
      if (start)
        *start = strtoull(t, NULL, 10);
      return 0;
    }
  return -1;
}

char *
crater__rfc3339_now(void)
{
  struct timespec ts;
  struct tm tm;
  char buf[64];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return xasprintf("%s.%09ldZ", buf, ts.tv_nsec);
}

int
crater__sync_send(int fd, int type, int value, crater_error_t *err)
{
  crater_sync_t m = { .type = type, .value = value };
  if (send(fd, &m, sizeof m, MSG_NOSIGNAL) != (ssize_t) sizeof m)
    return crater_error_sys(err, errno, "sync: send message %d", type);
  return 0;
}

int
crater__sync_send_error(int fd, crater_error_t e)
{
  crater_sync_t m = { .type = SYNC_ERROR, .status = e ? e->status : 0 };
  snprintf(m.msg, sizeof m.msg, "%s", e && e->msg ? e->msg : "unknown error");
  return send(fd, &m, sizeof m, MSG_NOSIGNAL) == (ssize_t) sizeof m ? 0 : -1;
}

int
crater__sync_recv(int fd, int expect, int *value, crater_error_t *err)
{
  crater_sync_t m;
  ssize_t n;
  do
    n = recv(fd, &m, sizeof m, 0);
  while (n < 0 && errno == EINTR);
  /* An init that exited with a message of ours unread (it failed before
   * it read GO) resets the connection, and the kernel reports that before
   * the ERROR message it queued: that message is the error. */
  if (n < 0 && errno == ECONNRESET) {
    n = recv(fd, &m, sizeof m, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      n = 0;
  }
  if (n < 0)
    return crater_error_sys(err, errno, "sync: receive");
  if (n == 0)
    return crater_error_make(err, CRATER_ERR_ABORTED, 0,
                             "sync: container process exited before it was ready");
  if (n != (ssize_t) sizeof m)
    return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "sync: short message");
  if (m.type == SYNC_ERROR) {
    m.msg[sizeof m.msg - 1] = '\0';
    return crater_error_make(err,
                             m.status ? crater_errkind_from_errno(m.status) : CRATER_ERR_UNKNOWN,
                             m.status, "%s", m.msg);
  }
  if (m.type != expect)
    return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "sync: got message %d, want %d", m.type,
                             expect);
  if (value)
    *value = m.value;
  return 0;
}
