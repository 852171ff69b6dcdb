"""`Optimizer`: parameter groups, per-parameter state, and jit-friendly hyper-parameters.

Eagerly, an update runs with Python-float hyper-parameters and NumPy's in-place paths
(``p.sub_``, ``mul_`` ...). Under ``taiji.jit`` nothing that may change between calls is baked
into the graph: each group's hyper-parameters live in 0-d tensors owned by the optimizer,
refreshed from ``param_group[...]`` by a prologue before every compiled run, and the step
count is a tensor in the state, so ``lr`` schedules and bias corrections work compiled.
State (moments, step counts) is created eagerly with concrete zeros, even mid-trace, and so
becomes captured state that the compiled step reads and writes back.

Subclasses implement ``_update(group, hp, params, grads, states)`` for one group, on lists
of tensors: a later multi-tensor (``_foreach``) implementation can replace it wholesale.
"""
from __future__ import annotations

import math
from collections import defaultdict
from copy import deepcopy
from typing import Any, Callable, Iterable

import numpy as np

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji._core.interpreters import eager, STATE
from taiji.autograd import no_grad, enable_grad
from taiji.tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _check_lr(lr) -> None:
    if not isinstance(lr, Tensor) and lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")


class Optimizer:
    """Base class of optimizers (PyTorch's ``torch.optim.Optimizer``).

    Args:
        params: an iterable of Tensors, or of dicts defining parameter groups.
        defaults: default hyper-parameters for groups that do not set them.
    """

    #: hyper-parameters (group keys) that are kept in tensors under jit; ``betas`` is split
    _hyper: tuple = ("lr",)
    #: group keys whose value changes the update's structure (checked under jit)
    _structural: tuple = ()

    def __init__(self, params: Iterable, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got a Tensor")
        self.defaults = defaults
        self.state: dict = defaultdict(dict)
        self.param_groups: list[dict] = []
        self._hp_tensors: list[dict] = []
        self._traced_structure = None
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for g in params:
            self.add_param_group(g)

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        ps = group["params"]
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        seen = set()
        for i, p in enumerate(ps):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but parameter {i} is a "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor (parameter {i} of shape "
                                 f"{list(p.shape)} was computed by {p.grad_fn}); use "
                                 f".detach().requires_grad_() to make a leaf")
            if id(p) in seen:
                raise ValueError(f"parameter {i} (shape {list(p.shape)}) appears more than "
                                 f"once in this parameter group")
            seen.add(id(p))
        for other in self.param_groups:
            for p in other["params"]:
                if id(p) in seen:
                    raise ValueError(f"some parameters appear in more than one parameter group "
                                     f"(one of shape {list(p.shape)})")
        group["params"] = ps
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {k}")
            group.setdefault(k, v)
        _check_lr(group.get("lr", 0.0))
        self._validate(group)
        self.param_groups.append(group)
        self._hp_tensors.append({})

    def _validate(self, group: dict) -> None:
        """Check a group's hyper-parameters (subclasses raise ValueError)."""

    # ------------------------------------------------------------ hyper-parameters
    def _hp_values(self, group: dict) -> dict:
        out = {}
        for k in self._hyper:
            if k == "beta1":
                out[k] = float(group["betas"][0])
            elif k == "beta2":
                out[k] = float(group["betas"][1])
            else:
                out[k] = float(group[k])
        return out

    def _structure(self):
        return tuple(tuple(g.get(k) for k in self._structural) for g in self.param_groups)

    def _sync_hyperparams(self) -> None:
        """Copy the groups' Python hyper-parameters into their tensors (runs eagerly before
        each compiled step)."""
        if self._traced_structure is not None and self._structure() != self._traced_structure:
            raise RuntimeError(
                f"{type(self).__name__}: an option that changes the update's structure "
                f"({', '.join(self._structural)}) changed after the step was compiled by "
                f"taiji.jit; create the jitted function again after changing it")
        values = [self._hp_values(g) for g in self.param_groups]
        if values == self.__dict__.get("_hp_synced"):
            return  # nothing changed since the last step (the usual case)
        self._hp_synced = values
        last = self.__dict__.setdefault("_hp_written", {})  # id(tensor) -> value written
        with eager(), no_grad():
            for vals, tens in zip(values, self._hp_tensors):
                for k, v in vals.items():
                    t = tens.get(k)
                    if t is not None and last.get(id(t)) != v:  # write only what changed
                        t.fill_(v)
                        last[id(t)] = v

    def _hyperparams(self, gi: int, group: dict) -> dict:
        """The group's hyper-parameters: Python floats eagerly, state tensors under jit."""
        from taiji.compiler.trace import current_trace
        # new state tensors (step counts, hyper-parameters) go where the parameters are
        self._state_device = group["params"][0].device
        tr = current_trace()
        if tr is None:
            return self._hp_values(group)
        tr.add_prologue(self._sync_hyperparams)
        self._traced_structure = self._structure()
        tens = self._hp_tensors[gi]
        from taiji._creation import tensor
        with eager():
            for k, v in self._hp_values(group).items():
                if k not in tens:  # (existing ones are refreshed by the prologue)
                    tens[k] = tensor(v, dtype=dt.float32, device=self._state_device)
        return dict(tens)

    def _zeros_state(self, p: Tensor, dtype=None) -> Tensor:
        """Concrete zeros shaped like ``p`` (created eagerly even while tracing), laid out
        like ``p``: F-order for a transposed parameter, so a compiled update runs on
        transposes (compiler/layout.py)."""
        from taiji._creation import zeros
        from taiji.compiler.layout import stored_transposed
        with eager():
            z = zeros(*p.shape, dtype=dtype or p.dtype, device=p.device)
            if type(z._data) is np.ndarray and stored_transposed(p):
                z._data = np.zeros(p.shape, z._data.dtype, order="F")
            return z

    def _step_tensor(self, state: dict) -> Tensor:
        if "step" not in state:
            from taiji._creation import tensor
            with eager():
                state["step"] = tensor(0.0, dtype=dt.float32,
                                       device=getattr(self, "_state_device", None))
        return state["step"]

    @staticmethod
    def _step_value(step: Tensor):
        """The step count: a Python float eagerly, the tensor itself while tracing."""
        from taiji.compiler.trace import current_trace
        if current_trace() is None:
            return float(step.item())
        return step

    # ------------------------------------------------------------ public API
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients of all optimized parameters (to None by default)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = p.grad.detach().zeros_like()

    def step(self, closure: Callable | None = None):
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for gi, group in enumerate(self.param_groups):
                params, grads, states = [], [], []
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    params.append(p)
                    grads.append(p.grad)
                    states.append(self.state[p])
                if not params:
                    continue
                if STATE.interp is None and self.compile_updates:
                    self._compiled_update(gi, group, params, grads, states)
                else:
                    self._update(group, self._hyperparams(gi, group), params, grads, states)
        return loss

    #: Eager steps run the update through taiji.jit: one compiled program per parameter set,
    #: whose elementwise math fuses into one loop per parameter (PyTorch's fused/foreach
    #: optimizers, from our own compiler). Set to False to run it op by op.
    compile_updates: bool = True

    def _compiled_update(self, gi, group, params, grads, states) -> None:
        """Run ``_update`` for one group as a compiled program. Parameters and state are
        captured (updated in place); gradients are arguments (new tensors every step)."""
        from taiji.compiler.api import jit
        cache = self.__dict__.setdefault("_update_programs", {})
        key = (gi, tuple(id(p) for p in params), self._structure())
        fn = cache.get(key)
        if fn is None:
            def update(grads):
                self._update(group, self._hyperparams(gi, group), params, list(grads), states)
            fn = cache[key] = jit(update)
        fn(tuple(grads))

    def _update(self, group: dict, hp: dict, params: list, grads: list, states: list) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``,
        PyTorch's layout (parameters are numbered in group order)."""
        index, groups, i = {}, [], 0
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                if id(p) not in index:
                    index[id(p)] = i
                    i += 1
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = dict(self.state[p])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state saved by ``state_dict``."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        for saved, g in zip(groups, self.param_groups):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        from taiji._creation import as_tensor
        import numpy as np
        by_index = {}
        for saved, g in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], g["params"]):
                by_index[i] = p
            for k, v in saved.items():
                if k != "params":
                    g[k] = deepcopy(v)
        self.state = defaultdict(dict)
        for i, st in state_dict["state"].items():
            p = by_index[int(i)]
            new = {}
            for k, v in st.items():
                if isinstance(v, Tensor):
                    v = v.detach().clone()
                    if k != "step" and v.dtype.is_floating_point:
                        v = v.to(p.dtype)
                elif isinstance(v, np.ndarray):
                    v = as_tensor(v.copy())
                if isinstance(v, Tensor):
                    v = v.to(p.device)  # state lives where its parameter does
                new[k] = v
            self.state[p] = new

    def __repr__(self) -> str:
        s = type(self).__name__ + " ("
        for i, g in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for k in sorted(g):
                if k != "params":
                    s += f"\n    {k}: {g[k]}"
        return s + "\n)"


