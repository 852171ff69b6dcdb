"""The jax.numpy-style namespace: ``import taiji.numpy as jnp``.

NumPy's names and argument conventions (``axis=``, ``keepdims=``, ``dtype=``) over taiji
Tensors, so functions written against ``jax.numpy`` run under taiji's transforms (grad, vmap,
jvp, jit). Like JAX with x64 off, Python floats and float64 NumPy data become ``float32``
unless ``dtype=`` says otherwise; integers stay ``int64`` (taiji's index dtype).

Example:
    >>> import taiji.numpy as jnp
    >>> x = jnp.arange(6.0).reshape(2, 3)
    >>> jnp.sum(x, axis=1, keepdims=True).shape
    (2, 1)
    >>> y = x.at[0, 1].set(10.0)   # functional update: x is unchanged
"""
from __future__ import annotations

import builtins
import math
from typing import Any, Sequence

import numpy as np

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji import _creation as C
from taiji import _indexing as I
from taiji.tensor import Tensor

ndarray = Array = Tensor

# ---------------------------------------------------------------- dtypes and constants
float16, bfloat16, float32, float64 = dt.float16, dt.bfloat16, dt.float32, dt.float64
int8, int16, int32, int64, uint8, uint32 = dt.int8, dt.int16, dt.int32, dt.int64, dt.uint8, \
    dt.uint32
bool_ = dt.bool_
float_, int_ = dt.float32, dt.int64
pi, e, inf, nan, euler_gamma = math.pi, math.e, math.inf, math.nan, np.euler_gamma
newaxis = None


def _dtype(d):
    return None if d is None else dt.to_dtype(d)


def asarray(a: Any, dtype: Any = None) -> Tensor:
    """``a`` as a Tensor (no copy when it already is one of the right dtype).

    Args:
        a: a Tensor, NumPy array, number or nested list.
        dtype: the result dtype; by default float64 data becomes float32 (JAX, x64 off).

    Returns:
        A Tensor.

    Example:
        >>> asarray([1.0, 2.0]).dtype
        taiji.float32
    """
    d = _dtype(dtype)
    if isinstance(a, Tensor):
        return a if d is None or a.dtype is d else O.to(a, d)
    if isinstance(a, (list, tuple)) and builtins.any(isinstance(v, Tensor) for v in a):
        return stack([asarray(v, dtype) for v in a])
    arr = np.asarray(a)
    if d is None:
        if arr.dtype == np.float64:
            d = dt.float32
        elif arr.dtype.kind == "i":
            d = dt.int64
        else:
            d = dt._BY_NP[arr.dtype]
    return O.const(np.array(arr, dtype=d.np, order="C"))  # ascontiguousarray makes 0-d 1-d


def array(a: Any, dtype: Any = None, copy: bool = True) -> Tensor:
    """Like `asarray`, copying Tensors (JAX arrays are immutable, so this is cheap)."""
    t = asarray(a, dtype)
    return O.clone(t) if copy and t is a else t


def zeros(shape, dtype=None) -> Tensor:
    """An array of zeros (float32 by default)."""
    return C.zeros(_shape(shape), dtype=_dtype(dtype))


def ones(shape, dtype=None) -> Tensor:
    """An array of ones (float32 by default)."""
    return C.ones(_shape(shape), dtype=_dtype(dtype))


def empty(shape, dtype=None) -> Tensor:
    """Zeros (taiji never hands out uninitialised memory)."""
    return zeros(shape, dtype)


def full(shape, fill_value, dtype=None) -> Tensor:
    """An array filled with ``fill_value`` (dtype inferred from the value by default)."""
    if dtype is None:
        dtype = dt.float32 if isinstance(fill_value, float) else None
    return C.full(_shape(shape), fill_value, dtype=_dtype(dtype))


def zeros_like(a, dtype=None) -> Tensor:
    return C.zeros_like(asarray(a), dtype=_dtype(dtype))


