"""Sliding windows (im2col) and their transpose (col2im): the two linear primitives that
convolution and pooling are built from (taiji/nn/_conv.py). One strided view and one copy
replace K strided slices and a stack; the backward scatters K slabs into one array instead of
padding K full-size copies. Each is the other's VJP, so double backward comes for free.

windows(x, kernel, stride, dilation, outs): (N, C, *S) -> (N, C, K, *outs), K = prod(kernel),
    taking x already padded so that every window lies inside it.
windows_t(cols, in_spatial, ...): the transpose, (N, C, K, *outs) -> (N, C, *in_spatial).
"""
from __future__ import annotations

import math

import numpy as np

from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._util import moveaxis_to_front

windows = Primitive("windows", vjp_reads_inputs=False)
windows_t = Primitive("windows_transpose", vjp_reads_inputs=False)


def _check(x, kernel, stride, dilation, outs, spatial):
    nsp = len(kernel)
    if x.ndim != 2 + nsp or not (len(stride) == len(dilation) == len(outs) == nsp):
        raise ValueError(f"windows: expected a (N, C, {nsp} spatial dims) input and {nsp}-long "
                         f"kernel/stride/dilation/outs, got shape {list(x.shape)}")
    for i in range(nsp):
        need = (outs[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        if need > spatial[i]:
            raise ValueError(f"windows: {outs[i]} windows of size {kernel[i]} (stride "
                             f"{stride[i]}, dilation {dilation[i]}) need {need} elements along "
                             f"spatial dim {i}, the input has {spatial[i]}")


@windows.def_impl
def _windows_impl(xp, x, *, kernel, stride, dilation, outs):
    nsp = len(kernel)
    st = x.strides
    shape = x.shape[:2] + tuple(kernel) + tuple(outs)
    strides = st[:2] + tuple(st[2 + i] * dilation[i] for i in range(nsp)) + \
        tuple(st[2 + i] * stride[i] for i in range(nsp))
    view = xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)
    return view.reshape(x.shape[:2] + (math.prod(kernel),) + tuple(outs))  # one copy


@windows.def_shape
def _windows_shape(x, *, kernel, stride, dilation, outs):
    _check(x, kernel, stride, dilation, outs, x.shape[2:])
    return ShapedArray(x.shape[:2] + (math.prod(kernel),) + tuple(outs), x.dtype)


@windows_t.def_impl
def _windows_t_impl(xp, cols, *, in_spatial, kernel, stride, dilation, outs):
    n, c = cols.shape[:2]
    out = xp.zeros((n, c) + tuple(in_spatial), dtype=cols.dtype)
    slabs = cols.reshape((n, c) + tuple(kernel) + tuple(outs))
    for off in np.ndindex(*kernel):
        where = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, m, s in zip(off, dilation, outs, stride))
        out[where] += slabs[(slice(None), slice(None)) + off]
    return out


@windows_t.def_shape
def _windows_t_shape(cols, *, in_spatial, kernel, stride, dilation, outs):
    want = cols.shape[:2] + (math.prod(kernel),) + tuple(outs)
    if cols.shape != want:
        raise ValueError(f"windows_transpose: expected columns of shape {list(want)}, got "
                         f"{list(cols.shape)}")
    _check(ShapedArray(cols.shape[:2] + tuple(in_spatial), cols.dtype), kernel, stride,
           dilation, outs, in_spatial)
    return ShapedArray(cols.shape[:2] + tuple(in_spatial), cols.dtype)


windows.def_vjp(lambda g, ins, out, **p: (windows_t(g, in_spatial=ins[0].shape[2:], **p),))
windows_t.def_vjp(lambda g, ins, out, *, in_spatial, **p: (windows(g, **p),))
windows.def_jvp(lambda ts, ins, out, **p: windows(ts[0], **p))
windows_t.def_jvp(lambda ts, ins, out, **p: windows_t(ts[0], **p))


def _merge_batch(prim):
    """vmap: fold the batch dimension into N (the ops act on N and C alike)."""
    def batch(ins, dims, **params):
        x = moveaxis_to_front(ins[0], dims[0])
        b, n = x.shape[0], x.shape[1]
        out = prim(x.reshape((b * n,) + x.shape[2:]), **params)
        return out.reshape((b, n) + out.shape[1:]), 0
    return batch


windows.def_batch(_merge_batch(windows))
windows_t.def_batch(_merge_batch(windows_t))
