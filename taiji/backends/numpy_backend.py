"""The reference backend: NumPy on the CPU. It is the executable spec other backends follow."""
from __future__ import annotations

import contextlib
import math

import numpy as np


class Backend:
    """What the core needs from a device: an array module `xp` and a few entry points.

    Primitive ``impl`` rules are written once over ``xp``. Where array modules differ (NumPy's
    ``np.add.at`` vs CuPy's ``cupyx.scatter_add``, ``as_strided``'s arguments, special
    functions such as erf), the rule calls the hook here instead, found with
    ``taiji.backends.backend_for_xp(xp)``; each backend supplies its own.

    Attributes:
        name: the device type this backend serves ('cpu', 'cuda').
        xp: the array module (numpy, cupy, ...).
        array_types: the exact array types the backend owns (for O(1) ownership lookups).
    """

    array_types: tuple = ()

    def __init__(self, name: str, xp):
        self.name = name
        self.xp = xp
        self._devices: dict = {}

    # ------------------------------------------------------------ arrays and devices
    def owns(self, a) -> bool:
        """Is ``a`` an array of this backend?"""
        return type(a) in self.array_types or isinstance(a, self.xp.ndarray)

    def asarray(self, data, dtype=None):
        """``data`` (host or device) as an array of this backend (on the current device;
        ``scope(index)`` picks another)."""
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        """``a`` as a NumPy array in host memory."""
        return np.asarray(a)

    def device_name(self, a) -> str:
        """The device holding ``a``, as a string ('cpu', 'cuda:0')."""
        return self.name

    def device_of(self, a):
        """The ``taiji.device`` holding ``a`` (cached per name: this runs on ``.device``)."""
        name = self.device_name(a)
        d = self._devices.get(name)
        if d is None:
            from taiji._device import device
            d = self._devices[name] = device(name)
        return d

    def scope(self, index: int | None):
        """A context in which new arrays land on device ``index`` (no-op for one device)."""
        return contextlib.nullcontext()

    def synchronize(self, index: int | None = None) -> None:
        """Wait for queued work on the device (nothing is ever queued on the CPU)."""

    # ------------------------------------------------------------ where array modules differ
    def add_at(self, out, index, src) -> None:
        """Unbuffered ``out[index] += src`` (repeated indices accumulate): ``np.add.at``."""
        self.xp.add.at(out, index, src)

    def as_strided(self, x, shape, strides):
        """A read-only strided view of ``x`` (sliding windows)."""
        return self.xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)

    def copyto(self, dst, src) -> None:
        """Write ``src`` into ``dst`` (same device)."""
        self.xp.copyto(dst, src)

    def view_bytes(self, block, offset: int, shape: tuple, dtype):
        """An array of ``shape`` and ``dtype`` over the bytes of 1-D uint8 ``block`` from
        ``offset`` (compiled device programs hand out their outputs this way)."""
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return block[offset:offset + n].view(dtype).reshape(shape)

    def colsum(self, x, out=None):
        """``x.sum(axis=0)`` of a 2-D array (a Linear layer's bias gradient)."""
        return self.xp.sum(x, axis=0) if out is None else self.xp.sum(x, axis=0, out=out)

    def matmul(self, a, b, ta: bool = False, tb: bool = False, out=None):
        """``op(a) @ op(b)``, ``op`` transposing the last two axes where its flag is set,
        written into ``out`` when given (the matmul primitive's impl and device programs)."""
        a = a.swapaxes(-1, -2) if ta else a
        b = b.swapaxes(-1, -2) if tb else b
        return self.xp.matmul(a, b) if out is None else self.xp.matmul(a, b, out=out)

    # Fused kernels a backend may have for whole primitives. None means it has none, and
    # the primitive's array-module rule runs (NumPy's are numba loop kernels instead).
    def softmax_xent_with_grad(self, logits, labels, g, ignore_index: int, reduction: str,
                               parts: str = "both"):
        """Cross-entropy ``(loss, dlogits)`` (``parts='loss'``: dlogits None), or None."""
        return None

    def max_pool(self, x, kernel):
        """Max pooling over non-overlapping windows, or None."""
        return None

    def max_pool_route(self, g, x, kernel):
        """Max pooling's VJP, or None."""
        return None

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
    """NumPy on the host: the CPU device."""

    array_types = (np.ndarray,)

    def __init__(self):
        super().__init__("cpu", np)
        self.erf = _erf

    def owns(self, a) -> bool:
        # exact types only: a device backend may use an ndarray subclass (tests do)
        return type(a) is np.ndarray or isinstance(a, np.generic) or \
            type(a).__module__.startswith("numpy")  # np.memmap, ml_dtypes scalars

    def asarray(self, data, dtype=None):
        return np.asarray(data, dtype=dtype)

    def device_name(self, a) -> str:
        return "cpu"

    def as_strided(self, x, shape, strides):
        return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides,
                                               writeable=False)

    def copyto(self, dst, src) -> None:
        np.copyto(dst, src)


numpy_backend = NumpyBackend()
