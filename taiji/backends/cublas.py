"""Matrix products on CUDA that a CUDA graph can capture: cuBLAS called directly.

CuPy refuses cuBLAS calls while a stream is being captured (its ``matmul`` raises
``NotImplementedError: calling cuBLAS API during stream capture is currently unsupported``),
and every training step multiplies matrices, so no step could become a CUDA graph. cuBLAS
itself captures fine once the handle's stream and workspace are set outside the capture
(cuBLAS documentation, "CUDA Graphs Support"). The CUDA backend therefore makes its products
here: ``cublasGemmEx`` / ``cublasGemmStridedBatchedEx`` through ctypes, on the libcublas that
CuPy has already loaded, with a handle of taiji's own per device and thread, its own
workspace, and the compute type that follows ``taiji.backends.cuda.matmul.allow_tf32``.

Row-major ``C = op(A) @ op(B)`` is the column-major product ``C^T = op(B)^T @ op(A)^T``, so
the call passes B first. An operand whose last axis is not unit-stride but whose second-last
is (a transposed view) is read as the other layout with its flag flipped; only an operand
with neither, or with batch axes that no single stride describes, is copied first.
``plan`` holds that arithmetic and runs anywhere (the tests check it against NumPy on CPU).
"""
from __future__ import annotations

import ctypes
import math
import threading
from dataclasses import dataclass

import numpy as np

OP_N, OP_T = 0, 1
# cudaDataType and cublasComputeType_t values (library_types.h, cublas_api.h)
_CUDA_R = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2}
COMPUTE_32F, COMPUTE_32F_FAST_TF32, COMPUTE_64F = 68, 77, 70
GEMM_DEFAULT = -1
WORKSPACE_BYTES = 32 << 20  # what cuBLAS asks for on Hopper
_INT_MAX = 2 ** 31 - 1
_STATUS = {1: "NOT_INITIALIZED", 3: "ALLOC_FAILED", 7: "INVALID_VALUE", 8: "ARCH_MISMATCH",
           11: "MAPPING_ERROR", 13: "EXECUTION_FAILED", 14: "INTERNAL_ERROR",
           15: "NOT_SUPPORTED", 16: "LICENSE_ERROR"}


@dataclass(frozen=True)
class Operand:
    """One operand as the column-major call sees it."""
    trans: int   # OP_N or OP_T
    ld: int      # leading dimension, in elements
    stride: int  # elements from one matrix of a batch to the next (0: the same matrix)


@dataclass(frozen=True)
class Plan:
    """A row-major product ``(batch..., m, n) = op(A) @ op(B)`` as one cuBLAS call."""
    m: int
    n: int
    k: int
    batch: tuple   # the output's batch shape
    count: int     # matrices in the batch (1: cublasGemmEx)
    a: Operand
    b: Operand


def _operand(shape, strides, t: bool, batch: tuple) -> Operand | None:
    """How the column-major call reads a row-major-indexed operand of ``shape`` and element
    ``strides`` (``t``: the product uses its transpose), or None when it must be copied."""
    r, c = shape[-2:]
    s0, s1 = strides[-2:]
    if (s1 == 1 or c == 1) and (r == 1 or s0 >= max(c, 1)):
        row_major, ld = True, (s0 if r > 1 else max(c, 1))
    elif (s0 == 1 or r == 1) and (c == 1 or s1 >= max(r, 1)):
        row_major, ld = False, (s1 if c > 1 else max(r, 1))
    else:
        return None
    if ld < 1 or ld > _INT_MAX:
        return None
    # (the stored matrix seen column-major is its transpose when it is row-major)
    trans = OP_T if t == row_major else OP_N
    own = tuple(shape[:-2])
    if math.prod(own) <= 1:
        return Operand(trans, ld, 0)
    if (1,) * (len(batch) - len(own)) + own != batch:
        return None  # broadcast between batch axes of both operands: copy
    dims = [(n, s) for n, s in zip(own, strides[:-2]) if n > 1]
    for (_, s_outer), (n_inner, s_inner) in zip(dims, dims[1:]):
        if s_outer != s_inner * n_inner:
            return None
    stride = dims[-1][1]
    return Operand(trans, ld, stride) if 0 < stride <= 2 ** 62 else None


