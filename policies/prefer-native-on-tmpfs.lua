-- prefer-native-on-tmpfs: a selection hook.  overlayfs cannot use tmpfs
-- as an upper layer on older kernels and some users want plain copies
-- there; pick "native" when the root is on tmpfs, otherwise leave the
-- choice to the next policy or the built-in rules (return nil).
return {
  name = "prefer-native-on-tmpfs",
  api = 1,
  priority = 0,
  description = "Use the native snapshotter when the root is on tmpfs",
  hooks = {
    ["snapshotter.select"] = function(ev)
      if ev.fs_type == "tmpfs" then return "native" end
    end,
  },
}
