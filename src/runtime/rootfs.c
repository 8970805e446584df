/*
 * The container's filesystem view, built inside its new mount namespace:
 * "/" made rslave (or rootfsPropagation), the rootfs bind-mounted on itself,
 * every spec mount performed on a destination resolved inside the rootfs
 * with openat2(RESOLVE_IN_ROOT) and addressed through /proc/self/fd/N (so a
 * symlink in the image can never redirect a mount to the host), /dev
 * populated, then pivot_root (or MS_MOVE + chroot with --no-pivot, for
 * initramfs roots where pivot_root is impossible), sysctls, masked and
 * read-only paths and the read-only root.
 *
 * With the annotation io.crater.rootfs.mounts (crater sets it for its own
 * containers), the rootfs itself is mounted here first, from the snapshot
 * mounts it names, so it exists only in the container's namespace and goes
 * with it: no mount on the host, and no unmount (an RCU grace period, 2-3
 * ms) on the host's side when the container ends (docs/design/runtime.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"
#include "snapshot/snapshot.h"

static int
openat2_in_root(int rootfd, const char *path, int flags)
{
  struct open_how how = { .flags = (uint64_t) (flags | O_CLOEXEC),
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  const char *p = path;
  while (*p == '/')
    p++;
  if (*p == '\0')
    p = ".";
  int fd;
  do
    fd = (int) syscall(SYS_openat2, rootfd, p, &how, sizeof how);
  while (fd < 0 && (errno == EAGAIN || errno == EINTR));
  return fd;
}

int
crater__open_in_root(int rootfd, const char *path, bool leaf_dir, bool create, crater_error_t *err)
{
  int fd = openat2_in_root(rootfd, path, O_PATH | (leaf_dir ? O_DIRECTORY : 0));
  if (fd >= 0 || errno != ENOENT || !create) {
    if (fd < 0)
      crater_error_sys(err, errno, "open %s in container root", path);
    return fd;
  }
  /* create missing components one at a time, each resolved in the root */
  cleanup_free char *buf = xstrdup(path);
  char *p = buf;
  while (*p == '/')
    p++;
  for (;;) {
    char *slash = strchr(p, '/');
    bool last = slash == NULL;
    while (slash && slash[1] == '/')
      memmove(slash + 1, slash + 2, strlen(slash + 1));
    if (slash && slash[1] == '\0')
      last = true;
    if (slash)
      *slash = '\0';
    int cur = openat2_in_root(rootfd, buf, O_PATH | ((!last || leaf_dir) ? O_DIRECTORY : 0));
    if (cur < 0 && errno == ENOENT) {
      char *base = strrchr(buf, '/');
      cleanup_free char *parent = base ? xstrndup(buf, (size_t) (base - buf)) : xstrdup("/");
      const char *name = base ? base + 1 : buf;
      cleanup_close int pfd = openat2_in_root(rootfd, *parent ? parent : "/", O_PATH | O_DIRECTORY);
      if (pfd < 0)
        return crater_error_sys(err, errno, "open %s in container root", parent);
      if (!last || leaf_dir) {
        if (mkdirat(pfd, name, 0755) < 0 && errno != EEXIST)
          return crater_error_sys(err, errno, "mkdir %s in container root", buf);
      } else {
        int f = openat(pfd, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f < 0 && errno != EEXIST)
          return crater_error_sys(err, errno, "create %s in container root", buf);
        if (f >= 0)
          close(f);
      }
      cur = openat2_in_root(rootfd, buf, O_PATH | ((!last || leaf_dir) ? O_DIRECTORY : 0));
    }
    if (cur < 0)
      return crater_error_sys(err, errno, "open %s in container root", buf);
    if (last)
      return cur;
    close(cur);
    *slash = '/';
    p = slash + 1;
  }
}

