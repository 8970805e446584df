---@meta
-- Type stubs for `crater.core`, the C half of the crater Lua module
-- (src/lua/l_*.c, one opener per domain in src/lua/core.c `domains[]`), for
-- lua-language-server and readers; Neovim runtime/lua/vim/_meta style.  Not
-- loaded at run time (cmake/embed_lua.cmake skips _meta/).
--
-- Hand-written: spec/unit/core_stubs_spec.lua fails when a function of
-- `require "crater.core"` or a method of one of its metatables (crater.store,
-- crater.content_writer, crater.remote, crater.task_io, crater.shim_pending,
-- crater.tar_reader)
-- has no stub here, or a stub names something the module does not have.
--
-- Conventions (docs/design/errors.md): misuse raises; expected failures
-- return `nil, msg, kind`.  Store methods take the namespace explicitly.
-- Timestamps are seconds since the epoch (float).
-- luacheck: ignore 241 (class tables only collect stubs)
error("Cannot require a meta file")

---@alias crater.core.Labels table<string, string>

---@class crater.core.Mount
---@field type string
---@field source string
---@field target? string
---@field options string[]

---@class crater.core.SnapshotInfo
---@field name string
---@field parent? string
---@field kind "active"|"view"|"committed"
---@field labels crater.core.Labels
---@field created_at number
---@field updated_at number

---@class crater.core.ContentInfo
---@field digest string
---@field size number
---@field labels crater.core.Labels
---@field created_at number
---@field updated_at number

---@class crater.core.Descriptor
---@field media_type string
---@field digest string
---@field size number

---@class crater.core.Image
---@field name string
---@field target crater.core.Descriptor
---@field labels crater.core.Labels
---@field created_at number
---@field updated_at number

---@class crater.core.Container
---@field id string
---@field image? string
---@field snapshotter? string
---@field snapshot_key? string
---@field spec? string             JSON text
---@field runtime? string
---@field runtime_options? string  JSON text
---@field extensions? string       JSON text
---@field labels crater.core.Labels
---@field created_at number
---@field updated_at number

---@class crater.core
local core = {}

-- ---------------------------------------------------------------------------
-- module (src/lua/core.c)

--- C ABI version, checked by lua/crater/init.lua at require time.
---@type integer
core.abi = 1

--- crater version string (CRATER_VERSION).
---@type string
core.version = ""

-- ---------------------------------------------------------------------------
-- base (src/lua/l_base.c)

--- Wall-clock time, seconds since the epoch.
---@return number
function core.now() end

--- Monotonic clock, seconds.
---@return number
function core.monotonic() end

--- Process id.
---@return integer
function core.getpid() end

--- Effective user id.
---@return integer
function core.geteuid() end

--- Sets the C log level ("debug", "info", "warn", "error").
---@param level string
function core.set_log_level(level) end

--- policies/seccomp-default.json as compiled into crater.core (JSON text).
---@return string
function core.default_seccomp_json() end

-- ---------------------------------------------------------------------------
-- filesystem and process helpers (src/lua/l_fs.c)

--- Names in dir, sorted bytewise, without "." and "..".
---@param path string
---@return string[]|nil names, string? err, string? kind
function core.listdir(path) end

--- mkdir -p.
---@param path string
---@param mode? integer default 0755
---@return true|nil ok, string? err, string? kind
function core.mkdir_p(path, mode) end

--- The device nodes under dir (default /dev), sorted by path, as
--- containerd's WithHostDevices lists them: recursively, not through
--- symlinks, not pts, shm, fd, mqueue, .lxc, .lxd-mounts, .udev or the
--- console.  A missing dir gives an empty list.
---@param dir? string
---@return {path: string, type: "c"|"b", major: integer, minor: integer, mode: integer, uid: integer, gid: integer}[]
function core.host_devices(dir) end

--- mkdir of one directory that must not exist yet (kind "already_exists"
--- if it does): the caller knows the directory is its own.
---@param path string
---@param mode? integer default 0755
---@return true|nil ok, string? err, string? kind
function core.mkdir(path, mode) end

---@param path string
---@param mode integer
---@return true|nil ok, string? err, string? kind
function core.chmod(path, mode) end

--- rm -rf; a missing path is fine.
---@param path string
---@return true|nil ok, string? err, string? kind
function core.remove_all(path) end

