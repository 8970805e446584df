/*
 * The CLI channel of craterd's socket (docs/design/daemon.md): how the
 * `crater` front end hands one command to a warm worker of `crater daemon`.
 * libc only: the front end (src/cli/front/front.c, static musl) and the
 * daemon (src/daemon/server.c) both include it, for the constants and the
 * helpers below (the exe identity, sending, and reading lines).
 *
 * Request, front end -> worker, one sendmsg carrying SCM_RIGHTS
 * [stdin, stdout, stderr, cwd (O_PATH directory)]:
 *   CRATER_CLI_MAGIC (8 bytes), payload length (uint32, host order),
 *   payload: NUL-terminated fields
 *     exe identity "DEV:INO" of the crater-embedded beside the front end,
 *     umask (octal), argc, argv..., envc, environ...
 *   (what does not fit in the first sendmsg follows as plain bytes).
 * Then, front end -> worker, one line per signal the front end got:
 *   "sig N\n"
 * Replies, worker -> front end, lines:
 *   "embedded\n"  this daemon runs another build: run the command yourself
 *   "run\n"       the worker took the command over and runs it now
 *   "signal N\n"  the worker is dying of signal N (the front end re-raises)
 *   "exit N\n"    the command's exit code; the last line
 * EOF before "run" means nothing of the command ran (a daemon stopping
 * with the request in its backlog, say): the front end runs it itself.
 * EOF from the front end before "exit" means it died: the worker kills
 * itself, as an embedded crater would have died with it.
 */
#ifndef CRATER_DAEMON_PROTOCOL_H
#define CRATER_DAEMON_PROTOCOL_H

#define CRATER_CLI_MAGIC "CRATRCL1"
#define CRATER_CLI_MAGIC_LEN 8
#define CRATER_CLI_NFDS 4
/* a request larger than this is refused (argv + environ) */
#define CRATER_CLI_MAX_PAYLOAD (4u << 20)
#define CRATER_SOCKET_NAME "crater.sock"
#define CRATER_DEFAULT_ROOT "/var/lib/crater"
#define CRATER_DEFAULT_STATE "/run/crater"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The exe identity a request carries, "DEV:INO" of path (the front end:
 * the crater-embedded beside it; the worker: its own /proc/self/exe), into
 * out (64 bytes do).  0, or -1 when path cannot be stat'ed. */
static inline int
crater_cli_ident(const char *path, char *out, size_t n)
{
  struct stat st;
  if (stat(path, &st) != 0)
    return -1;
  snprintf(out, n, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
  return 0;
}

/* Sends all n bytes (no SIGPIPE); 0, or -1 once the peer is gone. */
static inline int
crater_cli_send_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t) w;
  }
  return 0;
}

/* The lines either side reads from the other. */
struct crater_cli_lines {
  char buf[256];
  size_t have, used;
};

/* The next line from fd (NUL-terminated, without its newline; valid until
 * the next call), or NULL at EOF or on an error.  A line longer than the
 * buffer is not one of ours: it is dropped. */
static inline char *
crater_cli_next_line(int fd, struct crater_cli_lines *l)
{
  for (;;) {
    if (l->used > 0) {
      memmove(l->buf, l->buf + l->used, l->have - l->used);
      l->have -= l->used;
      l->used = 0;
    }
    char *nl = memchr(l->buf, '\n', l->have);
    if (nl != NULL) {
      *nl = '\0';
      l->used = (size_t) (nl - l->buf) + 1;
      return l->buf;
    }
    if (l->have == sizeof l->buf)
      l->have = 0;
    ssize_t r = read(fd, l->buf + l->have, sizeof l->buf - l->have);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return NULL;
    l->have += (size_t) r;
  }
}

#endif