static const struct {
  const char *name;
  bool clear;
  unsigned long flag;
} mount_opts[] = {
  { "ro", false, MS_RDONLY },
  { "rw", true, MS_RDONLY },
  { "nosuid", false, MS_NOSUID },
  { "suid", true, MS_NOSUID },
  { "nodev", false, MS_NODEV },
  { "dev", true, MS_NODEV },
  { "noexec", false, MS_NOEXEC },
  { "exec", true, MS_NOEXEC },
  { "sync", false, MS_SYNCHRONOUS },
  { "async", true, MS_SYNCHRONOUS },
  { "dirsync", false, MS_DIRSYNC },
  { "remount", false, MS_REMOUNT },
  { "mand", false, MS_MANDLOCK },
  { "nomand", true, MS_MANDLOCK },
  { "atime", true, MS_NOATIME },
  { "noatime", false, MS_NOATIME },
  { "diratime", true, MS_NODIRATIME },
  { "nodiratime", false, MS_NODIRATIME },
  { "relatime", false, MS_RELATIME },
  { "norelatime", true, MS_RELATIME },
  { "strictatime", false, MS_STRICTATIME },
  { "nostrictatime", true, MS_STRICTATIME },
  { "bind", false, MS_BIND },
  { "rbind", false, MS_BIND | MS_REC },
};

static const struct {
  const char *name;
  unsigned long flag;
} prop_opts[] = {
  { "private", MS_PRIVATE },       { "rprivate", MS_PRIVATE | MS_REC },
  { "shared", MS_SHARED },         { "rshared", MS_SHARED | MS_REC },
  { "slave", MS_SLAVE },           { "rslave", MS_SLAVE | MS_REC },
  { "unbindable", MS_UNBINDABLE }, { "runbindable", MS_UNBINDABLE | MS_REC },
};

static void
parse_options(json_t *opts, unsigned long *flags, unsigned long *prop, char **data)
{
  *flags = 0;
  *prop = 0;
  cleanup_free char *d = NULL;
  size_t i;
  json_t *v;
  json_array_foreach(opts, i, v)
  {
    const char *o = json_string_value(v);
    if (o == NULL)
      continue;
    bool found = false;
    for (size_t k = 0; k < sizeof mount_opts / sizeof *mount_opts && !found; k++)
      if (strcmp(o, mount_opts[k].name) == 0) {
        found = true;
        if (mount_opts[k].clear)
          *flags &= ~mount_opts[k].flag;
        else
          *flags |= mount_opts[k].flag;
      }
    for (size_t k = 0; k < sizeof prop_opts / sizeof *prop_opts && !found; k++)
      if (strcmp(o, prop_opts[k].name) == 0) {
        found = true;
        *prop |= prop_opts[k].flag;
      }
    if (!found) {
      char *nd = d ? xasprintf("%s,%s", d, o) : xstrdup(o);
      free(d);
      d = nd;
    }
  }
  *data = steal_pointer(&d);
}

/* flags a user namespace locks on a mount: a remount must keep them */
static unsigned long
locked_flags(const char *fdpath)
{
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs(fdpath, &sv) < 0)
    return 0;
  if (sv.f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME)
    f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME)
    f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME)
    f |= MS_RELATIME;
  return f;
}

#define FDPATH(buf, fd) snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd)

static int
remount_top(int rootfd, const char *dest, unsigned long flags, unsigned long prop,
            crater_error_t *err)
{
  cleanup_close int fd = crater__open_in_root(rootfd, dest, false, false, err);
  if (fd < 0)
    return -1;
  char fp[64];
  FDPATH(fp, fd);
  if (flags && mount(NULL, fp, NULL, MS_BIND | MS_REMOUNT | flags | locked_flags(fp), NULL) < 0)
    return crater_error_sys(err, errno, "remount %s", dest);
  if (prop && mount(NULL, fp, NULL, prop, NULL) < 0)
    return crater_error_sys(err, errno, "set propagation of %s", dest);
  return 0;
}

