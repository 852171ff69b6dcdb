"""Parallel wrappers: :class:`DistributedDataParallel` (see taiji/nn/parallel/distributed.py)."""
from taiji.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
