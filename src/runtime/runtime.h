/*
 * crater-runtime: the built-in OCI runtime.  This header is the internal
 * contract between the files of src/runtime/ (the program is the only user):
 *
 *   main.c      runc-compatible command line, one function per command
 *   state.c     <root>/<id>/state.json, status computation
 *   create.c    spawning the container init and the parent/child sync
 *   rootfs.c    mounts, /dev, pivot_root, masked/readonly paths
 *   process.c   user, capabilities, rlimits, fds, execve (init and exec)
 *   seccomp.c   linux.seccomp -> libseccomp filter; the default profile
 *   cgroup.c    cgroup v1 / v2 manager chosen at run time
 *   hooks.c     OCI hooks with state on stdin and timeouts
 *   exec.c      `exec`: a new process inside a running container
 *   sealed.c    re-exec from a sealed memfd (CVE-2019-5736)
 *
 * See docs/design/runtime.md for the process model.
 */
#ifndef CRATER_RUNTIME_RUNTIME_H
#define CRATER_RUNTIME_RUNTIME_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/xalloc.h"

#define CRATER_OCI_VERSION "1.0.2"
#define CRATER_RUNTIME_DEFAULT_ROOT "/run/crater-runtime"

static inline void
cleanup_jsonp(json_t **j)
{
  if (*j)
    json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(cleanup_jsonp)))

/* Global options (before the command). */
typedef struct {
  const char *root;
  const char *log_path;
  bool log_json;
  bool debug;
  /* --go-fd: a network namespace made while waiting for "go", its
   * loopback up, for an init that needs a new one (create.c); -1 */
  int premade_netns;
} crater_rt_opts_t;

extern crater_rt_opts_t crater__rt_opts;

/* Logs an error/warning/debug line to stderr and to --log in the chosen
 * format. */
void crater__rt_log(const char *level, const char *fmt, ...) CRATER_PRINTF(2, 3);
#define rt_debug(...)                                                                              \
  do {                                                                                             \
    if (crater__rt_opts.debug)                                                                     \
      crater__rt_log("debug", __VA_ARGS__);                                                        \
  } while (0)

/* --- JSON helpers (spec access; missing keys give the default) ---------- */
const char *crater__js(json_t *o, const char *key); /* NULL if absent */
json_int_t crater__ji(json_t *o, const char *key, json_int_t def);
bool crater__jb(json_t *o, const char *key, bool def);
json_t *crater__jpath(json_t *o, const char *dotted); /* "linux.resources" */

/* --- small helpers ------------------------------------------------------ */
int crater__write_str(const char *path, const char *s, crater_error_t *err);
int crater__write_strat(int dirfd, const char *name, const char *s, crater_error_t *err);
int crater__parse_signal(const char *s); /* <0 unknown */
/* Field 22 (starttime) and state letter of /proc/<pid>/stat; -1 if gone. */
int crater__proc_stat(pid_t pid, unsigned long long *start, char *state);
char *crater__rfc3339_now(void);

/* --- parent/child sync over a SOCK_SEQPACKET pair ----------------------- */
enum {
  SYNC_GO = 1,     /* parent -> child: maps/cgroup done, go on */
  SYNC_HOOKS,      /* child -> parent: run prestart/createRuntime */
  SYNC_HOOKS_DONE, /* parent -> child */
  SYNC_READY,      /* child -> parent: created, waiting for start */
  SYNC_PID,        /* intermediate -> parent: pid of the init */
  SYNC_ERROR,      /* child -> parent: msg holds the error */
};
typedef struct {
  int type;
  int value;
  int status;
  char msg[2048];
} crater_sync_t;

int crater__sync_send(int fd, int type, int value, crater_error_t *err);
int crater__sync_send_error(int fd, crater_error_t e);
/* Receives one message; a SYNC_ERROR from the peer becomes *err. */
int crater__sync_recv(int fd, int expect, int *value, crater_error_t *err);

/* --- container state ---------------------------------------------------- */
typedef enum { ST_CREATING, ST_CREATED, ST_RUNNING, ST_PAUSED, ST_STOPPED } crater_status_t;

