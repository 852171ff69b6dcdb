"""Stochastic gradient descent (momentum, dampening, Nesterov, weight decay, maximize)."""
from __future__ import annotations

from typing import Iterable

from taiji.compiler.trace import current_trace
from taiji.optim.optimizer import Optimizer, decay_add_, required


class SGD(Optimizer):
    """PyTorch's SGD: ``buf = momentum * buf + (1 - dampening) * g``; ``p -= lr * buf``
    (or ``g + momentum * buf`` with Nesterov).

    Example:
        >>> opt = taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """

    _hyper = ("lr", "momentum", "dampening", "weight_decay")
    _structural = ("momentum", "nesterov", "maximize", "dampening", "weight_decay")

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False, foreach=None, differentiable: bool = False,
                 fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def _update(self, group, hp, params, grads, states):
        lr, mom, damp, wd = hp["lr"], hp["momentum"], hp["dampening"], hp["weight_decay"]
        tracing = current_trace() is not None
        for p, g, st in zip(params, grads, states):
            d = -g if group["maximize"] else g
            if group["weight_decay"] != 0:
                d = d + p * wd
            if group["momentum"] != 0:
                buf = st.get("momentum_buffer")
                if buf is None and not tracing:
                    buf = st["momentum_buffer"] = d.detach().clone()
                else:
                    first = None
                    if buf is None:  # under jit: zeros, so the first update gives buf = d
                        buf = st["momentum_buffer"] = self._zeros_state(p)
                        if group["dampening"] != 0:
                            from taiji._creation import tensor
                            from taiji._core.interpreters import eager
                            with eager():
                                first = st["momentum_initialized"] = tensor(0.0)
                    elif group["dampening"] != 0 and "momentum_initialized" in st:
                        first = st["momentum_initialized"]
                    if group["dampening"] == 0:
                        decay_add_(buf, mom, d)
                    elif first is not None:  # no dampening on the very first step
                        decay_add_(buf, mom, d * (1.0 - damp * first))
                        first.fill_(1.0)
                    else:
                        decay_add_(buf, mom, d * (1.0 - damp))
                d = d + buf * mom if group["nesterov"] else buf
            p.sub_(d * lr)
