-- allowed-registries: images may come only from the listed registries
-- (domains, optionally with a repository prefix).  A security policy: it
-- fails closed — if it errors, the pull is denied.
--
--   policies = { files = { ".../allowed-registries.lua" },
--                config = { ["allowed-registries"] = { registries = { "registry.example.com", "docker.io/library" } } } }
return {
  name = "allowed-registries",
  api = 1,
  priority = 1000,
  fail = "closed",
  description = "Pull and run images only from allowed registries",
  schema = {
    fields = {
      registries = { type = "array", required = true,
        description = "allowed domains or domain/repository prefixes" },
    },
  },
  hooks = {
    ["image.pre_pull"] = function(ev, conf)
      local full = ev.domain .. "/" .. ev.repository
      for _, allowed in ipairs(conf.registries) do
        if ev.domain == allowed or full == allowed or full:sub(1, #allowed + 1) == allowed .. "/" then
          return true
        end
      end
      return false, ev.domain .. " is not an allowed registry"
    end,
  },
}
