"""Which globals and closure variables a jitted function reads, so that rebinding one retraces.

A trace bakes in what the function found under its names: the tensors it read become the
program's captured state, the module and optimizer it called are the ones whose parameters
and update it recorded. PyTorch users rebind such names between steps (``model = Net()``,
``opt = SGD(...)``, ``w = w.detach()``) and expect the next call to use the new object, as
eager mode does; ``torch.compile`` guards on them too. So a jitted function remembers the
objects it found under its global and closure names, and the plain Python functions it calls
directly, and its compiled programs are dropped when one of those names is rebound.

Tracked are tensors, modules, optimizers and functions (objects a trace depends on by
identity). Python numbers and strings are not: as in JAX, a trace bakes in their values,
and a global counter read by the function would otherwise retrace every step (pass such a
value as an argument, or ``static_argnums``, to have it seen).
"""
from __future__ import annotations

import types

_MISSING = object()
_DEPTH = 2  # the function, and the plain functions it calls directly


def _tracked(v) -> bool:
    from taiji.nn.module import Module
    from taiji.optim.optimizer import Optimizer
    from taiji.tensor import Tensor
    return isinstance(v, (Tensor, Module, Optimizer)) or _user_function(v)


def _user_function(v) -> bool:
    """A plain Python function outside taiji (taiji's own functions never change)."""
    return isinstance(v, types.FunctionType) and not (v.__module__ or "").startswith("taiji")


def _names(code: types.CodeType) -> set:
    """The global names ``code`` may read (its own, and its nested functions')."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def snapshot(fn) -> tuple:
    """``((container, name, value, is_cell), ...)``: for each global (container: the globals
    dict) and closure cell (container: the cell) of ``fn`` holding a tracked object, that
    object; and the same for the user functions it reads, once."""
    entries, seen = [], set()

    def visit(f, depth):
        f = getattr(f, "__func__", f)  # (a bound method: its function)
        code = getattr(f, "__code__", None)
        if code is None or id(f) in seen:
            return
        seen.add(id(f))
        g = getattr(f, "__globals__", {})
        found = []
        for name in sorted(_names(code)):
            v = g.get(name, _MISSING)
            if v is not _MISSING and _tracked(v):
                found.append((g, name, v, False))
        for name, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or ()):
            try:
                v = cell.cell_contents
            except ValueError:  # (an empty cell: assigned later in the enclosing scope)
                continue
            if _tracked(v):
                found.append((cell, name, v, True))
        entries.extend(found)
        if depth > 1:
            for _, _, v, _ in found:
                if _user_function(v):
                    visit(v, depth - 1)
    visit(fn, _DEPTH)
    return tuple(entries)


def rebound(entries: tuple) -> str | None:
    """The first name in ``entries`` that no longer holds its object, or None."""
    for container, name, v, is_cell in entries:
        if is_cell:
            try:
                now = container.cell_contents
            except ValueError:
                now = _MISSING
        else:
            now = container.get(name, _MISSING)
        if now is not v:
            return f"{'closure variable' if is_cell else 'global'} '{name}'"
    return None
