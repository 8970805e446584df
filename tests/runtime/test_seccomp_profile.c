/*
 * Unit test of the runtime's seccomp compiler with the shipped default
 * profile (policies/seccomp-default.json): in a child that loads it,
 * unshare/mount/keyctl/bpf fail with EPERM, clone3 with ENOSYS, clone with
 * namespace flags with EPERM, while ordinary calls work.  Also checks the
 * signal-name parser used by `kill`, and that the compiled default profile
 * is a binary tree: running the program (a small classic-BPF interpreter
 * below) for every x86_64 syscall number takes a few dozen instructions at
 * most, where libseccomp's default linear list took hundreds (the kernel
 * runs it for every syscall number when the filter is loaded, and for every
 * syscall the container makes).  The runtime's sources are compiled in
 * directly (they are a program, not part of libcrater).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "runtime/rtutil.c"
#include "runtime/seccomp.c"

/* state.c is not linked in; the helpers above do not need it */
bool
crater__cgroup_frozen(const char *path)
{
  (void) path;
  return false;
}

/* Runs a classic BPF seccomp program on d; returns the return value and
 * the number of instructions executed in *steps, or -1 on an instruction
 * this interpreter does not know. */
static long
bpf_run(const struct sock_filter *f, unsigned len, const struct seccomp_data *d, unsigned *steps)
{
  uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = { 0 };
  *steps = 0;
  for (unsigned pc = 0; pc < len; pc++) {
    const struct sock_filter *i = &f[pc];
    ++*steps;
    uint32_t src = BPF_SRC(i->code) == BPF_X ? X : i->k;
    switch (BPF_CLASS(i->code)) {
    case BPF_LD:
      if (i->code == (BPF_LD | BPF_W | BPF_ABS) && i->k + 4 <= sizeof *d && i->k % 4 == 0)
        memcpy(&A, (const char *) d + i->k, 4);
      else if (BPF_MODE(i->code) == BPF_MEM && i->k < BPF_MEMWORDS)
        A = M[i->k];
      else if (BPF_MODE(i->code) == BPF_IMM)
        A = i->k;
      else
        return -1;
      break;
    case BPF_LDX:
      if (BPF_MODE(i->code) == BPF_MEM && i->k < BPF_MEMWORDS)
        X = M[i->k];
      else if (BPF_MODE(i->code) == BPF_IMM)
        X = i->k;
      else
        return -1;
      break;
    case BPF_ST:
    case BPF_STX:
      if (i->k >= BPF_MEMWORDS)
        return -1;
      M[i->k] = BPF_CLASS(i->code) == BPF_ST ? A : X;
      break;
    case BPF_ALU:
      switch (BPF_OP(i->code)) {
      case BPF_AND:
        A &= src;
        break;
      case BPF_OR:
        A |= src;
        break;
      case BPF_ADD:
        A += src;
        break;
      case BPF_SUB:
        A -= src;
        break;
      default:
        return -1;
      }
      break;
    case BPF_JMP: {
      if (BPF_OP(i->code) == BPF_JA) {
        pc += i->k;
        break;
      }
      bool t;
      switch (BPF_OP(i->code)) {
      case BPF_JEQ:
        t = A == src;
        break;
      case BPF_JGT:
        t = A > src;
        break;
      case BPF_JGE:
        t = A >= src;
        break;
      case BPF_JSET:
        t = (A & src) != 0;
        break;
      default:
        return -1;
      }
      pc += t ? i->jt : i->jf;
      break;
    }
    case BPF_RET:
      return BPF_RVAL(i->code) == BPF_A ? A : i->k;
    case BPF_MISC:
      if (BPF_MISCOP(i->code) == BPF_TAX)
        X = A;
      else
        A = X;
      break;
    default:
      return -1;
    }
  }
  return -1;
}

static int
child(json_t *prof)
{
  crater_error_t err = NULL;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return 10;
  if (crater__seccomp_apply(prof, &err) < 0) {
    fprintf(stderr, "apply: %s\n", err->msg);
    return 11;
  }
  if (unshare(CLONE_NEWNS) == 0 || errno != EPERM)
    return 12;
  if (mount("none", "/mnt", "tmpfs", 0, NULL) == 0 || errno != EPERM)
    return 13;
  if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
    return 14;
  if (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
    return 15;
  if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
    return 16;
  if (syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL) != -1 || errno != EPERM)
    return 17;
  pid_t p = fork(); /* plain clone is allowed */
  if (p < 0)
    return 18;
  if (p == 0)
    _exit(0);
  waitpid(p, NULL, 0);
  if (getpid() <= 0 || access("/", F_OK) < 0)
    return 19;
  return 0;
}

int
main(void)
{
  CHECK(crater__parse_signal("KILL") == SIGKILL);
  CHECK(crater__parse_signal("SIGTERM") == SIGTERM);
  CHECK(crater__parse_signal("sigusr1") == SIGUSR1);
  CHECK(crater__parse_signal("9") == 9);
  CHECK(crater__parse_signal("RTMIN+2") == SIGRTMIN + 2);
  CHECK(crater__parse_signal("NOPE") < 0);
  CHECK(crater__parse_signal("0") < 0);

  char path[4096];
  snprintf(path, sizeof path, "%s", __FILE__);
  char *slash = strrchr(path, '/');
  CHECK(slash != NULL);
  snprintf(slash, sizeof path - (size_t) (slash - path), "/../../policies/seccomp-default.json");
  json_error_t je;
  json_t *prof = json_load_file(path, 0, &je);
  if (prof == NULL) {
    fprintf(stderr, "load %s: %s\n", path, je.text);
    return 1;
  }
  CHECK(strcmp(json_string_value(json_object_get(prof, "defaultAction")), "SCMP_ACT_ERRNO") == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0)
    _exit(child(prof));
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "child failed: status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
    return 1;
  }

  /* the compiled program: a decision within a few dozen instructions for
   * every syscall number, and the same decisions as the loaded filter */
  char tmpl[] = "/tmp/crater-seccomp-test.XXXXXX";
  CHECK(mkdtemp(tmpl) != NULL);
  crater__rt_opts.root = tmpl;
  crater_error_t err = NULL;
  CHECK(crater__seccomp_prepare(prof, &err) == 0);
  CHECK(prepared.insns != NULL && prepared.len > 0);
  unsigned worst = 0, worst_nr = 0;
  for (int nr = 0; nr < 460; nr++) {
    struct seccomp_data d = { .nr = nr, .arch = AUDIT_ARCH_X86_64 };
    unsigned steps;
    long r = bpf_run(prepared.insns, prepared.len, &d, &steps);
    CHECK(r != -1);
    if (nr == SYS_read || nr == SYS_getpid)
      CHECK((r & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ALLOW);
    if (nr == SYS_keyctl)
      CHECK((r & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ERRNO && (r & SECCOMP_RET_DATA) == EPERM);
    if (steps > worst) {
      worst = steps;
      worst_nr = (unsigned) nr;
    }
  }
  printf("default profile: %u instructions, at most %u run (syscall %u)\n", prepared.len, worst,
         worst_nr);
  CHECK(worst <= 64);
  CHECK(crater__remove_all(tmpl, NULL) == 0);
  json_decref(prof);
  return 0;
}
