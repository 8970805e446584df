#!/usr/bin/env luajit
-- hello-container.lua: the smallest complete use of the crater Lua API
-- (the README shows it): get an image, create a container from it, run a
-- task with the container's output on ours, print its exit status, clean up.
--
--   luajit examples/hello-container.lua LAYOUT_DIR_OR_REF [ROOT]
--
-- LAYOUT_DIR_OR_REF is an OCI image layout directory (imported) or an image
-- reference (pulled; CRATER_PLAIN_HTTP=1 for a local plain-HTTP registry).
local crater = require "crater"
local oci = require "crater.oci"
local containers = require "crater.containers"

local source, root = arg[1], arg[2] or "/tmp/crater-hello"
if not source then
  io.stderr:write("usage: hello-container.lua LAYOUT_DIR_OR_REF [ROOT]\n")
  os.exit(2)
end

local c = assert(crater.open { root = root })
local image
if io.open(source .. "/index.json") then
  local res = assert(require("crater.transfer").import(c, source, { name = "hello/busybox:latest" }))
  image = (res.images or res)[1].name
else
  image = assert(c:pull(source, { plain_http = os.getenv("CRATER_PLAIN_HTTP") == "1" })).name
end

local id = "hello-" .. crater.core.getpid()
local ctr = assert(c:containers():create(id, {
  image = image, snapshot = containers.with_new_snapshot(id),
  spec = { oci.with_process_args("echo", "hello from Lua") },
}))
local task = assert(ctr:new_task { stdio = "inherit" })
assert(task:start())
print("exit status", (assert(task:wait())))
task:delete()
ctr:delete()
c:close()
