"""Convolution and pooling, written with primitives: im2col / col2im (``windows`` and
``windows_transpose``, taiji/_prims/conv.py), matmul, and max pooling over tiling windows
(taiji/_prims/pool.py).

A convolution is im2col followed by one GEMM with the reshaped weight (per group when
grouped); its backward is two GEMMs and col2im. Every piece has VJP / JVP / batch rules, so
gradients (of any order), ``jit`` and ``vmap`` work without a dedicated convolution
primitive.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from taiji import _ops as O
from taiji._prims import conv as W
from taiji._prims import pool as P
from taiji._prims.elementwise import relu as _RELU
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


def _windows(x: Tensor, kernel, stride, pads, dilation, value=0.0, ceil_mode=False,
             batch_inner=False, extra_row=None):
    """(N, C, K, *out_spatial): the K = prod(kernel) strided windows of ``x`` padded with
    ``value`` (the padding is never materialised); (C*K [+ 1], N, *out_spatial) with
    ``batch_inner`` (see taiji._prims.conv)."""
    nsp = len(kernel)
    sp = x.shape[2:]
    outs = [_out_size(sp[i], kernel[i], stride[i], pads[i][0], pads[i][1], dilation[i],
                      ceil_mode) for i in range(nsp)]
    if any(o <= 0 for o in outs):
        raise RuntimeError(f"input spatial size {list(sp)} is too small for kernel "
                           f"{list(kernel)} (dilation {list(dilation)}, padding "
                           f"{[p for p, _ in pads]}): output size would be {outs}")
    # extra right padding so every strided window lies inside the padded input (ceil_mode)
    full = []
    for i in range(nsp):
        need = (outs[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        full.append((pads[i][0], max(need - sp[i] - pads[i][0], pads[i][1])))
    # one pass over the windows (im2col); its VJP sums them back (col2im)
    return W.windows(x, kernel=tuple(kernel), stride=tuple(stride), dilation=tuple(dilation),
                     outs=tuple(outs), pads=tuple(full), value=float(value),
                     batch_inner=batch_inner, extra_row=extra_row), outs


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
    k = math.prod(kernel)
    if groups == 1:
        # one large GEMM, (O, C*K + 1) @ (C*K + 1, N*L), instead of N small ones: BLAS runs
        # it at full speed on all cores (a batch of small products does not, and stalls when
        # another process shares the cores). im2col writes the (C*K, N, *outs) operand
        # directly, and col2im reads its gradient in that layout. The bias is the weight's
        # last column, times a row of ones: no pass over the output adds it, and its
        # gradient comes out of the weight-gradient GEMM. The result is an NCHW view of the
        # (O, N, *outs) product; the next op reads it in place (pooling) or copies it
        # (anything else), and a gradient with the product's layout flows back without a copy
        one = None if bias is None else 1.0
        cols, outs = _windows(x, kernel, stride, pads, dilation, batch_inner=True,
                              extra_row=one)
        L = math.prod(outs)
        w = O.reshape(weight, (o, c * k))
        if bias is not None:
            w = O.cat([w, O.reshape(bias, (o, 1))], 1)
        out = O.matmul(w, O.reshape(cols, (cols.shape[0], n * L)))
        return O.permute(O.reshape(out, (o, n) + tuple(outs)),
                         (1, 0) + tuple(range(2, 2 + nsp)))
    cols, outs = _windows(x, kernel, stride, pads, dilation)  # (N, C, K, *outs)
    L = math.prod(outs)
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


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """col2im, the transpose of ``unfold``: (N, C * kH * kW, L) sliding blocks summed into
    (N, C, *output_size) (overlapping entries add up)."""
    if input.ndim == 2:
        return O.squeeze(fold(O.unsqueeze(input, 0), output_size, kernel_size, dilation,
                              padding, stride), 0)
    size = _tup(output_size, 2, "output_size")
    kernel, dilation = _tup(kernel_size, 2, "kernel_size"), _tup(dilation, 2, "dilation")
    padding, stride = _tup(padding, 2, "padding"), _tup(stride, 2, "stride")
    k = math.prod(kernel)
    outs = tuple(_out_size(size[i], kernel[i], stride[i], padding[i], padding[i], dilation[i])
                 for i in range(2))
    if input.ndim != 3 or input.shape[1] % k or input.shape[2] != math.prod(outs):
        raise RuntimeError(f"fold: expected input of shape (N, C * {k}, {math.prod(outs)}) "
                           f"for output_size {list(size)} and kernel_size {list(kernel)}, "
                           f"got {list(input.shape)}")
    n, c = input.shape[0], input.shape[1] // k
    cols = O.reshape(input, (n, c, k) + outs)
    return W.windows_t(cols, in_spatial=size, kernel=kernel, stride=stride, dilation=dilation,
                       outs=outs, pads=tuple((p, p) for p in padding))


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


def _tiling(kernel, stride, padding, dilation, x, ceil_mode) -> bool:
    """Do the windows tile the input without overlap or padding (max_pool2d(x, 2))? Then
    max pooling is one select per window (taiji._prims.pool), not im2col + max + col2im.
    With ceil_mode, a partial last window must not exist."""
    if tuple(stride) != tuple(kernel) or any(padding) or any(q != 1 for q in dilation):
        return False
    if any(n < q for n, q in zip(x.shape[-len(kernel):], kernel)):
        return False  # the general path reports the error
    return not ceil_mode or all(n % q == 0 for n, q in zip(x.shape[-len(kernel):], kernel))


def _relu_input(x: Tensor) -> Tensor | None:
    """``y`` when ``x`` is ``relu(y)`` as recorded for autograd and ``y`` is unchanged since,
    else None."""
    node = x._node
    if node is None or node.prim is not _RELU or node.freed or \
            node.versions[0] != node.inputs[0]._version:
        return None
    return node.inputs[0]


def _tiled_max_pool(x: Tensor, kernel, nsp: int) -> Tensor:
    """Max pooling over windows that tile ``x`` (see _tiling)."""
    def pool(t):
        if nsp == 1:  # as 2-D windows of height 1
            return O.squeeze(P.max_pool(O.unsqueeze(t, 2), kernel=(1,) + tuple(kernel)), 2)
        return P.max_pool(t, kernel=tuple(kernel))
    pre = _relu_input(x)
    if pre is not None:
        # max_pool(relu(y)) = relu(max_pool(y)) (relu is monotone), with the same gradient:
        # the window's first max gets it, times relu' there, in both orders. The relu then
        # runs on 1/K of the elements, and in a compiled step the full-size relu (and its
        # backward) is dead code when nothing else reads it
        return O.relu(_batched(pool, pre, nsp))
    return _batched(pool, x, nsp)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over kH x kW windows (padding counts as -inf)."""
    k, s, p, d = _pool_args(input, kernel_size, stride, padding, dilation, 2, "max_pool2d")
    if _tiling(k, s, p, d, input, ceil_mode) and not return_indices:
        return _tiled_max_pool(input, k, 2)

    def run(x):
        cols, outs = _windows(x, k, s, [(q, q) for q in p], d, -math.inf, ceil_mode)
        out = O.amax(cols, 2)
        if not return_indices:
            return out
        a = O.argmax(cols, 2)
        ki, kj = a // k[1], a % k[1]
        hh = O.const((np.arange(outs[0]) * s[0] - p[0]).reshape(-1, 1), x) + ki * d[0]
        ww = O.const((np.arange(outs[1]) * s[1] - p[1]).reshape(1, -1), x) + kj * d[1]
        return out, hh * x.shape[3] + ww
    return _batched(run, input, 2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over windows of the last dimension of (N, C, L) input."""
    k, s, p, d = _pool_args(input, kernel_size, stride, padding, dilation, 1, "max_pool1d")
    if _tiling(k, s, p, d, input, ceil_mode):
        return _tiled_max_pool(input, k, 1)

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
    return tot / O.const(div.astype(x.dtype.np), x)


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
    ah = O.const(_adaptive_matrix(h, out[0]).astype(d), input)
    aw = O.const(_adaptive_matrix(w, out[1]).T.astype(d), input)
    return O.matmul(O.matmul(ah, input), aw)


def adaptive_avg_pool1d(input: Tensor, output_size: int) -> Tensor:
    n = input.shape[-1]
    o = output_size if isinstance(output_size, int) else output_size[0]
    return O.matmul(input, O.const(_adaptive_matrix(n, o).T.astype(input.dtype.np), input))


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
