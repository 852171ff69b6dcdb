"""``taiji.amp.GradScaler``: dynamic loss scaling (PyTorch's ``torch.amp.GradScaler``).

The loss is multiplied by a scale before ``backward()`` so that small float16 gradients do
not flush to zero; ``unscale_`` divides the gradients back and records whether any of them
is inf/NaN; ``step`` skips the optimizer step when one is; ``update`` halves the scale after a
skipped step and doubles it after ``growth_interval`` clean steps in a row.

Everything is written with tensor ops on 0-d state tensors (the scale, the growth tracker,
the count of consecutive skips), so the same code compiles under ``taiji.jit``: the state
tensors become implicit inputs and outputs of the compiled step, ``found_inf`` is a tensor,
and the skip is a select — after the optimizer computes its update, every parameter and
optimizer-state tensor the step wrote is reset with ``where(found_inf, old, new)``. Eagerly
the step is simply not called. The arithmetic is the same, so eager and compiled AMP give
the same parameters.

Two additions to PyTorch's behaviour: the scale never falls below ``min_scale``
(``2**-24`` by default: below that no float16 gradient survives the scaling anyway), and
after ``skip_warning_after`` consecutive skipped steps a warning names the first parameter
whose gradient was not finite (once per scaler).

Where the state lives: on the CPU until the first ``scale(loss)`` of a loss on another device
(a GPU), which moves it there, as PyTorch's scaler creates its state on the loss's device. So
a compiled CUDA step reads and writes it in GPU memory (no host copies around each call, and
the step can be replayed as one CUDA graph); the only host read is the skip counter of the
warning above, which a compiled step then checks every ``skip_warning_after`` calls instead
of every call, not to wait for the GPU each step (a run of ``2 * skip_warning_after - 1``
skipped steps is always reported).
"""
from __future__ import annotations

import warnings
from typing import Any

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji._core.interpreters import STATE, eager
from taiji.autograd import no_grad

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


def _trace():
    from taiji.compiler.trace import current_trace
    return current_trace()


def _scalar_state(value: float):
    from taiji._creation import tensor
    with eager():
        return tensor(float(value), dtype=dt.float32)


