"""Sliding windows (im2col) and their transpose (col2im): the two linear primitives that
convolution and pooling are built from (taiji/nn/_conv.py). Each is the other's VJP, so
double backward comes for free.

windows(x, kernel, stride, dilation, outs, pads, value, batch_inner, extra_row):
    (N, C, *S) -> (N, C, K, *outs), K = prod(kernel): the windows of ``x`` padded by ``pads``
    ((lo, hi) per spatial dim) with ``value``, without materialising the padded input.
    With ``batch_inner`` the columns come out as (C*K, N, *outs), row c*K + k holding window
    offset k of channel c: a convolution's (C*K, N*L) GEMM operand, so that one large
    product serves the whole batch and neither the columns nor their gradient is ever
    transposed. ``extra_row`` (batch_inner only) appends one more row of that constant: a
    row of ones makes the convolution's bias a column of its weight matrix.
windows_t(cols, in_spatial, ...): the transpose, columns -> (N, C, *in_spatial): every
    window element summed back onto the input position it was read from (contributions read
    from the padding, and the extra row, are dropped).

On NumPy, 1-D and 2-D windows run as loop kernels (taiji._kernels) once compiled. Until the
kernels are ready, and for other array modules, dtypes or dims, the same results come from
NumPy: one strided view copied once, and K slab additions. Both add a position's
contributions in the same order (kernel offsets in row-major order, starting from zero), so
the two tiers agree bit for bit.
"""
from __future__ import annotations

import math

import numpy as np

from taiji._core.primitive import Primitive, ShapedArray
from taiji._kernels import Kernel
from taiji.backends import backend_for_xp
from taiji._prims._util import moveaxis_to_front

windows = Primitive("windows", vjp_reads_inputs=False)
windows_t = Primitive("windows_transpose", vjp_reads_inputs=False)


