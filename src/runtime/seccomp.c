/*
 * linux.seccomp -> libseccomp: default action (with defaultErrnoRet),
 * architectures, flags, per-syscall actions (ALLOW, ERRNO(n), KILL,
 * KILL_PROCESS, KILL_THREAD, TRAP, TRACE(n), LOG, NOTIFY) and argument
 * conditions with every comparison op.  Several conditions on the same
 * argument cannot live in one libseccomp rule, so they become one rule each
 * (OR), as other runtimes do.  Syscall names unknown to this libseccomp
 * are skipped with a debug line, so one profile serves several kernels.
 * The default profile (policies/seccomp-default.json) is embedded.
 *
 * Compiled filters are cached.  libseccomp takes 6-8 ms to turn the
 * default profile (~400 rules, three architectures) into BPF, most of a
 * container's start.  crater__seccomp_prepare compiles once per profile
 * into <root>/seccomp-cache/<hash>.bpf (the file starts with the canonical
 * JSON, libseccomp's version and API level it was compiled from, compared
 * in full on every read, so a hash collision can only miss; the runtime
 * root is on tmpfs, so the cache goes with a reboot; no libcrypto: loading
 * it cost every runtime exec ~0.7 ms) and keeps the program in memory; the
 * container process (cloned from the preparing process) installs it with
 * seccomp(2) directly.  Without a prepared program crater__seccomp_apply
 * compiles and loads as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

static int
parse_action(const char *s, json_t *rule, json_int_t def_errno, uint32_t *out)
{
  json_int_t eret = crater__ji(rule, "errnoRet", def_errno);
  if (s == NULL)
    return -1;
  if (strcmp(s, "SCMP_ACT_ALLOW") == 0)
    *out = SCMP_ACT_ALLOW;
  else if (strcmp(s, "SCMP_ACT_ERRNO") == 0)
    *out = SCMP_ACT_ERRNO((uint16_t) eret);
  else if (strcmp(s, "SCMP_ACT_KILL") == 0 || strcmp(s, "SCMP_ACT_KILL_THREAD") == 0)
    *out = SCMP_ACT_KILL_THREAD;
  else if (strcmp(s, "SCMP_ACT_KILL_PROCESS") == 0)
    *out = SCMP_ACT_KILL_PROCESS;
  else if (strcmp(s, "SCMP_ACT_TRAP") == 0)
    *out = SCMP_ACT_TRAP;
  else if (strcmp(s, "SCMP_ACT_TRACE") == 0)
    *out = SCMP_ACT_TRACE((uint16_t) eret);
  else if (strcmp(s, "SCMP_ACT_LOG") == 0)
    *out = SCMP_ACT_LOG;
  else if (strcmp(s, "SCMP_ACT_NOTIFY") == 0)
    *out = SCMP_ACT_NOTIFY;
  else
    return -1;
  return 0;
}

static int
parse_op(const char *s, enum scmp_compare *op)
{
  static const struct {
    const char *n;
    enum scmp_compare op;
  } ops[] = {
    { "SCMP_CMP_NE", SCMP_CMP_NE },
    { "SCMP_CMP_LT", SCMP_CMP_LT },
    { "SCMP_CMP_LE", SCMP_CMP_LE },
    { "SCMP_CMP_EQ", SCMP_CMP_EQ },
    { "SCMP_CMP_GE", SCMP_CMP_GE },
    { "SCMP_CMP_GT", SCMP_CMP_GT },
    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
  };
  for (size_t i = 0; s && i < sizeof ops / sizeof *ops; i++)
    if (strcmp(s, ops[i].n) == 0) {
      *op = ops[i].op;
      return 0;
    }
  return -1;
}

static int
add_rule(scmp_filter_ctx ctx, uint32_t act, int nr, json_t *args, crater_error_t *err,
         const char *name)
{
  size_t n = json_array_size(args);
  struct scmp_arg_cmp cmp[6];
  bool dup = false;
  unsigned seen = 0;
  if (n > 6)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                             "seccomp rule for %s: too many args", name);
  for (size_t i = 0; i < n; i++) {
    json_t *a = json_array_get(args, i);
    json_int_t idx = crater__ji(a, "index", -1);
    enum scmp_compare op;
    if (idx < 0 || idx > 5 || parse_op(crater__js(a, "op"), &op) < 0)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "seccomp rule for %s: bad argument %zu", name, i);
    json_t *v = json_object_get(a, "value"), *v2 = json_object_get(a, "valueTwo");
    uint64_t val =
        json_is_integer(v) ? (uint64_t) json_integer_value(v) : (uint64_t) json_number_value(v);
    uint64_t val2 =
        json_is_integer(v2) ? (uint64_t) json_integer_value(v2) : (uint64_t) json_number_value(v2);
    if (seen & (1u << idx))
      dup = true;
    seen |= 1u << idx;
    cmp[i] =
        (struct scmp_arg_cmp){ .arg = (unsigned) idx, .op = op, .datum_a = val, .datum_b = val2 };
  }
  int r;
  if (!dup) {
    r = seccomp_rule_add_array(ctx, act, nr, (unsigned) n, n ? cmp : NULL);
  } else {
    r = 0;
    for (size_t i = 0; i < n && r == 0; i++)
      r = seccomp_rule_add_array(ctx, act, nr, 1, &cmp[i]);
  }
  if (r < 0)
    return crater_error_sys(err, -r, "seccomp rule for %s", name);
  return 0;
}

/* The spec's seccomp flags: libseccomp's attribute and the seccomp(2)
 * flag each one stands for. */