typedef struct {
  char *id;
  char *dir; /* <root>/<id> */
  char *bundle;
  char *rootfs;
  char *created; /* RFC 3339 */
  pid_t pid;
  unsigned long long start_time;
  char *cgroup_path;   /* hierarchy-relative, leading '/' */
  json_t *config;      /* the bundle's config.json (owned); NULL until
                          crater__state_config loads it */
  json_t *annotations; /* the config's annotations (owned) or NULL */
  bool has_hooks;      /* the config has hooks */
} crater_state_t;

void crater__state_free(crater_state_t *s);
static inline void
cleanup_statep(crater_state_t **s)
{
  if (*s)
    crater__state_free(*s);
}
#define cleanup_state __attribute__((cleanup(cleanup_statep)))

char *crater__state_dir(const char *id);
int crater__state_save(crater_state_t *s, crater_error_t *err);
crater_state_t *crater__state_load(const char *id, crater_error_t *err);
/* The container's config (from <dir>/config.json, read on first use):
 * state.json holds only what most commands need. */
json_t *crater__state_config(crater_state_t *s, crater_error_t *err);
crater_status_t crater__state_status(crater_state_t *s);
const char *crater__status_name(crater_status_t st);
/* The OCI state JSON (runc's field set) for `state` and hooks. */
json_t *crater__state_json(crater_state_t *s, crater_status_t st);

/* --- cgroups ------------------------------------------------------------ */
bool crater__cgroup_is_v2(void);
/* Resolves linux.cgroupsPath (or the default /crater/<id>). */
char *crater__cgroup_path_for(json_t *config, const char *id);
/* Creates the cgroup(s) and applies linux.resources (and linux.devices). */
int crater__cgroup_apply(const char *path, json_t *config, crater_error_t *err);
/* Moves `pid` into the cgroup(s): cgroup.procs in every hierarchy. */
int crater__cgroup_enter(const char *path, pid_t pid, crater_error_t *err);
/* Moves the calling (single-threaded) process into the cgroup(s) itself, which
 * on v1 avoids the kernel's RCU-synchronised threadgroup lock (see cgroup.c).
 * crater__cgroup_can_enter_self() tells whether that is the fast path here. */
bool crater__cgroup_can_enter_self(void);
int crater__cgroup_enter_self(const char *path, crater_error_t *err);
/* clone(flags) of a child born in the v2 cgroup at path (clone3 with
 * CLONE_INTO_CGROUP): no later move, so none of the kernel's threadgroup
 * lock (see cgroup.c).  On a hybrid host the child is born in the cgroup of
 * the unified hierarchy only, and still joins the v1 ones (pure v1: -1).
 * Returns as fork does; -1 too where the kernel lacks it (before 5.7) or
 * refuses (logged with --debug): the caller then clones as before and
 * moves the child. */
pid_t crater__cgroup_clone_into(const char *path, int flags);
/* On a hybrid host, makes the cgroup in the unified hierarchy (before
 * crater__cgroup_clone_into); elsewhere does nothing. */
int crater__cgroup_prepare_unified(const char *path, crater_error_t *err);
/* The cgroup's directories, one a line (every v1 hierarchy's, present or
 * not, and a hybrid host's unified one); malloc'd. */
char *crater__cgroup_dir_list(const char *path);
int crater__cgroup_freeze(const char *path, bool frozen, crater_error_t *err);
bool crater__cgroup_frozen(const char *path);
/* pids in the cgroup; *n gets the count; malloc'd. */
pid_t *crater__cgroup_pids(const char *path, size_t *n, crater_error_t *err);
int crater__cgroup_kill_all(const char *path, int sig, crater_error_t *err);
/* Kills what is left and removes the cgroup(s). */
int crater__cgroup_destroy(const char *path, crater_error_t *err);
json_t *crater__cgroup_stats(const char *path, crater_error_t *err);
/* Mounts the container's cgroups at `where` inside rootfd. */
int crater__cgroup_mount(const char *path, int rootfd, const char *where, unsigned long flags,
                         bool cgroupns, crater_error_t *err);

