"""The reference backend: NumPy on the CPU. It is the executable spec other backends follow."""
from __future__ import annotations

import math

import numpy as np


class Backend:
    """What the core needs from a device: an array module `xp` and a few entry points.

    Primitive `impl` rules are written once over `xp`; special functions NumPy lacks
    (erf) live here so each backend can supply its own.
    """

    def __init__(self, name: str, xp):
        self.name = name
        self.xp = xp

    def owns(self, a) -> bool:
        return isinstance(a, self.xp.ndarray)

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a)

    def device_name(self, a) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    """Elementwise erf. Exact (math.erf per element); SciPy's vectorised one when present."""
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - depends on the environment
        return _erf_scalar(x.astype(np.float64)).astype(x.dtype)
    if x.dtype in (np.float32, np.float64):
        return erf(x)
    return erf(x.astype(np.float32)).astype(x.dtype)


class NumpyBackend(Backend):
    def __init__(self):
        super().__init__("cpu", np)
        self.erf = _erf


numpy_backend = NumpyBackend()