def plan(a_shape, a_strides, b_shape, b_strides, ta: bool, tb: bool) -> Plan | None:
    """The cuBLAS call computing ``op(A) @ op(B)`` for operands of these shapes and element
    strides, or None when an operand must be made contiguous first. Raises ValueError for
    shapes that do not multiply."""
    m, k = (a_shape[-1], a_shape[-2]) if ta else tuple(a_shape[-2:])
    k2, n = (b_shape[-1], b_shape[-2]) if tb else tuple(b_shape[-2:])
    if k != k2:
        raise ValueError(f"matmul: inner dimensions differ ({k} vs {k2})")
    batch = tuple(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    if max(m, n, k) > _INT_MAX or any(s < 0 for s in tuple(a_strides) + tuple(b_strides)):
        return None
    oa = _operand(a_shape, a_strides, ta, batch)
    ob = _operand(b_shape, b_strides, tb, batch)
    if oa is None or ob is None:
        return None
    return Plan(m, n, k, batch, math.prod(batch), oa, ob)


# ---------------------------------------------------------------- the library

def _loaded_cublas_path() -> str | None:
    """The path of the libcublas this process has loaded (CuPy's), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if "/libcublas.so" in path:
                    return path
    except OSError:
        pass
    return None


def _load(cupy):
    """ctypes handle on CuPy's libcublas (loading it through CuPy first)."""
    cupy.cuda.device.get_cublas_handle()  # makes CuPy load its libcublas
    path = _loaded_cublas_path()
    names = [path] if path else []
    names += ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"]
    errors = []
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise OSError("libcublas not found: " + "; ".join(errors))
    vp, i, ll, st = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_size_t
    lib.cublasCreate_v2.argtypes = [ctypes.POINTER(vp)]
    lib.cublasSetStream_v2.argtypes = [vp, vp]
    lib.cublasSetWorkspace_v2.argtypes = [vp, vp, st]
    lib.cublasGemmEx.argtypes = [vp, i, i, i, i, i, vp, vp, i, i, vp, i, i, vp, vp, i, i, i, i]
    lib.cublasGemmStridedBatchedEx.argtypes = [vp, i, i, i, i, i, vp, vp, i, i, ll, vp, i, i,
                                               ll, vp, vp, i, i, ll, i, i, i]
    for f in (lib.cublasCreate_v2, lib.cublasSetStream_v2, lib.cublasSetWorkspace_v2,
              lib.cublasGemmEx, lib.cublasGemmStridedBatchedEx):
        f.restype = i
    return lib


def _check(status: int, what: str) -> None:
    if status:
        raise RuntimeError(f"cuBLAS {what} failed: CUBLAS_STATUS_{_STATUS.get(status, status)}")


class _Handle:
    """A cuBLAS handle of one device, with its own workspace and the stream it last ran on."""

    def __init__(self, lib, cupy):
        h = ctypes.c_void_p()
        _check(lib.cublasCreate_v2(ctypes.byref(h)), "cublasCreate")
        self.ptr = h.value
        # plain cudaMalloc, never freed: a pool block could be handed to other code
        self.workspace = cupy.cuda.runtime.malloc(WORKSPACE_BYTES)
        self.stream = None


class Gemm:
    """``gemm(a, b, ta, tb, out=None, tf32=None)``: op(a) @ op(b) on CuPy arrays through
    cuBLAS, legal inside CUDA graph capture. float16 / float32 / float64 only (the caller
    handles others); float16 accumulates in float32, float32 uses TF32 when ``tf32`` says
    so (None: when ``taiji.backends.cuda.matmul.allow_tf32`` does)."""

    def __init__(self, cupy):
        self.cupy = cupy
        self.lib = _load(cupy)
        self._local = threading.local()
        self._scalars = {d: (c(1), c(0)) for d, c in
                         ((np.float32, ctypes.c_float), (np.float64, ctypes.c_double))}

    def _handle(self) -> _Handle:
        handles = getattr(self._local, "handles", None)
        if handles is None:
            handles = self._local.handles = {}
        dev = self.cupy.cuda.runtime.getDevice()
        h = handles.get(dev)
        if h is None:
            h = handles[dev] = _Handle(self.lib, self.cupy)
        stream = self.cupy.cuda.get_current_stream().ptr
        if h.stream != stream:
            # (setting the stream resets the workspace, so the workspace follows)
            _check(self.lib.cublasSetStream_v2(h.ptr, stream), "cublasSetStream")
            _check(self.lib.cublasSetWorkspace_v2(h.ptr, h.workspace, WORKSPACE_BYTES),
                   "cublasSetWorkspace")
            h.stream = stream
        return h

    def __call__(self, a, b, ta: bool = False, tb: bool = False, out=None,
                 tf32: bool | None = None):
        cp = self.cupy
        dt = a.dtype

        def plan_of(a, b):  # (CuPy's strides are in bytes; the plan's are in elements)
            return plan(a.shape, [s // dt.itemsize for s in a.strides], b.shape,
                        [s // dt.itemsize for s in b.strides], ta, tb)
        p = plan_of(a, b)
        if p is None:  # an operand no single call reads: make both plain C arrays
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            a = cp.ascontiguousarray(cp.broadcast_to(a, batch + a.shape[-2:]))
            b = cp.ascontiguousarray(cp.broadcast_to(b, batch + b.shape[-2:]))
            p = plan_of(a, b)
        shape = p.batch + (p.m, p.n)
        c = out
        if c is None or c.shape != shape or c.dtype != dt or not c.flags.c_contiguous:
            c = cp.empty(shape, dtype=dt)
        if p.m and p.n:
            if p.k == 0:
                c.fill(0)
            else:
                self._call(p, a, b, c, dt, tf32)
        if out is not None and c is not out:
            cp.copyto(out, c)
            return out
        return c

    def _call(self, p: Plan, a, b, c, dt, tf32: bool | None) -> None:
        from taiji.backends import cuda as flags
        h = self._handle()
        t = _CUDA_R[dt]
        if tf32 is None:
            tf32 = flags.matmul.allow_tf32
        if dt == np.float64:
            compute, (one, zero) = COMPUTE_64F, self._scalars[np.float64]
        else:
            compute = COMPUTE_32F_FAST_TF32 if dt == np.float32 and tf32 else COMPUTE_32F
            one, zero = self._scalars[np.float32]
        alpha, beta = ctypes.addressof(one), ctypes.addressof(zero)
        # column-major C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m)
        if p.count == 1:
            st = self.lib.cublasGemmEx(
                h.ptr, p.b.trans, p.a.trans, p.n, p.m, p.k, alpha, b.data.ptr, t, p.b.ld,
                a.data.ptr, t, p.a.ld, beta, c.data.ptr, t, p.n, compute, GEMM_DEFAULT)
            _check(st, "cublasGemmEx")
        else:
            st = self.lib.cublasGemmStridedBatchedEx(
                h.ptr, p.b.trans, p.a.trans, p.n, p.m, p.k, alpha, b.data.ptr, t, p.b.ld,
                p.b.stride, a.data.ptr, t, p.a.ld, p.a.stride, beta, c.data.ptr, t, p.n,
                p.m * p.n, p.count, compute, GEMM_DEFAULT)
            _check(st, "cublasGemmStridedBatchedEx")
