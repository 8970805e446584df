-- crater.json (core.json_decode / core.json_encode, src/lua/l_json.c).
--
-- The expected texts and messages below are jansson's: the codec used to
-- go through a jansson tree and still behaves as json_loadb(JSON_REJECT_
-- DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL) and json_dumps(JSON_SORT_
-- KEYS | JSON_ENCODE_ANY | JSON_COMPACT or JSON_INDENT(2)) did.
-- tests/lua/test_json.c compares the two codecs at large (corpus, random
-- values, mutations); this spec pins the rules.
local json = require "crater.json"
local core = require "crater.core"
local proc = require "support.proc"

local A = json.array
local SRC = os.getenv("CRATER_SRC") or "."

-- deep equality with metatables and the sign of zero
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return a == b and (a ~= 0 or 1 / a == 1 / b) end
  if type(a) ~= "table" then return a == b end
  if getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function rejects(text, reason)
  local v, err, kind = json.decode(text)
  assert.is_nil(v, text)
  assert.equal("invalid_argument", kind)
  assert.truthy(err:match("^invalid JSON at line %d+ column %d+: ") or err:match("^invalid JSON: "), err)
  if reason then assert.truthy(err:find(reason, 1, true), ("%q: %s"):format(text, err)) end
  return err
end

local function is_neg_zero(x) return x == 0 and 1 / x < 0 end

