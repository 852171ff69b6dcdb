"""The Batch (vmap) and JVP (forward-mode) interpreters and their tracers.

Tracers hold *parent-level* Tensors, and every rule runs with the parent interpreter current
(JAX's autodidax2 style, no level stack), so transforms nest in any order and autograd's tape
records at exactly one level. The user-facing transforms live in taiji.transforms.
"""
from __future__ import annotations

from taiji import _ops as O
from taiji._core.interpreters import Interpreter, set_interpreter
from taiji._core.primitive import ShapedArray


class ConcretizationError(TypeError):
    """A traced value was used where a concrete Python value is needed."""


def _aval(t) -> str:
    return ShapedArray(tuple(t.shape), t.dtype).str_short()


def _backend(t):
    from taiji._device import backend_for_payload
    return backend_for_payload(t._data)


# ---------------------------------------------------------------- vmap: the Batch interpreter


class BatchTracer:
    """A batched value: the parent-level Tensor ``val`` whose axis ``bdim`` is the vmapped
    axis (None: the same value for every batch element)."""

    __slots__ = ("interp", "val", "bdim")

    def __init__(self, interp: "BatchInterpreter", val, bdim: int | None):
        self.interp, self.val, self.bdim = interp, val, bdim

    @property
    def shape(self) -> tuple:
        s = self.val.shape
        return s if self.bdim is None else s[:self.bdim] + s[self.bdim + 1:]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self):
        return self.val.dtype

    @property
    def device(self):
        return self.val.device

    @property
    def backend(self):
        return _backend(self.val)

    def aval_str(self) -> str:
        return (f"{ShapedArray(self.shape, self.dtype).str_short()} "
                f"(vmapped over {self.interp.axis_size})")

    def concrete_error(self, what: str):
        raise ConcretizationError(
            f"{what} needs a concrete value, but this tensor "
            f"({ShapedArray(self.shape, self.dtype).str_short()}) differs across the vmapped "
            f"axis of size {self.interp.axis_size}: Python control flow and conversions cannot "
            f"depend on it. Use taiji.where(cond, x, y) for per-element choices, or compute "
            f"the value outside vmap.")


class BatchInterpreter(Interpreter):
    """Applies each primitive's ``batch`` rule (vmap)."""

    def __init__(self, axis_size: int, parent):
        self.axis_size = axis_size
        self.parent = parent

    def lift(self, t) -> BatchTracer:
        p = t._data
        if type(p) is BatchTracer and p.interp is self:
            return p
        return BatchTracer(self, t, None)

    def const(self, array) -> BatchTracer:
        with set_interpreter(self.parent):
            v = O.const(array)
        return BatchTracer(self, v, None)

    def process(self, prim, payloads, params):
        vals = [p.val for p in payloads]
        dims = [p.bdim for p in payloads]
        with set_interpreter(self.parent):
            if all(d is None for d in dims):
                out = prim(*vals, **params)
                odims = (None,) * len(out) if prim.multiple_results else None
            else:
                out, odims = prim.rule("batch")(vals, dims, **params)
        if prim.multiple_results:
            return [BatchTracer(self, o, d) for o, d in zip(out, odims)]
        return BatchTracer(self, out, odims)

# ---------------------------------------------------------------- jvp: the JVP interpreter


class JVPTracer:
    """A primal value with its tangent (both parent-level Tensors; tangent None = zero)."""

    __slots__ = ("interp", "primal", "tangent")

    def __init__(self, interp: "JVPInterpreter", primal, tangent):
        self.interp, self.primal, self.tangent = interp, primal, tangent

    @property
    def shape(self) -> tuple:
        return self.primal.shape

    @property
    def ndim(self) -> int:
        return self.primal.ndim

    @property
    def dtype(self):
        return self.primal.dtype

    @property
    def device(self):
        return self.primal.device

    @property
    def backend(self):
        return _backend(self.primal)

    def aval_str(self) -> str:
        return f"{_aval(self.primal)} (with a jvp tangent)"

    def concrete_value(self, what: str):
        # the primal is known: Python control flow on it is fine (as in JAX's jvp)
        return self.primal._concrete(what)


class JVPInterpreter(Interpreter):
    """Applies each primitive, then its ``jvp`` rule for the output tangent (forward mode)."""

    def __init__(self, parent):
        self.parent = parent

    def lift(self, t) -> JVPTracer:
        p = t._data
        if type(p) is JVPTracer and p.interp is self:
            return p
        return JVPTracer(self, t, None)

    def const(self, array) -> JVPTracer:
        with set_interpreter(self.parent):
            v = O.const(array)
        return JVPTracer(self, v, None)

    def process(self, prim, payloads, params):
        primals = [p.primal for p in payloads]
        tangents = [p.tangent for p in payloads]
        with set_interpreter(self.parent):
            out = prim(*primals, **params)
            if prim.nondiff or all(t is None for t in tangents):
                tout = None
            else:
                tout = prim.rule("jvp")(tangents, primals, out, **params)
            if prim.multiple_results:
                touts = tout if tout is not None else (None,) * len(out)
                return [JVPTracer(self, o, _fit_tangent(t, o)) for o, t in zip(out, touts)]
            return JVPTracer(self, out, _fit_tangent(tout, out))


def _fit_tangent(t, out):
    if t is None or not out.dtype.is_floating_point:
        return None
    if t.dtype is not out.dtype:
        t = t.to(out.dtype)
    if t.shape != out.shape:
        t = t.expand(out.shape)
    return t
