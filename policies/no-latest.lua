-- no-latest: refuse pulls of an image by the moving `latest` tag (or no
-- tag at all), so every host runs what it was told to run.  Pulls by
-- digest are always allowed.  Repositories listed in `allow` are exempt.
--
-- Enable it in /etc/crater/config.lua:
--   policies = { files = { "/usr/local/share/crater/policies/no-latest.lua" },
--                config = { ["no-latest"] = { allow = { "docker.io/library/busybox" } } } }
return {
  name = "no-latest",
  api = 1,
  priority = 900,
  description = "Refuse pulls by the latest tag",
  schema = {
    fields = {
      allow = { type = "array", default = {}, description = "repositories (domain/path) exempt from the rule" },
    },
  },
  hooks = {
    ["image.pre_pull"] = function(ev, conf)
      if ev.digest then return true end
      for _, repo in ipairs(conf.allow) do
        if ev.domain .. "/" .. ev.repository == repo then return true end
      end
      if ev.tag == nil or ev.tag == "latest" then
        return false, ev.ref .. ": pin a version tag or a digest instead of latest"
      end
    end,
  },
}
