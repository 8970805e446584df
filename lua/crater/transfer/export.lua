--- crater.transfer.export: images → OCI image layout tarball.
---
--- The tar is written by the C writer (core.tar_write, libarchive pax):
--- `oci-layout`, `index.json`, `blobs/`, `blobs/<alg>/`, then every blob
--- sorted by digest, streamed from the content store's blob files; every
--- entry has mtime 0, uid/gid 0 and fixed modes, so exporting the same
--- images twice gives identical bytes.  The file appears by rename once
--- complete.
local images = require "crater.images"
local json = require "crater.json"
local core = require "crater.core"

local M = {}

--- Exports images to an OCI layout tar at out.  Each image's index.json
--- entry is annotated with org.opencontainers.image.ref.name (the full
--- normalised name, e.g. docker.io/library/busybox:latest, or opts.ref_name
--- = "tag" for the bare tag) and io.containerd.image.name.  Blobs missing
--- locally (other platforms of an index, foreign layers) are left out
--- unless opts.strict.
---@param client crater.Client
---@param names string[]
---@param out string  output file ("-" is not supported)
---@param opts? {ref_name?: "name"|"tag", strict?: boolean}
---@return table|nil {images=, blobs=, size=, path=}, string?, string?
function M.export(client, names, out, opts)
  opts = opts or {}
  if type(names) == "string" then names = { names } end
  if type(names) ~= "table" or #names == 0 then error("export: expected image names", 2) end
  if type(out) ~= "string" or out == "" then error("export: expected an output path", 2) end
  local imgs = images.new(client)
  local b, ns = client.backend, client.ns
  local index = { schemaVersion = 2, mediaType = images.media_types.oci_index, manifests = json.array {} }
  local blobs, total = {}, 0
  for _, name in ipairs(names) do
    local img, err, kind = imgs:get(name)
    if not img then return nil, "export " .. name .. ": " .. tostring(err), kind end
    local pok, ok
    pok, ok, err, kind = pcall(imgs.walk, imgs, img.target, function(d, _, _, missing)
      if missing or not b:content_info(ns, d.digest) then
        if opts.strict then error({ export_missing = d.digest }) end
        return
      end
      if blobs[d.digest] then return end
      local path, perr = b:content_path(ns, d.digest)
      if not path then error({ export_missing = d.digest .. ": " .. tostring(perr) }) end
      blobs[d.digest] = path
      total = total + (d.size or 0)
    end)
    if not pok then
      local e = ok
      ok, err, kind = nil, type(e) == "table" and e.export_missing and
        ("blob " .. e.export_missing .. " is not in the content store") or tostring(e), "not_found"
    end
    if not ok then return nil, "export " .. name .. ": " .. tostring(err), kind end
    local tag = img.name:match(":([^:/@]+)$") or img.name:match("@(.+)$")
    local ann = { ["io.containerd.image.name"] = img.name,
      ["org.opencontainers.image.ref.name"] = opts.ref_name == "tag" and tag or img.name }
    index.manifests[#index.manifests + 1] = { mediaType = img.target.media_type, digest = img.target.digest,
      size = img.target.size, annotations = ann }
  end
  local digests, algs = {}, {}
  for d in pairs(blobs) do digests[#digests + 1] = d end
  table.sort(digests)
  local entries = {
    { name = "oci-layout", data = '{"imageLayoutVersion":"1.0.0"}' },
    { name = "index.json", data = json.encode(index) },
    { name = "blobs", dir = true },
  }
  for _, d in ipairs(digests) do
    local alg, hex = d:match("^(%w+):(%x+)$")
    if not algs[alg] then
      algs[alg] = true
      entries[#entries + 1] = { name = "blobs/" .. alg, dir = true }
    end
    entries[#entries + 1] = { name = "blobs/" .. alg .. "/" .. hex, path = blobs[d] }
  end
  local tmp_out = out .. ".tmp-" .. core.getpid()
  local size, err, kind = core.tar_write(tmp_out, entries)
  if not size then os.remove(tmp_out); return nil, "export: " .. tostring(err), kind end
  local rok, rerr = os.rename(tmp_out, out)
  if not rok then os.remove(tmp_out); return nil, "export: " .. tostring(rerr), "internal" end
  return { images = #names, blobs = #digests, size = total, path = out, bytes = size }
end

return M
