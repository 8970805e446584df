/*
 * overlayfs snapshotter.
 *
 * Every snapshot owns <snapdir>/<id>/fs (its upper layer, or its whole tree
 * when it has no parent) and <snapdir>/<id>/work (overlay's workdir).
 * Mounts:
 *   - ACTIVE without parent: rw bind mount of its fs/;
 *   - ACTIVE with parents:   overlay upperdir=<id>/fs, workdir=<id>/work,
 *                            lowerdir=<parent0>/fs:<parent1>/fs:...;
 *   - VIEW with one parent:  ro bind mount of the parent's fs/;
 *   - VIEW with parents:     ro overlay of the lowerdirs only;
 *   - VIEW without parent:   ro bind mount of its own (empty) fs/.
 * Layers are applied into fs/ with overlay whiteouts (0/0 char devices and
 * the trusted.overlay.opaque xattr).
 *
 * Long chains: mount(2) takes its options in one page (4096 bytes), which
 * absolute lowerdirs of a 100-layer image overflow.  When the absolute
 * form does not fit, the description uses paths relative to the snapshots
 * dir ("12/fs:11/fs:...") and says so with X-crater.mount-dir=<snapdir>;
 * the mount helper (mount.c) resolves them, either one layer per fsconfig
 * call ("lowerdir+", kernel >= 6.8) or by mounting from a child that
 * chdir'd into the snapshots dir.
 *
 * The support probe mounts a tiny overlay under the directory in question
 * once per directory per process (cached): overlay over some filesystems
 * (overlay itself, some FUSE/NFS setups) does not work.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xalloc.h"
#include "snapshot/snapshot.h"

#define OVERLAY_PAGE_LIMIT 4096

/* --- mount description ------------------------------------------------- */

static char *
build_lowerdir(const char *prefix, const char *const *parents, size_t n)
{
  size_t len = strlen("lowerdir=") + 1;
  for (size_t i = 0; i < n; i++)
    len += (prefix ? strlen(prefix) + 1 : 0) + strlen(parents[i]) + 4;
  char *s = xmalloc(len);
  char *p = stpcpy(s, "lowerdir=");
  for (size_t i = 0; i < n; i++) {
    if (i)
      *p++ = ':';
    if (prefix) {
      p = stpcpy(p, prefix);
      *p++ = '/';
    }
    p = stpcpy(p, parents[i]);
    p = stpcpy(p, "/fs");
  }
  return s;
}

void
crater__overlay_build_mount(const char *snapdir, const char *id, bool upper,
                            const char *const *parents, size_t n_parents, size_t page_limit,
                            crater_mounts_t *out)
{
  for (int relative = 0; relative < 2; relative++) {
    const char *prefix = relative ? NULL : snapdir;
    cleanup_free char *lower = build_lowerdir(prefix, parents, n_parents);
    cleanup_free char *upperdir = NULL;
    cleanup_free char *workdir = NULL;
    if (upper && id) {
      upperdir =
          relative ? xasprintf("upperdir=%s/fs", id) : xasprintf("upperdir=%s/%s/fs", snapdir, id);
      workdir = relative ? xasprintf("workdir=%s/work", id)
                         : xasprintf("workdir=%s/%s/work", snapdir, id);
    }
    size_t total = strlen(lower) + (upperdir ? strlen(upperdir) + strlen(workdir) + 2 : 0) +
                   strlen("index=off") + 1 + 3;
    if (!relative && total >= page_limit)
      continue;
    crater_mounts_add(out, "overlay", "overlay", NULL, NULL);
    if (upperdir) {
      crater_mounts_add_option(out, workdir);
      crater_mounts_add_option(out, upperdir);
    } else {
      crater_mounts_add_option(out, "ro");
    }
    crater_mounts_add_option(out, lower);
    crater_mounts_add_option(out, "index=off");
    if (relative) {
      cleanup_free char *md = xasprintf("X-crater.mount-dir=%s", snapdir);
      crater_mounts_add_option(out, md);
    }
    return;
  }
}

/* --- probe ---------------------------------------------------------------- */

typedef struct probe_entry_s {
  char *dir;
  int ok;
  char *why;
  struct probe_entry_s *next;
} probe_entry_t;

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static probe_entry_t *probe_cache;
static int probe_count;

int
crater__overlay_probe_count(void)
{
  return probe_count;
}

