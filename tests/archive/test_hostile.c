/* Hostile layers: every escape attempt either rejects the layer with the
 * expected error kind or is neutralised inside the root.  Each case runs
 * with openat2 and with the forced O_NOFOLLOW fallback walk, checks that a
 * canary directory outside the root is untouched, and that nothing of the
 * hostile entry (or after it) is visible in the root. */
#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "archive/archive_test.h"

static const char *outside; /* canary dir */
static int fallback;
static int ncase;

static void
check_canary(void)
{
  char buf[64];
  char p[4200];
  snprintf(p, sizeof p, "%s/canary.txt", outside);
  CHECK(read_text(p, buf, sizeof buf) > 0);
  CHECK_STREQ(buf, "canary\n");
  struct stat st;
  CHECK(stat(p, &st) == 0 && st.st_nlink == 1);
  /* nothing else appeared next to it */
  CHECK(sh("test \"$(ls -A '%s')\" = canary.txt", outside) == 0);
}

/* Applies spec; expect_kind < 0 means success expected. Returns root. */
static const char *
run_case(const char *name, const char *spec, const char *comp, int expect_kind,
         const char *expect_msg, crater_apply_opts_t *o)
{
  crater_error_t err = NULL;
  const char *layer = tp("%s-%d.layer", name, fallback);
  mktar(layer, comp, spec);
  const char *root = tp("%s-%d.root", name, fallback);
  crater_apply_opts_t def = { .whiteouts = CRATER_WHITEOUT_DELETE };
  if (o == NULL)
    o = &def;
  o->flags |= fallback ? CRATER_APPLY_NO_OPENAT2 : 0;
  if (strcmp(comp, "gzip") == 0)
    o->compression = CRATER_COMPRESSION_GZIP;
  int rc = apply_path(root, layer, o, NULL, &err);
  if (expect_kind < 0) {
    if (rc < 0)
      fprintf(stderr, "%s: unexpected error: %s\n", name, err->msg);
    CHECK(rc == 0);
  } else {
    if (rc == 0)
      fprintf(stderr, "%s: unexpectedly succeeded\n", name);
    CHECK(rc < 0);
    fprintf(stderr, "  %s: %s (%s)\n", name, err->msg, crater_errkind_name(err->kind));
    CHECK((int) err->kind == expect_kind);
    if (expect_msg)
      CHECK(strstr(err->msg, expect_msg) != NULL);
    crater_error_release(&err);
    /* entries after the hostile one never ran; none carried "pwned" */
    char p[4200];
    snprintf(p, sizeof p, "%s/after", root);
    CHECK(access(p, F_OK) < 0);
  }
  CHECK(sh("! grep -rqs pwned '%s'", root) == 0 || expect_kind < 0);
  check_canary();
  ncase++;
  return root;
}