static const struct {
  const char *name;
  enum scmp_filter_attr attr;
  unsigned flag;
} filter_flags[] = {
  { "SECCOMP_FILTER_FLAG_LOG", SCMP_FLTATR_CTL_LOG, SECCOMP_FILTER_FLAG_LOG },
  { "SECCOMP_FILTER_FLAG_SPEC_ALLOW", SCMP_FLTATR_CTL_SSB, SECCOMP_FILTER_FLAG_SPEC_ALLOW },
  { "SECCOMP_FILTER_FLAG_TSYNC", SCMP_FLTATR_CTL_TSYNC, SECCOMP_FILTER_FLAG_TSYNC },
};

/* The filter_flags entry named f, or -1. */
static int
filter_flag(const char *f)
{
  for (size_t k = 0; f && k < sizeof filter_flags / sizeof *filter_flags; k++)
    if (strcmp(f, filter_flags[k].name) == 0)
      return (int) k;
  return -1;
}

/* Builds the libseccomp context for sc (NULL + err on failure); *notify
 * and *flags (SECCOMP_FILTER_FLAG_*) describe how to load it. */
static scmp_filter_ctx
build_ctx(json_t *sc, bool *notify_out, unsigned *flags_out, crater_error_t *err)
{
  json_int_t def_errno = crater__ji(sc, "defaultErrnoRet", EPERM);
  uint32_t defact;
  if (parse_action(crater__js(sc, "defaultAction"), NULL, def_errno, &defact) < 0) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "seccomp: bad defaultAction '%s'",
                      crater__js(sc, "defaultAction") ? crater__js(sc, "defaultAction") : "");
    return NULL;
  }
  scmp_filter_ctx ctx = seccomp_init(defact);
  if (ctx == NULL) {
    crater_error_make(err, CRATER_ERR_INTERNAL, 0, "seccomp_init failed");
    return NULL;
  }
  int r;
  bool notify = false;
  unsigned flags = 0;
  size_t i;
  json_t *v;
  /* libseccomp sets no_new_privs itself on load unless told not to; the
   * caller decides (process.noNewPrivileges), as runc does.  Without NNP the
   * filter is loaded while CAP_SYS_ADMIN is still held. */
  r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (r < 0) {
    crater_error_sys(err, -r, "seccomp: clear nnp attribute");
    goto done;
  }
  /* A binary tree over syscall numbers instead of libseccomp's default
   * linear list: the default profile's ~1000 instructions became a few
   * dozen per syscall.  It matters at load too: the kernel evaluates the
   * filter for every syscall number to build its allow cache, which took
   * ~0.9 ms per container start with the linear list (docs/design/runtime.md).
   * Needs libseccomp 2.5 and API level 3 or later; otherwise the default. */
  if (seccomp_api_get() >= 3)
    (void) seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  json_array_foreach(json_object_get(sc, "architectures"), i, v)
  {
    const char *a = json_string_value(v);
    if (a == NULL)
      continue;
    char lower[64];
    snprintf(lower, sizeof lower, "%s", strncmp(a, "SCMP_ARCH_", 10) == 0 ? a + 10 : a);
    for (char *p = lower; *p; p++)
      *p = (char) (*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    uint32_t arch = seccomp_arch_resolve_name(lower);
    if (arch == 0) {
      rt_debug("seccomp: unknown arch %s ignored", a);
      continue;
    }
    r = seccomp_arch_add(ctx, arch);
    if (r < 0 && r != -EEXIST) {
      crater_error_sys(err, -r, "seccomp: add arch %s", a);
      goto done;
    }
  }
  json_array_foreach(json_object_get(sc, "flags"), i, v)
  {
    const char *f = json_string_value(v);
    if (f == NULL)
      continue;
    int k = filter_flag(f);
    if (k < 0) {
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "seccomp: unknown flag %s", f);
      goto done;
    }
    r = seccomp_attr_set(ctx, filter_flags[k].attr, 1);
    flags |= filter_flags[k].flag;
    if (r < 0) {
      crater_error_sys(err, -r, "seccomp: flag %s", f);
      goto done;
    }
  }
  json_t *rule;
  json_array_foreach(json_object_get(sc, "syscalls"), i, rule)
  {
    uint32_t act;
    if (parse_action(crater__js(rule, "action"), rule, def_errno, &act) < 0) {
      crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "seccomp: bad action '%s'",
                        crater__js(rule, "action") ? crater__js(rule, "action") : "");
      goto done;
    }
    if (act == SCMP_ACT_NOTIFY)
      notify = true;
    if (act == defact)
      continue; /* libseccomp refuses rules equal to the default */
    size_t j;
    json_t *nm;
    json_array_foreach(json_object_get(rule, "names"), j, nm)
    {
      const char *name = json_string_value(nm);
      int nr = name ? seccomp_syscall_resolve_name(name) : __NR_SCMP_ERROR;
      if (nr == __NR_SCMP_ERROR) {
        rt_debug("seccomp: unknown syscall %s ignored", name ? name : "?");
        continue;
      }
      if (add_rule(ctx, act, nr, json_object_get(rule, "args"), err, name) < 0)
        goto done;
    }
  }
  *notify_out = notify;
  *flags_out = flags;
  return ctx;
