--- crater.content: the namespaced content store.
---
--- Blobs are immutable and addressed by digest (sha256 or sha512).  Writes
--- go through a writer identified by a ref: resumable (reopening the ref
--- continues at its offset), exclusive (a second writer for a live ref is
--- refused), and verified against expected size and digest before the blob
--- becomes visible.  A blob is visible in a namespace once ingested or
--- referenced there; the bytes are shared across namespaces.
local M = {}
local Content = {}
Content.__index = Content

function M.new(client)
  return setmetatable({ client = client, b = client.backend, ns = client.ns }, Content)
end

--- Info of a blob: {digest=, size=, created_at=, updated_at=, labels=}.
function Content:info(digest) return self.b:content_info(self.ns, digest) end

--- Lists blobs, optionally filtered: filters are strings such as
--- `labels."k"==v` or `labels."k"` (see docs/lua-api.md).
function Content:list(filters) return self.b:content_list(self.ns, filters) end

--- Reads a blob (whole, or `length` bytes from `offset`).
---@param opts? {offset?: integer, length?: integer}
function Content:read(digest, opts)
  opts = opts or {}
  return self.b:content_read(self.ns, digest, opts.offset or 0, opts.length or -1)
end

--- Opens a writer for ref.  opts: {expected = digest, size = n}.
--- The writer has write(str), offset(), digest(), commit(size, digest,
--- labels) -> digest, "committed"|"exists", close() (keeps the ingest for
--- resume) and abort().
function Content:writer(ref, opts)
  if type(ref) ~= "string" or ref == "" then error("content:writer: ref must be a non-empty string", 2) end
  return self.b:content_writer(self.ns, ref, opts or {})
end

--- Ingests a file (or stdin when path is nil) under ref, resuming an earlier
--- interrupted ingest of the same ref.  opts: {expected=, size=, labels=}.
---@return string|nil digest, string status_or_err, string? kind
function Content:ingest(ref, path, opts)
  return self.b:content_ingest_file(self.ns, ref, path, opts or {})
end

--- Commits whatever was written under ref (containerd's Commit by ref).
function Content:commit(ref, size, digest, labels)
  local w, err, kind = self.b:content_writer(self.ns, ref, { expected = digest, size = size })
  if not w then return nil, err, kind end
  local d, st, k = w:commit(size, digest, labels)
  w:close()
  return d, st, k
end

--- Deletes the blob from this namespace (the file goes when no namespace
--- references it).
function Content:delete(digest) return self.b:content_delete(self.ns, digest) end

--- Gets labels (no second argument) or sets them (merge; "" removes a key;
--- replace=true replaces the whole set).  Returns the resulting labels.
function Content:labels(digest, labels, replace)
  if labels == nil then
    local info, err, kind = self.b:content_info(self.ns, digest)
    if not info then return nil, err, kind end
    return info.labels
  end
  return self.b:content_set_labels(self.ns, digest, labels, replace and true or false)
end

--- In-progress ingests: array of {ref=, offset=, total=, expected=, ...}.
function Content:status() return self.b:content_status(self.ns) end

--- Aborts an ingest (removes its data).
function Content:abort(ref) return self.b:content_abort(self.ns, ref) end

--- Path of a blob's file, for fast readers (never write to it).
function Content:path(digest) return self.b:content_path(self.ns, digest) end

return M
