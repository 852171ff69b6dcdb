"""The seed's recommender (examples/recommender_*_style.py, ``taiji train recommender``):
100-50-10-1 ReLU MLP on user + item side features, binary cross-entropy on the logit, Adam
1e-3, batch 1024, on ``taiji.datasets.SyntheticRecommender``'s training split."""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from _harness import Case
from workloads import _common as C

SIZES = (100, 50, 10, 1)
BATCHES = (1024,)
BUILD = C.dense_build(SIZES)


def init_weights(seed: int = 0) -> list:
    """The initial weights every contender copies."""
    return C.uniform_init([(o, i) for i, o in zip(SIZES[:-1], SIZES[1:])], seed)


@functools.lru_cache(maxsize=2)
def data(limit: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(features float32 [N, 100], labels float32 [N, 1], source) of the training split.
    Generated with taiji's dataset class (NumPy only; no training happens in it), in the
    parent process only: the fresh-process runs get the rows as an .npz."""
    from taiji.datasets import SyntheticRecommender
    ds = SyntheticRecommender(train=True)
    n = len(ds) if limit is None else min(limit, len(ds))
    x, y = ds.__getbatch__(np.arange(n))
    return (np.ascontiguousarray(x.numpy(), np.float32),
            np.ascontiguousarray(y.numpy(), np.float32), "taiji.datasets.SyntheticRecommender")


def cases(batches: Sequence[int] | None = None) -> list:
    """One training case per batch size (1024 by default)."""
    makers = {
        "numpy": lambda ws: C.numpy_dense_train(ws, "bce"),
        "taiji eager": lambda ws: C.taiji_train(BUILD, ws, "bce", compiled=False),
        "taiji jit": lambda ws: C.taiji_train(BUILD, ws, "bce", compiled=True),
        "pytorch eager": lambda ws: C.torch_train(BUILD, ws, "bce"),
        "jax jit": lambda ws: C.jax_train(C.dense_jax_forward, ws, "bce"),
    }
    return [Case(workload="recommender", name=f"recommender/train/b{b}", batch=b, kind="train",
                 title=f"recommender 100-50-10-1 training step (fwd+bwd+Adam, BCE), batch {b}",
                 flops_per_step=C.dense_flops(SIZES, b, train=True), data=data,
                 weights=init_weights, makers=makers, rss=(i == 0))
            for i, b in enumerate(batches or BATCHES)]
