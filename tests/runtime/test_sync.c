/*
 * Unit test of crater-runtime's parent/init sync messages (rtutil.c): an
 * init that fails and exits before it reads a message the parent sent
 * resets the connection, and the kernel reports the reset before the ERROR
 * message the init queued; crater__sync_recv returns that message, which
 * says what went wrong, not "connection reset".  An init that exits
 * without a word is "exited before it was ready".
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "runtime/rtutil.c"

/* state.c is not linked in; the helpers above do not need it */
bool
crater__cgroup_frozen(const char *path)
{
  (void) path;
  return false;
}

/* The parent's receive after it sent GO to an init that then exits with
 * msg (or silently, msg NULL) and GO unread. */
static crater_error_t
recv_after_exit(const char *msg)
{
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  int ready[2];
  CHECK(pipe(ready) == 0);
  pid_t p = fork();
  CHECK(p >= 0);
  if (p == 0) {
    close(sv[0]);
    char c;
    if (read(ready[0], &c, 1) != 1) /* GO is queued, unread */
      _exit(2);
    if (msg) {
      crater_error_t e = NULL;
      crater_error_make(&e, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "%s", msg);
      crater__sync_send_error(sv[1], e);
    }
    _exit(1);
  }
  close(sv[1]);
  crater_error_t err = NULL;
  CHECK_OK(crater__sync_send(sv[0], SYNC_GO, 42, &err));
  CHECK(write(ready[1], "x", 1) == 1);
  int st;
  CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 1);
  CHECK(crater__sync_recv(sv[0], SYNC_HOOKS, NULL, &err) < 0);
  close(sv[0]);
  close(ready[0]);
  close(ready[1]);
  return err;
}

int
main(void)
{
  crater_error_t e = recv_after_exit("mount /proc: no such device");
  CHECK(e != NULL);
  CHECK_STREQ("mount /proc: no such device", e->msg);
  CHECK(e->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&e);
  e = recv_after_exit(NULL);
  CHECK(e != NULL && e->kind == CRATER_ERR_ABORTED);
  crater_error_release(&e);
  return 0;
}
