"""Transposed storage: a program computes on the C-order transpose of an F-order input.

A parameter can be stored transposed (``nn.Parameter(w.t())``, weights loaded from a
column-major source). The compiled program's kernels read flat C memory, and NumPy's tier
would copy or stride through such an array on every call (~12x slower for the seed MLP's
training step). So ``apply`` rewrites the graph: each F-order 2-D input ``v`` enters as
``v_t = transpose(v)``, a C-contiguous view, and the same-shape elementwise computations
that meet it (an optimizer's update of ``v``, of its state, and the gradient) run on
transposes too. A product whose result feeds them is emitted transposed
(``(A @ B).T = B.T @ A.T``: BLAS flags only), and a product reading a transposed value flips
its flag. Results leave as ``transpose(...)`` views. One written back into its F-order
storage is computed in place there (``passes.plan_memory``). The optimizer's state follows
its parameter's layout (``Optimizer._zeros_state``), so the whole update qualifies.

Values never depend on layouts: the rewrite only inserts transposes, so any array still gets
the right answer (a C-order array where F-order was traced takes the Python code).
"""
from __future__ import annotations

import numpy as np

from taiji._core.ir import Eqn, Graph, Var
from taiji._core.primitive import ShapedArray

ELEMENTWISE_EXTRA = {"relu", "select"}


def transposed(a) -> bool:
    """Whether ``a`` is a 2-D NumPy array stored transposed (F-order, not also C-order)."""
    return (type(a) is np.ndarray and a.ndim == 2 and a.flags.f_contiguous
            and not a.flags.c_contiguous)


def stored_transposed(t) -> bool:
    """Whether Tensor ``t``'s storage is F-order (while ``jit`` traces it: its storage
    before the trace)."""
    d = t._data
    ids = getattr(getattr(d, "trace", None), "_captured_ids", None)
    if ids is not None:
        i = ids.get(id(t))
        d = d.trace.captures[i].payload if i is not None else None
    return transposed(d)


def _elementwise(e) -> bool:
    """A same-shape elementwise equation: a 2-D output, every operand 0-d or of its shape."""
    from taiji.compiler.codegen import UFUNCS
    if (e.prim.name not in UFUNCS and e.prim.name not in ELEMENTWISE_EXTRA) or \
            len(e.outputs) != 1:
        return False
    o = e.outputs[0]
    return len(o.shape) == 2 and all(
        v.shape == () or (isinstance(v, Var) and v.shape == o.shape) for v in e.inputs)


def _matmul2d(e) -> bool:
    return e.prim.name == "matmul" and all(len(v.shape) == 2 for v in e.inputs)


class _Groups:
    """Union-find over var ids."""

    def __init__(self):
        self.up: dict = {}

    def find(self, k):
        while self.up.get(k, k) != k:
            self.up[k] = self.up.get(self.up[k], self.up[k])
            k = self.up[k]
        return k

    def join(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.up[a] = b


def plan(g: Graph, flags: list, written: dict) -> set:
    """Ids of the vars to compute transposed. ``flags[i]``: input i is stored F-order;
    ``written``: output index -> the input index whose storage it is written back into.

    Vars joined by same-shape elementwise equations form groups. A group is computed
    transposed when it holds an F-order input and nothing that must stay C-order: a C-order
    input, a value written back into C-order storage, the result or operand of any other
    kind of equation (reductions, broadcasts, reshapes...). Products are free either way."""
    groups = _Groups()
    two_d = {}
    for v in g.inputs:
        if len(v.shape) == 2:
            two_d[id(v)] = v
    for e in g.eqns:
        for o in e.outputs:
            if len(o.shape) == 2:
                two_d[id(o)] = o
        if _elementwise(e):
            o = e.outputs[0]
            for v in e.inputs:
                if v.shape == o.shape:
                    groups.join(id(v), id(o))
    t_anchor, c_anchor = set(), set()
    for i, v in enumerate(g.inputs):
        if id(v) in two_d:
            (t_anchor if flags[i] else c_anchor).add(groups.find(id(v)))
    for e in g.eqns:
        if _elementwise(e):
            continue
        for v in [] if _matmul2d(e) else list(e.outputs) + list(e.inputs):
            if isinstance(v, Var) and id(v) in two_d:
                c_anchor.add(groups.find(id(v)))
    for k, v in enumerate(g.outputs):
        if isinstance(v, Var) and id(v) in two_d and k in written and not flags[written[k]]:
            c_anchor.add(groups.find(id(v)))
    chosen = t_anchor - c_anchor
    return {k for k in two_d if groups.find(k) in chosen}


def apply(g: Graph, flags: list, written: dict) -> Graph:
    """``g`` computing on transposes where ``plan`` says so (see the module docstring);
    ``g`` itself when no input is F-order or nothing is worth it."""
    if not any(flags):
        return g
    tset = plan(g, flags, written)
    if not tset:
        return g
    from taiji._prims.structure import transpose
    phys: dict = {}   # var id -> its transpose, the value actually computed
    eqns: list = []

    def t_var(v):
        p = phys.get(id(v))
        if p is None:
            p = phys[id(v)] = Var(ShapedArray(tuple(reversed(v.shape)), v.dtype))
        return p
    for v in g.inputs:
        if id(v) in tset:  # the C-contiguous view of an F-order input
            eqns.append(Eqn(transpose, [v], {"perm": (1, 0)}, [t_var(v)], None))
    n = 0
    for e in g.eqns:
        if _elementwise(e) and id(e.outputs[0]) in tset:
            ins = [t_var(v) if v.shape != () else v for v in e.inputs]
            eqns.append(Eqn(e.prim, ins, e.params, [t_var(e.outputs[0])], e.where))
            n += 1
            continue
        if _matmul2d(e):
            a, b = e.inputs
            ta, tb = bool(e.params.get("ta")), bool(e.params.get("tb"))
            if id(a) in tset:
                a, ta = phys[id(a)], not ta
            if id(b) in tset:
                b, tb = phys[id(b)], not tb
            o = e.outputs[0]
            if id(o) in tset:  # (A @ B).T = B.T @ A.T
                eqns.append(Eqn(e.prim, [b, a], {**e.params, "ta": not tb, "tb": not ta},
                                [t_var(o)], e.where))
            else:
                eqns.append(Eqn(e.prim, [a, b], {**e.params, "ta": ta, "tb": tb},
                                e.outputs, e.where))
            n += 1
            continue
        eqns.append(e)  # (plan: no other equation touches a transposed value)
    for v in dict.fromkeys(v for v in g.outputs if isinstance(v, Var) and id(v) in tset):
        if v not in g.inputs:  # leaves as a view of the value computed
            eqns.append(Eqn(transpose, [phys[id(v)]], {"perm": (1, 0)}, [v], None))
    return g.with_eqns(eqns, note=f"layout ({len(tset)} values transposed, rewrote {n})")
