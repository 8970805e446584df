/*
 * A foreground terminal for `run` and `exec` without --console-socket, as
 * runc does: the runtime makes a socket pair, hands one end to the
 * container process as its console socket (crater__process_console sends
 * the pty master over it), receives the master on the other end and then
 * proxies it to its own stdio until the process exits.  When stdin is a
 * terminal it is put in raw mode (restored afterwards, also on errors) and
 * its window size is copied to the pty, again on every SIGWINCH.  Other
 * signals are forwarded to the process, like crater__wait_forward.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runtime.h"

int
crater__console_pair(int sv[2], crater_error_t *err)
{
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return crater_error_sys(err, errno, "console socket pair");
  return 0;
}

int
crater__console_recv(int sock, crater_error_t *err)
{
  char name[256];
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = { .iov_base = name, .iov_len = sizeof name };
  struct msghdr mh = {
    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf
  };
  ssize_t r;
  do
    r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return crater_error_sys(err, errno, "receive the pty master");
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  if (r == 0 || c == NULL || c->cmsg_type != SCM_RIGHTS)
    return crater_error_make(err, CRATER_ERR_INTERNAL, 0,
                             "the container process sent no pty master");
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static void
copy_winsize(int from, int to)
{
  struct winsize ws;
  if (ioctl(from, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
    ioctl(to, TIOCSWINSZ, &ws);
}

/* Writes all of buf to fd (blocking); false when fd is gone. */
static bool
write_all(int fd, const char *buf, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    buf += w;
    n -= (size_t) w;
  }
  return true;
}

int
crater__console_proxy(int master, pid_t pid, crater_error_t *err)
{
  sigset_t set;
  crater__block_forwarded_signals(&set);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0)
    return crater_error_sys(err, errno, "signalfd");
  struct termios saved;
  bool raw = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    t.c_oflag |= OPOST; /* keep the host's output processing, as runc does */
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
    copy_winsize(STDIN_FILENO, master);
  }
  bool in_open = true, out_open = true;
  int code = -1;
  char buf[16384];
  while (code < 0 || out_open) {
    struct pollfd p[3] = { { .fd = sfd, .events = POLLIN },
                           { .fd = out_open ? master : -1, .events = POLLIN },
                           { .fd = in_open && code < 0 ? STDIN_FILENO : -1, .events = POLLIN } };
    /* once the process is gone, drain what the pty still holds, briefly */
    int n = poll(p, 3, code >= 0 ? 100 : -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      code = crater_error_sys(err, errno, "poll");
      break;
    }
    if (n == 0) /* drained */
      break;
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        int sig = (int) si.ssi_signo;
        if (sig == SIGCHLD) {
          int status;
          pid_t r;
          while ((r = waitpid(-1, &status, WNOHANG)) > 0)
            if (r == pid)
              code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        } else if (sig == SIGWINCH) {
          if (raw)
            copy_winsize(STDIN_FILENO, master);
        } else if (sig != SIGURG) {
          kill(pid, sig);
        }
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(master, buf, sizeof buf);
      if (r > 0)
        out_open = write_all(STDOUT_FILENO, buf, (size_t) r);
      else if (r == 0 || (errno != EINTR && errno != EAGAIN))
        out_open = false; /* EIO: every holder of the pty's other end is gone */
    }
    if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
      if (r > 0)
        write_all(master, buf, (size_t) r);
      else if (r == 0 || (errno != EINTR && errno != EAGAIN))
        in_open = false;
    }
  }
  if (raw)
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  close(sfd);
  if (code >= 0)
    return code;
  /* the pty closed first: wait for the process itself */
  return crater__wait_forward(pid, err);
}