describe("json.decode", function()
  it("decodes every JSON type", function()
    local v = assert(json.decode(' {"s":"x","n":-1.5,"t":true,"f":false,"z":null,"a":[1,[],{}],"o":{"k":"v"}} '))
    assert.equal("x", v.s)
    assert.equal(-1.5, v.n)
    assert.is_true(v.t)
    assert.is_false(v.f)
    assert.equal(json.null, v.z)
    assert.equal(core.null, v.z)
    assert.equal("userdata", type(v.z))
    assert.equal(json.array_mt, getmetatable(v.a))
    assert.equal(json.array_mt, getmetatable(v.a[2]))
    assert.is_nil(getmetatable(v.a[3]))
    assert.is_nil(getmetatable(v))
    assert.same({ k = "v" }, v.o)
    assert.equal(1, v.a[1])
    assert.equal(3, #v.a)
  end)

  it("decodes any value at top level, between JSON white space", function()
    assert.equal(1, json.decode("1"))
    assert.equal("s", json.decode('"s"'))
    assert.is_true(json.decode(" \t\r\ntrue\n"))
    assert.is_false(json.decode("false"))
    assert.equal(json.null, json.decode("null"))
    assert.equal(0, #json.decode("[]"))
    assert.equal("[]", json.encode(json.decode("[]")))
    assert.equal("{}", json.encode(json.decode("{}")))
  end)

  it("reads numbers as jansson did (int64 integers, strtod reals)", function()
    local cases = {
      { "0", 0 }, { "-1", -1 }, { "1E+2", 100 }, { "1e2", 100 }, { "2.5e-3", 2.5e-3 }, { "0.1", 0.1 },
      { "1.7976931348623157e308", 1.7976931348623157e308 }, { "4.9e-324", 4.9e-324 }, { "1e-400", 0 },
      { "9007199254740993", 9007199254740992 }, { "9223372036854775807", 2 ^ 63 },
      { "-9223372036854775808", -(2 ^ 63) }, { "123456789012345678901234567890.0", 1.2345678901234568e29 },
      { "0.30000000000000004", 0.30000000000000004 }, { "1.00000000000000011102230246251565404236316680908203125", 1 },
      { "1.00000000000000011102230246251565404236316680908203126", 1.0000000000000002 },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], json.decode(c[1]), c[1])
    end
    -- "-0" is an integer, so +0; "-0.0" a real
    assert.is_false(is_neg_zero(json.decode("-0")))
    assert.is_true(is_neg_zero(json.decode("-0.0")))
    assert.is_true(is_neg_zero(json.decode("-0e5")))
  end)

  it("decodes escapes and UTF-8", function()
    assert.equal('"\\/\b\f\n\r\t', json.decode([["\"\\\/\b\f\n\r\t"]]))
    assert.equal("é€", json.decode([["\u00e9\u20AC"]]))
    assert.equal("😀", json.decode([["\ud83d\ude00"]]))
    assert.equal("\244\143\191\191", json.decode([["\uDBFF\uDFFF"]]))
    assert.equal("a\0b", json.decode([["a\u0000b"]]))
    assert.equal("é€😀\127", json.decode('"é€😀\127"'))
    local long = string.rep("\\u00e9x\\n", 200)
    assert.equal(string.rep("éx\n", 200), json.decode('"' .. long .. '"'))
  end)

  it("rejects what RFC 8259 does not allow", function()
    local cases = {
      { "", "unexpected token near end of file" }, { "  \n ", "near end of file" }, { "[1]x", "end of file expected" },
      { "1 2", "end of file expected" }, { "01", "invalid token near '0'" }, { "-01", "invalid token" },
      { "+1", "invalid token" }, { ".5", "invalid token" }, { "1.", "invalid token near '1.'" }, { "1.e5", "invalid token" },
      { "1e", "invalid token" }, { "1e+", "invalid token" }, { "0x10", "end of file expected" }, { "-", "invalid token" },
      { "NaN", "invalid token" }, { "Infinity", "invalid token" }, { "-Infinity", "invalid token" },
      { "nul", "invalid token" }, { "truex", "invalid token near 'truex'" }, { "TRUE", "invalid token" },
      { "'a'", "invalid token" }, { "[1,]", "unexpected token" }, { "[,1]", "unexpected token" },
      { "[1 2]", "']' expected near '2'" }, { "[", "']' expected near end of file" },
      { '{"a"}', "':' expected" }, { '{"a":}', "unexpected token" }, { '{"a":1,}', "string or '}' expected" },
      { "{1:2}", "string or '}' expected near '1'" }, { '{"a":1', "'}' expected near end of file" },
      { "[] // c", "end of file expected" }, { "/* c */ []", "invalid token" }, { "\239\187\191[]", "invalid token" },
      { "\f[]", "invalid token" }, { "[\v]", "invalid token" }, { "[\194\160]", "invalid token" },
      { '"abc', "premature end of input near '\"abc'" }, { '"a\1b"', "control character 0x1 near '\"a'" },
      { '"a\nb"', "unexpected newline" }, { '"a\tb"', "control character 0x9" }, { '"a\0b"', "control character 0x0" },
      { [["\x"]], "invalid escape" }, { [["\u12"]], "invalid escape" }, { [["\u12g4"]], "invalid escape" },
      { [["\U0041"]], "invalid escape" }, { '"\\', "invalid escape" },
      { [["\ud800"]], "invalid Unicode '\\uD800'" }, { [["\udc00"]], "invalid Unicode '\\uDC00'" },
      { [["\ud800\u0041"]], "invalid Unicode '\\uD800\\u0041'" }, { [["\ud800\ud800"]], "invalid Unicode" },
      { [["\udc00\ud800"]], "invalid Unicode '\\uDC00'" }, { [["\ud800x"]], "invalid Unicode" },
      { '"\192\128"', "unable to decode byte 0xc0" }, { '"\193\191"', "unable to decode byte 0xc1" },
      { '"\224\128\128"', "unable to decode byte 0xe0" }, { '"\240\128\128\128"', "unable to decode byte 0xf0" },
      { '"\237\160\128"', "unable to decode byte 0xed" }, { '"\244\144\128\128"', "unable to decode byte 0xf4" },
      { '"\245\128\128\128"', "unable to decode byte 0xf5" }, { '"\128"', "unable to decode byte 0x80" },
      { '"\195"', "unable to decode byte 0xc3" }, { '"\226\130"', "unable to decode byte 0xe2" },
      { '"\255"', "unable to decode byte 0xff" }, { "[1]\255", "unable to decode byte 0xff" },
      { '{"a":1,"a":2}', "duplicate object key near '\"a\"'" }, { '{"a":{},"b":1,"a":[]}', "duplicate" },
      { [[{"a\u0000":1}]], "NUL byte in object key not supported" },
      { "9223372036854775808", "too big integer" }, { "-9223372036854775809", "too big negative integer" },
      { "123456789012345678901234567890", "too big integer" }, { "1e309", "real number overflow" },
      { "-1e400", "real number overflow" },
    }
    for _, c in ipairs(cases) do rejects(c[1], c[2]) end
  end)

  it("locates errors as jansson did", function()
    assert.equal("invalid JSON at line 1 column 10: duplicate object key near '\"a\"'", rejects('{"a":1,"a":2}'))
    assert.equal("invalid JSON at line 3 column 2: invalid token near 'x'", rejects("[1,\n2,\n x]"))
    assert.equal("invalid JSON at line 1 column 0: unexpected token near end of file", rejects(""))
    assert.equal("invalid JSON at line 2 column 3: control character 0x1 near '\"é'", rejects('[\n "é\1"]'))
    assert.equal("invalid JSON at line 1 column 20: too big integer near '99999999999999999999'",
      rejects("99999999999999999999"))
    assert.equal("invalid JSON at line 1 column 1: unable to decode byte 0xff near '\"'", rejects('"\255"'))
  end)

  it("refuses nesting deeper than 128, after checking the whole text", function()
    local function nest(n, inner) return string.rep("[", n) .. (inner or "") .. string.rep("]", n) end
    assert.truthy(json.decode(nest(129)))      -- depths 0..128
    assert.truthy(json.decode(nest(128, "1")))
    local nesting = "invalid JSON: nesting deeper than 128"
    assert.equal(nesting, rejects(nest(130)))
    assert.equal(nesting, rejects(nest(129, "1")))
    assert.equal(nesting, rejects(string.rep('{"a":', 129) .. "1" .. string.rep("}", 129)))
    assert.equal(nesting, rejects(nest(2048)))
    -- a syntax error anywhere wins, as jansson parsed before we checked
    rejects(nest(200) .. "x", "end of file expected")
    rejects("[" .. nest(200) .. ',{"a":1,"a":2}]', "duplicate")
    -- beyond jansson's own limit (2048), its error
    rejects(nest(2049), "maximum parsing depth reached")
    rejects(nest(100000), "maximum parsing depth reached")
  end)

  it("returns errors for any bytes, never raises", function()
    math.randomseed(7)
    local bytes = { "{", "}", "[", "]", '"', ",", ":", "\\", "u", "0", "9", "-", ".", "e", "t", "n", " ", "\0", "\200", "\255" }
    for _ = 1, 3000 do
      local t = {}
      for i = 1, math.random(0, 12) do t[i] = bytes[math.random(#bytes)] end
      local ok, v, err, kind = pcall(json.decode, table.concat(t))
      assert.is_true(ok, v)
      if v == nil then assert.equal("invalid_argument", kind, err) end
    end
  end)

  it("handles large documents (scratch space beyond the C buffers)", function()
    local arr, obj, deep = {}, {}, {}
    for i = 1, 10000 do arr[i] = i % 7 == 0 and { i } or ("s" .. i .. "\n") end
    for i = 1, 5000 do obj["key" .. i] = { i, ("x"):rep(i % 50) } end
    for i = 1, 700 do deep[i] = { a = A {}, b = { c = i } } end
    for _, v in ipairs { A(arr), obj, A(deep), string.rep("\\\"é", 5000) } do
      local text = json.encode(v)
      local back = assert(json.decode(text))
      assert.equal(text, json.encode(back))
      assert.equal(json.encode(v, { pretty = true }), json.encode(back, { pretty = true }))
    end
  end)
end)

describe("json.encode", function()
  -- { value, compact, pretty (when it differs) }: jansson's output
  local cases = {
    { 0, "0" }, { -0.0, "0" }, { 42, "42" }, { -7, "-7" }, { 0.1, "0.10000000000000001" }, { -1.5, "-1.5" },
    { 1 / 3, "0.33333333333333331" }, { 2 ^ 53 - 1, "9007199254740991" }, { 2 ^ 53, "9007199254740992.0" },
    { -(2 ^ 53), "-9007199254740992.0" }, { 2 ^ 63, "9.2233720368547758e18" }, { 1e15, "1000000000000000" },
    { 1e17, "1e17" }, { 1e21, "1e21" }, { 1e300, "1.0000000000000001e300" }, { 1e-5, "1.0000000000000001e-5" },
    { 1.5e-10, "1.5e-10" }, { 5e-324, "4.9406564584124654e-324" }, { 123456.789, "123456.789" },
    { 1.7976931348623157e308, "1.7976931348623157e308" },
    { true, "true" }, { false, "false" }, { nil, "null" }, { json.null, "null" },
    { "", '""' }, { "plain", '"plain"' }, { 'q"b\\s/', [["q\"b\\s/"]] }, { "\b\f\n\r\t", [["\b\f\n\r\t"]] },
    { "\0\1\31\127", '"\\u0000\\u0001\\u001F\127"' }, { "é€😀", '"é€😀"' },
    { {}, "{}" }, { A {}, "[]" }, { { 1, 2, 3 }, "[1,2,3]", "[\n  1,\n  2,\n  3\n]" },
    { A { 1, "two", A {} }, '[1,"two",[]]', '[\n  1,\n  "two",\n  []\n]' },
    { { b = 1, a = 2, B = 3, [""] = 4, aa = 5, ["a b"] = 6, ["é"] = 7, f = 8 },
      '{"":4,"B":3,"a":2,"a b":6,"aa":5,"b":1,"f":8,"é":7}',
      '{\n  "": 4,\n  "B": 3,\n  "a": 2,\n  "a b": 6,\n  "aa": 5,\n  "b": 1,\n  "f": 8,\n  "é": 7\n}' },
    { { list = A {}, obj = {}, nested = { A { {} } } }, '{"list":[],"nested":[[{}]],"obj":{}}',
      '{\n  "list": [],\n  "nested": [\n    [\n      {}\n    ]\n  ],\n  "obj": {}\n}' },
    { { z = { y = A { 1, { w = json.null } } }, a = A { true, false } },
      '{"a":[true,false],"z":{"y":[1,{"w":null}]}}',
      '{\n  "a": [\n    true,\n    false\n  ],\n  "z": {\n    "y": [\n      1,\n      {\n        "w": null\n      }\n    ]\n  }\n}' },
    { { [1] = "a", [2] = "b" }, '["a","b"]', '[\n  "a",\n  "b"\n]' },
  }

  it("writes what jansson wrote, compact and pretty", function()
    for i, c in ipairs(cases) do
      assert.equal(c[2], json.encode(c[1]), "case " .. i)
      assert.equal(c[3] or c[2], json.encode(c[1], { pretty = true }), "case " .. i .. " (pretty)")
      assert.equal(c[2], json.encode(c[1], { pretty = false }), "case " .. i)
    end
  end)

  it("raises on what JSON cannot hold, with the reason", function()
    local loop = {}
    loop.me = loop
    local deep = A {}
    for _ = 1, 129 do deep = A { deep } end
    local bad = {
      { 0 / 0, "cannot encode NaN or infinity" }, { 1 / 0, "cannot encode NaN or infinity" },
      { -1 / 0, "cannot encode NaN or infinity" }, { io.stdout, "cannot encode this Lua type" },
      { print, "cannot encode this Lua type" }, { coroutine.create(print), "cannot encode this Lua type" },
      { "\255", "string is not valid UTF-8" }, { "\192\128", "string is not valid UTF-8" },
      { "\237\160\128", "string is not valid UTF-8" }, { "\244\144\128\128", "string is not valid UTF-8" },
      { "ok\195", "string is not valid UTF-8" }, { { 1, 2, x = 3 }, "object keys must be strings" },
      { { [true] = 1 }, "object keys must be strings" }, { { [2] = 1 }, "object keys must be strings" },
      { loop, "nesting too deep" }, { deep, "nesting too deep" }, { { a = { b = print } }, "cannot encode this Lua type" },
    }
    for i, c in ipairs(bad) do
      local ok, err = pcall(json.encode, c[1])
      assert.is_false(ok, "case " .. i)
      assert.truthy(err:find("bad argument #1", 1, true), err)
      assert.truthy(err:find(c[2], 1, true), ("case %d: %s"):format(i, err))
    end
    -- 128 levels below the top are fine
    deep = A {}
    for _ = 1, 128 do deep = A { deep } end
    assert.equal(string.rep("[", 129) .. string.rep("]", 129), json.encode(deep))
  end)

  it("reports the problem the jansson-based encoder met first", function()
    -- arrays in index order
    local _, err = pcall(json.encode, A { 1, 0 / 0, print })
    assert.truthy(err:find("NaN", 1, true), err)
    _, err = pcall(json.encode, A { print, 0 / 0 })
    assert.truthy(err:find("this Lua type", 1, true), err)
  end)

  it("encodes object keys whole and checks them", function()
    -- (the jansson-based encoder cut keys at a NUL and dropped keys that
    -- were not UTF-8)
    assert.equal('{"a\\u0000b":1}', json.encode({ ["a\0b"] = 1 }))
    local ok, err = pcall(json.encode, { ["\255"] = 1 })
    assert.is_false(ok)
    assert.truthy(err:find("string is not valid UTF-8", 1, true), err)
  end)

  it("sorts keys by bytes", function()
    local t, keys = {}, {}
    for i = 1, 300 do
      local k = ("k%03d"):format((i * 7919) % 1000)
      t[k] = i
      keys[#keys + 1] = k
    end
    table.sort(keys)
    local want = {}
    for i, k in ipairs(keys) do want[i] = ('"%s":%d'):format(k, t[k]) end
    assert.equal("{" .. table.concat(want, ",") .. "}", json.encode(t))
  end)
end)

describe("json round trips", function()
  local oci = require "crater.oci"
  local docs = {
    ["policies/seccomp-default.json"] = assert(proc.read_file(SRC .. "/policies/seccomp-default.json")),
    ["core.default_seccomp_json()"] = core.default_seccomp_json(),
    ["an OCI runtime spec"] = json.encode(oci.spec({ oci.with_process_args("/bin/true") },
      { id = "x", namespace = "default" })),
    ["a hand-made document"] = [==[
      {"a": [1, 2.5, -3e-7, "x\u00e9\"", true, false, null, [], {}, [[[]]]],
       "b": {"c": {"d": "\ud83d\ude00", "e": "\/\\\b\f\n\r\t\u0001"}}, "": 0, "z": -0.5}]==],
  }
  for name, text in pairs(docs) do
    it("keeps " .. name, function()
      local v = assert(json.decode(text))
      for _, opts in ipairs { {}, { pretty = true } } do
        local enc = json.encode(v, opts)
        local back = assert(json.decode(enc))
        assert.is_true(same(v, back))
        assert.equal(enc, json.encode(back, opts))
      end
    end)
  end
end)

describe("json numbers ignore the C locale", function()
  local ffi = require "ffi"
  ffi.cdef [[ int setenv(const char *name, const char *value, int overwrite); ]]

  -- a locale whose decimal point is ',' (built with localedef when none is
  -- installed)
  local function comma_locale()
    for _, l in ipairs { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8" } do
      if os.setlocale(l, "numeric") then return l end
    end
    local dir = os.tmpname()
    os.remove(dir)
    if os.execute("mkdir -p " .. dir .. " && localedef -i de_DE -f UTF-8 " .. dir .. "/de_DE.UTF-8 >/dev/null 2>&1")
      ~= 0 then
      return nil
    end
    ffi.C.setenv("LOCPATH", dir, 1)
    return os.setlocale("de_DE.UTF-8", "numeric")
  end

  it("reads and writes '.' whatever LC_NUMERIC says", function()
    local l = comma_locale()
    if not l then
      os.setlocale("C", "numeric")
      pending("no locale with a ',' decimal point (localedef de_DE failed)")
      return
    end
    local ok, err = pcall(function()
      assert.equal("[1.5,0.10000000000000001,1.0000000000000001e300,-2.5000000000000002e-10]",
        json.encode(A { 1.5, 0.1, 1e300, -2.5e-10 }))
      local v = assert(json.decode("[1.5, 0.25e1, 123456789012345678901234567890.5, 1.5e-300]"))
      assert.equal(1.5, v[1])
      assert.equal(2.5, v[2])
      assert.equal(1.2345678901234568e29, v[3])
      assert.equal(1.5e-300, v[4])
    end)
    os.setlocale("C", "numeric")
    assert(ok, err)
  end)
end)
