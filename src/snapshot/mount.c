/*
 * The mount helper: performs the mount descriptions snapshotters return
 * as data (crater_mount_all) and undoes them (crater_unmount_all).
 *
 * Options are fstab-style.  Flag options (ro, rw, bind, rbind, nosuid,
 * nodev, noexec, ...) become mount flags, the rest is filesystem data.
 * Bind mounts with "ro" are remounted read-only after the bind (the
 * kernel ignores MS_RDONLY on the bind itself).
 *
 * Overlay mounts honour X-crater.mount-dir=DIR (relative lowerdir, upperdir
 * and workdir paths are relative to DIR; see overlay.c).  They are done
 * with the new mount API when the kernel takes "lowerdir+" (>= 6.8): one
 * fsconfig call per layer, each with its own size limit, so no page limit
 * applies at all.  Otherwise mount(2) runs in a forked child that chdir'd
 * into DIR, so the relative option string stays short and the caller's
 * working directory (shared by all threads) is never touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "snapshot/snapshot.h"

static bool force_legacy;

void
crater__mount_force_legacy(bool on)
{
  force_legacy = on;
}

static const struct {
  const char *name;
  bool clear;
  unsigned long flag;
} flag_opts[] = {
  { "ro", false, MS_RDONLY },
  { "rw", true, MS_RDONLY },
  { "bind", false, MS_BIND },
  { "rbind", false, MS_BIND | MS_REC },
  { "nosuid", false, MS_NOSUID },
  { "suid", true, MS_NOSUID },
  { "nodev", false, MS_NODEV },
  { "dev", true, MS_NODEV },
  { "noexec", false, MS_NOEXEC },
  { "exec", true, MS_NOEXEC },
  { "noatime", false, MS_NOATIME },
  { "relatime", false, MS_RELATIME },
  { "strictatime", false, MS_STRICTATIME },
  { "nodiratime", false, MS_NODIRATIME },
  { "sync", false, MS_SYNCHRONOUS },
  { "async", true, MS_SYNCHRONOUS },
  { "defaults", false, 0 },
};

typedef struct {
  unsigned long flags;
  char **data; /* data options, owned */
  size_t n_data;
  const char *mount_dir; /* borrowed from the mount */
} parsed_t;

static void
parsed_free(parsed_t *p)
{
  for (size_t i = 0; i < p->n_data; i++)
    free(p->data[i]);
  free(p->data);
}

static void
parse_options(const crater_mount_t *m, parsed_t *p)
{
  memset(p, 0, sizeof *p);
  for (size_t i = 0; i < m->n_options; i++) {
    const char *o = m->options[i];
    bool is_flag = false;
    for (size_t j = 0; j < sizeof flag_opts / sizeof flag_opts[0]; j++) {
      if (strcmp(o, flag_opts[j].name) == 0) {
        if (flag_opts[j].clear)
          p->flags &= ~flag_opts[j].flag;
        else
          p->flags |= flag_opts[j].flag;
        is_flag = true;
        break;
      }
    }
    if (is_flag)
      continue;
    if (strncmp(o, "X-crater.mount-dir=", 19) == 0) {
      p->mount_dir = o + 19;
      continue;
    }
    if (strncmp(o, "X-", 2) == 0)
      continue; /* other helper-only options */
    p->data = xrealloc(p->data, (p->n_data + 1) * sizeof *p->data);
    p->data[p->n_data++] = xstrdup(o);
  }
}

static char *
join_data(const parsed_t *p)
{
  size_t len = 1;
  for (size_t i = 0; i < p->n_data; i++)
    len += strlen(p->data[i]) + 1;
  char *s = xmalloc(len);
  char *q = s;
  *q = '\0';
  for (size_t i = 0; i < p->n_data; i++) {
    if (i)
      *q++ = ',';
    q = stpcpy(q, p->data[i]);
  }
  return s;
}

/* Absolute form of a path from an overlay option (relative to mount_dir). */
static char *
resolve(const char *mount_dir, const char *path)
{
  if (path[0] == '/' || mount_dir == NULL)
    return xstrdup(path);
  return xasprintf("%s/%s", mount_dir, path);
}

/* Set once the kernel has shown it lacks "lowerdir+" (before 6.8): the
 * rest of the process goes straight to mount(2). */
static bool no_lowerdir_plus;

/* Overlay through fsopen/fsconfig.  Returns 1 when done, 0 when the
 * kernel lacks the API or "lowerdir+" (caller falls back), -1 on error. */
