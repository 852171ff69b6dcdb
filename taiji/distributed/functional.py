"""Differentiable, functional collectives (PyTorch's ``torch.distributed.nn.functional``).

Each returns a new tensor and has a gradient: all_reduce(sum)'s VJP is all_reduce(sum) of the
cotangent, all_gather's is reduce_scatter and vice versa, broadcast's sums the cotangents onto
the source. They work under ``taiji.jit``, ``grad`` and ``vmap``.
"""
from __future__ import annotations

from taiji.distributed._prims import (all_gather_p, all_reduce_p, broadcast_p,
                                      reduce_scatter_p)

__all__ = ["all_reduce", "all_gather", "reduce_scatter", "broadcast"]


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


def all_reduce(x, op="sum"):
    """``x`` reduced across ranks (``op``: 'sum', 'avg', 'max', 'min' or a ReduceOp)."""
    from taiji.distributed import _op
    return all_reduce_p(x, op=_op(op))


def all_gather(x, dim: int = 0):
    """Every rank's ``x`` concatenated along ``dim`` (rank order)."""
    return all_gather_p(x, axis=_norm_dim(dim, x.ndim))


def reduce_scatter(x, op="sum", dim: int = 0):
    """``x`` reduced across ranks, split along ``dim`` into world-size chunks; this rank's
    chunk is returned."""
    from taiji.distributed import _op
    return reduce_scatter_p(x, op=_op(op), axis=_norm_dim(dim, x.ndim))


def broadcast(x, src: int = 0):
    """Rank ``src``'s ``x``, on every rank."""
    return broadcast_p(x, src=int(src))
