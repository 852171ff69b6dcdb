"""Elementwise primitives: unary, binary (NumPy broadcasting), select, cast.

Derivatives are data: each differentiable op gives d(out)/d(input) as a function of Tensors,
from which both its VJP (g * d) and JVP (t * d) rules are built. Binary ops reduce broadcast
cotangents back to each input's shape.
"""
from __future__ import annotations

import math

import numpy as np

from taiji import _dtypes as dt
from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._util import broadcast_shapes, same_dtype, moveaxis_to_front, zeros_view

# ---------------------------------------------------------------- unary


def _unary_shape(x, **_):
    return x


def _zero_deriv(x, out):
    return None


def unary(name: str, impl, deriv=None, float_only: bool = False, bool_out: bool = False):
    """Define a unary elementwise primitive from its impl and its derivative rule."""
    p = Primitive(name, nondiff=deriv is None)

    p.def_impl(impl)

    if bool_out:
        p.def_shape(lambda x: ShapedArray(x.shape, dt.bool_))
    elif float_only:
        def shape(x):
            if not x.dtype.is_floating_point:
                raise TypeError(f"{name}: expected a floating tensor, got {x.dtype} "
                                f"(convert with .float())")
            return x
        p.def_shape(shape)
    else:
        p.def_shape(_unary_shape)

    if deriv is _zero_deriv:
        p.def_vjp(lambda g, ins, out: (g.zeros_like(),))
        p.def_jvp(lambda ts, ins, out: None)
    elif deriv is not None:
        p.def_vjp(lambda g, ins, out: (g * deriv(ins[0], out),))
        p.def_jvp(lambda ts, ins, out: None if ts[0] is None else ts[0] * deriv(ins[0], out))
    p.def_batch(lambda ins, dims: (p(ins[0]), dims[0]))
    return p


SQRT_PI = math.sqrt(math.pi)

neg = unary("neg", lambda xp, x: xp.negative(x), lambda x, y: -1.0)
exp = unary("exp", lambda xp, x: xp.exp(x), lambda x, y: y, float_only=True)
log = unary("log", lambda xp, x: xp.log(x), lambda x, y: x.reciprocal(), float_only=True)
log1p = unary("log1p", lambda xp, x: xp.log1p(x), lambda x, y: (x + 1.0).reciprocal(),
              float_only=True)
expm1 = unary("expm1", lambda xp, x: xp.expm1(x), lambda x, y: y + 1.0, float_only=True)
sqrt = unary("sqrt", lambda xp, x: xp.sqrt(x), lambda x, y: 0.5 / y, float_only=True)
rsqrt = unary("rsqrt", lambda xp, x: xp.reciprocal(xp.sqrt(x)),
              lambda x, y: -0.5 * y * y * y, float_only=True)
sin = unary("sin", lambda xp, x: xp.sin(x), lambda x, y: x.cos(), float_only=True)
cos = unary("cos", lambda xp, x: xp.cos(x), lambda x, y: -x.sin(), float_only=True)
tan = unary("tan", lambda xp, x: xp.tan(x), lambda x, y: 1.0 + y * y, float_only=True)
tanh = unary("tanh", lambda xp, x: xp.tanh(x), lambda x, y: 1.0 - y * y, float_only=True)


def _sigmoid(xp, x):
    # 1/(1+exp(-x)) overflows exp for x << 0; split by sign so neither branch overflows
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


sigmoid = unary("sigmoid", _sigmoid, lambda x, y: y * (1.0 - y), float_only=True)


def _erf_impl(xp, x):
    from taiji.backends import backend_of_array
    # 1-D in, reshaped out: the math.erf fallback (no SciPy) breaks on a 0-d array
    return backend_of_array(x).erf(x.reshape(-1)).reshape(x.shape)


erf = unary("erf", _erf_impl, lambda x, y: (2.0 / SQRT_PI) * (-(x * x)).exp(), float_only=True)


def _relu_impl(xp, x):
    if xp is np:  # (NumPy's vector loop wants two arrays: see zeros_view)
        return np.maximum(x, zeros_view(x.shape, x.dtype))
    return xp.maximum(x, 0, dtype=x.dtype)


relu = unary("relu", _relu_impl,
             lambda x, y: y.sign())  # the output is >= 0, so its sign is the 0/1 mask
