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
from typing import Sequence

import numpy as np

from taiji import _dtypes as dt
from taiji._core.interpreters import STATE
from taiji._prims import elementwise as E, structure as S, reduce as R, linalg as L
from taiji._prims import nn as NN

Tensor = None  # set by taiji.tensor

_SCALARS = (builtins.bool, builtins.int, builtins.float)

# ---------------------------------------------------------------- constants and casting


def const(array, like=None):
    """A Tensor holding a constant array; under a transform it becomes that transform's
    constant (a literal in a jit graph) rather than captured state."""
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


def _unary(prim, promote=True):
    if promote:
        def op(x):
            return prim(x if x.dtype.is_floating_point else to(x, dt.get_default_dtype()))
    else:
        def op(x):
            return prim(x)
    op.__name__ = prim.name
    return op


exp, log, log1p, expm1 = _unary(E.exp), _unary(E.log), _unary(E.log1p), _unary(E.expm1)
sqrt, rsqrt, sin, cos = _unary(E.sqrt), _unary(E.rsqrt), _unary(E.sin), _unary(E.cos)
tan, tanh, sigmoid, erf = _unary(E.tan), _unary(E.tanh), _unary(E.sigmoid), _unary(E.erf)
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
    soft = (maximum(bx, 0.0) + log1p(exp(-abs(bx)))) / beta if beta != 1.0 else \
        maximum(bx, 0.0) + log1p(exp(-abs(bx)))
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
    x = _float_in(x)
    axes = _dims(x, dim)
    m = R.reduce_max(x, axes=axes, keepdims=True).detach()
    m = where(isfinite(m), m, m.zeros_like())
    s = log(R.reduce_sum(exp(x - m), axes=axes, keepdims=True)) + m
    return s if keepdim else s.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))


def norm(x, p="fro", dim=None, keepdim=False):
    """Vector p-norm (p = 2, 1, inf, -inf, 0 or any number) over ``dim``."""
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
    x = _accumulating(x, dtype)
    return R.cumsum(x, axis=_dims(x, dim)[0] if x.ndim else 0) if x.ndim else x


def cumprod(x, dim, *, dtype=None):
    x = _accumulating(x, dtype)
    return R.cumprod(x, axis=_dims(x, dim)[0]) if x.ndim else x


def softmax(x, dim=-1, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``, stabilised by subtracting the max."""
    if dtype is not None:
        x = to(x, dtype)
    x = _float_in(x)
    return NN.softmax(x, axis=_dims(x, dim)[0] if x.ndim else 0)


def log_softmax(x, dim=-1, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably in one step."""
    if dtype is not None:
        x = to(x, dtype)
    x = _float_in(x)
    return NN.log_softmax(x, axis=_dims(x, dim)[0] if x.ndim else 0)


# ---------------------------------------------------------------- shapes

def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    if len(shape) == 1 and hasattr(shape[0], "__index__") is False and shape[0] is None:
        return ()
    return tuple(int(s) for s in shape)


def _infer(shape, numel, op="view"):
    shape = list(shape)
    if shape.count(-1) > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred (-1), got {shape}")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or numel % rest:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // rest
    if math.prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


def reshape(x, *shape):
    """``x`` with a new shape of the same size; one dimension may be -1."""
    shape = _infer(_shape_arg(shape), x.numel(), "reshape")
    if shape == x.shape:
        return x
    return S.reshape(x, shape=shape)


view = reshape


def view_as(x, other):
    return reshape(x, other.shape)


def reshape_as(x, other):
    return reshape(x, other.shape)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = _dims(x, start_dim)[0], _dims(x, end_dim)[0]
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x, dim, sizes):
    d = _dims(x, dim)[0]
    sizes = _infer(sizes, x.shape[d], "unflatten")
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def squeeze(x, dim=None):
    """Remove size-1 dimensions (all, or those named by ``dim``)."""
    if dim is None:
        axes = [i for i, n in enumerate(x.shape) if n == 1]
    else:
        axes = [a for a in _dims(x, dim) if x.shape[a] == 1]
    if not axes:
        return x
    return S.reshape(x, shape=tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x, dim):
    nd = x.ndim + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}]"
                         f", but got {dim})")
    d = dim % nd
    return S.reshape(x, shape=x.shape[:d] + (1,) + x.shape[d:])


