"""The op layer: every Tensor operation, written once in primitives.

Functions here take Tensors (or Python scalars where PyTorch allows them), apply PyTorch's
type promotion and argument conventions, and bind primitives. Because a Tensor's payload may
be concrete or traced, the same code serves eager mode, jit, vmap and jvp. `taiji.tensor`
attaches these functions as Tensor methods; the public namespace re-exports them.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from taiji import _dtypes as dt
from taiji._core.interpreters import STATE
from taiji._prims import elementwise as E, reduce as R
from taiji._prims import nn as NN

Tensor = None  # set by taiji.tensor

_SCALARS = (builtins.bool, builtins.int, builtins.float)

# ---------------------------------------------------------------- constants and casting


def const(array, like=None):
    """A Tensor holding a constant array; under a transform it becomes that transform's
    constant (a literal in a jit graph) rather than captured state. With Tensor ``like``,
    a host array goes to ``like``'s device (jit literals stay on the host: the compiled
    program moves them)."""
    if like is not None and type(like._data) is not np.ndarray:
        from taiji._device import backend_for_payload
        be = backend_for_payload(like._data)
        if be.name != "cpu" and type(array) is np.ndarray:
            array = be.asarray(array)
    interp = STATE.interp
    if interp is None:
        return Tensor._from_payload(array)
    return Tensor._from_payload(interp.const(array))


def scalar(value, dtype, like=None) -> "Tensor":
    """A 0-d constant of ``dtype`` (integers wrap around like PyTorch's casts), on the
    device of tensor ``like`` when given (Python scalars follow the tensor they meet)."""
    try:
        a = np.asarray(value, dtype=dtype.np)
    except OverflowError:
        a = np.asarray(value).astype(dtype.np)
    if like is not None:
        p = like._data
        if type(p) is not np.ndarray and hasattr(p, "__array__") and \
                not hasattr(p, "concrete_error"):
            from taiji._device import backend_for_payload
            a = backend_for_payload(p).asarray(a)
    return const(a)


def to(x, dtype) -> "Tensor":
    """``x`` converted to ``dtype`` (no copy when it already has it)."""
    dtype = dt.to_dtype(dtype)
    if x.dtype is dtype:
        return x
    return E.convert(x, dtype=dtype)


def as_tensor_arg(x, dtype=None):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, _SCALARS):
        return scalar(x, dtype or dt._scalar_dtype(x))
    if isinstance(x, np.ndarray):
        return const(x)
    raise TypeError(f"expected a Tensor or a number, got {type(x).__name__}")


def _operands(a, b, float_result=False):
    """Promote ``a`` and ``b`` (Tensors or scalars) to one dtype, PyTorch's way."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype is b.dtype:
        d = a.dtype
    else:
        if not isinstance(a, (Tensor, *_SCALARS)):
            a = as_tensor_arg(a)
        if not isinstance(b, (Tensor, *_SCALARS)):
            b = as_tensor_arg(b)
        d = dt.result_type(a, b)
    if float_result and not d.is_floating_point:
        d = dt.get_default_dtype()
    a = to(a, d) if isinstance(a, Tensor) else scalar(a, d, b)
    b = to(b, d) if isinstance(b, Tensor) else scalar(b, d, a)
    return a, b


_CONSTS: dict = {}  # (value, dtype name) -> read-only 0-d array, for Python scalars


def _float_scalar(value: float, d):
    """A cached 0-d array holding Python float ``value`` in floating dtype ``d``."""
    key = (value, d.name)
    a = _CONSTS.get(key)
    if a is None:
        if len(_CONSTS) > 4096:
            _CONSTS.clear()
        a = np.asarray(value, dtype=d.np)
        a.flags.writeable = False
        _CONSTS[key] = a
    return a


def _binop(prim, float_result=False):
    def op(a, b):
        if isinstance(a, Tensor):
            if isinstance(b, Tensor):
                if a.dtype is b.dtype and (not float_result or a.dtype.is_floating_point):
                    return prim(a, b)
            elif b.__class__ is float and STATE.interp is None and \
                    type(a._data) is np.ndarray:
                d = a.dtype
                if d.is_floating_point:  # the common `x * 0.5`: no promotion work
                    return prim(a, Tensor._from_payload(_float_scalar(b, d)))
        elif a.__class__ is float and isinstance(b, Tensor) and STATE.interp is None and \
                type(b._data) is np.ndarray:
            d = b.dtype
            if d.is_floating_point:
                return prim(Tensor._from_payload(_float_scalar(a, d)), b)
        return prim(*_operands(a, b, float_result))
    op.__name__ = prim.name
    return op


_add, _sub, _mul = _binop(E.add), _binop(E.sub), _binop(E.mul)
div_ = _binop(E.div, float_result=True)
floor_divide = _binop(E.floordiv)
remainder = _binop(E.rem)
maximum = _binop(E.maximum)
minimum = _binop(E.minimum)
atan2 = _binop(E.atan2, float_result=True)
eq, ne, lt = _binop(E.eq), _binop(E.ne), _binop(E.lt)
le, gt, ge = _binop(E.le), _binop(E.gt), _binop(E.ge)
bitwise_and, bitwise_or, bitwise_xor = _binop(E.bit_and), _binop(E.bit_or), _binop(E.bit_xor)


def add(x, other, *, alpha=1):
    """``x + alpha * other``."""
    return _add(x, other if alpha == 1 else _mul(other, alpha))


def sub(x, other, *, alpha=1):
    """``x - alpha * other``."""
    return _sub(x, other if alpha == 1 else _mul(other, alpha))


def mul(x, other):
    return _mul(x, other)


def div(x, other, *, rounding_mode=None):
    """True division; ``rounding_mode`` 'floor' or 'trunc' as in PyTorch."""
    if rounding_mode is None:
        return div_(x, other)
    if rounding_mode == "floor":
        q = div_(x, other)
        return to(q.floor(), dt.result_type(x, other)) if not _is_float(x, other) else q.floor()
    if rounding_mode == "trunc":
        q = div_(x, other)
        return to(q.trunc(), dt.result_type(x, other)) if not _is_float(x, other) else q.trunc()
    raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


def _is_float(a, b):
    return dt.result_type(a, b).is_floating_point


def pow(x, exponent):
    """``x ** exponent`` with PyTorch's promotion (an int tensor to a float power is float)."""
    if STATE.autocast is not None:  # taiji.amp: runs in float32
        x, exponent = STATE.autocast.cast("pow", x, exponent)
    if isinstance(exponent, _SCALARS) and isinstance(x, Tensor):
        if exponent == 2 and x.dtype.is_floating_point:
            return x * x  # cheaper and exact; same derivative
        if exponent == 1:
            return x + 0 if x.requires_grad else x
    if isinstance(x, _SCALARS) and isinstance(exponent, Tensor):
        x, exponent = _operands(x, exponent)
        return E.pow_(x, exponent)
    return E.pow_(*_operands(x, exponent))


def true_divide(x, other):
    return div_(x, other)


def logical_and(x, y):
    return E.bit_and(to(as_tensor_arg(x), dt.bool_), to(as_tensor_arg(y), dt.bool_))


def logical_or(x, y):
    return E.bit_or(to(as_tensor_arg(x), dt.bool_), to(as_tensor_arg(y), dt.bool_))


def logical_xor(x, y):
    return E.bit_xor(to(as_tensor_arg(x), dt.bool_), to(as_tensor_arg(y), dt.bool_))


def logical_not(x):
    return E.invert(to(x, dt.bool_))


def bitwise_not(x):
    return E.invert(x)


def where(condition, x, y):
    """Elements of ``x`` where ``condition`` holds, else of ``y`` (broadcasting)."""
    c = to(as_tensor_arg(condition), dt.bool_)
    if isinstance(x, Tensor) and isinstance(y, Tensor) and x.dtype is y.dtype:
        return E.select(c, x, y)
    x, y = _operands(x, y)
    return E.select(c, x, y)


# ---------------------------------------------------------------- unary


def _float_in(x):
    return x if x.dtype.is_floating_point else to(x, dt.get_default_dtype())


def _unary(prim, promote=True, amp=None):
    if amp is not None:  # on taiji.amp's float32 list
        def op(x):
            if STATE.autocast is not None:
                x, = STATE.autocast.cast(amp, x)
            return prim(x if x.dtype.is_floating_point else to(x, dt.get_default_dtype()))
    elif promote:
        def op(x):
            return prim(x if x.dtype.is_floating_point else to(x, dt.get_default_dtype()))
    else:
        def op(x):
            return prim(x)
    op.__name__ = prim.name
    return op


exp, log = _unary(E.exp, amp="exp"), _unary(E.log, amp="log")
log1p, expm1 = _unary(E.log1p, amp="log1p"), _unary(E.expm1, amp="expm1")
sqrt, rsqrt = _unary(E.sqrt), _unary(E.rsqrt, amp="rsqrt")
sin, cos, tan = _unary(E.sin), _unary(E.cos), _unary(E.tan, amp="tan")
tanh, sigmoid, erf = _unary(E.tanh), _unary(E.sigmoid), _unary(E.erf)
neg, abs, sign = _unary(E.neg, False), _unary(E.abs_, False), _unary(E.sign, False)
relu = _unary(E.relu, False)
isnan, isinf, isfinite = _unary(E.isnan, False), _unary(E.isinf, False), _unary(E.isfinite, False)


def _rounding(prim):
    def op(x):
        return prim(x) if x.dtype.is_floating_point else x
    op.__name__ = prim.name
    return op


floor, ceil, trunc = _rounding(E.floor), _rounding(E.ceil), _rounding(E.trunc)


def round(x, decimals=0):
    """Round half to even, as PyTorch does; ``decimals`` shifts the rounding position."""
    if not x.dtype.is_floating_point:
        return x
    if decimals == 0:
        return E.round_(x)
    s = 10.0 ** decimals
    return E.round_(x * s) / s


def log2(x):
    return log(x) * (1.0 / math.log(2.0))


def log10(x):
    return log(x) * (1.0 / math.log(10.0))


def reciprocal(x):
    if STATE.autocast is not None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("reciprocal", x)
    x = _float_in(x)
    return E.div(scalar(1.0, x.dtype), x)


def square(x):
    return x * x


def gelu(x, approximate="none"):
    """Gaussian error linear unit; approximate='tanh' uses the tanh formula."""
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


def silu(x):
    return x * sigmoid(x)


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, linear above ``threshold`` (PyTorch's form)."""
    bx = x * beta if beta != 1.0 else x
    soft = maximum(bx, 0.0) + log1p(exp(-abs(bx)))  # stable for large |bx|
    if beta != 1.0:
        soft = soft / beta
    return where(bx > threshold, x, soft)


def clamp(x, min=None, max=None):
    """Clamp into [min, max]; either bound may be None, a number or a Tensor."""
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    out = x
    if min is not None:
        out = maximum(out, min)
    if max is not None:
        out = minimum(out, max)
    return out


clip = clamp


def clamp_min(x, min):
    return clamp(x, min=min)


def clamp_max(x, max):
    return clamp(x, max=max)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    fi = np.finfo(x.dtype.np) if x.dtype.is_floating_point else None
    if fi is None:
        return x
    posinf = float(fi.max) if posinf is None else posinf
    neginf = float(fi.min) if neginf is None else neginf
    out = where(isnan(x), scalar(nan, x.dtype), x)
    out = where(out == math.inf, scalar(posinf, x.dtype), out)
    return where(out == -math.inf, scalar(neginf, x.dtype), out)


def lerp(x, end, weight):
    return x + weight * (end - x)


# ---------------------------------------------------------------- reductions

def _dims(x, dim) -> tuple:
    if dim is None:
        return tuple(range(x.ndim))
    if isinstance(dim, int):
        dim = (dim,)
    nd = builtins.max(x.ndim, 1)
    out = []
    for d in dim:
        if not -nd <= d < nd:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-nd}, {nd - 1}], but got {d})")
        out.append(d % nd if x.ndim else 0)
    if x.ndim == 0:
        return ()
    return tuple(sorted(set(out)))