static int
do_mount(crater_rootfs_ctx_t *ctx, int rootfd, json_t *m, bool *dev_bound, crater_error_t *err)
{
  const char *dest = crater__js(m, "destination");
  const char *type = crater__js(m, "type");
  const char *src = crater__js(m, "source");
  if (dest == NULL)
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "mount without destination");
  unsigned long flags, prop;
  cleanup_free char *data = NULL;
  parse_options(json_object_get(m, "options"), &flags, &prop, &data);
  bool bind = (flags & MS_BIND) || (type && strcmp(type, "bind") == 0);
  char fp[64];
  if (type && strcmp(type, "cgroup") == 0 && !bind) {
    return crater__cgroup_mount(ctx->cgroup_path, rootfd, dest, flags, ctx->new_cgroupns, err);
  }
  if (bind) {
    cleanup_free char *source =
        src && src[0] != '/' ? crater__path_join(ctx->bundle, src) : xstrdup(src);
    struct stat st;
    if (source == NULL || stat(source, &st) < 0)
      return crater_error_sys(err, source ? errno : EINVAL, "bind mount source %s",
                              source ? source : "(none)");
    if (strcmp(dest, "/dev") == 0)
      *dev_bound = true;
    cleanup_close int fd = crater__open_in_root(rootfd, dest, S_ISDIR(st.st_mode), true, err);
    if (fd < 0)
      return -1;
    FDPATH(fp, fd);
    if (mount(source, fp, NULL, MS_BIND | (flags & MS_REC), NULL) < 0)
      return crater_error_sys(err, errno, "bind mount %s on %s", source, dest);
    unsigned long extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (extra || prop)
      return remount_top(rootfd, dest, extra ? (extra | (flags & MS_REC)) : 0, prop, err);
    return 0;
  }
  cleanup_close int fd = crater__open_in_root(rootfd, dest, true, true, err);
  if (fd < 0)
    return -1;
  FDPATH(fp, fd);
  if (mount(src ? src : type, fp, type, flags, data) < 0) {
    int e = errno;
    /* in a user namespace without its own netns/ipcns some kernel
     * filesystems cannot be mounted: fall back to binds like runc */
    const char *host = NULL;
    if (type && strcmp(type, "sysfs") == 0 && (e == EPERM || e == EBUSY))
      host = "/sys";
    else if (type && strcmp(type, "mqueue") == 0 && (e == EPERM || e == EBUSY))
      host = "/dev/mqueue";
    if (host == NULL || mount(host, fp, NULL, MS_BIND | MS_REC, NULL) < 0)
      return crater_error_sys(err, e, "mount %s on %s", type ? type : "(none)", dest);
    if ((flags & MS_RDONLY) && remount_top(rootfd, dest, MS_RDONLY | MS_REC, 0, err) < 0)
      return -1;
  }
  if (prop)
    return remount_top(rootfd, dest, 0, prop, err);
  return 0;
}

