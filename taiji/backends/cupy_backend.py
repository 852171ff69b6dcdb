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
_GEMM = {"float16", "float32", "float64"}  # dtypes whose products go to cuBLAS directly


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
        self._gemm = None  # taiji.backends.cublas.Gemm, loaded at the first product
        self.gemm_unavailable_reason: str | None = None
        self._ones: dict = {}  # (device, dtype) -> a vector of ones (colsum's left operand)
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

    def matmul(self, a, b, ta: bool = False, tb: bool = False, out=None):
        """Products through cuBLAS called directly (taiji.backends.cublas), which CUDA graph
        capture can record; CuPy's own matmul for other dtypes, or if that cannot load."""
        if a.dtype == b.dtype and a.dtype.name in _GEMM:
            gemm = self._cublas()
            if gemm:
                return gemm(a, b, ta, tb, out)
        return super().matmul(a, b, ta, tb, out)

    def colsum(self, x, out=None):
        """Column sums of a 2-D float array as the product ``ones(1, n) @ x``, accumulated
        in full float32 (no TF32; float16 sums too, as CuPy's do): cuBLAS reads the rows at
        full bandwidth, where CuPy's axis-0 reduction walks each column with a stride (at
        batch 32768 it took 1.25 ms of a 1.7 ms training step, measured on an H200)."""
        cp = self.cupy
        gemm = self._cublas()
        if not gemm or x.ndim != 2 or x.dtype.name not in _GEMM or x.shape[0] == 0:
            return super().colsum(x, out)
        n = x.shape[0]
        key = (cp.cuda.runtime.getDevice(), x.dtype.name)
        ones = self._ones.get(key)
        if ones is None or ones.size < n:
            with cp.cuda.using_allocator(cp.get_default_memory_pool().malloc):
                ones = self._ones[key] = cp.ones(max(n, 1024), dtype=x.dtype)
        c = x.shape[1]
        direct = out is not None and out.dtype == x.dtype and out.flags.c_contiguous
        r = gemm(ones[:n].reshape(1, n), x, False, False,
                 out.reshape(1, c) if direct else None, tf32=False)
        if direct:
            return out
        r = r.reshape(c)
        if out is None:
            return r
        self.copyto(out, r)
        return out

    def max_pool(self, x, kernel):
        """Max pooling in one kernel (taiji.backends.cupy_pool), or None (the array rule)."""
        from taiji.backends import cupy_pool
        return cupy_pool.max_pool(self.cupy, x, kernel) if cupy_pool.supported(x) else None

    def max_pool_route(self, g, x, kernel):
        """Max pooling's VJP in one kernel, or None (the array rule)."""
        from taiji.backends import cupy_pool
        if not cupy_pool.supported(g, x):
            return None
        return cupy_pool.max_pool_route(self.cupy, g, x, kernel)

    def softmax_xent_with_grad(self, logits, labels, g, ignore_index: int, reduction: str,
                               parts: str = "both"):
        """Cross-entropy ``(loss, dlogits)`` in three kernels (taiji.backends.cupy_xent;
        ``parts='loss'``: the loss alone, in two), or None where that does not apply (the
        array-module rule then runs)."""
        from taiji.backends import cupy_xent
        if not cupy_xent.supported(logits, labels, reduction):
            return None
        return cupy_xent.softmax_xent_with_grad(self.cupy, logits, labels, g, ignore_index,
                                                reduction, parts)

    def _cublas(self):
        """The cuBLAS product (taiji.backends.cublas.Gemm), loaded once; False if it cannot
        load (CuPy's matmul and sums are used then)."""
        return self._gemm if self._gemm is not None else self._load_gemm()

    def _load_gemm(self):
        from taiji.backends.cublas import Gemm
        try:
            self._gemm = Gemm(self.cupy)
        except Exception as e:  # noqa: BLE001 - no libcublas symbols: CuPy's matmul
            self._gemm = False
            self.gemm_unavailable_reason = f"{type(e).__name__}: {e}"
            from taiji.compiler.cache import log_compile
            log_compile(f"cuda: products go through CuPy's matmul, which CUDA graphs cannot "
                        f"capture (cuBLAS could not be called directly: "
                        f"{self.gemm_unavailable_reason})")
        return self._gemm

    def as_strided(self, x, shape, strides):
        # (CuPy's as_strided has no `writeable`; the view is only read and then copied)
        return self.cupy.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)

    def copyto(self, dst, src) -> None:
        if (dst.shape == src.shape and dst.dtype == src.dtype and dst.flags.c_contiguous
                and src.flags.c_contiguous and dst.device == src.device):
            # one memcpy on the current stream: cupy.copyto's checks cost more than it
            if src.nbytes:
                dst.data.copy_from_device_async(src.data, src.nbytes)
        else:
            self.cupy.copyto(dst, src)

    def view_bytes(self, block, offset: int, shape: tuple, dtype):
        return self.cupy.ndarray(shape, dtype, block.data + offset)

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