static int
overlay_new_api(const crater_mount_t *m, const parsed_t *p, const char *target, crater_error_t *err)
{
  if (no_lowerdir_plus)
    return 0;
  cleanup_close int fd = fsopen("overlay", FSOPEN_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOSYS || errno == EPERM)
      return 0;
    return crater_error_sys(err, errno, "mount overlay on %s: fsopen", target);
  }
  bool first_layer = true;
  for (size_t i = 0; i < p->n_data; i++) {
    const char *o = p->data[i];
    const char *eq = strchr(o, '=');
    if (eq == NULL) {
      if (fsconfig(fd, FSCONFIG_SET_FLAG, o, NULL, 0) < 0)
        return crater_error_sys(err, errno, "mount overlay on %s: option %s", target, o);
      continue;
    }
    cleanup_free char *key = xstrndup(o, eq - o);
    const char *val = eq + 1;
    if (strcmp(key, "lowerdir") == 0) {
      cleanup_free char *copy = xstrdup(val);
      char *save = NULL;
      for (char *l = strtok_r(copy, ":", &save); l; l = strtok_r(NULL, ":", &save)) {
        cleanup_free char *abs = resolve(p->mount_dir, l);
        if (fsconfig(fd, FSCONFIG_SET_STRING, "lowerdir+", abs, 0) < 0) {
          if (first_layer && errno == EINVAL) {
            no_lowerdir_plus = true; /* kernel < 6.8 */
            return 0;
          }
          return crater_error_sys(err, errno, "mount overlay on %s: lower layer %s", target, abs);
        }
        first_layer = false;
      }
    } else if (strcmp(key, "upperdir") == 0 || strcmp(key, "workdir") == 0) {
      cleanup_free char *abs = resolve(p->mount_dir, val);
      if (fsconfig(fd, FSCONFIG_SET_STRING, key, abs, 0) < 0)
        return crater_error_sys(err, errno, "mount overlay on %s: %s=%s", target, key, abs);
    } else if (fsconfig(fd, FSCONFIG_SET_STRING, key, val, 0) < 0) {
      return crater_error_sys(err, errno, "mount overlay on %s: option %s", target, o);
    }
  }
  if (p->flags & MS_RDONLY)
    fsconfig(fd, FSCONFIG_SET_FLAG, "ro", NULL, 0);
  if (fsconfig(fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
    /* Before 6.5 overlayfs parses options the legacy way: fsconfig takes
     * "lowerdir+" as text and only the create fails (EINVAL; Debian 12's
     * 6.1).  Fall back to mount(2), which reports a real problem too. */
    if (errno == EINVAL && !first_layer) {
      no_lowerdir_plus = true;
      return 0;
    }
    return crater_error_sys(err, errno, "mount overlay on %s: create", target);
  }
  unsigned int attr = 0;
  if (p->flags & MS_RDONLY)
    attr |= MOUNT_ATTR_RDONLY;
  if (p->flags & MS_NOSUID)
    attr |= MOUNT_ATTR_NOSUID;
  if (p->flags & MS_NODEV)
    attr |= MOUNT_ATTR_NODEV;
  if (p->flags & MS_NOEXEC)
    attr |= MOUNT_ATTR_NOEXEC;
  cleanup_close int mfd = fsmount(fd, FSMOUNT_CLOEXEC, attr);
  if (mfd < 0)
    return crater_error_sys(err, errno, "mount overlay on %s: fsmount", target);
  if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return crater_error_sys(err, errno, "mount overlay on %s: move_mount", target);
  (void) m;
  return 1;
}

/* mount(2) from a child chdir'd into dir (so relative paths in data
 * resolve there); target must be absolute. */
static int
mount_in_dir(const char *dir, const char *source, const char *target, const char *type,
             unsigned long flags, const char *data)
{
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    if (chdir(dir) < 0)
      _exit(errno & 0xff);
    if (mount(source, target, type, flags, data) < 0)
      _exit(errno & 0xff);
    _exit(0);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      return -1;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  errno = WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
  return -1;
}

/* A volatile overlay (option "volatile": no syncs, for a layer thrown away
 * after one run) leaves work/incompat/volatile in its workdir, and the
 * kernel refuses to mount that upper again.  The boot id is written beside
 * the snapshot (<workdir>/../volatile-boot-id) when mounting volatile; a
 * later mount clears the kernel's marker only in the same boot (the upper
 * layer is then whole, in the page cache at worst) and otherwise refuses,
 * saying why.  Every overlay mount goes through here: the client's, the
 * runtime's inside the container's namespace, `snapshot mount`. */
