"""Structured control flow that compiles: cond, switch, while_loop, fori_loop, scan.

On concrete values these run as plain Python. On traced values (under jit, vmap, jvp):
- ``cond``/``switch`` evaluate every branch and select the result, so they are
  differentiable and batch naturally (branches must be pure);
- ``fori_loop`` with Python-int bounds and ``scan`` unroll at trace time, so they are
  differentiable like the straight-line code they become;
- ``while_loop`` (and ``fori_loop`` with traced bounds) becomes one ``while`` primitive
  holding its condition and body as sub-graphs. Like JAX's, it supports forward evaluation
  and vmap but not reverse-mode differentiation.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from taiji import _dtypes as dt
from taiji._core.interpreters import STATE
from taiji._core.ir import Graph
from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._batching import loop_batch

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan"]


def _tensor_cls():
    from taiji._ops import Tensor
    return Tensor


def _is_concrete_tensor(x) -> bool:
    return isinstance(x, _tensor_cls()) and type(x._data) is np.ndarray


def _check_same_structure(what, a, b):
    from taiji import _tree
    la, ta = _tree.tree_flatten(a)
    lb, tb = _tree.tree_flatten(b)
    if ta != tb:
        raise TypeError(f"{what}: branches must return the same structure, got {ta} and {tb}")
    T = _tensor_cls()
    for i, (x, y) in enumerate(zip(la, lb)):
        if isinstance(x, T) and isinstance(y, T):
            if x.shape != y.shape or x.dtype is not y.dtype:
                raise TypeError(f"{what}: output leaf {i} differs between branches: "
                                f"{x.dtype.name}{list(x.shape)} vs {y.dtype.name}{list(y.shape)}")
    return la, lb, ta


def cond(pred, true_fun: Callable, false_fun: Callable, *operands) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, compilable.

    Example:
        >>> taiji.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x)
    """
    if isinstance(pred, (bool, int, np.bool_)) or _is_concrete_tensor(pred):
        if isinstance(pred, _tensor_cls()) and pred.numel() != 1:
            raise TypeError(f"cond: pred must be a scalar, got shape {list(pred.shape)}")
        return true_fun(*operands) if bool(pred) else false_fun(*operands)
    return switch(pred, [false_fun, true_fun], *operands)


def switch(index, branches, *operands) -> Any:
    """``branches[index](*operands)`` (index clamped into range), compilable."""
    from taiji import _ops as O
    from taiji import _tree
    branches = list(branches)
    if not branches:
        raise ValueError("switch: expected at least one branch")
    if isinstance(index, (bool, int, np.integer)) or _is_concrete_tensor(index):
        i = int(index)
        return branches[min(max(i, 0), len(branches) - 1)](*operands)
    if index.numel() != 1:
        raise TypeError(f"cond/switch: the predicate must be a scalar, got shape "
                        f"{list(index.shape)}")
    outs = [b(*operands) for b in branches]
    idx = O.to(index.reshape(()), dt.int64)
    result = outs[0]
    T = _tensor_cls()
    for k in range(1, len(outs)):
        la, lb, tree = _check_same_structure("cond", result, outs[k])
        sel = idx >= k  # later branches win for larger indices (clamped like JAX)
        leaves = [O.where(sel, b, a) if isinstance(a, T) else a for a, b in zip(la, lb)]
        result = _tree.tree_unflatten(tree, leaves)
    return result


def fori_loop(lower, upper, body_fun: Callable, init_val) -> Any:
    """``val = body_fun(i, val)`` for i in [lower, upper). Python-int bounds unroll (and so
    differentiate); traced bounds become a while_loop."""
    if isinstance(lower, int) and isinstance(upper, int):
        val = init_val
        for i in range(lower, upper):
            val = body_fun(i, val)
        return val
    from taiji import _ops as O
    lo = O.as_tensor_arg(lower, dt.int64)
    hi = O.as_tensor_arg(upper, dt.int64)
    _, val = while_loop(lambda c: c[0] < hi, lambda c: (c[0] + 1, body_fun(c[0], c[1])),
                        (O.to(lo, dt.int64), init_val))
    return val