--- lstat succeeds (dangling links, fifos and sockets count).
---@param path string
---@return boolean
function core.exists(path) end

--- A regular file this process may execute.
---@param path string
---@return boolean
function core.executable(path) end

--- name looked up in $PATH like `command -v` (a name with '/' is returned
--- when executable).
---@param name string
---@return string? path
function core.which(name) end

--- The running executable (/proc/self/exe).
---@return string? path
function core.exe_path() end

--- Filesystem type of path: "btrfs", "ext4", "xfs", "tmpfs", "overlay",
--- "nfs", "fuse", "zfs" or "unknown".
---@param path string
---@return string|nil fstype, string? err, string? kind
function core.fs_type(path) end

--- Waits until pid (not necessarily a child) has exited; false on timeout.
---@param pid integer
---@param timeout_ms? integer default 5000
---@return boolean gone
function core.wait_pid_gone(pid, timeout_ms) end

--- Runs a program without a shell: argv[1] is looked up in $PATH like
--- execvp, in its own process group, with default signal dispositions and
--- only fds 0..2.  Writes opts.stdin (default: none, EOF at once) to its
--- stdin and captures stdout and stderr, keeping max_output bytes of each
--- (default 1 MiB; `truncated` says some were dropped).  Returns once the
--- program has exited and its pipes are drained (not waiting for
--- processes it left behind).  A program that cannot be started is
--- `nil, "run NAME: strerror", kind` (not_found when missing); one still
--- running after timeout_ms (default 30000; -1: no limit) is killed with
--- its process group: `nil, msg, "deadline_exceeded"`.  Messages never
--- contain stdin or the output.
---@param argv string[]
---@param opts? {stdin?: string, timeout_ms?: integer, max_output?: integer}
---@return {code?: integer, signal?: integer, stdout: string, stderr: string, truncated: boolean}|nil result, string? err, string? kind
function core.run(argv, opts) end

-- ---------------------------------------------------------------------------
-- store (src/lua/l_store.c, l_container.c, l_snapshot.c)

--- Opens (creating if missing) the metadata store under root.
---@param root string
---@return crater.store|nil store, string? err, string? kind
function core.open(root) end

---@class crater.store
local Store = {}

--- Closes the store (deferred while content writers are open).  Idempotent;
--- also run by __gc.
function Store:close() end

---@return string root
function Store:root() end

---@param name string
---@param labels? crater.core.Labels
---@return true|nil ok, string? err, string? kind
function Store:namespace_create(name, labels) end

---@return {name: string, labels: crater.core.Labels, created_at: number, updated_at: number}[]|nil list, string? err, string? kind
function Store:namespace_list() end

---@param name string
---@return {name: string, labels: crater.core.Labels, created_at: number, updated_at: number}|nil ns, string? err, string? kind
function Store:namespace_get(name) end

---@param name string
---@return true|nil ok, string? err, string? kind
function Store:namespace_delete(name) end

---@param name string
---@param labels crater.core.Labels
---@param replace? boolean
---@return true|nil ok, string? err, string? kind
function Store:namespace_set_labels(name, labels, replace) end

---@param ns string
---@param digest string
---@return crater.core.ContentInfo|nil info, string? err, string? kind
function Store:content_info(ns, digest) end

---@param ns string
---@param filters? string[]
---@return crater.core.ContentInfo[]|nil list, string? err, string? kind
function Store:content_list(ns, filters) end

--- Bytes [offset, offset+len) of a blob (len nil or < 0: to the end).
---@param ns string
---@param digest string
---@param offset? number
---@param len? number
---@return string|nil data, string? err, string? kind
function Store:content_read(ns, digest, offset, len) end

---@param ns string
---@param digest string
---@return string|nil path, string? err, string? kind
function Store:content_path(ns, digest) end

---@param ns string
---@param digest string
---@param labels crater.core.Labels
---@param replace? boolean
---@return true|nil ok, string? err, string? kind
function Store:content_set_labels(ns, digest, labels, replace) end

--- Records an existing blob in namespace ns.
---@param ns string
---@param digest string
---@param labels? crater.core.Labels
---@return true|nil ok, string? err, string? kind
function Store:content_add(ns, digest, labels) end

---@param ns string
---@param digest string
---@return true|nil ok, string? err, string? kind
function Store:content_delete(ns, digest) end

