"""RMSprop, Adagrad and Adadelta (PyTorch's update formulas)."""
from __future__ import annotations

from typing import Iterable

from taiji import _ops as O
from taiji.optim.optimizer import Optimizer, decay_add_, flush_subnormals


def _check(**kw):
    for k, v in kw.items():
        if v < 0.0:
            raise ValueError(f"Invalid {'learning rate' if k == 'lr' else k} value: {v}")


class RMSprop(Optimizer):
    """RMSprop: divide by a running RMS of gradients (optionally centered, with momentum)."""

    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum")
    _structural = ("centered", "maximize", "weight_decay", "momentum")

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, capturable: bool = False, foreach=None,
                 maximize: bool = False, differentiable: bool = False):
        _check(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize,
                                      foreach=foreach, capturable=capturable,
                                      differentiable=differentiable))

    def _update(self, group, hp, params, grads, states):
        lr, alpha, eps, wd, mom = hp["lr"], hp["alpha"], hp["eps"], hp["weight_decay"], \
            hp["momentum"]
        for p, g, st in zip(params, grads, states):
            if "square_avg" not in st:
                self._step_tensor(st)
                st["square_avg"] = self._zeros_state(p)
                if group["momentum"] > 0:
                    st["momentum_buffer"] = self._zeros_state(p)
                if group["centered"]:
                    st["grad_avg"] = self._zeros_state(p)
            st["step"].add_(1.0)
            if group["maximize"]:
                g = -g
            if group["weight_decay"] != 0:
                g = g + p * wd
            sq = st["square_avg"]
            decay_add_(sq, alpha, g * g * (1.0 - alpha))
            if group["centered"]:
                ga = st["grad_avg"]
                decay_add_(ga, alpha, g * (1.0 - alpha))
                # (the square flushed like ``sq``: a flushed ``sq`` less a subnormal square
                # would be negative, and its root NaN)
                avg = (sq - flush_subnormals(ga * ga)).sqrt()
            else:
                avg = sq.sqrt()
            avg.add_(eps)
            if group["momentum"] > 0:
                buf = st["momentum_buffer"]
                decay_add_(buf, mom, g / avg)
                p.sub_(buf * lr)
            else:
                p.sub_(g / avg * lr)


class Adagrad(Optimizer):
    """Adagrad: divide by the root of the running sum of squared gradients."""

    _hyper = ("lr", "lr_decay", "weight_decay", "eps")
    _structural = ("maximize", "weight_decay")

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        _check(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
               initial_accumulator_value=initial_accumulator_value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))
        for group in self.param_groups:  # PyTorch creates Adagrad's state eagerly
            for p in group["params"]:
                st = self.state[p]
                self._step_tensor(st)
                st["sum"] = self._zeros_state(p)
                st["sum"].fill_(group["initial_accumulator_value"])

    def _update(self, group, hp, params, grads, states):
        lr, lr_decay, wd, eps = hp["lr"], hp["lr_decay"], hp["weight_decay"], hp["eps"]
        for p, g, st in zip(params, grads, states):
            step_t = st["step"]
            step_t.add_(1.0)
            s = self._step_value(step_t)
            if group["maximize"]:
                g = -g
            if group["weight_decay"] != 0:
                g = g + p * wd
            clr = lr / (1.0 + (s - 1.0) * lr_decay)
            acc = st["sum"]
            acc.add_(g * g)
            std = acc.sqrt()
            std.add_(eps)
            p.sub_(g / std * clr)


class Adadelta(Optimizer):
    """Adadelta: step sizes from running averages of squared gradients and updates."""

    _hyper = ("lr", "rho", "eps", "weight_decay")
    _structural = ("maximize", "weight_decay")

    def __init__(self, params: Iterable, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach=None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False):
        _check(lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable))

    def _update(self, group, hp, params, grads, states):
        lr, rho, eps, wd = hp["lr"], hp["rho"], hp["eps"], hp["weight_decay"]
        for p, g, st in zip(params, grads, states):
            if "square_avg" not in st:
                self._step_tensor(st)
                st["square_avg"] = self._zeros_state(p)
                st["acc_delta"] = self._zeros_state(p)
            st["step"].add_(1.0)
            if group["maximize"]:
                g = -g
            if group["weight_decay"] != 0:
                g = g + p * wd
            sq, acc = st["square_avg"], st["acc_delta"]
            decay_add_(sq, rho, g * g * (1.0 - rho))
            std = (sq + eps).sqrt()
            delta = (acc + eps).sqrt()
            delta.div_(std)
            delta.mul_(g)
            decay_add_(acc, rho, delta * delta * (1.0 - rho))
            p.sub_(delta * lr)


_ = O