static const struct {
  const char *name;
  unsigned maj, min;
} default_devs[] = {
  { "null", 1, 3 },   { "zero", 1, 5 },    { "full", 1, 7 },
  { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

static int
make_dev(crater_rootfs_ctx_t *ctx, int rootfd, const char *path, mode_t type, unsigned maj,
         unsigned min, mode_t perm, uid_t uid, gid_t gid, crater_error_t *err)
{
  cleanup_free char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  const char *name = slash ? slash + 1 : dir;
  if (slash)
    *slash = '\0';
  cleanup_close int dfd = crater__open_in_root(rootfd, *dir ? dir : "/", true, true, err);
  if (dfd < 0)
    return -1;
  if (!ctx->new_userns && mknodat(dfd, name, type | perm, makedev(maj, min)) == 0) {
    /* the mode exactly (0666 for /dev/null...), whatever our umask took
     * from it: a container user other than root must be able to write
     * /dev/null, as under runc */
    if (fchmodat(dfd, name, perm, 0) < 0)
      return crater_error_sys(err, errno, "chmod %s", path);
    if (fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
      return crater_error_sys(err, errno, "chown %s", path);
    return 0;
  }
  if (!ctx->new_userns && errno == EEXIST)
    return 0;
  /* user namespace (or mknod refused): bind the host node */
  cleanup_close int fd = crater__open_in_root(rootfd, path, false, true, err);
  if (fd < 0)
    return -1;
  char fp[64];
  FDPATH(fp, fd);
  if (mount(path, fp, NULL, MS_BIND, NULL) < 0)
    return crater_error_sys(err, errno, "bind mount host %s", path);
  return 0;
}

static int
setup_dev(crater_rootfs_ctx_t *ctx, int rootfd, bool dev_bound, crater_error_t *err)
{
  if (!dev_bound) {
    for (size_t i = 0; i < sizeof default_devs / sizeof *default_devs; i++) {
      cleanup_free char *p = xasprintf("/dev/%s", default_devs[i].name);
      if (make_dev(ctx, rootfd, p, S_IFCHR, default_devs[i].maj, default_devs[i].min, 0666, 0, 0,
                   err) < 0)
        return -1;
    }
    cleanup_close int dfd = crater__open_in_root(rootfd, "/dev", true, true, err);
    if (dfd < 0)
      return -1;
    static const char *const links[][2] = {
      { "/proc/self/fd", "fd" },       { "/proc/self/fd/0", "stdin" },
      { "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
      { "pts/ptmx", "ptmx" },
    };
    for (size_t i = 0; i < sizeof links / sizeof *links; i++)
      if (symlinkat(links[i][0], dfd, links[i][1]) < 0 && errno != EEXIST)
        return crater_error_sys(err, errno, "symlink /dev/%s", links[i][1]);
    if (access("/proc/kcore", F_OK) == 0 && symlinkat("/proc/kcore", dfd, "core") < 0 &&
        errno != EEXIST)
      return crater_error_sys(err, errno, "symlink /dev/core");
  }
  size_t i;
  json_t *d;
  json_array_foreach(crater__jpath(ctx->config, "linux.devices"), i, d)
  {
    const char *path = crater__js(d, "path"), *t = crater__js(d, "type");
    if (path == NULL || t == NULL)
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL,
                               "linux.devices entry needs path and type");
    mode_t type = *t == 'b' ? S_IFBLK : *t == 'p' ? S_IFIFO : S_IFCHR;
    mode_t mode = (mode_t) crater__ji(d, "fileMode", 0666) & 07777;
    if (make_dev(ctx, rootfd, path, type, (unsigned) crater__ji(d, "major", 0),
                 (unsigned) crater__ji(d, "minor", 0), mode, (uid_t) crater__ji(d, "uid", 0),
                 (gid_t) crater__ji(d, "gid", 0), err) < 0)
      return crater_error_wrap(err, "device %s", path);
  }
  return 0;
}

/* Mounts the rootfs from the io.crater.rootfs.mounts annotation, a JSON
 * array of snapshot mounts [{type, source, target?, options?}], at
 * ctx->rootfs (in the new mount namespace).  0 when there is none. */
static int
mount_annotated_rootfs(crater_rootfs_ctx_t *ctx, crater_error_t *err)
{
  static const char key[] = "io.crater.rootfs.mounts";
  const char *txt = crater__js(json_object_get(ctx->config, "annotations"), key);
  if (txt == NULL)
    return 0;
  json_error_t je;
  json_t *arr = json_loads(txt, 0, &je);
  if (!json_is_array(arr) || json_array_size(arr) == 0) {
    json_decref(arr);
    return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                             "annotation %s: expected a non-empty JSON array of mounts", key);
  }
  crater_mounts_t m = { 0 };
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e)
  {
    const char *type = crater__js(e, "type"), *src = crater__js(e, "source");
    if (type == NULL || src == NULL) {
      crater_mounts_clear(&m);
      json_decref(arr);
      return crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, 0,
                               "annotation %s: mount %zu needs type and source", key, i);
    }
    crater_mounts_add(&m, type, src, crater__js(e, "target"), NULL);
    size_t j;
    json_t *o;
    json_array_foreach(json_object_get(e, "options"), j, o)
    {
      if (json_is_string(o))
        crater_mounts_add_option(&m, json_string_value(o));
    }
  }
  json_decref(arr);
  int r = crater_mount_all(&m, ctx->rootfs, err);
  crater_mounts_clear(&m);
  if (r < 0)
    crater_error_wrap(err, "mount rootfs %s", ctx->rootfs);
  return r;
}