def permute(x, *dims):
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {x.ndim} is not equal to len(dims) = {len(dims)}"
                           .replace("(sparse_coo)", ""))
    perm = tuple(d % x.ndim for d in dims) if x.ndim else ()
    if perm == tuple(range(x.ndim)):
        return x
    return S.transpose(x, perm=perm)


def transpose(x, dim0, dim1):
    if x.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return x
    a, b = _dims(x, dim0)[0], _dims(x, dim1)[0]
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


swapaxes = swapdims = transpose


def named(out, name: str):
    """Show ``out``'s grad_fn under PyTorch's name for the composite that made it."""
    node = out._node
    if node is not None:
        node.display = name
    return out


def t(x):
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return named(transpose(x, 0, 1), "T") if x.ndim == 2 else x


def movedim(x, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [s % x.ndim for s in src]
    dst = [d % x.ndim for d in dst]
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, order)


moveaxis = movedim


def expand(x, *sizes):
    """Broadcast ``x`` to ``sizes`` without copying; -1 keeps a dimension."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({x.ndim})")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    if shape == x.shape:
        return x
    return S.broadcast_to(x, shape=shape)


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, tuple(shape))


def broadcast_shapes(*shapes):
    from taiji._prims._util import broadcast_shapes as bs
    return bs(*[tuple(s) for s in shapes], op="broadcast_shapes")


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*[t.shape for t in tensors])
    return tuple(expand(t, shape) for t in tensors)


def cat(tensors: Sequence, dim=0):
    """Concatenate along ``dim`` (dtypes are promoted, as in PyTorch)."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    d = tensors[0].dtype
    for t_ in tensors[1:]:
        if t_.dtype is not d:
            d = dt.promote_types(d, t_.dtype)
    tensors = [to(t_, d) for t_ in tensors]
    if len(tensors) == 1:
        return tensors[0]
    axis = _dims(tensors[0], dim)[0]
    return S.concatenate(*tensors, axis=axis)


concat = concatenate = cat