def _accumulating(x, dtype):
    """``x`` in the dtype a sum/product/scan accumulates in: ``dtype`` if given, else int64
    for bool and integer tensors (as PyTorch does), else its own."""
    if dtype is not None:
        return to(x, dtype)
    if not x.dtype.is_floating_point and x.dtype is not dt.int64:
        return to(x, dt.int64)
    return x


def sum(x, dim=None, keepdim=False, *, dtype=None):
    """Sum over ``dim`` (all by default); bool and integer tensors sum in int64."""
    if STATE.autocast is not None and dtype is None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("sum", x)
    x = _accumulating(x, dtype)
    return R.reduce_sum(x, axes=_dims(x, dim), keepdims=keepdim)


def mean(x, dim=None, keepdim=False, *, dtype=None):
    """Mean over ``dim``; needs a floating tensor (or ``dtype=``), as in PyTorch."""
    if dtype is not None:
        x = to(x, dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either "
                           f"a floating point or complex dtype. Got: {x.dtype.name}")
    axes = _dims(x, dim)
    n = math.prod(x.shape[a] for a in axes)
    s = R.reduce_sum(x, axes=axes, keepdims=keepdim)
    return s * (1.0 / n) if n else s / 0.0


def var(x, dim=None, *, correction=1, keepdim=False, unbiased=None):
    """Variance with Bessel's ``correction`` (1 by default, like PyTorch)."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = _dims(x, dim)
    n = math.prod(x.shape[a] for a in axes)
    d = x - mean(x, axes, keepdim=True)
    return sum(d * d, axes, keepdim=keepdim) / builtins.max(n - correction, 0)


def std(x, dim=None, *, correction=1, keepdim=False, unbiased=None):
    return sqrt(var(x, dim, correction=correction, keepdim=keepdim, unbiased=unbiased))


def var_mean(x, dim=None, *, correction=1, keepdim=False):
    return var(x, dim, correction=correction, keepdim=keepdim), mean(x, dim, keepdim=keepdim)


def std_mean(x, dim=None, *, correction=1, keepdim=False):
    return std(x, dim, correction=correction, keepdim=keepdim), mean(x, dim, keepdim=keepdim)


def prod(x, dim=None, keepdim=False, *, dtype=None):
    if STATE.autocast is not None and dtype is None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("prod", x)
    x = _accumulating(x, dtype)
    return R.reduce_prod(x, axes=_dims(x, dim), keepdims=keepdim)


def amax(x, dim=None, keepdim=False):
    _nonempty(x, "amax")
    return R.reduce_max(x, axes=_dims(x, () if dim == () else dim), keepdims=keepdim)


def amin(x, dim=None, keepdim=False):
    _nonempty(x, "amin")
    return R.reduce_min(x, axes=_dims(x, () if dim == () else dim), keepdims=keepdim)


def _nonempty(x, op):
    if x.numel() == 0:
        raise RuntimeError(f"{op}(): expected a non-empty tensor, got shape {list(x.shape)}")


MinMax = namedtuple("MinMax", ["values", "indices"])


def max(x, dim=None, keepdim=False):
    """max(x) -> value; max(x, dim) -> (values, indices); max(x, other) -> maximum."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    if dim is None:
        return amax(x)
    return MinMax(amax(x, dim, keepdim), argmax(x, dim, keepdim))


