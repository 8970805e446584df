-- The foundation through the real `crater` binary: namespaces, content
-- store, exit codes, --help everywhere, JSON output, SIGKILL mid-ingest and
-- resume, two processes on one root.
local cli = require "support.cli"
local proc = require "support.proc"
local json = require "crater.json"

describe("crater CLI (foundation)", function()
  local env
  before_each(function() env = cli.env() end)
  after_each(function() env:cleanup() end)

  it("prints the version and help, with exit codes 0/2", function()
    local r = env:crater { "--version" }
    assert.equal(0, r.code)
    assert.matches("^crater %d+%.%d+%.%d+", r.stdout)
    -- LuaJIT's trace compiler is off for a one-shot command unless asked for
    r = env:crater { "--format", "json", "version" }
    assert.equal(0, r.code, r.stderr)
    assert.equal("off", json.decode(r.stdout).jit)
    r = proc.run("CRATER_JIT=on " .. env:cmdline { "--format", "json", "version" })
    assert.equal("on", json.decode(r.stdout).jit)
    r = env:crater { "--help" }
    assert.equal(0, r.code)
    assert.matches("namespace", r.stdout)
    r = env:crater { "no-such-command" }
    assert.equal(2, r.code)
    assert.matches("unknown command", r.stderr)
    r = env:crater { "content", "ls", "--no-such-flag" }
    assert.equal(2, r.code)
    assert.matches("unknown flag", r.stderr)
    -- a bad container id is a usage error naming the id, not an internal error
    for _, cmd in ipairs { { "run", "--rm", "--rootfs", "/nonexistent", "bad id!", "true" },
      { "container", "create", "some/image", "a/b", "true" } } do
      r = env:crater(cmd)
      assert.equal(2, r.code, r.stderr)
      assert.matches("invalid container id", r.stderr)
      assert.not_matches("internal error", r.stderr)
    end
  end)

  it("has --help for every command and subcommand", function()
    local top = env:crater { "--help" }.stdout
    local groups = {}
    for name in top:gmatch("\n  ([%w-]+) ") do groups[#groups + 1] = name end
    assert.is_true(#groups >= 3)
    for _, g in ipairs(groups) do
      local r = env:crater { g, "--help" }
      assert.equal(0, r.code, g .. ": " .. r.stderr)
      local subs = r.stdout:match("Subcommands:\n(.-)\n\n")
      for line in (subs or ""):gmatch("[^\n]+") do
        local sub = line:match("^  ([%w-]+)")
        local rs = env:crater { g, sub, "--help" }
        assert.equal(0, rs.code, g .. " " .. sub .. ": " .. rs.stderr)
        assert.matches("Usage: crater " .. g, rs.stdout, 1, true)
      end
    end
  end)

  it("creates, lists, labels and removes namespaces", function()
    assert.equal(0, env:crater { "namespace", "create", "team-a", "owner=alice" }.code)
    local r = env:crater { "namespace", "ls", "--format", "json" }
    assert.equal(0, r.code)
    local list = assert(json.decode(r.stdout))
    local found
    for _, ns in ipairs(list) do if ns.name == "team-a" then found = ns end end
    assert.is_table(found)
    assert.equal("alice", found.labels.owner)
    assert.equal(0, env:crater { "namespace", "label", "team-a", "owner=bob" }.code)
    r = env:crater { "namespace", "ls" }
    assert.matches("team%-a%s+owner=bob", r.stdout)
    r = env:crater { "namespace", "create", "Bad_Name" }
    assert.equal(1, r.code)
    assert.matches("Bad_Name", r.stderr)
    assert.equal(0, env:crater { "namespace", "rm", "team-a" }.code)
    r = env:crater { "namespace", "ls", "-q" }
    assert.not_matches("team%-a", r.stdout)
  end)

  it("refuses to remove a namespace that holds content, saying what", function()
    local f = env:file("blob", "data in ns x\n")
    assert.equal(0, env:crater { "-n", "x", "content", "ingest", f }.code)
    local r = env:crater { "namespace", "rm", "x" }
    assert.equal(1, r.code)
    assert.matches("x", r.stderr)
    assert.matches("content", r.stderr)
  end)

  it("ingests, lists, reads, labels and removes blobs", function()
    local data = string.rep("crater content\n", 1000)
    local f = env:file("blob", data)
    local d = cli.sha256(data)
    local r = env:crater { "content", "ingest", "--expected", d, "--label", "k=v", f }
    assert.equal(0, r.code, r.stderr)
    assert.equal(d, r.stdout:match("^(%S+)"))
    r = env:crater { "content", "ls", "--format", "json" }
    local list = assert(json.decode(r.stdout))
    assert.equal(1, #list)
    assert.equal(d, list[1].digest)
    assert.equal(#data, list[1].size)
    assert.equal("v", list[1].labels.k)
    r = env:crater { "content", "get", d }
    assert.equal(data, r.stdout)
    -- filters
    assert.equal(d, env:crater { "content", "ls", "-q", 'labels."k"==v' }.stdout:match("%S+"))
    assert.equal("", env:crater { "content", "ls", "-q", 'labels."k"==w' }.stdout)
    -- labels
    assert.equal(0, env:crater { "content", "label", d, "k=", "x=1" }.code)
    local labels = assert(json.decode(env:crater { "content", "label", d, "--format", "json" }.stdout))
    assert.is_nil(labels.k)
    assert.equal("1", labels.x)
    -- ingesting the same data again is not an error
    r = env:crater { "content", "ingest", f }
    assert.equal(0, r.code)
    assert.matches("already exists", r.stdout)
    -- namespaces see only their own blobs
    assert.equal("", env:crater { "-n", "other", "content", "ls", "-q" }.stdout)
    assert.equal(1, env:crater { "-n", "other", "content", "get", d }.code)
    -- remove
    assert.equal(0, env:crater { "content", "rm", d }.code)
    assert.equal("", env:crater { "content", "ls", "-q" }.stdout)
    r = env:crater { "content", "get", d }
    assert.equal(1, r.code)
    assert.matches("not found", r.stderr)
  end)

  it("rejects a digest mismatch with expected vs actual and leaves nothing visible", function()
    local f = env:file("blob", "some bytes\n")
    local wrong = cli.sha256("other bytes\n")
    local r = env:crater { "content", "ingest", "--expected", wrong, f }
    assert.equal(1, r.code)
    assert.matches(wrong, r.stderr, 1, true)
    assert.matches(cli.sha256("some bytes\n"), r.stderr, 1, true)
    assert.equal("", env:crater { "content", "ls", "-q" }.stdout)
    local blobs = proc.run("find " .. proc.quote(env.root .. "/content/blobs") .. " -type f").stdout
    assert.equal("", blobs)
    -- malformed digests are invalid arguments, never paths
    r = env:crater { "content", "get", "sha256:../../etc/passwd" }
    assert.equal(1, r.code)
    assert.matches("invalid", r.stderr)
  end)

  it("survives SIGKILL mid-ingest: nothing visible, status shows the offset, the ingest resumes", function()
    local src = env.dir .. "/big"
    proc.check("head -c 8388608 /dev/urandom > " .. proc.quote(src))
    local d = "sha256:" .. proc.check("sha256sum " .. proc.quote(src)):match("^(%x+)")
    -- feed 4 MiB then stall, so the kill lands mid-write
    local fifo_cmd = "(head -c 4194304 " .. proc.quote(src) .. "; sleep 60) | " ..
      env:cmdline { "content", "ingest", "--ref", "big-1", "-" }
    local p = proc.spawn("sh -c " .. proc.quote(fifo_cmd), { dir = env.dir })
    local status
    for _ = 1, 100 do
      proc.sleep(0.1)
      local r = env:crater { "content", "status", "--format", "json" }
      status = r.code == 0 and json.decode(r.stdout) or nil
      if status and status[1] and status[1].offset >= 4194304 then break end
    end
    assert.is_table(status)
    assert.equal("big-1", status[1].ref)
    assert.equal(4194304, status[1].offset)
    -- a second writer for the live ref is refused
    local r = env:crater { "content", "ingest", "--ref", "big-1", src }
    assert.equal(1, r.code)
    assert.matches("lock", r.stderr)
    proc.kill(p.pid, { signal = "KILL" })
    -- nothing visible
    assert.equal("", env:crater { "content", "ls", "-q" }.stdout)
    r = env:crater { "check", "--format", "json" }
    assert.equal(0, r.code, r.stdout .. r.stderr)
    -- resume from the whole file: continues at the recorded offset
    r = env:crater { "content", "ingest", "--ref", "big-1", "--expected", d, src }
    assert.equal(0, r.code, r.stderr)
    assert.equal(d, env:crater { "content", "ls", "-q" }.stdout:match("%S+"))
    assert.equal("[]", env:crater { "content", "status", "--format", "json" }.stdout:gsub("%s", ""))
    local got = env:crater { "content", "get", d }.stdout
    assert.equal(8388608, #got)
  end)

  it("is safe with two crater processes writing to one root at once", function()
    local cmds = {}
    for w = 1, 2 do
      local lines = {}
      for i = 1, 20 do
        lines[#lines + 1] = string.format("printf 'w%d-%d' | %s >/dev/null || echo FAIL", w, i,
          env:cmdline { "content", "ingest", "--ref", string.format("w%d-%d", w, i), "--label", "w=" .. w, "-" })
      end
      cmds[w] = "(" .. table.concat(lines, "; ") .. ")"
    end
    local r = proc.run(cmds[1] .. " & " .. cmds[2] .. " & wait")
    assert.not_matches("FAIL", r.stdout)
    local list = assert(json.decode(env:crater { "content", "ls", "--format", "json" }.stdout))
    assert.equal(40, #list)
  end)

  it("check finds a corrupted blob and repairs only when asked", function()
    local f = env:file("blob", "precious\n")
    local d = cli.sha256("precious\n")
    assert.equal(0, env:crater { "content", "ingest", f }.code)
    local path = env.root .. "/content/blobs/sha256/" .. d:sub(8)
    proc.check("chmod u+w " .. proc.quote(path) .. " && printf 'tampered\\n' > " .. proc.quote(path))
    local r = env:crater { "check" }
    assert.equal(1, r.code)
    assert.matches("corrupt", r.stdout)
    assert.matches(d, r.stdout, 1, true)
    assert.truthy(io.open(path)) -- not deleted without --repair
    r = env:crater { "check", "--repair" }
    assert.equal(0, r.code, r.stderr)
    assert.is_nil(io.open(path))
    assert.equal(0, env:crater { "check" }.code)
  end)
  it("fetch-local copies and verifies the blobs of an OCI layout", function()
    local layout = env.dir .. "/layout"
    assert.equal(0, proc.run(proc.quote(os.getenv("CRATER_SRC") .. "/scripts/make-busybox-layout") ..
      " " .. proc.quote(layout)).code)
    local want = proc.check("cd " .. proc.quote(layout .. "/blobs") .. " && find . -type f | sort")
    local r = env:crater { "content", "fetch-local", layout }
    assert.equal(0, r.code, r.stderr)
    local n = 0
    for _ in want:gmatch("[^\n]+") do n = n + 1 end
    local list = assert(json.decode(env:crater { "content", "ls", "--format", "json" }.stdout))
    assert.equal(n, #list)
    -- a blob whose bytes do not match its name is refused and not committed
    local victim = proc.check("find " .. proc.quote(layout .. "/blobs/sha256") .. " -type f | head -1"):gsub("%s+$", "")
    local other = cli.env()
    proc.check("chmod u+w " .. proc.quote(victim) .. " && printf 'evil' >> " .. proc.quote(victim))
    r = other:crater { "content", "fetch-local", layout, "sha256:" .. victim:match("(%x+)$") }
    assert.equal(1, r.code)
    assert.matches("mismatch", r.stderr)
    assert.equal("", other:crater { "content", "ls", "-q" }.stdout)
    other:cleanup()
  end)

  it("manages leases", function()
    assert.equal(0, env:crater { "lease", "create", "work-1", "purpose=test", "--expire", "3600" }.code)
    local list = assert(json.decode(env:crater { "lease", "ls", "--format", "json" }.stdout))
    assert.equal("work-1", list[1].id)
    assert.equal("test", list[1].labels.purpose)
    assert.is_number(list[1].expire_at)
    assert.equal(0, env:crater { "lease", "rm", "work-1" }.code)
    assert.equal("", env:crater { "lease", "ls", "-q" }.stdout)
    assert.equal(1, env:crater { "lease", "rm", "work-1" }.code)
  end)
end)
