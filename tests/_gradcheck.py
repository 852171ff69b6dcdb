"""gradcheck / gradgradcheck: taiji's reverse mode against central finite differences.

Both contract the Jacobian with random cotangents (a vector-Jacobian product), so one
backward pass checks the whole Jacobian row space the cotangent touches. Inputs are float64
NumPy arrays; ``fn`` takes taiji tensors and returns a tensor or a (nested) tuple of them.
"""
from __future__ import annotations

import numpy as np

import taiji


def _flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [b for a in out for b in _flat(a)]
    return [out]


def _float_outputs(out) -> list:
    return [o for o in _flat(out) if o.dtype.is_floating_point]


def _tensors(arrays, requires_grad=True):
    return [taiji.tensor(a.copy(), dtype=taiji.float64, requires_grad=requires_grad)
            for a in arrays]


def _vjp(fn, arrays, cotangents, create_graph=False):
    """taiji's gradients of sum(v * fn(x)) w.r.t. each input (zeros where unused)."""
    xs = _tensors(arrays)
    outs = _float_outputs(fn(*xs))
    pairs = [(o, taiji.tensor(v)) for o, v in zip(outs, cotangents) if o.requires_grad]
    if not pairs:
        return xs, [taiji.zeros(a.shape, dtype=taiji.float64) for a in arrays]
    gs = taiji.autograd.grad([o for o, _ in pairs], xs, grad_outputs=[v for _, v in pairs],
                             create_graph=create_graph, allow_unused=True)
    return xs, [taiji.zeros(a.shape, dtype=taiji.float64) if g is None else g
                for a, g in zip(arrays, gs)]


def _numeric(scalar_fn, arrays, eps):
    """Central differences of ``scalar_fn(arrays)`` w.r.t. every entry of every array."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros(a.shape, np.float64)
        for j in np.ndindex(a.shape):
            hi = [b.copy() for b in arrays]
            lo = [b.copy() for b in arrays]
            hi[i][j] += eps
            lo[i][j] -= eps
            g[j] = (scalar_fn(hi) - scalar_fn(lo)) / (2 * eps)
        grads.append(g)
    return grads


def _cotangents(fn, arrays, rng):
    with taiji.no_grad():
        outs = _float_outputs(fn(*_tensors(arrays, False)))
    return [rng.standard_normal(o.shape) for o in outs]


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Assert that taiji's VJP of ``fn`` at ``inputs`` matches central differences."""
    arrays = [np.asarray(a, np.float64) for a in inputs]
    rng = np.random.default_rng(seed)
    vs = _cotangents(fn, arrays, rng)
    _, analytic = _vjp(fn, arrays, vs)
    for g, a in zip(analytic, arrays):
        assert tuple(g.shape) == a.shape, f"gradient shape {tuple(g.shape)} != input {a.shape}"
        assert g.dtype == taiji.float64, f"gradient dtype {g.dtype} != float64"

    def scalar(arrs):
        with taiji.no_grad():
            outs = _float_outputs(fn(*_tensors(arrs, False)))
        return sum(float(np.sum(o.numpy() * v)) for o, v in zip(outs, vs))
    numeric = _numeric(scalar, arrays, eps)
    for k, (g, n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(g.numpy(), n, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")
    return True


def gradgradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Assert that double backward (create_graph=True) matches central differences of the
    first-order VJP contracted with a random second cotangent."""
    arrays = [np.asarray(a, np.float64) for a in inputs]
    rng = np.random.default_rng(seed)
    vs = _cotangents(fn, arrays, rng)
    us = [rng.standard_normal(a.shape) for a in arrays]
    xs, gs = _vjp(fn, arrays, vs, create_graph=True)
    pairs = [(g, taiji.tensor(u)) for g, u in zip(gs, us) if g.requires_grad]
    if pairs:
        second = taiji.autograd.grad([g for g, _ in pairs], xs,
                                     grad_outputs=[u for _, u in pairs], allow_unused=True)
    else:
        second = [None] * len(xs)
    analytic = [np.zeros(a.shape) if s is None else s.numpy() for a, s in zip(arrays, second)]

    def scalar(arrs):
        _, g1 = _vjp(fn, arrs, vs)
        return sum(float(np.sum(g.numpy() * u)) for g, u in zip(g1, us))
    numeric = _numeric(scalar, arrays, eps)
    for k, (g, n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(g, n, rtol=rtol, atol=atol,
                                   err_msg=f"second-order gradient of input {k}")
    return True
