-- luacheck configuration (Kong-style declared globals); run by ctest as
-- lint/luacheck.
std = "luajit"
max_line_length = 170
self = false            -- methods need not use self
files["spec/"] = { std = "+busted" }
files["policies/"] = { std = "min" }
globals = {}
read_globals = { "jit" }
exclude_files = { "build*/" }
max_comment_line_length = false   -- LuaCATS annotations may be long
unused_args = false
ignore = { "311/port" }            -- reference.lua validates then discards the port