--- In-progress ingests.
---@param ns string
---@return {ref: string, offset: number, total: number, expected?: string, started_at: number, updated_at: number, active: boolean}[]|nil list, string? err, string? kind
function Store:content_status(ns) end

---@param ns string
---@param ref string
---@return true|nil ok, string? err, string? kind
function Store:content_abort(ns, ref) end

--- Opens (or resumes) the ingest ref.
---@param ns string
---@param ref string
---@param opts? {expected?: string, size?: integer}
---@return crater.content_writer|nil writer, string? err, string? kind
function Store:content_writer(ns, ref, opts) end

--- Ingests a file (path nil: stdin) in one call.
---@param ns string
---@param ref string
---@param path? string
---@param opts? {expected?: string, size?: integer, labels?: crater.core.Labels}
---@return string|nil digest, "committed"|"exists"|string status_or_err, string? kind
function Store:content_ingest_file(ns, ref, path, opts) end

---@param ns string
---@param image {name: string, target: crater.core.Descriptor, labels?: crater.core.Labels}
---@return crater.core.Image|nil image, string? err, string? kind
function Store:image_create(ns, image) end

---@param ns string
---@param name string
---@return crater.core.Image|nil image, string? err, string? kind
function Store:image_get(ns, name) end

---@param ns string
---@param filters? string[]
---@return crater.core.Image[]|nil list, string? err, string? kind
function Store:image_list(ns, filters) end

---@param ns string
---@param image {name: string, target: crater.core.Descriptor, labels?: crater.core.Labels}
---@return crater.core.Image|nil image, string? err, string? kind
function Store:image_update(ns, image) end

---@param ns string
---@param name string
---@return true|nil ok, string? err, string? kind
function Store:image_delete(ns, name) end

---@param ns string
---@param id string
---@param labels? crater.core.Labels
---@param expire? number seconds since the epoch (0: never)
---@return true|nil ok, string? err, string? kind
function Store:lease_create(ns, id, labels, expire) end

---@param ns string
---@return {id: string, labels: crater.core.Labels, created_at: number, expire_at?: number, resources: {kind: string, key: string}[]}[]|nil list, string? err, string? kind
function Store:lease_list(ns) end

---@param ns string
---@param id string
---@return true|nil ok, string? err, string? kind
function Store:lease_delete(ns, id) end

---@param ns string
---@param id string
---@param kind string
---@param key string
---@return true|nil ok, string? err, string? kind
function Store:lease_add_resource(ns, id, kind, key) end

--- fsck: re-hashes blobs, reports corrupt, orphan and missing blobs and
--- stale ingests; deletes only with repair.
---@param opts? {quick?: boolean, repair?: boolean, stale_after?: integer}
---@return {checked: number, corrupt: {digest: string, actual?: string}[], orphans: string[], missing: {namespace: string, digest: string}[], stale_ingests: string[], repaired: boolean}|nil report, string? err, string? kind
function Store:check(opts) end

--- The SQL of the connection's cached prepared statements (each once).
---@return string[]
function Store:statements() end

--- Whether a transaction is open on the connection (a `crater daemon`
--- worker checks between commands).
---@return boolean
function Store:in_transaction() end

--- Prepares these statements into the connection's cache (never runs
--- them: a statement is used only when the code asks for its exact text).
--- For `crater daemon` workers, which prepare what the last commands used
--- while they wait.  Returns how many were kept.
---@param sql string[]
---@return integer
function Store:warm_statements(sql) end

--- Checkpoints the metadata WAL into the database and truncates it,
--- waiting for nobody ("unavailable" when another connection is in the
--- way), when the WAL file holds min_frames frames or more (default 0:
--- always).  A `crater daemon` janitor's, while the daemon is idle.
---@param min_frames? integer
---@return true|nil ok, string? err, string? kind
function Store:checkpoint(min_frames) end

--- (l_container.c)
---@param ns string
---@param record crater.core.Container
---@return true|nil ok, number|string created_at_or_err, string? kind  (created_at: seconds, also updated_at)
function Store:container_create(ns, record) end

---@param ns string
---@param id string
---@return crater.core.Container|nil record, string? err, string? kind
function Store:container_get(ns, id) end

---@param ns string
---@param filters? string[]
---@return crater.core.Container[]|nil list, string? err, string? kind
function Store:container_list(ns, filters) end

