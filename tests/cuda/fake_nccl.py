"""A fake of CuPy's ``cupy.cuda.nccl`` for testing taiji's NCCL backend without a GPU.

Its communicator takes device addresses, as NCCL does, and reads and writes the memory
behind them (the fake CUDA device's arrays are host memory, tests/cuda/fake_cuda.py). A
1-rank communicator reduces locally; with more ranks (under ``mpirun``) the data moves
through MPI on COMM_WORLD, so a 2-process run checks taiji's NCCL logic (unique-id exchange,
counts, dtypes, ops, shapes) end to end. Every call is recorded in ``calls``.

    nccl = FakeNccl()
    taiji.distributed._backend._import_nccl = lambda: nccl   # before init_process_group
"""
from __future__ import annotations

import ctypes

import numpy as np

# the values of NCCL's enums (nccl.h)
_DTYPES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64,
           6: np.float16, 7: np.float32, 8: np.float64}
_OPS = {0: "sum", 1: "prod", 2: "max", 3: "min", 4: "avg"}


def _view(ptr: int, count: int, dtype: int) -> np.ndarray:
    """The ``count`` elements of NCCL dtype ``dtype`` at address ``ptr``, as a NumPy view."""
    dt = np.dtype(_DTYPES[dtype])
    buf = (ctypes.c_char * (count * dt.itemsize)).from_address(ptr)
    return np.frombuffer(buf, dtype=dt, count=count)


class FakeNcclCommunicator:
    """``NcclCommunicator(ndev, unique_id, rank)`` over host memory (see the module doc)."""

    def __init__(self, owner: "FakeNccl", ndev: int, commId: tuple, rank: int):
        if not (isinstance(commId, tuple) and len(commId) == 128 and
                all(isinstance(v, int) for v in commId)):
            raise TypeError(f"NcclCommunicator: commId must be a tuple of 128 ints, got "
                            f"{type(commId).__name__} of length {len(commId)}")
        self.owner, self.ndev, self.uid, self.rank = owner, int(ndev), commId, int(rank)
        self.destroyed = self.aborted = False
        self.mpi = None
        if self.ndev > 1:
            from mpi4py import MPI
            self.mpi, self.MPI = MPI.COMM_WORLD, MPI
            mine = np.array(commId, np.int16)
            uids = np.empty((self.mpi.Get_size(), 128), np.int16)
            self.mpi.Allgather(mine, uids)
            if (uids != uids[0]).any():
                raise RuntimeError("NcclCommunicator: the ranks were given different unique "
                                   "ids (the id exchange is broken)")
        owner.communicators.append(self)

    def _record(self, *call):
        if self.destroyed:
            raise RuntimeError(f"{call[0]} on a destroyed communicator")
        self.owner.calls.append(call)

    def _reduce(self, a: np.ndarray, out: np.ndarray, op: str, scatter: bool = False):
        wide = a.astype(np.float32) if a.dtype == np.float16 else a  # (MPI has no float16)
        if self.mpi is None:  # one rank: the reduction of one value is that value
            res = wide[self.rank * out.size:(self.rank + 1) * out.size] if scatter else wide
        else:
            mop = {"sum": self.MPI.SUM, "prod": self.MPI.PROD, "max": self.MPI.MAX,
                   "min": self.MPI.MIN, "avg": self.MPI.SUM}[op]
            res = np.empty(out.shape, wide.dtype)
            if scatter:
                self.mpi.Reduce_scatter_block(np.ascontiguousarray(wide), res, op=mop)
            else:
                self.mpi.Allreduce(np.ascontiguousarray(wide), res, op=mop)
        if op == "avg":
            res = res / self.ndev
        out[...] = res.astype(out.dtype)

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int,
                  stream: int) -> None:
        self._record("allReduce", count, datatype, _OPS[op], stream)
        self._reduce(_view(sendbuf, count, datatype).copy(), _view(recvbuf, count, datatype),
                     _OPS[op])

    def reduceScatter(self, sendbuf: int, recvbuf: int, recvcount: int, datatype: int,
                      op: int, stream: int) -> None:
        self._record("reduceScatter", recvcount, datatype, _OPS[op], stream)
        a = _view(sendbuf, recvcount * self.ndev, datatype).copy()
        self._reduce(a, _view(recvbuf, recvcount, datatype), _OPS[op], scatter=True)

    def allGather(self, sendbuf: int, recvbuf: int, count: int, datatype: int,
                  stream: int) -> None:
        self._record("allGather", count, datatype, stream)
        a = _view(sendbuf, count, datatype).copy()
        out = _view(recvbuf, count * self.ndev, datatype)
        if self.mpi is None:
            out[...] = a
        else:
            self.mpi.Allgather(a, out)

    def broadcast(self, sendbuff: int, recvbuff: int, count: int, datatype: int, root: int,
                  stream: int) -> None:
        self._record("broadcast", count, datatype, root, stream)
        a = _view(sendbuff, count, datatype).copy()
        if self.mpi is not None:
            self.mpi.Bcast(a, root=root)
        _view(recvbuff, count, datatype)[...] = a

    def destroy(self) -> None:
        self.destroyed = True

    def abort(self) -> None:
        self.aborted = True


class FakeNccl:
    """Stands in for the ``cupy.cuda.nccl`` module."""

    available = True
    NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = range(6)
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 6, 7, 8
    NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = range(5)

    def __init__(self, seed: int | None = None):
        self.calls: list = []
        self.communicators: list = []
        self._rng = np.random.default_rng(seed)

    def get_unique_id(self) -> tuple:
        # NCCL's id is 128 chars; a signed char on x86
        return tuple(int(v) for v in self._rng.integers(-128, 128, 128))

    def NcclCommunicator(self, ndev: int, commId: tuple, rank: int) -> FakeNcclCommunicator:
        return FakeNcclCommunicator(self, ndev, commId, rank)
