"""Max pooling over non-overlapping kh x kw windows (stride = kernel, no padding): the common
``max_pool2d(x, 2)``, as three primitives instead of im2col + max + col2im.

max_pool(x, kernel):        (N, C, H, W) -> (N, C, H // kh, W // kw), the max of each window.
max_pool_route(g, x, kernel): the VJP: each window's gradient goes to the position of the
                            window's max in ``x``; every other position gets zero.
max_pool_pick(v, x, kernel):  the transpose of route (and so its VJP): ``v`` read at the
                            position of each window's max in ``x``.

The max position follows PyTorch's CPU kernel: scanning the window in row-major order, a
value replaces the running max when it is greater or NaN (so the first of tied maxima wins).
Rows and columns beyond the last whole window (H % kh, W % kw) belong to no window.

On NumPy, pool and route run as loop kernels once compiled (taiji._kernels); until then, and
for other array modules and dtypes, the same selection runs as NumPy ``where``s over a
(N, C, H/kh, kh, W/kw, kw) view. Nothing is added, so both tiers give identical results.
"""
from __future__ import annotations

import numpy as np

from taiji._core.primitive import Primitive, ShapedArray
from taiji._kernels import Kernel
from taiji._prims._util import moveaxis_to_front
from taiji.backends import backend_for_xp

max_pool = Primitive("max_pool")
max_pool_route = Primitive("max_pool_route")
max_pool_pick = Primitive("max_pool_pick")


def _outs(shape, kernel):
    return shape[2] // kernel[0], shape[3] // kernel[1]


def _check(x, kernel, op):
    if x.ndim != 4 or len(kernel) != 2 or min(kernel) < 1:
        raise ValueError(f"{op}: expected a (N, C, H, W) input and a 2-long kernel, got shape "
                         f"{list(x.shape)} and kernel {kernel}")
    if x.shape[2] < kernel[0] or x.shape[3] < kernel[1]:
        raise ValueError(f"{op}: input spatial size {list(x.shape[2:])} is smaller than the "
                         f"kernel {list(kernel)}")


# ---------------------------------------------------------------- NumPy tier

def _view(x, kernel):
    """(N, C, OH, kh, OW, kw) view of the whole windows of ``x``."""
    (kh, kw), (oh, ow) = kernel, _outs(x.shape, kernel)
    x = x[:, :, :oh * kh, :ow * kw]
    return x.reshape(x.shape[:2] + (oh, kh, ow, kw))


