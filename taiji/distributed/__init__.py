"""Distributed training across processes (PyTorch's ``torch.distributed`` names).

Start N processes with ``taiji launch -n N script.py`` (or ``python -m
taiji.distributed.launch -n N script.py``, or plain ``mpirun -n N python script.py``); in
the script call :func:`init_process_group`, then use the collectives below or wrap the model in
:class:`taiji.nn.parallel.DistributedDataParallel`.

The in-place collectives (``all_reduce(t)``, ``broadcast(t, src)``, ...) mirror
``torch.distributed``; the differentiable, functional ones live in
:mod:`taiji.distributed.functional`. All are taiji primitives, so they run eagerly, under
autograd and inside ``taiji.jit`` graphs. See docs/distributed.md.
"""
from __future__ import annotations

import sys
import traceback
from typing import Any

from taiji.distributed import _prims
from taiji.distributed._backend import (INSTALL_HINT, Backend, MPIBackend, NCCLBackend, Work,
                                        import_mpi, make_backend, nccl_unavailable_reason)
from taiji.distributed._prims import (STATE as _STATE, all_gather_p, all_reduce_p, broadcast_p,
                                      reduce_scatter_p)

__all__ = ["ReduceOp", "init_process_group", "destroy_process_group", "is_initialized",
           "is_available", "is_mpi_available", "is_nccl_available", "get_rank",
           "get_world_size", "get_backend", "barrier",
           "all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter",
           "reduce_scatter_tensor", "Backend", "MPIBackend", "NCCLBackend", "Work",
           "INSTALL_HINT"]


class ReduceOp:
    """Reductions for :func:`all_reduce` and :func:`reduce_scatter`."""
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"


def _op(op) -> str:
    s = str(getattr(op, "value", op)).lower().rsplit(".", 1)[-1]
    if s not in ("sum", "avg", "max", "min"):
        raise ValueError(f"unknown reduce op {op!r}; expected ReduceOp.SUM, AVG, MAX or MIN")
    return s


def is_available() -> bool:
    """Whether mpi4py (and so the 'mpi' backend) can be imported."""
    try:
        import_mpi()
        return True
    except ImportError:
        return False


def is_mpi_available() -> bool:
    """Whether the 'mpi' backend (CPU tensors) can be used: mpi4py imports."""
    return is_available()


def is_nccl_available() -> bool:
    """Whether the 'nccl' backend (CUDA tensors) can be used: a GPU, CuPy and CuPy's NCCL
    bindings with the NCCL library. ``taiji.distributed._backend.nccl_unavailable_reason()``
    says why not."""
    return nccl_unavailable_reason() is None


def init_process_group(backend: str = "mpi", init_method: str | None = None,
                       timeout: Any = None, world_size: int = -1, rank: int = -1, *,
                       check_shapes: bool | None = None, abort_on_error: bool = True) -> None:
    """Join the default process group (every process started by the launcher calls this).

    Args:
        backend: ``"mpi"`` (CPU tensors through mpi4py) or ``"nccl"`` (CUDA tensors through
            CuPy's NCCL; each process uses GPU ``local_rank % device_count``, and a
            1-process group needs no MPI). Without a GPU, CuPy or NCCL, ``"nccl"`` is an
            error saying which is missing. A tensor of the other device type passed to a
            collective is an error naming the backend to use.
        init_method, timeout: accepted for PyTorch compatibility; MPI's launcher already
            knows the group (ranks, hosts), so they are unused.
        world_size, rank: if given, checked against what MPI reports.
        check_shapes: before each collective, compare shapes across ranks (one tiny extra
            message) so a mismatch is an error naming the ranks instead of garbage or a hang.
            Default: on, unless the environment sets ``TAIJI_DIST_CHECK=0``.
        abort_on_error: install an exception hook that prints ``rank N failed: ...`` and
            aborts every rank (no hang when one process raises).

    Example:
        >>> import taiji.distributed as dist
        >>> dist.init_process_group("mpi")              # doctest: +SKIP
        >>> dist.get_rank(), dist.get_world_size()     # doctest: +SKIP
        (0, 2)
    """
    if _STATE.backend is not None:
        raise RuntimeError("init_process_group: the default process group is already "
                           "initialized (call destroy_process_group() first)")
    b = make_backend(backend)
    for name, want, got in (("world_size", world_size, b.size), ("rank", rank, b.rank)):
        if want is not None and want >= 0 and want != got:
            raise ValueError(f"init_process_group: {name}={want} was requested but the MPI "
                             f"launcher started this process with {name}={got}")
    _STATE.backend = b
    if check_shapes is not None:
        _STATE.check = bool(check_shapes)
    if abort_on_error and b.size > 1:
        _install_excepthook(b)