class GradScaler:
    """Scale the loss, unscale the gradients, skip steps whose gradients overflowed.

    Args:
        device: "cpu" or "cuda" (kept for PyTorch compatibility; the state moves to the
            device of the first loss passed to :meth:`scale`).
        init_scale: the first scale factor.
        growth_factor: multiply the scale by this after ``growth_interval`` clean steps.
        backoff_factor: multiply the scale by this after a step with inf/NaN gradients.
        growth_interval: clean steps in a row before the scale grows.
        enabled: ``False`` makes every method a pass-through (scale 1, plain ``step``).
        min_scale: the floor of the scale (taiji addition).
        skip_warning_after: warn (once) after this many consecutive skipped steps, naming the
            first parameter with a non-finite gradient (taiji addition; 0 disables it).

    Example:
        >>> scaler = taiji.amp.GradScaler()
        >>> with taiji.autocast("cpu"):
        ...     loss = F.cross_entropy(model(x), y)
        >>> scaler.scale(loss).backward()
        >>> scaler.step(opt)
        >>> scaler.update()
    """

    def __init__(self, device: str = "cpu", init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True,
                 min_scale: float = 2.0 ** -24, skip_warning_after: int = 10):
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got "
                             f"{backoff_factor}")
        if growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be >= 1, got {growth_interval}")
        self._device = device
        self._enabled = bool(enabled)
        self._init_scale = float(init_scale)
        self._min_scale = float(min_scale)
        self._skip_warning_after = int(skip_warning_after)
        self._warned = False
        # growth_factor, backoff_factor, growth_interval, min_scale as one state tensor, so
        # the setters reach compiled steps without a recompile
        from taiji._creation import tensor
        with eager():
            self._hp = tensor([float(growth_factor), float(backoff_factor),
                               float(growth_interval), self._min_scale], dtype=dt.float32)
        self._scale = _scalar_state(init_scale)
        self._growth_tracker = _scalar_state(0.0)
        self._skipped = _scalar_state(0.0)    # consecutive skipped steps
        self._bad_param = _scalar_state(-1.0)  # flat index of the first non-finite gradient
        self._per_optimizer: dict[int, dict] = {}
        self._bad_names: list[str] = []  # describes the gradients unscale_ checks, in order
        self._names_fresh = True
        self._calls = 0  # compiled calls, for the periodic skip check on a GPU

    def _state_tensors(self) -> tuple:
        return (self._hp, self._scale, self._growth_tracker, self._skipped, self._bad_param)

    def _follow(self, t) -> None:
        """Move the state to tensor ``t``'s device (the first scaled loss's), unless it is
        there already or a compiled step being traced has already read it."""
        from taiji.compiler.trace import Tracer
        dev = t.device
        state = self._state_tensors()
        if self._scale.device == dev or any(type(s._data) is Tracer for s in state):
            return
        with eager(), no_grad():
            for s in state:
                s._data = s.detach().to(dev)._data

    # ------------------------------------------------------------ scaling
    def scale(self, outputs: Any) -> Any:
        """``outputs`` (a tensor or a nested list / tuple / dict of tensors) times the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, O.Tensor):
            self._follow(outputs)
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, dict):
            return {k: self.scale(v) for k, v in outputs.items()}
        raise TypeError(f"GradScaler.scale: expected a Tensor or a nested list/tuple/dict of "
                        f"Tensors, got {type(outputs).__name__}")

    def _state(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found": None})

    def unscale_(self, optimizer) -> None:
        """Divide ``optimizer``'s gradients by the scale in place and record whether any is
        inf/NaN. Call it before clipping gradients; ``step`` calls it if you did not."""
        if not self._enabled:
            return
        st = self._state(optimizer)
        if st["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since "
                               "the last update().")
        if st["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        if self._names_fresh:  # (first unscale_ since update(): the names start over)
            self._bad_names, self._names_fresh = [], False
        with no_grad():
            inv = O.reciprocal(self._scale)
            found = O.scalar(0.0, dt.float32)
            bad = self._bad_param
            names = []
            for gi, group in enumerate(optimizer.param_groups):
                for pi, p in enumerate(group["params"]):
                    g = p.grad
                    if g is None:
                        continue
                    k = len(self._bad_names) + len(names)
                    names.append(f"param_groups[{gi}]['params'][{pi}] (shape "
                                 f"{list(p.shape)}, dtype {p.dtype.name})")
                    nonfinite = O.to(O.logical_not(O.all(O.isfinite(g))), dt.float32)
                    # first offender since the last clean step (kept while skips go on)
                    bad = O.where((nonfinite > 0) & (bad < 0), O.scalar(float(k), dt.float32),
                                  bad)
                    found = O.maximum(found, nonfinite)
                    g.mul_(O.to(inv, g.dtype))
            self._bad_param._assign(bad)
        self._bad_names.extend(names)
        st["found"] = found
        st["stage"] = _UNSCALED

    # ------------------------------------------------------------ stepping
    def step(self, optimizer, *args, **kwargs):
        """Unscale (if needed), then run ``optimizer.step()`` unless a gradient is inf/NaN.

        Eagerly a skipped step is not called at all. Under ``taiji.jit`` the update is
        computed and every tensor it wrote (parameters, moments, step counts) is reset with
        ``where(found_inf, old, new)``. Returns the optimizer's return value (None when
        skipped eagerly)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is "
                               "enabled.")
        st = self._state(optimizer)
        if st["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if st["stage"] == _READY:
            self.unscale_(optimizer)
        found = st["found"]
        st["stage"] = _STEPPED
        tr = _trace()
        if tr is None and STATE.interp is None:
            if float(found.item()) == 0.0:
                return optimizer.step(*args, **kwargs)
            return None
        return self._select_step(tr, found, optimizer, args, kwargs)

    @staticmethod
    def _select_step(tr, found, optimizer, args, kwargs):
        """Run the step inside a trace, then undo its writes where ``found`` is set."""
        if tr is None:
            raise RuntimeError("GradScaler.step: under vmap/jvp the conditional step cannot "
                               "be expressed; call it eagerly or inside taiji.jit")
        from taiji.compiler.trace import Tracer
        from taiji.tensor import Tensor
        n_before = len(tr.captures)
        before = {id(c.tensor): c.tensor._data for c in tr.captures}
        out = optimizer.step(*args, **kwargs)
        skip = found > 0
        with no_grad():
            for i, c in enumerate(tr.captures):
                t, cur = c.tensor, c.tensor._data
                if i < n_before:
                    old = before[id(t)]
                    if cur is old:
                        continue
                elif type(cur) is Tracer and cur.var is c.var:
                    continue  # read by the step, not written
                else:
                    old = Tracer(c.var, tr, ("<GradScaler.step>", 0))
                t._assign(O.where(skip, Tensor._from_payload(old), t.detach()))
        return out

    def update(self, new_scale: float | Any = None) -> None:
        """Adjust the scale for the next iteration: ``backoff_factor`` times it after a
        skipped step (not below ``min_scale``), ``growth_factor`` times it after
        ``growth_interval`` clean steps in a row. ``new_scale`` sets it directly instead."""
        if not self._enabled:
            return
        if new_scale is not None:
            v = new_scale if isinstance(new_scale, O.Tensor) else O.scalar(float(new_scale),
                                                                            dt.float32)
            with no_grad():
                self._scale._assign(O.to(v, dt.float32).reshape(()))
            self._per_optimizer.clear()
            return
        founds = [s["found"] for s in self._per_optimizer.values() if s["found"] is not None]
        if not founds:
            raise RuntimeError("No inf checks were recorded prior to update(); call "
                               "scaler.step(optimizer) (or unscale_) first.")
        with no_grad():
            found = founds[0]
            for f in founds[1:]:
                found = O.maximum(found, f)
            skip = found > 0
            growth, backoff, interval, floor = (self._hp[i] for i in range(4))
            scale, tracker = self._scale, self._growth_tracker
            clean = tracker + 1.0
            grow = clean >= interval
            grown = scale * growth
            grown = O.where(O.isfinite(grown), grown, scale)
            new = O.where(skip, O.maximum(scale * backoff, floor), O.where(grow, grown, scale))
            zero = O.scalar(0.0, dt.float32)
            new_tracker = O.where(skip | grow, zero, clean)
            skipped = O.where(skip, self._skipped + 1.0, zero)
            bad = O.where(skip, self._bad_param, O.scalar(-1.0, dt.float32))
            self._scale._assign(new)
            self._growth_tracker._assign(new_tracker)
            self._skipped._assign(skipped)
            self._bad_param._assign(bad)
        self._per_optimizer.clear()
        tr = _trace()
        if tr is not None:
            tr.add_prologue(self._prologue_check)  # reads the counters before each call
        elif STATE.interp is None:
            self._check_skips()
        self._names_fresh = True

    def _prologue_check(self) -> None:
        """Before each call of a compiled step: the skip check, every call for state on the
        CPU, every ``skip_warning_after`` calls for state on a GPU (reading it waits for the
        GPU to finish the previous step)."""
        self._calls += 1
        k = max(1, self._skip_warning_after)
        if self._calls % k == 0 or self._scale.device.type == "cpu":
            self._check_skips()

    def _check_skips(self) -> None:
        if self._warned or self._skip_warning_after <= 0:
            return
        n = int(self._skipped.item())
        if n < self._skip_warning_after:
            return
        self._warned = True
        k = int(self._bad_param.item())
        who = self._bad_names[k] if 0 <= k < len(self._bad_names) else f"parameter #{k}"
        warnings.warn(f"GradScaler: {n} optimizer steps in a row were skipped because of "
                      f"inf/NaN gradients (scale now {self.get_scale():g}); the first "
                      f"non-finite gradient was that of {who}. Check the model and the data "
                      f"for overflows (a float16 range problem persists at any scale).",
                      RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------ accessors
    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled)."""
        return float(self._scale.item()) if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return float(self._hp[0].item())

    def set_growth_factor(self, new_factor: float) -> None:
        self._set_hp(0, new_factor)

    def get_backoff_factor(self) -> float:
        return float(self._hp[1].item())

    def set_backoff_factor(self, new_factor: float) -> None:
        self._set_hp(1, new_factor)

    def get_growth_interval(self) -> int:
        return int(self._hp[2].item())

    def set_growth_interval(self, new_interval: int) -> None:
        self._set_hp(2, new_interval)

    def get_min_scale(self) -> float:
        return float(self._hp[3].item())

    def _set_hp(self, i: int, v: float) -> None:
        with eager(), no_grad():
            vals = [float(x) for x in self._hp.tolist()]
            vals[i] = float(v)
            from taiji._creation import tensor
            self._hp._assign(tensor(vals, dtype=dt.float32, device=self._hp.device))

    def _get_growth_tracker(self) -> int:
        return int(self._growth_tracker.item()) if self._enabled else 0

    def is_enabled(self) -> bool:
        return self._enabled

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """``{'scale', 'growth_factor', 'backoff_factor', 'growth_interval',
        '_growth_tracker'}`` as Python numbers (PyTorch's keys; empty when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self.get_growth_factor(),
                "backoff_factor": self.get_backoff_factor(),
                "growth_interval": self.get_growth_interval(),
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` (values may be numbers or 0-d tensors)."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        f = (lambda v: float(v.item()) if isinstance(v, O.Tensor) else float(v))
        with eager(), no_grad():
            self._scale.fill_(f(state_dict["scale"]))
            self._growth_tracker.fill_(f(state_dict["_growth_tracker"]))
        self.set_growth_factor(f(state_dict["growth_factor"]))
        self.set_backoff_factor(f(state_dict["backoff_factor"]))
        self.set_growth_interval(f(state_dict["growth_interval"]))

    def __repr__(self) -> str:
        return (f"GradScaler(scale={self.get_scale():g}, enabled={self._enabled}, "
                f"growth_interval={self.get_growth_interval() if self._enabled else None})")