static int
probe_once(const char *dir, char **why, crater_error_t *err)
{
  cleanup_free char *tmpl = xasprintf("%s/.overlay-probe.XXXXXX", dir);
  if (mkdtemp(tmpl) == NULL)
    return crater_error_sys(err, errno, "probe overlay: mkdtemp in %s", dir);
  probe_count++;
  const char *subs[] = { "l1", "l2", "u", "w", "m" };
  int ok = 0;
  for (size_t i = 0; i < 5; i++) {
    cleanup_free char *p = xasprintf("%s/%s", tmpl, subs[i]);
    if (mkdir(p, 0700) < 0) {
      crater_error_sys(err, errno, "probe overlay: mkdir %s", p);
      crater_error_t e2 = NULL;
      crater__remove_all(tmpl, &e2);
      crater_error_release(&e2);
      return -1;
    }
  }
  cleanup_free char *opts =
      xasprintf("lowerdir=%s/l2:%s/l1,upperdir=%s/u,workdir=%s/w", tmpl, tmpl, tmpl, tmpl);
  cleanup_free char *target = xasprintf("%s/m", tmpl);
  if (mount("overlay", target, "overlay", 0, opts) == 0) {
    ok = 1;
    umount2(target, MNT_DETACH);
  } else if (why) {
    *why = xasprintf("mount overlay in %s: %s", dir, strerror(errno));
  }
  crater_error_t e2 = NULL;
  if (crater__remove_all(tmpl, &e2) < 0) {
    crater_warn("probe overlay: cleanup %s: %s", tmpl, e2->msg);
    crater_error_release(&e2);
  }
  return ok;
}

/* A passed probe is remembered on disk in <dir>/.overlay-probe-ok, keyed
 * by the boot id and kernel release: overlay support cannot change within
 * one boot, and probing (mkdir, mount, umount, rm -rf) costs milliseconds
 * on every short-lived crater process.  Failed probes are not recorded. */
#define PROBE_STAMP ".overlay-probe-ok"

static char *
probe_stamp(void)
{
  char boot[64] = "";
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
  if (f) {
    if (fgets(boot, sizeof boot, f) == NULL)
      boot[0] = '\0';
    fclose(f);
  }
  boot[strcspn(boot, "\n")] = '\0';
  struct utsname u;
  if (uname(&u) < 0 || boot[0] == '\0')
    return NULL;
  return xasprintf("%s %s\n", boot, u.release);
}

static int
probe_stamp_valid(const char *dir)
{
  cleanup_free char *want = probe_stamp();
  if (want == NULL)
    return 0;
  cleanup_free char *path = xasprintf("%s/" PROBE_STAMP, dir);
  crater_error_t e = NULL;
  cleanup_free char *have = crater__read_file(path, 256, NULL, &e);
  crater_error_release(&e);
  return have != NULL && strcmp(have, want) == 0;
}

static void
probe_stamp_write(const char *dir)
{
  cleanup_free char *stamp = probe_stamp();
  if (stamp == NULL)
    return;
  cleanup_free char *path = xasprintf("%s/" PROBE_STAMP, dir);
  crater_error_t e = NULL;
  if (crater__write_file_atomic(path, stamp, strlen(stamp), 0600, &e) < 0) {
    crater_debug("probe overlay: cannot record %s: %s", path, e->msg);
    crater_error_release(&e);
  }
}

void
crater__overlay_probe_forget(void)
{
  pthread_mutex_lock(&probe_lock);
  while (probe_cache) {
    probe_entry_t *e = probe_cache;
    probe_cache = e->next;
    free(e->dir);
    free(e->why);
    free(e);
  }
  pthread_mutex_unlock(&probe_lock);
}

int
crater_snapshot_overlay_supported(const char *dir, char **why, crater_error_t *err)
{
  pthread_mutex_lock(&probe_lock);
  for (probe_entry_t *e = probe_cache; e; e = e->next) {
    if (strcmp(e->dir, dir) == 0) {
      int ok = e->ok;
      if (why && e->why)
        *why = xstrdup(e->why);
      pthread_mutex_unlock(&probe_lock);
      return ok;
    }
  }
  char *reason = NULL;
  int ok = crater__mkdir_p(dir, 0700, err);
  if (ok == 0) {
    if (probe_stamp_valid(dir)) {
      ok = 1;
    } else {
      ok = probe_once(dir, &reason, err);
      if (ok == 1)
        probe_stamp_write(dir);
    }
  }
  if (ok >= 0) {
    probe_entry_t *e = xmalloc0(sizeof *e);
    e->dir = xstrdup(dir);
    e->ok = ok;
    e->why = reason;
    e->next = probe_cache;
    probe_cache = e;
    if (why && reason)
      *why = xstrdup(reason);
  }
  pthread_mutex_unlock(&probe_lock);
  return ok;
}

