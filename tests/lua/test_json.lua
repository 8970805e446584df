-- Driven by tests/lua/test_json.c: crater.core's JSON codec against the
-- jansson-based one it replaced (globals jansson_decode, jansson_encode;
-- SRC and BUILD are the source and build trees).
--
-- Decoding: same value (deep, with metatables, zero signs and pairs()
-- order), or both fail with kind "invalid_argument" and the same form of
-- message (positional, or the nesting one).  Encoding: byte-identical
-- output, compact and pretty, or the same error reason.
-- CRATER_JSON_SEED=n changes the random seed, CRATER_JSON_ROUNDS=n scales
-- the random parts.
local core = require "crater.core"
local dec, enc = core.json_decode, core.json_encode
local jdec, jenc = _G.jansson_decode, _G.jansson_encode
local SRC, BUILD = _G.SRC, _G.BUILD

local seed = tonumber(os.getenv("CRATER_JSON_SEED") or "") or 20240601
local rounds = tonumber(os.getenv("CRATER_JSON_ROUNDS") or "") or 1
math.randomseed(seed)
local random = math.random

local failures, checks = 0, { decode = 0, decode_err = 0, encode = 0, encode_err = 0 }
local same_line, same_pos, same_msg, known_nul = 0, 0, 0, 0
local verbose = os.getenv("CRATER_JSON_VERBOSE")

local function show(s)
  s = tostring(s)
  if #s > 200 then s = s:sub(1, 200) .. "..." end
  return (s:gsub("[%z\1-\31\127-\255]", function(c) return string.format("\\x%02x", c:byte()) end))
end

local function fail(fmt, ...)
  failures = failures + 1
  io.stderr:write("FAIL: ", string.format(fmt, ...), "\n")
  if failures >= 20 then error("too many failures (seed " .. seed .. ")", 0) end
end

