"""DataLoader throughput over in-memory Fashion-MNIST: the batched fast path against the
per-item path, and the share of an eager training step spent loading.

    python benchmarks/dataloader.py [--batches N]

Uses /usr/share/datasets/fashion-mnist (or $TAIJI_DATA, ~/.cache/taiji) via
taiji.datasets.FashionMNIST; synthetic data of the same shape if it is not installed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import taiji
from taiji import nn
from taiji.utils.data import DataLoader, Dataset, TensorDataset


class _PerItem(Dataset):
    """The same data without ``__getbatch__``: the loader goes item by item."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


def _data():
    try:
        ds = taiji.datasets.FashionMNIST()
        return ds, f"Fashion-MNIST ({ds.files[0]})"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, 60000)
        return TensorDataset(x, y), "synthetic 60000x28x28 uint8 (Fashion-MNIST not found)"


def _rate(loader, n: int) -> float:
    it = iter(loader)
    next(it)  # start-up (workers, first permutation) is not throughput
    t0 = time.perf_counter()
    for _ in range(n):
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
    return n / (time.perf_counter() - t0)


def _step_time(n: int = 50) -> float:
    taiji.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = taiji.optim.Adam(model.parameters(), 1e-3)
    x = taiji.rand(64, 784)
    y = taiji.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=400)
    args = ap.parse_args()
    ds, src = _data()
    print(f"data: {src}; batch 64, shuffle=True, {args.batches} batches per measurement")
    step = _step_time()
    print(f"eager MLP 784-256-10 Adam training step (batch 64): {step * 1e3:.2f} ms")
    cases = [
        ("fast path (fancy indexing), main thread", DataLoader(ds, 64, shuffle=True)),
        ("per-item + default_collate, main thread", DataLoader(_PerItem(ds), 64, shuffle=True)),
        ("per-item, 2 thread workers", DataLoader(_PerItem(ds), 64, shuffle=True,
                                                  num_workers=2, worker_type="thread")),
        ("per-item, 2 process workers", DataLoader(_PerItem(ds), 64, shuffle=True,
                                                   num_workers=2)),
        ("fast path, 2 process workers", DataLoader(ds, 64, shuffle=True, num_workers=2)),
    ]
    print(f"{'loader':44s} {'batches/s':>10s} {'ms/batch':>9s} {'share of step':>14s}")
    for name, loader in cases:
        r = _rate(loader, args.batches)
        load = 1.0 / r
        print(f"{name:44s} {r:10.0f} {load * 1e3:9.3f} {load / (load + step):13.1%}")


if __name__ == "__main__":
    main()