done:
  seccomp_release(ctx);
  return NULL;
}

/* A compiled filter, prepared before the container process is cloned. */
static struct {
  json_t *sc; /* the profile it was prepared for (identity) */
  struct sock_filter *insns;
  unsigned short len;
  unsigned flags;
  bool notify;
} prepared;

/* What a cached program was compiled from: the profile's canonical JSON
 * and libseccomp's version and API level.  malloc'd. */
static char *
cache_source(json_t *sc)
{
  char *canon = json_dumps(sc, JSON_SORT_KEYS | JSON_COMPACT);
  if (canon == NULL)
    return NULL;
  const struct scmp_version *v = seccomp_version();
  char *src = xasprintf("crater-seccomp 2 libseccomp %u.%u.%u api %u\n%s", v->major, v->minor,
                        v->micro, seccomp_api_get(), canon);
  free(canon);
  return src;
}

/* FNV-1a, 64 bits: names the cache file; the file's own header decides. */
static uint64_t
fnv1a(const char *s)
{
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 1099511628211ULL;
  return h;
}

/* Reads a cached program made from src: the file is src, a NUL, then the
 * instructions.  False when absent, foreign or malformed. */
static bool
cache_read(const char *path, const char *src)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct stat st;
  size_t hl = strlen(src) + 1;
  bool ok = false;
  char *buf = NULL;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
      (size_t) st.st_size > hl && st.st_size < (off_t) (hl + 8 * BPF_MAXINSNS)) {
    size_t n = (size_t) st.st_size - hl;
    buf = xmalloc((size_t) st.st_size);
    if (read(fd, buf, (size_t) st.st_size) == st.st_size && memcmp(buf, src, hl) == 0 &&
        n % sizeof(struct sock_filter) == 0) {
      prepared.insns = xmalloc(n);
      memcpy(prepared.insns, buf + hl, n);
      prepared.len = (unsigned short) (n / sizeof(struct sock_filter));
      ok = true;
    }
  }
  free(buf);
  close(fd);
  return ok;
}

