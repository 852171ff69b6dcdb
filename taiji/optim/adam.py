"""Adam-family optimizers: Adam, AdamW, Adamax, NAdam (PyTorch's update formulas)."""
from __future__ import annotations

from typing import Iterable

from taiji import _ops as O
from taiji import _dtypes as dt
from taiji.optim.optimizer import Optimizer, _sqrt, decay_add_


def _check_betas(lr, betas, eps, weight_decay):
    if lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
    if eps < 0.0:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if weight_decay < 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


class Adam(Optimizer):
    """Adam (Kingma & Ba) with optional L2 ``weight_decay`` and AMSGrad.

    Bias corrections use the per-parameter step count; under ``jit`` they are tensor ops on
    the step tensor, so a compiled step stays correct on every call.

    Example:
        >>> opt = taiji.optim.Adam(model.parameters(), lr=1e-3)
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    _structural = ("amsgrad", "maximize", "weight_decay")
    _decoupled = False

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        _check_betas(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable,
                                      fused=fused))

    def _update(self, group, hp, params, grads, states):
        lr, b1, b2, eps, wd = hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"]
        for p, g, st in zip(params, grads, states):
            if "exp_avg" not in st:
                self._step_tensor(st)
                st["exp_avg"] = self._zeros_state(p)
                st["exp_avg_sq"] = self._zeros_state(p)
                if group["amsgrad"]:
                    st["max_exp_avg_sq"] = self._zeros_state(p)
            step_t = st["step"]
            step_t.add_(1.0)
            s = self._step_value(step_t)
            if group["maximize"]:
                g = -g
            if group["weight_decay"] != 0:
                if self._decoupled:
                    p.mul_(1.0 - lr * wd)
                else:
                    g = g + p * wd
            m, v = st["exp_avg"], st["exp_avg_sq"]
            decay_add_(m, b1, g * (1.0 - b1))
            decay_add_(v, b2, g * g * (1.0 - b2))
            bc1 = 1.0 - b1 ** s
            bc2_sqrt = _sqrt(1.0 - b2 ** s)
            if group["amsgrad"]:
                mx = st["max_exp_avg_sq"]
                mx.copy_(O.maximum(mx, v))
                v = mx
            denom = v.sqrt()
            denom.div_(bc2_sqrt)
            denom.add_(eps)
            upd = m / denom
            upd.mul_(lr / bc1)
            p.sub_(upd)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay``), default 1e-2."""

    _decoupled = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach=None, capturable: bool = False,
                 differentiable: bool = False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused)


class Adamax(Optimizer):
    """Adam with the infinity norm: ``u = max(beta2 * u, |g| + eps)``."""

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    _structural = ("maximize", "weight_decay")

    def __init__(self, params: Iterable, lr: float = 2e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, foreach=None, *,
                 maximize: bool = False, differentiable: bool = False, capturable: bool = False):
        _check_betas(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, maximize=maximize,
                                      foreach=foreach, differentiable=differentiable,
                                      capturable=capturable))

    def _update(self, group, hp, params, grads, states):
        lr, b1, b2, eps, wd = hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"]
        for p, g, st in zip(params, grads, states):
            if "exp_avg" not in st:
                self._step_tensor(st)
                st["exp_avg"] = self._zeros_state(p)
                st["exp_inf"] = self._zeros_state(p)
            step_t = st["step"]
            step_t.add_(1.0)
            s = self._step_value(step_t)
            if group["maximize"]:
                g = -g
            if group["weight_decay"] != 0:
                g = g + p * wd
            m, u = st["exp_avg"], st["exp_inf"]
            decay_add_(m, b1, g * (1.0 - b1))
            u.copy_(O.maximum(u * b2, O.abs(g) + eps))
            upd = m / u
            upd.mul_(lr / (1.0 - b1 ** s))
            p.sub_(upd)


class NAdam(Optimizer):
    """Adam with Nesterov momentum (Dozat), PyTorch's momentum-decay schedule."""

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay", "momentum_decay")
    _structural = ("maximize", "weight_decay", "decoupled_weight_decay")

    def __init__(self, params: Iterable, lr: float = 2e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        _check_betas(lr, betas, eps, weight_decay)
        if momentum_decay < 0.0:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable))

    def _update(self, group, hp, params, grads, states):
        lr, b1, b2, eps, wd = hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"]
        md = hp["momentum_decay"]
        for p, g, st in zip(params, grads, states):
            if "exp_avg" not in st:
                self._step_tensor(st)
                from taiji._creation import tensor
                from taiji._core.interpreters import eager
                with eager():
                    st["mu_product"] = tensor(1.0, dtype=dt.float32, device=p.device)
                st["exp_avg"] = self._zeros_state(p)
                st["exp_avg_sq"] = self._zeros_state(p)
            step_t, mu_prod = st["step"], st["mu_product"]
            step_t.add_(1.0)
            s = self._step_value(step_t)
            if group["maximize"]:
                g = -g
            if group["weight_decay"] != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(1.0 - lr * wd)
                else:
                    g = g + p * wd
            bc2 = 1.0 - b2 ** s
            mu = b1 * (1.0 - 0.5 * 0.96 ** (s * md))
            mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((s + 1.0) * md))
            mu_prod.mul_(mu)
            mp = self._step_value(mu_prod)
            m, v = st["exp_avg"], st["exp_avg_sq"]
            decay_add_(m, b1, g * (1.0 - b1))
            decay_add_(v, b2, g * g * (1.0 - b2))
            denom = (v / bc2).sqrt()
            denom.add_(eps)
            mp_next = mp * mu_next
            p.sub_(g / denom * (lr * (1.0 - mu) / (1.0 - mp)))
            p.sub_(m / denom * (lr * mu_next / (1.0 - mp_next)))
