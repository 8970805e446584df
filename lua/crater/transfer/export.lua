--- crater.transfer.export: images → OCI image layout tarball.
local images = require "crater.images"
local json = require "crater.json"
local T = require "crater.transfer"

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
---@return table|nil {images=, blobs=, size=}, string?, string?
function M.export(client, names, out, opts)
  opts = opts or {}
  if type(names) == "string" then names = { names } end
  if type(names) ~= "table" or #names == 0 then error("export: expected image names", 2) end
  if type(out) ~= "string" or out == "" then error("export: expected an output path", 2) end
  local imgs = images.new(client)
  local b, ns = client.backend, client.ns
  local dir, err, kind = T.tempdir()
  if not dir then return nil, err, kind end
  local ok
  ok, err = T.sh("mkdir -p " .. T.quote(dir .. "/blobs/sha256") .. " " .. T.quote(dir .. "/blobs/sha512"))
  local index = { schemaVersion = 2, mediaType = images.media_types.oci_index, manifests = json.array {} }
  local copied, total = {}, 0
  local function fail(msg, k) T.rmrf(dir); return nil, msg, k end
  for _, name in ipairs(names) do
    local img
    img, err, kind = imgs:get(name)
    if not img then return fail("export " .. name .. ": " .. tostring(err), kind) end
    local pok
    pok, ok, err, kind = pcall(imgs.walk, imgs, img.target, function(d, _, _, missing)
      if missing or not b:content_info(ns, d.digest) then
        if opts.strict then error({ export_missing = d.digest }) end
        return
      end
      if copied[d.digest] then return end
      local path = b:content_path(ns, d.digest)
      local alg, hex = d.digest:match("^(%w+):(%x+)$")
      local dst = dir .. "/blobs/" .. alg .. "/" .. hex
      local cok, cerr = T.sh("cp --reflink=auto " .. T.quote(path) .. " " .. T.quote(dst))
      if not cok then error({ export_copy = cerr }) end
      copied[d.digest] = true
      total = total + (d.size or 0)
    end)
    if not pok then
      local e = ok
      ok, err, kind = nil, type(e) == "table" and (e.export_missing and ("blob " .. e.export_missing .. " is not in the content store")
        or tostring(e.export_copy)) or tostring(e), "not_found"
    end
    if not ok then return fail("export " .. name .. ": " .. tostring(err), kind) end
    local tag = img.name:match(":([^:/@]+)$") or img.name:match("@(.+)$")
    local ann = { ["io.containerd.image.name"] = img.name,
      ["org.opencontainers.image.ref.name"] = opts.ref_name == "tag" and tag or img.name }
    index.manifests[#index.manifests + 1] = { mediaType = img.target.media_type, digest = img.target.digest,
      size = img.target.size, annotations = ann }
  end
  local f = assert(io.open(dir .. "/index.json", "wb"))
  f:write(json.encode(index)); f:close()
  f = assert(io.open(dir .. "/oci-layout", "wb"))
  f:write('{"imageLayoutVersion":"1.0.0"}'); f:close()
  local tmp_out = out .. ".tmp-" .. require("crater.core").getpid()
  ok, err = T.sh("tar --format=pax --owner=0 --group=0 --numeric-owner -cf " .. T.quote(tmp_out) ..
    " -C " .. T.quote(dir) .. " oci-layout index.json blobs")
  if not ok then os.remove(tmp_out); return fail("export: tar: " .. tostring(err), "internal") end
  local rok, rerr = os.rename(tmp_out, out)
  if not rok then os.remove(tmp_out); return fail("export: " .. tostring(rerr), "internal") end
  T.rmrf(dir)
  local n = 0
  for _ in pairs(copied) do n = n + 1 end
  return { images = #names, blobs = n, size = total, path = out }
end

return M
