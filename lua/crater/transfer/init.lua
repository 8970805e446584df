--- crater.transfer: moving images in and out of files.
---
---  * export(client, names, out, opts) — OCI image layout tarball
---    (`oci-layout`, `index.json` with `org.opencontainers.image.ref.name`
---    annotations, `blobs/<alg>/<hex>`), readable by `skopeo inspect
---    oci-archive:FILE:NAME`; deterministic pax written by libarchive.
---  * import(client, path, opts) — OCI layout tarballs or directories and
---    docker-archive tarballs (`docker save`: manifest.json + per-layer
---    tars + config), converted to Docker schema 2 manifests; every blob is
---    verified (against its member name's digest while it streams, and by
---    the content store at commit; docker layers also against the config's
---    rootfs.diff_ids).
---
--- Tarballs are read and written in C with libarchive (core.tar_reader,
--- core.tar_write; src/transfer): nothing is extracted to disk, member data
--- goes straight into content-store ingests, and members that are
--- absolute, contain `..`, are links or anything but regular files and
--- directories are refused with an error naming them.
local M = {}

function M.export(client, names, out, opts)
  return require("crater.transfer.export").export(client, names, out, opts)
end

function M.import(client, path, opts)
  return require("crater.transfer.import").import(client, path, opts)
end

return M