abs_ = unary("abs", lambda xp, x: xp.abs(x), lambda x, y: x.sign())
sign = unary("sign", lambda xp, x: xp.sign(x), _zero_deriv)
floor = unary("floor", lambda xp, x: xp.floor(x), _zero_deriv)
ceil = unary("ceil", lambda xp, x: xp.ceil(x), _zero_deriv)
round_ = unary("round", lambda xp, x: xp.round(x), _zero_deriv)
trunc = unary("trunc", lambda xp, x: xp.trunc(x), _zero_deriv)
isnan = unary("isnan", lambda xp, x: xp.isnan(x), bool_out=True)
isinf = unary("isinf", lambda xp, x: xp.isinf(x), bool_out=True)
isfinite = unary("isfinite", lambda xp, x: xp.isfinite(x), bool_out=True)


def _invert_shape(x):
    if x.dtype.is_floating_point:
        raise TypeError(f"bitwise_not: expected a bool or integer tensor, got {x.dtype}")
    return x


invert = unary("invert", lambda xp, x: xp.invert(x))
invert.def_shape(_invert_shape)

# ---------------------------------------------------------------- cast


convert = Primitive("convert_element_type")


@convert.def_impl
def _convert_impl(xp, x, *, dtype):
    return dt.astype(x, dtype.np)


@convert.def_shape
def _convert_shape(x, *, dtype):
    return ShapedArray(x.shape, dtype)


@convert.def_vjp
def _convert_vjp(g, ins, out, *, dtype):
    x = ins[0]
    return (g.to(x.dtype) if x.dtype.is_floating_point else None,)


@convert.def_jvp
def _convert_jvp(ts, ins, out, *, dtype):
    return None if ts[0] is None or not dtype.is_floating_point else ts[0].to(dtype)


convert.def_batch(lambda ins, dims, *, dtype: (convert(ins[0], dtype=dtype), dims[0]))

# ---------------------------------------------------------------- binary


_reduce_sum = None  # taiji._prims.reduce imports this module: bind its reduce_sum lazily


def _load_reduce_sum():
    global _reduce_sum
    from taiji._prims.reduce import reduce_sum
    _reduce_sum = reduce_sum
    return reduce_sum


def unbroadcast(g, shape):
    """Sum cotangent ``g`` down to ``shape`` (undo NumPy broadcasting)."""
    if g.shape == tuple(shape):
        return g
    reduce_sum = _reduce_sum or _load_reduce_sum()
    shape = tuple(shape)
    lead = g.ndim - len(shape)
    inner = tuple(i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1)
    if not inner:  # only leading dims were added (a bias): one reduction, no reshape
        return reduce_sum(g, axes=tuple(range(lead)), keepdims=False)
    g = reduce_sum(g, axes=tuple(range(lead)) + inner, keepdims=True)
    return g.reshape(shape) if g.shape != shape else g


def _binary_batch(prim):
    def batch(ins, dims, **params):
        nd = max(t.ndim - (d is not None) for t, d in zip(ins, dims))
        args = []
        for t, d in zip(ins, dims):
            if d is None:
                args.append(t)
                continue
            t = moveaxis_to_front(t, d)
            for _ in range(nd - (t.ndim - 1)):
                t = t.unsqueeze(1)
            args.append(t)
        return prim(*args, **params), 0
    return batch


def binary(name: str, impl, dx=None, dy=None, bool_out: bool = False,
           nondiff: bool = False, int_only: bool = False):
    """Define a broadcasting binary primitive; dx/dy give partial derivatives
    (functions of x, y, out) or None where the input gets no gradient."""
    p = Primitive(name, nondiff=nondiff or bool_out)
    p.def_impl(impl)

    def shape(x, y):
        same_dtype(name, x, y)
        if int_only and x.dtype.is_floating_point:
            raise TypeError(f"{name}: expected bool or integer tensors, got {x.dtype}")
        return ShapedArray(broadcast_shapes(x.shape, y.shape, op=name),
                           dt.bool_ if bool_out else x.dtype)
    p.def_shape(shape)

    if dx is not None or dy is not None:
        def vjp(g, ins, out):
            x, y = ins
            gx = unbroadcast(_scale(g, dx, x, y, out), x.shape) \
                if dx and x.requires_grad else None
            gy = unbroadcast(_scale(g, dy, x, y, out), y.shape) \
                if dy and y.requires_grad else None
            return gx, gy

        def jvp(ts, ins, out):
            x, y = ins
            terms = []
            if ts[0] is not None and dx:
                terms.append(ts[0] * dx(x, y, out))
            if ts[1] is not None and dy:
                terms.append(ts[1] * dy(x, y, out))
            if not terms:
                return None
            t = terms[0] if len(terms) == 1 else terms[0] + terms[1]
            return t.expand(out.shape) if t.shape != out.shape else t
        p.def_vjp(vjp)
        p.def_jvp(jvp)
    p.def_batch(_binary_batch(p))
    return p