def min(x, dim=None, keepdim=False):
    """min(x) -> value; min(x, dim) -> (values, indices); min(x, other) -> minimum."""
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    if dim is None:
        return amin(x)
    return MinMax(amin(x, dim, keepdim), argmin(x, dim, keepdim))


def _arg(prim, x, dim, keepdim):
    if dim is None:
        return prim(x.reshape(-1), axis=0, keepdims=False) if x.ndim else prim(x, axis=0,
                                                                               keepdims=False)
    return prim(x, axis=_dims(x, dim)[0] if x.ndim else 0, keepdims=keepdim)


def argmax(x, dim=None, keepdim=False):
    return _arg(R.argmax, x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _arg(R.argmin, x, dim, keepdim)


def all(x, dim=None, keepdim=False):
    return R.reduce_min(to(x, dt.bool_), axes=_dims(x, dim), keepdims=keepdim)


def any(x, dim=None, keepdim=False):
    return R.reduce_max(to(x, dt.bool_), axes=_dims(x, dim), keepdims=keepdim)


def logsumexp(x, dim=None, keepdim=False):
    """log(sum(exp(x))) computed stably (the max is subtracted first)."""
    if STATE.autocast is not None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("logsumexp", x)
    x = _float_in(x)
    axes = _dims(x, dim)
    m = R.reduce_max(x, axes=axes, keepdims=True).detach()
    m = where(isfinite(m), m, m.zeros_like())
    s = log(R.reduce_sum(exp(x - m), axes=axes, keepdims=True)) + m
    return s if keepdim else s.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))


