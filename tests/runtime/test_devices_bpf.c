/*
 * Unit test of the cgroup v2 device filter (src/runtime/devices_bpf.c): a
 * child moved into a v2 cgroup with the filter attached may mknod any node
 * (as under runc and crun) and open the default devices and what the
 * rules allow, and gets EPERM opening the rest; the last matching rule
 * decides.  Rules that a later identical rule repeats are dropped.  A
 * program loaded ahead (crater__devices_bpf_preload, from the file the
 * last load left under the runtime root) is attached only when the rules
 * build the very same program; a tampered or stale file changes nothing
 * but a load.  The filter checks need root and a cgroup2 mount: the unified
 * hierarchy of a hybrid host (/sys/fs/cgroup/unified) or a v2-only host
 * (/sys/fs/cgroup); skipped otherwise.  The runtime's sources are compiled
 * in directly (they are a program, not part of libcrater).
 */
#include <errno.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "runtime/devices_bpf.c"
#include "runtime/rtutil.c"

/* state.c is not linked in; the helpers above do not need it */
bool
crater__cgroup_frozen(const char *path)
{
  (void) path;
  return false;
}

static const char *
v2_root(void)
{
  static const char *const cands[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup", NULL };
  for (int i = 0; cands[i]; i++) {
    struct statfs sf;
    if (statfs(cands[i], &sf) == 0 && sf.f_type == 0x63677270 /* CGROUP2_SUPER_MAGIC */)
      return cands[i];
  }
  return NULL;
}

/* 0 when open(path) succeeds, else errno */
static int
try_open(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  close(fd);
  return 0;
}

static int
try_mknod(const char *dir, unsigned maj, unsigned min)
{
  char p[4200];
  snprintf(p, sizeof p, "%s/node-%u-%u", dir, maj, min);
  unlink(p);
  int r = mknod(p, S_IFCHR | 0600, makedev(maj, min)) == 0 ? 0 : errno;
  unlink(p);
  return r;
}

/* Runs checks in a child placed in cgroup dir under the filter built from
 * rules; returns the child's exit code (0 = every check passed). */
static int
in_filtered_child(const char *dir, const char *rules, int (*checks)(const char *), const char *tmp)
{
  json_error_t je;
  json_t *devs = json_loads(rules, 0, &je);
  CHECK(devs != NULL);
  crater_error_t err = NULL;
  CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST);
  CHECK_OK(crater__devices_bpf_apply(dir, devs, NULL, &err));
  json_decref(devs);
  pid_t p = fork();
  CHECK(p >= 0);
  if (p == 0) {
    char procs[4200];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
      _exit(100);
    close(fd);
    _exit(checks(tmp));
  }
  int st = 0;
  CHECK(waitpid(p, &st, 0) == p);
  CHECK(rmdir(dir) == 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
}

/* containerd's default: deny everything, then the defaults are allowed */
static int
checks_deny_all(const char *tmp)
{
  if (try_open("/dev/null") != 0 || try_open("/dev/zero") != 0 || try_open("/dev/urandom") != 0)
    return 1;
  if (try_open("/dev/kmsg") != EPERM) /* c 1:11: not a default device */
    return 2;
  if (try_mknod(tmp, 1, 11) != 0) /* mknod of any node is allowed, as by runc */
    return 3;
  return 0;
}

/* an explicit read-only allowance for c 1:11 after the deny */
static int
checks_read_only(const char *tmp)
{
  if (try_open("/dev/kmsg") != 0)
    return 1;
  (void) tmp;
  return 0;
}

/* the last matching rule wins: allow all, then deny c 1:* (mknod is
 * allowed again by the defaults after the rules) */
static int
checks_last_wins(const char *tmp)
{
  if (try_open("/dev/kmsg") != EPERM || try_mknod(tmp, 1, 11) != 0)
    return 1;
  if (try_open("/dev/null") != 0) /* c 1:3 is a default, allowed after the rules */
    return 2;
  if (try_mknod(tmp, 4, 64) != 0) /* c 4:64 (ttyS0): allowed by "a" */
    return 3;
  return 0;
}

/* checks_read_only, with rules where the allowance comes twice around a
 * deny: the last one decides, whichever copy is kept */
static const char *const twice =
    "[{\"allow\": false, \"access\": \"rwm\"},"
    " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"r\"},"
    " {\"allow\": false, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"r\"},"
    " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"r\"}]";

/* An earlier copy of a later rule is dropped, the rest keep their order;
 * crater's default spec lists the default devices, which come again. */
static void
test_dedup(void)
{
  json_t *devs = json_loads("[{\"allow\": false, \"access\": \"rwm\"},"
                            " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3,"
                            "  \"access\": \"rwm\"},"
                            " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11,"
                            "  \"access\": \"r\"}]",
                            0, NULL);
  json_t *lin = json_loads("[{\"type\": \"c\", \"major\": 1, \"minor\": 3}]", 0, NULL);
  CHECK(devs && lin);
  size_t n, ndef = sizeof default_rules / sizeof *default_rules;
  crater_dev_rule_t *r = crater__device_rules(devs, lin, &n);
  /* c 1:3 rwm: in the spec's rules, the defaults and linux.devices; once */
  CHECK(n == 2 + ndef);
  CHECK(r[0].type == 0 && !r[0].allow);
  CHECK(r[1].type == BPF_DEVCG_DEV_CHAR && r[1].maj == 1 && r[1].min == 11 && r[1].allow);
  size_t copies = 0;
  for (size_t i = 0; i < n; i++)
    copies += r[i].type == BPF_DEVCG_DEV_CHAR && r[i].maj == 1 && r[i].min == 3;
  CHECK(copies == 1);
  CHECK(r[n - 1].maj == 1 && r[n - 1].min == 3 && r[n - 1].allow && r[n - 1].access == 7);
  free(r);
  /* a deny between two copies: the later copy is kept, after the deny */
  json_t *tw = json_loads(twice, 0, NULL);
  r = crater__device_rules(tw, NULL, &n);
  CHECK(n == 3 + ndef);
  CHECK(!r[1].allow && r[1].min == 11 && r[2].allow && r[2].min == 11);
  free(r);
  json_decref(tw);
  json_decref(devs);
  json_decref(lin);
}

static off_t
file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The program of rules, as apply builds it: its size in bytes. */
static off_t
program_bytes(const char *dir, const char *rules, const char *root)
{
  char path[4200];
  snprintf(path, sizeof path, "%s/device-filter.bpf", root);
  unlink(path);
  crater__devices_bpf_preload(); /* no file: nothing loaded, the file kept up to date */
  CHECK(preloaded.insns == NULL && preloaded.fd < 0);
  json_t *devs = json_loads(rules, 0, NULL);
  crater_error_t err = NULL;
  CHECK(mkdir(dir, 0755) == 0);
  CHECK_OK(crater__devices_bpf_apply(dir, devs, NULL, &err));
  json_decref(devs);
  CHECK(rmdir(dir) == 0);
  return file_size(path);
}

/* The id of the program behind fd. */
static __u32
prog_id(int fd)
{
  struct bpf_prog_info info;
  memset(&info, 0, sizeof info);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.info.bpf_fd = (__u32) fd;
  a.info.info_len = sizeof info;
  a.info.info = (__u64) (uintptr_t) &info;
  CHECK(syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &a, sizeof a) == 0);
  return info.id;
}

