/*
 * craterd's process model (docs/design/daemon.md): `crater daemon` binds
 * the root-only socket, then keeps a few warm workers forked from itself,
 * each already past the expensive part of a crater start (LuaJIT and the
 * modules loaded, the store opened) and blocked in accept().  A worker takes
 * a command from the `crater` front end (src/daemon/protocol.h), becomes
 * that command's process (its stdio, working directory, environment and
 * umask), runs it through the same CLI code as the embedded mode and
 * reports the exit code.  Then it puts its own state back and waits for
 * the next command (crater__daemon_rejoin), unless enough workers are idle
 * or something of the command could outlive it there; then it exits.  So
 * a command through the daemon behaves as the embedded one does, and
 * neither its start-up nor a worker's is paid per command.
 */
#include <stdbool.h>

#ifndef CRATER_DAEMON_SERVER_H
#define CRATER_DAEMON_SERVER_H

#include "common/error.h"

/* Binds and listens on path, mode 0600.  A socket file nobody answers on is
 * replaced; one a daemon answers on is "already_exists".  Returns the fd. */
int crater__daemon_listen(const char *path, crater_error_t *err);

/* The daemon's loop: forks `workers` idle workers; then keeps at least
 * `workers - 1` idle ahead of demand (at least one while a client waits
 * with none idle), while workers that served a command come back, up to
 * `workers` idle; reaps children.  Once a worker said its
 * command left cleanup work (crater__daemon_note_cleanup), it forks a
 * janitor when no command has come for JANITOR_IDLE_MS, or at the latest
 * JANITOR_MAX_DELAY_MS after the first such note (one at a time).
 * SIGTERM or SIGINT stop it (the socket is removed, idle workers are
 * killed, busy ones finish their command, a last janitor runs if work is
 * left); SIGHUP replaces the idle workers (fresh store connections).
 * Returns 0 when stopped, 1 in a new worker (which goes on to
 * crater__daemon_accept), 2 in a janitor (which cleans up and exits), or
 * -1. */
int crater__daemon_serve(int lfd, const char *path, int workers, crater_error_t *err);

/* In a worker: waits for one command and takes over its stdio, working
 * directory, environment and umask.  Returns its argv (NULL-terminated,
 * argv[0] the front end's), or NULL: *err says why (a client of another
 * build, which then runs the command itself, or a broken request). */
char **crater__daemon_accept(int lfd, crater_error_t *err);

/* In a worker: its command left work for the janitor. */
void crater__daemon_note_cleanup(void);

/* In a worker that took a command: flushes stdio, lets go of the client's
 * stdin, stdout and stderr and sends the exit code.  No-op elsewhere. */
void crater__daemon_finish(int code);

/* In a worker whose command finished: puts back its environment, working
 * directory, umask, signal dispositions and mask, drops what the command's
 * stdin had buffered, and counts itself idle again.  False (the worker
 * then exits) when enough workers are idle already, the daemon is gone
 * or was told SIGHUP since the worker started, or something of the
 * command could outlive it: a child still running, a controlling
 * terminal, descriptors left open. */
bool crater__daemon_rejoin(void);

#endif