int
crater__seccomp_prepare(json_t *sc, crater_error_t *err)
{
  if (!json_is_object(sc) || prepared.sc == sc)
    return 0;
  bool notify = false;
  unsigned flags = 0;
  cleanup_free char *src = cache_source(sc);
  cleanup_free char *dir = crater__path_join(crater__rt_opts.root, "seccomp-cache");
  cleanup_free char *path =
      src ? xasprintf("%s/%016llx.bpf", dir, (unsigned long long) fnv1a(src)) : NULL;
  /* flags and notify come from the profile: cheap, no libseccomp */
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(sc, "flags"), i, v)
  {
    int k = filter_flag(json_string_value(v));
    if (k >= 0)
      flags |= filter_flags[k].flag;
  }
  json_array_foreach(json_object_get(sc, "syscalls"), i, v)
  {
    const char *a = crater__js(v, "action");
    if (a && strcmp(a, "SCMP_ACT_NOTIFY") == 0)
      notify = true;
  }
  if (path && cache_read(path, src)) {
    prepared.sc = sc;
    prepared.flags = flags;
    prepared.notify = notify;
    return 0;
  }
  scmp_filter_ctx ctx = build_ctx(sc, &notify, &flags, err);
  if (ctx == NULL)
    return -1;
  int mfd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
  int r = mfd < 0 ? -errno : seccomp_export_bpf(ctx, mfd);
  seccomp_release(ctx);
  off_t size = r == 0 ? lseek(mfd, 0, SEEK_END) : -1;
  if (r < 0 || size <= 0 || size % (off_t) sizeof(struct sock_filter) != 0 ||
      size / (off_t) sizeof(struct sock_filter) > BPF_MAXINSNS) {
    if (mfd >= 0)
      close(mfd);
    return crater_error_sys(err, r < 0 ? -r : EINVAL, "seccomp: export the compiled filter");
  }
  prepared.insns = xmalloc((size_t) size);
  if (pread(mfd, prepared.insns, (size_t) size, 0) != size) {
    close(mfd);
    free(prepared.insns);
    prepared.insns = NULL;
    return crater_error_sys(err, errno, "seccomp: read the compiled filter");
  }
  close(mfd);
  prepared.len = (unsigned short) (size / (off_t) sizeof(struct sock_filter));
  prepared.sc = sc;
  prepared.flags = flags;
  prepared.notify = notify;
  /* best effort: a failed cache write only costs the next start */
  if (path && (mkdir(dir, 0700) == 0 || errno == EEXIST)) {
    size_t hl = strlen(src) + 1;
    char *file = xmalloc(hl + (size_t) size);
    memcpy(file, src, hl);
    memcpy(file + hl, prepared.insns, (size_t) size);
    crater_error_t e = NULL;
    if (crater__write_file_atomic(path, file, hl + (size_t) size, 0600, &e) < 0)
      rt_debug("seccomp cache %s: %s", path, e->msg);
    crater_error_release(&e);
    free(file);
  }
  return 0;
}

int
crater__seccomp_apply(json_t *sc, crater_error_t *err)
{
  if (!json_is_object(sc))
    return 0;
  if (prepared.sc == sc && prepared.insns) {
    struct sock_fprog prog = { .len = prepared.len, .filter = prepared.insns };
    unsigned flags = prepared.flags | (prepared.notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0);
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (r < 0)
      return crater_error_sys(err, errno, "load seccomp filter");
    return prepared.notify ? (int) r : 0;
  }
  bool notify = false;
  unsigned flags = 0;
  scmp_filter_ctx ctx = build_ctx(sc, &notify, &flags, err);
  if (ctx == NULL)
    return -1;
  int ret = -1, r = seccomp_load(ctx);
  if (r < 0) {
    crater_error_sys(err, -r, "load seccomp filter");
  } else {
    ret = 0;
    if (notify) {
      r = seccomp_notify_fd(ctx);
      ret = r > 0 ? r : 0;
    }
  }
  seccomp_release(ctx);
  return ret;
}
