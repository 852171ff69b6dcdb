"""Small helpers shared by the primitive rule files."""
from __future__ import annotations

import math

import numpy as np

from taiji._core.primitive import ShapedArray


def broadcast_shapes(*shapes, op: str = "op") -> tuple:
    """NumPy broadcasting of shapes, with an error naming the op, both shapes and the axis."""
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        size = 1
        for s in shapes:
            d = s[axis] if -axis <= len(s) else 1
            if d != 1:
                if size != 1 and d != size:
                    raise RuntimeError(
                        f"{op}: shapes {' and '.join(str(tuple(x)) for x in shapes)} cannot be "
                        f"broadcast: dimension {axis} is {size} in one and {d} in the other "
                        f"(sizes must match or be 1)")
                size = d
        out.append(size)
    return tuple(out)


_SWAP_LAST = [tuple(range(n - 2)) + (n - 1, n - 2) if n >= 2 else () for n in range(8)]


def swap_last_perm(nd: int) -> tuple:
    """The permutation exchanging the last two of ``nd`` dims (cached for small nd)."""
    return _SWAP_LAST[nd] if nd < 8 else tuple(range(nd - 2)) + (nd - 1, nd - 2)


def same_dtype(op: str, *avals) -> None:
    d = avals[0].dtype
    for a in avals[1:]:
        if a.dtype is not d:
            raise TypeError(f"{op}: operands must have one dtype, got {d} and {a.dtype} "
                            f"(the op layer promotes them; call .to() to convert)")


def norm_axis(axis: int, ndim: int, op: str = "op") -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise IndexError(f"{op}: dimension {axis} is out of range for a tensor with "
                         f"{ndim} dimension(s) (expected {-max(ndim, 1)} to {max(ndim, 1) - 1})")
    return axis % ndim if ndim else 0


def aval(shape, dtype) -> ShapedArray:
    return ShapedArray(tuple(shape), dtype)


def moveaxis_to_front(t, d):
    """Tensor ``t`` with batch dim ``d`` moved to axis 0 (None: unchanged)."""
    if d is None or d == 0:
        return t
    return t.movedim(d, 0)


_ZEROS: dict = {}  # dtype -> the zero buffer zeros_view hands out views of


def zeros_view(shape: tuple, dtype) -> np.ndarray:
    """A read-only NumPy array of zeros of ``shape``: a view of one zero buffer per dtype.

    ``np.maximum(x, zeros)`` runs NumPy's vector loop; ``np.maximum(x, 0)`` broadcasts a
    scalar and takes a slower one (a 512 x 256 float32 ReLU: 20 against 50 us). The buffer
    comes from ``np.zeros`` (calloc) and is never written, so its pages all map the
    kernel's one zero page: it costs address space, not memory."""
    d = np.dtype(dtype)
    n = math.prod(shape)
    buf = _ZEROS.get(d)
    if buf is None or buf.size < n:
        buf = np.zeros(max(1 << 16, 1 << max(n - 1, 1).bit_length()), d)
        buf.flags.writeable = False
        _ZEROS[d] = buf
    return buf[:n].reshape(shape)
