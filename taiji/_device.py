"""Devices: ``taiji.device('cpu')``, ``'cuda:0'``; which backend holds a payload; moving
tensors between devices (``Tensor.to``), differentiably.

A tensor's device is where its payload lives: NumPy arrays are on the CPU, CuPy arrays on a
GPU. Under ``taiji.jit`` a payload is a tracer whose device is the device of the traced
program (the device of its inputs), so code such as ``zeros(..., device=x.device)`` traces.
"""
from __future__ import annotations

import numpy as np

from taiji._core.primitive import Primitive, ShapedArray


class device:
    """A device name: ``type`` ('cpu' or 'cuda') and an optional ``index``.

    Example:
        >>> taiji.device("cuda:1").index
        1
    """

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
    """The device holding ``payload`` (a backend array or a transform's tracer)."""
    t = type(payload)
    if t is np.ndarray:
        return CPU
    from taiji.backends import _BY_TYPE, backend_of_array
    be = _BY_TYPE.get(t)
    if be is not None:
        return be.device_of(payload)
    dev = getattr(payload, "device", None)  # tracers carry the device of what they trace
    if isinstance(dev, device):
        return dev
    try:
        return backend_of_array(payload).device_of(payload)
    except TypeError:
        return CPU


def backend_for_payload(payload):
    """The backend whose array module computes on ``payload``."""
    from taiji.backends import _BY_TYPE, backend_of_array, numpy_backend
    t = type(payload)
    if t is np.ndarray:
        return numpy_backend
    be = _BY_TYPE.get(t)
    if be is not None:
        return be
    be = getattr(payload, "backend", None)
    if be is not None:
        return be
    return backend_of_array(payload)


def backend_for_device(dev):
    """The backend of device ``dev`` (a ``device``, a string such as 'cuda:0', or None for
    the CPU); a RuntimeError says why a device is unavailable."""
    from taiji.backends import get_backend, numpy_backend
    if dev is None:
        return numpy_backend
    return get_backend(dev.type if isinstance(dev, device) else device(dev).type)


def _is_concrete(p) -> bool:
    from taiji.backends import ARRAY_TYPES
    return type(p) in ARRAY_TYPES or not hasattr(p, "aval_str")  # every tracer has aval_str


def _move(a, dev: device):
    """Array ``a`` copied onto device ``dev`` (the same array when it is already there)."""
    from taiji.backends import backend_of_array, get_backend
    src = backend_of_array(a)
    dst = get_backend(dev.type)
    if src is dst and (dev.index is None or src.device_of(a) == dev):
        return a
    with dst.scope(dev.index):
        return dst.asarray(src.to_host(a))


def to_device(t, dev):
    """``t`` on device ``dev`` (the same tensor when it is already there). Differentiable:
    the gradient flows back to ``t``'s device. Inside ``taiji.jit`` it is the identity (a
    compiled program runs on the device of its inputs)."""
    dev = device(dev)
    p = t._data
    if type(p) is np.ndarray:
        if dev.type == "cpu":
            return t
    elif device_of(p) == dev:
        return t
    if not _is_concrete(p):
        from taiji.compiler.trace import current_trace
        if current_trace() is not None:
            return t
        return device_put(t, device=dev)  # vmap / jvp: their interpreters map the move
    from taiji._core.interpreters import STATE
    if t._requires_grad and STATE.grad_enabled:
        return device_put(t, device=dev)  # recorded on the tape
    from taiji._ops import Tensor
    return Tensor._from_payload(_move(p, dev))


# ``device_put``: a copy onto another device, as a primitive so that autograd, vmap and jvp
# see it (its VJP moves the cotangent back).
device_put = Primitive("device_put", vjp_reads_inputs=False)


@device_put.def_impl
def _device_put_impl(xp, x, *, device):
    return _move(x, device)


@device_put.def_shape
def _device_put_shape(x, *, device):
    return ShapedArray(x.shape, x.dtype)


device_put.def_vjp(lambda g, ins, out, *, device: (to_device(g, ins[0].device),))
device_put.def_jvp(lambda ts, ins, out, *, device: to_device(ts[0], device))
device_put.def_batch(lambda ins, dims, *, device: (to_device(ins[0], device), dims[0]))
