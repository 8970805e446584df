/*
 * The CLI channel of craterd's socket (docs/design/daemon.md): how the
 * `crater` front end hands one command to a warm worker of `crater daemon`.
 * libc only: the front end (src/cli/front/front.c, static musl) and the
 * daemon (src/daemon/server.c) both include it.
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

#endif
