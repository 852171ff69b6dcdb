"""The arithmetic behind taiji.backends.cublas, checked on the CPU: each plan is run by a
NumPy emulation of column-major cuBLAS reading raw memory (leading dimensions, transpose
flags, batch strides) and must give NumPy's product of the row-major views."""
import numpy as np
import pytest

from taiji.backends.cublas import OP_N, plan

RNG = np.random.default_rng(0)


def _in_buffer(view_of):
    """A random 1-D buffer and a view of it built by ``view_of(buffer)``."""
    buf = RNG.standard_normal(4096)
    return buf, view_of(buf)


def _offset(buf, v):
    return (v.__array_interface__["data"][0] - buf.__array_interface__["data"][0]) // 8


def _stored(buf, off, trans, rows, cols, ld):
    """``op(M)`` (rows x cols) for M stored column-major at ``off`` with leading dim ld."""
    sr, sc = (rows, cols) if trans == OP_N else (cols, rows)
    m = np.array([[buf[off + i + j * ld] for j in range(sc)] for i in range(sr)])
    return m if trans == OP_N else m.T


def _emulate(p, abuf, aoff, bbuf, boff):
    out = np.empty((p.count, p.m, p.n))
    for i in range(p.count):
        # column-major C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m), B passed first
        bt = _stored(bbuf, boff + i * p.b.stride, p.b.trans, p.n, p.k, p.b.ld)
        at = _stored(abuf, aoff + i * p.a.stride, p.a.trans, p.k, p.m, p.a.ld)
        out[i] = (bt @ at).T
    return out.reshape(p.batch + (p.m, p.n))


def _strides(v):
    return [s // 8 for s in v.strides]


CASES = {
    "contiguous": (lambda b: b[:12].reshape(3, 4), lambda b: b[:20].reshape(4, 5), 0, 0),
    "a transposed flag": (lambda b: b[:12].reshape(4, 3), lambda b: b[:20].reshape(4, 5), 1, 0),
    "b transposed flag": (lambda b: b[:12].reshape(3, 4), lambda b: b[:20].reshape(5, 4), 0, 1),
    "both flags": (lambda b: b[:12].reshape(4, 3), lambda b: b[:20].reshape(5, 4), 1, 1),
    "transposed views": (lambda b: b[:12].reshape(4, 3).T, lambda b: b[:20].reshape(5, 4).T,
                         0, 0),
    "view and flag cancel": (lambda b: b[:12].reshape(4, 3).T, lambda b: b[:15].reshape(3, 5),
                             1, 0),
    "row slices (ld > cols)": (lambda b: b[:40].reshape(5, 8)[1:4, 2:6],
                               lambda b: b[:60].reshape(6, 10)[:4, 3:8], 0, 0),
    "column slice of a transpose": (lambda b: b[:40].reshape(8, 5)[1:5, :3].T,
                                    lambda b: b[:20].reshape(4, 5), 0, 0),
    "one row": (lambda b: b[:4].reshape(1, 4), lambda b: b[:20].reshape(4, 5), 0, 0),
    "one column out": (lambda b: b[:12].reshape(3, 4), lambda b: b[:40].reshape(4, 10)[:, 3:4],
                       0, 0),
    "vector-like k=1": (lambda b: b[:3].reshape(3, 1), lambda b: b[:5].reshape(1, 5), 0, 0),
    "batched": (lambda b: b[:24].reshape(2, 3, 4), lambda b: b[:40].reshape(2, 4, 5), 0, 0),
    "batched, 2-D b broadcast": (lambda b: b[:36].reshape(3, 3, 4),
                                 lambda b: b[:20].reshape(4, 5), 0, 0),
    "2-D a over a batch, flags": (lambda b: b[:20].reshape(4, 5),
                                  lambda b: b[:72].reshape(3, 6, 4), 1, 1),
    "two batch axes": (lambda b: b[:96].reshape(2, 4, 3, 4), lambda b: b[:20].reshape(4, 5),
                       0, 0),
    "batch of size one broadcast": (lambda b: b[:12].reshape(1, 3, 4),
                                    lambda b: b[:60].reshape(3, 4, 5), 0, 0),
    "batched transposed views": (lambda b: b[:24].reshape(2, 4, 3).transpose(0, 2, 1),
                                 lambda b: b[:40].reshape(2, 4, 5), 0, 0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_reads_memory_as_numpy_does(name):
    make_a, make_b, ta, tb = CASES[name]
    abuf, a = _in_buffer(make_a)
    bbuf, b = _in_buffer(make_b)
    p = plan(a.shape, _strides(a), b.shape, _strides(b), bool(ta), bool(tb))
    assert p is not None, name
    want = np.matmul(a.swapaxes(-1, -2) if ta else a, b.swapaxes(-1, -2) if tb else b)
    got = _emulate(p, abuf, _offset(abuf, a), bbuf, _offset(bbuf, b))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,make_a,make_b", [
    ("no unit stride", lambda b: b[:48].reshape(6, 8)[::2, ::2], lambda b: b[:20].reshape(4, 5)),
    ("batch axes that broadcast against each other",
     lambda b: b[:24].reshape(2, 1, 3, 4), lambda b: b[:60].reshape(1, 3, 4, 5)),
    ("batch axes with no single stride", lambda b: b[:192].reshape(4, 4, 3, 4)[:, :2],
     lambda b: b[:20].reshape(4, 5)),
])
def test_plan_asks_for_a_copy(name, make_a, make_b):
    _, a = _in_buffer(make_a)
    _, b = _in_buffer(make_b)
    assert plan(a.shape, _strides(a), b.shape, _strides(b), False, False) is None, name


def test_plan_refuses_shapes_that_do_not_multiply():
    with pytest.raises(ValueError, match=r"inner dimensions differ \(4 vs 5\)"):
        plan((3, 4), (4, 1), (5, 6), (6, 1), False, False)
