"""NumPy's own ufunc loops called from native code (taiji/compiler/ufunc_loops.py): NumPy's
bits, so exp, log, tanh ... no longer cut a compiled program into segments."""
import re

import numpy as np
import pytest

import taiji
from taiji.compiler import blas, fusion, native, ufunc_loops

pytestmark = pytest.mark.skipif(not fusion._numba_available() or not ufunc_loops._layout_ok(),
                                reason="needs numba and a 64-bit CPython")


@pytest.fixture
def fresh_loops():
    ufunc_loops.loop.cache_clear()
    yield ufunc_loops
    ufunc_loops.loop.cache_clear()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("prim", sorted(ufunc_loops.LOOP_PRIMS))
def test_each_loop_is_found_and_reproduces_numpy_bit_for_bit(prim, dtype):
    found = ufunc_loops.loop(prim, dtype)
    assert found is not None, f"no loop for {prim} {np.dtype(dtype)}"
    fn, data = found
    uloop = ufunc_loops.numba_function()
    uf = ufunc_loops.LOOP_PRIMS[prim]
    rng = np.random.default_rng(3)
    # 2-D, an odd number of elements (a SIMD loop's tail), values over a wide range
    x = (rng.standard_normal((37, 29)) * np.exp(rng.uniform(-6, 4, (37, 29)))).astype(dtype)
    if prim in ("log", "log1p"):
        x = np.abs(x)
    out = uloop(fn, data, x, np.empty_like(x))
    with np.errstate(all="ignore"):
        want = uf(x)
    assert out.dtype == want.dtype and out.shape == want.shape
    assert np.array_equal(out.view(np.uint8), want.view(np.uint8))


def test_no_loop_where_there_is_none_to_take(fresh_loops):
    assert fresh_loops.loop("exp", np.int32) is None        # not a float loop of ours
    assert fresh_loops.loop("exp", np.float16) is None
    assert fresh_loops.loop("add", np.float32) is None      # binary: numba's add is exact
    assert fresh_loops.loop("cumsum", np.float32) is None


def test_a_struct_that_disagrees_with_the_ufunc_gives_no_loop(fresh_loops, monkeypatch):
    # another object header size (a debug or free-threaded build): the fields read are
    # not the ufunc's nin/nout/nargs, and nothing is called
    monkeypatch.setattr(fresh_loops, "_HEAD", 24)
    assert fresh_loops._table(np.exp) is None
    assert fresh_loops.loop("exp", np.float32) is None
    monkeypatch.setattr(fresh_loops, "_HEAD", 16)
    fresh_loops.loop.cache_clear()
    assert fresh_loops.loop("exp", np.float32) is not None


def test_a_loop_that_computes_other_bits_is_refused(fresh_loops, monkeypatch):
    # the check runs the loop against the ufunc: a table whose loops are all expm1's
    fn_expm1 = fresh_loops.loop("expm1", np.float32)
    assert fn_expm1 is not None
    monkeypatch.setattr(fresh_loops, "_table", lambda uf: _table_with(uf, fn_expm1[0]))
    assert fresh_loops.loop("exp", np.float32) is None
    assert fresh_loops.loop("expm1", np.float32) == fn_expm1  # (cached, checked before)
    assert fresh_loops.loop("expm1", np.float64) is None       # float32's loop on doubles


def _table_with(uf, fn):
    """A ``_table`` whose every loop is the function at ``fn``."""
    import ctypes
    funcs = (ctypes.c_void_p * uf.ntypes)(*([fn] * uf.ntypes))
    _table_with.keep = funcs
    sigs = [tuple(np.dtype(c).num for c in t.replace("->", "")) for t in uf.types]
    return ctypes.addressof(funcs), None, sigs


@pytest.mark.skipif(not blas.blas(), reason="needs NumPy's OpenBLAS")
def test_a_program_with_transcendentals_is_one_segment_with_numpys_bits(kernels, monkeypatch):

    def f(x, w):
        h = taiji.tanh(x @ w) * 2.0 + 0.5
        e = taiji.exp(h - 1.0)
        return (taiji.log(e + 1.0) @ w.T).sum(0) + taiji.log1p(h * h).sum(0) + \
            taiji.sin(h).sum(0) * taiji.cos(h).sum(0)

    rng = np.random.default_rng(4)
    x = taiji.tensor(rng.standard_normal((16, 12)).astype(np.float32))
    w = taiji.tensor(rng.standard_normal((12, 12)).astype(np.float32) * 0.3)
    monkeypatch.setattr(native, "enabled", False)
    python_tier = taiji.jit(f)
    ref = python_tier(x, w).numpy().copy()
    monkeypatch.setattr(native, "enabled", True)
    jf = taiji.jit(f)
    first = jf(x, w).numpy().copy()
    jf(x, w)
    fusion.wait_for_kernels(120)
    src = jf.lower(x, w).native_source
    assert src is not None
    assert len(re.findall(r"= _n\d+\(", src)) == 1, src
    for name in ("exp", "log", "log1p", "tanh", "sin", "cos"):
        assert f"_np.{name}(" not in src
    out = jf(x, w).numpy()
    assert np.array_equal(out, first) and np.array_equal(out, ref)
    np.testing.assert_allclose(out, f(x, w).numpy(), rtol=1e-5)
