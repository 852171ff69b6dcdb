"""The compiler behind ``taiji.jit``: trace -> passes -> codegen, with a signature cache.
(DESIGN.md calls this folder jit/; it is named compiler/ so that ``taiji.jit`` stays the
function.)"""
