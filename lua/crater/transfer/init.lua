--- crater.transfer: moving images in and out of files.
---
---  * export(client, names, out, opts) — OCI image layout tarball
---    (`oci-layout`, `index.json` with `org.opencontainers.image.ref.name`
---    annotations, `blobs/<alg>/<hex>`), readable by `skopeo inspect
---    oci-archive:FILE:NAME`.
---  * import(client, path, opts) — OCI layout tarballs or directories and
---    docker-archive tarballs (`docker save`: manifest.json + per-layer
---    tars + config), converted to Docker schema 2 manifests; every blob is
---    verified (the content store checks digest and size at commit; docker
---    layers are also checked against the config's rootfs.diff_ids).
---
--- Tar files are read and written by the system `tar` (first version):
--- an archive is listed first and refused when any member is absolute,
--- has a `..` component, or is not a regular file or directory; only then
--- is it extracted, into a fresh private temp dir, without owners or
--- special permissions.
local M = {}

function M.export(client, names, out, opts)
  return require("crater.transfer.export").export(client, names, out, opts)
end

function M.import(client, path, opts)
  return require("crater.transfer.import").import(client, path, opts)
end

--- Quotes a string for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; returns true or nil, output.
function M.sh(cmd)
  -- LuaJIT's popen close() does not report the exit status: echo it
  local f = io.popen("{ " .. cmd .. "\n} 2>&1; echo \"__crater_rc=$?\"", "r")
  local outp = f:read("*a")
  f:close()
  local body, rc = outp:match("^(.-)__crater_rc=(%d+)%s*$")
  if rc == "0" then return true, body end
  return nil, body or outp
end

--- Makes a fresh private temp dir under base (default TMPDIR or /tmp).
function M.tempdir(base)
  local ok, outp = M.sh("mktemp -d " .. M.quote((base or os.getenv("TMPDIR") or "/tmp") .. "/crater-transfer.XXXXXX"))
  if not ok then return nil, "mktemp: " .. tostring(outp), "internal" end
  local dir = outp:gsub("%s+$", "")
  M.sh("chmod 700 " .. M.quote(dir))
  return dir
end

function M.rmrf(dir)
  if dir and dir:find("crater%-transfer%.") then M.sh("rm -rf " .. M.quote(dir)) end
end

return M