def _check(x, kernel, stride, dilation, outs, pads, spatial):
    nsp = len(kernel)
    if x.ndim != 2 + nsp or not (len(stride) == len(dilation) == len(outs) == len(pads) ==
                                 nsp):
        raise ValueError(f"windows: expected a (N, C, {nsp} spatial dims) input and {nsp}-long "
                         f"kernel/stride/dilation/outs/pads, got shape {list(x.shape)}")
    for i in range(nsp):
        need = (outs[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        have = spatial[i] + pads[i][0] + pads[i][1]
        if need > have or min(pads[i]) < 0:
            raise ValueError(f"windows: {outs[i]} windows of size {kernel[i]} (stride "
                             f"{stride[i]}, dilation {dilation[i]}) need {need} elements along "
                             f"spatial dim {i}, the padded input has {have}")


# ---------------------------------------------------------------- loop kernels (numba)
# Factories of plain-Python loops over C-contiguous arrays, specialised on the window geometry
# and spatial sizes (taiji._kernels compiles them in the background). Spatial dims are 2:
# 1-D windows run as 2-D ones of height 1. Each (n, c) plane goes through a small padded
# scratch plane that stays in L1: im2col pads into it and copies every window row out of it;
# col2im adds every window row into it (kernel offsets in row-major order, from zero: the
# NumPy tier's order) and copies its interior out.

def _im2col_factory(kh, kw, sh, sw, dh, dw, ph, pw, hh, ww, oh_n, ow_n, bi):
    hp_n = (oh_n - 1) * sh + (kh - 1) * dh + 1  # padded extent the windows read
    wp_n = (ow_n - 1) * sw + (kw - 1) * dw + 1
    # no padding on any side: read the windows from x itself
    direct = ph == 0 and pw == 0 and hp_n <= hh and wp_n <= ww
    wc = max(min(ww, wp_n - pw), 0)  # input columns that land inside the padded extent

    def im2col(lo, hi, x, out, value):
        buf = np.empty((hp_n, wp_n), x.dtype)
        nn, cc = x.shape[0], x.shape[1]
        for p in range(lo, hi):  # (n, c) planes in the columns' order: streamed writes
            n = p % nn if bi else p // cc
            c = p // nn if bi else p % cc
            if direct:
                src = x[n, c]
            else:
                for hp in range(hp_n):
                    h = hp - ph
                    if h < 0 or h >= hh:
                        for wp in range(wp_n):
                            buf[hp, wp] = value
                    else:
                        for wp in range(pw):
                            buf[hp, wp] = value
                        for w in range(wc):
                            buf[hp, w + pw] = x[n, c, h, w]
                        for wp in range(wc + pw, wp_n):
                            buf[hp, wp] = value
                src = buf
            for i in range(kh):
                for j in range(kw):
                    for oh in range(oh_n):
                        for ow in range(ow_n):
                            v = src[oh * sh + i * dh, ow * sw + j * dw]
                            if bi:  # a constant: the other branch is compiled away
                                out[c, i * kw + j, n, oh, ow] = v
                            else:
                                out[n, c, i * kw + j, oh, ow] = v
    return im2col


def _col2im_factory(kh, kw, sh, sw, dh, dw, ph, pw, hh, ww, oh_n, ow_n, bi):
    hp_n = max((oh_n - 1) * sh + (kh - 1) * dh + 1, hh + ph)
    wp_n = max((ow_n - 1) * sw + (kw - 1) * dw + 1, ww + pw)

    def col2im(lo, hi, cols, out):
        buf = np.empty((hp_n, wp_n), cols.dtype)
        nn, cc = out.shape[0], out.shape[1]
        for p in range(lo, hi):  # (n, c) planes in the columns' order: streamed reads
            n = p % nn if bi else p // cc
            c = p // nn if bi else p % cc
            for hp in range(hp_n):
                for wp in range(wp_n):
                    buf[hp, wp] = 0
            for i in range(kh):
                for j in range(kw):
                    for oh in range(oh_n):
                        for ow in range(ow_n):
                            if bi:
                                v = cols[c, i * kw + j, n, oh, ow]
                            else:
                                v = cols[n, c, i * kw + j, oh, ow]
                            buf[oh * sh + i * dh, ow * sw + j * dw] += v
            for h in range(hh):
                for w in range(ww):
                    out[n, c, h, w] = buf[h + ph, w + pw]
    return col2im


# (planes: each (n, c) plane is written by one call, so a call runs in two halves of them)
_IM2COL = Kernel(_im2col_factory, ("r4", "w5", "f"), planes=0)
_COL2IM = Kernel(_col2im_factory, ("r5", "w4"), planes=1)


def _consts(kernel, stride, dilation, pads, spatial, outs, batch_inner):
    """The kernels' constants, 1-D windows as 2-D ones of height 1."""
    pre = (1,) * (2 - len(kernel))
    k, s, d = pre + tuple(kernel), pre + tuple(stride), pre + tuple(dilation)
    p = ((0, 0),) * len(pre) + tuple(pads)
    return k + s + d + (p[0][0], p[1][0]) + pre + tuple(spatial) + pre + tuple(outs) + \
        (bool(batch_inner),)


def _n_c(shape, k, batch_inner, extra_row):
    """(N, C) of columns of ``shape`` (K = prod(kernel))."""
    if batch_inner:
        return shape[1], (shape[0] - (extra_row is not None)) // k
    return shape[0], shape[1]


def _cols_shape(n, c, kernel, outs, batch_inner, extra_row=None):
    k = math.prod(kernel)
    if batch_inner:
        return (c * k + (extra_row is not None), n) + tuple(outs)
    return (n, c, k) + tuple(outs)


def _kernel_for(xp, kern, a, nsp, geometry):
    if xp is not np or nsp > 2:
        return None
    return kern.get(a.dtype, *_consts(*geometry))


# ---------------------------------------------------------------- windows (im2col)

@windows.def_impl
def _windows_impl(xp, x, *, kernel, stride, dilation, outs, pads, value, batch_inner=False,
                  extra_row=None):
    nsp = len(kernel)
    n, c = x.shape[:2]
    nk = c * math.prod(kernel)
    k = _kernel_for(xp, _IM2COL, x, nsp,
                    (kernel, stride, dilation, pads, x.shape[2:], outs, batch_inner))
    if k is not None:
        pre = (1,) * (2 - nsp)
        x4 = np.ascontiguousarray(x).reshape((n, c) + pre + x.shape[2:])
        out = np.empty(_cols_shape(n, c, kernel, outs, batch_inner, extra_row), x.dtype)
        # the kernel sees the window rows as 5-D (a contiguous block: the extra row is last)
        kk = math.prod(kernel)
        rows = out[:nk].reshape((c, kk, n) + pre + tuple(outs)) if batch_inner else \
            out.reshape((n, c, kk) + pre + tuple(outs))
        k(x4, rows, float(value))
        if extra_row is not None:
            out[nk:] = extra_row
        return out
    if any(p != (0, 0) for p in pads):
        padded = xp.full(x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in
                                             zip(x.shape[2:], pads)), value, dtype=x.dtype)
        padded[(slice(None), slice(None)) + tuple(
            slice(lo, lo + s) for s, (lo, hi) in zip(x.shape[2:], pads))] = x
        x = padded
    st = x.strides
    shape = x.shape[:2] + tuple(kernel) + tuple(outs)
    strides = st[:2] + tuple(st[2 + i] * dilation[i] for i in range(nsp)) + \
        tuple(st[2 + i] * stride[i] for i in range(nsp))
    view = backend_for_xp(xp).as_strided(x, shape, strides)  # read-only (CuPy's has no flag)
    if not batch_inner:
        return view.reshape((n, c, math.prod(kernel)) + tuple(outs))  # one copy
    # (C, *kernel, N, *outs) -> (C*K, N, *outs), plus the extra row
    view = view.transpose((1,) + tuple(range(2, 2 + nsp)) + (0,) +
                          tuple(range(2 + nsp, 2 + 2 * nsp)))
    out = xp.empty(_cols_shape(n, c, kernel, outs, True, extra_row), dtype=x.dtype)
    out[:nk] = view.reshape((nk, n) + tuple(outs))
    if extra_row is not None:
        out[nk:] = extra_row
    return out


@windows.def_shape
def _windows_shape(x, *, kernel, stride, dilation, outs, pads, value, batch_inner=False,
                   extra_row=None):
    _check(x, kernel, stride, dilation, outs, pads, x.shape[2:])
    if extra_row is not None and not batch_inner:
        raise ValueError("windows: extra_row needs the batch_inner layout")
    return ShapedArray(_cols_shape(x.shape[0], x.shape[1], kernel, outs, batch_inner,
                                   extra_row), x.dtype)


# ---------------------------------------------------------------- windows_t (col2im)

@windows_t.def_impl
def _windows_t_impl(xp, cols, *, in_spatial, kernel, stride, dilation, outs, pads,
                    batch_inner=False, extra_row=None):
    nsp = len(kernel)
    kk = math.prod(kernel)
    n, c = _n_c(cols.shape, kk, batch_inner, extra_row)
    k = _kernel_for(xp, _COL2IM, cols, nsp,
                    (kernel, stride, dilation, pads, in_spatial, outs, batch_inner))
    if k is not None:
        pre = (1,) * (2 - nsp)
        c5 = np.ascontiguousarray(cols[:c * kk] if batch_inner else cols).reshape(
            (c, kk, n) + pre + tuple(outs) if batch_inner else (n, c, kk) + pre + tuple(outs))
        out = np.empty((n, c) + pre + tuple(in_spatial), cols.dtype)
        k(c5, out)
        return out.reshape((n, c) + tuple(in_spatial))
    if batch_inner:  # the window rows back to (N, C, K, *outs), as a view
        cols = cols[:c * kk].reshape((c, kk, n) + tuple(outs)).transpose(
            (2, 0, 1) + tuple(range(3, 3 + nsp)))
    full = tuple(s + lo + hi for s, (lo, hi) in zip(in_spatial, pads))
    out = xp.zeros((n, c) + full, dtype=cols.dtype)
    slabs = cols.reshape((n, c) + tuple(kernel) + tuple(outs))
    for off in np.ndindex(*kernel):
        where = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, m, s in zip(off, dilation, outs, stride))
        out[where] += slabs[(slice(None), slice(None)) + off]
    if any(p != (0, 0) for p in pads):  # contributions read from the padding are dropped
        out = out[(slice(None), slice(None)) + tuple(
            slice(lo, lo + s) for s, (lo, hi) in zip(in_spatial, pads))]
    return out


