-- examples/hello-container.lua (the README's Lua example) runs as written.
local proc = require "support.proc"

describe("examples/hello-container.lua", function()
  it("imports an image, runs a container with inherited stdio and cleans up", function()
    local dir = proc.tmpdir("crater-hello")
    local src = os.getenv("CRATER_SRC")
    proc.check(proc.quote(src .. "/scripts/make-busybox-layout") .. " " .. proc.quote(dir .. "/layout"))
    local r = proc.run("luajit " .. proc.quote(src .. "/examples/hello-container.lua") .. " " ..
      proc.quote(dir .. "/layout") .. " " .. proc.quote(dir .. "/root"))
    assert.equal(0, r.code, r.stderr)
    assert.matches("hello from Lua\nexit status\t0\n", r.stdout, 1, true)
    local crater = os.getenv("CRATER_BUILD") .. "/bin/crater"
    assert.equal("", proc.run(proc.quote(crater) .. " --root " .. proc.quote(dir .. "/root") .. " container ls -q").stdout)
    assert.equal("", proc.run("grep " .. proc.quote(dir) .. " /proc/mounts").stdout)
    proc.rmdir(dir)
  end)
end)
