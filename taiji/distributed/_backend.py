"""Communication backends: the seam between taiji's collectives and a transport.

A backend moves NumPy (host) arrays between the processes of one group. ``MPIBackend`` uses
mpi4py's buffer API (uppercase methods: no pickling of tensor data). ``NCCLBackend`` is the
slot for CUDA tensors (CuPy's NCCL bindings); on a machine without CUDA it says so at
``init_process_group(backend="nccl")``.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

INSTALL_HINT = ("install it with `pip install taiji[dist]` (mpi4py) and an MPI runtime "
                "(`apt-get install openmpi-bin libopenmpi-dev`)")

OPS = ("sum", "avg", "max", "min")


def import_mpi():
    """mpi4py's ``MPI`` module, or a one-line ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"taiji.distributed needs mpi4py and MPI ({e}); {INSTALL_HINT}") \
            from None
    return MPI


class Work:
    """A pending (or finished) collective: ``wait()`` returns its result array."""

    def __init__(self, result: np.ndarray, req: Any = None, finish=None, keep: Any = None):
        self._result, self._req, self._finish = result, req, finish
        self._keep = keep  # the send buffer must outlive the request

    def wait(self) -> np.ndarray:
        if self._req is not None:
            self._req.Wait()
            self._req = self._keep = None
            if self._finish is not None:
                self._result = self._finish(self._result)
        return self._result

    def is_completed(self) -> bool:
        return self._req is None or bool(self._req.Test())


class Backend:
    """What a transport provides; every method is collective over the group."""
    name = "?"
    rank = 0
    size = 1

    def allreduce(self, x: np.ndarray, op: str) -> np.ndarray:
        raise NotImplementedError

    def iallreduce(self, x: np.ndarray, op: str) -> Work:
        return Work(self.allreduce(x, op))

    def allgather(self, x: np.ndarray) -> np.ndarray:
        """Stack every rank's ``x``: shape ``(size, *x.shape)``."""
        raise NotImplementedError

    def reduce_scatter(self, x: np.ndarray, op: str) -> np.ndarray:
        """``x`` has shape ``(size, *chunk)``: reduce over ranks, keep chunk ``rank``."""
        raise NotImplementedError

    def broadcast(self, x: np.ndarray, src: int) -> np.ndarray:
        raise NotImplementedError

    def allgather_object(self, obj) -> list:
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, code: int = 1) -> None:
        sys.exit(code)

    def close(self) -> None:
        pass


# dtypes MPI has no reduction for: computed in a wider type, cast back
def _wire(x: np.ndarray):
    x = np.ascontiguousarray(x)
    if x.dtype == np.bool_:
        return x.view(np.uint8), x.dtype
    if x.dtype.kind == "V" or x.dtype == np.float16 or x.dtype.name in ("bfloat16",):
        return x.astype(np.float32), x.dtype
    if x.dtype.kind not in "biufc":  # ml_dtypes float8 and friends
        return x.astype(np.float32), x.dtype
    return x, None


def _unwire(y: np.ndarray, orig):
    return y if orig is None else (y.view(orig) if orig == np.bool_ else y.astype(orig))


class MPIBackend(Backend):
    """Collectives over an MPI communicator (``MPI.COMM_WORLD`` by default)."""
    name = "mpi"

    def __init__(self, comm=None):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._ops = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def _op(self, op: str, dtype):
        if op == "avg" and dtype.kind not in "fc":
            raise TypeError(f"ReduceOp.AVG needs a floating tensor, got {dtype}")
        return self._ops[op]

    def _finish(self, op, orig, n):
        def fin(y):
            if op == "avg":
                y /= n
            return _unwire(y, orig)
        return fin

    def allreduce(self, x, op):
        w, orig = _wire(x)
        mop = self._op(op, np.dtype(orig) if orig is not None else w.dtype)
        out = np.empty_like(w)
        self.comm.Allreduce(w, out, op=mop)
        return self._finish(op, orig, self.size)(out)

    def iallreduce(self, x, op):
        w, orig = _wire(x)
        mop = self._op(op, np.dtype(orig) if orig is not None else w.dtype)
        out = np.empty_like(w)
        req = self.comm.Iallreduce(w, out, op=mop)
        return Work(out, req, self._finish(op, orig, self.size), keep=w)

    def allgather(self, x):
        w, orig = _wire(x)
        out = np.empty((self.size,) + w.shape, w.dtype)
        self.comm.Allgather(w, out)
        return _unwire(out, orig)

    def reduce_scatter(self, x, op):
        w, orig = _wire(x)
        mop = self._op(op, np.dtype(orig) if orig is not None else w.dtype)
        out = np.empty(w.shape[1:], w.dtype)
        self.comm.Reduce_scatter_block(w, out, op=mop)
        return self._finish(op, orig, self.size)(out)

    def broadcast(self, x, src):
        w, orig = _wire(x)
        w = w.copy()
        self.comm.Bcast(w, root=src)
        return _unwire(w, orig)

    def allgather_object(self, obj):
        # small metadata (shapes, dtypes, names) between our own processes only
        return self.comm.allgather(obj)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        self.comm.Abort(code)


def make_backend(name: str) -> Backend:
    """The backend called ``name`` ('mpi' or 'nccl'), or a clear error."""
    name = name.lower()
    if name == "mpi":
        return MPIBackend()
    if name == "nccl":
        try:
            import cupy  # noqa: F401
            from cupy.cuda import nccl  # noqa: F401
            ok = cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:
            ok = False
        if not ok:
            raise RuntimeError("init_process_group(backend='nccl'): CUDA/NCCL is not available "
                               "on this machine (needs a GPU and CuPy with NCCL, "
                               "`pip install taiji[cuda]`); use backend='mpi' for CPU tensors")
        raise NotImplementedError("backend='nccl' is not implemented yet; use backend='mpi'")
    raise ValueError(f"unknown backend {name!r}: expected 'mpi' or 'nccl'")
