describe("crater module", function()
  it("loads and matches the core ABI", function()
    local crater = require "crater"
    assert.is_string(crater.version)
    assert.equal(1, crater.core.abi)
  end)
end)