def ones_like(a, dtype=None) -> Tensor:
    return C.ones_like(asarray(a), dtype=_dtype(dtype))


def full_like(a, fill_value, dtype=None) -> Tensor:
    return C.full_like(asarray(a), fill_value, dtype=_dtype(dtype))


def empty_like(a, dtype=None) -> Tensor:
    return zeros_like(a, dtype)


def arange(start, stop=None, step=1, dtype=None) -> Tensor:
    """Evenly spaced values in [start, stop) (NumPy's ``arange``)."""
    return C.arange(start, stop, step, dtype=_dtype(dtype))


def linspace(start, stop, num: int = 50, endpoint: bool = True, dtype=None) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    d = _dtype(dtype) or dt.float32
    return O.const(np.linspace(start, stop, num, endpoint=endpoint).astype(d.np))


def eye(N: int, M: int | None = None, k: int = 0, dtype=None) -> Tensor:
    """A 2-D array with ones on the ``k``-th diagonal."""
    d = _dtype(dtype) or dt.float32
    return O.const(np.eye(N, M, k, dtype=d.np))


def identity(n: int, dtype=None) -> Tensor:
    return eye(n, dtype=dtype)


def _shape(shape) -> tuple:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def shape(a) -> tuple:
    return tuple(asarray(a).shape)


def ndim(a) -> int:
    return asarray(a).ndim


def size(a) -> int:
    return asarray(a).numel()

# ---------------------------------------------------------------- elementwise


def _u(fn):
    def f(x, /):
        return fn(asarray(x))
    f.__name__ = fn.__name__
    f.__doc__ = f"Elementwise ``{fn.__name__}`` (NumPy semantics)."
    return f


exp, log, log1p, expm1, sqrt, tanh = _u(O.exp), _u(O.log), _u(O.log1p), _u(O.expm1), \
    _u(O.sqrt), _u(O.tanh)
sin, cos, tan, abs, sign = _u(O.sin), _u(O.cos), _u(O.tan), _u(O.abs), _u(O.sign)
floor, ceil, negative, square = _u(O.floor), _u(O.ceil), _u(O.neg), _u(O.square)
isnan, isinf, isfinite, log2, log10 = _u(O.isnan), _u(O.isinf), _u(O.isfinite), _u(O.log2), \
    _u(O.log10)
reciprocal, logical_not, rsqrt = _u(O.reciprocal), _u(O.logical_not), _u(O.rsqrt)
absolute, fabs = abs, abs


def _b(fn, name):
    def f(x1, x2, /):
        a, b = _pair(x1, x2)
        return fn(a, b)
    f.__name__ = name
    f.__doc__ = f"Elementwise ``{name}`` with broadcasting (NumPy semantics)."
    return f


def _pair(a, b):
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return asarray(a), asarray(b)
    if not isinstance(a, (Tensor, int, float, bool)):
        a = asarray(a)
    if not isinstance(b, (Tensor, int, float, bool)):
        b = asarray(b)
    if not isinstance(a, Tensor):
        a = O.scalar(a, dt.result_type(a, b))
    return a, b


add, subtract, multiply = _b(O.add, "add"), _b(O.sub, "subtract"), _b(O.mul, "multiply")
divide = true_divide = _b(O.true_divide, "divide")
power, maximum, minimum = _b(O.pow, "power"), _b(O.maximum, "maximum"), _b(O.minimum, "minimum")
arctan2, floor_divide, mod = _b(O.atan2, "arctan2"), _b(O.floor_divide, "floor_divide"), \
    _b(O.remainder, "mod")
remainder = mod
equal, not_equal, less = _b(O.eq, "equal"), _b(O.ne, "not_equal"), _b(O.lt, "less")
less_equal, greater, greater_equal = _b(O.le, "less_equal"), _b(O.gt, "greater"), \
    _b(O.ge, "greater_equal")
logical_and, logical_or = _b(O.logical_and, "logical_and"), _b(O.logical_or, "logical_or")


