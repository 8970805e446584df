--- crater push NAME [REF]: shortcut for `crater image push`.
local image = require("crater.cli.image").shared
return {
  name = "push", summary = "Push an image to a registry (same as 'image push')", usage = "NAME [REF]",
  min_args = 1, max_args = 2, flags = image.push_flags, run = image.run_push,
}