/* --- hooks -------------------------------------------------------------- */
/* Whether config has hooks of kind (callers skip making the state). */
bool crater__hooks_present(json_t *config, const char *kind);
/* Runs config.hooks.<kind> with the state JSON on stdin. */
int crater__hooks_run(json_t *config, const char *kind, json_t *state, crater_error_t *err);

/* --- seccomp ------------------------------------------------------------ */
extern const unsigned char crater__seccomp_default_json[];
/* Compiles and loads linux.seccomp (NULL or absent: nothing).  Returns the
 * notify fd when an SCMP_ACT_NOTIFY rule exists, else 0. */
int crater__seccomp_apply(json_t *seccomp, crater_error_t *err);
/* Compiles (or reads from <root>/seccomp-cache) the filter for seccomp
 * before the container process is cloned, so that crater__seccomp_apply
 * on the same json object only installs it. */
int crater__seccomp_prepare(json_t *seccomp, crater_error_t *err);

/* --- rootfs ------------------------------------------------------------- */
typedef struct {
  json_t *config;
  const char *bundle;
  const char *rootfs; /* absolute */
  const char *cgroup_path;
  bool no_pivot;
  bool new_userns;
  bool new_cgroupns;
  bool new_netns;
  /* progress of crater__rootfs_prepare_early, for crater__rootfs_prepare:
   * the rootfs open (-1 before), the next mount */
  int rootfd;
  size_t next_mount;
  bool dev_bound;
} crater_rootfs_ctx_t;

/* The part of crater__rootfs_prepare that does not need the container's
 * cgroup: the rootfs and the mounts before the first "cgroup" one.  The
 * init does it while the parent makes the cgroup (create.c). */
int crater__rootfs_prepare_early(crater_rootfs_ctx_t *ctx, crater_error_t *err);
/* Everything up to (not including) pivot_root (what _early did excepted);
 * closes ctx->rootfd. */
int crater__rootfs_prepare(crater_rootfs_ctx_t *ctx, crater_error_t *err);
/* pivot_root (or MS_MOVE + chroot), masked/readonly paths, ro root. */
int crater__rootfs_finish(crater_rootfs_ctx_t *ctx, crater_error_t *err);
/* Opens (creating missing dirs, and the leaf as dir or file) a path inside
 * root without leaving it; returns an O_PATH fd. */
int crater__open_in_root(int rootfd, const char *path, bool leaf_dir, bool create,
                         crater_error_t *err);

/* --- process ------------------------------------------------------------ */
/* Sets rlimits, oom_score_adj is done elsewhere. */
int crater__process_rlimits(json_t *process, crater_error_t *err);
/* Changes directory to process.cwd (must exist inside the root). */
int crater__process_cwd(json_t *process, crater_error_t *err);
/* Resolves args[0] with the process PATH; malloc'd. */
char *crater__process_lookup(json_t *process, crater_error_t *err);
/* User, capabilities, no_new_privileges, seccomp, fds, execve.  Never
 * returns on success. */
int crater__process_exec(json_t *process, json_t *seccomp, const char *exe, int preserve_fds,
                         crater_error_t *err);
/* Sets up a pty inside the container and sends its master over sockfd. */
int crater__process_console(int sockfd, json_t *process, crater_error_t *err);
/* Brings up the loopback of the calling process's network namespace, as
 * runc does in every new one (its spec conversion gives each a "loopback"
 * network): 127.0.0.1 and ::1 work in a container with no other network. */
int crater__loopback_up(crater_error_t *err);
/* The init's terminal (its stdin) bound on /dev/console, as the OCI runtime
 * spec asks (crater__rootfs_finish made the mount point). */
int crater__process_console_mount(crater_error_t *err);
int crater__send_fd(int sock, int fd, const char *name, crater_error_t *err);

