"""Communication backends: the seam between taiji's collectives and a transport.

A backend moves the arrays of one device type between the processes of one group:
``MPIBackend`` host (NumPy) arrays through mpi4py's buffer API (uppercase methods: no pickling
of tensor data); ``NCCLBackend`` CUDA (CuPy) arrays through NCCL (CuPy's ``cupy.cuda.nccl``),
on the current CUDA stream. ``check_array`` is each backend's gate: a tensor of the other
device type is a clear error naming the backend to use instead.
"""
from __future__ import annotations

import os
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
    """What a transport provides; every method but ``check_array`` is collective over the
    group. Arrays are those of the backend's device type (``device_type``)."""
    name = "?"
    device_type = "cpu"
    rank = 0
    size = 1

    def check_array(self, x: Any, what: str) -> Any:
        """``x`` as an array this backend can move, or a TypeError naming the backend that
        can (``what`` names the collective, for the message)."""
        raise NotImplementedError

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
    return y if orig is None else y.astype(orig)  # (bool from uint8: nonzero is True)


def _describe(x) -> str:
    """'a tensor on cuda:0' / 'a CPU tensor' / 'a <type>' for error messages."""
    from taiji.backends import backend_of_array
    try:
        be = backend_of_array(x)
    except TypeError:
        return f"an array of type {type(x).__name__}"
    return "a CPU tensor" if be.name == "cpu" else f"a tensor on {be.device_name(x)}"


def host_array(x, what: str, backend: str = "mpi") -> np.ndarray:
    """``x`` if it is a host (NumPy) array; a TypeError saying what to do otherwise.

    MPI moves host memory; a device array (CuPy, or any other backend's subclass of
    ``ndarray``) is refused instead of being copied silently through the host."""
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.generic):  # compiled CPU code hands 0-d values over as scalars
        return np.asarray(x)
    raise TypeError(
        f"the {backend!r} process group moves host (CPU) tensors, but {what} got "
        f"{_describe(x)}. Initialize the group with init_process_group(backend='nccl') for "
        f"CUDA tensors, or move the tensor to the CPU with .cpu() first")


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

    def check_array(self, x, what):
        return host_array(x, what, self.name)

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


# ---------------------------------------------------------------- NCCL (CUDA tensors)

NCCL_HINT = ("CuPy's NCCL bindings need libnccl.so.2: install the NCCL wheel matching CuPy's "
             "CUDA (`pip install nvidia-nccl-cu12`, or -cu13 with cupy-cuda13x)")

# environment variables through which MPI launchers announce the world size (checked before
# touching MPI: a 1-process NCCL group never needs MPI, which may not even be installed)
_WORLD_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS")


def _import_nccl():
    """CuPy's ``cupy.cuda.nccl`` module, or an ImportError saying what is missing (tests
    replace this function to inject a fake NCCL)."""
    try:
        import warnings
        with warnings.catch_warnings():  # (CuPy warns when libnccl is missing; we raise)
            warnings.simplefilter("ignore")
            from cupy.cuda import nccl
    except Exception as e:  # noqa: BLE001 - ImportError, or CuPy failing to load CUDA
        raise ImportError(f"CuPy's NCCL bindings cannot be imported ({type(e).__name__}: "
                          f"{e})") from None
    if not getattr(nccl, "available", True):
        raise ImportError(f"CuPy is installed but cannot load the NCCL library; {NCCL_HINT}")
    return nccl


def nccl_unavailable_reason() -> str | None:
    """Why ``init_process_group(backend='nccl')`` cannot work here (None when it can)."""
    from taiji.backends import cuda_unavailable_reason
    why = cuda_unavailable_reason()
    if why is not None:
        return f"CUDA is not available ({why})"
    try:
        _import_nccl()
    except ImportError as e:
        return str(e)
    return None


def launched_world_size() -> int:
    """The number of processes an MPI launcher started (1 when none did)."""
    for k in _WORLD_SIZE_VARS:
        v = os.environ.get(k, "")
        if v.isdigit():
            return int(v)
    return 1