static bool
in_root_is(const char *root, const char *rel, mode_t type)
{
  char p[8400];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  struct stat st;
  return lstat(p, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

static void
all_cases(void)
{
  char spec[16384];
  const char *r;

  snprintf(spec, sizeof spec,
           "file|ok|data=1\nfile|../%s/canary.txt|data=pwned\nfile|after|data=2\n",
           strrchr(outside, '/') + 1);
  r = run_case("dotdot", spec, "none", CRATER_ERR_INVALID_ARGUMENT, "path escapes the root", NULL);
  CHECK(in_root_is(r, "ok", S_IFREG));

  run_case("dotdot-deep", "file|a/b/../../../x|data=pwned\nfile|after\n", "none",
           CRATER_ERR_INVALID_ARGUMENT, "path escapes the root", NULL);

  snprintf(spec, sizeof spec, "file|%s/canary.txt|data=pwned\nfile|after\n", outside);
  run_case("absolute", spec, "none", CRATER_ERR_INVALID_ARGUMENT, "absolute path", NULL);

  /* symlink out, then written through: resolved inside the root */
  snprintf(spec, sizeof spec, "symlink|evil|target=%s\nfile|evil/canary.txt|data=pwned\n", outside);
  r = run_case("symlink-write-through", spec, "none", -1, NULL, NULL);
  CHECK(in_root_is(r, outside + 1, S_IFDIR)); /* root/<outside>/canary.txt */

  /* symlink to the canary file, then a file entry of the same name:
   * replaces the link, never writes through it */
  snprintf(spec, sizeof spec,
           "symlink|evil2|target=../../../../..%s/canary.txt\nfile|evil2|data=pwned\n", outside);
  r = run_case("symlink-replace", spec, "none", -1, NULL, NULL);
  CHECK(in_root_is(r, "evil2", S_IFREG));

  /* relative symlink to a dir outside, file created under it */
  snprintf(spec, sizeof spec,
           "symlink|up|target=../../../../../../../..\nfile|up%s/canary.txt|data=pwned\n", outside);
  run_case("symlink-dir-relative", spec, "none", -1, NULL, NULL);

  /* hardlinks */
  snprintf(spec, sizeof spec, "file|ok\nhardlink|h|target=../%s/canary.txt\nfile|after\n",
           strrchr(outside, '/') + 1);
  run_case("hardlink-dotdot", spec, "none", CRATER_ERR_INVALID_ARGUMENT, "path escapes the root",
           NULL);
  snprintf(spec, sizeof spec, "hardlink|h|target=%s/canary.txt\nfile|after\n", outside);
  run_case("hardlink-absolute", spec, "none", CRATER_ERR_INVALID_ARGUMENT, "absolute path", NULL);
  snprintf(spec, sizeof spec, "symlink|s|target=%s\nhardlink|h|target=s/canary.txt\nfile|after\n",
           outside);
  run_case("hardlink-via-symlink", spec, "none", CRATER_ERR_NOT_FOUND, "hardlink target", NULL);

  /* libarchive's classic: hardlink entry with data following a symlink */
  snprintf(spec, sizeof spec, "symlink|s|target=%s/canary.txt\nhardlink|h|target=s|data=pwned\n",
           outside);
  r = run_case("hardlink-with-data", spec, "none", -1, NULL, NULL);
  CHECK(in_root_is(r, "h", S_IFLNK)); /* the link itself was linked */

  /* whiteouts */
  snprintf(spec, sizeof spec, "file|../%s/.wh.canary.txt\nfile|after\n", strrchr(outside, '/') + 1);
  run_case("whiteout-dotdot", spec, "none", CRATER_ERR_INVALID_ARGUMENT, "path escapes the root",
           NULL);
  snprintf(spec, sizeof spec, "symlink|w|target=%s\nfile|w/.wh.canary.txt\nfile|w/.wh..wh..opq\n",
           outside);
  run_case("whiteout-via-symlink-delete", spec, "none", -1, NULL, NULL);
  crater_apply_opts_t ovl = { .whiteouts = CRATER_WHITEOUT_OVERLAY };
  r = run_case("whiteout-via-symlink-overlay", spec, "none", -1, NULL, &ovl);
  char rel[4200];
  snprintf(rel, sizeof rel, "%s/canary.txt", outside + 1);
  CHECK(in_root_is(r, rel, S_IFCHR)); /* the whiteout landed inside */
  run_case("whiteout-dot", "file|a/.wh..\nfile|after\n", "none", CRATER_ERR_INVALID_ARGUMENT,
           "invalid whiteout", NULL);

  /* device nodes: created inside the root only, or refused by policy */
  snprintf(spec, sizeof spec,
           "symlink|dv|target=%s\nblk|dv/sda|major=8|minor=0\nchr|dev/null|major=1|minor=3\n",
           outside);
  r = run_case("devices", spec, "none", -1, NULL, NULL);
  snprintf(rel, sizeof rel, "%s/sda", outside + 1);
  CHECK(in_root_is(r, rel, S_IFBLK) && in_root_is(r, "dev/null", S_IFCHR));
  crater_apply_opts_t nodev = { .whiteouts = CRATER_WHITEOUT_DELETE,
                                .flags = CRATER_APPLY_NO_DEVICES };
  run_case("devices-refused", "file|ok\nblk|sda|major=8|minor=0\nfile|after\n", "none",
           CRATER_ERR_PERMISSION_DENIED, "device nodes are not allowed", &nodev);

  /* decompression bombs: one huge entry, and many entries past the limit */
  crater_apply_opts_t lim = { .whiteouts = CRATER_WHITEOUT_DELETE, .max_size = 1 << 20 };
  run_case("bomb-entry", "file|big|zeros=67108864\nfile|after\n", "gzip",
           CRATER_ERR_RESOURCE_EXHAUSTED, "exceeds the layer limit", &lim);
  lim.flags = 0;
  r = run_case("bomb-stream", "file|a|zeros=700000\nfile|b|zeros=700000\nfile|after\n", "gzip",
               CRATER_ERR_RESOURCE_EXHAUSTED, "beyond the limit", &lim);
  CHECK(!in_root_is(r, "b", S_IFREG)); /* the half-written file is gone */
}

int
main(void)
{
  test_init("archive-hostile");
  outside = strdup(tp("outside"));
  mkdir(outside, 0755);
  char p[4200];
  snprintf(p, sizeof p, "%s/canary.txt", outside);
  write_text(p, "canary\n");
  for (fallback = 0; fallback < 2; fallback++) {
    fprintf(stderr, "resolver: %s\n", fallback ? "O_NOFOLLOW walk (forced)" : "openat2");
    all_cases();
  }
  fprintf(stderr, "%d hostile cases passed\n", ncase);
  test_done();
  return 0;
}
