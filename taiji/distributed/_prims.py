"""Collective primitives: all_reduce, all_gather, reduce_scatter, broadcast.

Each is a taiji ``Primitive`` with impl (through the process group's backend, which checks that
the array is of its device type: host arrays for MPI, CUDA arrays for NCCL), shape rule,
VJP, JVP and batch rule, so collectives work eagerly, under autograd, inside ``taiji.jit``
graphs (the compiled code calls ``impl``, which talks to the other ranks) and under ``vmap``.
They are marked ``effectful``: the compiler never constant-folds them or merges two of them.

Gradients follow PyTorch's functional collectives: all_reduce(sum) is its own transpose,
all_gather and reduce_scatter are each other's transposes, broadcast's transpose sums the
cotangents onto the source rank.
"""
from __future__ import annotations

import os

from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._util import moveaxis_to_front


class _State:
    backend = None  # the default group's Backend, set by init_process_group
    check = os.environ.get("TAIJI_DIST_CHECK", "1") != "0"  # compare shapes across ranks first


STATE = _State()


def backend():
    """The default process group's backend, or an error saying to initialize it."""
    b = STATE.backend
    if b is None:
        raise RuntimeError("taiji.distributed: the default process group is not initialized; "
                           "call taiji.distributed.init_process_group() first (under "
                           "`taiji launch -n N script.py` or `mpirun -n N python script.py`)")
    return b


def agree(name: str, x, **params) -> None:
    """With checking on, make sure every rank calls collective ``name`` on the same shape,
    dtype and arguments; otherwise raise on every rank, naming the ranks and their shapes."""
    b = backend()
    if not STATE.check or b.size == 1:
        return
    mine = (tuple(x.shape), str(x.dtype), tuple(sorted((k, str(v)) for k, v in params.items())))
    metas = b.allgather_object(mine)
    if all(m == metas[0] for m in metas):
        return
    groups: dict = {}
    for r, m in enumerate(metas):
        groups.setdefault(m, []).append(r)
    desc = "; ".join(
        f"rank{'s' if len(rs) > 1 else ''} {','.join(map(str, rs))}: shape {list(m[0])} "
        f"{m[1]}" + (f" ({', '.join(f'{k}={v}' for k, v in m[2])})" if m[2] else "")
        for m, rs in groups.items())
    raise RuntimeError(f"the ranks called {name} with different tensors ({desc}); every "
                       f"rank must pass the same shape and dtype")


def _check_op(name, op):
    if op not in ("sum", "avg", "max", "min"):
        raise ValueError(f"{name}: unknown reduce op {op!r}; expected one of "
                         f"ReduceOp.SUM, AVG, MAX, MIN")


# ---------------------------------------------------------------- all_reduce

all_reduce_p = Primitive("all_reduce", effectful=True)


@all_reduce_p.def_impl
def _all_reduce_impl(xp, x, *, op):
    b = backend()
    x = b.check_array(x, "all_reduce")
    agree("all_reduce", x, op=op)
    return b.allreduce(x, op)


@all_reduce_p.def_shape
def _all_reduce_shape(x, *, op):
    _check_op("all_reduce", op)
    return ShapedArray(x.shape, x.dtype)


def _argext_share(x, out):
    """For max/min: 1/k on the k ranks holding the extreme value, else 0."""
    m = (x == out).to(x.dtype)
    return m / all_reduce_p(m, op="sum")


@all_reduce_p.def_vjp
def _all_reduce_vjp(g, ins, out, *, op):
    if op in ("sum", "avg"):
        return (all_reduce_p(g, op=op),)
    return (all_reduce_p(g, op="sum") * _argext_share(ins[0], out),)


@all_reduce_p.def_jvp
def _all_reduce_jvp(ts, ins, out, *, op):
    t = ts[0]
    if t is None:
        return None
    if op in ("sum", "avg"):
        return all_reduce_p(t, op=op)
    return all_reduce_p(t * _argext_share(ins[0], out), op="sum")


@all_reduce_p.def_batch
def _all_reduce_batch(ins, dims, *, op):
    return all_reduce_p(ins[0], op=op), dims[0]


# ---------------------------------------------------------------- all_gather

all_gather_p = Primitive("all_gather", effectful=True, vjp_reads_inputs=False)


@all_gather_p.def_impl
def _all_gather_impl(xp, x, *, axis):
    b = backend()
    x = b.check_array(x, "all_gather")
    agree("all_gather", x, axis=axis)
    st = b.allgather(x)  # (size, *x.shape)
    st = xp.moveaxis(st, 0, axis)
    shape = x.shape[:axis] + (x.shape[axis] * st.shape[axis],) + x.shape[axis + 1:]
    return xp.ascontiguousarray(st).reshape(shape)


