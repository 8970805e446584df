/*
 * Device rules, for both cgroup versions: the ordered list (the spec's
 * linux.resources.devices, the default devices every container gets, then
 * linux.devices), which v1 writes to devices.allow/deny (cgroup.c, with
 * crater__dev_rule_v1) and v2 compiles here.  v2 has no devices.allow/deny
 * files; the kernel asks an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE
 * attached to the cgroup instead (as runc and crun do).
 *
 * The rules keep the OCI/v1 meaning: they are applied in order on a
 * default of "deny everything", the last rule that matches a request
 * decides, and a rule matches when its type (a = any), major and minor (-1
 * or absent = any) match and the requested access (m, r, w) is a subset of
 * the rule's.  The program therefore tests the rules from the last to the
 * first and returns the first match's verdict, else 0 (deny).
 *
 * Context (struct bpf_cgroup_dev_ctx): access_type = (access << 16) |
 * type, major, minor.  type: 1 block, 2 char; access: 1 mknod, 2 read,
 * 4 write.  Return 1 = allow, 0 = deny.
 *
 * The kernel's load of the program (verifier, JIT) takes ~0.25 ms, on the
 * path of every create.  A runtime started before its container's config
 * exists (--go-fd: crater's shim starts it early and it waits for "go")
 * loads, while it waits, the program last loaded under its root
 * (<root>/device-filter.bpf, its instructions; crater__devices_bpf_preload)
 * and attaches that one when the config's program has the very same
 * instructions.  The file only says what to load ahead: what is attached
 * is always the config's program, so a stale or tampered file costs a
 * load and nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

/* the few instruction forms the program needs */
#define INSN(c, d, s, o, i)                                                                        \
  ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define LDX_W(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define MOV_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define AND_IMM(d, i) INSN(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, i)
#define RSH_IMM(d, i) INSN(BPF_ALU64 | BPF_RSH | BPF_K, d, 0, 0, i)
#define JNE_IMM(d, i, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

static int
parse_access(const char *s)
{
  int a = 0;
  for (; s && *s; s++)
    a |= *s == 'm'   ? BPF_DEVCG_ACC_MKNOD
         : *s == 'r' ? BPF_DEVCG_ACC_READ
         : *s == 'w' ? BPF_DEVCG_ACC_WRITE
                     : 0;
  return a ? a : BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;
}

static int
parse_type(const char *t)
{
  if (t == NULL || *t == '\0' || strcmp(t, "a") == 0)
    return 0;
  if (strcmp(t, "b") == 0)
    return BPF_DEVCG_DEV_BLOCK;
  return BPF_DEVCG_DEV_CHAR; /* "c" and "u" */
}

/* Appends the test of one rule: falls through to the next rule's test
 * when it does not match, else returns its verdict.  *always: the rule
 * matches everything (nothing after it is reachable: the verifier refuses
 * unreachable instructions). */
static size_t
emit_rule(struct bpf_insn *p, const crater_dev_rule_t *r, bool *always)
{
  struct bpf_insn body[16];
  size_t n = 0;
  const int all = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;
  /* each test jumps over the rest of this rule's block: the offset is
   * patched once the block's length is known (JMP_PLACEHOLDER) */
  if (r->type)
    body[n++] = JNE_IMM(2, r->type, 0x7fff);
  if ((r->access & all) != all) {
    body[n++] = MOV_REG(6, 3);
    body[n++] = AND_IMM(6, ~r->access & all);
    body[n++] = JNE_IMM(6, 0, 0x7fff);
  }
  if (r->maj >= 0)
    body[n++] = JNE_IMM(4, (int32_t) r->maj, 0x7fff);
  if (r->min >= 0)
    body[n++] = JNE_IMM(5, (int32_t) r->min, 0x7fff);
  *always = n == 0;
  body[n++] = MOV_IMM(0, r->allow ? 1 : 0);
  body[n++] = EXIT();
  for (size_t i = 0; i < n; i++)
    if (body[i].off == 0x7fff)
      body[i].off = (int16_t) (n - i - 1); /* to the instruction after EXIT */
  memcpy(p, body, n * sizeof *body);
  return n;
}

/* Devices every container gets, as in the v1 path (cgroup.c): mknod of
 * any node (harmless: opening it is what the rules decide; runc and crun
 * allow it too), then the default /dev nodes and ptys. */
static const crater_dev_rule_t default_rules[] = {
  { BPF_DEVCG_DEV_CHAR, -1, -1, BPF_DEVCG_ACC_MKNOD, true },
  { BPF_DEVCG_DEV_BLOCK, -1, -1, BPF_DEVCG_ACC_MKNOD, true },
  { BPF_DEVCG_DEV_CHAR, 1, 3, 7, true },
  { BPF_DEVCG_DEV_CHAR, 1, 5, 7, true },
  { BPF_DEVCG_DEV_CHAR, 1, 7, 7, true },
  { BPF_DEVCG_DEV_CHAR, 1, 8, 7, true },
  { BPF_DEVCG_DEV_CHAR, 1, 9, 7, true },
  { BPF_DEVCG_DEV_CHAR, 5, 0, 7, true },
  { BPF_DEVCG_DEV_CHAR, 5, 1, 7, true },
  { BPF_DEVCG_DEV_CHAR, 5, 2, 7, true },
  { BPF_DEVCG_DEV_CHAR, 136, -1, 7, true },
  { BPF_DEVCG_DEV_CHAR, 10, 200, 7, true },
};

static int
bpf_call(int cmd, union bpf_attr *a)
{
  return (int) syscall(SYS_bpf, cmd, a, sizeof *a);
}

static bool
same_rule(const crater_dev_rule_t *a, const crater_dev_rule_t *b)
{
  return a->type == b->type && a->maj == b->maj && a->min == b->min && a->access == b->access &&
         a->allow == b->allow;
}

crater_dev_rule_t *
crater__device_rules(json_t *devices, json_t *linux_devs, size_t *n)
{
  size_t nspec = json_array_size(devices), nlin = json_array_size(linux_devs);
  size_t ndef = sizeof default_rules / sizeof *default_rules;
  crater_dev_rule_t *rules = xcalloc(nspec + ndef + nlin + 1, sizeof *rules);
  size_t k = 0, i;
  json_t *r;
  json_array_foreach(devices, i, r)
  {
    rules[k++] = (crater_dev_rule_t){ .type = parse_type(crater__js(r, "type")),
                                      .maj = crater__ji(r, "major", -1),
                                      .min = crater__ji(r, "minor", -1),
                                      .access = parse_access(crater__js(r, "access")),
                                      .allow = crater__jb(r, "allow", false) };
  }
  for (i = 0; i < ndef; i++)
    rules[k++] = default_rules[i];
  json_array_foreach(linux_devs, i, r)
  {
    rules[k++] = (crater_dev_rule_t){ .type = parse_type(crater__js(r, "type")),
                                      .maj = crater__ji(r, "major", 0),
                                      .min = crater__ji(r, "minor", 0),
                                      .access = 7,
                                      .allow = true };
  }
  /* An earlier copy of a later rule never decides anything: the last
   * rule that matches a device does (in the program, and in v1's files,
   * where writing it again gives it back what a deny in between took).
   * crater's default spec lists the default devices, which are also
   * allowed here: dropping the copies halved the program (the kernel's
   * load of it went 0.37 -> 0.23 ms per create) and v1's writes. */
  size_t kept = 0;
  for (size_t j = 0; j < k; j++) {
    bool later = false;
    for (size_t l = j + 1; l < k && !later; l++)
      later = same_rule(&rules[j], &rules[l]);
    if (!later)
      rules[kept++] = rules[j];
  }
  *n = kept;
  return rules;
}

char *
crater__dev_rule_v1(const crater_dev_rule_t *r)
{
  char smaj[32] = "*", smin[32] = "*", acc[4];
  if (r->maj >= 0)
    snprintf(smaj, sizeof smaj, "%lld", r->maj);
  if (r->min >= 0)
    snprintf(smin, sizeof smin, "%lld", r->min);
  size_t k = 0;
  if (r->access & BPF_DEVCG_ACC_READ)
    acc[k++] = 'r';
  if (r->access & BPF_DEVCG_ACC_WRITE)
    acc[k++] = 'w';
  if (r->access & BPF_DEVCG_ACC_MKNOD)
    acc[k++] = 'm';
  acc[k] = '\0';
  return xasprintf("%c %s:%s %s",
                   r->type == BPF_DEVCG_DEV_BLOCK  ? 'b'
                   : r->type == BPF_DEVCG_DEV_CHAR ? 'c'
                                                   : 'a',
                   smaj, smin, acc);
}

/* A program loaded ahead (crater__devices_bpf_preload): its instructions
 * and descriptor, -1 once used or dropped. */
static struct {
  struct bpf_insn *insns;
  size_t n;
  int fd;
} preloaded = { NULL, 0, -1 };
static bool preload_tried; /* this runtime loads ahead: it keeps the file up to date */

static char *
last_program_path(void)
{
  return crater__path_join(crater__rt_opts.root, "device-filter.bpf");
}

static int
prog_load(const struct bpf_insn *prog, size_t n, char *log, size_t logsz)
{
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  a.insns = (uint64_t) (uintptr_t) prog;
  a.insn_cnt = (uint32_t) n;
  a.license = (uint64_t) (uintptr_t) "Apache-2.0";
  if (log) {
    log[0] = '\0';
    a.log_buf = (uint64_t) (uintptr_t) log;
    a.log_size = (uint32_t) logsz;
    a.log_level = 1;
  }
  return bpf_call(BPF_PROG_LOAD, &a);
}

void
crater__devices_bpf_preload(void)
{
  if (preloaded.insns)
    return;
  preload_tried = true;
  cleanup_free char *path = last_program_path();
  crater_error_t e = NULL;
  size_t len = 0;
  /* a program of ours has a few hundred instructions at most */
  char *buf = crater__read_file(path, 64 << 10, &len, &e);
  crater_error_release(&e);
  if (buf == NULL || len == 0 || len % sizeof(struct bpf_insn) != 0) {
    free(buf);
    return;
  }
  int fd = prog_load((const struct bpf_insn *) buf, len / sizeof(struct bpf_insn), NULL, 0);
  if (fd < 0) {
    rt_debug("device filter %s: not loaded ahead: %s", path, strerror(errno));
    free(buf);
    return;
  }
  preloaded.insns = (struct bpf_insn *) buf;
  preloaded.n = len / sizeof(struct bpf_insn);
  preloaded.fd = fd;
}

static void
drop_preloaded(void)
{
  if (preloaded.fd >= 0)
    close(preloaded.fd);
  free(preloaded.insns);
  preloaded.insns = NULL;
  preloaded.n = 0;
  preloaded.fd = -1;
}

/* The preloaded program's descriptor when it is prog (n instructions),
 * else -1; either way the preloaded one is no longer kept. */
static int
take_preloaded(const struct bpf_insn *prog, size_t n)
{
  int fd = -1;
  if (preloaded.insns && preloaded.n == n && memcmp(preloaded.insns, prog, n * sizeof *prog) == 0) {
    fd = preloaded.fd;
    preloaded.fd = -1;
  }
  drop_preloaded();
  return fd;
}

int
crater__devices_bpf_apply(const char *cgroup_dir, json_t *devices, json_t *linux_devs,
                          crater_error_t *err)
{
  size_t nr;
  crater_dev_rule_t *rules = crater__device_rules(devices, linux_devs, &nr);
  /* prologue (4) + up to 10 per rule + the final deny (2) */
  struct bpf_insn *prog = xcalloc(6 + 10 * nr, sizeof *prog);
  size_t n = 0;
  prog[n++] = LDX_W(2, 1, 0); /* r2 = access_type */
  prog[n++] = MOV_REG(3, 2);
  prog[n++] = AND_IMM(2, 0xffff); /* r2 = type */
  prog[n++] = RSH_IMM(3, 16);     /* r3 = access */
  prog[n++] = LDX_W(4, 1, 4);     /* r4 = major */
  prog[n++] = LDX_W(5, 1, 8);     /* r5 = minor */
  bool always = false, all_allow = true;
  for (size_t j = nr; j-- > 0 && !always;) {
    n += emit_rule(prog + n, &rules[j], &always);
    all_allow &= rules[j].allow;
  }
  if (always && all_allow) {
    /* every path allows (a privileged spec): no program needed */
    drop_preloaded();
    free(rules);
    free(prog);
    return 0;
  }
  if (!always) {
    prog[n++] = MOV_IMM(0, 0);
    prog[n++] = EXIT();
  }
  free(rules);

  int pfd = take_preloaded(prog, n);
  bool ahead = pfd >= 0;
  if (!ahead)
    pfd = prog_load(prog, n, NULL, 0);
  if (pfd < 0) {
    /* again with the verifier's log, for the message */
    int e = errno;
    static char log[65536];
    int again = prog_load(prog, n, log, sizeof log);
    if (again >= 0) {
      close(again);
      log[0] = '\0';
    }
    free(prog);
    return crater_error_make(err, CRATER_ERR_INTERNAL, e, "load the device filter: %s%s%.300s",
                             strerror(e), log[0] ? ": " : "", log);
  }
  if (!ahead && preload_tried) {
    /* best effort: the next runtime started early loads this one ahead */
    cleanup_free char *path = last_program_path();
    crater_error_t e = NULL;
    if (mkdir(crater__rt_opts.root, 0711) < 0 && errno != EEXIST)
      rt_debug("device filter: mkdir %s: %s", crater__rt_opts.root, strerror(errno));
    else if (crater__write_file_atomic(path, prog, n * sizeof *prog, 0600, &e) < 0)
      rt_debug("device filter %s: %s", path, e->msg);
    crater_error_release(&e);
  }
  free(prog);
  union bpf_attr a;
  int cfd = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cfd < 0) {
    int e = errno;
    close(pfd);
    return crater_error_sys(err, e, "open %s", cgroup_dir);
  }
  memset(&a, 0, sizeof a);
  a.target_fd = (uint32_t) cfd;
  a.attach_bpf_fd = (uint32_t) pfd;
  a.attach_type = BPF_CGROUP_DEVICE;
  a.attach_flags = BPF_F_ALLOW_MULTI;
  int rc = bpf_call(BPF_PROG_ATTACH, &a);
  int e = errno;
  close(cfd);
  close(pfd); /* the attachment holds the program */
  if (rc < 0)
    return crater_error_sys(err, e, "attach the device filter to %s", cgroup_dir);
  return 0;
}
