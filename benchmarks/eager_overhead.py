"""Eager overhead: one forward+backward of the seed MLP (784-256-128-10, ReLU, softmax
cross-entropy) at batch 64 in taiji eager, the same math hand-written in NumPy, and PyTorch
eager (when installed). Runs are interleaved; the median of several repetitions is reported.

    python benchmarks/eager_overhead.py [--batch 64] [--reps 7] [--steps 200]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import taiji

SIZES = (784, 256, 128, 10)


def make_weights(seed=0):
    rng = np.random.default_rng(seed)
    ws = []
    for i, o in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(i)
        ws.append((rng.uniform(-bound, bound, (o, i)).astype(np.float32),
                   rng.uniform(-bound, bound, (o,)).astype(np.float32)))
    return ws


def numpy_step(ws, x, y):
    """Forward + backward by hand; returns the loss and the gradients."""
    (w1, b1), (w2, b2), (w3, b3) = ws
    n = x.shape[0]
    h1 = x @ w1.T + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2.T + b2
    a2 = np.maximum(h2, 0)
    z = a2 @ w3.T + b3
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), y]).mean()
    g = p
    g[np.arange(n), y] -= 1
    g /= n
    gw3, gb3 = g.T @ a2, g.sum(0)
    g2 = (g @ w3) * (h2 > 0)
    gw2, gb2 = g2.T @ a1, g2.sum(0)
    g1 = (g2 @ w2) * (h1 > 0)
    gw1, gb1 = g1.T @ x, g1.sum(0)
    return loss, (gw1, gb1, gw2, gb2, gw3, gb3)


def taiji_setup(ws):
    params = []
    for w, b in ws:
        params += [taiji.tensor(w, requires_grad=True), taiji.tensor(b, requires_grad=True)]
    return params


def taiji_step(params, x, y):
    w1, b1, w2, b2, w3, b3 = params
    for p in params:
        p.grad = None
    h = (x @ w1.T + b1).relu()
    h = (h @ w2.T + b2).relu()
    z = h @ w3.T + b3
    loss = taiji.nn.functional.cross_entropy(z, y)
    loss.backward()
    return loss


def torch_setup(ws):
    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    params = []
    for w, b in ws:
        params += [torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)]
    return params


def torch_step(params, x, y):
    import torch
    w1, b1, w2, b2, w3, b3 = params
    for p in params:
        p.grad = None
    h = torch.relu(x @ w1.T + b1)
    h = torch.relu(h @ w2.T + b2)
    z = h @ w3.T + b3
    loss = torch.nn.functional.cross_entropy(z, y)
    loss.backward()
    return loss


def timeit(fn, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    x = rng.random((args.batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    ws = make_weights()
    runs = {"numpy": lambda: numpy_step(ws, x, y)}
    tp = taiji_setup(ws)
    tx, ty = taiji.from_numpy(x), taiji.from_numpy(y)
    runs["taiji eager"] = lambda: taiji_step(tp, tx, ty)
    # same numbers first: the comparison is only meaningful if the math agrees
    ln, gn = numpy_step(ws, x, y)
    lt = taiji_step(tp, tx, ty)
    assert abs(float(lt) - ln) < 1e-4, (float(lt), ln)
    assert np.allclose(tp[0].grad.numpy(), gn[0], atol=1e-5)
    try:
        import torch
        tt = torch_setup(ws)
        xx, yy = torch.from_numpy(x), torch.from_numpy(y)
        runs["pytorch eager"] = lambda: torch_step(tt, xx, yy)
    except ImportError:
        print("note: PyTorch not installed; skipping it (pip install -e .[bench])")
    for fn in runs.values():
        timeit(fn, 20)  # warm-up
    times = {k: [] for k in runs}
    for _ in range(args.reps):
        for k, fn in runs.items():
            times[k].append(timeit(fn, args.steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"seed MLP forward+backward, batch {args.batch}, median of {args.reps} x "
          f"{args.steps} steps")
    print(f"{'contender':<16}{'ms/step':>10}{'steps/s':>10}{'vs numpy':>10}")
    for k, v in med.items():
        print(f"{k:<16}{v * 1e3:>10.3f}{1 / v:>10.0f}{v / med['numpy']:>9.2f}x")
    r = med["taiji eager"] / med["numpy"]
    print(f"taiji eager costs {r:.2f}x hand-written NumPy (target <= 1.30x)")
    if "pytorch eager" in med:
        print(f"taiji eager speed vs PyTorch eager: {med['pytorch eager'] / med['taiji eager']:.2f}x")


if __name__ == "__main__":
    main()