def norm(x, p="fro", dim=None, keepdim=False):
    """Vector p-norm (p = 2, 1, inf, -inf, 0 or any number) over ``dim``."""
    if STATE.autocast is not None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("norm", x)
    x = _float_in(x)
    if p in ("fro", 2, 2.0):
        s = sum(x * x, dim, keepdim)
        zero = s == 0
        safe = where(zero, s.ones_like(), s)  # the gradient of ||0|| is 0, not NaN
        return where(zero, s.zeros_like(), sqrt(safe))
    if p == 1:
        return sum(abs(x), dim, keepdim)
    if p in (math.inf, "inf"):
        return amax(abs(x), dim, keepdim)
    if p in (-math.inf, "-inf"):
        return amin(abs(x), dim, keepdim)
    if p == 0:
        return sum(to(x != 0, x.dtype), dim, keepdim)
    return pow(sum(pow(abs(x), p), dim, keepdim), 1.0 / p)


def cumsum(x, dim, *, dtype=None):
    if STATE.autocast is not None and dtype is None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("cumsum", x)
    x = _accumulating(x, dtype)
    return R.cumsum(x, axis=_dims(x, dim)[0] if x.ndim else 0) if x.ndim else x


def cumprod(x, dim, *, dtype=None):
    if STATE.autocast is not None and dtype is None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("cumprod", x)
    x = _accumulating(x, dtype)
    return R.cumprod(x, axis=_dims(x, dim)[0]) if x.ndim else x