/* Makes / a slave (or what linux.rootfsPropagation says), mounts the
 * annotated rootfs, binds it to itself and opens it as ctx->rootfd. */
static int
rootfs_begin(crater_rootfs_ctx_t *ctx, crater_error_t *err)
{
  unsigned long rprop = MS_SLAVE | MS_REC;
  const char *rp = crater__js(crater__jpath(ctx->config, "linux"), "rootfsPropagation");
  for (size_t k = 0; rp && k < sizeof prop_opts / sizeof *prop_opts; k++)
    if (strcmp(rp, prop_opts[k].name) == 0)
      rprop = prop_opts[k].flag | MS_REC;
  if (mount(NULL, "/", NULL, rprop == (MS_SHARED | MS_REC) ? (MS_SLAVE | MS_REC) : rprop, NULL) < 0)
    return crater_error_sys(err, errno, "make / %s", rp ? rp : "rslave");
  if (mount_annotated_rootfs(ctx, err) < 0)
    return -1;
  if (mount(ctx->rootfs, ctx->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
    return crater_error_sys(err, errno, "bind mount rootfs %s", ctx->rootfs);
  ctx->rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (ctx->rootfd < 0)
    return crater_error_sys(err, errno, "open rootfs %s", ctx->rootfs);
  ctx->next_mount = 0;
  ctx->dev_bound = false;
  return 0;
}

/* The spec's mounts from ctx->next_mount on, in order; with until_cgroup,
 * up to (not including) the first "cgroup" one. */
static int
rootfs_mounts(crater_rootfs_ctx_t *ctx, bool until_cgroup, crater_error_t *err)
{
  json_t *ms = json_object_get(ctx->config, "mounts");
  for (; ctx->next_mount < json_array_size(ms); ctx->next_mount++) {
    json_t *m = json_array_get(ms, ctx->next_mount);
    const char *type = crater__js(m, "type");
    if (until_cgroup && type && strcmp(type, "cgroup") == 0)
      break;
    if (do_mount(ctx, ctx->rootfd, m, &ctx->dev_bound, err) < 0)
      return crater_error_wrap(err, "mount %s",
                               crater__js(m, "destination") ? crater__js(m, "destination") : "?");
  }
  return 0;
}

int
crater__rootfs_prepare_early(crater_rootfs_ctx_t *ctx, crater_error_t *err)
{
  if (rootfs_begin(ctx, err) < 0)
    return -1;
  return rootfs_mounts(ctx, true, err);
}

int
crater__rootfs_prepare(crater_rootfs_ctx_t *ctx, crater_error_t *err)
{
  int r = 0;
  if (ctx->rootfd < 0)
    r = rootfs_begin(ctx, err);
  if (r == 0)
    r = rootfs_mounts(ctx, false, err);
  if (r == 0)
    r = setup_dev(ctx, ctx->rootfd, ctx->dev_bound, err);
  if (ctx->rootfd >= 0)
    close(ctx->rootfd);
  ctx->rootfd = -1;
  return r;
}

static int
mask_path(const char *p, crater_error_t *err)
{
  cleanup_close int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd = openat2_in_root(root, p, O_PATH);
  if (fd < 0)
    return errno == ENOENT ? 0 : crater_error_sys(err, errno, "masked path %s", p);
  cleanup_close int cfd = fd;
  struct stat st;
  char fp[64];
  FDPATH(fp, fd);
  if (fstat(fd, &st) < 0)
    return crater_error_sys(err, errno, "stat %s", p);
  int r = S_ISDIR(st.st_mode) ? mount("tmpfs", fp, "tmpfs", MS_RDONLY, NULL)
                              : mount("/dev/null", fp, NULL, MS_BIND, NULL);
  if (r < 0)
    return crater_error_sys(err, errno, "mask %s", p);
  return 0;
}

static int
readonly_path(const char *p, crater_error_t *err)
{
  cleanup_close int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd = openat2_in_root(root, p, O_PATH);
  if (fd < 0)
    return errno == ENOENT ? 0 : crater_error_sys(err, errno, "readonly path %s", p);
  {
    cleanup_close int cfd = fd;
    char fp[64];
    FDPATH(fp, fd);
    if (mount(fp, fp, NULL, MS_BIND | MS_REC, NULL) < 0)
      return crater_error_sys(err, errno, "bind %s read-only", p);
  }
  return remount_top(root, p, MS_RDONLY | MS_REC, 0, err);
}

static int
do_pivot(const char *rootfs, crater_error_t *err)
{
  cleanup_close int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  cleanup_close int newroot = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (oldroot < 0 || newroot < 0)
    return crater_error_sys(err, errno, "open roots for pivot_root");
  if (fchdir(newroot) < 0)
    return crater_error_sys(err, errno, "chdir %s", rootfs);
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    return crater_error_sys(err, errno, "pivot_root %s", rootfs);
  if (fchdir(oldroot) < 0)
    return crater_error_sys(err, errno, "chdir old root");
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return crater_error_sys(err, errno, "make old root rslave");
  if (umount2(".", MNT_DETACH) < 0)
    return crater_error_sys(err, errno, "unmount old root");
  if (chdir("/") < 0)
    return crater_error_sys(err, errno, "chdir /");
  return 0;
}

static int
do_move_chroot(const char *rootfs, crater_error_t *err)
{
  if (chdir(rootfs) < 0)
    return crater_error_sys(err, errno, "chdir %s", rootfs);
  if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0)
    return crater_error_sys(err, errno, "move %s to /", rootfs);
  if (chroot(".") < 0)
    return crater_error_sys(err, errno, "chroot %s", rootfs);
  if (chdir("/") < 0)
    return crater_error_sys(err, errno, "chdir /");
  return 0;
}

/* With process.terminal the OCI runtime spec has the pty's slave bound on
 * /dev/console (crater__process_console_mount, once the pty exists): its
 * mount point is made here, while the root may still be written.  An
 * existing node is used as it is, a symlink refused. */
static int
console_target(crater_error_t *err)
{
  struct stat st;
  if (lstat("/dev/console", &st) == 0)
    return S_ISLNK(st.st_mode) ? crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, ELOOP,
                                                   "/dev/console is a symlink")
                               : 0;
  int fd = open("/dev/console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return crater_error_sys(err, errno, "create /dev/console");
  close(fd);
  return 0;
}

int
crater__rootfs_finish(crater_rootfs_ctx_t *ctx, crater_error_t *err)
{
  if ((ctx->no_pivot ? do_move_chroot(ctx->rootfs, err) : do_pivot(ctx->rootfs, err)) < 0)
    return -1;
  if (crater__jb(crater__jpath(ctx->config, "process"), "terminal", false) &&
      console_target(err) < 0)
    return -1;
  json_t *lx = json_object_get(ctx->config, "linux");
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(lx, "sysctl"), k, v)
  {
    cleanup_free char *p = xasprintf("/proc/sys/%s", k);
    for (char *c = p + 10; *c; c++)
      if (*c == '.')
        *c = '/';
    if (strstr(k, "..") ||
        crater__write_str(p, json_string_value(v) ? json_string_value(v) : "", err) < 0)
      return err && *err
                 ? crater_error_wrap(err, "sysctl %s", k)
                 : crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "sysctl %s", k);
  }
  size_t i;
  json_array_foreach(json_object_get(lx, "readonlyPaths"), i,
                     v) if (json_is_string(v) &&
                            readonly_path(json_string_value(v), err) < 0) return -1;
  json_array_foreach(json_object_get(lx, "maskedPaths"), i,
                     v) if (json_is_string(v) &&
                            mask_path(json_string_value(v), err) < 0) return -1;
  if (crater__jb(crater__jpath(ctx->config, "root"), "readonly", false)) {
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"), NULL) < 0)
      return crater_error_sys(err, errno, "remount root read-only");
  }
  return 0;
}
