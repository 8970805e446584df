--- crater pull REF: shortcut for `crater image pull`.
local image = require("crater.cli.image").shared
return {
  name = "pull", summary = "Pull an image from a registry (same as 'image pull')", usage = "REF",
  min_args = 1, max_args = 1, flags = image.pull_flags, run = image.run_pull,
  examples = "  crater pull busybox\n  crater pull --plain-http --no-unpack 127.0.0.1:5000/app:1",
}