def softmax(x, dim=-1, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``, stabilised by subtracting the max."""
    if STATE.autocast is not None and dtype is None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("softmax", x)
    if dtype is not None:
        x = to(x, dtype)
    x = _float_in(x)
    return NN.softmax(x, axis=_dims(x, dim)[0] if x.ndim else 0)


def log_softmax(x, dim=-1, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably in one step."""
    if STATE.autocast is not None and dtype is None:  # taiji.amp: runs in float32
        x, = STATE.autocast.cast("log_softmax", x)
    if dtype is not None:
        x = to(x, dtype)
    x = _float_in(x)
    return NN.log_softmax(x, axis=_dims(x, dim)[0] if x.ndim else 0)


# The rest of the op layer lives in two sibling modules (kept under ~800 lines each).
from taiji._shape_ops import (  # noqa: E402,F401  (re-exported: one op namespace)
    _shape_arg, _infer, reshape, view_as, reshape_as, flatten, unflatten, squeeze,
    unsqueeze, permute, transpose, named, t, movedim, expand, expand_as, broadcast_to,
    broadcast_shapes, broadcast_tensors, cat, stack, hstack, vstack, narrow, select, split,
    chunk, tensor_split, unbind, flip, fliplr, flipud, roll, repeat, tile,
    repeat_interleave, pad, contiguous, clone, tril, triu, view, swapaxes, swapdims,
    moveaxis, concat, concatenate,
)
from taiji._linalg_ops import (  # noqa: E402,F401  (re-exported: one op namespace)
    matmul, mm, bmm, dot, mv, outer, einsum, tensordot, linear, vdot, inner, ger,
)
