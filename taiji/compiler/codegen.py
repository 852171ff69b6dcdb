"""Codegen: a (planned) Graph becomes a Python function over the backend's array module.

The generated code calls NumPy (or CuPy: same API, bound as ``_np``) directly on raw arrays:
no Tensor objects, no dispatch, no tape at run time. Primitives with a direct array-module
spelling are emitted inline (``_np.matmul(t1, t2, out=_b3)`` when the memory plan gives the
output a preallocated buffer); the rest call the primitive's ``impl``.
"""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

from taiji import _dtypes as dt
from taiji._core.ir import Graph, Literal
from taiji._prims._util import zeros_view
from taiji.compiler import blas

# primitive -> array-module ufunc name (these accept out=)
UFUNCS = {
    "add": "add", "sub": "subtract", "mul": "multiply", "div": "true_divide",
    "maximum": "maximum", "minimum": "minimum", "pow": "power", "atan2": "arctan2",
    "floordiv": "floor_divide", "rem": "mod", "eq": "equal", "ne": "not_equal",
    "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
    "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
    "neg": "negative", "exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1",
    "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tan": "tan", "tanh": "tanh", "abs": "abs",
    "sign": "sign", "floor": "floor", "ceil": "ceil", "trunc": "trunc", "isnan": "isnan",
    "isinf": "isinf", "isfinite": "isfinite", "invert": "invert",
}
VIEW_PRIMS = {"reshape", "transpose", "broadcast_to", "slice"}
# 0-d arithmetic runs on NumPy scalars with Python operators: ~40 ns an operation instead of
# ~500 ns for a ufunc call on 0-d arrays (an optimizer's bias corrections are a dozen such
# operations per parameter). Same IEEE float32/float64 arithmetic, same result dtype.
SCALAR_BINOPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
OUT_CAPABLE = set(UFUNCS) | {"matmul", "reduce_sum", "reduce_max", "reduce_min", "relu",
                            "convert_element_type"}


class Emitter:
    """Collects names, constants and lines for one generated function."""

    def __init__(self):
        self.ns: dict = {"_np": np}
        # {dtype: K block} when the program may switch threads (blas.kblocks), else None
        self.kblocks: dict | None = None
        # {dtype: pool product} when the native program halves on the pool (native.py)
        self.pool: dict = {}
        # a device program's backend: its products (Backend.matmul) and column sums
        # (Backend.colsum) replace the array module's
        self.device = None
        self.names: dict = {}  # id(var) -> name; ('s', id(var)) -> its scalar's name
        self.count = itertools.count()
        self.lines: list[str] = []

    def name(self, v) -> str:
        if isinstance(v, Literal):
            key = id(v)
            if key not in self.names:
                n = f"_c{next(self.count)}"
                self.ns[n] = v.value
                self.names[key] = n
            return self.names[key]
        if id(v) not in self.names:
            self.names[id(v)] = f"t{next(self.count)}"
        return self.names[id(v)]

    def scalar(self, v) -> str:
        """A name holding ``v`` (0-d) as a NumPy scalar, converting an array once."""
        key = ("s", id(v))
        if key not in self.names:
            if isinstance(v, Literal):
                self.names[key] = self.const(v.value[()], "_c")
            else:
                n = f"{self.name(v)}s"
                self.lines.append(f"    {n} = {self.name(v)}[()]")
                self.names[key] = n
        return self.names[key]

    def const(self, value, prefix="_k") -> str:
        n = f"{prefix}{next(self.count)}"
        self.ns[n] = value
        return n