def _select(xp, x, kernel, want_idx=True):
    """(max, flat in-window index of the max or None) of each window, PyTorch's scan."""
    v = _view(x, kernel)
    kh, kw = kernel
    m = v[:, :, :, 0, :, 0]
    it = xp.int8 if kh * kw <= 127 else xp.int32  # narrow: less memory traffic
    idx = xp.zeros(m.shape, dtype=it) if want_idx else None
    # NumPy: one pass finds whether any NaN needs the slower scan. A device keeps the scan
    # NaN-aware instead: reading the answer on the host would wait for the device, and a
    # CUDA graph capture refuses it
    nan = x.dtype.kind in "fc" and (xp is not np or bool(xp.isnan(x).any()))
    for k in range(1, kh * kw):
        a = v[:, :, :, k // kw, :, k % kw]
        take = (a > m) | xp.isnan(a) if nan else a > m
        m = xp.where(take, a, m)
        if want_idx:
            idx = xp.where(take, it(k), idx)
    return m, idx


# ---------------------------------------------------------------- loop kernels (numba)
# Factories of plain-Python loops specialised on the kernel and spatial sizes (see
# taiji._kernels): the window scans unroll.

def _pool_factory(kh, kw, oh_n, ow_n, cn):
    # cn: x is passed as its (C, N, H, W) C-contiguous base (the transposed view a
    # convolution's product gives), so x's first two indices are (c, n), and the loops walk
    # memory in order; the output is always (N, C, OH, OW)
    def pool(lo, hi, x, out):
        for ab in range(lo, hi):  # planes: (a, b) flat
            a, b = ab // x.shape[1], ab % x.shape[1]
            n = b if cn else a
            c = a if cn else b
            for oh in range(oh_n):
                for ow in range(ow_n):
                    out[n, c, oh, ow] = x[a, b, oh * kh, ow * kw]
                for k in range(1, kh * kw):
                    for ow in range(ow_n):
                        v = x[a, b, oh * kh + k // kw, ow * kw + k % kw]
                        m = out[n, c, oh, ow]
                        out[n, c, oh, ow] = v if (v > m or v != v) else m
    return pool


def _route_factory(kh, kw, oh_n, ow_n, hh, ww, cn):
    # cn as for pool: x and the output (laid out like x) are passed as their (C, N, H, W)
    # bases; the gradient g is (N, C, OH, OW)
    def route(lo, hi, g, x, out):
        for ab in range(lo, hi):  # planes: (a, b) flat
            a, b = ab // x.shape[1], ab % x.shape[1]
            n = b if cn else a
            c = a if cn else b
            # a NaN wins its window: only a plane holding one needs that test. Without it
            # the comparison is one compare, which LLVM keeps a select; with the NaN test
            # or'ed in, it branched on each window's unpredictable winner (AVX2 Zen 3: the
            # seed CNN's routes 6.3 and 3.1 ms, 2.7 and 1.3 ms with the test hoisted)
            nan = False
            for h in range(hh):
                for w in range(ww):
                    nan |= x[a, b, h, w] != x[a, b, h, w]
            for oh in range(oh_n):
                for ow in range(ow_n):
                    m = x[a, b, oh * kh, ow * kw]
                    # selects, not branches (the winner is unpredictable), and a float
                    # index: LLVM vectorises float selects, not mixed int/float ones
                    best = np.float32(0)
                    for k in range(1, kh * kw):
                        v = x[a, b, oh * kh + k // kw, ow * kw + k % kw]
                        if nan:
                            take = (v > m) | (v != v)
                        else:
                            take = v > m
                        m = v if take else m
                        best = np.float32(k) if take else best
                    gv = g[n, c, oh, ow]
                    for k in range(kh * kw):
                        out[a, b, oh * kh + k // kw, ow * kw + k % kw] = \
                            gv if best == np.float32(k) else 0
                for r in range(kh):  # columns beyond the last window
                    for w in range(ow_n * kw, ww):
                        out[a, b, oh * kh + r, w] = 0
            for h in range(oh_n * kh, hh):  # rows beyond the last window
                for w in range(ww):
                    out[a, b, h, w] = 0
    return route


# Two typings of each: C-contiguous arrays (x in NCHW, or x's (C, N, H, W) base when x is
# its transpose, as when a convolution's product is pooled in place), which LLVM vectorises,
# and any strides for other inputs (about 1.4x slower: measured 1.64 against 1.20 ms for the
# seed CNN's first route)
_POOL = Kernel(_pool_factory, ("r4", "w4"), planes=0)
_ROUTE = Kernel(_route_factory, ("r4", "r4", "w4"), planes=1)
_POOL_STRIDED = Kernel(_pool_factory, ("s4", "w4"), planes=0)
_ROUTE_STRIDED = Kernel(_route_factory, ("r4", "s4", "x4"), planes=1)


def _layout(x):
    """(array to pass, cn flag, typed C): x itself when C-contiguous, x's (C, N, H, W) base
    when x is that base's transpose, else x as a strided view."""
    if x.flags.c_contiguous:
        return x, False, True
    base = x.transpose(1, 0, 2, 3)
    if base.flags.c_contiguous:
        return base, True, True
    return x, False, False


def _kernel(xp, kern, consts, *arrays):
    if xp is not np or any(a.dtype != arrays[0].dtype for a in arrays):
        return None
    return kern.get(arrays[0].dtype, *consts)


# ---------------------------------------------------------------- impls and rules

@max_pool.def_impl
def _pool_impl(xp, x, *, kernel):
    if xp is np:
        a, cn, c_typed = _layout(x)
        k = _kernel(xp, _POOL if c_typed else _POOL_STRIDED,
                    tuple(kernel) + _outs(x.shape, kernel) + (cn,), x)
        if k is not None:
            out = np.empty(x.shape[:2] + _outs(x.shape, kernel), x.dtype)
            k(a, out)
            return out
    out = backend_for_xp(xp).max_pool(x, kernel)  # (CUDA: one kernel)
    if out is not None:
        return out
    return xp.ascontiguousarray(_select(xp, x, kernel, want_idx=False)[0])


@max_pool_route.def_impl
def _route_impl(xp, g, x, *, kernel):
    if xp is np:
        a, cn, c_typed = _layout(x)
        k = _kernel(xp, _ROUTE if c_typed else _ROUTE_STRIDED,
                    tuple(kernel) + _outs(x.shape, kernel) + x.shape[2:] + (cn,), g, x)
        if k is not None:
            out = np.empty_like(a)  # laid out like x: passed as x is, returned as x's shape
            k(np.ascontiguousarray(g), a, out)
            return out.transpose(1, 0, 2, 3) if cn else out
    out = backend_for_xp(xp).max_pool_route(g, x, kernel)
    if out is not None:
        return out
    _, idx = _select(xp, x, kernel)
    kh, kw = kernel
    oh, ow = idx.shape[2:]
    whole = xp.empty(idx.shape[:3] + (kh, ow, kw), dtype=g.dtype)
    zero = xp.zeros((), dtype=g.dtype)
    for k in range(kh * kw):
        whole[:, :, :, k // kw, :, k % kw] = xp.where(idx == k, g, zero)
    whole = whole.reshape(idx.shape[:2] + (oh * kh, ow * kw))
    if whole.shape == x.shape:
        return whole
    out = xp.zeros(x.shape, dtype=g.dtype)
    out[:, :, :oh * kh, :ow * kw] = whole
    return out


@max_pool_pick.def_impl
def _pick_impl(xp, v, x, *, kernel):
    _, idx = _select(xp, x, kernel)
    vv = _view(v, kernel)
    kw = kernel[1]
    out = xp.zeros(idx.shape, dtype=v.dtype)
    for k in range(kernel[0] * kw):
        sel = idx == k
        out[sel] = vv[:, :, :, k // kw, :, k % kw][sel]
    return out


@max_pool.def_shape
def _pool_shape(x, *, kernel):
    _check(x, kernel, "max_pool")
    return ShapedArray(x.shape[:2] + _outs(x.shape, kernel), x.dtype)


@max_pool_route.def_shape
def _route_shape(g, x, *, kernel):
    _check(x, kernel, "max_pool_route")
    want = x.shape[:2] + _outs(x.shape, kernel)
    if g.shape != want or g.dtype is not x.dtype:
        raise ValueError(f"max_pool_route: expected a {want} gradient of dtype {x.dtype}, got "
                         f"{g.shape} {g.dtype}")
    return ShapedArray(x.shape, x.dtype)


@max_pool_pick.def_shape
def _pick_shape(v, x, *, kernel):
    _check(x, kernel, "max_pool_pick")
    if v.shape != x.shape or v.dtype is not x.dtype:
        raise ValueError(f"max_pool_pick: expected values of shape {x.shape} and dtype "
                         f"{x.dtype}, got {v.shape} {v.dtype}")
    return ShapedArray(x.shape[:2] + _outs(x.shape, kernel), x.dtype)


# The max position is piecewise constant in x: no gradient flows through it, so route and
# pick are linear in their first operand and each is the other's transpose.
max_pool.def_vjp(lambda g, ins, out, *, kernel: (max_pool_route(g, ins[0], kernel=kernel),))
max_pool_route.def_vjp(lambda g, ins, out, *, kernel: (
    max_pool_pick(g, ins[1], kernel=kernel), None))
max_pool_pick.def_vjp(lambda g, ins, out, *, kernel: (
    max_pool_route(g, ins[1], kernel=kernel), None))
max_pool.def_jvp(lambda ts, ins, out, *, kernel: None if ts[0] is None else
                 max_pool_pick(ts[0], ins[0], kernel=kernel))
max_pool_route.def_jvp(lambda ts, ins, out, *, kernel: None if ts[0] is None else
                       max_pool_route(ts[0], ins[1], kernel=kernel))
max_pool_pick.def_jvp(lambda ts, ins, out, *, kernel: None if ts[0] is None else
                      max_pool_pick(ts[0], ins[1], kernel=kernel))


def _merge_batch(prim):
    """vmap: fold the batch dimension into N (an operand without it is broadcast)."""
    def batch(ins, dims, **params):
        b = next(t.shape[d] for t, d in zip(ins, dims) if d is not None)
        args = []
        for t, d in zip(ins, dims):
            t = t.expand((b,) + t.shape) if d is None else moveaxis_to_front(t, d)
            args.append(t.reshape((b * t.shape[1],) + t.shape[2:]))
        out = prim(*args, **params)
        return out.reshape((b, out.shape[0] // b) + out.shape[1:]), 0
    return batch


for _p in (max_pool, max_pool_route, max_pool_pick):
    _p.def_batch(_merge_batch(_p))
