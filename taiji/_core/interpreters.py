"""The current-interpreter context (JAX's autodidax2: one current interpreter, no level stack).

Every `Tensor` carries a *payload*: a concrete backend array in eager mode, or a tracer object
owned by an interpreter (a graph `Var` under `jit`, a batched value under `vmap`, a
primal/tangent pair under `jvp`). `bind()` hands each primitive call to the current
interpreter; `None` means plain evaluation, the eager fast path. Interpreters that wrap values
(Batch, JVP) hold *parent-level Tensors* inside their tracers and run rules with the parent
interpreter current, so autograd's tape records at exactly one level.
"""
from __future__ import annotations

import contextlib
import threading


class _State(threading.local):
    """Per-thread mode: the current interpreter and whether autograd records (PyTorch's
    grad mode is thread-local too, so DataLoader threads never see a jit trace)."""

    interp = None
    grad_enabled = True
    autocast = None  # taiji.amp: the active autocast policy (None: off; see taiji/amp)


STATE = _State()

# Bumped whenever a Module's parameter, buffer or submodule is replaced by another object (or
# removed): a compiled program captured the old tensors, so taiji.jit recompiles.
MODULE_EPOCH = [0]


class Interpreter:
    """Base class: `lift` turns an argument Tensor into this interpreter's payload;
    `process` applies a primitive to payloads and returns payload(s)."""

    parent = None

    def lift(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def process(self, prim, payloads, params):  # pragma: no cover - abstract
        raise NotImplementedError


def current():
    """The interpreter now in force (None: eager evaluation)."""
    return STATE.interp


@contextlib.contextmanager
def set_interpreter(interp):
    """Make ``interp`` current for the block (its parent is whatever was current)."""
    prev = STATE.interp
    STATE.interp = interp
    try:
        yield interp
    finally:
        STATE.interp = prev


@contextlib.contextmanager
def eager():
    """Evaluate concretely inside the block, even while tracing (used to create state such
    as optimizer moments from shapes alone)."""
    prev = STATE.interp
    STATE.interp = None
    try:
        yield
    finally:
        STATE.interp = prev
