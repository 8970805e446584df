/* crater_archive_diff: round trips apply(diff(x)) == x for two full trees
 * (native/btrfs) and for an overlay upper dir, every compression, with
 * deterministic output and hardlinks preserved. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "archive/archive_test.h"

/* setxattr from the shell without the attr package */
#define SX_DEF                                                                                     \
  "sx() { python3 -c 'import os,sys; os.setxattr(sys.argv[3], sys.argv[1], sys.argv[2].encode(), " \
  "follow_symlinks=False)' \"$@\"; }; "

static const char *base = "dir|etc|mode=0755\n"
                          "file|etc/passwd|data=root:x:0:0\\n\n"
                          "file|etc/same-size|data=AAAA|mtime=1600000000\n"
                          "file|etc/gone|data=bye\n"
                          "dir|var/lib/tree\n"
                          "file|var/lib/tree/a|data=a\n"
                          "file|var/lib/tree/b|data=b\n"
                          "file|f2d|data=f\n"
                          "dir|d2f\n"
                          "file|d2f/x|data=x\n"
                          "file|bin/ping|mode=0755|data=ping|xattr.user.tag=1\n"
                          "symlink|bin/sh|target=busybox\n";

static int
diff_to(const char *lower, const char *upper, const char *out, crater_diff_opts_t *o,
        crater_diff_result_t *res, crater_error_t *err)
{
  int l = lower ? open(lower, O_RDONLY | O_DIRECTORY) : -1;
  int u = open(upper, O_RDONLY | O_DIRECTORY);
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(u >= 0 && fd >= 0 && (lower == NULL || l >= 0));
  int rc = crater_archive_diff(l, u, fd, o, res, err);
  if (l >= 0)
    close(l);
  close(u);
  close(fd);
  return rc;
}

static void
test_two_trees(void)
{
  crater_error_t err = NULL;
  mktar(tp("base.tar"), "none", base);
  cleanup_free char *lower = strdup(tp("lower"));
  crater_apply_opts_t ao = { .whiteouts = CRATER_WHITEOUT_DELETE };
  CHECK_OK(apply_path(lower, tp("base.tar"), &ao, NULL, &err));
  cleanup_free char *upper = strdup(tp("upper"));
  CHECK(sh("cp -a '%s' '%s'", lower, upper) == 0);
  /* the changes */
  CHECK(sh(SX_DEF "cd '%s' && echo new > etc/new && rm etc/gone && rm -r var/lib/tree"
                  " && printf BBBB > etc/same-size && touch -d @1600000000 etc/same-size"
                  " && rm f2d && mkdir f2d && echo in > f2d/in && rm -r d2f && echo file > d2f"
                  " && chmod 4755 bin/ping && sx user.tag 2 bin/ping"
                  " && echo hl > hl1 && ln hl1 hl2 && mknod dev-null c 1 3 && mkfifo fifo"
                  " && ln -sf /bin/true bin/sh && chown 1000:1000 etc/passwd",
           upper) == 0);
  const char *comps[] = { "gzip", "zstd", "none" };
  for (int i = 0; i < 3; i++) {
    crater_diff_opts_t o = { 0 };
    CHECK_OK(crater_archive_compression_parse(comps[i], &o.compression, &err));
    crater_diff_result_t r1, r2;
    CHECK_OK(diff_to(lower, upper, tp("d1.%s", comps[i]), &o, &r1, &err));
    CHECK_OK(diff_to(lower, upper, tp("d2.%s", comps[i]), &o, &r2, &err));
    CHECK_STREQ(r1.digest, r2.digest); /* deterministic */
    CHECK_STREQ(r1.diff_id, r2.diff_id);
    /* apply onto a copy of lower == upper */
    const char *res = tp("rt-%s", comps[i]);
    CHECK(sh("cp -a '%s' '%s'", lower, res) == 0);
    crater_apply_opts_t a = { .whiteouts = CRATER_WHITEOUT_DELETE,
                              .compression = o.compression,
                              .expected_diff_id = r1.diff_id };
    crater_apply_result_t ar;
    CHECK_OK(apply_path(res, tp("d1.%s", comps[i]), &a, &ar, &err));
    CHECK(ar.size == r1.uncompressed_size);
    CHECK(treecmp(upper, res, "--no-root") == 0);
    if (i == 0)
      fprintf(stderr, "two-tree diff: %llu entries, %llu bytes gz\n",
              (unsigned long long) r1.entries, (unsigned long long) r1.size);
  }
  /* the content comparison caught same-size/same-mtime etc/same-size,
   * unchanged files are not in the layer */
  CHECK(sh("gzip -dc '%s' | tar -t 2>/dev/null | grep -qx etc/same-size", tp("d1.gzip")) == 0);
  CHECK(sh("! gzip -dc '%s' | tar -t 2>/dev/null | grep -q '^var/lib/tree/'", tp("d1.gzip")) == 0);
  CHECK(sh("gzip -dc '%s' | tar -t 2>/dev/null | grep -qx var/lib/.wh.tree", tp("d1.gzip")) == 0);
  CHECK(sh("gzip -dc '%s' | tar -tv 2>/dev/null | grep -q '^h.* hl2 link to hl1'", tp("d1.gzip")) ==
        0);
  /* no lower: the whole tree */
  crater_diff_opts_t o = { .compression = CRATER_COMPRESSION_GZIP };
  crater_diff_result_t r;
  CHECK_OK(diff_to(NULL, upper, tp("full.tgz"), &o, &r, &err));
  crater_apply_opts_t a = { .compression = CRATER_COMPRESSION_GZIP };
  CHECK_OK(apply_path(tp("full"), tp("full.tgz"), &a, NULL, &err));
  CHECK(treecmp(upper, tp("full"), "--no-root --mtime") == 0);
}