def stack(tensors: Sequence, dim=0):
    """Join equally shaped tensors along a new dimension ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    s0 = tensors[0].shape
    for i, t_ in enumerate(tensors[1:], 1):
        if t_.shape != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} "
                               f"at entry 0 and {list(t_.shape)} at entry {i}")
    nd = len(s0) + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}]"
                         f", but got {dim})")
    return cat([unsqueeze(t_, dim) for t_ in tensors], dim)


def hstack(tensors):
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([t_ if t_.ndim > 1 else unsqueeze(t_, 0) for t_ in tensors], 0)


def narrow(x, dim, start, length):
    d = _dims(x, dim)[0]
    n = x.shape[d]
    if start < 0:
        start += n
    if not (0 <= start and start + length <= n and length >= 0):
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                         f"({n}) of dim {d}")
    spec = tuple((start, start + length, 1) if i == d else (0, s, 1)
                 for i, s in enumerate(x.shape))
    return S.slice_(x, spec=spec)


def select(x, dim, index):
    d = _dims(x, dim)[0]
    n = x.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{list(x.shape)} at dimension {d}")
    return squeeze(narrow(x, d, index % n, 1), d)


def split(x, split_size_or_sections, dim=0):
    """Split into chunks of a size, or of the listed sizes, along ``dim``."""
    d = _dims(x, dim)[0]
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise RuntimeError(f"split expects split_size be positive, got {step}")
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got split_sizes="
                               f"{sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(x, d, start, s))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    n = x.shape[_dims(x, dim)[0]]
    return split(x, builtins.max(1, -(-n // chunks)), dim)


def tensor_split(x, sections, dim=0):
    n = x.shape[_dims(x, dim)[0]]
    q, r = divmod(n, sections)
    return split(x, [q + 1] * r + [q] * (sections - r), dim)


def unbind(x, dim=0):
    d = _dims(x, dim)[0]
    return tuple(select(x, d, i) for i in range(x.shape[d]))


def flip(x, dims):
    dims = _dims(x, dims)
    return S.flip(x, dims=dims) if dims else x


def fliplr(x):
    return flip(x, 1)


def flipud(x):
    return flip(x, 0)


def roll(x, shifts, dims=None):
    """Shift elements cyclically along ``dims`` (flattened when None)."""
    if dims is None:
        return reshape(roll(reshape(x, -1), shifts, 0), x.shape)
    if isinstance(shifts, int):
        shifts, dims = (shifts,), (dims,) if isinstance(dims, int) else dims
    for s, d in zip(shifts, dims):
        d = _dims(x, d)[0]
        n = x.shape[d]
        s %= n
        if s:
            x = cat([narrow(x, d, n - s, s), narrow(x, d, 0, n - s)], d)
    return x


def repeat(x, *sizes):
    """Tile ``x`` ``sizes`` times along each dimension (torch.Tensor.repeat)."""
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    x = reshape(x, (1,) * (len(sizes) - x.ndim) + x.shape)
    # insert a broadcast axis before each dim, expand, then merge
    inter = []
    for n in x.shape:
        inter += [1, n]
    y = reshape(x, inter)
    big = []
    for r, n in zip(sizes, x.shape):
        big += [r, n]
    y = expand(y, big)
    return reshape(y, tuple(r * n for r, n in zip(sizes, x.shape)))


def tile(x, dims):
    dims = tuple(dims)
    if len(dims) < x.ndim:
        dims = (1,) * (x.ndim - len(dims)) + dims
    return repeat(x, dims)


def repeat_interleave(x, repeats, dim=None):
    if dim is None:
        x, dim = reshape(x, -1), 0
    d = _dims(x, dim)[0]
    y = unsqueeze(x, d + 1)
    shape = list(y.shape)
    shape[d + 1] = repeats
    y = expand(y, shape)
    return flatten(y, d, d + 1)


def pad(x, pad, mode="constant", value=0.0):
    """F.pad: ``pad`` lists (left, right) pairs from the last dimension backwards; negative
    amounts crop."""
    if mode != "constant":
        from taiji.nn.functional import _pad_mode
        return _pad_mode(x, pad, mode)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of amounts covering at most {x.ndim} "
                         f"dimensions, got {len(pad)}")
    cfg = [(0, 0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        cfg[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1], 0)
    crop = [(builtins.max(-lo, 0), n - builtins.max(-hi, 0), 1)
            for (lo, hi, _), n in zip(cfg, x.shape)]
    if builtins.any(c != (0, n, 1) for c, n in zip(crop, x.shape)):
        x = S.slice_(x, spec=tuple(crop))
    cfg = tuple((builtins.max(lo, 0), builtins.max(hi, 0), 0) for lo, hi, _ in cfg)
    if builtins.any(c != (0, 0, 0) for c in cfg):
        x = S.pad(x, cfg=cfg, value=value)
    return x


def contiguous(x, memory_format=None):
    return x


def clone(x, memory_format=None):
    """A copy with its own storage (differentiable)."""
    return x + scalar(0, x.dtype) if x.dtype is not dt.bool_ else logical_or(x, False)


def tril(x, diagonal=0):
    r, c = x.shape[-2:]
    mask = const(np.tri(r, c, diagonal, dtype=bool))
    return where(mask, x, x.zeros_like())


def triu(x, diagonal=0):
    r, c = x.shape[-2:]
    mask = const(~np.tri(r, c, diagonal - 1, dtype=bool))
    return where(mask, x, x.zeros_like())


# ---------------------------------------------------------------- linear algebra

def matmul(x, y):
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch dims."""
    if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
        raise TypeError(f"matmul: expected Tensors, got {type(x).__name__} and "
                        f"{type(y).__name__}")
    if x.dtype is not y.dtype:
        x, y = _operands(x, y)
    if x.ndim == 0 or y.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got "
                           f"{x.ndim}D and {y.ndim}D")
    if x.ndim >= 2 and y.ndim >= 2:
        n = y._node
        if n is not None and n.prim is S.transpose and n.params["perm"] == _swap_last(y.ndim):
            # `x @ w.T`: multiply by w with BLAS's transpose flag instead of through the
            # transposed view, so the backward pass needs no transposes either
            return L.matmul(x, n.inputs[0], tb=True)
        return L.matmul(x, y)
    if x.ndim == 1 and y.ndim == 1:
        if x.shape[0] != y.shape[0]:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{x.shape[0]}] and "
                               f"src [{y.shape[0]}] to have the same number of elements")
        return named(S.reshape(L.matmul(S.reshape(x, shape=(1, x.shape[0])),
                                        S.reshape(y, shape=(y.shape[0], 1))), shape=()), "Dot")
    if x.ndim == 1:
        out = L.matmul(S.reshape(x, shape=(1, x.shape[0])), y)
        return S.reshape(out, shape=out.shape[:-2] + out.shape[-1:])
    out = L.matmul(x, S.reshape(y, shape=(y.shape[0], 1)))
    return S.reshape(out, shape=out.shape[:-1])


