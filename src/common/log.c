/*
 * Leveled logging to stderr.  See log.h.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int current_level = -1;

static int
level_from_env(void)
{
  const char *s = getenv("CRATER_LOG");
  if (s == NULL)
    return CRATER_LOG_WARN;
  if (strcmp(s, "debug") == 0)
    return CRATER_LOG_DEBUG;
  if (strcmp(s, "info") == 0)
    return CRATER_LOG_INFO;
  if (strcmp(s, "error") == 0)
    return CRATER_LOG_ERROR;
  return CRATER_LOG_WARN;
}

int
crater_log_enabled(crater_log_level_t level)
{
  if (current_level < 0)
    current_level = level_from_env();
  return (int) level <= current_level;
}

void
crater_log(crater_log_level_t level, const char *fmt, ...)
{
  static const char *const names[] = { "error", "warn", "info", "debug" };
  if (!crater_log_enabled(level))
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "crater[%s]: ", names[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void
crater_log_set_level(const char *name)
{
  static const char *const names[] = { "error", "warn", "info", "debug" };
  for (int i = 0; i < 4; i++)
    if (strcmp(name, names[i]) == 0)
      current_level = i;
}
