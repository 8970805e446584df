/* Unit tests for common/error.c and common/labels.c. */
#include <errno.h>

#include "check.h"
#include "common/error.h"
#include "common/labels.h"

int
main(void)
{
  crater_error_t err = NULL;
  CHECK(crater_error_sys(&err, ENOENT, "open %s", "/x") == -1);
  CHECK(err->kind == CRATER_ERR_NOT_FOUND);
  CHECK_STREQ(err->msg, "open /x: No such file or directory");
  crater_error_wrap(&err, "pull %s", "busybox");
  CHECK_STREQ(err->msg, "pull busybox: open /x: No such file or directory");
  CHECK_STREQ(crater_errkind_name(err->kind), "not_found");
  crater_error_release(&err);
  CHECK(err == NULL);
  crater_error_release(&err); /* idempotent */

  crater_labels_t l = { 0 };
  crater_labels_set(&l, "a", "1");
  crater_labels_set(&l, "b", "2");
  crater_labels_set(&l, "a", "3");
  CHECK(l.n == 2);
  CHECK_STREQ(crater_labels_get(&l, "a"), "3");
  crater_labels_set(&l, "a", NULL);
  CHECK(l.n == 1 && crater_labels_get(&l, "a") == NULL);
  CHECK(crater_labels_validate(&l, &err) == 0);
  crater_labels_set(&l, "", "x");
  CHECK(crater_labels_validate(&l, &err) < 0 && err->kind == CRATER_ERR_INVALID_ARGUMENT);
  crater_error_release(&err);
  crater_labels_clear(&l);
  return 0;
}
