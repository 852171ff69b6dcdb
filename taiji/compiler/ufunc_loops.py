"""NumPy's own inner loops of its transcendental ufuncs, callable from native code.

``exp``, ``log``, ``tanh`` and their kin are computed by NumPy with SIMD code of its own
(chosen for the CPU at import), whose last bits differ from LLVM's and the C library's. A
native segment (taiji/compiler/native.py) that spelled ``exp`` with numba's would compute
other bits than the Python tier, so these ufuncs used to stay Python calls between segments:
the seed MLP's cross-entropy cut its training step into three segments with NumPy calls
between them (~25 us a step of calls, boxing and contiguity checks at batch 64).

A ufunc keeps its loops in a C array of function pointers, one per type signature, and a
call on a contiguous array of the loop's own dtype is one call of that loop over the whole
array. So native code calls the very same function, with the same arguments, and gets
NumPy's bits by construction. The pointer is read from the ufunc object's C struct
(``PyUFuncObject``: ``nin, nout, nargs`` after the object header, then ``functions``,
``data``, ``ntypes``, ``types``); the layout is checked against what the ufunc reports
(``nin``, ``nout``, ``nargs``, ``ntypes`` and every signature of ``types``), and each loop
against the ufunc itself on special and random values, before it is used. Anything
unexpected (another Python build, a NumPy whose struct moved) gives None, and the ufunc
stays a Python call.
"""
from __future__ import annotations

import ctypes
import functools
import sys

import numpy as np

from taiji.compiler.blas import FLOATS
from taiji.compiler.codegen import UFUNCS

# the primitives whose NumPy ufunc (the Python tier's, codegen.UFUNCS) a loop call
# reproduces (unary, one dtype in and out); sqrt, abs, neg and the rounding ones are native
# already (numba's are exact)
LOOP_PRIMS = {p: getattr(np, UFUNCS[p])
              for p in ("exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "tan", "sign")}
_LOOP = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_void_p)
_HEAD = 16  # bytes of a CPython object header (refcount, type) on a 64-bit build


def _layout_ok() -> bool:
    return (sys.implementation.name == "cpython" and ctypes.sizeof(ctypes.c_void_p) == 8
            and object.__basicsize__ == _HEAD)


def _table(uf: np.ufunc) -> tuple | None:
    """(functions, data, signatures as dtype numbers) read from ``uf``'s struct, or None if
    what it holds disagrees with what the ufunc reports."""
    addr = id(uf)
    nin, nout, nargs = (ctypes.c_int * 3).from_address(addr + _HEAD)
    if (nin, nout, nargs) != (uf.nin, uf.nout, uf.nargs) or nargs != 2:
        return None
    functions = ctypes.c_void_p.from_address(addr + _HEAD + 16).value
    data = ctypes.c_void_p.from_address(addr + _HEAD + 24).value
    ntypes = ctypes.c_int.from_address(addr + _HEAD + 32).value
    types = ctypes.c_void_p.from_address(addr + _HEAD + 48).value
    if ntypes != uf.ntypes or not functions or not types:
        return None
    codes = (ctypes.c_ubyte * (ntypes * nargs)).from_address(types)
    sigs = [tuple(codes[i * nargs:(i + 1) * nargs]) for i in range(ntypes)]
    try:
        told = [tuple(np.dtype(c).num for c in t.replace("->", "")) for t in uf.types]
    except TypeError:  # (an object or datetime signature: not one of ours to check)
        return None
    if sigs != told:
        return None
    return functions, data, sigs


def _probe_values(d: np.dtype) -> np.ndarray:
    """Special values and random ones over a wide range, in a length that leaves a SIMD
    loop a remainder (its tail code is checked too)."""
    info = np.finfo(d)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, info.tiny,
                        info.tiny / 4, -info.tiny, info.max, -info.max, 88.7, -103.9, 709.7,
                        -745.1, 1e-30, 3.14159, -20.0], dtype=d)
    rng = np.random.default_rng(0)
    wide = (rng.standard_normal(4000) * np.exp(rng.uniform(-8, 5, 4000))).astype(d)
    return np.concatenate([special, wide, rng.uniform(-1, 1, 1003).astype(d)])


def _call(fn: int, data: int | None, x: np.ndarray, out: np.ndarray) -> None:
    args = (ctypes.c_void_p * 2)(x.ctypes.data, out.ctypes.data)
    dims = (ctypes.c_int64 * 1)(x.size)
    steps = (ctypes.c_int64 * 2)(x.itemsize, out.itemsize)
    _LOOP(fn)(args, dims, steps, data)


@functools.cache
def loop(prim: str, dtype) -> tuple | None:
    """(function address, data address) of NumPy's inner loop for primitive ``prim`` on
    ``dtype`` (float32/float64 in, the same out), checked bit for bit against the ufunc;
    None where there is none or the check fails."""
    d = np.dtype(dtype)
    uf = LOOP_PRIMS.get(prim)
    if uf is None or d not in FLOATS or not _layout_ok():
        return None
    table = _table(uf)
    if table is None:
        return None
    functions, data, sigs = table
    # the first loop for the signature: the one NumPy's type resolution picks
    i = next((i for i, s in enumerate(sigs) if s == (d.num, d.num)), None)
    if i is None:
        return None
    fn = ctypes.c_void_p.from_address(functions + 8 * i).value
    dat = ctypes.c_void_p.from_address(data + 8 * i).value if data else None
    if not fn:
        return None
    x = _probe_values(d)
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        _call(fn, dat, x, out)
        want = uf(x)
    if not np.array_equal(out.view(np.uint8), want.view(np.uint8)):  # (NaNs' bits too)
        return None
    return fn, (dat or 0)


@functools.cache
def numba_function():
    """``uloop(fn, data, x, out)``: the loop at address ``fn`` over C-contiguous ``x`` into
    ``out`` (same dtype and size), as NumPy's ufunc call makes it; returns ``out``."""
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic
    i8p = ir.IntType(8).as_pointer()

    @intrinsic
    def call4(typingctx, fn, a, b, c, d):
        def gen(context, builder, sig, args):
            fnty = ir.FunctionType(ir.VoidType(), [i8p] * 4)
            ptrs = [builder.inttoptr(v, i8p) for v in args[1:]]
            builder.call(builder.inttoptr(args[0], fnty.as_pointer()), ptrs)
            return context.get_dummy_value()
        return types.void(types.int64, types.int64, types.int64, types.int64,
                          types.int64), gen

    @njit(nogil=True)
    def uloop(fn, data, x, out):
        buf = np.empty(5, np.int64)  # args[2], dimensions[1], steps[2]
        buf[0] = x.ctypes.data
        buf[1] = out.ctypes.data
        buf[2] = x.size
        buf[3] = x.itemsize
        buf[4] = out.itemsize
        p = buf.ctypes.data
        call4(fn, p, p + 16, p + 24, data)
        buf[0] = 0  # (a use after the call: numba frees an array after its last use)
        return out
    return uloop
