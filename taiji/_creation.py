"""Tensor creation: from data, filled, ranges and identity (random ones are in taiji.random)."""
from __future__ import annotations

import builtins
import math

import numpy as np

from taiji import _dtypes as dt
from taiji._device import backend_for_device
from taiji import _ops as O

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "zeros", "ones", "full", "empty",
           "arange", "linspace", "logspace", "eye", "zeros_like", "ones_like", "full_like",
           "empty_like", "scalar_tensor"]


def _finish(arr, requires_grad=False):
    t = O.const(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(arr: np.ndarray, data) -> dt.DType:
    k = arr.dtype.kind
    if k == "b":
        return dt.bool_
    if k in "iu":
        return dt.from_np(arr.dtype) if isinstance(data, (np.ndarray, np.generic)) else dt.int64
    if k == "f":
        if isinstance(data, (np.ndarray, np.generic)) or arr.dtype == dt.bfloat16.np:
            return dt.from_np(arr.dtype)
        return dt.get_default_dtype()
    raise TypeError(f"tensor(): could not infer a dtype from {type(data).__name__} with NumPy "
                    f"dtype {arr.dtype}; pass numbers, nested lists of numbers, or arrays")


def _to_numpy(data):
    if isinstance(data, O.Tensor):
        return np.array(data._concrete("tensor()"))
    if isinstance(data, (list, tuple)) and data and builtins.any(
            isinstance(x, (O.Tensor, list, tuple)) for x in data):
        return np.array([_to_numpy(x) for x in data])
    return np.array(data)


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False,
           pin_memory: bool = False) -> O.Tensor:
    """A new tensor copying ``data`` (numbers, nested lists, NumPy arrays, tensors).

    Python floats become ``float32`` (the default dtype), ints ``int64``, bools ``bool``.

    Example:
        >>> taiji.tensor([[1, 2], [3, 4]], dtype=taiji.float32)
    """
    if isinstance(data, O.Tensor):
        arr = np.array(data._concrete("tensor()"))
        d = dt.to_dtype(dtype) if dtype is not None else data.dtype
    else:
        arr = _to_numpy(data)
        d = dt.to_dtype(dtype) if dtype is not None else _infer_dtype(arr, data)
    arr = arr.astype(d.np, copy=False)
    be = backend_for_device(device)
    return _finish(be.asarray(arr) if be.name != "cpu" else arr, requires_grad)


def as_tensor(data, dtype=None, device=None) -> O.Tensor:
    """Like ``tensor`` but shares memory with a NumPy array or tensor when it can."""
    if isinstance(data, O.Tensor):
        out = data if dtype is None else data.to(dtype)
        return out if device is None else out.to(device)
    if isinstance(data, np.ndarray) and device in (None, "cpu"):
        d = dt.to_dtype(dtype) if dtype is not None else _infer_dtype(data, data)
        return O.const(data.astype(d.np, copy=False))
    return tensor(data, dtype=dtype, device=device)


asarray = as_tensor


def from_numpy(a: np.ndarray) -> O.Tensor:
    """A tensor sharing memory with NumPy array ``a`` (writes show in both)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    dt.from_np(a.dtype)
    return O.const(a)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = tuple(int(s) for s in size)
    for s in out:
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(out)}")
    return out


def _dtype(dtype, default=None) -> dt.DType:
    return dt.to_dtype(dtype) if dtype is not None else (default or dt.get_default_dtype())


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (dtype inferred from the value)."""
    if dtype is None:
        dtype = dt._scalar_dtype(fill_value) if isinstance(fill_value, (bool, int, float)) \
            else None
    d = _dtype(dtype)
    xp = backend_for_device(device).xp
    return _finish(xp.full(_size((size,) if isinstance(size, int) else (tuple(size),)),
                           fill_value, dtype=d.np), requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    xp = backend_for_device(device).xp
    return _finish(xp.zeros(_size(size), dtype=_dtype(dtype).np), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    xp = backend_for_device(device).xp
    return _finish(xp.ones(_size(size), dtype=_dtype(dtype).np), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """An uninitialised tensor (taiji zero-fills it: reading it is then deterministic)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def _like(t, dtype, device):
    return (dt.to_dtype(dtype) if dtype is not None else t.dtype,
            device if device is not None else t.device)


def zeros_like(t, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    d, dev = _like(t, dtype, device)
    return zeros(t.shape, dtype=d, device=dev, requires_grad=requires_grad)


def ones_like(t, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    d, dev = _like(t, dtype, device)
    return ones(t.shape, dtype=d, device=dev, requires_grad=requires_grad)


def empty_like(t, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    return zeros_like(t, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t, fill_value, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    d, dev = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=d, device=dev, requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None,
           requires_grad=False) -> O.Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 unless a float is given."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, O.Tensor) else v for v in (start, end, step)]
    start, end, step = vals
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound and larger bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    if dtype is None:
        dtype = dt.int64 if builtins.all(isinstance(v, int) for v in vals) else \
            dt.get_default_dtype()
    d = dt.to_dtype(dtype)
    n = builtins.max(0, math.ceil((end - start) / step))
    xp = backend_for_device(device).xp
    arr = (start + step * np.arange(n, dtype=np.float64)) if d.is_floating_point else \
        np.arange(start, start + n * step, step)[:n]
    return _finish(xp.asarray(arr.astype(d.np)), requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    d = _dtype(dtype)
    xp = backend_for_device(device).xp
    return _finish(xp.asarray(np.linspace(start, end, steps).astype(d.np)), requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None,
             requires_grad=False) -> O.Tensor:
    d = _dtype(dtype)
    xp = backend_for_device(device).xp
    return _finish(xp.asarray(np.logspace(start, end, steps, base=base).astype(d.np)),
                   requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """The identity matrix (``n`` x ``m``)."""
    xp = backend_for_device(device).xp
    return _finish(xp.eye(n, n if m is None else m, dtype=_dtype(dtype).np), requires_grad)


def scalar_tensor(value, *, dtype=None, device=None) -> O.Tensor:
    return full((), value, dtype=dtype or dt.get_default_dtype(), device=device)


def is_tensor(obj) -> bool:
    return isinstance(obj, O.Tensor)


def numel(t) -> int:
    return t.numel()


