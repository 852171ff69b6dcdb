"""``taiji.func``: call a Module with substituted parameters (PyTorch's
``torch.func.functional_call``) and a pytree view of a module's state (JAX style)."""
from __future__ import annotations

from typing import Any

from taiji.tensor import Tensor


def _slot(module, name: str):
    mod_path, _, attr = name.rpartition(".")
    m = module.get_submodule(mod_path) if mod_path else module
    if attr in m._parameters:
        return m._parameters, attr
    if attr in m._buffers:
        return m._buffers, attr
    raise KeyError(f"functional_call: {type(module).__name__} has no parameter or buffer "
                   f"named '{name}'")


def functional_call(module, parameters_and_buffers, args=(), kwargs: dict | None = None, *,
                    tie_weights: bool = True, strict: bool = False):
    """Run ``module(*args, **kwargs)`` with the named tensors in ``parameters_and_buffers``
    (a dict, or a tuple of dicts) in place of the module's own; the module is unchanged
    afterwards. Gradients flow to the given tensors, so this composes with ``taiji.grad``.

    Example:
        >>> params = dict(model.named_parameters())
        >>> out = taiji.func.functional_call(model, params, (x,))
    """
    if isinstance(parameters_and_buffers, (tuple, list)):
        merged = {}
        for d in parameters_and_buffers:
            merged.update(d)
        parameters_and_buffers = merged
    if strict:
        own = set(state(module))
        missing = own - set(parameters_and_buffers)
        if missing:
            raise RuntimeError(f"functional_call: missing key(s) {sorted(missing)}")
    if not isinstance(args, tuple):
        args = (args,)
    saved = []
    try:
        for name, value in parameters_and_buffers.items():
            store, attr = _slot(module, name)
            saved.append((store, attr, store[attr]))
            store[attr] = value
        return module(*args, **(kwargs or {}))
    finally:
        for store, attr, old in reversed(saved):
            store[attr] = old


def state(module) -> dict[str, Tensor]:
    """Parameters and buffers by qualified name: a pytree (a dict) to pass through pure
    functions (``grad``, ``jit``, ``vmap``) and back into ``functional_call``."""
    out: dict[str, Any] = dict(module.named_parameters())
    out.update(dict(module.named_buffers()))
    return out


def params(module) -> dict[str, Tensor]:
    """Just the parameters, by qualified name (detached leaves)."""
    return {k: v.detach() for k, v in module.named_parameters()}