/* --- device rules (devices_bpf.c) ---------------------------------------- */
typedef struct {
  int type;      /* 0 any, BPF_DEVCG_DEV_BLOCK (1), BPF_DEVCG_DEV_CHAR (2) */
  long long maj; /* -1 any */
  long long min;
  int access; /* BPF_DEVCG_ACC_* bits: 1 mknod, 2 read, 4 write */
  bool allow;
} crater_dev_rule_t;
/* The ordered rules: devices (linux.resources.devices), the defaults,
 * linux_devs (linux.devices, allowed).  malloc'd array of *n. */
crater_dev_rule_t *crater__device_rules(json_t *devices, json_t *linux_devs, size_t *n);
/* A rule in v1's devices.allow/deny syntax ("c 1:3 rwm"); malloc'd. */
char *crater__dev_rule_v1(const crater_dev_rule_t *r);

/* Compiles linux.resources.devices (then the default devices and
 * linux.devices, allowed) into a BPF_PROG_TYPE_CGROUP_DEVICE program and
 * attaches it to the v2 cgroup directory. */
int crater__devices_bpf_apply(const char *cgroup_dir, json_t *devices, json_t *linux_devs,
                              crater_error_t *err);
/* Loads the program last loaded under the runtime root, for an apply that
 * builds the same one (a runtime waiting for its config: --go-fd).  Best
 * effort; cgroup v2 only. */
void crater__devices_bpf_preload(void);

/* --- foreground terminal (console.c) ------------------------------------ */
/* A socket pair standing in for --console-socket. */
int crater__console_pair(int sv[2], crater_error_t *err);
/* Receives the pty master the container process sends; the fd or -1. */
int crater__console_recv(int sock, crater_error_t *err);
/* Proxies master <-> stdio (raw mode, window size) until pid exits;
 * returns its shell-style exit code, or -1. */
int crater__console_proxy(int master, pid_t pid, crater_error_t *err);

/* --- sealed re-exec ----------------------------------------------------- */
/* Re-executes from a sealed memfd copy unless already doing so. */
int crater__ensure_sealed(char **argv, crater_error_t *err);

/* --- commands ----------------------------------------------------------- */
typedef struct {
  const char *id;
  const char *bundle;
  const char *pid_file;
  const char *console_socket;
  int console_fd; /* >= 0: a connected console socket instead of the path */
  bool no_pivot;
  int preserve_fds;
  bool detach;   /* run only */
  bool terminal; /* out: process.terminal of the bundle */
  /* out, when want_state: the state saved, for crater_runtime_start_state
   * (`run` starts what it created without reading state.json back) */
  bool want_state;
  crater_state_t *state;
  /* out, when want_state: exec.fifo opened for reading as soon as the init
   * is ready, which releases it, so its exec overlaps the writing of the
   * state; for crater_runtime_start_state */
  int start_fd;
} crater_create_opts_t;

/* Creates the container; returns the init pid (the init is blocked on
 * exec.fifo until start). */
pid_t crater_runtime_create(crater_create_opts_t *o, crater_error_t *err);
int crater_runtime_start(const char *id, crater_error_t *err);
/* Starts from a state in hand; fifo_fd >= 0: exec.fifo already opened for
 * reading (taken over, closed here). */
int crater_runtime_start_state(crater_state_t *s, int fifo_fd, crater_error_t *err);
int crater_runtime_delete(const char *id, bool force, crater_error_t *err);

typedef struct {
  const char *id;
  json_t *process; /* owned by caller */
  const char *pid_file;
  const char *console_socket;
  bool detach;
  int preserve_fds;
} crater_exec_opts_t;
/* Returns the exit status (foreground) or 0 (detached). */
int crater_runtime_exec(crater_exec_opts_t *o, crater_error_t *err);

/* Blocks every signal a foreground runtime forwards to its container (all
 * but the synchronous faults) and fills set with them. */
void crater__block_forwarded_signals(sigset_t *set);

/* Waits for pid (a child or, with the subreaper bit, a descendant) while
 * forwarding signals to it; returns the shell-style exit code. */
int crater__wait_forward(pid_t pid, crater_error_t *err);

#endif