def _install_excepthook(b: Backend) -> None:
    previous = sys.excepthook

    def hook(etype, value, tb):
        msg = "".join(traceback.format_exception(etype, value, tb))
        sys.stderr.write(f"{msg}taiji.distributed: rank {b.rank} failed: "
                         f"{etype.__name__}: {value}; aborting all {b.size} ranks\n")
        sys.stderr.flush()
        sys.stdout.flush()
        try:
            b.abort(1)
        finally:
            previous(etype, value, tb)

    sys.excepthook = hook
    hook.taiji_previous = previous  # type: ignore[attr-defined]


def destroy_process_group(group: Any = None) -> None:
    """Leave the default process group (MPI itself is finalized at interpreter exit)."""
    b = _STATE.backend
    if b is None:
        return
    _STATE.backend = None
    prev = getattr(sys.excepthook, "taiji_previous", None)
    if prev is not None:
        sys.excepthook = prev
    b.close()


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has been called (and not destroyed)."""
    return _STATE.backend is not None


def get_rank(group: Any = None) -> int:
    """This process's rank in the default group (0 when not initialized, like a world of 1)."""
    return 0 if _STATE.backend is None else _STATE.backend.rank


def get_world_size(group: Any = None) -> int:
    """Number of processes in the default group (1 when not initialized)."""
    return 1 if _STATE.backend is None else _STATE.backend.size


def get_backend(group: Any = None) -> str:
    """The default group's backend name ('mpi' or 'nccl')."""
    return _prims.backend().name


def barrier(group: Any = None) -> None:
    """Wait until every rank reaches this call."""
    _prims.backend().barrier()


# ---------------------------------------------------------------- in-place collectives

class _Done:
    """What ``async_op=True`` returns: MPI collectives here complete before returning, and
    NCCL ones are already ordered on the current CUDA stream."""

    def wait(self, timeout: Any = None) -> bool:
        return True

    def is_completed(self) -> bool:
        return True


def _write(t, new):
    """Write ``new`` into tensor ``t`` in place (outside autograd for leaves needing grad)."""
    from taiji.autograd import no_grad
    if t.requires_grad and t.grad_fn is None:
        with no_grad():
            t._assign(new.detach())
    else:
        t._assign(new)


def _ret(async_op):
    return _Done() if async_op else None


def all_reduce(tensor, op=ReduceOp.SUM, group: Any = None, async_op: bool = False):
    """Reduce ``tensor`` across all ranks, in place: every rank ends with the result.

    Args:
        tensor: the input and output.
        op: ``ReduceOp.SUM`` (default), ``AVG``, ``MAX`` or ``MIN``.
        async_op: return a handle with ``wait()`` (the work is already done).

    Example:
        >>> t = taiji.tensor([1.0, 2.0]) * (dist.get_rank() + 1)   # doctest: +SKIP
        >>> dist.all_reduce(t); t                                   # doctest: +SKIP
        tensor([3., 6.])
    """
    _write(tensor, all_reduce_p(tensor, op=_op(op)))
    return _ret(async_op)


def broadcast(tensor, src: int = 0, group: Any = None, async_op: bool = False):
    """Copy ``tensor`` from rank ``src`` into ``tensor`` on every rank, in place."""
    _write(tensor, broadcast_p(tensor, src=int(src)))
    return _ret(async_op)


def all_gather(tensor_list: list, tensor, group: Any = None, async_op: bool = False):
    """Fill ``tensor_list[r]`` with rank r's ``tensor`` (every rank gets all of them)."""
    n = get_world_size()
    if len(tensor_list) != n:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} entries, expected "
                         f"one per rank ({n})")
    g = all_gather_p(tensor.reshape(1, *tensor.shape), axis=0)
    for r, out in enumerate(tensor_list):
        _write(out, g[r])
    return _ret(async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group: Any = None,
                           async_op: bool = False):
    """Concatenate every rank's ``input_tensor`` along dim 0 into ``output_tensor``."""
    _write(output_tensor, all_gather_p(input_tensor, axis=0))
    return _ret(async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group: Any = None,
                          async_op: bool = False):
    """Reduce ``input`` across ranks and keep this rank's slice of dim 0 in ``output``."""
    _write(output, reduce_scatter_p(input, op=_op(op), axis=0))
    return _ret(async_op)


def reduce_scatter(output, input_list: list, op=ReduceOp.SUM, group: Any = None,
                   async_op: bool = False):
    """Reduce ``input_list[r]`` across ranks into ``output`` on rank r."""
    import taiji
    n = get_world_size()
    if len(input_list) != n:
        raise ValueError(f"reduce_scatter: input_list has {len(input_list)} entries, expected "
                         f"one per rank ({n})")
    x = taiji.stack(list(input_list))
    _write(output, reduce_scatter_p(x, op=_op(op), axis=0).reshape(output.shape))
    return _ret(async_op)


from taiji.distributed import functional  # noqa: E402,F401  (the differentiable collectives)
