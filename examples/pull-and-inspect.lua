-- examples/pull-and-inspect.lua: pull an image and print what it is made of.
--
--   luajit examples/pull-and-inspect.lua [REF] [ROOT]
--   REF defaults to busybox; ROOT to $CRATER_ROOT or /var/lib/crater.
--   CRATER_PLAIN_HTTP=1 allows plain HTTP for a local registry.
local crater = require "crater"
local util = require "crater.util"
local progress = require "crater.progress"

local ref = arg[1] or "busybox"
local client = assert(crater.open { root = arg[2] })

local img, err = client:pull(ref, {
  unpack = false,                                    -- content only
  plain_http = os.getenv("CRATER_PLAIN_HTTP") == "1",
  progress = progress.new { mode = "lines", out = io.stderr },
})
if not img then
  io.stderr:write("pull failed: ", err, "\n")
  os.exit(1)
end

local info = assert(client:images():inspect(img.name))
print(string.format("%s  %s  (%s in the content store)", info.name, info.target.digest,
  util.human_size(info.content_size)))
for _, m in ipairs(info.manifests) do
  print(string.format("  %s  manifest %s", m.platform or "?", util.short_digest(m.digest)))
  local cfg = m.config and m.config.image
  if cfg and cfg.config then
    print("    cmd: " .. table.concat(cfg.config.Cmd or {}, " "))
  end
  for i, l in ipairs(m.layers or {}) do
    print(string.format("    layer %d  %s  %s", i, util.short_digest(l.digest), util.human_size(l.size)))
  end
end
client:close()
