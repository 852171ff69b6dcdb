"""The seed MLP's training step: 784-256-128-10, ReLU, cross-entropy, Adam 1e-3, on
Fashion-MNIST batches at batch 64, 128 and 512 (batch assembly included)."""
from __future__ import annotations

from typing import Sequence

from _harness import Case
from workloads import _common as C

SIZES = (784, 256, 128, 10)
BATCHES = (64, 128, 512)
BUILD = C.dense_build(SIZES)


def init_weights(seed: int = 0) -> list:
    """The initial weights every contender copies."""
    return C.uniform_init([(o, i) for i, o in zip(SIZES[:-1], SIZES[1:])], seed)


def cases(batches: Sequence[int] | None = None) -> list:
    """One training case per batch size."""
    makers = {
        "numpy": lambda ws: C.numpy_dense_train(ws, "ce"),
        "taiji eager": lambda ws: C.taiji_train(BUILD, ws, "ce", compiled=False),
        "taiji jit": lambda ws: C.taiji_train(BUILD, ws, "ce", compiled=True),
        "pytorch eager": lambda ws: C.torch_train(BUILD, ws, "ce"),
        "jax jit": lambda ws: C.jax_train(C.dense_jax_forward, ws, "ce"),
    }
    out = []
    for i, b in enumerate(batches or BATCHES):
        out.append(Case(
            workload="mlp", name=f"mlp/train/b{b}", batch=b, kind="train",
            title=f"MLP 784-256-128-10 training step (fwd+bwd+Adam, batch assembly), batch {b}",
            flops_per_step=C.dense_flops(SIZES, b, train=True),
            data=lambda limit: C.images("train", limit, False), weights=init_weights,
            makers=makers, rss=(i == 0)))  # peak RSS barely depends on the batch: once
    return out
