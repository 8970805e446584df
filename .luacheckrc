-- luacheck configuration (Kong-style declared globals)
std = "luajit"
max_line_length = 140
files["spec/"] = { std = "+busted" }
globals = {}
read_globals = { "jit" }
exclude_files = { "build*/" }