/* --- driver --------------------------------------------------------------- */

static int
overlay_init(crater_snapshotter_t *s, crater_error_t *err)
{
  cleanup_free char *why = NULL;
  int ok = crater_snapshot_overlay_supported(s->root, &why, err);
  if (ok < 0)
    return -1;
  if (!ok)
    return crater_error_make(err, CRATER_ERR_FAILED_PRECONDITION, 0, "overlayfs not supported: %s",
                             why ? why : "probe failed");
  return 0;
}

static int
overlay_create(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
               const char *const *parents, size_t n_parents, crater_error_t *err)
{
  cleanup_free char *dir = xasprintf("%s/%s", s->snapdir, id);
  cleanup_free char *fs = xasprintf("%s/fs", dir);
  cleanup_free char *work = xasprintf("%s/work", dir);
  if (mkdir(dir, 0700) < 0)
    return crater_error_sys(err, errno, "create snapshot %s: mkdir %s", id, dir);
  /* fs/ becomes the root directory of containers (bind case): 0755. */
  if (mkdir(fs, 0755) < 0 || (kind == CRATER_SNAPSHOT_ACTIVE && mkdir(work, 0711) < 0)) {
    crater_error_sys(err, errno, "create snapshot %s: mkdir", id);
    crater_error_t e2 = NULL;
    crater__remove_all(dir, &e2);
    crater_error_release(&e2);
    return -1;
  }
  return 0;
}

static int
overlay_commit(crater_snapshotter_t *s, const char *id, crater_error_t *err)
{
  /* Nothing to do: fs/ is never written again once the metadata says
   * committed.  work/ stays, as the snapshot may still be mounted. */
  return 0;
}

static int
overlay_remove(crater_snapshotter_t *s, const char *id, crater_error_t *err)
{
  cleanup_free char *dir = xasprintf("%s/%s", s->snapdir, id);
  if (crater__remove_all(dir, err) < 0)
    return crater_error_wrap(err, "remove snapshot %s", id);
  return 0;
}

static int
overlay_mounts(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
               const char *const *parents, size_t n_parents, crater_mounts_t *out,
               crater_error_t *err)
{
  const char *ro_bind[] = { "ro", "rbind", NULL };
  const char *rw_bind[] = { "rw", "rbind", NULL };
  if (n_parents == 0) {
    cleanup_free char *fs = xasprintf("%s/%s/fs", s->snapdir, id);
    crater_mounts_add(out, "bind", fs, NULL, kind == CRATER_SNAPSHOT_ACTIVE ? rw_bind : ro_bind);
    return 0;
  }
  if (kind != CRATER_SNAPSHOT_ACTIVE && n_parents == 1) {
    cleanup_free char *fs = xasprintf("%s/%s/fs", s->snapdir, parents[0]);
    crater_mounts_add(out, "bind", fs, NULL, ro_bind);
    return 0;
  }
  crater__overlay_build_mount(s->snapdir, id, kind == CRATER_SNAPSHOT_ACTIVE, parents, n_parents,
                              OVERLAY_PAGE_LIMIT, out);
  return 0;
}

static int
overlay_usage(crater_snapshotter_t *s, const char *id, crater_snapshot_kind_t kind,
              crater_snapshot_usage_t *out, crater_error_t *err)
{
  cleanup_free char *fs = xasprintf("%s/%s/fs", s->snapdir, id);
  return crater__tree_usage(fs, out, err);
}

const crater_snapshot_driver_t crater__snapshot_overlay_driver = {
  .name = "overlayfs",
  .init = overlay_init,
  .create = overlay_create,
  .commit = overlay_commit,
  .remove = overlay_remove,
  .mounts = overlay_mounts,
  .usage = overlay_usage,
  .whiteouts = "overlay",
};
