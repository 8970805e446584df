/*
 * Store bindings: placeholder opener until the store lands.
 */
#include "lua/lua_util.h"

void
crater__lua_open_store(lua_State *L)
{
  (void) L;
}