--- Updates the named fields (all when nil) of record.
---@param ns string
---@param record crater.core.Container
---@param fields? string[]
---@return true|nil ok, string? err, string? kind
function Store:container_update(ns, record, fields) end

---@param ns string
---@param id string
---@return true|nil ok, string? err, string? kind
function Store:container_delete(ns, id) end

--- (l_snapshot.c) Creates active snapshot key on committed parent.
---@param ns string
---@param snapshotter string
---@param key string
---@param parent? string
---@param labels? crater.core.Labels
---@return crater.core.Mount[]|nil mounts, string? err, string? kind
function Store:snapshot_prepare(ns, snapshotter, key, parent, labels) end

--- Creates read-only view key of parent.
---@param ns string
---@param snapshotter string
---@param key string
---@param parent? string
---@param labels? crater.core.Labels
---@return crater.core.Mount[]|nil mounts, string? err, string? kind
function Store:snapshot_view(ns, snapshotter, key, parent, labels) end

--- Commits active key as name.
---@param ns string
---@param snapshotter string
---@param name string
---@param key string
---@param labels? crater.core.Labels
---@return true|nil ok, string? err, string? kind
function Store:snapshot_commit(ns, snapshotter, name, key, labels) end

---@param ns string
---@param snapshotter string
---@param key string
---@return true|nil ok, string? err, string? kind
function Store:snapshot_remove(ns, snapshotter, key) end

---@param ns string
---@param snapshotter string
---@param key string
---@return crater.core.Mount[]|nil mounts, string? err, string? kind
function Store:snapshot_mounts(ns, snapshotter, key) end

---@param ns string
---@param snapshotter string
---@param key string
---@return crater.core.SnapshotInfo|nil info, string? err, string? kind
function Store:snapshot_stat(ns, snapshotter, key) end

--- Merges labels ("" removes a key) or replaces them.
---@param ns string
---@param snapshotter string
---@param key string
---@param labels crater.core.Labels
---@param replace? boolean
---@return crater.core.SnapshotInfo|nil info, string? err, string? kind
function Store:snapshot_update(ns, snapshotter, key, labels, replace) end

---@param ns string
---@param snapshotter string
---@param key string
---@return {size: number, inodes: number}|nil usage, string? err, string? kind
function Store:snapshot_usage(ns, snapshotter, key) end

---@param ns string
---@param snapshotter string
---@param filters? string|string[]
---@return crater.core.SnapshotInfo[]|nil list, string? err, string? kind
function Store:snapshot_walk(ns, snapshotter, filters) end

--- Removes backend data nothing references (all namespaces).
---@param snapshotter string
---@return integer|nil removed, string? err, string? kind
function Store:snapshot_cleanup(snapshotter) end

--- Directory a layer is applied into for active key, and its whiteout style.
---@param ns string
---@param snapshotter string
---@param key string
---@return string|nil dir, "overlay"|"delete"|string whiteouts_or_err, string? kind
function Store:snapshot_apply_dir(ns, snapshotter, key) end

---@class crater.content_writer
local ContentWriter = {}

---@param data string
---@return number|nil written, string? err, string? kind
function ContentWriter:write(data) end

---@return number offset
function ContentWriter:offset() end

--- Digest of the bytes written so far.
---@return string digest
function ContentWriter:digest() end

--- Verifies size and digest and moves the blob into the store.
---@param size? number
---@param expected? string
---@param labels? crater.core.Labels
---@return string|nil digest, "committed"|"exists"|string status_or_err, string? kind
function ContentWriter:commit(size, expected, labels) end

--- Releases the writer, keeping the ingest for a resume.  Idempotent.
function ContentWriter:close() end

--- Releases the writer and deletes the ingest.
---@return true|nil ok, string? err, string? kind
function ContentWriter:abort() end

-- ---------------------------------------------------------------------------
-- snapshot module functions (src/lua/l_snapshot.c)

---@param mounts crater.core.Mount[]
---@param target string
---@return true|nil ok, string? err, string? kind
function core.mount_all(mounts, target) end

---@param target string
---@param opts? {detach?: boolean}
---@return true|nil ok, string? err, string? kind
function core.unmount_all(target, opts) end

--- Names of the built-in (C) snapshotters.
---@return string[]
function core.snapshotters() end

--- Whether overlayfs works under dir (probed once per dir), and why not.
---@param dir string
---@return boolean|nil ok, string? why_or_err, string? kind
function core.overlay_supported(dir) end