def scan(f: Callable, init, xs=None, length: int | None = None, reverse: bool = False):
    """JAX's scan: ``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns the
    final carry and the stacked ``y`` values. Unrolled at trace time (differentiable)."""
    from taiji import _ops as O
    from taiji import _tree
    T = _tensor_cls()
    leaves, tree = _tree.tree_flatten(xs)
    if length is None:
        if not leaves:
            raise ValueError("scan: pass length= when xs is None")
        length = leaves[0].shape[0]
    for i, x in enumerate(leaves):
        if x.shape[:1] != (length,):
            raise ValueError(f"scan: every xs leaf needs leading dimension {length}, leaf {i} "
                             f"has shape {list(x.shape)}")
    carry, ys = init, []
    order = range(length - 1, -1, -1) if reverse else range(length)
    for i in order:
        x = _tree.tree_unflatten(tree, [leaf[i] for leaf in leaves]) if leaves else None
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys or ys[0] is None:
        return carry, None
    ly, ty = _tree.tree_flatten(ys[0])
    cols = [_tree.tree_flatten(y)[0] for y in ys]
    stacked = [O.stack([c[k] for c in cols]) if isinstance(ly[k], T) else ly[k]
               for k in range(len(ly))]
    return carry, _tree.tree_unflatten(ty, stacked)


# ---------------------------------------------------------------- while_loop

def while_loop(cond_fun: Callable, body_fun: Callable, init_val) -> Any:
    """``while cond_fun(val): val = body_fun(val)``, compilable (not reverse-differentiable).

    Example:
        >>> taiji.while_loop(lambda v: v < 10, lambda v: v * 2, taiji.tensor(1))
    """
    from taiji import _tree
    leaves, tree = _tree.tree_flatten(init_val)
    T = _tensor_cls()
    if STATE.interp is None and all(not isinstance(x, T) or type(x._data) is np.ndarray
                                    for x in leaves):
        val = init_val
        while True:
            c = cond_fun(val)
            if not isinstance(c, (bool, np.bool_)) and not _is_concrete_tensor(c):
                break  # the predicate is traced: fall through to the primitive
            if not bool(c):
                return val
            val = body_fun(val)
        init_val = val
        leaves, tree = _tree.tree_flatten(init_val)
    from taiji import _ops as O
    carry = [x if isinstance(x, T) else O.as_tensor_arg(x) for x in leaves]
    avals = [ShapedArray(tuple(x.shape), x.dtype) for x in carry]
    cgraph, cconsts, ctree = _trace_closed(lambda *c: cond_fun(_tree.tree_unflatten(tree, c)),
                                           avals, "while_loop cond_fun")
    bgraph, bconsts, btree = _trace_closed(lambda *c: body_fun(_tree.tree_unflatten(tree, c)),
                                           avals, "while_loop body_fun")
    if btree != tree:
        raise TypeError(f"while_loop: body_fun must return the structure of init_val "
                        f"({tree}), got {btree}")
    out = while_p(*cconsts, *bconsts, *carry, cond_graph=cgraph, body_graph=bgraph,
                  n_cond=len(cconsts), n_body=len(bconsts))
    return _tree.tree_unflatten(tree, list(out))


def _trace_closed(fn, avals, what):
    """Trace ``fn`` on abstract inputs into a Graph whose first inputs are the outer tensors
    it closes over; returns (graph, closed-over tensors, output treedef)."""
    from taiji import _tree
    from taiji._ops import Tensor
    from taiji.compiler.passes import optimize
    from taiji.compiler.trace import Tracer, TraceInterpreter

    class Closure(TraceInterpreter):
        def __init__(self):
            super().__init__()
            self.outer, self.outer_vars, self.index = [], [], {}

        def lift(self, t):
            p = t._data
            if type(p) is Tracer and p.trace is self:
                return p
            i = self.index.get(id(t))
            if i is None:
                tr = self.new_tracer(ShapedArray(tuple(t.shape), t.dtype))
                self.index[id(t)] = i = len(self.outer)
                self.outer.append(t)
                self.outer_vars.append(tr)
            return self.outer_vars[i]

    interp = Closure()
    args = [Tensor._from_payload(interp.new_tracer(a)) for a in avals]
    prev = STATE.interp
    STATE.interp = interp
    try:
        out = fn(*args)
    finally:
        STATE.interp = prev
        interp.done = True
    leaves, tree = _tree.tree_flatten(out)
    outs = []
    for x in leaves:
        if not isinstance(x, Tensor):
            x = Tensor._from_payload(interp.const(np.asarray(x)))
        p = x._data
        if type(p) is not Tracer or p.trace is not interp:
            p = interp.lift(x)
        outs.append(p.var)
    for t in interp.outer:
        if type(t._data) is Tracer and t._data.trace is interp:
            raise RuntimeError(f"{what} changed a tensor from outside the loop in place "
                               f"(shape {list(t.shape)}); return new values in the carry")
    g = Graph([*[v.var for v in interp.outer_vars], *[a._data.var for a in args]],
              interp.eqns, outs, [what])
    return optimize(g), interp.outer, tree


