"""The IR: `Var`, `Literal`, `Eqn`, `Graph`. A graph prints as valid Python with shape
comments (``t3 = matmul(t1, t2)  # f32[64,256]``) and can be re-bound equation by equation
(`eval_graph`), so a compiled graph can be transformed again (grad, vmap)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taiji import _dtypes as dt
from taiji._core.primitive import Primitive, ShapedArray

_ids = itertools.count()


class Var:
    """A value in a graph: known shape and dtype, no contents."""

    __slots__ = ("aval", "id")

    def __init__(self, aval: ShapedArray):
        self.aval = aval
        self.id = next(_ids)

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    def __repr__(self):
        return f"Var({self.id}: {self.aval.str_short()})"


class Literal:
    """A constant array embedded in a graph."""

    __slots__ = ("value", "aval")

    def __init__(self, value):
        if type(value) is not np.ndarray and not isinstance(value, np.generic):
            from taiji.backends import backend_of_array  # a device array: graphs hold host
            value = backend_of_array(value).to_host(value)  # constants (codegen moves them)
        self.value = value
        self.aval = ShapedArray(tuple(value.shape), dt.from_np(value.dtype))

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    def key(self):
        """A hashable identity for small constants (CSE and folding), else the object."""
        v = self.value
        if v.size <= 16:
            return ("lit", v.dtype.str, v.shape, v.tobytes())
        return ("lit", id(self))

    def __repr__(self):
        return f"Literal({self.aval.str_short()})"


@dataclass
class Eqn:
    """``outputs = prim(*inputs, **params)``."""
    prim: Primitive
    inputs: list
    params: dict
    outputs: list
    where: Any = None  # (file, line) of the user's code that produced it


@dataclass(eq=False)  # graphs compare and hash by identity (they key caches)
class Graph:
    """Inputs, equations in execution order, outputs; ``header`` names the passes run."""
    inputs: list
    eqns: list
    outputs: list
    header: list = field(default_factory=list)
    plan: dict | None = None  # var id -> preallocated buffer (set by plan_memory)

    def with_eqns(self, eqns, outputs=None, note: str | None = None) -> "Graph":
        return Graph(list(self.inputs), eqns, list(self.outputs if outputs is None else outputs),
                     self.header + ([note] if note else []))

    def __str__(self) -> str:
        return graph_to_text(self)

    def typecheck(self) -> None:
        """Re-derive each equation's output avals; raise on any disagreement or use of a
        value before its definition."""
        defined = {id(v) for v in self.inputs}
        for i, e in enumerate(self.eqns):
            for v in e.inputs:
                if isinstance(v, Var) and id(v) not in defined:
                    raise TypeError(f"graph eqn {i} ({e.prim.name}) uses {v} before it is defined")
            avals = e.prim.abstract(*[v.aval for v in e.inputs], **e.params)
            avals = avals if e.prim.multiple_results else (avals,)
            for o, a in zip(e.outputs, avals):
                if o.aval != a:
                    raise TypeError(f"graph eqn {i} ({e.prim.name}): output declared "
                                    f"{o.aval.str_short()} but the rule gives {a.str_short()}")
                defined.add(id(o))
        for v in self.outputs:
            if isinstance(v, Var) and id(v) not in defined:
                raise TypeError(f"graph output {v} is never defined")

    def count(self, prim_name: str) -> int:
        return sum(1 for e in self.eqns if e.prim.name == prim_name)


def _fmt_param(v) -> str:
    if isinstance(v, dt.DType):
        return v.name
    if isinstance(v, str):
        return repr(v)
    return repr(v)


def graph_to_text(g: Graph, name: str = "f") -> str:
    """The graph as Python source with one shape comment per line. Sub-graphs (a loop's
    condition and body) are printed first as their own functions and named in params."""
    names: dict[int, str] = {}
    counter = itertools.count()
    subs: list[str] = []

    def nm(v):
        if isinstance(v, Literal):
            if v.value.size == 1:
                x = v.value.reshape(()).item() if v.value.dtype.kind != "V" else float(v.value)
                return repr(x)
            return f"const({v.aval.str_short()})"
        if id(v) not in names:
            names[id(v)] = f"t{next(counter)}"
        return names[id(v)]

    def param(k, v):
        if isinstance(v, Graph):
            sub = f"{name}_{k}{len(subs)}"
            subs.append(graph_to_text(v, sub))
            return sub
        return _fmt_param(v)

    lines = [f"# pass: {h}" for h in g.header]
    args = ", ".join(f"{nm(v)}: '{v.aval.str_short()}'" for v in g.inputs)
    lines.append(f"def {name}({args}):")
    for e in g.eqns:
        outs = ", ".join(nm(o) for o in e.outputs)
        ins = [nm(v) for v in e.inputs]
        ins += [f"{k}={param(k, v)}" for k, v in e.params.items()]
        shapes = ", ".join(o.aval.str_short() for o in e.outputs)
        lines.append(f"    {outs} = {e.prim.name}({', '.join(ins)})  # {shapes}")
    outs = ", ".join(nm(v) for v in g.outputs)
    lines.append(f"    return ({outs}{',' if len(g.outputs) == 1 else ''})")
    return "\n\n".join(subs + ["\n".join(lines)])


def eval_graph(g: Graph, args: list) -> list:
    """Evaluate ``g`` on Tensors by binding each primitive again (under whatever interpreter
    is current: eagerly with autograd, or inside another transform)."""
    from taiji._ops import const
    env = {id(v): a for v, a in zip(g.inputs, args)}
    # constants go to the arguments' device (a graph's literals are host arrays)
    like = next((a for a in args if type(a._data) is not np.ndarray), None)

    def read(v):
        if isinstance(v, Literal):
            return const(v.value, like)
        return env[id(v)]

    for e in g.eqns:
        out = e.prim(*[read(v) for v in e.inputs], **e.params)
        outs = out if e.prim.multiple_results else (out,)
        for o, t in zip(e.outputs, outs):
            env[id(o)] = t
    return [read(v) for v in g.outputs]


def literal(value) -> Literal:
    return Literal(np.asarray(value))