static void
test_overlay_upper(void)
{
  crater_error_t err = NULL;
  /* an overlay-style upper dir, as a container leaves it */
  cleanup_free char *up = strdup(tp("ovl-upper"));
  CHECK(sh(SX_DEF "mkdir -p '%s' && cd '%s' && mkdir -p etc opq/sub && echo n > etc/new"
                  " && mknod -m 000 etc/gone c 0 0 && sx trusted.overlay.opaque y opq"
                  " && echo s > opq/sub/s && mkdir var && mknod -m 000 var/tree c 0 0"
                  " && sx trusted.overlay.origin xyz etc/new",
           up, up) == 0);
  crater_diff_opts_t o = { .compression = CRATER_COMPRESSION_GZIP, .upper_is_overlay = true };
  crater_diff_result_t r;
  CHECK_OK(diff_to(NULL, up, tp("ovl.tgz"), &o, &r, &err));
  CHECK(sh("gzip -dc '%s' | tar -t 2>/dev/null > '%s'", tp("ovl.tgz"), tp("ovl.list")) == 0);
  CHECK(sh("grep -qx etc/.wh.gone '%s' && grep -qx opq/.wh..wh..opq '%s' && grep -qx var/.wh.tree "
           "'%s'",
           tp("ovl.list"), tp("ovl.list"), tp("ovl.list")) == 0);
  /* overlay round trip: applying back in overlay mode reproduces the upper */
  crater_apply_opts_t a = { .compression = CRATER_COMPRESSION_GZIP,
                            .whiteouts = CRATER_WHITEOUT_OVERLAY };
  CHECK_OK(apply_path(tp("ovl-back"), tp("ovl.tgz"), &a, NULL, &err));
  CHECK(treecmp(up, tp("ovl-back"), "--no-root --ignore-xattr trusted.overlay.origin") == 0);
  /* delete-mode apply of the same layer onto the base tree */
  mktar(tp("base.tar"), "none", base);
  crater_apply_opts_t d = { .whiteouts = CRATER_WHITEOUT_DELETE };
  cleanup_free char *n = strdup(tp("native"));
  CHECK_OK(apply_path(n, tp("base.tar"), &d, NULL, &err));
  CHECK(sh("mkdir -p '%s/opq/old' && echo o > '%s/opq/old/f'", n, n) == 0);
  d.compression = CRATER_COMPRESSION_GZIP;
  CHECK_OK(apply_path(n, tp("ovl.tgz"), &d, NULL, &err));
  char p[4200];
  struct stat st;
  snprintf(p, sizeof p, "%s/etc/gone", n);
  CHECK(lstat(p, &st) < 0 && errno == ENOENT);
  snprintf(p, sizeof p, "%s/var/tree", n);
  CHECK(lstat(p, &st) < 0);
  snprintf(p, sizeof p, "%s/opq/old", n);
  CHECK(lstat(p, &st) < 0);
  snprintf(p, sizeof p, "%s/opq/sub/s", n);
  CHECK(lstat(p, &st) == 0);
  snprintf(p, sizeof p, "%s/etc/new", n);
  CHECK(lgetxattr(p, "trusted.overlay.origin", NULL, 0) < 0); /* never carried */
}

int
main(void)
{
  test_init("archive-diff");
  test_two_trees();
  test_overlay_upper();
  test_done();
  return 0;
}
