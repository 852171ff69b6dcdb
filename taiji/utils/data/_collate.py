"""``default_collate`` and ``default_convert`` (PyTorch's rules, taiji tensors)."""
from __future__ import annotations

import collections.abc as cabc
from typing import Any

import numpy as np

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji.tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
        "found {}")


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _np_ok(a: np.ndarray) -> bool:
    return a.dtype.kind in "biuf" and a.dtype in dt._BY_NP


def default_collate(batch: list) -> Any:
    """Stack a list of samples into a batch.

    Tensors and NumPy arrays are stacked into one tensor (a new leading dimension); Python
    floats become a float64 tensor, ints an int64 tensor, bools a bool tensor; strings stay
    a list; dicts, namedtuples, tuples and lists are collated field by field (tuples and
    lists give lists, as in PyTorch).

    Args:
        batch: the samples, e.g. ``[(x0, y0), (x1, y1)]``.

    Returns:
        The batch, e.g. ``[X, Y]``.

    Example:
        >>> default_collate([(taiji.ones(2), 0), (taiji.zeros(2), 1)])
        [tensor([[1., 1.], [0., 0.]]), tensor([0, 1])]
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        if isinstance(batch, (list, tuple)):
            return []
        raise TypeError(_ERR.format(type(batch)))
    elem = batch[0]
    if isinstance(elem, Tensor):
        if any(isinstance(b, Tensor) and b.requires_grad for b in batch):
            return O.stack(list(batch), 0)
        try:
            return O.const(np.stack([b._concrete("default_collate") for b in batch]))
        except ValueError:
            shapes = sorted({tuple(b.shape) for b in batch})
            raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, "
                               f"but got shapes {[list(s) for s in shapes]}") from None
    if isinstance(elem, np.ndarray):
        if not _np_ok(elem):
            raise TypeError(_ERR.format(elem.dtype))
        try:
            return O.const(np.stack(batch))
        except ValueError:
            shapes = sorted({b.shape for b in batch})
            raise RuntimeError(f"default_collate: stack expects each array to be equal size, "
                               f"but got shapes {[list(s) for s in shapes]}") from None
    if isinstance(elem, np.generic):
        if not _np_ok(np.asarray(elem)):
            raise TypeError(_ERR.format(type(elem)))
        return O.const(np.asarray(batch))
    if isinstance(elem, bool):
        return O.const(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return O.const(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return O.const(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, cabc.Mapping):
        try:
            return type(elem)({k: default_collate([d[k] for d in batch]) for k in elem})
        except TypeError:
            return {k: default_collate([d[k] for d in batch]) for k in elem}
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, cabc.Sequence):
        n = len(elem)
        if any(len(b) != n for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(_ERR.format(type(elem)))


def default_convert(data: Any) -> Any:
    """Convert NumPy arrays (inside dicts, lists, tuples) to tensors; used when automatic
    batching is off (``batch_size=None``)."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return O.const(data) if _np_ok(data) else data
    if isinstance(data, np.generic):
        return O.const(np.asarray(data)) if _np_ok(np.asarray(data)) else data
    if isinstance(data, cabc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return tuple(default_convert(d) for d in data)
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data