--- From now on this process leaves the backend data of the snapshots it
--- removes (built-in snapshotters) to cleanup; the metadata goes at once.
--- `crater daemon` workers do, and their daemon's janitor cleans up.
---@param on boolean
function core.snapshot_defer_removals(on) end

--- How many removals this process has left to cleanup so far.
---@return integer
function core.snapshot_deferred() end

-- ---------------------------------------------------------------------------
-- remote (src/lua/l_remote.c)

---@class crater.core.RemoteOpts
---@field host? string
---@field plain_http? boolean
---@field ca_file? string
---@field cert_file? string
---@field key_file? string
---@field insecure_skip_verify? boolean
---@field username? string
---@field password? string
---@field timeout? integer
---@field retries? integer
---@field low_speed_limit? integer
---@field backoff_ms? integer
---@field backoff_max_ms? integer
---@field user_agent? string

--- A registry client.
---@param opts crater.core.RemoteOpts
---@return crater.remote|nil remote, string? err, string? kind
function core.remote_new(opts) end

---@class crater.remote
local Remote = {}

--- Idempotent; also run by __gc.
function Remote:close() end

---@return true|nil ok, string? err, string? kind
function Remote:ping() end

---@param repo string
---@param ref string
---@return crater.core.Descriptor|nil desc, string? err, string? kind
function Remote:resolve(repo, ref) end

---@param repo string
---@param ref string
---@param opts? {accept?: string|string[]}
---@return string|nil body, string media_type_or_err, string digest_or_kind
function Remote:fetch_manifest(repo, ref, opts) end

--- Downloads blobs into files (appending: resumes with Range).
---@param repo string
---@param items {digest: string, size?: number, path: string, repo?: string}[]
---@param opts? {parallel?: integer, on_progress?: fun(i: integer, done: number, total: number)}
---@return {ok?: true, size?: number, err?: string, kind?: string}[]|nil results, string? err, string? kind
function Remote:fetch_blobs(repo, items, opts) end

---@param repo string
---@param digest string
---@return boolean|nil exists, string? err, string? kind
function Remote:blob_exists(repo, digest) end

---@param repo string
---@param digest string
---@param size number
---@param path string
---@param opts? {mount_from?: string, chunk_size?: integer}
---@return "exists"|"mounted"|"uploaded"|nil how, string? err, string? kind
function Remote:push_blob(repo, digest, size, path, opts) end

---@param repo string
---@param ref string
---@param body string
---@param media_type string
---@return string|nil digest, string? err, string? kind
function Remote:push_manifest(repo, ref, body, media_type) end

---@param repo string
---@return string[]|nil tags, string? err, string? kind
function Remote:list_tags(repo) end

---@return {requests: integer, token_requests: integer, retries: integer, resumes: integer}
function Remote:stats() end

-- ---------------------------------------------------------------------------
-- json, digest, archive, fetch, transfer

--- Strict JSON decode (duplicate keys rejected); null is core.null, arrays
--- carry core.array_mt.
---@param text string
---@return any|nil value, string? err, string? kind
function core.json_decode(text) end

--- Raises on a value JSON cannot hold (misuse, not an expected failure).
---@param value any
---@param opts? {pretty?: boolean}
---@return string json
function core.json_encode(value, opts) end

--- JSON null (a light userdata).
---@type lightuserdata
core.null = nil

--- Metatable of decoded arrays, so an empty one encodes back as [].
---@type table
core.array_mt = {}

---@param digest string
---@return string|nil algorithm, string? err, string? kind
function core.digest_validate(digest) end

---@param s string
---@param alg? "sha256"|"sha512"
---@return string digest "<alg>:<hex>"
function core.digest_string(s, alg) end

---@param path string
---@param alg? "sha256"|"sha512"
---@return string|nil digest, number|string size_or_err, string? kind
function core.digest_file(path, alg) end

--- Applies a layer tar (optionally compressed) into dir.
---@param dir string
---@param layer_path string
---@param opts? {compression?: string, whiteouts?: "overlay"|"delete", max_size?: number, expected_diff_id?: string, decoder?: string, no_openat2?: boolean}
---@return {diff_id: string, size: number, entries: integer}|nil result, string? err, string? kind
function core.archive_apply(dir, layer_path, opts) end