static int
overlay_volatile_marker(const parsed_t *p, crater_error_t *err)
{
  const char *work = NULL;
  bool volatile_opt = false;
  for (size_t i = 0; i < p->n_data; i++) {
    if (strncmp(p->data[i], "workdir=", 8) == 0)
      work = p->data[i] + 8;
    else if (strcmp(p->data[i], "volatile") == 0)
      volatile_opt = true;
  }
  if (work == NULL)
    return 0; /* read-only: no upper */
  cleanup_free char *wd = resolve(p->mount_dir, work);
  cleanup_free char *marker = xasprintf("%s/../volatile-boot-id", wd);
  cleanup_free char *incompat = xasprintf("%s/work/incompat", wd);
  cleanup_free char *flag = xasprintf("%s/volatile", incompat);
  cleanup_free char *boot = crater__read_file("/proc/sys/kernel/random/boot_id", 64, NULL, NULL);
  if (access(flag, F_OK) == 0) {
    cleanup_free char *then = crater__read_file(marker, 64, NULL, NULL);
    if (boot == NULL || then == NULL || strcmp(boot, then) != 0)
      return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0,
                               "overlay upper %s was mounted volatile before the machine "
                               "restarted, so it may be incomplete; remove its container",
                               wd);
    if (crater__remove_all(incompat, err) < 0)
      return crater_error_wrap(err, "clear the volatile marker");
  }
  if (volatile_opt && boot != NULL) {
    /* no fsync: after a crash the boot id differs anyway, and a marker
     * lost with it means a refusal, the safe side */
    int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    ssize_t w = fd < 0 ? -1 : write(fd, boot, strlen(boot));
    int e = errno;
    if (fd >= 0)
      close(fd);
    if (w != (ssize_t) strlen(boot))
      return crater_error_sys(err, w < 0 ? e : EIO, "record the boot of a volatile mount in %s",
                              marker);
  }
  return 0;
}

static int
mount_one(const crater_mount_t *m, const char *target, crater_error_t *err)
{
  parsed_t p;
  parse_options(m, &p);
  int r = -1;
  cleanup_free char *data = join_data(&p);
  if (m->type && strcmp(m->type, "overlay") == 0 && overlay_volatile_marker(&p, err) < 0)
    goto done;
  if (p.flags & MS_BIND) {
    if (mount(m->source, target, NULL, p.flags & (MS_BIND | MS_REC), NULL) < 0) {
      crater_error_sys(err, errno, "bind mount %s on %s", m->source, target);
      goto done;
    }
    unsigned long extra = p.flags & ~(MS_BIND | MS_REC);
    if (extra && mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | extra, NULL) < 0) {
      crater_error_sys(err, errno, "remount %s read-only/with flags", target);
      umount2(target, MNT_DETACH);
      goto done;
    }
    r = 0;
    goto done;
  }
  if (m->type && strcmp(m->type, "overlay") == 0 && !force_legacy) {
    int nr = overlay_new_api(m, &p, target, err);
    if (nr != 0) {
      r = nr > 0 ? 0 : -1;
      goto done;
    }
  }
  if (p.mount_dir) {
    if (mount_in_dir(p.mount_dir, m->source, target, m->type, p.flags, data) < 0) {
      crater_error_sys(err, errno, "mount %s on %s (in %s)", m->type, target, p.mount_dir);
      goto done;
    }
  } else if (mount(m->source, target, m->type, p.flags, data) < 0) {
    crater_error_sys(err, errno, "mount %s on %s", m->type, target);
    goto done;
  }
  r = 0;
done:
  parsed_free(&p);
  return r;
}

int
crater_mount_all(const crater_mounts_t *m, const char *target, crater_error_t *err)
{
  char abs_target[PATH_MAX];
  if (realpath(target, abs_target) == NULL)
    return crater_error_sys(err, errno, "mount on %s", target);
  for (size_t i = 0; i < m->n; i++) {
    cleanup_free char *t = m->items[i].target && m->items[i].target[0]
                               ? xasprintf("%s/%s", abs_target, m->items[i].target)
                               : xstrdup(abs_target);
    if (mount_one(&m->items[i], t, err) < 0) {
      /* undo what was mounted (in reverse order) */
      for (size_t j = i; j-- > 0;) {
        cleanup_free char *u = m->items[j].target && m->items[j].target[0]
                                   ? xasprintf("%s/%s", abs_target, m->items[j].target)
                                   : xstrdup(abs_target);
        umount2(u, MNT_DETACH);
      }
      return -1;
    }
  }
  return 0;
}

int
crater_unmount_all(const char *target, int flags, crater_error_t *err)
{
  for (int i = 0; i < 128; i++) {
    if (umount2(target, flags) < 0) {
      if (errno == EINVAL || errno == ENOENT)
        return 0; /* not (or no longer) a mount point */
      if (errno == EINTR)
        continue;
      return crater_error_sys(err, errno, "unmount %s", target);
    }
  }
  return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "unmount %s: too many stacked mounts",
                           target);
}
