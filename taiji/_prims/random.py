"""Counter-based randomness: the Threefry-2x32 block cipher (Salmon et al., 2011, as JAX uses).

Random bits are a pure function of (key, counter), so a draw gives the same numbers eagerly,
under jit and under vmap. Keys, splits and distributions are composites in taiji.random.
"""
from __future__ import annotations

from taiji import _dtypes as dt
from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._util import broadcast_shapes, moveaxis_to_front

_ROT = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32_np(xp, k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds over uint32 arrays (broadcasting)."""
    u = xp.uint32
    k0, k1 = k0.astype(u), k1.astype(u)
    x0, x1 = xp.broadcast_arrays(x0.astype(u), x1.astype(u))
    x0, x1 = x0 + k0, x1 + k1
    ks = (k0, k1, k0 ^ k1 ^ u(0x1BD11BDA))
    for i in range(5):
        for r in _ROT[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << u(r)) | (x1 >> u(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + u(i + 1)
    return x0, x1


threefry2x32 = Primitive("threefry2x32", multiple_results=True, nondiff=True)


@threefry2x32.def_impl
def _threefry_impl(xp, k0, k1, x0, x1):
    with _quiet(xp):
        return threefry2x32_np(xp, k0, k1, x0, x1)


class _quiet:
    """NumPy may warn about uint32 wrap-around on scalars; wrap-around is the point."""

    def __init__(self, xp):
        self.xp = xp

    def __enter__(self):
        self.old = self.xp.seterr(over="ignore") if hasattr(self.xp, "seterr") else None

    def __exit__(self, *a):
        if self.old is not None:
            self.xp.seterr(**self.old)


@threefry2x32.def_shape
def _threefry_shape(k0, k1, x0, x1):
    for a in (k0, k1, x0, x1):
        if a.dtype is not dt.uint32:
            raise TypeError(f"threefry2x32: operands must be uint32, got {a.dtype}")
    s = broadcast_shapes(k0.shape, k1.shape, x0.shape, x1.shape, op="threefry2x32")
    return ShapedArray(s, dt.uint32), ShapedArray(s, dt.uint32)


@threefry2x32.def_batch
def _threefry_batch(ins, dims):
    nd = max(t.ndim - (d is not None) for t, d in zip(ins, dims))
    args = []
    for t, d in zip(ins, dims):
        if d is not None:
            t = moveaxis_to_front(t, d)
            for _ in range(nd - (t.ndim - 1)):
                t = t.unsqueeze(1)
        args.append(t)
    return threefry2x32(*args), (0, 0)