class NCCLBackend(Backend):
    """Collectives on CUDA tensors through NCCL (CuPy's ``cupy.cuda.nccl``).

    Every operation is enqueued on CuPy's current stream, so it orders with the kernels
    around it (and is captured when a compiled step is recorded as a CUDA graph) and does
    not block the host. With more than one process, MPI gives ranks, the NCCL unique id (rank
    0's, broadcast with ``Bcast``: bytes, no pickling) and small metadata (shape checks);
    each process computes on GPU ``local_rank % device_count``. A 1-process group needs no
    MPI: its communicator is created locally.

    Args:
        mpi_comm: the MPI communicator for rank, size and the id exchange (default:
            ``MPI.COMM_WORLD`` when an MPI launcher started several processes, else none).
        nccl: the ``cupy.cuda.nccl`` module (tests pass a fake).
        device_backend: taiji's CUDA backend (default: ``taiji.backends.get_backend('cuda')``).
    """
    name = "nccl"
    device_type = "cuda"

    def __init__(self, mpi_comm: Any = None, *, nccl: Any = None,
                 device_backend: Any = None):
        from taiji.backends import get_backend
        self.nccl = nccl if nccl is not None else _import_nccl()
        self.dev = device_backend if device_backend is not None else get_backend("cuda")
        self.xp = self.dev.xp
        if mpi_comm is None and launched_world_size() > 1:
            mpi_comm = import_mpi().COMM_WORLD
        self.mpi = mpi_comm
        if mpi_comm is not None:
            self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        else:
            self.rank, self.size = 0, 1
        if self.size > 1:
            self._pick_device()
        self.device = self.dev.current_device() if hasattr(self.dev, "current_device") else 0
        n = self.nccl
        self._dtypes = {"int8": n.NCCL_INT8, "uint8": n.NCCL_UINT8, "int32": n.NCCL_INT32,
                        "uint32": n.NCCL_UINT32, "int64": n.NCCL_INT64,
                        "uint64": n.NCCL_UINT64, "float16": n.NCCL_FLOAT16,
                        "float32": n.NCCL_FLOAT32, "float64": n.NCCL_FLOAT64}
        # avg is a sum divided here (NCCL_AVG needs NCCL >= 2.10 and floating types)
        self._ops = {"sum": n.NCCL_SUM, "avg": n.NCCL_SUM, "max": n.NCCL_MAX,
                     "min": n.NCCL_MIN}
        self.comm = n.NcclCommunicator(self.size, self._unique_id(), self.rank)

    # ------------------------------------------------------------ setup
    def _pick_device(self) -> None:
        """One GPU per process on each host: local rank modulo the host's GPU count."""
        MPI = import_mpi()
        local = self.mpi.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            lr = local.Get_rank()
        finally:
            local.Free()
        count = self.dev.device_count() if hasattr(self.dev, "device_count") else 1
        if hasattr(self.dev, "set_device") and count > 0:
            self.dev.set_device(lr % count)

    def _unique_id(self) -> tuple:
        """Rank 0's NCCL unique id on every rank (a tuple of 128 char values)."""
        uid = self.nccl.get_unique_id() if self.rank == 0 else None
        if self.size == 1:
            return uid
        # int16 holds the bytes whether the platform's char is signed or not
        buf = np.zeros(128, np.int16)
        if self.rank == 0:
            buf[:len(uid)] = uid
        self.mpi.Bcast(buf, root=0)
        return tuple(int(v) for v in buf)

    # ------------------------------------------------------------ arrays
    def check_array(self, x, what):
        if self.dev.owns(x):
            where = self.dev.device_name(x)
            if where != f"cuda:{self.device}":
                raise RuntimeError(
                    f"this process's NCCL communicator is on cuda:{self.device}, but {what} "
                    f"got a tensor on {where}; move it with .to('cuda:{self.device}') (one GPU "
                    f"per process)")
            return x
        raise TypeError(
            f"the 'nccl' process group moves CUDA tensors, but {what} got {_describe(x)}. "
            f"Move the tensor to the GPU with .cuda() (or .to('cuda')) first, or initialize "
            f"the group with init_process_group(backend='mpi') for CPU tensors")

    @staticmethod
    def _ptr(a) -> int:
        """The device address of ``a``'s first element."""
        data = a.data
        ptr = getattr(data, "ptr", None)  # CuPy's MemoryPointer
        if ptr is not None:
            return int(ptr)
        iface = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
        return int(iface["data"][0])

    def _stream(self) -> int:
        """CuPy's current stream (0, the legacy default stream, for array modules without
        streams)."""
        cuda = getattr(self.xp, "cuda", None)
        return int(cuda.get_current_stream().ptr) if cuda is not None else 0

    def _wire(self, x, what: str):
        """(contiguous array NCCL can reduce, its NCCL dtype, the dtype to return in)."""
        xp = self.xp
        x = xp.ascontiguousarray(x)
        name = x.dtype.name
        if name in self._dtypes:
            return x, self._dtypes[name], None
        if name == "bool":
            return x.view(xp.uint8), self._dtypes["uint8"], x.dtype
        if name in ("int16", "uint16"):  # NCCL has no 16-bit integers: reduce in int32
            return x.astype(xp.int32), self._dtypes["int32"], x.dtype
        raise TypeError(f"NCCL cannot move {name} tensors ({what}); use float16, float32, "
                        f"float64, bool or an integer type")

    def _nccl_op(self, op: str, orig, dtype):
        real = orig if orig is not None else dtype
        if op == "avg" and real.kind != "f":
            raise TypeError(f"ReduceOp.AVG needs a floating tensor, got {real}")
        return self._ops[op]

    def _finish(self, y, op: str, orig):
        if op == "avg" and self.size > 1:
            y /= self.size
        return _unwire(y, orig)

    # ------------------------------------------------------------ collectives
    def allreduce(self, x, op):
        w, dt, orig = self._wire(x, "all_reduce")
        nop = self._nccl_op(op, orig, w.dtype)
        out = self.xp.empty_like(w)
        self.comm.allReduce(self._ptr(w), self._ptr(out), w.size, dt, nop, self._stream())
        return self._finish(out, op, orig)

    def allgather(self, x):
        w, dt, orig = self._wire(x, "all_gather")
        out = self.xp.empty((self.size,) + w.shape, w.dtype)
        self.comm.allGather(self._ptr(w), self._ptr(out), w.size, dt, self._stream())
        return _unwire(out, orig)

    def reduce_scatter(self, x, op):
        w, dt, orig = self._wire(x, "reduce_scatter")
        nop = self._nccl_op(op, orig, w.dtype)
        out = self.xp.empty(w.shape[1:], w.dtype)
        self.comm.reduceScatter(self._ptr(w), self._ptr(out), out.size, dt, nop,
                                self._stream())
        return self._finish(out, op, orig)

    def broadcast(self, x, src):
        w, dt, orig = self._wire(x, "broadcast")
        out = self.xp.empty_like(w)
        self.comm.broadcast(self._ptr(w), self._ptr(out), w.size, dt, int(src), self._stream())
        return _unwire(out, orig)

    def allgather_object(self, obj):
        if self.size == 1:
            return [obj]
        # small metadata (shapes, dtypes, names) between our own processes only
        return self.mpi.allgather(obj)

    def barrier(self):
        """Every rank's GPU work queued so far is done (an all-reduce of one number, then a
        wait for the stream)."""
        self.allreduce(self.xp.zeros(1, self.xp.float32), "sum")
        self.dev.synchronize()

    def abort(self, code=1):
        try:
            self.comm.abort()
        finally:
            if self.mpi is not None:
                self.mpi.Abort(code)
            sys.exit(code)

    def close(self):
        comm, self.comm = self.comm, None
        if comm is not None:
            self.dev.synchronize()  # (queued collectives still use the communicator)
            comm.destroy()


def make_backend(name: str) -> Backend:
    """The backend called ``name`` ('mpi' or 'nccl'), or a clear error."""
    name = name.lower()
    if name == "mpi":
        return MPIBackend()
    if name == "nccl":
        why = nccl_unavailable_reason()
        if why is not None:
            raise RuntimeError(f"init_process_group(backend='nccl'): CUDA/NCCL is not "
                               f"available on this machine: {why}. NCCL needs a GPU and CuPy "
                               f"with NCCL (`pip install taiji[cuda]`); use backend='mpi' "
                               f"for CPU tensors")
        return NCCLBackend()
    raise ValueError(f"unknown backend {name!r}: expected 'mpi' or 'nccl'")