/* The id of the one program attached to cgroup dir, 0 for none. */
static __u32
attached_id(const char *dir)
{
  union bpf_attr q;
  memset(&q, 0, sizeof q);
  __u32 ids[4] = { 0 };
  int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(cfd >= 0);
  q.query.target_fd = (__u32) cfd;
  q.query.attach_type = BPF_CGROUP_DEVICE;
  q.query.prog_ids = (__u64) (uintptr_t) ids;
  q.query.prog_cnt = 4;
  CHECK(syscall(SYS_bpf, BPF_PROG_QUERY, &q, sizeof q) == 0);
  close(cfd);
  CHECK(q.query.prog_cnt <= 1);
  return q.query.prog_cnt ? ids[0] : 0;
}

/* Applies rules to a fresh cgroup dir; the id of the program attached. */
static __u32
apply_rules(const char *dir, const char *rules)
{
  json_t *devs = json_loads(rules, 0, NULL);
  crater_error_t err = NULL;
  CHECK(mkdir(dir, 0755) == 0);
  CHECK_OK(crater__devices_bpf_apply(dir, devs, NULL, &err));
  json_decref(devs);
  __u32 id = attached_id(dir);
  CHECK(rmdir(dir) == 0);
  return id;
}

static void
test_preload(const char *dir, const char *tmp)
{
  char root[4200], path[4300];
  snprintf(root, sizeof root, "%s/rtroot", tmp);
  snprintf(path, sizeof path, "%s/device-filter.bpf", root);
  crater__rt_opts.root = root;
  const char *deny_all = "[{\"allow\": false, \"access\": \"rwm\"}]";
  /* the first load leaves its program under the root, 0600 */
  off_t size = program_bytes(dir, deny_all, root);
  CHECK(size > 0 && size % (off_t) sizeof(struct bpf_insn) == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  /* loaded ahead, then taken by an apply that builds the same program,
   * which still filters */
  crater__devices_bpf_preload();
  CHECK(preloaded.insns != NULL && preloaded.fd >= 0);
  __u32 ahead = prog_id(preloaded.fd);
  CHECK(apply_rules(dir, deny_all) == ahead);
  CHECK(preloaded.insns == NULL && preloaded.fd < 0);
  crater__devices_bpf_preload();
  CHECK(in_filtered_child(dir, deny_all, checks_deny_all, tmp) == 0);
  CHECK(preloaded.insns == NULL && preloaded.fd < 0);
  CHECK(file_size(path) == size);
  /* a stale one (another program) is loaded ahead but not attached: the
   * rules' own program is, and the file follows it */
  off_t other = program_bytes(dir, twice, root);
  CHECK(other > 0 && other != size);
  crater__devices_bpf_preload();
  CHECK(preloaded.fd >= 0 && preloaded.n * sizeof(struct bpf_insn) == (size_t) other);
  ahead = prog_id(preloaded.fd);
  __u32 used = apply_rules(dir, deny_all);
  CHECK(used != 0 && used != ahead);
  CHECK(preloaded.insns == NULL && preloaded.fd < 0);
  CHECK(file_size(path) == size);
  CHECK(program_bytes(dir, twice, root) == other);
  crater__devices_bpf_preload();
  CHECK(in_filtered_child(dir, deny_all, checks_deny_all, tmp) == 0);
  CHECK(preloaded.insns == NULL && preloaded.fd < 0);
  CHECK(file_size(path) == size);
  /* a tampered one (no program at all) is not loaded; nothing else changes */
  int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  CHECK(fd >= 0);
  unsigned char junk[64];
  memset(junk, 0xff, sizeof junk);
  CHECK(write(fd, junk, sizeof junk) == (ssize_t) sizeof junk);
  close(fd);
  crater__devices_bpf_preload();
  CHECK(preloaded.insns == NULL && preloaded.fd < 0);
  CHECK(in_filtered_child(dir, twice, checks_read_only, tmp) == 0);
  CHECK(file_size(path) == other);
  /* allow-all attaches nothing and drops what was loaded ahead */
  crater__devices_bpf_preload();
  CHECK(preloaded.fd >= 0);
  CHECK(mkdir(dir, 0755) == 0);
  json_t *all = json_loads("[{\"allow\": true, \"access\": \"rwm\"}]", 0, NULL);
  crater_error_t err = NULL;
  CHECK_OK(crater__devices_bpf_apply(dir, all, NULL, &err));
  json_decref(all);
  CHECK(preloaded.insns == NULL && preloaded.fd < 0);
  CHECK(rmdir(dir) == 0);
  unlink(path);
  rmdir(root);
}

int
main(void)
{
  test_dedup();
  if (geteuid() != 0)
    SKIP("needs root");
  const char *root = v2_root();
  if (root == NULL)
    SKIP("no cgroup2 mount");
  char *tmp = test_tmpdir("devbpf");
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/crater-test-devbpf-%d", root, (int) getpid());

  CHECK(in_filtered_child(dir, "[{\"allow\": false, \"access\": \"rwm\"}]", checks_deny_all, tmp) ==
        0);
  CHECK(in_filtered_child(dir,
                          "[{\"allow\": false, \"access\": \"rwm\"},"
                          " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11,"
                          "  \"access\": \"r\"}]",
                          checks_read_only, tmp) == 0);
  CHECK(in_filtered_child(dir,
                          "[{\"allow\": true, \"access\": \"rwm\"},"
                          " {\"allow\": false, \"type\": \"c\", \"major\": 1}]",
                          checks_last_wins, tmp) == 0);
  /* allow-all (privileged): no program is attached at all */
  CHECK(apply_rules(dir, "[{\"allow\": true, \"access\": \"rwm\"}]") == 0);
  CHECK(in_filtered_child(dir, twice, checks_read_only, tmp) == 0);
  test_preload(dir, tmp);
  rmdir(tmp);
  free(tmp);
  return 0;
}
