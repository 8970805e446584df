/*
 * Signal dispositions for a process about to exec a container's program.
 * Header-only and libc only, like sealed_copy.h: crater-runtime
 * (process.c) and crater-shim (its runtime's child) both use it.
 */
#ifndef CRATER_COMMON_SIGNALS_DEFAULT_H
#define CRATER_COMMON_SIGNALS_DEFAULT_H

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Every signal back to its default disposition, none blocked.  execve
 * resets handlers but keeps SIG_IGN, and a shell cannot even trap a signal
 * that was ignored when it started: a container whose runtime came from a
 * process ignoring SIGINT or SIGHUP (the shim does; a background job
 * does) would never see them.  Raw rt_sigaction, since libc refuses its
 * own internal signals (32, 33), which were found ignored too. */
static inline void
crater__signals_default(void)
{
  struct {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
  } cur, dfl;
  memset(&dfl, 0, sizeof dfl); /* SIG_DFL is 0 */
  for (int s = 1; s <= 64; s++) {
    if (s == SIGKILL || s == SIGSTOP)
      continue;
    if (syscall(SYS_rt_sigaction, s, NULL, &cur, sizeof cur.mask) == 0 &&
        cur.handler == (void *) SIG_IGN)
      syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

#endif