--- Applies independent layers, each into its own dir (overlay upper dirs),
--- on up to opts.parallel threads (0/nil: CPUs), taken in item order.
---@param items {dir: string, layer: string, compression?: string, whiteouts?: "overlay"|"delete", max_size?: number, expected_diff_id?: string, decoder?: string, record_implicit?: boolean}[]
---@param opts? {parallel?: integer}
---@return ({diff_id: string, size: number, entries: integer, implicit?: string[]}|{err: string, kind: string})[]
function core.archive_apply_many(items, opts) end

--- The implicit-parent fix-up of an isolated overlay apply (record_implicit):
--- each path takes the metadata of the directory the lowers show there.
---@param dir string
---@param paths string[]
---@param lowers string[] nearest first
---@return true|nil ok, string? err, string? kind
function core.archive_fix_parents(dir, paths, lowers) end

--- Writes the layer that turns lower_dir (nil: empty) into upper_dir.
---@param lower_dir? string
---@param upper_dir string
---@param out_path string
---@param opts? {compression?: string, upper_is_overlay?: boolean}
---@return {diff_id: string, digest: string, size: number, uncompressed_size: number, entries: integer}|nil result, string? err, string? kind
function core.archive_diff(lower_dir, upper_dir, out_path, opts) end

--- Downloads layers into content writers while applying them into
--- snapshot directories (see src/lua/l_fetch.c).
---@param remote crater.remote
---@param repo string
---@param items {digest: string, size: number, writer: crater.content_writer, apply?: table}[]
---@param opts? {parallel?: integer, on_progress?: fun(i: integer, done: number, total: number)}
---@return table[]|nil results, string? err, string? kind
function core.fetch_apply(remote, repo, items, opts) end

---@param path string
---@return crater.tar_reader|nil reader, string? err, string? kind
function core.tar_reader(path) end

--- Writes a deterministic pax archive.
---@param path string
---@param members ({name: string, data: string}|{name: string, path: string, size: number}|{name: string, dir: true})[]
---@return number|nil bytes, string? err, string? kind
function core.tar_write(path, members) end

---@class crater.tar_reader
local TarReader = {}

--- The next member; false at the end.
---@return {name: string, type: "file"|"dir"|"symlink", size: number, link?: string}|false|nil member, string? err, string? kind
function TarReader:next() end

--- The current member (refused with resource_exhausted above max bytes).
---@param max number
---@return string|nil data, string? err, string? kind
function TarReader:read(max) end

--- Streams the current member into an empty content writer.
---@param writer crater.content_writer
---@param opts? {expected?: string, keep?: number}
---@return {digest: string, size: number, head: string, data?: string}|nil result, string? err, string? kind
function TarReader:copy_to(writer, opts) end

--- Idempotent; also run by __gc.
function TarReader:close() end

-- ---------------------------------------------------------------------------
-- tasks (src/lua/l_task.c)

--- Starts crater-shim detached; it waits for `go()` before running the
--- runtime (the caller writes the bundle meanwhile).  opts.dir: the task
--- dir, opened here and handed to the shim as a descriptor, so the caller
--- may rename it while the shim starts.
---@param argv string[]
---@param opts? {stderr?: string, dir?: string}
---@return crater.shim_pending|nil pending, string? err, string? kind
function core.shim_spawn(argv, opts) end

---@class crater.shim_pending
local PendingShim = {}

--- Lets the shim run the runtime; its report ("ok PID").  words: what the
--- caller decided while the shim started, on the "go" line
--- ("delete-on-exit"; "mntns": the report comes with a descriptor of the
--- init's mount namespace, returned second, for the caller to hold).
---@param words? string
---@return string|nil reply, integer|string|nil fd_or_err, string? kind
function PendingShim:go(words) end

--- Makes the shim exit without running anything; returns once it has.
---@return true
function PendingShim:abort() end

--- Makes the shim exit without running anything, without waiting: it
--- removes what it made by itself.
---@return true
function PendingShim:release() end

--- Waits for the shim's first process (it forks the shim and exits at
--- once), which `go` and `abort` otherwise reap: for a shim left waiting
--- (a spare), so that no zombie stays meanwhile.
---@return true
function PendingShim:reap() end

--- Whether the shim still waits for `go` (its end of the socket neither
--- closed nor written to): a spare kept from one command to the next.
---@return boolean
function PendingShim:alive() end

