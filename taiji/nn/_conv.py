"""Convolution and pooling, written with primitives (pad + strided slices + matmul).

``im2col`` gathers the kh*kw shifted, strided views of the padded input with ``slice``
primitives and stacks them; a convolution is then one batched matmul with the reshaped
weight. Every piece has VJP / JVP / batch rules, so gradients (of any order), ``jit`` and
``vmap`` work without a dedicated convolution primitive.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from taiji import _ops as O
from taiji._prims import conv as W
from taiji._prims import structure as S
from taiji.tensor import Tensor
from taiji._core.interpreters import STATE


def _tup(v, n: int, name: str = "argument") -> tuple:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(f"expected {name} to be an int or a {n}-tuple, got {v}")
    return v


def _out_size(n, k, s, p_lo, p_hi, d, ceil_mode=False):
    span = n + p_lo + p_hi - d * (k - 1) - 1
    if ceil_mode:
        o = -(-span // s) + 1
        if (o - 1) * s >= n + p_lo:  # the last window must start inside input + left pad
            o -= 1
        return o
    return span // s + 1


def _windows(x: Tensor, kernel, stride, pads, dilation, value=0.0, ceil_mode=False):
    """(N, C, K, *out_spatial): the K = prod(kernel) strided windows of ``x``."""
    nsp = len(kernel)
    sp = x.shape[2:]
    outs = [_out_size(sp[i], kernel[i], stride[i], pads[i][0], pads[i][1], dilation[i],
                      ceil_mode) for i in range(nsp)]
    if any(o <= 0 for o in outs):
        raise RuntimeError(f"input spatial size {list(sp)} is too small for kernel "
                           f"{list(kernel)} (dilation {list(dilation)}, padding "
                           f"{[p for p, _ in pads]}): output size would be {outs}")
    # extra right padding so every strided window lies inside the array (ceil_mode)
    cfg = [(0, 0, 0), (0, 0, 0)]
    for i in range(nsp):
        need = (outs[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        hi = max(need - sp[i] - pads[i][0], pads[i][1])
        cfg.append((pads[i][0], hi, 0))
    if any(c != (0, 0, 0) for c in cfg):
        x = S.pad(x, cfg=tuple(cfg), value=value)
    # one strided view, copied once (im2col); its VJP scatters the windows back (col2im)
    return W.windows(x, kernel=tuple(kernel), stride=tuple(stride), dilation=tuple(dilation),
                     outs=tuple(outs)), outs


def _conv_pads(padding, kernel, dilation, stride, nsp):
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nsp
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return out
        raise ValueError(f"Invalid padding string {padding!r}; expected 'same' or 'valid'")
    return [(p, p) for p in _tup(padding, nsp, "padding")]


def _convnd(x, weight, bias, stride, padding, dilation, groups, nsp):
    if x.ndim != nsp + 2:
        if x.ndim == nsp + 1:  # unbatched
            return O.squeeze(_convnd(O.unsqueeze(x, 0), weight, bias, stride, padding,
                                     dilation, groups, nsp), 0)
        raise RuntimeError(f"conv{nsp}d: expected {nsp + 1}-D (unbatched) or {nsp + 2}-D "
                           f"(batched) input, got input of size {list(x.shape)}")
    kernel = tuple(weight.shape[2:])
    stride = _tup(stride, nsp, "stride")
    dilation = _tup(dilation, nsp, "dilation")
    n, c = x.shape[:2]
    o = weight.shape[0]
    if c != weight.shape[1] * groups:
        raise RuntimeError(f"conv{nsp}d: expected input with {weight.shape[1] * groups} "
                           f"channels (weight {list(weight.shape)}, groups={groups}), got "
                           f"{c} channels (input of size {list(x.shape)})")
    if o % groups:
        raise RuntimeError(f"conv{nsp}d: out_channels {o} must be divisible by groups {groups}")
    pads = _conv_pads(padding, kernel, dilation, stride, nsp)
    cols, outs = _windows(x, kernel, stride, pads, dilation)  # (N, C, K, *outs)
    k = math.prod(kernel)
    L = math.prod(outs)
    if groups == 1:
        # one large GEMM, (O, C*K) @ (C*K, N*L), instead of N small ones: BLAS runs it at
        # full speed (a broadcast batch of small products does not)
        cols = O.reshape(O.permute(O.reshape(cols, (n, c * k, L)), (1, 0, 2)), (c * k, n * L))
        out = O.matmul(O.reshape(weight, (o, c * k)), cols)  # (O, N*L)
        out = O.permute(O.reshape(out, (o, n) + tuple(outs)), (1, 0) + tuple(range(2, 2 + nsp)))
    else:
        cols = O.reshape(cols, (n, groups, (c // groups) * k, L))
        w = O.reshape(weight, (groups, o // groups, (c // groups) * k))
        out = O.matmul(w, cols)  # (N, G, O/G, L)
        out = O.reshape(out, (n, o) + tuple(outs))
    if bias is not None:
        out = out + O.reshape(bias, (1, o) + (1,) * nsp)
    return out


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, PyTorch's ``F.conv2d`` (padding may be 'same' or 'valid').

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_out, C_in / groups, kH, kW).
        bias: (C_out,) or None.
    """
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        input, weight, bias = STATE.autocast.cast("conv2d", input, weight, bias)
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 2)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D cross-correlation over (N, C_in, L) input; weight (C_out, C_in / groups, k)."""
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        input, weight, bias = STATE.autocast.cast("conv1d", input, weight, bias)
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 1)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """The transpose (gradient) of conv2d: weight (C_in, C_out / groups, kH, kW)."""
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        input, weight, bias = STATE.autocast.cast("conv_transpose2d", input, weight, bias)
    if input.ndim == 3:
        return O.squeeze(conv_transpose2d(O.unsqueeze(input, 0), weight, bias, stride,
                                          padding, output_padding, groups, dilation), 0)
    stride, padding = _tup(stride, 2, "stride"), _tup(padding, 2, "padding")
    output_padding, dilation = _tup(output_padding, 2), _tup(dilation, 2, "dilation")
    cin, cout_g = weight.shape[:2]
    kernel = weight.shape[2:]
    if input.shape[1] != cin:
        raise RuntimeError(f"conv_transpose2d: expected input with {cin} channels, got "
                           f"{input.shape[1]} (input of size {list(input.shape)})")
    cfg = [(0, 0, 0), (0, 0, 0)]
    crop = False
    for i in range(2):
        lo = dilation[i] * (kernel[i] - 1) - padding[i]
        hi = lo + output_padding[i]
        cfg.append((lo, hi, stride[i] - 1))
        crop = crop or lo < 0 or hi < 0
    x = S.pad(input, cfg=tuple((max(a, 0), max(b, 0), c) for a, b, c in cfg), value=0.0)
    if crop:
        spec = [(0, x.shape[0], 1), (0, x.shape[1], 1)]
        for i in range(2):
            a, b, _ = cfg[2 + i]
            n = x.shape[2 + i]
            spec.append((max(-a, 0), n - max(-b, 0), 1))
        x = S.slice_(x, spec=tuple(spec))
    w = O.reshape(weight, (groups, cin // groups, cout_g) + tuple(kernel))
    w = O.permute(w, (0, 2, 1, 3, 4))
    w = O.reshape(w, (groups * cout_g, cin // groups) + tuple(kernel))
    w = O.flip(w, (2, 3))
    return _convnd(x, w, bias, 1, 0, dilation, groups, 2)


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """im2col: (N, C, H, W) -> (N, C * kH * kW, L) sliding blocks."""
    kernel = _tup(kernel_size, 2, "kernel_size")
    cols, outs = _windows(input, kernel, _tup(stride, 2), [(p, p) for p in _tup(padding, 2)],
                          _tup(dilation, 2))
    n, c = input.shape[:2]
    return O.reshape(cols, (n, c * math.prod(kernel), math.prod(outs)))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    raise NotImplementedError("fold (col2im) is not implemented yet; use conv_transpose2d")


# ---------------------------------------------------------------- pooling


def _pool_args(x, kernel_size, stride, padding, dilation, nsp, name):
    if x.ndim not in (nsp + 1, nsp + 2):
        raise RuntimeError(f"{name}: expected {nsp + 1}-D or {nsp + 2}-D input, got input of "
                           f"size {list(x.shape)}")
    kernel = _tup(kernel_size, nsp, "kernel_size")
    stride = kernel if stride is None or stride == [] or stride == () else \
        _tup(stride, nsp, "stride")
    padding = _tup(padding, nsp, "padding")
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise RuntimeError(f"{name}: pad should be at most half of effective kernel size, "
                               f"but got pad={p}, kernel_size={k}")
    return kernel, stride, padding, _tup(dilation, nsp, "dilation")


def _batched(fn, x, nsp):
    if x.ndim == nsp + 1:
        out = fn(O.unsqueeze(x, 0))
        if isinstance(out, tuple):
            return tuple(O.squeeze(o, 0) for o in out)
        return O.squeeze(out, 0)
    return fn(x)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over kH x kW windows (padding counts as -inf)."""
    k, s, p, d = _pool_args(input, kernel_size, stride, padding, dilation, 2, "max_pool2d")

    def run(x):
        cols, outs = _windows(x, k, s, [(q, q) for q in p], d, -math.inf, ceil_mode)
        out = O.amax(cols, 2)
        if not return_indices:
            return out
        a = O.argmax(cols, 2)
        ki, kj = a // k[1], a % k[1]
        hh = O.const((np.arange(outs[0]) * s[0] - p[0]).reshape(-1, 1)) + ki * d[0]
        ww = O.const((np.arange(outs[1]) * s[1] - p[1]).reshape(1, -1)) + kj * d[1]
        return out, hh * x.shape[3] + ww
    return _batched(run, input, 2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over windows of the last dimension of (N, C, L) input."""
    k, s, p, d = _pool_args(input, kernel_size, stride, padding, dilation, 1, "max_pool1d")

    def run(x):
        cols, _ = _windows(x, k, s, [(p[0], p[0])], d, -math.inf, ceil_mode)
        return O.amax(cols, 2)
    return _batched(run, input, 1)


def _avg_divisor(n, k, s, p, o, include_pad):
    out = np.empty(o)
    for i in range(o):
        a = i * s - p
        b = min(a + k, n + p)
        size = b - a
        a, b = max(a, 0), min(b, n)
        out[i] = size if include_pad else b - a
    return out


def _avg_pool(x, k, s, p, ceil_mode, count_include_pad, divisor_override, nsp):
    cols, outs = _windows(x, k, s, [(q, q) for q in p], (1,) * nsp, 0.0, ceil_mode)
    tot = O.sum(cols, 2)
    if divisor_override:
        return tot / float(divisor_override)
    divs = [_avg_divisor(x.shape[2 + i], k[i], s[i], p[i], outs[i], count_include_pad)
            for i in range(nsp)]
    div = divs[0] if nsp == 1 else np.outer(divs[0], divs[1])
    if np.all(div == div.flat[0]):
        return tot * (1.0 / float(div.flat[0]))
    return tot / O.const(div.astype(x.dtype.np))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """Mean over kH x kW windows."""
    k, s, p, _ = _pool_args(input, kernel_size, stride, padding, 1, 2, "avg_pool2d")
    return _batched(lambda x: _avg_pool(x, k, s, p, ceil_mode, count_include_pad,
                                        divisor_override, 2), input, 2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of the last dimension."""
    k, s, p, _ = _pool_args(input, kernel_size, stride, padding, 1, 1, "avg_pool1d")
    return _batched(lambda x: _avg_pool(x, k, s, p, ceil_mode, count_include_pad, None, 1),
                    input, 1)


def _adaptive_matrix(n: int, o: int) -> np.ndarray:
    m = np.zeros((o, n))
    for i in range(o):
        a, b = (i * n) // o, -(-((i + 1) * n) // o)
        m[i, a:b] = 1.0 / (b - a)
    return m


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output size (PyTorch's window boundaries)."""
    out = _tup(output_size, 2, "output_size")
    h, w = input.shape[-2:]
    out = tuple(h if o is None else o for o in (out[0],)) + \
        tuple(w if o is None else o for o in (out[1],))
    if h % out[0] == 0 and w % out[1] == 0:
        x = O.reshape(input, input.shape[:-2] + (out[0], h // out[0], out[1], w // out[1]))
        return O.mean(x, (-3, -1))
    d = input.dtype.np
    ah = O.const(_adaptive_matrix(h, out[0]).astype(d))
    aw = O.const(_adaptive_matrix(w, out[1]).T.astype(d))
    return O.matmul(O.matmul(ah, input), aw)


def adaptive_avg_pool1d(input: Tensor, output_size: int) -> Tensor:
    n = input.shape[-1]
    o = output_size if isinstance(output_size, int) else output_size[0]
    return O.matmul(input, O.const(_adaptive_matrix(n, o).T.astype(input.dtype.np)))


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    """Max pooling to a fixed output size."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices is not supported yet")
    oh, ow = _tup(output_size, 2, "output_size")
    h, w = input.shape[-2:]
    rows = []
    for i in range(oh):
        a, b = (i * h) // oh, -(-((i + 1) * h) // oh)
        cells = []
        for j in range(ow):
            c, e = (j * w) // ow, -(-((j + 1) * w) // ow)
            cells.append(O.amax(input[..., a:b, c:e], (-2, -1)))
        rows.append(O.stack(cells, -1))
    return O.stack(rows, -2)


def _check_seq(x: Sequence, n: int):
    return len(x) == n
