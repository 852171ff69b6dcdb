"""Devices: ``taiji.device('cpu')``, ``'cuda:0'``; which backend holds a payload."""
from __future__ import annotations

import numpy as np


class device:
    """A device name: ``type`` ('cpu' or 'cuda') and an optional ``index``."""

    __slots__ = ("type", "index")

    def __init__(self, type_or_name, index=None):
        if isinstance(type_or_name, device):
            self.type, self.index = type_or_name.type, type_or_name.index
            return
        name = str(type_or_name)
        if ":" in name:
            name, idx = name.split(":", 1)
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type_or_name}'")
            index = int(idx)
        if name not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device "
                               f"string: {type_or_name}")
        self.type = name
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        if self.type == "cpu":
            return other.type == "cpu"
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0 if self.type == "cuda" else None))

    def __repr__(self):
        return f"device(type='{self.type}'" + (
            f", index={self.index})" if self.index is not None else ")")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


def device_of(payload) -> device:
    if type(payload) is np.ndarray:
        return CPU
    dev = getattr(payload, "device", None)
    if isinstance(dev, device):
        return dev
    from taiji.backends import backend_of_array
    try:
        return device(backend_of_array(payload).device_name(payload))
    except TypeError:
        return CPU


def backend_for_payload(payload):
    from taiji.backends import backend_of_array, numpy_backend
    if type(payload) is np.ndarray:
        return numpy_backend
    be = getattr(payload, "backend", None)
    if be is not None:
        return be
    return backend_of_array(payload)


def backend_for_device(dev):
    from taiji.backends import get_backend
    return get_backend(device(dev).type if dev is not None else "cpu")


def to_device(t, dev):
    """``t`` on device ``dev`` (the same tensor when it is already there)."""
    dev = device(dev)
    if t.device == dev:
        return t
    from taiji.backends import get_backend
    be = get_backend(dev.type)
    src = backend_for_payload(t._data)
    from taiji._ops import const
    return const(be.asarray(src.to_host(t._data)))
