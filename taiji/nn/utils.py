"""``taiji.nn.utils``: gradient clipping and flat parameter vectors."""
from __future__ import annotations

import math
from typing import Iterable

from taiji import _ops as O
from taiji.autograd import no_grad
from taiji.tensor import Tensor


def _params(parameters) -> list:
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale gradients in place so their joint ``norm_type``-norm is at most ``max_norm``.

    Computed with tensor ops only (no ``.item()``), so it compiles under ``jit``.

    Returns:
        The total norm of the gradients before clipping (a 0-d tensor).
    """
    grads = [p.grad for p in _params(parameters) if p.grad is not None]
    if not grads:
        from taiji._creation import tensor
        return tensor(0.0)
    norm_type = float(norm_type)
    with no_grad():
        if norm_type == math.inf:
            norms = [O.amax(O.abs(g)) for g in grads]
            total = norms[0] if len(norms) == 1 else O.amax(O.stack(norms))
        else:
            norms = [O.sum(O.abs(g) ** norm_type) if norm_type != 2.0 else O.sum(g * g)
                     for g in grads]
            s = norms[0]
            for n in norms[1:]:
                s = s + n
            total = s ** (1.0 / norm_type) if norm_type != 2.0 else O.sqrt(s)
        if error_if_nonfinite:
            from taiji._core.interpreters import STATE
            if STATE.interp is None and not bool(O.isfinite(total)):
                raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                                   f"`parameters` is non-finite, so it cannot be clipped. Set "
                                   f"error_if_nonfinite=False to disable this check")
        coef = O.clamp_max(max_norm / (total + 1e-6), 1.0)
        for g in grads:
            g.mul_(O.to(coef, g.dtype))
    return total


clip_grad_norm = clip_grad_norm_


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float,
                     foreach=None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    with no_grad():
        for p in _params(parameters):
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one vector."""
    return O.cat([O.reshape(p, (-1,)) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of ``vec`` into ``parameters`` (in place)."""
    if vec.ndim != 1:
        raise TypeError(f"expected a 1-D vector, got a {vec.ndim}-D tensor")
    i = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.copy_(O.reshape(vec[i:i + n], p.shape))
            i += n
    if i != vec.numel():
        raise ValueError(f"vector has {vec.numel()} elements but the parameters hold {i}")
