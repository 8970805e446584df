"""Runs a command on a fresh pty of 33 rows x 101 columns, answers "hello"
(then Enter) once the output shows a /dev/pts name, and prints everything
the command wrote (CRs dropped); exits with the command's exit code.
Used by the runtime specs for terminals in the foreground.

    python3 ptyrun.py CMD [ARG...]
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
out, sent, deadline = b"", False, time.time() + 30
while time.time() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if not sent and b"/dev/pts" in out:
        os.write(fd, b"hello\r")
        sent = True
    if ready:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the command closed the pty
            break
        if not data:
            break
        out += data
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(status))
