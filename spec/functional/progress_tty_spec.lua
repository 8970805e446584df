-- Functional: the live progress display of `crater pull` on a real
-- terminal.  crater runs inside a detached tmux session (a real pty, 120x30)
-- against the fault-injecting registry, whose stall-blob scenario sends
-- half of every layer and then pauses, so the pull is caught mid-download
-- with `tmux capture-pane -p`.  Checks per-layer lines and the total line
-- (bytes, speed, state) while it runs, and that the table is erased at the
-- end, leaving the summary and the "pulled" line.
local proc = require "support.proc"
local cli = require "support.cli"
local core = require "crater.core"

local registry = require "support.registry"
local fx = require "support.fixtures"

local function skip_reason()
  if cli.missing_tools { "tmux" } then
    return "tmux is not installed: the tty progress display is NOT checked (apt-get install tmux)"
  end
  return nil
end

local STALL = 3 -- seconds each layer pauses half-way

describe("crater pull progress on a terminal (tmux)", function()
  local why = skip_reason()
  if why then
    it("renders and cleans up the live table", function() pending(why) end)
    return
  end

  local fake, env, sock, session
  setup(function() fake = registry.fake { layout = fx.layout(), stall = STALL } end)
  teardown(function() if fake then fake:stop() end end)
  before_each(function()
    env = cli.env()
    sock = "crater-spec-" .. core.getpid()
    session = "pull"
  end)
  after_each(function()
    os.execute("tmux -L " .. sock .. " kill-server >/dev/null 2>&1")
    if env and env.cleanup then env:cleanup() end
  end)

  local function tmux(args) return proc.run("tmux -L " .. sock .. " " .. args) end
  local function screen()
    local r = tmux("capture-pane -p -t " .. session)
    assert(r.code == 0, "capture-pane: " .. tostring(r.stderr))
    return r.stdout
  end
  -- polls the pane until pred(text) holds or `secs` pass; returns the last capture
  local function wait_for(pred, secs)
    local deadline = core.monotonic() + secs
    local text
    repeat
      text = screen()
      if pred(text) then return text, true end
      proc.sleep(0.1)
    until core.monotonic() > deadline
    return text, false
  end

  it("shows per-layer lines and a total line with bytes, speed and state, then erases them", function()
    local ref = fake.host .. "/stall-blob/test/multilayer:latest"
    local cmd = table.concat({ proc.quote(cli.bin), "--root", proc.quote(env.root), "pull", "--plain-http",
      proc.quote(ref) }, " ") .. '; echo "EXIT=$?"; sleep 120'
    local r = tmux("new-session -d -x 120 -y 30 -s " .. session .. " " .. proc.quote(cmd))
    assert.equal(0, r.code, r.stderr)

    -- mid-pull: the stalled layers are downloading, half their bytes in
    local mid, seen = wait_for(function(t)
      return t:find("total %(%d+%)%s+downloading") ~= nil and t:find("layer %x+%s+downloading") ~= nil
    end, STALL + 5)
    assert.is_true(seen, "no live table mid-pull:\n" .. mid)
    local layer_lines, total_line = 0, nil
    for line in mid:gmatch("[^\n]+") do
      if line:match("^layer %x%x%x%x%x%x%x%x%x%x%x%x%s+downloading%s+|[= >]+|%s+[%d%.]+ %a*B/[%d%.]+ %a*B%s+[%d%.]+ %a*B/s") then
        layer_lines = layer_lines + 1
      end
      if line:match("^total %(") then total_line = line end
    end
    assert.is_true(layer_lines >= 1, "no downloading layer line with bytes and speed:\n" .. mid)
    assert.truthy(total_line, mid)
    assert.truthy(total_line:match("^total %(6%)%s+downloading%s+|[= >]+|%s+[%d%.]+ %a*B/[%d%.]+ %a*B%s+[%d%.]+ %a*B/s%s+[%d%.]+s$"),
      "total line: " .. tostring(total_line) .. "\n" .. mid)
    -- the config is not stalled: already done while the layers wait
    assert.truthy(mid:find("\nconfig %x+%s+done") or mid:find("^config %x+%s+done"), mid)
    -- full digests never show in the table
    assert.falsy(mid:find("sha256:%x+%s+downloading"), mid)

    -- the end: the table is gone, the summary and the result stay
    local final, ended = wait_for(function(t) return t:find("EXIT=%d") ~= nil end, STALL + 30)
    assert.is_true(ended, "pull did not finish:\n" .. final)
    assert.truthy(final:find("EXIT=0", 1, true), final)
    assert.truthy(final:find("\ndone: 6 items, [%d%.]+ %a*B in [%d%.]+s %([%d%.]+ %a*B/s%)\n"), final)
    assert.truthy(final:find("pulled " .. ref:gsub("%p", "%%%0"), 1), final)
    assert.falsy(final:find("total (", 1, true), "live total line left on screen:\n" .. final)
    assert.falsy(final:find("|", 1, true), "progress bars left on screen:\n" .. final)
    assert.falsy(final:find("downloading", 1, true), final)
    -- messages printed above the table survive the clean-up
    assert.truthy(final:find("\nresolved", 1, true) or final:find("^resolved"), final)
  end)
end)
