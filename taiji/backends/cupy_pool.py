"""Max pooling over non-overlapping windows on CUDA: one kernel each for ``max_pool`` and
``max_pool_route`` (taiji/_prims/pool.py states the semantics).

The array-module rule scans a window with a ``where`` per position (about a dozen CuPy
launches per pooling layer and direction, measured at ~300 us of a CNN step on an H200);
here one thread computes one output (pool) or one input position (route: it rescans its
window, kh * kw reads, and keeps the gradient if it holds the window's first maximum).
The scan is the rule's: a value replaces the running maximum when it is greater or NaN.
float32 and float64, C-contiguous (N, C, H, W) inputs (others use the array rule).
"""
from __future__ import annotations

import re

import numpy as np

_CT = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
THREADS = 256

POOL = r"""
extern "C" __global__ void NAME(const T* x, T* y, long long total, int H, int W, int OH,
                                int OW, int KH, int KW) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long ow = i % OW, r = i / OW, oh = r % OH, nc = r / OH;
    const T* b = x + nc * H * W + oh * KH * W + ow * KW;
    T m = b[0];
    for (int k = 1; k < KH * KW; k++) {
      const T v = b[(k / KW) * W + k % KW];
      if (v > m || isnan(v)) m = v;
    }
    y[i] = m;
  }
}
"""

ROUTE = r"""
extern "C" __global__ void NAME(const T* g, const T* x, T* dx, long long total, int H, int W,
                                int OH, int OW, int KH, int KW) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long w = i % W, r = i / W, h = r % H, nc = r / H;
    const long long oh = h / KH, ow = w / KW;
    T out = (T)0;
    if (oh < OH && ow < OW) {
      const T* b = x + nc * H * W + oh * KH * W + ow * KW;
      T m = b[0];
      int best = 0;
      for (int k = 1; k < KH * KW; k++) {
        const T v = b[(k / KW) * W + k % KW];
        if (v > m || isnan(v)) { m = v; best = k; }
      }
      if ((h - oh * KH) * KW + (w - ow * KW) == best) out = g[(nc * OH + oh) * OW + ow];
    }
    dx[i] = out;
  }
}
"""

_kernels: dict = {}


def sources(dtype) -> dict:
    """{kind: (kernel name, CUDA source)} of the 'pool' and 'route' kernels for ``dtype``."""
    t = _CT[np.dtype(dtype)]
    out = {}
    for kind, text in (("pool", POOL), ("route", ROUTE)):
        name = f"taiji_max_{kind}_{np.dtype(dtype).name}"
        out[kind] = (name, re.sub(r"\bT\b", t, text.replace("NAME", name)))
    return out


def supported(*arrays) -> bool:
    return (np.dtype(arrays[0].dtype) in _CT and all(a.dtype == arrays[0].dtype for a in arrays)
            and all(a.ndim == 4 for a in arrays) and arrays[-1].size < 2 ** 62
            and max(arrays[-1].shape[2:]) < 2 ** 31)


def _get(cupy, dtype, kind):
    key = (np.dtype(dtype), kind)
    k = _kernels.get(key)
    if k is None:
        name, src = sources(dtype)[kind]
        k = _kernels[key] = cupy.RawKernel(src, name)
    return k


def _grid(total: int) -> tuple:
    return (max(1, min(-(-total // THREADS), 1 << 20)),), (THREADS,)


def max_pool(cupy, x, kernel):
    """(N, C, H // kh, W // kw): each window's maximum."""
    kh, kw = kernel
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    x = cupy.ascontiguousarray(x)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    total = y.size
    if total:
        _get(cupy, x.dtype, "pool")(*_grid(total), (x, y, np.int64(total), np.int32(h),
                                                    np.int32(w), np.int32(oh), np.int32(ow),
                                                    np.int32(kh), np.int32(kw)))
    return y


def max_pool_route(cupy, g, x, kernel):
    """x-shaped: each window's gradient at its first maximum, zero elsewhere."""
    kh, kw = kernel
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    x = cupy.ascontiguousarray(x)
    g = cupy.ascontiguousarray(g)
    dx = cupy.empty(x.shape, dtype=x.dtype)
    total = dx.size
    if total:
        _get(cupy, x.dtype, "route")(*_grid(total), (g, x, dx, np.int64(total), np.int32(h),
                                                     np.int32(w), np.int32(oh), np.int32(ow),
                                                     np.int32(kh), np.int32(kw)))
    return dx
