"""PyTorch-like ``repr`` for tensors."""
from __future__ import annotations

import numpy as np

from taiji import _dtypes as dt

_DEFAULT_SHOWN = {"float32", "int64", "bool"}


def _summarized(a: np.ndarray, edge: int = 3) -> np.ndarray:
    """The values a summarised print shows: the first and last ``edge`` along each axis."""
    for ax in range(a.ndim):
        if a.shape[ax] > 2 * edge:
            idx = np.r_[0:edge, a.shape[ax] - edge:a.shape[ax]]
            a = np.take(a, idx, axis=ax)
    return a


def _fmt_array(a: np.ndarray) -> str:
    if a.dtype == dt.bfloat16.np or a.dtype == np.float16:
        a = a.astype(np.float32)
    kw = dict(separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, max_line_width=80)
    if a.dtype.kind == "f":
        shown = _summarized(a) if a.size > 1000 else a  # PyTorch formats by what is shown
        finite = shown[np.isfinite(shown)]
        integral = finite.size == 0 or np.all(finite == np.round(finite))
        # PyTorch's _Formatter: scientific when the nonzero finite magnitudes span more than
        # 1000x, exceed 1e8, or (non-integral values only) go below 1e-4
        mags = np.abs(finite[finite != 0]).astype(np.float64)
        big = bool(mags.size) and bool(
            mags.max() / mags.min() > 1000.0 or mags.max() > 1e8 or
            (not integral and mags.min() < 1e-4))
        if integral and not big:
            def fmt(v):
                return f"{v:.0f}." if np.isfinite(v) else f"{v}"
        elif big:
            def fmt(v):
                return f"{v:.4e}" if np.isfinite(v) else f"{v}"
        else:
            def fmt(v):
                return f"{v:.4f}" if np.isfinite(v) else f"{v}"
        # PyTorch pads every element to the widest one so columns line up
        # (over the nonzero finite values, as PyTorch's _Formatter; the widest is the
        # largest or the smallest, so no full scan)
        nz = finite[finite != 0]
        cands = [nz.max(), nz.min()] if nz.size else []
        width = max((len(fmt(v)) for v in cands), default=0)
        kw["formatter"] = {"float_kind": lambda v: fmt(v).rjust(width)}
    out = np.array2string(a, **kw)
    # PyTorch writes the summarising ellipsis inside a row as a padded ' ...' element
    return out.replace(", ..., ", ",  ..., ") if a.size > 1000 else out


def tensor_repr(t) -> str:
    d = t._data
    extras = []
    if type(d) is not np.ndarray and hasattr(d, "aval_str"):
        return f"Tensor(traced {d.aval_str()})"
    try:
        a = t._concrete("repr")
    except Exception:  # pragma: no cover - tracers without a concrete value
        return f"Tensor(shape={list(t.shape)}, dtype={t.dtype})"
    body = _fmt_array(np.asarray(a))
    if t.device.type != "cpu":
        extras.append(f"device='{t.device}'")
    if t.dtype.name not in _DEFAULT_SHOWN or (a.size == 0 and t.dtype.name != "float32"):
        extras.append(f"dtype={t.dtype}")
    if a.size == 0 and a.ndim > 1:
        extras.insert(0, f"size={tuple(a.shape)}")
    if t._node is not None:
        extras.append(f"grad_fn=<{t._node.name()}>")
    elif t._requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
