#!/usr/bin/env luajit
--- examples/run-container.lua: run a container from Lua, end to end.
---
---   luajit examples/run-container.lua IMAGE_SOURCE [ROOT]
---
--- IMAGE_SOURCE is either an OCI image layout (directory or tar) to import,
--- or a reference to pull ("registry:5000/library/busybox:latest"; set
--- CRATER_PLAIN_HTTP=1 for a plain-http registry).  ROOT defaults to a
--- fresh temp dir, removed at the end.  Needs root (real containers).
---
--- What it shows, in order:
---   1. open an embedded client on a root;
---   2. get an image into it (import or pull) — the first container
---      unpacks it into the snapshotter;
---   3. create a container with OCI spec options on top of the image
---      config (env, cwd, memory limit, a tmpfs);
---   4. run a task with its output in a log file, wait for the exit code;
---   5. read the output; 6. clean up task, container (and its snapshot).
local crater = require "crater"
local oci = require "crater.oci"
local json = require "crater.json"

local source, root = arg[1], arg[2]
if not source then
  io.stderr:write("usage: run-container.lua IMAGE_SOURCE [ROOT]\n")
  os.exit(2)
end
local own_root = root == nil
if own_root then
  local p = io.popen("mktemp -d /tmp/run-container.XXXXXX")
  root = p:read("*l") .. "/root"
  p:close()
end

-- 1. An embedded client: the C core runs in this process, state lives in
-- root (metadata.db, content, snapshots; task dirs under root/run).
local client = assert(crater.open { root = root, namespace = "examples" })

-- Whatever happens below, the container and its task go away at the end.
local cs = client:containers()
local ID = "example-" .. crater.core.getpid()
local function cleanup()
  cs:delete(ID, { force = true }) -- kills and deletes the task, removes the snapshot
  client:close()
  if own_root then os.execute("rm -rf '" .. root:gsub("/root$", "") .. "'") end
end

local ok, err = pcall(function()
  -- 2. Get the image.  An OCI layout is imported (no network); anything
  -- else is pulled.  Either way we end up with an image record name.
  local image
  local f = io.open(source .. "/index.json") or (source:match("%.tar$") and io.open(source))
  if f then
    f:close()
    local res = assert(require("crater.transfer").import(client, source, {}))
    for _, img in ipairs(res.images or res) do
      if img.name:match("/busybox:latest$") then image = img.name end
    end
    image = image or (res.images or res)[1].name
  else
    local res = assert(client:pull(source, { plain_http = os.getenv("CRATER_PLAIN_HTTP") == "1" }))
    image = res.name
  end
  print("image: " .. image)

  -- 3. The container: image config first (Entrypoint/Cmd/Env/WorkingDir/
  -- User), then our options.  Options are plain functions (spec, ctx), so
  -- the last one here is a hand-written option.
  local ctr = assert(cs:create(ID, {
    image = image,
    snapshot = require("crater.containers").with_new_snapshot(ID), -- RW layer on the image
    spec = {
      oci.with_process_args("sh", "-c", "echo \"hello from $(hostname) in $PWD, GREETING=$GREETING\"; " ..
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; " ..
        "echo scratch > /scratch/f && cat /scratch/f; exit 3"),
      oci.with_env { GREETING = "hi" },
      oci.with_cwd("/tmp"),
      oci.with_memory_limit("64m"),
      oci.with_mounts { { type = "tmpfs", destination = "/scratch" } },
      function(spec) spec.hostname = "example" end,
    },
    labels = { ["example.com/owner"] = "run-container.lua" },
  }))
  print("container: " .. ctr.id .. " (runtime " .. ctr:info().runtime .. ", snapshotter " ..
    ctr:info().snapshotter .. ")")

  -- 4. A task with its stdout/stderr in a json-lines log file, so this
  -- script does not have to pump FIFOs.  start() runs the process; wait()
  -- blocks on the shim's control socket until it exits.
  local log = root .. "/" .. ID .. ".log"
  local task = assert(ctr:new_task { stdio = "log", log = log })
  assert(task:start())
  print("task pid: " .. task:pid())
  local code = assert(task:wait())

  -- 5. The output: one JSON object per line {time, stream, log}.
  for line in io.lines(log) do
    local rec = json.decode(line)
    io.write("[", rec.stream, "] ", rec.log)
  end
  print("exit code: " .. code)
  assert(task:delete())
end)

-- 6. Clean up (also after a failure above).
cleanup()
if not ok then
  io.stderr:write("run-container.lua: ", tostring(err), "\n")
  os.exit(1)
end