@all_gather_p.def_shape
def _all_gather_shape(x, *, axis):
    if not 0 <= axis < max(x.ndim, 1) or x.ndim == 0:
        raise ValueError(f"all_gather: axis {axis} is out of range for a tensor of shape "
                         f"{list(x.shape)} (gather needs at least one dimension)")
    n = backend().size
    return ShapedArray(x.shape[:axis] + (x.shape[axis] * n,) + x.shape[axis + 1:], x.dtype)


@all_gather_p.def_vjp
def _all_gather_vjp(g, ins, out, *, axis):
    return (reduce_scatter_p(g, op="sum", axis=axis),)


@all_gather_p.def_jvp
def _all_gather_jvp(ts, ins, out, *, axis):
    return None if ts[0] is None else all_gather_p(ts[0], axis=axis)


@all_gather_p.def_batch
def _all_gather_batch(ins, dims, *, axis):
    x, d = ins[0], dims[0]
    if d is None:
        return all_gather_p(x, axis=axis), None
    return all_gather_p(moveaxis_to_front(x, d), axis=axis + 1), 0


# ---------------------------------------------------------------- reduce_scatter

reduce_scatter_p = Primitive("reduce_scatter", effectful=True, vjp_reads_inputs=False)


@reduce_scatter_p.def_impl
def _reduce_scatter_impl(xp, x, *, op, axis):
    b = backend()
    x = b.check_array(x, "reduce_scatter")
    agree("reduce_scatter", x, op=op, axis=axis)
    n = b.size
    split = x.shape[:axis] + (n, x.shape[axis] // n) + x.shape[axis + 1:]
    blocks = xp.ascontiguousarray(xp.moveaxis(x.reshape(split), axis, 0))
    return xp.ascontiguousarray(b.reduce_scatter(blocks, op))


@reduce_scatter_p.def_shape
def _reduce_scatter_shape(x, *, op, axis):
    _check_op("reduce_scatter", op)
    n = backend().size
    if x.ndim == 0 or not 0 <= axis < x.ndim:
        raise ValueError(f"reduce_scatter: axis {axis} is out of range for a tensor of shape "
                         f"{list(x.shape)}")
    if x.shape[axis] % n:
        raise ValueError(f"reduce_scatter: dimension {axis} of the input (shape "
                         f"{list(x.shape)}) must be divisible by the world size {n}")
    return ShapedArray(x.shape[:axis] + (x.shape[axis] // n,) + x.shape[axis + 1:], x.dtype)


@reduce_scatter_p.def_vjp
def _reduce_scatter_vjp(g, ins, out, *, op, axis):
    if op not in ("sum", "avg"):
        raise NotImplementedError(f"reduce_scatter with op={op!r} has no gradient (as in "
                                  f"PyTorch); use sum or avg")
    gg = all_gather_p(g, axis=axis)
    return (gg / backend().size if op == "avg" else gg,)


@reduce_scatter_p.def_jvp
def _reduce_scatter_jvp(ts, ins, out, *, op, axis):
    if ts[0] is None:
        return None
    if op not in ("sum", "avg"):
        raise NotImplementedError(f"reduce_scatter with op={op!r} has no jvp; use sum or avg")
    return reduce_scatter_p(ts[0], op=op, axis=axis)


@reduce_scatter_p.def_batch
def _reduce_scatter_batch(ins, dims, *, op, axis):
    if dims[0] is None:
        return reduce_scatter_p(ins[0], op=op, axis=axis), None
    return reduce_scatter_p(moveaxis_to_front(ins[0], dims[0]), op=op, axis=axis + 1), 0


# ---------------------------------------------------------------- broadcast

broadcast_p = Primitive("broadcast_from", effectful=True, vjp_reads_inputs=False)


@broadcast_p.def_impl
def _broadcast_impl(xp, x, *, src):
    b = backend()
    x = b.check_array(x, "broadcast")
    agree("broadcast", x, src=src)
    return b.broadcast(x, src)


@broadcast_p.def_shape
def _broadcast_shape(x, *, src):
    n = backend().size
    if not 0 <= src < n:
        raise ValueError(f"broadcast: src={src} is not a rank of this group (world size {n})")
    return ShapedArray(x.shape, x.dtype)


@broadcast_p.def_vjp
def _broadcast_vjp(g, ins, out, *, src):
    s = all_reduce_p(g, op="sum")
    return (s if backend().rank == src else s * 0.0,)


@broadcast_p.def_jvp
def _broadcast_jvp(ts, ins, out, *, src):
    return None if ts[0] is None else broadcast_p(ts[0], src=src)


@broadcast_p.def_batch
def _broadcast_batch(ins, dims, *, src):
    return broadcast_p(ins[0], src=src), dims[0]
