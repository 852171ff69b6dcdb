"""Backends: each is a small object behind the `xp` seam (see numpy_backend)."""
import numpy as _np

from taiji.backends.numpy_backend import numpy_backend, Backend

_BACKENDS = {"cpu": numpy_backend}


def register_backend(device_type: str, backend: "Backend") -> None:
    """Make ``backend`` serve tensors whose device type is ``device_type``."""
    _BACKENDS[device_type] = backend


def get_backend(device_type: str) -> "Backend":
    try:
        return _BACKENDS[device_type]
    except KeyError:
        raise RuntimeError(
            f"device type {device_type!r} is not available; available: "
            f"{', '.join(sorted(_BACKENDS))}") from None


def backend_of_array(a) -> "Backend":
    """The backend that owns array ``a`` (NumPy arrays belong to the CPU backend)."""
    if type(a).__module__.startswith("numpy") or isinstance(a, _np.generic):  # + ml_dtypes
        return numpy_backend
    for b in _BACKENDS.values():
        if b.owns(a):
            return b
    raise TypeError(f"no taiji backend holds arrays of type {type(a).__name__}")