while_p = Primitive("while", multiple_results=True)


def _run(graph: Graph, arrays, xp):
    fn = getattr(graph, "_compiled", None)
    if fn is None:
        from taiji.compiler.codegen import compile_graph
        fn, _ = compile_graph(graph, None, xp)
        graph._compiled = fn
    return fn(*arrays)


@while_p.def_impl
def _while_impl(xp, *arrays, cond_graph, body_graph, n_cond, n_body):
    cc = arrays[:n_cond]
    bc = arrays[n_cond:n_cond + n_body]
    carry = list(arrays[n_cond + n_body:])
    while bool(_run(cond_graph, [*cc, *carry], xp)[0]):
        carry = list(_run(body_graph, [*bc, *carry], xp))
    return tuple(carry)


@while_p.def_shape
def _while_shape(*avals, cond_graph, body_graph, n_cond, n_body):
    carry = avals[n_cond + n_body:]
    c = cond_graph.outputs
    if len(c) != 1 or c[0].aval.shape not in ((), (1,)) or c[0].aval.dtype is not dt.bool_:
        got = ", ".join(v.aval.str_short() for v in c)
        raise TypeError(f"while_loop: cond_fun must return one boolean scalar, got ({got})")
    outs = [v.aval for v in body_graph.outputs]
    if [(a.shape, a.dtype) for a in outs] != [(a.shape, a.dtype) for a in carry]:
        raise TypeError("while_loop: body_fun must keep the carry's shapes and dtypes: "
                        f"in {[a.str_short() for a in carry]}, out {[a.str_short() for a in outs]}")
    return tuple(ShapedArray(a.shape, a.dtype) for a in carry)


while_p.def_batch(loop_batch(while_p))


@while_p.def_jvp
def _while_jvp(ts, ins, outs, *, cond_graph, body_graph, n_cond, n_body):
    """Forward mode through a loop: loop over (primal carry, tangent carry) with the body's
    JVP as the new body (as JAX does)."""
    from taiji._core.ir import eval_graph
    from taiji.transforms import jvp
    cc = list(ins[:n_cond])
    bc = list(ins[n_cond:n_cond + n_body])
    carry = list(ins[n_cond + n_body:])
    k = len(carry)
    tb = [t if t is not None else x.zeros_like() for t, x in
          zip(ts[n_cond:n_cond + n_body], bc)]
    tc = [t if t is not None else x.zeros_like() for t, x in zip(ts[n_cond + n_body:], carry)]

    def cond(c):
        return eval_graph(cond_graph, [*cc, *c[:k]])[0]

    def body(c):
        def f(consts, prim):
            return tuple(eval_graph(body_graph, [*consts, *prim]))
        p, t = jvp(f, (tuple(bc), tuple(c[:k])), (tuple(tb), tuple(c[k:])))
        return (*p, *t)
    final = while_loop(cond, body, (*carry, *tc))
    return tuple(final[k:])


@while_p.def_vjp
def _while_vjp(cts, ins, outs, **params):
    raise RuntimeError(
        "Reverse-mode differentiation does not work through taiji.while_loop: its trip count "
        "is only known at run time. Use taiji.fori_loop with Python-int bounds or taiji.scan "
        "(they unroll and differentiate), or forward mode (taiji.jvp, taiji.jacfwd).")
