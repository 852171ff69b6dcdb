"""Softmax cross-entropy with its gradient on CUDA in three kernels.

The array-module rule (taiji/_prims/nn.py, ``_XentParts``) costs about twenty CuPy launches
(max, exp, sums, a gather, a scatter, the scaling), each a node of its own in a captured
step and each a pass over the logits. Here:

1. ``rows``: one warp per row computes the row's maximum, ``s = sum(exp(x - max))``, its
   loss ``(log(s) - (x[label] - max)) * valid`` and the unscaled gradient
   ``exp(x - max) / s - onehot``; ``valid`` is ``label != ignore_index``.
2. ``total``: one block sums the row losses and the valid rows in a fixed order (the same
   bits every run) and writes the loss (mean or sum) and the count.
3. an elementwise kernel scales the gradient by ``(valid / count) * g``, the order of the
   array-module rule.

NaN follows NumPy (a NaN logit makes its row's maximum NaN); a label out of range gives a
NaN loss for its row rather than an error (reading it on the host would wait for the GPU,
as PyTorch's device-side assert does). float32 and float64 logits, int32 and int64 labels.
"""
from __future__ import annotations

import re

import numpy as np

_CT = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_LT = {np.dtype(np.int64): "long long", np.dtype(np.int32): "int"}
WARPS_PER_BLOCK = 8

ROWS = r"""
extern "C" __global__ void NAME(const T* x, const L* labels, T* d, T* rowloss, T* rowvalid,
                                int n, int c, long long ignore) {
  const int lane = threadIdx.x & 31;
  const long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  if (row >= n) return;
  const T* xr = x + row * c;
  T m = xr[0];
  for (int j = lane; j < c; j += 32) {
    const T v = xr[j];
    m = (v > m || isnan(v)) ? v : m;
  }
  for (int off = 16; off > 0; off >>= 1) {
    const T o = __shfl_xor_sync(0xffffffffu, m, off);
    m = (o > m || isnan(o)) ? o : m;
  }
  T s = 0;
  for (int j = lane; j < c; j += 32) s += exp(xr[j] - m);
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  const long long lab = (long long)labels[row];
  const bool valid = lab != ignore;
  const long long safe = valid ? lab : 0;
  T* dr = d + row * c;
  for (int j = lane; j < c; j += 32) {
    T v = exp(xr[j] - m) / s;
    if (j == safe) v -= (T)1;
    dr[j] = v;
  }
  if (lane == 0) {
    const T picked = (safe >= 0 && safe < c) ? xr[safe] - m : (T)nan("");
    rowloss[row] = (log(s) - picked) * (T)valid;
    rowvalid[row] = (T)valid;
  }
}
"""

TOTAL = r"""
extern "C" __global__ void NAME(const T* rowloss, const T* rowvalid, T* loss, T* count,
                                int n, int mean) {
  __shared__ T sl[1024];
  __shared__ T sv[1024];
  const int t = threadIdx.x;
  T a = 0, b = 0;
  for (int i = t; i < n; i += blockDim.x) { a += rowloss[i]; b += rowvalid[i]; }
  sl[t] = a;
  sv[t] = b;
  __syncthreads();
  for (int k = blockDim.x >> 1; k > 0; k >>= 1) {
    if (t < k) { sl[t] += sl[t + k]; sv[t] += sv[t + k]; }
    __syncthreads();
  }
  if (t == 0) {
    loss[0] = mean ? sl[0] / sv[0] : sl[0];
    count[0] = mean ? sv[0] : (T)1;
  }
}
"""

_kernels: dict = {}


def sources(dtype, label_dtype) -> dict:
    """{kind: (kernel name, CUDA source)} of the 'rows' and 'total' kernels for logits of
    ``dtype`` and labels of ``label_dtype``."""
    t, lt = _CT[np.dtype(dtype)], _LT[np.dtype(label_dtype)]
    suffix = f"{np.dtype(dtype).name}_{np.dtype(label_dtype).name}"
    out = {}
    for kind, text in (("rows", ROWS), ("total", TOTAL)):
        name = f"taiji_xent_{kind}_{suffix}"
        out[kind] = (name, _fill(text, name, t, lt))
    return out


def _fill(text: str, name: str, t: str, lt: str) -> str:
    """The template with its kernel name, float type T and label type L filled in."""
    text = text.replace("NAME", name)
    text = re.sub(r"\bT\b", t, text)
    return re.sub(r"\bL\b", lt, text)


def supported(logits, labels, reduction: str) -> bool:
    return (np.dtype(logits.dtype) in _CT and np.dtype(labels.dtype) in _LT
            and reduction in ("mean", "sum", "none") and logits.ndim == 2
            and logits.shape[0] > 0 and logits.shape[1] > 0
            and logits.shape[0] < 2 ** 31 and logits.shape[1] < 2 ** 31)


def _get(cupy, dtype, label_dtype):
    key = (np.dtype(dtype), np.dtype(label_dtype))
    k = _kernels.get(key)
    if k is None:
        src = sources(dtype, label_dtype)
        rows = cupy.RawKernel(src["rows"][1], src["rows"][0])
        total = cupy.RawKernel(src["total"][1], src["total"][0])
        scale = cupy.ElementwiseKernel("T v, T cnt, T g", "T d", "d = d * ((v / cnt) * g)",
                                       "taiji_xent_scale")
        k = _kernels[key] = (rows, total, scale)
    return k


def softmax_xent_with_grad(cupy, logits, labels, g, ignore_index: int, reduction: str,
                           parts: str = "both"):
    """``(loss, dlogits)`` as the merged primitive's rule computes them (see the module
    docstring); the caller has checked ``supported``. ``parts='loss'`` skips the scaling
    (dlogits is then None, and ``g`` unused): the loss primitive alone."""
    rows, total, scale = _get(cupy, logits.dtype, labels.dtype)
    n, c = logits.shape
    x = cupy.ascontiguousarray(logits)
    lab = cupy.ascontiguousarray(labels)
    dt = x.dtype
    d = cupy.empty((n, c), dtype=dt)
    rowloss = cupy.empty(n, dtype=dt)
    rowvalid = cupy.empty(n, dtype=dt)
    threads = 32 * WARPS_PER_BLOCK
    blocks = (n + WARPS_PER_BLOCK - 1) // WARPS_PER_BLOCK
    rows((blocks,), (threads,), (x, lab, d, rowloss, rowvalid, np.int32(n), np.int32(c),
                                 np.int64(ignore_index)))
    if reduction == "none":
        if parts == "loss":
            return rowloss, None
        w = cupy.asarray(g, dtype=dt).reshape(-1, 1)
        scale(rowvalid[:, None], cupy.ones((), dtype=dt), w, d)
        return rowloss, d
    loss = cupy.empty((), dtype=dt)
    count = cupy.empty((), dtype=dt)
    total((1,), (1024,), (rowloss, rowvalid, loss, count, np.int32(n),
                          np.int32(reduction == "mean")))
    if parts == "loss":
        return loss, None
    scale(rowvalid[:, None], count, cupy.asarray(g, dtype=dt), d)
    return loss, d
