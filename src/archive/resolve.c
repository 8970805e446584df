/*
 * Resolving paths inside a root directory fd.
 *
 * Preferred: openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), which treats
 * the root as "/" for every symlink and "..", so nothing can resolve
 * outside it.  Fallback (kernels without openat2, or forced by
 * CRATER_APPLY_NO_OPENAT2): a component-by-component walk that opens each
 * component with O_PATH|O_NOFOLLOW, expands symlinks itself (absolute
 * targets restart at the root, ".." never climbs above it, at most 40 links)
 * and keeps a stack of directory fds for "..".  Either way the result is a
 * directory fd; leaves are then operated on with *at() calls that never
 * follow a final symlink.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "archive/archive_internal.h"
#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define MAX_SYMLINKS 40

static int
sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
  struct open_how how = { .flags = flags, .mode = 0, .resolve = resolve };
  return (int) syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int
crater__clean_path(const char *name, char *out, crater_error_t *err)
{
  if (name[0] == '/')
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0, "entry %s: absolute path", name);
  size_t o = 0;
  const char *p = name;
  while (*p) {
    const char *e = strchrnul(p, '/');
    size_t n = (size_t) (e - p);
    if (n == 0 || (n == 1 && p[0] == '.')) {
      /* skip */
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      if (o == 0)
        return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                                 "entry %s: path escapes the root", name);
      while (o > 0 && out[o - 1] != '/')
        o--;
      if (o > 0)
        o--; /* the slash */
    } else {
      if (o > 0)
        out[o++] = '/';
      memcpy(out + o, p, n);
      o += n;
    }
    p = *e ? e + 1 : e;
  }
  out[o] = '\0';
  return 0;
}

/* Fallback walk; see the file comment.  Returns an O_RDONLY dir fd. */
static int
walk_in_root(int root, const char *rel, bool create, crater_error_t *err)
{
  cleanup_free char *todo = xstrdup(rel);
  int *stack = NULL;
  size_t depth = 0, cap = 0;
  int links = 0;
  int cur = dup(root);
  int ret = -1;
  if (cur < 0)
    return crater_error_sys(err, errno, "dup root");

  char *p = todo;
  while (*p) {
    char *e = strchrnul(p, '/');
    char saved = *e;
    *e = '\0';
    const char *c = p;
    char *next = saved ? e + 1 : e;
    if (c[0] == '\0' || strcmp(c, ".") == 0) {
      p = next;
      continue;
    }
    if (strcmp(c, "..") == 0) {
      if (depth > 0) {
        close(cur);
        cur = stack[--depth];
      }
      p = next;
      continue;
    }
    int fd = openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST) {
        crater_error_sys(err, errno, "mkdir %s", c);
        goto done;
      }
      fd = openat(cur, c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      crater_error_sys(err, errno, "open %s", c);
      goto done;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
      crater_error_sys(err, errno, "stat %s", c);
      close(fd);
      goto done;
    }
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlinkat(fd, "", target, sizeof target - 1);
      close(fd);
      if (n < 0) {
        crater_error_sys(err, errno, "readlink %s", c);
        goto done;
      }
      target[n] = '\0';
      if (++links > MAX_SYMLINKS) {
        crater_error_sys(err, ELOOP, "resolve %s", rel);
        goto done;
      }
      if (target[0] == '/') { /* restart at the root */
        while (depth > 0)
          close(stack[--depth]);
        close(cur);
        cur = dup(root);
        if (cur < 0) {
          crater_error_sys(err, errno, "dup root");
          goto done;
        }
      }
      char *rest = xasprintf("%s/%s", target, next);
      free(todo);
      todo = rest;
      p = todo;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      close(fd);
      crater_error_sys(err, ENOTDIR, "resolve %s: %s", rel, c);
      goto done;
    }
    if (depth == cap) {
      cap = cap ? cap * 2 : 16;
      stack = xrealloc(stack, cap * sizeof *stack);
    }
    stack[depth++] = cur;
    cur = fd;
    p = next;
  }
  ret = openat(cur, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (ret < 0)
    crater_error_sys(err, errno, "open %s", rel[0] ? rel : ".");
done:
  while (depth > 0)
    close(stack[--depth]);
  free(stack);
  if (cur >= 0)
    close(cur);
  return ret;
}

static int
open_in_root(crater__resolver_t *r, const char *rel)
{
  if (!r->no_openat2) {
    int fd = sys_openat2(r->root, rel[0] ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                         RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd >= 0 || errno != ENOSYS)
      return fd;
    r->no_openat2 = true;
  }
  return -2; /* use the walk */
}

int
crater__resolve_dir(crater__resolver_t *r, const char *rel, bool create, crater_error_t *err)
{
  int fd = open_in_root(r, rel);
  if (fd == -2)
    return walk_in_root(r->root, rel, create, err);
  if (fd >= 0)
    return fd;
  if (errno != ENOENT || !create)
    return crater_error_sys(err, errno, "open %s", rel);

  /* Missing components (possibly behind a dangling symlink, which is
   * followed inside the root as containerd's RootPath + MkdirAll does):
   * the walk creates them with the same in-root semantics. */
  return walk_in_root(r->root, rel, true, err);
}

static int
remove_children(int dfd, crater_error_t *err)
{
  DIR *d = fdopendir(dfd);
  if (d == NULL) {
    int e = errno;
    close(dfd);
    return crater_error_sys(err, e, "opendir");
  }
  cleanup_dir DIR *dir = d;
  struct dirent *de;
  while ((errno = 0, de = readdir(dir)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (crater__remove_at(dirfd(dir), de->d_name, err) < 0)
      return -1;
  }
  if (errno != 0)
    return crater_error_sys(err, errno, "readdir");
  return 0;
}

int
crater__remove_at(int dirfd, const char *name, crater_error_t *err)
{
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return crater_error_sys(err, errno, "remove %s", name);
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return crater_error_sys(err, errno, "remove %s", name);
  if (remove_children(fd, err) < 0)
    return crater_error_wrap(err, "remove %s", name);
  if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return crater_error_sys(err, errno, "rmdir %s", name);
  return 0;
}

bool
crater__xattr_is_private(const char *name)
{
  return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
}
