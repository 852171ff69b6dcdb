"""Seed MLP training step (784-256-128-10, ReLU, cross-entropy, Adam 1e-3) side by side:
hand-written NumPy, taiji eager, taiji jit, PyTorch eager, JAX jit. Same batches and the same
initial weights for every contender; warm-up excluded; contenders interleaved in each
repetition; the median steps/s is reported with each taiji mode's ratio to each peer.

    python benchmarks/mlp_train.py [--batches 64 128 512] [--reps 5] [--seconds 0.6]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _data import batches, fashion_mnist_train  # noqa: E402

SIZES = (784, 256, 128, 10)
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def init_weights(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, o in zip(SIZES[:-1], SIZES[1:]):
        b = 1 / np.sqrt(i)
        out += [rng.uniform(-b, b, (o, i)).astype(np.float32),
                rng.uniform(-b, b, (o,)).astype(np.float32)]
    return out


# ---------------------------------------------------------------- contenders

def numpy_contender(ws, data):
    p = [w.copy() for w in ws]
    m = [np.zeros_like(w) for w in p]
    v = [np.zeros_like(w) for w in p]
    t = [0]

    def step(x, y):
        w1, b1, w2, b2, w3, b3 = p
        n = x.shape[0]
        h1 = x @ w1.T
        h1 += b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2.T
        h2 += b2
        a2 = np.maximum(h2, 0)
        z = a2 @ w3.T
        z += b3
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        e /= e.sum(1, keepdims=True)
        loss = -np.log(e[np.arange(n), y]).mean()
        e[np.arange(n), y] -= 1
        e /= n
        g2 = (e @ w3) * (h2 > 0)
        g1 = (g2 @ w2) * (h1 > 0)
        grads = [g1.T @ x, g1.sum(0), g2.T @ a1, g2.sum(0), e.T @ a2, e.sum(0)]
        t[0] += 1
        c1, c2 = 1 - B1 ** t[0], 1 - B2 ** t[0]
        for w, g, mm, vv in zip(p, grads, m, v):
            mm *= B1
            mm += (1 - B1) * g
            vv *= B2
            vv += (1 - B2) * g * g
            w -= (LR / c1) * mm / (np.sqrt(vv / c2) + EPS)
        return loss
    return step, lambda: p[0]


def taiji_contender(ws, data, compiled):
    import taiji
    from taiji import nn, optim
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    with taiji.no_grad():
        for prm, w in zip(model.parameters(), ws):
            prm.copy_(taiji.from_numpy(w))
    opt = optim.Adam(model.parameters(), lr=LR)

    def train_step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    step = taiji.jit(train_step) if compiled else train_step

    def run(x, y):
        return step(taiji.from_numpy(x), taiji.from_numpy(y))
    return run, lambda: next(model.parameters()).detach().numpy()


def torch_contender(ws, data):
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    with torch.no_grad():
        for prm, w in zip(model.parameters(), ws):
            prm.copy_(torch.from_numpy(w))
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def run(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        return loss
    return run, lambda: next(model.parameters()).detach().numpy()


def jax_contender(ws, data):
    import jax
    import jax.numpy as jnp
    params = [jnp.asarray(w) for w in ws]
    state = {"p": params, "m": [jnp.zeros_like(w) for w in params],
             "v": [jnp.zeros_like(w) for w in params], "t": jnp.zeros((), jnp.float32)}

    def loss_fn(p, x, y):
        w1, b1, w2, b2, w3, b3 = p
        h = jax.nn.relu(x @ w1.T + b1)
        h = jax.nn.relu(h @ w2.T + b2)
        z = h @ w3.T + b3
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))

    @jax.jit
    def update(s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(s["p"], x, y)
        t = s["t"] + 1
        m = [B1 * a + (1 - B1) * b for a, b in zip(s["m"], g)]
        v = [B2 * a + (1 - B2) * b * b for a, b in zip(s["v"], g)]
        c1, c2 = 1 - B1 ** t, 1 - B2 ** t
        p = [w - LR * (a / c1) / (jnp.sqrt(b / c2) + EPS) for w, a, b in zip(s["p"], m, v)]
        return {"p": p, "m": m, "v": v, "t": t}, loss

    box = [state]

    def run(x, y):
        box[0], loss = update(box[0], x, y)
        return loss
    return run, lambda: np.asarray(box[0]["p"][0])


def _sync(out):
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()
    return out


def measure(run, data, seconds):
    """Steps/s over at least ``seconds``, cycling through the batches."""
    n, t0, i = 0, time.perf_counter(), 0
    while True:
        x, y = data[i % len(data)]
        out = run(x, y)
        n += 1
        i += 1
        if n % 10 == 0 and time.perf_counter() - t0 > seconds:
            _sync(out)
            return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128, 512])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.6)
    ap.add_argument("--json", default="benchmarks/results/mlp_train.json")
    ap.add_argument("--only", nargs="+", help="run only these contenders (e.g. 'taiji jit')")
    args = ap.parse_args()
    x, y, source = fashion_mnist_train()
    print(f"data: {source}")
    ws = init_weights()
    results = {}
    for batch in args.batches:
        data = batches(x, y, batch, 64)
        makers = {"numpy": lambda: numpy_contender(ws, data),
                  "taiji eager": lambda: taiji_contender(ws, data, False),
                  "taiji jit": lambda: taiji_contender(ws, data, True),
                  "pytorch eager": lambda: torch_contender(ws, data),
                  "jax jit": lambda: jax_contender(ws, data)}
        runs, first = {}, {}
        if args.only:
            makers = {k: v for k, v in makers.items() if k in args.only}
        for name, make in makers.items():
            try:
                run, _ = make()
            except ImportError as e:
                print(f"note: skipping {name}: {e.name} is not installed "
                      f"(pip install -e .[bench])")
                continue
            t0 = time.perf_counter()
            _sync(run(*data[0]))
            first[name] = time.perf_counter() - t0
            if name.startswith("taiji"):  # compiling is excluded for every contender: wait
                from taiji.compiler.fusion import wait_for_kernels  # for background kernels
                wait_for_kernels()  # (eager mode compiles its optimizer update too)
            measure(run, data, 0.2)  # warm-up
            runs[name] = run
        sps = {k: [] for k in runs}
        for _ in range(args.reps):
            for k, run in runs.items():
                time.sleep(0.05)  # let the previous contender's worker threads go idle
                sps[k].append(measure(run, data, args.seconds))
        med = {k: statistics.median(v) for k, v in sps.items()}
        results[batch] = {"steps_per_s": med, "first_call_s": first}
        print(f"\nbatch {batch}: steps/s (median of {args.reps}); first call incl. compile")
        for k, v in med.items():
            print(f"  {k:<14}{v:>9.1f} steps/s   first call {first[k] * 1e3:8.1f} ms")
        for mode in ("taiji eager", "taiji jit"):
            if mode in med:
                ratios = ", ".join(f"{med[mode] / med[p]:.2f}x {p}" for p in med
                                   if not p.startswith("taiji"))
                print(f"  {mode}: {ratios}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
