/*
 * Unit tests of the overlay mount description (absolute vs. relative
 * lowerdirs under the page limit) and of the overlay probe cache.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/util.h"
#include "snapshot/snapshot.h"

static const char *
find_opt(const crater_mount_t *m, const char *prefix)
{
  for (size_t i = 0; i < m->n_options; i++)
    if (strncmp(m->options[i], prefix, strlen(prefix)) == 0)
      return m->options[i];
  return NULL;
}

int
main(void)
{
  crater_error_t err = NULL;
  const char *two[] = { "2", "1" };
  crater_mounts_t m = { 0 };

  /* short chain: absolute paths, no helper option */
  crater__overlay_build_mount("/var/lib/crater/snapshots/overlayfs/snapshots", "3", true, two, 2,
                              4096, &m);
  CHECK(m.n == 1);
  CHECK_STREQ(m.items[0].type, "overlay");
  CHECK_STREQ(find_opt(&m.items[0], "lowerdir="),
              "lowerdir=/var/lib/crater/snapshots/overlayfs/snapshots/2/fs:/var/lib/crater/"
              "snapshots/overlayfs/snapshots/1/fs");
  CHECK_STREQ(find_opt(&m.items[0], "upperdir="),
              "upperdir=/var/lib/crater/snapshots/overlayfs/snapshots/3/fs");
  CHECK_STREQ(find_opt(&m.items[0], "workdir="),
              "workdir=/var/lib/crater/snapshots/overlayfs/snapshots/3/work");
  CHECK(find_opt(&m.items[0], "X-crater.mount-dir=") == NULL);
  crater_mounts_clear(&m);

  /* read-only lower-only overlay (a view of a chain) */
  crater__overlay_build_mount("/s", "3", false, two, 2, 4096, &m);
  CHECK(find_opt(&m.items[0], "upperdir=") == NULL);
  CHECK(find_opt(&m.items[0], "ro") != NULL);
  crater_mounts_clear(&m);

  /* 100 layers overflow the page with absolute paths: relative + mount-dir */
  const char *chain[100];
  char names[100][8];
  for (int i = 0; i < 100; i++) {
    snprintf(names[i], sizeof names[i], "%d", 100 - i);
    chain[i] = names[i];
  }
  const char *dir = "/var/lib/crater/snapshots/overlayfs/snapshots";
  crater__overlay_build_mount(dir, "101", true, chain, 100, 4096, &m);
  const char *lower = find_opt(&m.items[0], "lowerdir=");
  CHECK(lower != NULL);
  CHECK(strncmp(lower, "lowerdir=100/fs:99/fs:", 22) == 0);
  CHECK(strlen(lower) < 1024);
  CHECK_STREQ(find_opt(&m.items[0], "upperdir="), "upperdir=101/fs");
  CHECK_STREQ(find_opt(&m.items[0], "X-crater.mount-dir="),
              "X-crater.mount-dir=/var/lib/crater/snapshots/overlayfs/snapshots");
  size_t total = 0;
  for (size_t i = 0; i < m.items[0].n_options; i++)
    total += strlen(m.items[0].options[i]) + 1;
  CHECK(total < 4096);
  crater_mounts_clear(&m);

  /* probe cache: the second ask for the same dir does not mount again */
  if (geteuid() != 0)
    SKIP("probe needs root");
  char *tmp = test_tmpdir("overlay-probe");
  int before = crater__overlay_probe_count();
  char *why = NULL;
  int a = crater_snapshot_overlay_supported(tmp, &why, &err);
  CHECK(a >= 0);
  CHECK(crater__overlay_probe_count() == before + 1);
  free(why);
  why = NULL;
  int b = crater_snapshot_overlay_supported(tmp, &why, &err);
  CHECK(b == a);
  CHECK(crater__overlay_probe_count() == before + 1);
  free(why);
  /* a new process (forgotten in-memory cache) trusts the on-disk stamp of
   * a passed probe for this boot and kernel: no second mount */
  crater__overlay_probe_forget();
  why = NULL;
  int c = crater_snapshot_overlay_supported(tmp, &why, &err);
  CHECK(c == a);
  CHECK(crater__overlay_probe_count() == before + 1);
  free(why);
  /* a stale stamp (another boot or kernel) is not trusted */
  char stamp[4200];
  snprintf(stamp, sizeof stamp, "%s/.overlay-probe-ok", tmp);
  if (a == 1) {
    FILE *f = fopen(stamp, "w");
    CHECK(f != NULL);
    fputs("other-boot 1.0\n", f);
    fclose(f);
    crater__overlay_probe_forget();
    why = NULL;
    CHECK(crater_snapshot_overlay_supported(tmp, &why, &err) == 1);
    CHECK(crater__overlay_probe_count() == before + 2);
    free(why);
  }
  /* nothing left behind by the probe but its stamp */
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep -vx .overlay-probe-ok)\"", tmp);
  CHECK(system(cmd) == 0);
  CHECK_OK(crater__remove_all(tmp, &err));
  free(tmp);
  return 0;
}