--- One request/reply on <taskdir>/shim.sock (timeout -1: forever).
---@param taskdir string
---@param line string
---@param timeout_ms? integer
---@return string|nil reply, string? err, string? kind
function core.shim_request(taskdir, line, timeout_ms) end

--- Sends one request to <taskdir>/shim.sock without waiting for the reply;
--- core.shim_recv reads it later (and closes the descriptor).
---@param taskdir string
---@param line string
---@return integer|nil fd, string? err, string? kind
function core.shim_send(taskdir, line) end

--- Reads the one-line reply of a core.shim_send request and closes fd.
---@param fd integer
---@param timeout_ms? integer default 30000 (-1: forever)
---@return string|nil reply, string? err, string? kind
function core.shim_recv(fd, timeout_ms) end

---@param path string
---@param mode? integer default 0600
---@return true|nil ok, string? err, string? kind
function core.mkfifo(path, mode) end

---@param pid integer
---@param sig integer
---@return true|nil ok, string? err, string? kind
function core.kill(pid, sig) end

--- pid exists and is not a zombie.
---@param pid integer
---@return boolean
function core.pid_alive(pid) end

---@param fd? integer default 0
---@return integer? cols, integer? rows
function core.tty_size(fd) end

---@param fd? integer default 0
---@return boolean
function core.isatty(fd) end

--- Opens the task's fifos now, so no output is lost before it starts.
---@param fifos {stdin?: string, stdout?: string, stderr?: string}
---@return crater.task_io|nil io, string? err, string? kind
function core.io_open(fifos) end

--- Closes a descriptor a binding handed out as a number (the mount
--- namespace `PendingShim:go` returns with "mntns").
---@param fd integer
---@return true|nil ok, string? err, string? kind
function core.close_fd(fd) end

---@class crater.task_io
local TaskIO = {}

--- Copies stdin/stdout/stderr until the outputs reach EOF, forwarding
--- signals and window size.
---@param opts {taskdir?: string, exec?: string, tty?: boolean, stdin?: boolean, signals?: boolean}
---@return true|nil ok, string? err, string? kind
function TaskIO:run(opts) end

--- Idempotent; also run by __gc.
function TaskIO:close() end

--- Binds and listens on the daemon socket at path (mode 0600); a socket
--- file nobody answers on is replaced, one a daemon serves is refused
--- ("already_exists").  src/daemon/server.h.
---@param path string
---@return integer|nil fd, string? err, string? kind
function core.daemon_listen(path) end

--- The daemon's loop: keeps `workers` warm workers forked, replaces each one
--- that takes a command.  Returns "worker" in each worker, "janitor" in the
--- child it forks to clean up what workers left (once the daemon is idle;
--- it exits when done), "stopped" in the daemon after SIGTERM or SIGINT
--- (SIGHUP replaces the idle workers).
---@param fd integer
---@param path string
---@param workers? integer
---@return "worker"|"janitor"|"stopped"|nil role, string? err, string? kind
function core.daemon_serve(fd, path, workers) end

--- In a worker: tells the daemon its command left work for the janitor
--- (removed snapshots' data: core.snapshot_deferred).
function core.daemon_note_cleanup() end

--- In a worker: its store connection leaves the metadata WAL to the
--- janitor's Store:checkpoint (its commits never checkpoint, its close
--- only PASSIVE past 1000 frames): a checkpoint blocks every writer.
---@param on boolean
function core.db_defer_checkpoints(on) end

--- In a worker: waits for a command from the `crater` front end and
--- becomes its process (stdio, working directory, environment, umask).
--- Returns its arguments (without argv[0]), or nil when the client must run
--- it itself (another build, not root) or the request is broken.
---@param fd integer
---@return string[]|nil argv, string? err, string? kind
function core.daemon_accept(fd) end

--- In a worker: sends the command's exit code to its client now (and gives
--- up the client's stdio), so that what the worker still does is off the
--- client's path; main.c otherwise sends it when the command returns.
---@param code integer
function core.daemon_finish(code) end

--- In a worker after `daemon_finish`: puts back its own environment,
--- working directory, umask and signal state and counts itself idle for
--- the next command.  False when it should exit instead: enough workers
--- are idle, the daemon is gone or got SIGHUP since, or the command left
--- a child running, a controlling terminal or descriptors open.
---@return boolean
function core.daemon_rejoin() end

return core
