"""Tracing: run a Python function on traced Tensors and record a `Graph`.

Explicit arguments become graph inputs. Every concrete Tensor the function *reads* without
receiving it (parameters, buffers, optimizer state, a generator's key) is captured as an
implicit input; if the function *mutates* it (in-place ops, optimizer steps) or assigns its
``.grad``, the final value becomes an implicit output that the caller writes back after each
run (Flax NNX split/merge, TinyJit capture, torch.compile's functionalisation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from taiji._core import tape
from taiji._core.interpreters import Interpreter, STATE
from taiji._core.ir import Eqn, Graph, Literal, Var
from taiji._core.primitive import ShapedArray


class TracerError(RuntimeError):
    """A traced value was used where a concrete one is needed, or escaped its trace."""


class Tracer:
    """The payload of a Tensor under ``jit``: a graph variable."""

    __slots__ = ("var", "trace", "where")

    def __init__(self, var, trace, where):
        self.var = var
        self.trace = trace
        self.where = where

    @property
    def aval(self) -> ShapedArray:
        return self.var.aval

    @property
    def shape(self):
        return self.var.aval.shape

    @property
    def dtype(self):
        return self.var.aval.dtype

    @property
    def ndim(self):
        return len(self.var.aval.shape)

    @property
    def backend(self):
        from taiji.backends import numpy_backend
        return numpy_backend  # graphs are traced abstractly; constants stay on the host

    @property
    def device(self):
        """The device of the traced program: that of its inputs (taiji/_device.py)."""
        return self.trace.device

    def aval_str(self) -> str:
        return self.var.aval.str_short()

    def concrete_error(self, what: str):
        f, line = tape.user_frame(2)
        cf, cline = self.where
        raise TracerError(
            f"{what} needs a concrete value, but this tensor ({self.aval_str()}, made at "
            f"{cf}:{cline}) is being traced by taiji.jit; the call is at {f}:{line}. Python "
            f"`if`/`while`, bool(), float(), .item(), .tolist() and .numpy() cannot be compiled "
            f"on traced values. Use taiji.where or taiji.cond for branches, taiji.while_loop / "
            f"taiji.fori_loop / taiji.scan for loops, or mark the argument static "
            f"(jit(f, static_argnums=...)).")

    def escaped_error(self):
        _escaped(self)

    def __repr__(self):
        return f"Tracer({self.aval_str()})"


@dataclass
class Capture:
    """A concrete Tensor read by the traced function (implicit input)."""
    tensor: Any
    payload: Any          # its concrete payload before tracing (restored afterwards)
    grad: Any             # its .grad before tracing
    version: int
    var: Var
    grad_seen: bool = True  # did the traced code see the pre-call .grad (so it is a guard)?


@dataclass
class TraceResult:
    graph: Graph
    out_tree: Any                 # pytree structure of the user's outputs
    out_static: list              # non-Tensor output leaves (None where a Tensor goes)
    n_user_outputs: int
    captures: list                # Capture per implicit input, in graph-input order
    mutated: list                 # indices into captures whose value is written back
    grads: list                   # (tensor, 'set'|'none') for each .grad the code assigned
    saw_backward: bool
    outputs_need_grad: bool
    prologue: list = field(default_factory=list)


class TraceInterpreter(Interpreter):
    """Records equations instead of computing (the ``jit`` interpreter)."""

    def __init__(self):
        from taiji._device import CPU
        self.device = CPU  # the program's device: set by its first non-CPU input (note_device)
        self.eqns: list[Eqn] = []
        self.captures: list[Capture] = []
        self._captured_ids: dict[int, int] = {}
        self.done = False
        self.saw_backward = False
        self.prologue: list[Callable] = []
        self.grad_writes: dict[int, tuple] = {}  # id -> (tensor, .grad before the trace)

    def note_grad_write(self, t) -> None:
        """``t.grad`` is being assigned inside the trace (remember the original once)."""
        if id(t) not in self.grad_writes:
            i = self._captured_ids.get(id(t))
            orig = self.captures[i].grad if i is not None else t._grad
            self.grad_writes[id(t)] = (t, orig)

    def new_tracer(self, aval: ShapedArray, where=None) -> Tracer:
        return Tracer(Var(aval), self, where or tape.user_frame(3))

    def note_device(self, payload) -> None:
        """A concrete input lives on ``payload``'s device: the first non-CPU one is the
        program's device (a mix is reported when the program is compiled for it)."""
        if self.device.type == "cpu":
            from taiji._device import device_of
            self.device = device_of(payload)

    def add_prologue(self, fn: Callable) -> None:
        """Run ``fn()`` eagerly before every execution of the compiled program (used to
        copy Python-side hyper-parameters, such as a learning rate, into state tensors)."""
        if fn not in self.prologue:
            self.prologue.append(fn)

    def lift(self, t):
        p = t._data
        if type(p) is Tracer:
            if p.trace is self:
                return p
            return _escaped(p)
        if hasattr(p, "concrete_error") and not hasattr(p, "__array__"):
            # a payload of another interpreter (vmap / jvp tracer) reaching a jit trace
            raise TracerError("a tensor from an enclosing vmap/jvp reached taiji.jit's trace; "
                              "jit inside such transforms is inlined, so this is a taiji bug")
        return self.capture(t)

    def capture(self, t) -> Tracer:
        """Make concrete Tensor ``t`` an implicit input (its payload becomes a tracer until
        the trace ends)."""
        i = self._captured_ids.get(id(t))
        if i is not None:
            return t._data
        from taiji._dtypes import from_np
        p = t._data
        if type(p) is not np.ndarray:
            self.note_device(p)
        aval = ShapedArray(tuple(p.shape), from_np(p.dtype))
        tr = self.new_tracer(aval)
        w = self.grad_writes.get(id(t))
        grad, seen = (w[1], False) if w is not None else (t._grad, True)
        self.captures.append(Capture(t, p, grad, t._version, tr.var, seen))
        self._captured_ids[id(t)] = len(self.captures) - 1
        t._data = tr
        return tr

    def const(self, array):
        return Tracer(Literal(array), self, tape.user_frame(3))

    def process(self, prim, payloads, params):
        avals = [p.var.aval for p in payloads]
        out_avals = prim.abstract(*avals, **params)
        where = tape.user_frame(4)
        if prim.multiple_results:
            outs = [Tracer(Var(a), self, where) for a in out_avals]
            self.eqns.append(Eqn(prim, [p.var for p in payloads], dict(params),
                                 [o.var for o in outs], where))
            return outs
        out = Tracer(Var(out_avals), self, where)
        self.eqns.append(Eqn(prim, [p.var for p in payloads], dict(params), [out.var], where))
        return out


