/*
 * Small filesystem and string helpers shared by every domain.
 * All return < 0 (or NULL) and fill *err on failure.
 */
#ifndef CRATER_COMMON_UTIL_H
#define CRATER_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/error.h"

/* Creates path and its missing parents with mode (like mkdir -p). */
int crater__mkdir_p(const char *path, mode_t mode, crater_error_t *err);
/* Whether path is a regular file this process may execute.  st gets its
 * stat (st_mode 0, errno set, when there is nothing there). */
bool crater__is_executable(const char *path, struct stat *st);
/* Reads /proc/PID/stat into buf and returns its fields after the command
 * name (from field 3, the state), or NULL when there is no such process. */
char *crater__proc_stat_fields(pid_t pid, char *buf, size_t size);
/* Moves the calling thread to another CPU it may run on, keeping its
 * affinity (it pins itself to the others, then restores its mask, which no
 * longer moves it), when child (if > 0) last ran on the caller's CPU.  The
 * kernel here mostly places a new process on its parent's CPU (33 forks in
 * 40 with the other CPU idle, each waiting ~2.3 ms for it): a parent that
 * has just started a child and goes on working leaves it the CPU this way.
 * An exec may have moved the child already, and then the caller stays.
 * Nothing to do on one CPU. */
void crater__leave_cpu(pid_t child);

/* Writes/reads exactly n bytes, retrying on EINTR and short transfers.
 * read_all returns the number read (short only at EOF). */
int crater__write_all(int fd, const void *buf, size_t n, crater_error_t *err);
ssize_t crater__read_all(int fd, void *buf, size_t n, crater_error_t *err);

/* Reads a whole file (at most max bytes, else RESOURCE_EXHAUSTED) into a
 * NUL-terminated malloc'd buffer; *len_out may be NULL. */
char *crater__read_file(const char *path, size_t max, size_t *len_out, crater_error_t *err);

/* Writes a file atomically: tmp file in the same dir, fsync, rename,
 * fsync dir. */
int crater__write_file_atomic(const char *path, const void *buf, size_t n, mode_t mode,
                              crater_error_t *err);

/* Replaces a file atomically (tmp file in the same dir, rename) without
 * the fsyncs: readers see the old or the new content, never a part, but
 * a crash may lose the write.  For state that does not outlive a boot
 * (a runtime's state.json and pid files, normally on tmpfs). */
int crater__write_file_replace(const char *path, const void *buf, size_t n, mode_t mode,
                               crater_error_t *err);

/* fsyncs the directory at path. */
int crater__fsync_dir(const char *path, crater_error_t *err);

/* Removes path recursively (rm -rf); a missing path is not an error.
 * Never follows symlinks and never crosses into other mounts' contents
 * beyond unlinking. */
int crater__remove_all(const char *path, crater_error_t *err);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void crater__hex_encode(const unsigned char *in, size_t n, char *out);

/* Standard base64 (RFC 4648 section 4, '=' padded, no line breaks) of n
 * bytes into out (4 * ((n + 2) / 3) + 1 bytes), NUL-terminated. */
void crater__base64_encode(const void *in, size_t n, char *out);

/* Wall clock in nanoseconds since the epoch. */
int64_t crater__now_ns(void);

/* The monotonic clock in nanoseconds, and in milliseconds: for deadlines
 * and elapsed time, which a step of the wall clock must not move. */
int64_t crater__mono_ns(void);
int64_t crater__mono_ms(void);

/* Joins a and b with exactly one '/'; malloc'd. */
char *crater__path_join(const char *a, const char *b);

bool crater__str_has_prefix(const char *s, const char *prefix);

#endif
