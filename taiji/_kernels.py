"""Loop kernels for primitives whose NumPy spelling is slow (im2col, col2im, pooling),
compiled by numba on a background thread.

A primitive's impl asks ``kernel.get(dtype, *consts)``: it returns the compiled function once
it is ready and ``None`` before (the first call queues the compile), so the impl runs its NumPy
fallback meanwhile and the first call is never slow. The fallback and the kernel must give
bit-for-bit the same result (same operations, same order of floating-point additions; kernels
compile without fast-math), so a result never depends on when a compile finished.

Compilation follows the switch of the fused elementwise kernels (``taiji.compiler.fusion``'s
``enabled``, off when ``TAIJI_FUSION=0`` and in the test suite): with it off, or without numba,
no kernel compiles and the impls stay on NumPy. Each kernel compiles eagerly for one explicit
signature per (dtype, constants) and never in the caller's thread (a call with other argument
types raises ``TypeError`` instead). Kernels are not cached on disk.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

import numpy as np

from taiji import _background

# dtypes a kernel is compiled for; others (float16, bfloat16, ints) always take the fallback
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_PENDING, _FAILED = object(), object()  # states of a kernel's compile for one dtype


class Kernel:
    """A numba loop function per dtype and per tuple of compile-time constants, compiled in
    the background.

    ``factory(*consts)`` returns the plain-Python function; the constants it closes over
    (kernel size, strides, spatial sizes) are frozen into the machine code, so loops have
    fixed trip counts that LLVM unrolls and vectorises (runtime bounds make these short
    loops 2-3x slower). ``spec`` names the function's argument types: N-d arrays of the
    dtype, ``"rN"`` read and C-contiguous, ``"sN"`` read with any strides (a transposed
    view), ``"wN"`` written and C-contiguous, ``"xN"`` written with any strides; ``"i"`` an
    integer (int64), ``"f"`` a float64. Arrays that are only read are typed read-only, so
    read-only inputs (a broadcast, a frozen buffer) are accepted too.
    """

    def __init__(self, factory: Callable, spec: tuple, planes: int | None = None):
        self.factory = factory
        self.spec = tuple(spec)
        # the argument whose first two dimensions count independent planes: the factory's
        # function then takes (lo, hi, *args) and runs planes [lo, hi), and a call runs in
        # two halves, the second on the pool's worker while a pool program runs
        # (taiji/compiler/pool.py); None: a plain function of ``args``
        self.planes = planes
        self._compiled: dict = {}  # (np.dtype, consts) -> dispatcher, _PENDING or _FAILED

    def get(self, dtype, *consts) -> Callable | None:
        """The compiled kernel for arrays of ``dtype`` and these constants, or None while it
        is not ready (the first call queues its compilation when kernels are enabled)."""
        key = (dtype, consts)
        k = self._compiled.get(key)
        if k is None:
            dtype = np.dtype(dtype)
            if dtype not in KERNEL_DTYPES or not _enabled():
                return None
            key = (dtype, consts)
            with _lock:  # one request per key, even from two threads
                k = self._compiled.get(key)
                if k is None:
                    self._compiled[key] = _PENDING
            if k is None:
                _request(self, key)
        return None if k is None or k is _PENDING or k is _FAILED else k

    def compile(self, key) -> None:
        """Compile for ``key`` = (dtype, consts) now, in the calling thread."""
        import numba
        from numba import types
        dtype, consts = key
        t = {np.dtype(np.float32): types.float32, np.dtype(np.float64): types.float64}[dtype]
        args = []
        for s in self.spec:
            if s == "i":
                args.append(types.int64)
            elif s == "f":
                args.append(types.float64)
            else:
                args.append(types.Array(t, int(s[1:]), "C" if s[0] in "rw" else "A",
                                        readonly=s[0] in "rs"))
        if self.planes is not None and not any(s[0] in "sx" for s in self.spec):
            from taiji.compiler import pool
            disp = pool.plane_kernel(self.factory(*consts), args, self.planes)
        else:
            fn = self.factory(*consts)
            if self.planes is not None:  # (strided arrays: whole, here)
                fn = _whole(fn, self.planes, len(args))
            disp = numba.njit(types.void(*args), error_model="numpy", fastmath=False,
                              nogil=True)(fn)
        disp.disable_compile()  # never compile in the caller's thread
        self._compiled[key] = disp

    def __repr__(self) -> str:
        return f"<taiji kernel {self.factory.__name__}>"


def _whole(fn: Callable, planes: int, nargs: int) -> Callable:
    """A plane kernel ``fn(lo, hi, *args)`` as a function of its ``nargs`` arguments over
    every plane."""
    import numba
    names = ", ".join(f"a{i}" for i in range(nargs))
    ns = {"inner": numba.njit(error_model="numpy")(fn)}
    exec(f"def whole({names}):\n"  # noqa: S102 - our source
         f"    inner(0, a{planes}.shape[0] * a{planes}.shape[1], {names})", ns)
    return ns["whole"]


# ---------------------------------------------------------------- background compilation
# (one thread for every kernel: taiji/_background.py)

_lock = threading.Lock()  # one request per (kernel, key)


def _after_fork_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)

def _enabled() -> bool:
    from taiji.compiler import fusion  # one switch for every background-compiled kernel
    return fusion.enabled and fusion._numba_available()


def _compile(kernel: Kernel, key) -> None:
    try:
        kernel.compile(key)
    except Exception:  # a kernel that will not compile leaves the primitive on NumPy
        kernel._compiled[key] = _FAILED


def _request(kernel: Kernel, key) -> None:
    # (get checked the switch) a forked child drops the queue: the kernel is then not
    # requested there, and may ask again
    _background.submit(lambda: _compile(kernel, key),
                       on_drop=lambda: kernel._compiled.pop(key, None))


def wait_for_kernels(timeout: float = 60.0) -> bool:
    """Block until the queued kernels are compiled (tests and benchmarks use this)."""
    return _background.wait(timeout)

