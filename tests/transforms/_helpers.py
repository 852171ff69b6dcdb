"""Shared helpers: NumPy finite differences for the transform tests."""
import numpy as np

import taiji


def t64(a):
    return taiji.tensor(np.asarray(a, dtype=np.float64))


def num_jac(f, x, eps=1e-6):
    """Central-difference Jacobian of f (Tensor -> Tensor) at x: out.shape + x.shape."""
    x = np.asarray(x, dtype=np.float64)
    out0 = np.asarray(f(t64(x)).numpy())
    jac = np.zeros(out0.shape + x.shape)
    flat = x.reshape(-1)
    for i in range(flat.size):
        d = np.zeros_like(flat)
        d[i] = eps
        hi = np.asarray(f(t64((flat + d).reshape(x.shape))).numpy())
        lo = np.asarray(f(t64((flat - d).reshape(x.shape))).numpy())
        jac.reshape(out0.shape + (-1,))[..., i] = (hi - lo) / (2 * eps)
    return jac


def num_jvp(f, x, v, eps=1e-6):
    x, v = np.asarray(x, np.float64), np.asarray(v, np.float64)
    return (f(t64(x + eps * v)).numpy() - f(t64(x - eps * v)).numpy()) / (2 * eps)
