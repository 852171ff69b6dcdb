"""Reductions and scans: sum, max, min, prod, argmax, argmin, cumsum, cumprod, argsort.

Reductions take normalised `axes` (a sorted tuple) and `keepdims`.
"""
from __future__ import annotations

from taiji import _dtypes as dt
from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._util import moveaxis_to_front
from taiji._prims.structure import broadcast_to


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _keep(g, x_shape, axes, keepdims):
    """Cotangent of a reduction, reshaped so it broadcasts against the input."""
    if keepdims:
        return g
    return g.reshape(_reduced_shape(x_shape, axes, True))


def _batch_axes(axes):
    return tuple(a + 1 for a in axes)


def reduction(name, impl, vjp=None, jvp=None, out_dtype=None, nondiff=False):
    p = Primitive(name, nondiff=nondiff)
    p.def_impl(impl)

    def shape(x, *, axes, keepdims):
        for a in axes:
            if not 0 <= a < max(x.ndim, 1):
                raise IndexError(f"{name}: dimension {a} out of range for shape {list(x.shape)}")
        return ShapedArray(_reduced_shape(x.shape, axes, keepdims),
                           out_dtype(x.dtype) if out_dtype else x.dtype)
    p.def_shape(shape)
    if vjp:
        p.def_vjp(vjp)
    if jvp:
        p.def_jvp(jvp)

    def batch(ins, dims, *, axes, keepdims):
        x = moveaxis_to_front(ins[0], dims[0])
        return p(x, axes=_batch_axes(axes), keepdims=keepdims), 0
    p.def_batch(batch)
    return p


def _sum_impl(xp, x, *, axes, keepdims):
    return xp.asarray(xp.sum(x, axis=axes, keepdims=keepdims, dtype=x.dtype))


def _sum_vjp(g, ins, out, *, axes, keepdims):
    x = ins[0]
    if not keepdims and axes == tuple(range(len(axes))):
        # leading axes summed away: broadcasting puts them back, no reshape needed
        return (broadcast_to(g, shape=x.shape) if g.shape != x.shape else g,)
    return (_keep(g, x.shape, axes, keepdims).expand(x.shape),)


reduce_sum = reduction(
    "reduce_sum", _sum_impl, _sum_vjp,
    lambda ts, ins, out, *, axes, keepdims: reduce_sum(ts[0], axes=axes, keepdims=keepdims))


def _extreme_vjp(g, ins, out, *, axes, keepdims):
    # the gradient is shared evenly among tied extremes, as PyTorch's amax/amin do
    x = ins[0]
    o = _keep(out, x.shape, axes, keepdims)
    mask = (x == o).to(x.dtype)
    count = reduce_sum(mask, axes=axes, keepdims=True)
    return (_keep(g, x.shape, axes, keepdims) * mask / count,)


def _extreme_jvp(ts, ins, out, *, axes, keepdims):
    x = ins[0]
    o = _keep(out, x.shape, axes, keepdims)
    mask = (x == o).to(x.dtype)
    count = reduce_sum(mask, axes=axes, keepdims=keepdims)
    return reduce_sum(ts[0] * mask, axes=axes, keepdims=keepdims) / count


reduce_max = reduction("reduce_max", lambda xp, x, *, axes, keepdims: xp.asarray(
    xp.max(x, axis=axes, keepdims=keepdims)), _extreme_vjp, _extreme_jvp)
reduce_min = reduction("reduce_min", lambda xp, x, *, axes, keepdims: xp.asarray(
    xp.min(x, axis=axes, keepdims=keepdims)), _extreme_vjp, _extreme_jvp)


def _prod_others(x, axes):
    """Product of every element but the one at each position (exact with zeros):
    exclusive cumulative products from both ends along the flattened reduced axes."""
    from taiji._ops import cat
    keep = [i for i in range(x.ndim) if i not in axes]
    perm = tuple(keep) + tuple(axes)
    xt = x.permute(perm)
    lead = xt.shape[:len(keep)]
    flat = xt.reshape(lead + (-1,))
    n, ax = flat.shape[-1], flat.ndim - 1
    ones = flat.narrow(-1, 0, 1).ones_like()
    left = cat([ones, cumprod(flat, axis=ax).narrow(-1, 0, n - 1)], -1)
    right = cat([ones, cumprod(flat.flip(-1), axis=ax).narrow(-1, 0, n - 1)], -1)
    others = (left * right.flip(-1)).reshape(xt.shape)
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return others.permute(tuple(inv))