@windows_t.def_shape
def _windows_t_shape(cols, *, in_spatial, kernel, stride, dilation, outs, pads,
                     batch_inner=False, extra_row=None):
    n, c = _n_c(cols.shape, math.prod(kernel), batch_inner, extra_row) if cols.ndim > 1 \
        else (0, 0)
    want = _cols_shape(n, c, kernel, outs, batch_inner, extra_row)
    if cols.shape != want:
        raise ValueError(f"windows_transpose: expected columns of shape {list(want)}, got "
                         f"{list(cols.shape)}")
    _check(ShapedArray((n, c) + tuple(in_spatial), cols.dtype), kernel, stride,
           dilation, outs, pads, in_spatial)
    return ShapedArray((n, c) + tuple(in_spatial), cols.dtype)


# The padding value and the extra row are constants: they carry no gradient, and tangents
# (and the transpose of col2im) pad with zeros and have a zero extra row.
def _zero_row(extra_row):
    return None if extra_row is None else 0.0


windows.def_vjp(lambda g, ins, out, *, value, **p: (
    windows_t(g, in_spatial=ins[0].shape[2:], **p),))
windows_t.def_vjp(lambda g, ins, out, *, in_spatial, extra_row=None, **p: (
    windows(g, value=0.0, extra_row=_zero_row(extra_row), **p),))
