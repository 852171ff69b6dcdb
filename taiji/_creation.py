"""Tensor creation: from data, filled, ranges and identity (random ones are in taiji.random)."""
from __future__ import annotations

import builtins
import math

import numpy as np

from taiji import _dtypes as dt
from taiji._device import device as _device
from taiji import _ops as O

__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "zeros", "ones", "full", "empty",
           "arange", "linspace", "logspace", "eye", "zeros_like", "ones_like", "full_like",
           "empty_like", "scalar_tensor"]


def _where(device):
    """(backend, device index) for a ``device=`` argument: None, a string or a device. A
    device that cannot be used here raises the RuntimeError that says why."""
    if device is None:
        from taiji.backends import numpy_backend
        return numpy_backend, None
    d = device if isinstance(device, _device) else _device(device)
    from taiji.backends import get_backend
    return get_backend(d.type), d.index


def _make(device, fn):
    """``fn(xp)`` run where new arrays land on ``device``."""
    be, index = _where(device)
    if index is None:
        return fn(be.xp)
    with be.scope(index):
        return fn(be.xp)


def _put(device, arr: np.ndarray):
    """Host array ``arr`` on ``device`` (itself for the CPU)."""
    be, index = _where(device)
    if be.name == "cpu":
        return arr
    with be.scope(index):
        return be.asarray(arr)


def _device_array(data) -> bool:
    """Is ``data`` an array of a device backend (not NumPy's)?"""
    from taiji.backends import ARRAY_TYPES
    return type(data) in ARRAY_TYPES and type(data) is not np.ndarray


def _backend_of(data):
    from taiji.backends import backend_of_array
    return backend_of_array(data)


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
        if device is None:
            device = data.device  # a copy stays where the data was (as in PyTorch)
    elif _device_array(data):  # e.g. a CuPy array: a copy on its device
        be = _backend_of(data)
        arr = be.to_host(data)
        d = dt.to_dtype(dtype) if dtype is not None else dt.from_np(arr.dtype)
        if device is None:
            device = be.device_of(data)
    else:
        arr = _to_numpy(data)
        d = dt.to_dtype(dtype) if dtype is not None else _infer_dtype(arr, data)
    arr = arr.astype(d.np, copy=False)
    return _finish(_put(device, arr), requires_grad)


def as_tensor(data, dtype=None, device=None) -> O.Tensor:
    """Like ``tensor`` but shares memory with a NumPy array or tensor when it can."""
    if isinstance(data, O.Tensor):
        out = data if dtype is None else data.to(dtype)
        return out if device is None else out.to(device)
    if _device_array(data) and (device is None or _backend_of(data).device_of(data) ==
                                _device(device)):  # share the device array
        d = dt.to_dtype(dtype) if dtype is not None else dt.from_np(data.dtype)
        return O.const(data.astype(d.np, copy=False))
    if isinstance(data, np.ndarray) and (device is None or _device(device).type == "cpu"):
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
    shape = _size((size,) if isinstance(size, int) else (tuple(size),))
    return _finish(_make(device, lambda xp: xp.full(shape, fill_value, dtype=d.np)),
                   requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    shape, d = _size(size), _dtype(dtype).np
    if device is None:  # (the common call: no device lookup)
        return _finish(np.zeros(shape, dtype=d), requires_grad)
    return _finish(_make(device, lambda xp: xp.zeros(shape, dtype=d)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    shape, d = _size(size), _dtype(dtype).np
    return _finish(_make(device, lambda xp: xp.ones(shape, dtype=d)), requires_grad)


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
    arr = (start + step * np.arange(n, dtype=np.float64)) if d.is_floating_point else \
        np.arange(start, start + n * step, step)[:n]
    return _finish(_put(device, arr.astype(d.np)), requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    d = _dtype(dtype)
    return _finish(_put(device, np.linspace(start, end, steps).astype(d.np)), requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None,
             requires_grad=False) -> O.Tensor:
    d = _dtype(dtype)
    return _finish(_put(device, np.logspace(start, end, steps, base=base).astype(d.np)),
                   requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """The identity matrix (``n`` x ``m``)."""
    d = _dtype(dtype).np
    return _finish(_make(device, lambda xp: xp.eye(n, n if m is None else m, dtype=d)),
                   requires_grad)


def scalar_tensor(value, *, dtype=None, device=None) -> O.Tensor:
    return full((), value, dtype=dtype or dt.get_default_dtype(), device=device)


def is_tensor(obj) -> bool:
    return isinstance(obj, O.Tensor)


def numel(t) -> int:
    return t.numel()


