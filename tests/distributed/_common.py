"""Shared by the 2-rank worker scripts and the single-process references: the seed MLP,
deterministic synthetic data, and one SGD training loop."""
from __future__ import annotations

import numpy as np

import taiji
import taiji.nn as nn
import taiji.nn.functional as F

B = 16  # per-rank batch


def mlp() -> nn.Module:
    taiji.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def batch(step: int, world: int = 2):
    """The global batch of ``step`` (world * B samples), rank r's shard is rows r*B:(r+1)*B."""
    rs = np.random.RandomState(100 + step)
    x = rs.standard_normal((world * B, 784)).astype(np.float32)
    y = rs.randint(0, 10, world * B).astype(np.int64)
    return x, y


def shard(x, y, rank: int):
    return taiji.tensor(x[rank * B:(rank + 1) * B]), taiji.tensor(y[rank * B:(rank + 1) * B])


def reference(steps: int, model=None, opt=None, start: int = 0):
    """Single-process training on the concatenated (global) batches."""
    model = model or mlp()
    opt = opt or taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for s in range(start, steps):
        x, y = batch(s)
        opt.zero_grad()
        F.cross_entropy(model(taiji.tensor(x)), taiji.tensor(y)).backward()
        opt.step()
    return model, opt


def params(model) -> list:
    return [p.detach().numpy().copy() for p in model.parameters()]
