/*
 * Container state on disk: <root>/<id>/state.json holds what `state`
 * prints (runc's field set) plus private fields (init start time, cgroup
 * path, whether the config has hooks), written atomically; the bundle's
 * config, which only exec and the hooks need, is beside it in config.json
 * (state.json used to embed it: every kill, state, ps or delete parsed
 * ~10 kB of JSON; such files are still read).  The status is never
 * stored: it is derived from the init process (alive? zombie? same start
 * time as recorded?), the exec.fifo (present until `start`) and the
 * freezer, as runc does.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

void
crater__state_free(crater_state_t *s)
{
  if (s == NULL)
    return;
  free(s->id);
  free(s->dir);
  free(s->bundle);
  free(s->rootfs);
  free(s->created);
  free(s->cgroup_path);
  if (s->config)
    json_decref(s->config);
  if (s->annotations)
    json_decref(s->annotations);
  free(s);
}

char *
crater__state_dir(const char *id)
{
  return xasprintf("%s/%s", crater__rt_opts.root, id);
}

static bool
config_has_hooks(json_t *config)
{
  json_t *hooks = json_object_get(config, "hooks");
  const char *k;
  json_t *v;
  json_object_foreach(hooks, k, v)
  {
    if (json_array_size(v) > 0)
      return true;
  }
  return false;
}

static json_t *
config_annotations(json_t *config)
{
  json_t *ann = json_object_get(config, "annotations");
  return json_is_object(ann) && json_object_size(ann) > 0 ? json_incref(ann) : NULL;
}

int
crater__state_save(crater_state_t *s, crater_error_t *err)
{
  if (s->config) {
    char *cbuf = json_dumps(s->config, JSON_COMPACT);
    if (cbuf == NULL)
      return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "encode config of %s", s->id);
    cleanup_free char *cpath = crater__path_join(s->dir, "config.json");
    int r = crater__write_file_replace(cpath, cbuf, strlen(cbuf), 0600, err);
    free(cbuf);
    if (r < 0)
      return -1;
    s->has_hooks = config_has_hooks(s->config);
    if (s->annotations)
      json_decref(s->annotations);
    s->annotations = config_annotations(s->config);
  }
  json_t *o =
      json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:b}", "ociVersion", CRATER_OCI_VERSION, "id",
                s->id, "pid", (json_int_t) s->pid, "bundle", s->bundle, "rootfs", s->rootfs,
                "created", s->created, "owner", "", "init_start_time", (json_int_t) s->start_time,
                "cgroup_path", s->cgroup_path ? s->cgroup_path : "", "hooks", s->has_hooks);
  if (o == NULL)
    return crater_error_make(err, CRATER_ERR_INTERNAL, 0, "encode state of %s", s->id);
  if (s->annotations)
    json_object_set(o, "annotations", s->annotations);
  char *buf = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  cleanup_free char *path = crater__path_join(s->dir, "state.json");
  int r = crater__write_file_replace(path, buf, strlen(buf), 0600, err);
  free(buf);
  return r;
}

crater_state_t *
crater__state_load(const char *id, crater_error_t *err)
{
  if (id == NULL || *id == '\0' || strchr(id, '/') || strcmp(id, ".") == 0 ||
      strcmp(id, "..") == 0) {
    crater_error_make(err, CRATER_ERR_INVALID_ARGUMENT, EINVAL, "invalid container id '%s'",
                      id ? id : "");
    return NULL;
  }
  cleanup_free char *dir = crater__state_dir(id);
  cleanup_free char *path = crater__path_join(dir, "state.json");
  json_error_t jerr;
  json_t *o = json_load_file(path, 0, &jerr);
  if (o == NULL) {
    if (access(dir, F_OK) < 0)
      crater_error_make(err, CRATER_ERR_NOT_FOUND, ENOENT, "container \"%s\" does not exist", id);
    else
      crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "read %s: %s", path, jerr.text);
    return NULL;
  }
  crater_state_t *s = xmalloc0(sizeof *s);
  s->id = xstrdup(id);
  s->dir = steal_pointer(&dir);
  s->bundle = xstrdup(crater__js(o, "bundle"));
  s->rootfs = xstrdup(crater__js(o, "rootfs"));
  s->created = xstrdup(crater__js(o, "created"));
  s->pid = (pid_t) crater__ji(o, "pid", 0);
  s->start_time = (unsigned long long) crater__ji(o, "init_start_time", 0);
  const char *cg = crater__js(o, "cgroup_path");
  s->cgroup_path = cg && *cg ? xstrdup(cg) : NULL;
  json_t *cfg = json_object_get(o, "config");
  if (json_is_object(cfg)) { /* written by an earlier crater-runtime */
    s->config = json_incref(cfg);
    s->has_hooks = config_has_hooks(cfg);
    s->annotations = config_annotations(cfg);
  } else {
    s->has_hooks = crater__jb(o, "hooks", false);
    json_t *ann = json_object_get(o, "annotations");
    s->annotations = json_is_object(ann) ? json_incref(ann) : NULL;
  }
  json_decref(o);
  return s;
}

json_t *
crater__state_config(crater_state_t *s, crater_error_t *err)
{
  if (s->config)
    return s->config;
  cleanup_free char *path = crater__path_join(s->dir, "config.json");
  json_error_t jerr;
  s->config = json_load_file(path, 0, &jerr);
  if (s->config == NULL)
    crater_error_make(err, CRATER_ERR_DATA_LOSS, 0, "read %s: %s", path, jerr.text);
  return s->config;
}

crater_status_t
crater__state_status(crater_state_t *s)
{
  unsigned long long start = 0;
  char st = 0;
  if (s->pid <= 0 || crater__proc_stat(s->pid, &start, &st) < 0 || st == 'Z' || st == 'X' ||
      start != s->start_time)
    return ST_STOPPED;
  cleanup_free char *fifo = crater__path_join(s->dir, "exec.fifo");
  if (access(fifo, F_OK) == 0)
    return ST_CREATED;
  if (s->cgroup_path && crater__cgroup_frozen(s->cgroup_path))
    return ST_PAUSED;
  return ST_RUNNING;
}

const char *
crater__status_name(crater_status_t st)
{
  switch (st) {
  case ST_CREATING:
    return "creating";
  case ST_CREATED:
    return "created";
  case ST_RUNNING:
    return "running";
  case ST_PAUSED:
    return "paused";
  default:
    return "stopped";
  }
}

json_t *
crater__state_json(crater_state_t *s, crater_status_t st)
{
  json_t *o =
      json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s}", "ociVersion", CRATER_OCI_VERSION, "id", s->id,
                "pid", (json_int_t) (st == ST_STOPPED ? 0 : s->pid), "status",
                crater__status_name(st), "bundle", s->bundle ? s->bundle : "", "rootfs",
                s->rootfs ? s->rootfs : "", "created", s->created ? s->created : "", "owner", "");
  if (s->annotations)
    json_object_set(o, "annotations", s->annotations);
  return o;
}