def _scale(g, d, x, y, out):
    """g * d(x, y, out), skipping the multiply for the constant derivatives +-1."""
    if d is _one:
        return g
    if d is _minus_one:
        return neg(g)
    return g * d(x, y, out)


def _one(x, y, out):
    return 1.0


def _minus_one(x, y, out):
    return -1.0


def _floordiv(xp, x, y):
    return xp.floor_divide(x, y)


add = binary("add", lambda xp, x, y: xp.add(x, y), _one, _one)
sub = binary("sub", lambda xp, x, y: xp.subtract(x, y), _one, _minus_one)
mul = binary("mul", lambda xp, x, y: xp.multiply(x, y), lambda x, y, o: y, lambda x, y, o: x)
div = binary("div", lambda xp, x, y: xp.true_divide(x, y), lambda x, y, o: y.reciprocal(),
             lambda x, y, o: -o / y)


def _pow_dy(x, y, out):
    # d/dy x**y = out * log(x); define 0 where x == 0 (as PyTorch does) instead of NaN
    return select(x == 0, out.zeros_like(), out * x.abs().log())


pow_ = binary("pow", lambda xp, x, y: xp.power(x, y),
              lambda x, y, o: select(y == 0, o.zeros_like(), y * x.pow(y - 1.0)), _pow_dy)


def _max_dx(x, y, out):
    # ties split the gradient evenly, as PyTorch's maximum does
    return (x > y).to(out.dtype) + 0.5 * (x == y).to(out.dtype)


def _max_dy(x, y, out):
    return (y > x).to(out.dtype) + 0.5 * (x == y).to(out.dtype)


maximum = binary("maximum", lambda xp, x, y: xp.maximum(x, y), _max_dx, _max_dy)
minimum = binary("minimum", lambda xp, x, y: xp.minimum(x, y),
                 lambda x, y, o: _max_dy(x, y, o), lambda x, y, o: _max_dx(x, y, o))
atan2 = binary("atan2", lambda xp, x, y: xp.arctan2(x, y),
               lambda x, y, o: y / (x * x + y * y), lambda x, y, o: -x / (x * x + y * y))
floordiv = binary("floordiv", _floordiv, nondiff=True)
rem = binary("rem", lambda xp, x, y: xp.mod(x, y), _one,
             lambda x, y, o: -(x / y).floor())

eq = binary("eq", lambda xp, x, y: xp.equal(x, y), bool_out=True)
ne = binary("ne", lambda xp, x, y: xp.not_equal(x, y), bool_out=True)
lt = binary("lt", lambda xp, x, y: xp.less(x, y), bool_out=True)
le = binary("le", lambda xp, x, y: xp.less_equal(x, y), bool_out=True)
gt = binary("gt", lambda xp, x, y: xp.greater(x, y), bool_out=True)
ge = binary("ge", lambda xp, x, y: xp.greater_equal(x, y), bool_out=True)
bit_and = binary("and", lambda xp, x, y: xp.bitwise_and(x, y), int_only=True, nondiff=True)
bit_or = binary("or", lambda xp, x, y: xp.bitwise_or(x, y), int_only=True, nondiff=True)
bit_xor = binary("xor", lambda xp, x, y: xp.bitwise_xor(x, y), int_only=True, nondiff=True)

# ---------------------------------------------------------------- select (where)

select = Primitive("select")


@select.def_impl
def _select_impl(xp, c, x, y):
    return xp.where(c, x, y)


@select.def_shape
def _select_shape(c, x, y):
    same_dtype("where", x, y)
    if c.dtype is not dt.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {c.dtype}")
    return ShapedArray(broadcast_shapes(c.shape, x.shape, y.shape, op="where"), x.dtype)


@select.def_vjp
def _select_vjp(g, ins, out):
    c, x, y = ins
    z = g.zeros_like()
    gx = unbroadcast(select(c, g, z), x.shape) if x.requires_grad else None
    gy = unbroadcast(select(c, z, g), y.shape) if y.requires_grad else None
    return None, gx, gy


@select.def_jvp
def _select_jvp(ts, ins, out):
    c, x, y = ins
    if ts[1] is None and ts[2] is None:
        return None
    tx = ts[1] if ts[1] is not None else out.zeros_like()
    ty = ts[2] if ts[2] is not None else out.zeros_like()
    return select(c, tx, ty).expand(out.shape)


select.def_batch(_binary_batch(select))

for _p in (add, sub, neg, convert):
    _p.vjp_reads_inputs = False