def _escaped(p: Tracer):
    f, line = tape.user_frame(3)
    cf, cline = p.where
    raise TracerError(
        f"a tensor traced by taiji.jit ({p.aval_str()}, made at {cf}:{cline}) escaped its "
        f"trace and is used at {f}:{line}. Values computed inside a jitted function are only "
        f"valid inside it: return them from the function instead of storing them in a global, "
        f"an attribute or a closure.")


def current_trace() -> TraceInterpreter | None:
    """The jit trace in progress on this thread, if any."""
    interp = STATE.interp
    while interp is not None:
        if isinstance(interp, TraceInterpreter):
            return interp
        interp = getattr(interp, "parent", None)
    return None


def trace(fn: Callable, args_tensors: list, rebuild: Callable) -> TraceResult:
    """Trace ``fn``. ``args_tensors`` are the explicit Tensor leaves; ``rebuild(traced)``
    returns (args, kwargs) for ``fn`` with traced Tensors in their places."""
    from taiji._ops import Tensor
    from taiji import _tree
    interp = TraceInterpreter()
    in_vars = []
    traced = []
    for t in args_tensors:
        if type(t._data) is not np.ndarray:
            interp.note_device(t._data)
        tr = interp.new_tracer(ShapedArray(tuple(t.shape), t.dtype))
        in_vars.append(tr.var)
        tt = Tensor._from_payload(tr)
        if t._requires_grad:
            tt._requires_grad = True
        traced.append(tt)
    prev = STATE.interp
    STATE.interp = interp
    try:
        args, kwargs = rebuild(traced)
        out = fn(*args, **kwargs)
    except BaseException:
        STATE.interp = prev
        _restore(interp)
        interp.done = True
        raise
    STATE.interp = prev
    leaves, out_tree = _tree.tree_flatten(out)
    user_vars, out_static = [], []
    needs_grad = False
    for leaf in leaves:
        if isinstance(leaf, Tensor):
            p = leaf._data
            if type(p) is Tracer and p.trace is interp:
                user_vars.append(p.var)
            elif type(p) is Tracer:
                _escaped(p)
            else:  # a concrete tensor returned as-is (e.g. an untouched buffer)
                user_vars.append(Literal(p))
            needs_grad = needs_grad or leaf._requires_grad
            out_static.append(None)
        else:
            out_static.append(leaf)
    mutated, grads, state_vars, grad_vars = [], [], [], []
    for i, c in enumerate(interp.captures):
        final = c.tensor._data
        if type(final) is Tracer and final.var is not c.var:
            mutated.append(i)
            state_vars.append(final.var)
    for t, orig in interp.grad_writes.values():
        g = t._grad
        if g is orig:
            continue
        if g is None:
            grads.append((t, "none"))
        else:
            gp = g._data
            if type(gp) is Tracer and gp.trace is not interp:
                _escaped(gp)
            grads.append((t, "set"))
            grad_vars.append(gp.var if type(gp) is Tracer else Literal(gp))
    _restore(interp)
    interp.done = True
    graph = Graph([*in_vars, *[c.var for c in interp.captures]], interp.eqns,
                  [*user_vars, *state_vars, *grad_vars], ["trace"])
    return TraceResult(graph, out_tree, out_static, len(user_vars), interp.captures, mutated,
                       grads, interp.saw_backward, needs_grad, interp.prologue)


def _restore(interp: TraceInterpreter) -> None:
    for c in interp.captures:
        c.tensor._data = c.payload
        c.tensor._version = c.version
    for t, orig in interp.grad_writes.values():
        t._grad = orig
