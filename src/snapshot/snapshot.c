/*
 * Snapshotter dispatcher: the registry of backends by name, instances
 * bound to a store root, mount description lists, and helpers every
 * backend shares (on-disk id listing, du-style usage).  The backends
 * themselves live in overlay.c, native.c and btrfs.c; see snapshot.h.
 */
#include "snapshot/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "common/xalloc.h"

#define MAX_DRIVERS 16

static pthread_mutex_t drivers_lock = PTHREAD_MUTEX_INITIALIZER;
static const crater_snapshot_driver_t *drivers[MAX_DRIVERS + 1];
static const char *driver_names[MAX_DRIVERS + 1];
static size_t n_drivers;
static bool builtins_done;

static void
register_builtins_locked(void)
{
  if (builtins_done)
    return;
  builtins_done = true;
  const crater_snapshot_driver_t *b[] = {
    &crater__snapshot_overlay_driver,
    &crater__snapshot_native_driver,
    &crater__snapshot_btrfs_driver,
  };
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
    driver_names[n_drivers] = b[i]->name;
    drivers[n_drivers++] = b[i];
  }
}

const char *
crater_snapshot_kind_name(crater_snapshot_kind_t k)
{
  switch (k) {
  case CRATER_SNAPSHOT_VIEW:
    return "view";
  case CRATER_SNAPSHOT_ACTIVE:
    return "active";
  case CRATER_SNAPSHOT_COMMITTED:
    return "committed";
  default:
    return "unknown";
  }
}

crater_snapshot_kind_t
crater_snapshot_kind_parse(const char *s)
{
  if (s == NULL)
    return CRATER_SNAPSHOT_UNKNOWN;
  if (strcmp(s, "view") == 0)
    return CRATER_SNAPSHOT_VIEW;
  if (strcmp(s, "active") == 0)
    return CRATER_SNAPSHOT_ACTIVE;
  if (strcmp(s, "committed") == 0)
    return CRATER_SNAPSHOT_COMMITTED;
  return CRATER_SNAPSHOT_UNKNOWN;
}

int
crater_snapshot_driver_register(const crater_snapshot_driver_t *d, crater_error_t *err)
{
  pthread_mutex_lock(&drivers_lock);
  register_builtins_locked();
  for (size_t i = 0; i < n_drivers; i++) {
    if (strcmp(drivers[i]->name, d->name) == 0) {
      pthread_mutex_unlock(&drivers_lock);
      return crater_error_make(err, CRATER_ERR_ALREADY_EXISTS, 0,
                               "register snapshotter %s: name already taken", d->name);
    }
  }
  if (n_drivers >= MAX_DRIVERS) {
    pthread_mutex_unlock(&drivers_lock);
    return crater_error_make(err, CRATER_ERR_RESOURCE_EXHAUSTED, 0,
                             "register snapshotter %s: too many snapshotters", d->name);
  }
  driver_names[n_drivers] = d->name;
  drivers[n_drivers++] = d;
  pthread_mutex_unlock(&drivers_lock);
  return 0;
}

const crater_snapshot_driver_t *
crater_snapshot_driver_lookup(const char *name)
{
  const crater_snapshot_driver_t *r = NULL;
  pthread_mutex_lock(&drivers_lock);
  register_builtins_locked();
  for (size_t i = 0; name && i < n_drivers; i++)
    if (strcmp(drivers[i]->name, name) == 0)
      r = drivers[i];
  pthread_mutex_unlock(&drivers_lock);
  return r;
}

const char *const *
crater_snapshot_driver_names(void)
{
  pthread_mutex_lock(&drivers_lock);
  register_builtins_locked();
  pthread_mutex_unlock(&drivers_lock);
  return driver_names;
}

crater_snapshotter_t *
crater_snapshotter_open(const char *name, const char *store_root, crater_error_t *err)
{
  const crater_snapshot_driver_t *d = crater_snapshot_driver_lookup(name);
  if (d == NULL) {
    crater_error_make(err, CRATER_ERR_NOT_FOUND, 0, "snapshotter %s: not found", name);
    return NULL;
  }
  crater_snapshotter_t *s = xmalloc0(sizeof *s);
  s->driver = d;
  s->root = xasprintf("%s/snapshots/%s", store_root, name);
  s->snapdir = xasprintf("%s/snapshots", s->root);
  if (crater__mkdir_p(s->snapdir, 0700, err) < 0 || (d->init && d->init(s, err) < 0)) {
    crater_error_wrap(err, "snapshotter %s", name);
    crater_snapshotter_close(s);
    return NULL;
  }
  return s;
}

