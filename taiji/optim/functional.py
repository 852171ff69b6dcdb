"""A functional optimizer API with optax's habits, for JAX-style training.

A ``GradientTransformation`` is a pair of pure functions::

    opt = taiji.optim.functional.adam(1e-3)
    state = opt.init(params)                        # params: any pytree of tensors
    updates, state = opt.update(grads, state, params)
    params = taiji.optim.functional.apply_updates(params, updates)

Updates are what to *add* to the parameters (already negated and scaled). Everything is a
pure tensor computation, so the whole step can be wrapped in ``taiji.jit``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from taiji import _ops as O
from taiji._tree import tree_leaves, tree_map
from taiji._creation import tensor, zeros_like


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params=None) -> (updates,
    state)``."""
    init: Callable
    update: Callable


class ScaleByAdamState(NamedTuple):
    count: Any
    mu: Any
    nu: Any


class TraceState(NamedTuple):
    trace: Any


class ScaleByScheduleState(NamedTuple):
    count: Any


class EmptyState(NamedTuple):
    pass


def _zeros(params):
    return tree_map(lambda p: zeros_like(p.detach()), params)


def apply_updates(params, updates):
    """``params + updates`` leaf by leaf."""
    return tree_map(lambda p, u: p + O.to(u, p.dtype), params, updates)


def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by ``step_size``."""
    return GradientTransformation(lambda params: EmptyState(),
                                  lambda g, s, p=None: (tree_map(lambda x: x * step_size, g), s))


def scale_by_learning_rate(learning_rate, flip_sign: bool = True) -> GradientTransformation:
    """Multiply by -learning_rate (a number, or a schedule ``count -> lr``)."""
    sign = -1.0 if flip_sign else 1.0
    if not callable(learning_rate):
        return scale(sign * learning_rate)

    def init(params):
        return ScaleByScheduleState(tensor(0, dtype="int64"))

    def update(g, s, p=None):
        lr = learning_rate(s.count)
        return tree_map(lambda x: x * (sign * lr), g), ScaleByScheduleState(s.count + 1)
    return GradientTransformation(init, update)


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: ``t = decay * t + g``; emits ``t`` (or ``g + decay * t`` with Nesterov)."""
    def init(params):
        return TraceState(_zeros(params))

    def update(g, s, p=None):
        t = tree_map(lambda x, t_: t_ * decay + x, g, s.trace)
        out = tree_map(lambda x, t_: x + t_ * decay, g, t) if nesterov else t
        return out, TraceState(t)
    return GradientTransformation(init, update)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                  ) -> GradientTransformation:
    """Adam's moment estimates with bias correction."""
    def init(params):
        return ScaleByAdamState(tensor(0.0), _zeros(params), _zeros(params))

    def update(g, s, p=None):
        count = s.count + 1.0
        mu = tree_map(lambda x, m: m * b1 + x * (1.0 - b1), g, s.mu)
        nu = tree_map(lambda x, v: v * b2 + x * x * (1.0 - b2), g, s.nu)
        bc1 = 1.0 - b1 ** count
        bc2 = 1.0 - b2 ** count
        out = tree_map(lambda m, v: (m / O.to(bc1, m.dtype)) /
                       (O.sqrt(v / O.to(bc2, v.dtype)) + eps), mu, nu)
        return out, ScaleByAdamState(count, mu, nu)
    return GradientTransformation(init, update)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> GradientTransformation:
    def init(params):
        return TraceState(_zeros(params))

    def update(g, s, p=None):
        nu = tree_map(lambda x, v: v * decay + x * x * (1.0 - decay), g, s.trace)
        return tree_map(lambda x, v: x / (O.sqrt(v) + eps), g, nu), TraceState(nu)
    return GradientTransformation(init, update)


def add_decayed_weights(weight_decay: float = 0.0) -> GradientTransformation:
    """Add ``weight_decay * params`` to the updates (decoupled weight decay)."""
    def update(g, s, params=None):
        if params is None:
            raise ValueError("add_decayed_weights needs params: call update(grads, state, "
                             "params)")
        return tree_map(lambda x, p: x + p * weight_decay, g, params), s
    return GradientTransformation(lambda params: EmptyState(), update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale all updates so their joint L2 norm is at most ``max_norm``."""
    def update(g, s, p=None):
        leaves = tree_leaves(g)
        sq = O.sum(leaves[0] * leaves[0])
        for x in leaves[1:]:
            sq = sq + O.sum(x * x)
        norm = O.sqrt(sq)
        factor = O.where(norm < max_norm, O.scalar(1.0, norm.dtype), max_norm / norm)
        return tree_map(lambda x: x * O.to(factor, x.dtype), g), s
    return GradientTransformation(lambda params: EmptyState(), update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations in sequence; the state is a tuple of their states."""
    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(g, state, params=None):
        new = []
        for t, s in zip(transforms, state):
            g, s = t.update(g, s, params)
            new.append(s)
        return g, tuple(new)
    return GradientTransformation(init, update)


def sgd(learning_rate, momentum: float | None = None,
        nesterov: bool = False) -> GradientTransformation:
    """SGD with optional (Nesterov) momentum: same trajectory as ``taiji.optim.SGD``."""
    parts = [trace(momentum, nesterov)] if momentum else []
    return chain(*parts, scale_by_learning_rate(learning_rate))


def adam(learning_rate, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> GradientTransformation:
    """Adam, as in ``taiji.optim.Adam``."""
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-4) -> GradientTransformation:
    """Adam with decoupled weight decay."""
    return chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay),
                 scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate, decay: float = 0.9, eps: float = 1e-8) -> GradientTransformation:
    return chain(scale_by_rms(decay, eps), scale_by_learning_rate(learning_rate))
