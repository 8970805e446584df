-- Loaded by busted before every spec file (scripts/busted-run --helper).
-- Makes the build tree's module and binaries visible.
local build = os.getenv("CRATER_BUILD")
assert(build, "CRATER_BUILD is not set: run specs through ctest or scripts/test")