void
crater_snapshotter_close(crater_snapshotter_t *s)
{
  if (s == NULL)
    return;
  if (s->driver && s->driver->close)
    s->driver->close(s);
  free(s->root);
  free(s->snapdir);
  free(s);
}

char *
crater_snapshotter_fs_dir(crater_snapshotter_t *s, const char *id)
{
  return xasprintf("%s/%s/fs", s->snapdir, id);
}

static bool
is_decimal(const char *s)
{
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

int
crater_snapshotter_list_ids(crater_snapshotter_t *s, char ***ids, size_t *n, crater_error_t *err)
{
  cleanup_dir DIR *d = opendir(s->snapdir);
  *ids = NULL;
  *n = 0;
  if (d == NULL)
    return crater_error_sys(err, errno, "list snapshots in %s", s->snapdir);
  size_t cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (!is_decimal(de->d_name))
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      *ids = xrealloc(*ids, cap * sizeof **ids);
    }
    (*ids)[(*n)++] = xstrdup(de->d_name);
  }
  return 0;
}

/* --- mount lists ---------------------------------------------------------- */

void
crater_mounts_add(crater_mounts_t *m, const char *type, const char *source, const char *target,
                  const char *const *options)
{
  m->items = xrealloc(m->items, (m->n + 1) * sizeof *m->items);
  crater_mount_t *mt = &m->items[m->n++];
  memset(mt, 0, sizeof *mt);
  mt->type = xstrdup(type);
  mt->source = xstrdup(source);
  mt->target = xstrdup(target);
  for (size_t i = 0; options && options[i]; i++)
    crater_mounts_add_option(m, options[i]);
}

void
crater_mounts_add_option(crater_mounts_t *m, const char *opt)
{
  crater_mount_t *mt = &m->items[m->n - 1];
  mt->options = xrealloc(mt->options, (mt->n_options + 1) * sizeof *mt->options);
  mt->options[mt->n_options++] = xstrdup(opt);
}

void
crater_mounts_clear(crater_mounts_t *m)
{
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->n; i++) {
    crater_mount_t *mt = &m->items[i];
    free(mt->type);
    free(mt->source);
    free(mt->target);
    for (size_t j = 0; j < mt->n_options; j++)
      free(mt->options[j]);
    free(mt->options);
  }
  free(m->items);
  m->items = NULL;
  m->n = 0;
}

/* --- usage ---------------------------------------------------------------- */

typedef struct {
  ino_t *inos;
  size_t n, cap;
} ino_set_t;

/* Returns true when ino was already present (linear insert into a sorted
 * array: only inodes with nlink > 1 go here, so it stays small). */
static bool
ino_set_add(ino_set_t *set, ino_t ino)
{
  size_t lo = 0, hi = set->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (set->inos[mid] == ino)
      return true;
    if (set->inos[mid] < ino)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (set->n == set->cap) {
    set->cap = set->cap ? set->cap * 2 : 64;
    set->inos = xrealloc(set->inos, set->cap * sizeof *set->inos);
  }
  memmove(&set->inos[lo + 1], &set->inos[lo], (set->n - lo) * sizeof *set->inos);
  set->inos[lo] = ino;
  set->n++;
  return false;
}

static int
usage_walk(int fd0, dev_t dev, ino_set_t *seen, crater_snapshot_usage_t *out, const char *path,
           crater_error_t *err)
{
  cleanup_dir DIR *d = fdopendir(fd0);
  if (d == NULL) {
    close(fd0);
    return crater_error_sys(err, errno, "usage: opendir %s", path);
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      return crater_error_sys(err, errno, "usage: stat %s/%s", path, de->d_name);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && ino_set_add(seen, st.st_ino))
      continue;
    out->inodes++;
    out->size += (int64_t) st.st_blocks * 512;
    if (S_ISDIR(st.st_mode) && st.st_dev == dev) {
      int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return crater_error_sys(err, errno, "usage: open %s/%s", path, de->d_name);
      cleanup_free char *sub = xasprintf("%s/%s", path, de->d_name);
      if (usage_walk(fd, dev, seen, out, sub, err) < 0)
        return -1;
    }
  }
  return 0;
}

int
crater__tree_usage(const char *path, crater_snapshot_usage_t *out, crater_error_t *err)
{
  out->size = 0;
  out->inodes = 0;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return 0;
    return crater_error_sys(err, errno, "usage: open %s", path);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    return crater_error_sys(err, errno, "usage: stat %s", path);
  }
  /* The root directory itself counts, as in containerd's DiskUsage. */
  out->inodes = 1;
  out->size = (int64_t) st.st_blocks * 512;
  ino_set_t seen = { 0 };
  int r = usage_walk(fd, st.st_dev, &seen, out, path, err);
  free(seen.inos);
  return r;
}
