"""``taiji.nn.init``: in-place parameter initialisers, PyTorch's names and formulas.

All draw from the global generator (or ``generator=``) and run concretely, even when called
while a jit trace is active.
"""
from __future__ import annotations

import math

import numpy as np

from taiji.tensor import Tensor
from taiji.autograd import no_grad
from taiji._core.interpreters import eager


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity`` (PyTorch's table)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    rf = 1
    for s in tensor.shape[2:]:
        rf *= s
    return tensor.shape[1] * rf, tensor.shape[0] * rf


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fi, fo = _calculate_fan_in_and_fan_out(tensor)
    return fi if mode == "fan_in" else fo


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with U(a, b)."""
    with eager(), no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with N(mean, std^2)."""
    with eager(), no_grad():
        return tensor.normal_(mean, std, generator=generator)


def constant_(tensor: Tensor, val: float) -> Tensor:
    with eager(), no_grad():
        return tensor.fill_(val)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    from taiji._creation import tensor as mk
    with eager(), no_grad():
        return tensor.copy_(mk(np.eye(*tensor.shape), dtype=tensor.dtype))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    from taiji._creation import tensor as mk
    a = np.zeros(tensor.shape)
    out_g = tensor.shape[0] // groups
    mn = min(out_g, tensor.shape[1])
    for g in range(groups):
        for d in range(mn):
            a[(g * out_g + d, d) + tuple(s // 2 for s in tensor.shape[2:])] = 1
    with eager(), no_grad():
        return tensor.copy_(mk(a, dtype=tensor.dtype))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fi, fo = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / float(fi + fo))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fi + fo)), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He initialisation: U(-b, b) with b = gain * sqrt(3 / fan)."""
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He initialisation: N(0, std^2) with std = gain / sqrt(fan)."""
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator=None) -> Tensor:
    """N(mean, std^2) restricted to [a, b] (out-of-range draws are redrawn)."""
    from taiji._creation import tensor as mk
    with eager(), no_grad():
        t = tensor.detach().clone()
        t.normal_(mean, std, generator=generator)
        vals = t.numpy().copy()
        for _ in range(100):
            bad = (vals < a) | (vals > b)
            if not bad.any():
                break
            t.normal_(mean, std, generator=generator)
            vals = np.where(bad, t.numpy(), vals)
        return tensor.copy_(mk(np.clip(vals, a, b), dtype=tensor.dtype))


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw."""
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    from taiji._creation import tensor as mk
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    with eager(), no_grad():
        t = tensor.detach().clone().reshape(rows, cols).clone()
        t.normal_(0.0, 1.0, generator=generator)
        flat = t.numpy().astype(np.float64)
        if rows < cols:
            flat = flat.T
        q, r = np.linalg.qr(flat)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return tensor.copy_(mk((q * gain).reshape(tensor.shape), dtype=tensor.dtype))


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    from taiji._creation import tensor as mk
    rows, cols = tensor.shape
    nz = int(math.ceil(sparsity * rows))
    with eager(), no_grad():
        tensor.normal_(0.0, std, generator=generator)
        a = tensor.numpy().copy()
        rng = np.random.default_rng()
        for c in range(cols):
            a[rng.permutation(rows)[:nz], c] = 0
        return tensor.copy_(mk(a, dtype=tensor.dtype))


uniform, normal, constant = uniform_, normal_, constant_
xavier_uniform, xavier_normal = xavier_uniform_, xavier_normal_
kaiming_uniform, kaiming_normal = kaiming_uniform_, kaiming_normal_
orthogonal = orthogonal_
