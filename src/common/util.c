/*
 * Filesystem and string helpers.  See util.h.
 */
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* Bottom-up: the common case (parents there) is one mkdir, not one per
 * component; a missing parent is made first, then the path again. */
static int
mkdir_p_in(char *p, mode_t mode, crater_error_t *err)
{
  if (mkdir(p, mode) == 0 || errno == EEXIST)
    return 0;
  char *slash = strrchr(p, '/');
  if (errno != ENOENT || slash == NULL || slash == p)
    return crater_error_sys(err, errno, "mkdir %s", p);
  *slash = '\0';
  int r = mkdir_p_in(p, mode, err);
  *slash = '/';
  if (r < 0)
    return -1;
  if (mkdir(p, mode) < 0 && errno != EEXIST)
    return crater_error_sys(err, errno, "mkdir %s", p);
  return 0;
}

int
crater__mkdir_p(const char *path, mode_t mode, crater_error_t *err)
{
  cleanup_free char *p = xstrdup(path);
  size_t len = strlen(p);
  while (len > 1 && p[len - 1] == '/')
    p[--len] = '\0';
  return mkdir_p_in(p, mode, err);
}

int
crater__write_all(int fd, const void *buf, size_t n, crater_error_t *err)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return crater_error_sys(err, errno, "write");
    }
    p += w;
    n -= (size_t) w;
  }
  return 0;
}

ssize_t
crater__read_all(int fd, void *buf, size_t n, crater_error_t *err)
{
  char *p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return crater_error_sys(err, errno, "read");
    }
    if (r == 0)
      break;
    got += (size_t) r;
  }
  return (ssize_t) got;
}

char *
crater__read_file(const char *path, size_t max, size_t *len_out, crater_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    crater_error_sys(err, errno, "open %s", path);
    return NULL;
  }
  size_t cap = 4096, len = 0;
  cleanup_free char *buf = xmalloc(cap + 1);
  for (;;) {
    if (len == cap) {
      if (cap >= max) {
        crater_error_make(err, CRATER_ERR_RESOURCE_EXHAUSTED, EFBIG,
                          "read %s: larger than %zu bytes", path, max);
        return NULL;
      }
      cap = cap * 2 > max ? max : cap * 2;
      buf = xrealloc(buf, cap + 1);
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      crater_error_sys(err, errno, "read %s", path);
      return NULL;
    }
    if (r == 0)
      break;
    len += (size_t) r;
  }
  buf[len] = '\0';
  if (len_out)
    *len_out = len;
  return steal_pointer(&buf);
}

int
crater__fsync_dir(const char *path, crater_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open dir %s", path);
  if (fsync(fd) < 0)
    return crater_error_sys(err, errno, "fsync dir %s", path);
  return 0;
}

static int
write_replace(const char *path, const void *buf, size_t n, mode_t mode, bool durable,
              crater_error_t *err)
{
  cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int) getpid());
  cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return crater_error_sys(err, errno, "create %s", tmp);
  if (crater__write_all(fd, buf, n, err) < 0 || (durable && fsync(fd) < 0)) {
    if (*err == NULL)
      crater_error_sys(err, errno, "fsync %s", tmp);
    unlink(tmp);
    return crater_error_wrap(err, "write %s", path);
  }
  if (rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    return crater_error_sys(err, e, "rename %s", path);
  }
  if (!durable)
    return 0;
  cleanup_free char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL)
    return crater__fsync_dir(".", err);
  slash[slash == dir ? 1 : 0] = '\0';
  return crater__fsync_dir(dir, err);
}

int
crater__write_file_atomic(const char *path, const void *buf, size_t n, mode_t mode,
                          crater_error_t *err)
{
  return write_replace(path, buf, n, mode, true, err);
}

int
crater__write_file_replace(const char *path, const void *buf, size_t n, mode_t mode,
                           crater_error_t *err)
{
  return write_replace(path, buf, n, mode, false, err);
}

static int
remove_at(int parentfd, const char *name, crater_error_t *err)
{
  if (unlinkat(parentfd, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return crater_error_sys(err, errno, "unlink %s", name);
  int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "open %s", name);
  cleanup_dir DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return crater_error_sys(err, errno, "opendir %s", name);
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (remove_at(dirfd(d), de->d_name, err) < 0)
      return crater_error_wrap(err, "%s", name);
  }
  if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return crater_error_sys(err, errno, "rmdir %s", name);
  return 0;
}

int
crater__remove_all(const char *path, crater_error_t *err)
{
  return remove_at(AT_FDCWD, path, err);
}

void
crater__hex_encode(const unsigned char *in, size_t n, char *out)
{
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[in[i] >> 4];
    out[2 * i + 1] = hex[in[i] & 15];
  }
  out[2 * n] = '\0';
}

void
crater__base64_encode(const void *in, size_t n, char *out)
{
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = in;
  size_t i = 0;
  for (; i + 3 <= n; i += 3, p += 3) {
    uint32_t v = (uint32_t) p[0] << 16 | (uint32_t) p[1] << 8 | p[2];
    *out++ = b64[v >> 18];
    *out++ = b64[(v >> 12) & 63];
    *out++ = b64[(v >> 6) & 63];
    *out++ = b64[v & 63];
  }
  if (n - i > 0) {
    uint32_t v = (uint32_t) p[0] << 16 | (n - i == 2 ? (uint32_t) p[1] << 8 : 0);
    *out++ = b64[v >> 18];
    *out++ = b64[(v >> 12) & 63];
    *out++ = n - i == 2 ? b64[(v >> 6) & 63] : '=';
    *out++ = '=';
  }
  *out = '\0';
}

int64_t
crater__now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
crater__mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
crater__mono_ms(void)
{
  return crater__mono_ns() / 1000000;
}

char *
crater__path_join(const char *a, const char *b)
{
  size_t la = strlen(a);
  while (la > 1 && a[la - 1] == '/')
    la--;
  while (*b == '/')
    b++;
  return xasprintf("%.*s/%s", (int) la, a, b);
}

bool
crater__str_has_prefix(const char *s, const char *prefix)
{
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
crater__is_executable(const char *path, struct stat *st)
{
  if (stat(path, st) < 0) {
    st->st_mode = 0;
    return false;
  }
  return S_ISREG(st->st_mode) && access(path, X_OK) == 0;
}

char *
crater__proc_stat_fields(pid_t pid, char *buf, size_t size)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0)
    return NULL;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* after the command name, which may hold anything */
  return p && p[1] == ' ' && p[2] != '\0' ? p + 2 : NULL;
}

/* The CPU pid last ran on (field 39 of /proc/PID/stat), -1 if unknown. */
static int
task_cpu(pid_t pid)
{
  char buf[1024];
  char *p = crater__proc_stat_fields(pid, buf, sizeof buf);
  /* p is at field 3; processor is field 39 */
  for (int field = 3; field < 39 && p; field++)
    if ((p = strchr(p, ' ')) != NULL)
      p++;
  return p ? atoi(p) : -1;
}

void
crater__leave_cpu(pid_t child)
{
  cpu_set_t orig, others;
  int cpu = sched_getcpu();
  /* the kernel may have moved the child already (exec balancing) */
  if (cpu < 0 || (child > 0 && task_cpu(child) != cpu))
    return;
  if (sched_getaffinity(0, sizeof orig, &orig) < 0 || !CPU_ISSET(cpu, &orig))
    return;
  others = orig;
  CPU_CLR(cpu, &others);
  if (CPU_COUNT(&others) == 0)
    return;
  if (sched_setaffinity(0, sizeof others, &others) == 0)
    sched_setaffinity(0, sizeof orig, &orig);
}
