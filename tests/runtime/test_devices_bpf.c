/*
 * Unit test of the cgroup v2 device filter (src/runtime/devices_bpf.c): a
 * child moved into a v2 cgroup with the filter attached may mknod any node
 * (as under runc and crun) and open the default devices and what the
 * rules allow, and gets EPERM opening the rest; the last matching rule
 * decides.  Needs root and a cgroup2 mount: the unified
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

int
main(void)
{
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
  CHECK(mkdir(dir, 0755) == 0);
  json_t *all = json_loads("[{\"allow\": true, \"access\": \"rwm\"}]", 0, NULL);
  crater_error_t err = NULL;
  CHECK_OK(crater__devices_bpf_apply(dir, all, NULL, &err));
  json_decref(all);
  union bpf_attr q;
  memset(&q, 0, sizeof q);
  __u32 ids[4];
  int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(cfd >= 0);
  q.query.target_fd = (__u32) cfd;
  q.query.attach_type = BPF_CGROUP_DEVICE;
  q.query.prog_ids = (__u64) (uintptr_t) ids;
  q.query.prog_cnt = 4;
  CHECK(syscall(SYS_bpf, BPF_PROG_QUERY, &q, sizeof q) == 0);
  CHECK(q.query.prog_cnt == 0);
  close(cfd);
  CHECK(rmdir(dir) == 0);
  rmdir(tmp);
  free(tmp);
  return 0;
}