#: smallest normal number of each dtype whose state buffers flush subnormals
_TINY = {d: float(np.finfo(d.np).tiny) for d in (dt.float32, dt.float64)}


def decay_add_(buf: Tensor, beta, x) -> Tensor:
    """``buf = beta * buf + x`` in place, then its subnormals flushed (``flush_subnormals_``):
    the update of every running average an optimizer keeps (Adam's moments, momentum
    buffers, RMSprop's and Adadelta's averages), so none can decay into subnormals."""
    buf.mul_(beta)
    return flush_subnormals_(buf.add_(x))


def flush_subnormals_(t: Tensor) -> Tensor:
    """Set ``t``'s subnormal elements to +0 in place (float32 and float64; other dtypes are
    left alone: float16's subnormals start at 6e-5, where a moment still carries signal).

    Why: a running average whose gradient stays zero (a dead ReLU unit, a pixel that is blank
    in every image) shrinks by its beta each step into the subnormal range, and there
    round-to-nearest pins it (0.9 x 4 ulp rounds back to 4 ulp), so it never reaches zero.
    Every later step then does arithmetic on subnormals, which x86 CPUs run through a
    microcode assist ~100x slower than normal arithmetic: the seed MLP's Adam step on
    Fashion-MNIST ran ~1.7x slower from step ~800 on (PyTorch's too; XLA runs with
    flush-to-zero, so JAX does not slow). Flushing the stored buffer is an explicit
    elementwise op, so eager, jit and every kernel tier compute the same bits. Values below
    1.2e-38 (float32) move an update by less than ``lr * 1e-30``: parameters match PyTorch's."""
    flushed = flush_subnormals(t)
    if flushed is not t:
        t.copy_(flushed)
    return t


def flush_subnormals(t: Tensor) -> Tensor:
    """``t`` with its subnormal elements set to +0 (float32 and float64; see
    ``flush_subnormals_``)."""
    tiny = _TINY.get(t.dtype)
    return t if tiny is None else O.where(O.abs(t) < tiny, 0.0, t)


def _sqrt(x):
    return math.sqrt(x) if isinstance(x, float) else x.sqrt()


def _is_float(*xs) -> bool:
    return all(isinstance(x, (int, float)) for x in xs)


Any_ = Any