-- deep equality, including metatables, the sign of zero and pairs() order
local function same(a, b, path)
  if type(a) ~= type(b) then
    return false, path .. ": " .. type(a) .. " vs " .. type(b)
  end
  if type(a) == "number" then
    if a ~= b or (a == 0 and 1 / a ~= 1 / b) then
      return false, string.format("%s: %.17g vs %.17g", path, a, b)
    end
    return true
  end
  if type(a) ~= "table" then
    if a == b then return true end
    return false, path .. ": " .. show(a) .. " vs " .. show(b)
  end
  if getmetatable(a) ~= getmetatable(b) then return false, path .. ": metatables differ" end
  local ka, kb = {}, {}
  for k in pairs(a) do ka[#ka + 1] = k end
  for k in pairs(b) do kb[#kb + 1] = k end
  if #ka ~= #kb then return false, path .. ": " .. #ka .. " vs " .. #kb .. " keys" end
  for i = 1, #ka do
    if ka[i] ~= kb[i] then
      return false, path .. ": pairs() order differs at " .. i .. " (" .. show(ka[i]) .. " vs " .. show(kb[i]) .. ")"
    end
    local ok, why = same(a[ka[i]], b[ka[i]], path .. "." .. show(ka[i]))
    if not ok then return false, why end
  end
  return true
end

local NESTING = "invalid JSON: nesting deeper than 128"

-- Decodes text both ways; returns the (new) value when both succeeded.
local function check_decode(text, label)
  local a, ea, ka = dec(text)
  local b, eb, kb = jdec(text)
  label = label or show(text)
  if b == nil then
    checks.decode_err = checks.decode_err + 1
    if a ~= nil or ka ~= "invalid_argument" or kb ~= "invalid_argument" then
      return fail("%s: jansson fails (%s), new gives %s, %s, %s", label, eb, show(a), show(ea), show(ka))
    end
    if eb == NESTING or ea == NESTING then
      if ea ~= eb then fail("%s: %q vs jansson %q", label, ea, eb) end
      return
    end
    local la, ca = ea:match("^invalid JSON at line (%d+) column (%d+): .")
    local lb, cb = eb:match("^invalid JSON at line (%d+) column (%d+): .")
    if not la or not lb then return fail("%s: message %q (jansson %q)", label, ea, eb) end
    if la == lb then same_line = same_line + 1 end
    if la == lb and ca == cb then same_pos = same_pos + 1 end
    if ea == eb then
      same_msg = same_msg + 1
    elseif not text:find("%z") then
      -- jansson's very words, but for its NUL quirk (below)
      fail("%s: message %q, jansson %q", label, ea, eb)
    elseif verbose then
      io.stderr:write(string.format("differs: %s\n  new     %s\n  jansson %s\n", label, show(ea), show(eb)))
    end
    return
  end
  checks.decode = checks.decode + 1
  if a == nil and text:find("[%w]%z") then
    -- jansson's lexer drops a NUL byte it reads back (ungets) after a
    -- number or true/false/null: "1\0" gave 1; trailing garbage for us
    known_nul = known_nul + 1
    a, ea = dec((text:gsub("([%w])%z", "%1")))
  end
  if a == nil then return fail("%s: jansson decodes it, new fails: %s", label, ea) end
  local ok, why = same(a, b, "$")
  if not ok then return fail("%s: %s", label, why) end
  return a
end

local function reason(msg)
  return tostring(msg):match("%(([^()]*)%)$") or tostring(msg)
end

local PRETTY = { pretty = true }

-- Encodes v both ways, compact and pretty.
local function check_encode(v, label)
  for _, opts in ipairs { false, PRETTY } do
    local oka, a = pcall(enc, v, opts or nil)
    local okb, b = pcall(jenc, v, opts or nil)
    local what = (label or "value") .. (opts and " (pretty)" or "")
    if oka ~= okb then
      fail("%s: new %s %s, jansson %s %s", what, oka and "gives" or "raises", show(a), okb and "gives" or "raises",
        show(b))
    elseif oka then
      checks.encode = checks.encode + 1
      if a ~= b then
        local i = 1
        while a:byte(i) == b:byte(i) do i = i + 1 end
        fail("%s: output differs at byte %d:\n  new     %s\n  jansson %s", what, i, show(a:sub(i - 20, i + 40)),
          show(b:sub(i - 20, i + 40)))
      end
    else
      checks.encode_err = checks.encode_err + 1
      if reason(a) ~= reason(b) then fail("%s: raises %q, jansson %q", what, a, b) end
    end
  end
end

-- Whole documents: decode both ways, then encode the value both ways.
local function check_document(text, label)
  local v = check_decode(text, label)
  if v ~= nil then check_encode(v, label) end
  return v
end

------------------------------------------------------------------------------
-- 1. fixed cases: numbers, strings, structure, errors
------------------------------------------------------------------------------

local valid = {
  "0", "-0", "1", "-1", "123", "9007199254740991", "9007199254740992", "9007199254740993",
  "9223372036854775807", "-9223372036854775808", "18446744073709551615", "9223372036854775808",
  "-9223372036854775809", "0.0", "-0.0", "0.1", "1.5", "-1.5", "1e5", "1E5", "1e+5", "1e-5", "1.0e0",
  "0e0", "0e999999999", "-0e-5", "1e308", "1.7976931348623157e308", "1.7976931348623159e308", "1e309",
  "-1e400", "1e-400", "4.9e-324", "2.2250738585072014e-308", "123456789012345678901234567890",
  "0.1234567890123456789012345678901234567890", "1234567890.0987654321e-5", "3.141592653589793238462643383279",
  "1e22", "1e23", "9007199254740993.0", "0.000000000000000000000000000001", "100000000000000000000000e-23",
  "true", "false", "null", '""', '"abc"', '"\\u0000"', '"a\\u0000b"', '"\\ud83d\\ude00"', '"\\uD83D\\uDE00"',
  '"\\u00e9"', '"\\u20ac"', '"\\uffff"', '"\\ue000"', '"\\/\\\\\\"\\b\\f\\n\\r\\t"', '"é€😀\127/"',
  '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\\ud800\\ud800"', '"\\ud800x"', '"\\uDBFF\\uDFFF"',
  '"\\uD800\\uDC00"', '"\\u12"', '"\\u12g4"', '"\\x"', '"\\"', '"abc', '"a\nb"', '"a\tb"', '"a\1b"', '"a\0b"',
  '"\192\128"', '"\237\160\128"', '"\244\144\128\128"', '"\224\128\128"', '"\240\128\128\128"', '"\195"',
  '"\128"', '"\255"', '"\248\136\128\128\128"', '"\239\191\191"', '"\244\143\191\191"',
  "[]", "{}", "[1,2,3]", '{"a":1}', '{"a":1,"a":2}', '{"a":1,"b":{"a":2}}', '{"\\u0000":1}', '{"a\\u0000":1}',
  '{"":1}', '{"a":[],"b":{}}', "[[[]]]", "  [ 1 , 2 ]  ", "\t\r\n[\n]\n", "",
  " ", "[", "]", "{", "}", "[1,]", "[,1]", "[1 2]", '{"a"}', '{"a":}', '{"a":1,}', '{,}', '{"a" 1}', "{1:2}",
  "[1]x", "1 2", "nul", "nulls", "truex", "[true1]", "tru", "TRUE", "NaN", "Infinity", "-Infinity", "+1",
  ".5", "1.", "1.e5", "01", "-01", "00", "0x10", "1e", "1e+", "1e-", "-", "--1", "1.5.3", "1ee5", "\0",
  "[1]\0", "\239\187\191[]", "[\255]", "/* c */ []", "[1]//", "'a'", "[\"a\",\"b\"", "{\"a\":1",
}
for _, text in ipairs(valid) do check_document(text) end

-- nesting: our cap of 128, jansson's parser cap of 2048
for _, n in ipairs { 1, 127, 128, 129, 130, 2046, 2047, 2048, 2049, 3000 } do
  check_document(string.rep("[", n) .. string.rep("]", n), "[]x" .. n)
  check_document(string.rep("[", n) .. "1" .. string.rep("]", n), "[1]x" .. n)
  check_document(string.rep('{"a":', n) .. "1" .. string.rep("}", n), '{"a":}x' .. n)
  check_document(string.rep("[", n) .. string.rep("]", n - 1), "unclosed x" .. n)
  check_document(string.rep("[", n) .. "x" .. string.rep("]", n), "bad inner x" .. n)
  check_document(string.rep("[", n) .. string.rep("]", n) .. "x", "trailing x" .. n)
end
check_document('[{"a":1,"a":2},' .. string.rep("[", 200) .. string.rep("]", 200) .. "]", "dup before deep")
check_document("[" .. string.rep("[", 200) .. string.rep("]", 200) .. ',{"a":1,"a":2}]', "dup after deep")

-- encode-only values
local array = function(t) return setmetatable(t, core.array_mt) end
local enc_values = {
  { v = 0 }, { v = -0.0 }, { v = 1 }, { v = -1 }, { v = 0.1 }, { v = -0.1 }, { v = 1 / 3 }, { v = 2 ^ 53 },
  { v = 2 ^ 53 - 1 }, { v = -(2 ^ 53) }, { v = -(2 ^ 53) + 1 }, { v = 2 ^ 63 }, { v = 2 ^ 64 }, { v = 1e300 },
  { v = 1e-300 }, { v = 5e-324 }, { v = 1.7976931348623157e308 }, { v = 1e15 }, { v = 1e16 }, { v = 1e17 },
  { v = 1e20 }, { v = 1e21 }, { v = 1e22 }, { v = 123.456 }, { v = -123.456e-7 }, { v = 1e-5 }, { v = 1e-4 },
  { v = 0.5 }, { v = 100.5 }, { v = 1e100 }, { v = 1.5e-10 }, { v = 2.5e+25 },
  { v = 0 / 0 }, { v = 1 / 0 }, { v = -1 / 0 },
  { v = "" }, { v = "abc" }, { v = "a\0b" }, { v = "\1\2\3\4\5\6\7\8\9\10\11\12\13\14\15\16\17\18\19\20" },
  { v = "\21\22\23\24\25\26\27\28\29\30\31\127" }, { v = '"\\/' }, { v = "é€😀" }, { v = "\255" },
  { v = "\192\128" }, { v = "\237\160\128" }, { v = "\244\144\128\128" }, { v = "abc\195" },
  { v = true }, { v = false }, { v = nil }, { v = core.null }, { v = {} }, { v = array {} },
  { v = { 1, 2, 3 } }, { v = array { 1, 2, 3 } }, { v = { 1, 2, nil, 4 } }, { v = array { 1, nil, 3 } },
  { v = { 1, 2, x = 3 } }, { v = array { 1, 2, x = 3 } }, { v = { [1.5] = 1 } }, { v = { [true] = 1 } },
  { v = { [2] = 1 } }, { v = { a = {}, b = array {}, c = { {} }, d = array { array {} } } },
  { v = { b = 1, a = 2, B = 3, ["a b"] = 4, ["é"] = 5, [""] = 6, aa = 7, ["a\1"] = 8 } },
  { v = { a = { b = { c = { 1, 2, { d = "e" } } } }, z = array { {}, array {}, { x = core.null } } } },
  { v = print }, { v = io.stdout }, { v = coroutine.create(print) }, { v = { a = print } },
  { v = { f = print, n = 0 / 0 } }, { v = { 1, print } }, { v = { 1, io.stdout, 0 / 0 } },
  { v = { x = "\255", y = 1 / 0, z = io.stdout } }, { v = { [1] = 1, [3] = 3, x = "\255" } },
  { v = { [{}] = 1 } },
}
for i, c in ipairs(enc_values) do check_encode(c.v, "enc_values[" .. i .. "]") end
local cyclic = {}
cyclic.self = cyclic
check_encode(cyclic, "cyclic")
local cyc_arr = array {}
cyc_arr[1] = cyc_arr
check_encode(cyc_arr, "cyclic array")
local function nest(n, leaf)
  local v = leaf
  for _ = 1, n do v = array { v } end
  return v
end
for _, n in ipairs { 127, 128, 129, 130 } do
  check_encode(nest(n, 1), "nested " .. n)
  check_encode(nest(n, array {}), "nested [] " .. n)
  check_encode(nest(n, {}), "nested {} " .. n)
end

-- large values: the C buffers overflow into userdata (output, keys, key
-- and value stack slots, escaped strings, container sizes)
do
  local arr, obj, many = {}, {}, {}
  for i = 1, 10000 do arr[i] = i % 7 == 0 and { i, "\n" } or ("s" .. i) end
  for i = 1, 5000 do obj["key" .. i .. ("\t"):rep(i % 3)] = { v = i, s = ("x"):rep(i % 50) } end
  for i = 1, 700 do many[i] = { a = array {}, b = { c = i } } end
  for i, v in ipairs { array(arr), obj, array(many), string.rep('\\"é\1', 3000), { big = obj, list = array(arr) } } do
    check_document(jenc(v), "large " .. i)
    check_document(jenc(v, PRETTY), "large " .. i .. " (pretty)")
  end
end

------------------------------------------------------------------------------
-- 2. the corpus: every .json file of the tree (and of the build trees,
--    fixtures included), an OCI runtime spec, the compiled-in profile
------------------------------------------------------------------------------

local corpus = {}
local function add(text, label)
  if text and #text < 4 * 1024 * 1024 then corpus[#corpus + 1] = { text = text, label = label } end
end
local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
local seen = {}
for _, dir in ipairs { SRC, BUILD } do
  local p = io.popen("find '" .. dir .. "' -name .git -prune -o -type f -name '*.json' -size -4096k -print 2>/dev/null")
  for path in p:lines() do
    if not seen[path] then
      seen[path] = true
      add(readfile(path), path)
    end
  end
  p:close()
end
-- fixture blobs (OCI layouts) are JSON without the suffix
local p = io.popen("find '" .. BUILD .. "/fixtures' -type f -path '*/blobs/*' -size -64k -print 2>/dev/null")
for path in p:lines() do
  local text = readfile(path)
  if text and text:match("^%s*[{%[]") then add(text, path) end
end
p:close()
add(core.default_seccomp_json(), "core.default_seccomp_json()")
local oci = require "crater.oci"
local spec = oci.spec({ oci.with_process_args("/bin/true") }, { id = "x", namespace = "default" })
add(jenc(spec), "OCI spec")
add(jenc(spec, PRETTY), "OCI spec (pretty)")
assert(#corpus >= 4, "corpus too small")
local ndocs = 0
for _, c in ipairs(corpus) do
  if check_document(c.text, c.label) ~= nil then ndocs = ndocs + 1 end
end
io.stderr:write(string.format("corpus: %d documents, %d decoded\n", #corpus, ndocs))

------------------------------------------------------------------------------
-- 3. random values: encode, then decode the encodings
------------------------------------------------------------------------------

local pieces = {
  "a", "b", "z", "A", "Z", "0", "9", " ", "key", "hello world", '"', "\\", "/", "\b", "\f", "\n", "\r", "\t",
  "\0", "\1", "\31", "\127", "é", "€", "😀", "\244\143\191\191", "\239\191\191", "\224\160\128", "\237\159\191",
  "\238\128\128", "\194\128", "{", "}", "[", "]", ":", ",", "\\u0041", "\\n",
}
-- keys never hold NUL: the jansson-based encoder cut them there
local function rand_string(max, key)
  local t = {}
  for i = 1, random(0, max or 8) do t[i] = pieces[random(#pieces)] end
  local s = table.concat(t)
  return key and s:gsub("%z", "") or s
end

local special = {
  0, -0.0, 1, -1, 0.1, 0.5, 1 / 3, 2 ^ 53, 2 ^ 53 - 1, 2 ^ 53 + 2, -(2 ^ 53), 2 ^ 63, -(2 ^ 63), 2 ^ 64, 1e300,
  -1e300, 1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e21, 1e22, 1e23, 123.456,
}
local function rand_number()
  local r = random(6)
  if r == 1 then return special[random(#special)] end
  if r == 2 then return random(-1000, 1000) end
  if r == 3 then return random(-2 ^ 31, 2 ^ 31) * 2 ^ random(0, 30) end
  if r == 4 then return (random() - 0.5) * 10 ^ random(-30, 30) end
  if r == 5 then return math.ldexp(random() + random(0, 1), random(-1074, 1023)) * (random(2) == 1 and 1 or -1) end
  return random(-99999, 99999) / 10 ^ random(1, 6)
end

local function rand_value(depth)
  local r = random(depth > 6 and 6 or 10)
  if r == 1 then return rand_number() end
  if r == 2 then return rand_string(12) end
  if r == 3 then return random(2) == 1 end
  if r == 4 then return core.null end
  if r == 5 then return rand_number() end
  if r == 6 then return rand_string(4) end
  if r == 7 or r == 8 then
    local t = {}
    for i = 1, random(0, 6) do t[i] = rand_value(depth + 1) end
    if random(3) > 1 then setmetatable(t, core.array_mt) end
    return t
  end
  local t = {}
  for _ = 1, random(0, 7) do t[(rand_string(5, true))] = rand_value(depth + 1) end
  return t
end

for i = 1, 3000 * rounds do
  local v = rand_value(0)
  check_encode(v, "random value " .. i)
  local ok, text = pcall(jenc, v)
  if ok then
    check_document(text, "random document " .. i)
    check_document(jenc(v, PRETTY), "random document " .. i .. " (pretty)")
  end
end

-- numbers as text: the grammar, integer range, reals (bit-exact)
local numchars = { "0", "1", "5", "9", "-", "+", ".", "e", "E", "0", "1", "2", "7" }
for _ = 1, 20000 * rounds do
  local t = {}
  for i = 1, random(1, 24) do t[i] = numchars[random(#numchars)] end
  check_document(table.concat(t))
end
for _ = 1, 5000 * rounds do
  local t = { random(2) == 1 and "-" or "", tostring(random(1, 9)) }
  for _ = 1, random(0, 25) do t[#t + 1] = tostring(random(0, 9)) end
  if random(2) == 1 then
    t[#t + 1] = "."
    for _ = 1, random(1, 25) do t[#t + 1] = tostring(random(0, 9)) end
  end
  if random(2) == 1 then t[#t + 1] = "e" .. ({ "", "+", "-" })[random(3)] .. random(0, 330) end
  check_document(table.concat(t))
end

-- strings as text: escapes, surrogates, raw bytes
local strpieces = {
  "a", "\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\u0041", "\\u00e9", "\\u0000", "\\uD83D",
  "\\uDE00", "\\udbff", "\\udfff", "\\ud800", "\\uZZZZ", "\\u12", "\\x", "\\", '"', "\1", "\31", "\n", "\127",
  "\128", "\191", "\192", "\194\128", "\224\160\128", "\237\160\128", "\240\144\128\128", "\244\144\128\128",
  "\245", "\255", "é", "😀", " ",
}
for _ = 1, 20000 * rounds do
  local t = { '"' }
  for i = 2, random(1, 8) + 1 do t[i] = strpieces[random(#strpieces)] end
  t[#t + 1] = '"'
  local s = table.concat(t)
  check_document(s)
  check_document("{" .. s .. ":1}")
end

------------------------------------------------------------------------------
-- 4. mutations of the corpus and of random documents
------------------------------------------------------------------------------

local bytes = {
  "{", "}", "[", "]", '"', ",", ":", "\\", "/", "-", "+", ".", "e", "E", "0", "1", "9", "t", "f", "n", "u",
  "a", "x", " ", "\n", "\t", "\r", "\0", "\1", "\31", "\127", "\128", "\191", "\192", "\194", "\224", "\237",
  "\240", "\244", "\245", "\255",
}
local function mutate(s)
  local n = #s
  local i = random(1, n + 1)
  local op = random(6)
  if op == 1 then return s:sub(1, i - 1) .. s:sub(i + 1) end
  if op == 2 then return s:sub(1, i - 1) .. bytes[random(#bytes)] .. s:sub(i) end
  if op == 3 then return s:sub(1, i - 1) .. bytes[random(#bytes)] .. s:sub(i + 1) end
  if op == 4 then return s:sub(1, i - 1) end
  if op == 5 then
    local j = random(i, math.min(n, i + 30))
    return s:sub(1, j) .. s:sub(i, j) .. s:sub(j + 1)
  end
  local j = random(1, n + 1)
  return s:sub(1, math.min(i, j) - 1) .. s:sub(math.max(i, j))
end

local small = {}
for i = 1, 200 do
  local ok, text = pcall(jenc, rand_value(0), random(2) == 1 and PRETTY or nil)
  if ok then small[#small + 1] = text end
  small[#small + 1] = valid[random(#valid)] .. valid[random(#valid)]
  if i <= #valid then small[#small + 1] = valid[i] end
end
for _ = 1, 30000 * rounds do
  local s = small[random(#small)]
  for _ = 1, random(1, 3) do s = mutate(s) end
  check_document(s, "mutant " .. show(s))
end
for _, c in ipairs(corpus) do
  if #c.text < 64 * 1024 then
    for _ = 1, math.floor(300 * rounds * 8192 / math.max(#c.text, 8192)) do
      local s = mutate(c.text)
      check_document(s, "mutant of " .. c.label)
    end
  end
end

io.stderr:write(string.format(
  "checked: %d decodes (%d with a NUL jansson skipped), %d decode failures (same line %d, same line and column %d, same message %d),"
    .. " %d encodes, %d encode errors; seed %d\n",
  checks.decode, known_nul, checks.decode_err, same_line, same_pos, same_msg, checks.encode, checks.encode_err, seed))
if failures > 0 then error(failures .. " failures (seed " .. seed .. ")", 0) end
