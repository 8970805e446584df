-- default-limits: every new container gets a memory and pids limit unless
-- its spec already sets one (an amend hook: it edits the spec in place, and
-- later policies see the change).
--
--   policies = { files = { ".../default-limits.lua" },
--                config = { ["default-limits"] = { memory = 268435456, pids = 512 } } }
return {
  name = "default-limits",
  api = 1,
  priority = 100,
  fail = "open",
  description = "Give containers default memory and pids limits",
  schema = {
    fields = {
      memory = { type = "number", default = 512 * 1024 * 1024, description = "memory limit in bytes" },
      pids = { type = "number", default = 1024, description = "maximum number of processes" },
    },
  },
  hooks = {
    ["container.pre_create"] = function(ev, conf)
      local spec = ev.spec
      if type(spec) ~= "table" then return true end
      spec.linux = spec.linux or {}
      spec.linux.resources = spec.linux.resources or {}
      local r = spec.linux.resources
      r.memory = r.memory or {}
      if r.memory.limit == nil then r.memory.limit = conf.memory end
      r.pids = r.pids or {}
      if r.pids.limit == nil then r.pids.limit = conf.pids end
      return true
    end,
  },
}