windows.def_jvp(lambda ts, ins, out, *, value, extra_row=None, **p: windows(
    ts[0], value=0.0, extra_row=_zero_row(extra_row), **p))
windows_t.def_jvp(lambda ts, ins, out, **p: windows_t(ts[0], **p))


def _windows_batch(ins, dims, *, batch_inner=False, **params):
    """vmap: fold the batch dimension into N (the ops act on N and C alike)."""
    x = moveaxis_to_front(ins[0], dims[0])
    b, n = x.shape[0], x.shape[1]
    out = windows(x.reshape((b * n,) + x.shape[2:]), batch_inner=batch_inner, **params)
    if batch_inner:  # (C*K, B*N, ...): the batch dim sits just before N
        return out.reshape(out.shape[:1] + (b, n) + out.shape[2:]), 1
    return out.reshape((b, n) + out.shape[1:]), 0


def _windows_t_batch(ins, dims, *, batch_inner=False, **params):
    cols = ins[0]
    if batch_inner:  # (C*K, N, ...) with a batch dim: put it before N and merge the two
        cols = cols.movedim(dims[0], 1)
        b, n = cols.shape[1], cols.shape[2]
        cols = cols.reshape(cols.shape[:1] + (b * n,) + cols.shape[3:])
    else:
        cols = moveaxis_to_front(cols, dims[0])
        b, n = cols.shape[0], cols.shape[1]
        cols = cols.reshape((b * n,) + cols.shape[2:])
    out = windows_t(cols, batch_inner=batch_inner, **params)
    return out.reshape((b, n) + out.shape[1:]), 0


windows.def_batch(_windows_batch)
windows_t.def_batch(_windows_t_batch)
