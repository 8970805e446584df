/*
 * Minimal leveled logging to stderr.  Level from CRATER_LOG
 * (error|warn|info|debug), default warn.  Never log credentials.
 */
#ifndef CRATER_COMMON_LOG_H
#define CRATER_COMMON_LOG_H

typedef enum {
  CRATER_LOG_ERROR,
  CRATER_LOG_WARN,
  CRATER_LOG_INFO,
  CRATER_LOG_DEBUG
} crater_log_level_t;

void crater_log(crater_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int crater_log_enabled(crater_log_level_t level);

#define crater_debug(...) crater_log(CRATER_LOG_DEBUG, __VA_ARGS__)
#define crater_info(...) crater_log(CRATER_LOG_INFO, __VA_ARGS__)
#define crater_warn(...) crater_log(CRATER_LOG_WARN, __VA_ARGS__)

/* Sets the level by name (error|warn|info|debug); unknown names ignored. */
void crater_log_set_level(const char *name);

#endif
