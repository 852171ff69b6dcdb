"""Contender builders shared by the workloads.

A model is given three ways: ``build(nn)`` makes it from an ``nn`` namespace (the same code
builds the taiji model from ``taiji.nn`` and the PyTorch one from ``torch.nn``), a JAX forward
``forward(params, x)``, and (for dense nets) the hand-written NumPy step. All start from one
list of NumPy weights in PyTorch's layout and order (``Linear``: weight [out, in] then bias;
``Conv2d``: weight [out, in, kh, kw] then bias). Training is Adam (lr 1e-3) on cross-entropy
(``"ce"``, int labels) or binary cross-entropy on logits (``"bce"``, float labels [B, 1]).
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _data import fashion_mnist  # noqa: E402

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


# ---------------------------------------------------------------- weights, data, FLOPs

def uniform_init(shapes: Sequence[tuple], seed: int = 0) -> list:
    """PyTorch-style initial weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for each (weight,
    bias) pair, ``shapes`` listing the weight shapes ([out, in] or [out, in, kh, kw])."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        bound = 1 / np.sqrt(np.prod(shape[1:]))
        out += [rng.uniform(-bound, bound, shape).astype(np.float32),
                rng.uniform(-bound, bound, (shape[0],)).astype(np.float32)]
    return out


@functools.lru_cache(maxsize=4)
def images(split: str, limit: int | None, as_4d: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST, [N, 784] or [N, 1, 28, 28], loaded once per process."""
    x, y, src = fashion_mnist(split, limit)
    return (x.reshape(-1, 1, 28, 28) if as_4d else x), y, src


def dense_flops(sizes: Sequence[int], batch: int, train: bool) -> float:
    """Matmul FLOPs (2*M*N*K) of a dense net: the forward, or forward + backward. The
    backward costs a weight gradient per layer (= its forward) and an input gradient per
    layer except the first (whose input, the data, needs none)."""
    per_layer = [2.0 * batch * i * o for i, o in zip(sizes[:-1], sizes[1:])]
    fwd = sum(per_layer)
    return fwd + fwd + (fwd - per_layer[0]) if train else fwd


# ---------------------------------------------------------------- taiji

def _taiji_model(build: Callable, ws: list):
    import taiji
    model = build(taiji.nn)
    with taiji.no_grad():
        for prm, w in zip(model.parameters(), ws):
            prm.copy_(taiji.from_numpy(w))
    return model


def taiji_train(build: Callable, ws: list, loss: str, compiled: bool) -> Callable:
    """taiji eager (``compiled=False``) or the same PyTorch-style step under ``taiji.jit``."""
    import taiji
    from taiji import optim
    F = taiji.nn.functional
    model = _taiji_model(build, ws)
    opt = optim.Adam(model.parameters(), lr=LR)
    loss_fn = F.cross_entropy if loss == "ce" else F.binary_cross_entropy_with_logits

    def train_step(x, y):
        opt.zero_grad()
        out = loss_fn(model(x), y)
        out.backward()
        opt.step()
        return out
    step = taiji.jit(train_step) if compiled else train_step

    def run(x, y):
        return step(taiji.from_numpy(x), taiji.from_numpy(y))
    return run


def taiji_infer(build: Callable, ws: list, compiled: bool) -> Callable:
    """Forward under ``no_grad``, eager or compiled."""
    import taiji
    model = _taiji_model(build, ws)
    model.eval()

    def forward(x):
        with taiji.no_grad():
            return model(x)
    fwd = taiji.jit(forward) if compiled else forward

    def run(x, y):
        return fwd(taiji.from_numpy(x))
    return run


# ---------------------------------------------------------------- PyTorch

def _torch_model(build: Callable, ws: list):
    import torch
    model = build(torch.nn)
    with torch.no_grad():
        for prm, w in zip(model.parameters(), ws):
            prm.copy_(torch.from_numpy(w))
    return model


def torch_train(build: Callable, ws: list, loss: str) -> Callable:
    """PyTorch eager, ``torch.optim.Adam`` with its defaults."""
    import torch
    F = torch.nn.functional
    model = _torch_model(build, ws)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = F.cross_entropy if loss == "ce" else F.binary_cross_entropy_with_logits

    def run(x, y):
        opt.zero_grad()
        out = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
        out.backward()
        opt.step()
        return out
    return run


def torch_infer(build: Callable, ws: list) -> Callable:
    """PyTorch eager forward under ``torch.no_grad``."""
    import torch
    model = _torch_model(build, ws)
    model.eval()

    def run(x, y):
        with torch.no_grad():
            return model(torch.from_numpy(x))
    return run


# ---------------------------------------------------------------- JAX

def _jax_loss(forward: Callable, loss: str) -> Callable:
    import jax
    import jax.numpy as jnp

    def loss_fn(p, x, y):
        z = forward(p, x)
        if loss == "ce":
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)  # BCE on logits, written stably
    return loss_fn


def jax_train(forward: Callable, ws: list, loss: str) -> Callable:
    """The whole step (value_and_grad + Adam, written out as optax does) under ``jax.jit``."""
    import jax
    import jax.numpy as jnp
    loss_fn = _jax_loss(forward, loss)
    params = [jnp.asarray(w) for w in ws]
    state = {"p": params, "m": [jnp.zeros_like(w) for w in params],
             "v": [jnp.zeros_like(w) for w in params], "t": jnp.zeros((), jnp.float32)}

    @jax.jit
    def update(s, x, y):
        value, g = jax.value_and_grad(loss_fn)(s["p"], x, y)
        t = s["t"] + 1
        m = [B1 * a + (1 - B1) * b for a, b in zip(s["m"], g)]
        v = [B2 * a + (1 - B2) * b * b for a, b in zip(s["v"], g)]
        c1, c2 = 1 - B1 ** t, 1 - B2 ** t
        p = [w - LR * (a / c1) / (jnp.sqrt(b / c2) + EPS) for w, a, b in zip(s["p"], m, v)]
        return {"p": p, "m": m, "v": v, "t": t}, value

    box = [state]

    def run(x, y):
        box[0], value = update(box[0], x, y)
        return value
    return run


def jax_infer(forward: Callable, ws: list) -> Callable:
    """``jax.jit(forward)``; each batch's logits are waited for (a consumer would)."""
    import jax
    import jax.numpy as jnp
    params = [jnp.asarray(w) for w in ws]
    fwd = jax.jit(forward)

    def run(x, y):
        return fwd(params, x).block_until_ready()
    return run


# ---------------------------------------------------------------- hand-written NumPy (dense)

def numpy_dense_train(ws: list, loss: str) -> Callable:
    """A ReLU dense net's training step by hand: forward, softmax cross-entropy (or BCE on
    logits), backward, Adam — the floor a framework's overhead is measured against."""
    p = [w.copy() for w in ws]
    m = [np.zeros_like(w) for w in p]
    v = [np.zeros_like(w) for w in p]
    t = [0]
    n_layers = len(p) // 2

    def step(x, y):
        n = x.shape[0]
        acts, pre, h = [x], [], x
        for i in range(n_layers):
            z = h @ p[2 * i].T
            z += p[2 * i + 1]
            if i < n_layers - 1:
                pre.append(z)
                h = np.maximum(z, 0)
                acts.append(h)
        if loss == "ce":
            z -= z.max(1, keepdims=True)
            e = np.exp(z)
            e /= e.sum(1, keepdims=True)
            value = -np.log(e[np.arange(n), y]).mean()
            e[np.arange(n), y] -= 1
        else:
            value = (np.logaddexp(0, z) - y * z).mean()
            e = 1 / (1 + np.exp(-z))
            e -= y
        e /= n
        grads = [None] * len(p)
        g = e
        for i in reversed(range(n_layers)):
            grads[2 * i], grads[2 * i + 1] = g.T @ acts[i], g.sum(0)
            if i > 0:
                g = (g @ p[2 * i]) * (pre[i - 1] > 0)
        t[0] += 1
        c1, c2 = 1 - B1 ** t[0], 1 - B2 ** t[0]
        for w, gr, mm, vv in zip(p, grads, m, v):
            mm *= B1
            mm += (1 - B1) * gr
            vv *= B2
            vv += (1 - B2) * gr * gr
            w -= (LR / c1) * mm / (np.sqrt(vv / c2) + EPS)
        return value
    return step


def numpy_dense_infer(ws: list) -> Callable:
    """A ReLU dense net's forward by hand."""
    n_layers = len(ws) // 2

    def run(x, y):
        h = x
        for i in range(n_layers):
            h = h @ ws[2 * i].T
            h += ws[2 * i + 1]
            if i < n_layers - 1:
                np.maximum(h, 0, out=h)
        return h
    return run


def dense_build(sizes: Sequence[int]) -> Callable:
    """``build(nn)`` for a ReLU dense net with these layer sizes."""
    def build(nn):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers)
    return build


def dense_jax_forward(p, x):
    """A ReLU dense net in JAX over the flat [w1, b1, w2, b2, ...] list."""
    import jax
    h = x
    n = len(p) // 2
    for i in range(n):
        h = h @ p[2 * i].T + p[2 * i + 1]
        if i < n - 1:
            h = jax.nn.relu(h)
    return h