def _prod_vjp(g, ins, out, *, axes, keepdims):
    x = ins[0]
    if not axes or x.numel() == 0:
        return (_keep(g, x.shape, axes, keepdims).expand(x.shape),)
    return (_keep(g, x.shape, axes, keepdims) * _prod_others(x, axes),)


reduce_prod = reduction(
    "reduce_prod", lambda xp, x, *, axes, keepdims: xp.asarray(
        xp.prod(x, axis=axes, keepdims=keepdims, dtype=x.dtype)), _prod_vjp,
    lambda ts, ins, out, *, axes, keepdims: reduce_sum(
        ts[0] * _prod_others(ins[0], axes), axes=axes, keepdims=keepdims))


def _arg_shape(name):
    def shape(x, *, axis, keepdims):
        if x.ndim and not 0 <= axis < x.ndim:
            raise IndexError(f"{name}: dimension {axis} out of range for shape {list(x.shape)}")
        if x.ndim and x.shape[axis] == 0:
            raise IndexError(f"{name}: cannot take {name} of an empty dimension {axis}")
        return ShapedArray(_reduced_shape(x.shape, (axis,), keepdims) if x.ndim else (),
                           dt.int64)
    return shape


def _arg_impl(fn):
    def impl(xp, x, *, axis, keepdims):
        if x.ndim == 0:
            return xp.zeros((), dtype=xp.int64)
        return xp.asarray(fn(x, axis=axis, keepdims=keepdims)).astype(xp.int64, copy=False)
    return impl


def _arg_prim(name, fn):
    p = Primitive(name, nondiff=True)
    p.def_impl(_arg_impl(fn))
    p.def_shape(_arg_shape(name))
    def batch(ins, dims, *, axis, keepdims):
        x = moveaxis_to_front(ins[0], dims[0])
        if x.ndim == 1:  # each element is a scalar: its arg-extreme is index 0
            from taiji._ops import const
            import numpy as np
            return const(np.zeros(x.shape, dtype=np.int64), x), 0
        return p(x, axis=axis + 1, keepdims=keepdims), 0
    p.def_batch(batch)
    return p


argmax = _arg_prim("argmax", lambda x, axis, keepdims: x.argmax(axis=axis, keepdims=keepdims))
argmin = _arg_prim("argmin", lambda x, axis, keepdims: x.argmin(axis=axis, keepdims=keepdims))

argsort = Primitive("argsort", nondiff=True)


@argsort.def_impl
def _argsort_impl(xp, x, *, axis, descending):
    if descending:
        # a stable descending sort: negate (in a signed type wide enough) and sort ascending
        if x.dtype.kind in "bu":
            x = x.astype(xp.int64)
        return xp.argsort(xp.negative(x), axis=axis, kind="stable")
    return xp.argsort(x, axis=axis, kind="stable")


argsort.def_shape(lambda x, *, axis, descending: ShapedArray(x.shape, dt.int64))
argsort.def_batch(lambda ins, dims, *, axis, descending: (
    argsort(moveaxis_to_front(ins[0], dims[0]), axis=axis + 1, descending=descending), 0))


def scan(name, impl, vjp, jvp):
    p = Primitive(name)
    p.def_impl(impl)
    p.def_shape(lambda x, *, axis: x)
    p.def_vjp(vjp)
    p.def_jvp(jvp)
    p.def_batch(lambda ins, dims, *, axis: (
        p(moveaxis_to_front(ins[0], dims[0]), axis=axis + 1), 0))
    return p


cumsum = scan("cumsum", lambda xp, x, *, axis: xp.cumsum(x, axis=axis, dtype=x.dtype),
              lambda g, ins, out, *, axis: (cumsum(g.flip(axis), axis=axis).flip(axis),),
              lambda ts, ins, out, *, axis: cumsum(ts[0], axis=axis))


def _cumprod_vjp(g, ins, out, *, axis):
    # d out_j / d x_i = out_j / x_i for j >= i (inputs without zeros; see the README's notes)
    x = ins[0]
    return (cumsum((g * out).flip(axis), axis=axis).flip(axis) / x,)


cumprod = scan("cumprod", lambda xp, x, *, axis: xp.cumprod(x, axis=axis, dtype=x.dtype),
               _cumprod_vjp,
               lambda ts, ins, out, *, axis: cumsum(ts[0] / ins[0], axis=axis) * out)

for _p in (reduce_sum, cumsum):
    _p.vjp_reads_inputs = False