def logaddexp(x1, x2) -> Tensor:
    """``log(exp(x1) + exp(x2))``, computed stably."""
    a, b = _pair(x1, x2)
    m = O.maximum(a, b)
    m = O.where(O.isfinite(m), m, m.zeros_like())
    return m + O.log(O.exp(a - m) + O.exp(b - m))


def where(condition, x=None, y=None) -> Tensor:
    """``x`` where ``condition`` else ``y`` (broadcasting; scalars allowed)."""
    if x is None or y is None:
        raise ValueError("taiji.numpy.where needs x and y: the one-argument form has a "
                         "data-dependent shape (use nonzero outside transforms)")
    c = asarray(condition)
    if c.dtype is not dt.bool_:
        c = c != 0
    return O.where(c, x if isinstance(x, (Tensor, int, float)) else asarray(x),
                   y if isinstance(y, (Tensor, int, float)) else asarray(y))


def clip(a, a_min=None, a_max=None, *, min=None, max=None) -> Tensor:
    """Clamp ``a`` into [min, max] (either bound may be None)."""
    lo = a_min if min is None else min
    hi = a_max if max is None else max
    return O.clamp(asarray(a), lo, hi)

# ---------------------------------------------------------------- reductions


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def sum(a, axis=None, dtype=None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (all axes when None)."""
    return O.sum(asarray(a), _axis(axis), keepdims, dtype=_dtype(dtype))


def mean(a, axis=None, dtype=None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    a = asarray(a)
    if not a.dtype.is_floating_point and dtype is None:
        dtype = dt.float32
    return O.mean(a, _axis(axis), keepdims, dtype=_dtype(dtype))


def prod(a, axis=None, dtype=None, keepdims: bool = False) -> Tensor:
    return O.prod(asarray(a), _axis(axis), keepdims, dtype=_dtype(dtype))


def max(a, axis=None, keepdims: bool = False) -> Tensor:
    """The maximum over ``axis`` (values only, as in NumPy)."""
    return O.amax(asarray(a), _axis(axis), keepdims)


def min(a, axis=None, keepdims: bool = False) -> Tensor:
    """The minimum over ``axis`` (values only, as in NumPy)."""
    return O.amin(asarray(a), _axis(axis), keepdims)


amax, amin = max, min


def argmax(a, axis=None, keepdims: bool = False) -> Tensor:
    return O.argmax(asarray(a), axis, keepdims)


def argmin(a, axis=None, keepdims: bool = False) -> Tensor:
    return O.argmin(asarray(a), axis, keepdims)


def var(a, axis=None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """Variance (``ddof=0`` by default, as in NumPy)."""
    return O.var(asarray(a), _axis(axis), correction=ddof, keepdim=keepdims)


def std(a, axis=None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    return O.std(asarray(a), _axis(axis), correction=ddof, keepdim=keepdims)


def all(a, axis=None, keepdims: bool = False) -> Tensor:
    return O.all(asarray(a), _axis(axis), keepdims)


def any(a, axis=None, keepdims: bool = False) -> Tensor:
    return O.any(asarray(a), _axis(axis), keepdims)


def cumsum(a, axis=None, dtype=None) -> Tensor:
    """Cumulative sum along ``axis`` (of the flattened array when None)."""
    a = asarray(a)
    if axis is None:
        a, axis = a.reshape(-1), 0
    return O.cumsum(a, axis, dtype=_dtype(dtype))


def cumprod(a, axis=None, dtype=None) -> Tensor:
    a = asarray(a)
    if axis is None:
        a, axis = a.reshape(-1), 0
    return O.cumprod(a, axis, dtype=_dtype(dtype))


def sort(a, axis: int = -1) -> Tensor:
    """Sorted values along ``axis``."""
    return I.sort(asarray(a), axis)[0]


def argsort(a, axis: int = -1) -> Tensor:
    return I.argsort(asarray(a), axis)

# ---------------------------------------------------------------- linear algebra


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's broadcasting and 1-D rules."""
    return O.matmul(asarray(a), asarray(b))


def dot(a, b) -> Tensor:
    """NumPy's ``dot``: scalars multiply, 1-D/2-D are inner/matrix products, and N-D sums
    over the last axis of ``a`` and the second-to-last of ``b``."""
    a, b = asarray(a), asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim <= 2:
        return O.matmul(a, b)
    return O.tensordot(a, b, ([a.ndim - 1], [b.ndim - 2]))


def vdot(a, b) -> Tensor:
    return O.sum(asarray(a).reshape(-1) * asarray(b).reshape(-1))


def inner(a, b) -> Tensor:
    a, b = asarray(a), asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return O.tensordot(a, b, ([a.ndim - 1], [b.ndim - 1]))


def outer(a, b) -> Tensor:
    """The outer product of the flattened inputs."""
    return O.outer(asarray(a).reshape(-1), asarray(b).reshape(-1))


def tensordot(a, b, axes=2) -> Tensor:
    return O.tensordot(asarray(a), asarray(b), axes)


def einsum(subscripts: str, *operands) -> Tensor:
    """Einstein summation (``'ij,jk->ik'``; ellipses allowed)."""
    return O.einsum(subscripts, *[asarray(o) for o in operands])


def trace(a, offset: int = 0) -> Tensor:
    a = asarray(a)
    n = builtins.min(a.shape[0], a.shape[1] - offset) if offset >= 0 else \
        builtins.min(a.shape[0] + offset, a.shape[1])
    rows = np.arange(n) + builtins.max(-offset, 0)
    cols = np.arange(n) + builtins.max(offset, 0)
    return O.sum(a[O.const(rows), O.const(cols)])

# ---------------------------------------------------------------- shapes


def reshape(a, newshape=None, order: str = "C", *, shape=None) -> Tensor:
    """``a`` with a new shape (one entry may be -1)."""
    s = shape if shape is not None else newshape
    return O.reshape(asarray(a), _shape(s))


def ravel(a) -> Tensor:
    return asarray(a).reshape(-1)


def transpose(a, axes: Sequence[int] | None = None) -> Tensor:
    """Permute the axes (reverse them when ``axes`` is None)."""
    a = asarray(a)
    return O.permute(a, tuple(range(a.ndim))[::-1] if axes is None else tuple(axes))


def swapaxes(a, axis1: int, axis2: int) -> Tensor:
    return O.transpose(asarray(a), axis1, axis2)


def moveaxis(a, source, destination) -> Tensor:
    return O.movedim(asarray(a), source, destination)


def squeeze(a, axis=None) -> Tensor:
    a = asarray(a)
    if axis is None:
        return O.squeeze(a)
    for ax in sorted((axis,) if isinstance(axis, int) else tuple(a_ % a.ndim for a_ in axis),
                     reverse=True):
        if a.shape[ax] != 1:
            raise ValueError(f"cannot select an axis to squeeze out which has size not equal "
                             f"to one (axis {ax} of shape {tuple(a.shape)})")
        a = O.squeeze(a, ax)
    return a


def expand_dims(a, axis) -> Tensor:
    a = asarray(a)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = a.ndim + len(axes)
    for ax in sorted(x % nd for x in axes):
        a = O.unsqueeze(a, ax)
    return a


def broadcast_to(a, shape) -> Tensor:
    return O.broadcast_to(asarray(a), _shape(shape))


def concatenate(arrays: Sequence, axis: int | None = 0) -> Tensor:
    """Join arrays along an existing axis (flattened first when ``axis`` is None)."""
    ts = [asarray(x) for x in arrays]
    if axis is None:
        ts, axis = [t.reshape(-1) for t in ts], 0
    return O.cat(ts, axis)


def stack(arrays: Sequence, axis: int = 0) -> Tensor:
    """Join arrays along a new axis."""
    return O.stack([asarray(x) for x in arrays], axis)


def hstack(arrays: Sequence) -> Tensor:
    return O.hstack([asarray(x) for x in arrays])


def vstack(arrays: Sequence) -> Tensor:
    ts = [asarray(x) for x in arrays]
    return O.vstack([t.reshape(1, -1) if t.ndim == 1 else t for t in ts])


def split(a, indices_or_sections, axis: int = 0) -> list:
    a = asarray(a)
    n = a.shape[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError("array split does not result in an equal division")
        return list(O.split(a, n // indices_or_sections, axis))
    bounds = [0] + list(indices_or_sections) + [n]
    return [O.narrow(a, axis, lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


def flip(a, axis=None) -> Tensor:
    a = asarray(a)
    dims = tuple(range(a.ndim)) if axis is None else \
        ((axis,) if isinstance(axis, int) else tuple(axis))
    return O.flip(a, dims)


def tile(a, reps) -> Tensor:
    return O.tile(asarray(a), _shape(reps))


def repeat(a, repeats: int, axis: int | None = None) -> Tensor:
    return O.repeat_interleave(asarray(a), repeats, axis)


def tril(m, k: int = 0) -> Tensor:
    return O.tril(asarray(m), k)


def triu(m, k: int = 0) -> Tensor:
    return O.triu(asarray(m), k)

# ---------------------------------------------------------------- indexing


def take(a, indices, axis: int | None = None) -> Tensor:
    """Elements of ``a`` at ``indices`` along ``axis`` (of the flattened array when None);
    negative indices count from the end."""
    a, idx = asarray(a), asarray(indices)
    if axis is None:
        a, axis = a.reshape(-1), 0
    from taiji._prims import structure as S
    ax = axis % a.ndim
    n = a.shape[ax]
    idx = O.to(idx, dt.int64)
    idx = O.where(idx < 0, idx + n, idx)
    return S.take(a, idx, axis=ax)


def take_along_axis(arr, indices, axis: int | None) -> Tensor:
    """NumPy's ``take_along_axis`` (indices broadcast against ``arr``)."""
    a, idx = asarray(arr), asarray(indices)
    if axis is None:
        return I.take_along_dim(a, idx, None)
    ax = axis % a.ndim
    idx = O.to(idx, dt.int64)
    idx = O.where(idx < 0, idx + a.shape[ax], idx)
    return I.take_along_dim(a, idx, ax)


class _AtRef:
    def __init__(self, x: Tensor, idx):
        self.x, self.idx = x, idx

    def get(self) -> Tensor:
        return self.x[self.idx]

    def set(self, values) -> Tensor:
        """A copy of the array with ``values`` written at the index."""
        y = O.clone(self.x)
        y[self.idx] = values
        return y

    def add(self, values) -> Tensor:
        """A copy with ``values`` added at the index (a repeated index adds once)."""
        return self.set(self.x[self.idx] + values)

    def multiply(self, values) -> Tensor:
        return self.set(self.x[self.idx] * values)

    mul = multiply

    def min(self, values) -> Tensor:
        return self.set(O.minimum(self.x[self.idx], asarray(values, self.x.dtype)))

    def max(self, values) -> Tensor:
        return self.set(O.maximum(self.x[self.idx], asarray(values, self.x.dtype)))


class _AtIndexer:
    """``x.at[idx].set(v)`` and friends: functional updates (JAX's ``.at``)."""

    def __init__(self, x: Tensor):
        self.x = x

    def __getitem__(self, idx) -> _AtRef:
        return _AtRef(self.x, idx)


def at(x: Tensor) -> _AtIndexer:
    """The ``.at`` updater of ``x`` (also available as ``x.at``)."""
    return _AtIndexer(x)


if not hasattr(Tensor, "at"):
    Tensor.at = property(_AtIndexer)  # x.at[i].set(v): a new tensor, x unchanged
