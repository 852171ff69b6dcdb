"""PyTorch-like ``repr`` for tensors."""
from __future__ import annotations

import numpy as np

from taiji import _dtypes as dt

_DEFAULT_SHOWN = {"float32", "int64", "bool"}


def _fmt_array(a: np.ndarray) -> str:
    if a.dtype == dt.bfloat16.np or a.dtype == np.float16:
        a = a.astype(np.float32)
    kw = dict(separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, max_line_width=80)
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        integral = finite.size == 0 or np.all(finite == np.round(finite))
        big = finite.size and (np.abs(finite).max() >= 1e8 or
                               (np.abs(finite[finite != 0]).min() < 1e-4 if
                                np.any(finite != 0) else False))
        if integral and not big:
            kw["formatter"] = {"float_kind": lambda v: f"{v:.0f}." if np.isfinite(v) else
                               ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))}
        elif big:
            kw["formatter"] = {"float_kind": lambda v: f"{v:.4e}"}
        else:
            kw["formatter"] = {"float_kind": lambda v: f"{v:.4f}"}
    return np.array2string(a, **kw)


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
