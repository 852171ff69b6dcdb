"""The CUDA backend: CuPy behind the same ``xp`` seam as NumPy.

The primitives' ``impl(xp, ...)`` rules run unchanged with ``xp = cupy``; this object adds
what differs between the two array modules (scatter-add, strided views, erf), the device
queries behind ``taiji.cuda`` and the TF32 switch (``taiji.backends.cuda.matmul``).

Loaded on demand by ``taiji.backends.get_backend('cuda')``; ``load()`` raises ImportError
without CuPy and RuntimeError when CuPy finds no usable GPU, and the caller turns either into
the reason ``taiji.cuda.is_available()`` is False.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np

from taiji.backends.numpy_backend import Backend

# dtypes whose scatter-add CUDA does with one atomic instruction (others go through a wider
# type; see add_at)
_ATOMIC = {"float16", "float32", "float64", "int32", "uint32", "uint64"}


class CupyBackend(Backend):
    """CuPy on NVIDIA GPUs: the 'cuda' device type (``cuda:N`` is CuPy's device N)."""

    def __init__(self, cupy):
        super().__init__("cuda", cupy)
        import cupyx.scipy.special as special
        self.cupy = cupy
        self.array_types = (cupy.ndarray,)
        self._special = special
        self._names: dict = {}
        self._peak = None  # memory hook, installed by reset_peak_memory_stats()
        from taiji.backends import cuda as flags
        self.set_allow_tf32(flags.matmul.allow_tf32)

    # ------------------------------------------------------------ arrays and devices
    def owns(self, a) -> bool:
        return isinstance(a, self.cupy.ndarray)

    def asarray(self, data, dtype=None):
        if getattr(data, "dtype", None) is not None and data.dtype.kind == "V":
            raise TypeError("bfloat16 tensors cannot live on CUDA with the CuPy backend "
                            "(CuPy has no bfloat16); use float16 or float32 on the GPU")
        return self.cupy.asarray(data, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        return a.get()

    def device_name(self, a) -> str:
        i = a.device.id
        name = self._names.get(i)
        if name is None:
            name = self._names[i] = f"cuda:{i}"
        return name

    def scope(self, index):
        return contextlib.nullcontext() if index is None else self.cupy.cuda.Device(index)

    def synchronize(self, index=None) -> None:
        if index is None:
            self.cupy.cuda.runtime.deviceSynchronize()
        else:
            self.cupy.cuda.Device(index).synchronize()

    # ------------------------------------------------------------ where CuPy differs
    def erf(self, x):
        if x.dtype in (np.float32, np.float64):
            return self._special.erf(x)
        return self._special.erf(x.astype(np.float32)).astype(x.dtype)

    def add_at(self, out, index, src) -> None:
        cp = self.cupy
        name = out.dtype.name
        if name in _ATOMIC:
            return self._add_at(out, index, src)
        if name == "int64":  # two's-complement sums are the same bits in uint64
            return self._add_at(out.view(cp.uint64), index,
                                cp.asarray(src, dtype=cp.int64).view(cp.uint64))
        wide = out.astype(cp.int64 if out.dtype.kind in "biu" else cp.float32)
        self.add_at(wide, index, cp.asarray(src).astype(wide.dtype))
        cp.copyto(out, wide, casting="unsafe")

    def _add_at(self, out, index, src) -> None:
        at = getattr(self.cupy.add, "at", None)  # CuPy >= 13; older ones have scatter_add
        if at is not None:
            at(out, index, src)
        else:  # pragma: no cover - depends on the CuPy version
            import cupyx
            cupyx.scatter_add(out, index, src)

    def as_strided(self, x, shape, strides):
        # (CuPy's as_strided has no `writeable`; the view is only read and then copied)
        return self.cupy.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)

    def copyto(self, dst, src) -> None:
        self.cupy.copyto(dst, src)

    # ------------------------------------------------------------ TF32
    def set_allow_tf32(self, allow: bool) -> None:
        """Let float32 matmuls use TF32 tensor cores (see taiji.backends.cuda)."""
        try:
            from cupy._core import _routines_linalg as linalg
            linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if allow
                                    else linalg.COMPUTE_TYPE_DEFAULT)
        except Exception as e:  # noqa: BLE001 - a CuPy without the switch still computes
            warnings.warn(f"taiji: could not set CuPy's float32 matmul compute type "
                          f"(allow_tf32={allow}): {e}", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------ device queries
    def device_count(self) -> int:
        return self.cupy.cuda.runtime.getDeviceCount()

    def current_device(self) -> int:
        return self.cupy.cuda.runtime.getDevice()

    def set_device(self, index: int) -> None:
        self.cupy.cuda.runtime.setDevice(index)

    def get_device_name(self, index: int | None = None) -> str:
        i = self.current_device() if index is None else index
        name = self.cupy.cuda.runtime.getDeviceProperties(i)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def get_device_capability(self, index: int | None = None) -> tuple:
        i = self.current_device() if index is None else index
        p = self.cupy.cuda.runtime.getDeviceProperties(i)
        return int(p["major"]), int(p["minor"])

    def mem_get_info(self, index: int | None = None) -> tuple:
        with self.scope(index):
            return self.cupy.cuda.runtime.memGetInfo()

    # ------------------------------------------------------------ memory statistics
    def memory_allocated(self, index=None) -> int:
        with self.scope(index):
            return int(self.cupy.get_default_memory_pool().used_bytes())

    def memory_reserved(self, index=None) -> int:
        with self.scope(index):
            return int(self.cupy.get_default_memory_pool().total_bytes())

    def max_memory_allocated(self, index=None) -> int:
        if self._peak is not None:
            return max(self._peak.peak, self.memory_allocated(index))
        # no hook yet: the pool never returns memory unless emptied, so what it holds is the
        # high-water mark of what was allocated (reset_peak_memory_stats makes this exact)
        return self.memory_reserved(index)

    def reset_peak_memory_stats(self, index=None) -> None:
        if self._peak is None:
            self._peak = _peak_hook()
            self._peak.__enter__()  # stays installed: it tracks every pool allocation
        self._peak.peak = self._peak.used = self.memory_allocated(index)

    def empty_cache(self) -> None:
        self.cupy.get_default_memory_pool().free_all_blocks()


def _peak_hook():
    """A CuPy memory hook that tracks the peak of pool bytes in use (this thread's)."""
    from cupy.cuda.memory_hook import MemoryHook

    class PeakHook(MemoryHook):
        name = "TaijiPeakHook"

        def __init__(self):
            self.used = 0
            self.peak = 0

        def malloc_postprocess(self, **kw):
            if kw.get("mem_ptr"):
                self.used += kw["mem_size"]
                if self.used > self.peak:
                    self.peak = self.used

        def free_postprocess(self, **kw):
            self.used -= kw["mem_size"]

    return PeakHook()


def load() -> CupyBackend:
    """The CUDA backend, or ImportError (no CuPy) / RuntimeError (no usable GPU)."""
    import cupy  # ImportError: the caller reports that CuPy is missing
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - CUDARuntimeError: no driver, no device
        raise RuntimeError(f"CuPy {cupy.__version__} is installed but cannot use a GPU "
                           f"({type(e).__name__}: {e})") from None
    if n < 1:
        raise RuntimeError(f"CuPy {cupy.__version__} is installed but finds no CUDA GPU")
    return CupyBackend(cupy)
