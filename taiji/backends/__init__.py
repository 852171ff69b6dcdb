"""Backends: each is a small object behind the `xp` seam (see numpy_backend).

The CPU backend (NumPy) is always here. The CUDA one (CuPy, ``cupy_backend``) is loaded on
first demand (``device='cuda'``, ``taiji.cuda.is_available()``), so ``import taiji`` never
pays for importing CuPy, and a machine without CuPy or a GPU works as before.
"""
from __future__ import annotations

import numpy as _np

from taiji.backends.numpy_backend import numpy_backend, Backend

_BACKENDS: dict = {"cpu": numpy_backend}
_BY_TYPE: dict = {_np.ndarray: numpy_backend}  # exact array type -> backend (hot lookups)
_BY_XP: dict = {id(_np): numpy_backend}       # id(array module) -> backend (impl hooks)
#: exact types of concrete arrays of any registered backend (jit's fast signature path)
ARRAY_TYPES: set = {_np.ndarray}

_cuda_error: str | None = None  # why CUDA could not be loaded (None: not tried yet / loaded)


def register_backend(device_type: str, backend: Backend) -> None:
    """Make ``backend`` serve tensors whose device type is ``device_type``."""
    old = _BACKENDS.get(device_type)
    if old is not None and old is not backend:
        unregister_backend(device_type)
    _BACKENDS[device_type] = backend
    for t in getattr(backend, "array_types", ()):
        _BY_TYPE[t] = backend
        ARRAY_TYPES.add(t)
    _BY_XP[id(backend.xp)] = backend


def unregister_backend(device_type: str) -> None:
    """Forget the backend of ``device_type`` (tests swap a fake CUDA backend in and out)."""
    be = _BACKENDS.pop(device_type, None)
    if be is None or be is numpy_backend:
        return
    for t in getattr(be, "array_types", ()):
        if _BY_TYPE.get(t) is be:
            del _BY_TYPE[t]
            ARRAY_TYPES.discard(t)
    if _BY_XP.get(id(be.xp)) is be:
        del _BY_XP[id(be.xp)]


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA backend cannot be used here (None when it can)."""
    if "cuda" in _BACKENDS:
        return None
    _load_cuda()
    return None if "cuda" in _BACKENDS else _cuda_error


def _load_cuda() -> None:
    """Register the CuPy backend if CuPy imports and sees a GPU; else remember why not."""
    global _cuda_error
    if "cuda" in _BACKENDS or _cuda_error is not None:
        return
    try:
        from taiji.backends.cupy_backend import load
        register_backend("cuda", load())
    except ImportError as e:
        _cuda_error = (f"CuPy is not installed ({e}); install the CUDA extra with "
                       f"`pip install -e '.[cuda]'` (it brings cupy-cuda12x) on a machine with "
                       f"an NVIDIA GPU")
    except RuntimeError as e:  # CuPy is there but finds no usable GPU or driver
        _cuda_error = str(e)


def get_backend(device_type: str) -> Backend:
    """The backend serving ``device_type`` ('cpu', 'cuda'), or a RuntimeError saying why
    that device cannot be used here and what to do."""
    be = _BACKENDS.get(device_type)
    if be is not None:
        return be
    if device_type == "cuda":
        _load_cuda()
        be = _BACKENDS.get("cuda")
        if be is not None:
            return be
        raise RuntimeError(
            f"device 'cuda' was requested, but CUDA is not available here: {_cuda_error}. "
            f"Use device='cpu' (taiji.cuda.is_available() tells whether CUDA can be used)")
    raise RuntimeError(f"device type {device_type!r} is not available; available: "
                       f"{', '.join(sorted(_BACKENDS))}")


def backend_of_array(a) -> Backend:
    """The backend that owns array ``a`` (NumPy arrays belong to the CPU backend)."""
    be = _BY_TYPE.get(type(a))
    if be is not None:
        return be
    for b in _BACKENDS.values():  # device backends first: their arrays may subclass ndarray
        if b is not numpy_backend and b.owns(a):
            return b
    if numpy_backend.owns(a):
        return numpy_backend
    if type(a).__module__.startswith("cupy"):  # a CuPy array before the backend was loaded
        return get_backend("cuda")
    raise TypeError(f"no taiji backend holds arrays of type {type(a).__name__}")


def backend_for_xp(xp) -> Backend:
    """The backend whose array module is ``xp`` (impl rules call its hooks)."""
    be = _BY_XP.get(id(xp))
    if be is not None:
        return be
    for b in _BACKENDS.values():
        if b.xp is xp:
            return b
    raise TypeError(f"no taiji backend uses the array module {getattr(xp, '__name__', xp)!r}")


from taiji.backends import cuda  # noqa: E402,F401  (taiji.backends.cuda.matmul.allow_tf32)

__all__ = ["Backend", "numpy_backend", "register_backend", "unregister_backend",
           "get_backend", "backend_of_array", "backend_for_xp", "cuda_unavailable_reason",
           "ARRAY_TYPES"]