def _emit_scalar(em: Emitter, e) -> str | None:
    """``e`` as Python arithmetic on NumPy scalars, when it is 0-d arithmetic."""
    p = e.prim.name
    o = e.outputs[0]
    # floating only: NumPy integer scalars warn on overflow where arrays wrap silently
    if p not in UFUNCS or o.shape != () or not o.dtype.is_floating_point or any(
            v.shape != () or v.dtype != o.dtype for v in e.inputs):
        return None
    ins = [em.scalar(v) for v in e.inputs]
    out = em.name(e.outputs[0])
    em.names[("s", id(e.outputs[0]))] = out  # the result is a NumPy scalar already
    if p == "neg":
        return f"-{ins[0]}"
    if p in SCALAR_BINOPS:
        return f"{ins[0]} {SCALAR_BINOPS[p]} {ins[1]}"
    return f"_np.{UFUNCS[p]}({', '.join(ins)})"  # a ufunc of NumPy scalars returns one


def emit_eqn(em: Emitter, e, out_buf: str | None) -> str:
    """The right-hand side computing eqn ``e`` (writing into ``out_buf`` when given)."""
    p = e.prim.name
    if out_buf is None:
        rhs = _emit_scalar(em, e)
        if rhs is not None:
            return rhs
    ins = [em.name(v) for v in e.inputs]
    outk = f", out={out_buf}" if out_buf else ""
    prm = e.params
    if p in UFUNCS:
        return f"_np.{UFUNCS[p]}({', '.join(ins)}{outk})"
    if p == "relu":
        o = e.outputs[0]
        # on the host, zeros of the full shape: NumPy's vector loop (see zeros_view)
        zero = em.const(np.zeros((), o.dtype.np) if em.device is not None else
                        zeros_view(tuple(o.shape), o.dtype.np), "_z")
        return f"_np.maximum({ins[0]}, {zero}{outk})"
    if p == "matmul" and em.device is not None:
        em.ns["_dmm"] = em.device.matmul
        return f"_dmm({ins[0]}, {ins[1]}, {bool(prm.get('ta'))}, {bool(prm.get('tb'))}{outk})"
    if p == "matmul" and np.dtype(e.outputs[0].aval.dtype.np).itemsize > 2:
        # (half-precision products go through the primitive's impl: float32 accumulation)
        d = np.dtype(e.outputs[0].aval.dtype.np)
        # a program that may switch threads: K blocks and halves; one that keeps OpenBLAS's
        # threads (kb -1): halves only (compiler/blas.py)
        kb = blas.product_kb(em.kblocks, d)
        k = e.inputs[0].shape[-2 if prm.get("ta") else -1]
        o = e.outputs[0].shape
        flat = all(len(v.shape) == 2 for v in e.inputs)
        if kb and flat and (0 < kb < k or blas.splits(d, o[-2], o[-1], k, prm.get("ta"),
                                                      prm.get("tb"), kb)):
            em.ns.setdefault("_mm", blas.matmul)
            return f"_mm({ins[0]}, {ins[1]}, {int(bool(prm.get('ta')))}, " \
                   f"{int(bool(prm.get('tb')))}, {kb}{outk})"
        a = f"{ins[0]}.swapaxes(-1, -2)" if prm.get("ta") else ins[0]
        b = f"{ins[1]}.swapaxes(-1, -2)" if prm.get("tb") else ins[1]
        return f"_np.matmul({a}, {b}{outk})"
    if p == "reshape":
        return f"{ins[0]}.reshape({prm['shape']!r})"
    if p == "transpose":
        return f"{ins[0]}.transpose({prm['perm']!r})"
    if p == "broadcast_to":
        return f"_np.broadcast_to({ins[0]}, {prm['shape']!r})"
    if p == "slice":
        idx = em.const(tuple(slice(a, b, c) for a, b, c in prm["spec"]), "_s")
        return f"{ins[0]}[{idx}]"
    if p == "convert_element_type":
        d = em.const(prm["dtype"].np, "_d")
        if dt.casts_through_float32(e.inputs[0].dtype.np, prm["dtype"].np):
            em.ns["_astype"] = dt.astype
            return f"_astype({ins[0]}, {d})"
        if out_buf:
            return f"_np.copyto({out_buf}, {ins[0]}, casting='unsafe') or {out_buf}"
        return f"{ins[0]}.astype({d})"
    if (p == "reduce_sum" and em.device is not None and tuple(prm["axes"]) == (0,)
            and not prm["keepdims"] and len(e.inputs[0].shape) == 2):
        em.ns["_dcs"] = em.device.colsum
        return f"_dcs({ins[0]}{outk})"
    if p in ("reduce_sum", "reduce_max", "reduce_min"):
        fn = {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min"}[p]
        axes, keep = prm["axes"], prm["keepdims"]
        if out_buf:
            return f"_np.{fn}({ins[0]}, axis={axes!r}, keepdims={keep}, out={out_buf})"
        return f"_np.asarray(_np.{fn}({ins[0]}, axis={axes!r}, keepdims={keep}))"
    if p == "select":
        return f"_np.where({', '.join(ins)})"
    if p == "fused":
        region, bufs = prm["region"], out_buf or ()
        pairs = tuple((k, e.inputs.index(b[1])) for k, b in enumerate(bufs)
                      if isinstance(b, tuple))
        name = em.const(region.with_inplace(pairs), "_r")
        rest = [b if isinstance(b, str) else "None" for b in bufs]
        if any(b != "None" for b in rest):
            return f"{name}.run({', '.join(ins)}, out=({', '.join(rest)},))"
        return f"{name}.run({', '.join(ins)})"
    fn = em.const(e.prim.impl, "_f")
    if prm:
        kw = em.const(prm, "_p")
        return f"{fn}(_np, {', '.join(ins)}, **{kw})"
    return f"{fn}(_np, {', '.join(ins)})"


def emit_line(em: Emitter, g: Graph, plan: dict, e, args: list) -> str:
    """Equation ``e`` of ``g`` as one line of the program, with the buffers ``plan`` gives
    its outputs (``args``: the names of g's inputs, which some outputs write over)."""
    from taiji.compiler.passes import inplace_target

    def buffer(v):
        b = plan.get(id(v))
        if b is None:
            return None
        if isinstance(b, tuple):  # ("arg", k): write over graph input k
            return args[b[1]]
        return em.const(b, "_b")
    outs = [em.name(o) for o in e.outputs]
    buf = None
    if e.prim.name == "fused":
        # per output: a buffer name, ("arg", input var) to write over an input, or None
        buf = []
        for o in e.outputs:
            b = plan.get(id(o))
            buf.append(("arg", inplace_target(g, b)) if isinstance(b, tuple) else buffer(o))
    elif len(e.outputs) == 1 and e.prim.name in OUT_CAPABLE:
        buf = buffer(e.outputs[0])
    rhs = emit_eqn(em, e, buf)
    lhs = ", ".join(outs) + ("," if e.prim.multiple_results and len(outs) == 1 else "")
    shapes = ", ".join(o.aval.str_short() for o in e.outputs)
    return f"    {lhs} = {rhs}  # {shapes}"


def generate(g: Graph, plan: dict | None = None, xp=np, device=None) -> tuple[str, dict]:
    """Python source and namespace for ``g`` (``plan``: var id -> preallocated buffer;
    ``device``: a device program's backend, whose products and column sums it calls)."""
    em = Emitter()
    em.ns["_np"] = xp
    em.device = device
    if xp is np:
        em.kblocks = blas.kblocks(g)
    args = [em.name(v) for v in g.inputs]
    plan = plan or {}
    for e in g.eqns:
        em.lines.append(emit_line(em, g, plan, e, args))
    rets = [em.name(v) for v in g.outputs]
    src = [f"def compiled({', '.join(args)}):"] + em.lines + [
        f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})"]
    return "\n".join(src), em.ns


def compile_graph(g: Graph, plan: dict | None = None, xp=np) -> tuple[Callable, str]:
    """Compile ``g`` to a Python function over raw arrays; returns (function, source)."""
    src, ns = generate(g, plan, xp)
    code = compile(src, "<taiji.jit>", "exec")
    exec(code, ns)  # noqa: S102 - source generated from our own IR
    return ns["compiled"], src