def _swap_last(nd: int) -> tuple:
    return tuple(range(nd - 2)) + (nd - 1, nd - 2)


def mm(x, y):
    if x.ndim != 2 or y.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {x.ndim}D and {y.ndim}D")
    return matmul(x, y)


def bmm(x, y):
    if x.ndim != 3 or y.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got {x.ndim}D and {y.ndim}D")
    return matmul(x, y)


def dot(x, y):
    if x.ndim != 1 or y.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {x.ndim}D and {y.ndim}D tensors")
    return matmul(x, y)


vdot = inner = dot


def mv(x, v):
    return matmul(x, v)


def outer(x, y):
    """Outer product of two vectors."""
    return unsqueeze(x, 1) * unsqueeze(y, 0)


ger = outer


def einsum(equation: str, *operands):
    """Einstein summation: ``einsum('ij,jk->ik', a, b)``; '...' and implicit outputs work."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"einsum(): '{equation}' names {len(ins)} operands but "
                         f"{len(operands)} were given")
    letters = set(eq) - set(",->.")
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                if c not in letters)
    ell_n = builtins.max([t_.ndim - (len(s) - 3) for s, t_ in zip(ins, operands)
                          if "..." in s] or [0])
    ell = "".join(next(free) for _ in range(ell_n))
    new_ins = []
    for s, t_ in zip(ins, operands):
        if "..." in s:
            k = t_.ndim - (len(s) - 3)
            s = s.replace("...", ell[ell_n - k:] if k else "")
        new_ins.append(s)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {}
        for s in new_ins:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    d = operands[0].dtype
    for t_ in operands[1:]:
        d = dt.promote_types(d, t_.dtype)
    ops_ = [to(t_, d) for t_ in operands]
    return L.einsum(*ops_, spec=",".join(new_ins) + "->" + out)


def tensordot(a, b, dims=2):
    """Sum products over the last ``dims`` axes of ``a`` and first of ``b`` (or listed axes)."""
    if isinstance(dims, int):
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = [list(d) if isinstance(d, (list, tuple)) else [d] for d in dims]
    da = [d % a.ndim for d in da]
    db = [d % b.ndim for d in db]
    fa = [i for i in range(a.ndim) if i not in da]
    fb = [i for i in range(b.ndim) if i not in db]
    m = math.prod(a.shape[i] for i in fa)
    k = math.prod(a.shape[i] for i in da)
    n = math.prod(b.shape[i] for i in fb)
    a2 = reshape(permute(a, fa + da), (m, k))
    b2 = reshape(permute(b, db + fb), (k, n))
    return reshape(matmul(a2, b2), tuple(a.shape[i] for i in fa) + tuple(b.shape[i] for i in fb))


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` (BLAS's transpose flag: no transposed copy, no transpose op)."""
    if x.ndim >= 2 and weight.ndim == 2:
        if x.dtype is not weight.dtype:
            x, weight = _operands(x, weight)
        out = L.matmul(x, weight, tb=True)
    else:
        out = matmul(x, weight.mT if weight.ndim == 2 else weight)
    return out if bias is None else out + bias
