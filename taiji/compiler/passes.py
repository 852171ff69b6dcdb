"""Graph passes. Each is a function ``Graph -> Graph`` that adds its name to the header, so
``print(graph)`` shows what ran. Every primitive is pure, which is what makes dead-code
elimination, CSE and constant folding safe.
"""
from __future__ import annotations

import numpy as np

from taiji._core.ir import Eqn, Graph, Literal, Var

MAX_FOLD_ELEMENTS = 1 << 16  # fold constants up to this size; larger ones stay computed


def _subst(v, env):
    while not isinstance(v, Literal) and id(v) in env:
        v = env[id(v)]
    return v


def dce(g: Graph) -> Graph:
    """Drop equations whose outputs nothing uses."""
    live = {id(v) for v in g.outputs if isinstance(v, Var)}
    kept = []
    for e in reversed(g.eqns):
        if any(id(o) in live for o in e.outputs):
            kept.append(e)
            live.update(id(v) for v in e.inputs if isinstance(v, Var))
    kept.reverse()
    return g.with_eqns(kept, note=f"dce (removed {len(g.eqns) - len(kept)})")


def _key(v):
    return v.key() if isinstance(v, Literal) else ("var", id(v))


def _hashable(params):
    try:
        items = tuple(sorted(params.items()))
        hash(items)
        return items
    except TypeError:
        return None


def cse(g: Graph) -> Graph:
    """Reuse the result of an identical earlier equation (same primitive, inputs, params)."""
    seen, env, eqns = {}, {}, []
    for e in g.eqns:
        ins = [_subst(v, env) for v in e.inputs]
        prm = _hashable(e.params)
        k = None if prm is None or e.prim.effectful else (
            e.prim.name, tuple(_key(v) for v in ins), prm)
        if k is not None and k in seen:
            for o, prev in zip(e.outputs, seen[k].outputs):
                env[id(o)] = prev
            continue
        ne = Eqn(e.prim, ins, e.params, e.outputs, e.where)
        if k is not None:
            seen[k] = ne
        eqns.append(ne)
    outs = [_subst(v, env) for v in g.outputs]
    return g.with_eqns(eqns, outs, note=f"cse (merged {len(g.eqns) - len(eqns)})")


def fold_constants(g: Graph) -> Graph:
    """Evaluate equations whose inputs are all constants (small results only)."""
    env, eqns, folded = {}, [], 0
    for e in g.eqns:
        ins = [_subst(v, env) for v in e.inputs]
        small = all(np.prod(o.shape, dtype=np.int64) <= MAX_FOLD_ELEMENTS for o in e.outputs)
        if ins and all(isinstance(v, Literal) for v in ins) and small and not e.prim.effectful:
            out = e.prim.impl(np, *[v.value for v in ins], **e.params)
            outs = out if e.prim.multiple_results else (out,)
            for o, val in zip(e.outputs, outs):
                env[id(o)] = Literal(np.asarray(val))
            folded += 1
            continue
        eqns.append(Eqn(e.prim, ins, e.params, e.outputs, e.where))
    outs = [_subst(v, env) for v in g.outputs]
    return g.with_eqns(eqns, outs, note=f"fold_constants (folded {folded})")


def _is_const(v, value) -> bool:
    return isinstance(v, Literal) and v.value.size == 1 and v.value.reshape(()) == value


def _swaps_last_two(perm) -> bool:
    from taiji._prims._util import swap_last_perm
    return len(perm) >= 2 and tuple(perm) == swap_last_perm(len(perm))


def _mul_prim():
    from taiji._prims.elementwise import mul
    return mul


def _use_counts(g: Graph) -> dict:
    uses = {}
    for e in g.eqns:
        for v in e.inputs:
            if isinstance(v, Var):
                uses[id(v)] = uses.get(id(v), 0) + 1
    for v in g.outputs:
        if isinstance(v, Var):
            uses[id(v)] = uses.get(id(v), 0) + 1
    return uses


def simplify(g: Graph) -> Graph:
    """Algebraic identities: x*1, x+0, x-0, x/1, no-op reshape/transpose/broadcast/convert,
    transpose of transpose, reshape of reshape, neg of neg; transposed matmul operands become
    BLAS transpose flags and (A @ B)^T becomes B^T @ A^T."""
    env, eqns, producer, n = {}, [], {}, 0
    uses = _use_counts(g)
    for e in g.eqns:
        ins = [_subst(v, env) for v in e.inputs]
        o = e.outputs[0]
        p, prm = e.prim.name, e.params
        alias = None
        if p in ("mul", "div") and _is_const(ins[1], 1) and ins[0].aval == o.aval:
            alias = ins[0]
        elif p == "mul" and _is_const(ins[0], 1) and ins[1].aval == o.aval:
            alias = ins[1]
        elif p in ("add", "sub") and _is_const(ins[1], 0) and ins[0].aval == o.aval:
            alias = ins[0]
        elif p == "add" and _is_const(ins[0], 0) and ins[1].aval == o.aval:
            alias = ins[1]
        elif p in ("reshape", "broadcast_to") and ins[0].shape == o.shape:
            alias = ins[0]
        elif p == "convert_element_type" and ins[0].dtype is o.dtype:
            alias = ins[0]
        elif p == "transpose" and prm["perm"] == tuple(range(len(prm["perm"]))):
            alias = ins[0]
        elif p == "neg" and id(ins[0]) in producer and producer[id(ins[0])].prim.name == "neg":
            alias = producer[id(ins[0])].inputs[0]
        if alias is not None:
            env[id(o)] = alias
            n += 1
            continue
        if (p == "div" and ins[1].aval.shape == () and ins[0].aval.shape != ()
                and o.dtype.is_floating_point):
            # x / s (s a scalar) -> x * (1 / s): one scalar division instead of one per element
            inv = Var(ins[1].aval)
            one = Literal(np.ones((), o.dtype.np))
            ie = Eqn(e.prim, [one, ins[1]], {}, [inv], e.where)
            producer[id(inv)] = ie
            eqns.append(ie)
            ne = Eqn(_mul_prim(), [ins[0], inv], {}, e.outputs, e.where)
            producer[id(o)] = ne
            eqns.append(ne)
            n += 1
            continue
        src = producer.get(id(ins[0])) if ins and isinstance(ins[0], Var) else None
        if p == "matmul":
            # a transposed operand becomes BLAS's transpose flag
            prm = dict(prm)
            for k, flag in ((0, "ta"), (1, "tb")):
                q = producer.get(id(ins[k])) if isinstance(ins[k], Var) else None
                if q is not None and q.prim.name == "transpose" and _swaps_last_two(
                        q.params["perm"]):
                    ins[k] = q.inputs[0]
                    prm[flag] = not prm.get(flag, False)
                    n += 1
        if (src is not None and p == "transpose" and src.prim.name == "matmul"
                and _swaps_last_two(prm["perm"]) and uses.get(id(ins[0])) == 1):
            # (A @ B)^T = B^T @ A^T: swap the operands and flip both flags, so the result
            # comes out contiguous in the layout wanted
            a_, b_ = src.inputs
            ta, tb = src.params.get("ta", False), src.params.get("tb", False)
            eqns.remove(src)
            ne = Eqn(src.prim, [b_, a_], {"ta": not tb, "tb": not ta}, e.outputs, e.where)
            producer[id(o)] = ne
            eqns.append(ne)
            n += 1
            continue
        if src is not None and p == "transpose" and src.prim.name == "transpose":
            perm = tuple(src.params["perm"][i] for i in prm["perm"])
            ins, prm, n = [src.inputs[0]], {"perm": perm}, n + 1
            if perm == tuple(range(len(perm))):
                env[id(o)] = src.inputs[0]
                continue
        elif src is not None and p == "reshape" and src.prim.name == "reshape":
            ins, n = [src.inputs[0]], n + 1
            if src.inputs[0].shape == o.shape:
                env[id(o)] = src.inputs[0]
                continue
        ne = Eqn(e.prim, ins, prm, e.outputs, e.where)
        for out in e.outputs:
            producer[id(out)] = ne
        eqns.append(ne)
    outs = [_subst(v, env) for v in g.outputs]
    return g.with_eqns(eqns, outs, note=f"simplify (rewrote {n})")


def plan_memory(g: Graph, reusable_outputs: frozenset = frozenset(),
                inplace: dict | None = None, over_dying: bool = False) -> Graph:
    """Give intermediate results preallocated buffers, reusing a buffer once every value
    stored in it (and every view of it) is dead.

    Graph outputs are handed to the caller and get new memory on every run, except those in
    ``reusable_outputs`` (outputs the caller copies out at once, such as updated state).
    ``inplace`` maps an output index to a graph-input index whose storage may hold that
    output (an optimizer writing the new weights over the old ones): it is used when the
    input is dead by the time the output is computed elementwise, and saves the copy back.
    With ``over_dying``, a fused region also writes an output over an input whose buffer
    dies at that region (a bias + ReLU over the product it reads): one buffer less to pull
    through the cache. The plan maps a var id to an array, to ``("arg", k)`` for graph input
    k's storage, or to ``("in", var)`` for the storage of input ``var`` of its equation.
    """
    from taiji.compiler.codegen import OUT_CAPABLE, VIEW_PRIMS
    inplace = inplace or {}
    escaping = {id(v) for i, v in enumerate(g.outputs)
                if isinstance(v, Var) and i not in reusable_outputs}
    root = {}  # the storage a value lives in: views share their source's storage
    for e in g.eqns:
        if e.prim.name in VIEW_PRIMS and isinstance(e.inputs[0], Var):
            root[id(e.outputs[0])] = root.get(id(e.inputs[0]), id(e.inputs[0]))

    def base(v):
        return root.get(id(v), id(v))
    last = {}
    for i, e in enumerate(g.eqns):
        for v in e.inputs:
            if isinstance(v, Var):
                last[base(v)] = i
    end = len(g.eqns)
    for v in g.outputs:
        if isinstance(v, Var):
            last[base(v)] = end
    escaping = {root.get(v, v) for v in escaping}  # storage that leaves the function
    want_inplace = {}  # output var id -> graph input index
    want_view = _transposed_inplace(g, inplace, escaping)  # var id -> input's view to write
    for oi, ii in inplace.items():
        o, iv = g.outputs[oi], g.inputs[ii]
        if isinstance(o, Var) and id(iv) not in escaping and o.aval == iv.aval:
            want_inplace[id(o)] = ii
    plan, pool, live, reused, n_inplace = {}, {}, [], 0, 0
    for i, e in enumerate(g.eqns):
        still = []
        for (b, key, arr) in live:
            if last.get(b, -1) < i:
                pool.setdefault(key, []).append(arr)
            else:
                still.append((b, key, arr))
        live = still
        if e.prim.name not in OUT_CAPABLE and e.prim.name != "fused":
            continue
        if len(e.outputs) != 1 and e.prim.name != "fused":
            continue
        taken = set()
        for k, o in enumerate(e.outputs):
            if id(o) in escaping or not o.shape:
                continue
            ii = want_inplace.get(id(o))
            if ii is not None and _inplace_ok(e, g.inputs[ii], last.get(id(g.inputs[ii]), -1), i):
                plan[id(o)] = ("arg", ii)
                n_inplace += 1
                continue
            tv = want_view.get(id(o))
            if tv is not None and e.prim.name == "fused" and any(v is tv for v in e.inputs) \
                    and _inplace_ok(e, tv, last.get(base(tv), -1), i):
                plan[id(o)] = ("in", tv)  # the transposed state over its own storage
                n_inplace += 1
                continue
            v = _dying_input(e, o, i, plan, last, base, escaping, taken) if over_dying else None
            if v is not None:  # the buffer now holds o, and lives as long as o does
                plan[id(o)] = ("in", v)
                taken.add(id(v))
                live = [(id(o), bk, arr) if b == id(v) else (b, bk, arr)
                        for (b, bk, arr) in live]
                n_inplace += 1
                continue
            key = (o.shape, o.dtype.np)
            if pool.get(key):
                arr = pool[key].pop()
                reused += 1
            else:
                arr = np.empty(o.shape, o.dtype.np)
            plan[id(o)] = arr
            live.append((id(o), key, arr))
    out = g.with_eqns(list(g.eqns), note=f"plan_memory ({len(plan)} buffers, {reused} reused, "
                                         f"{n_inplace} in place)")
    out.plan = plan
    return out


def _transposed_inplace(g: Graph, inplace: dict, escaping: set) -> dict:
    """For state computed on transposes (compiler/layout.py): output ``transpose(o_t)`` to
    be written back into input ``v``, read as ``v_t = transpose(v)``: {id(o_t): v_t}, so
    ``o_t`` is computed over ``v_t`` and the output is a view of ``v``'s own storage."""
    views, made_by = {}, {}
    for e in g.eqns:
        if e.prim.name == "transpose" and tuple(e.params["perm"]) == (1, 0):
            src = e.inputs[0]
            made_by[id(e.outputs[0])] = src
            if isinstance(src, Var):
                views.setdefault(id(src), e.outputs[0])
    out = {}
    for oi, ii in inplace.items():
        o, iv = g.outputs[oi], g.inputs[ii]
        o_t, v_t = made_by.get(id(o)), views.get(id(iv))
        if (isinstance(o_t, Var) and v_t is not None and id(iv) not in escaping
                and o_t.aval == v_t.aval):
            out[id(o_t)] = v_t
    return out


def _dying_input(e: Eqn, o: Var, i: int, plan: dict, last: dict, base, escaping,
                 taken: set):
    """An input of fused eqn ``e`` (index ``i``) that ``o`` may overwrite: a planned buffer of
    o's shape and dtype, not a view, read by nothing after ``e``, not handed to the caller."""
    if e.prim.name != "fused":
        return None
    for v in e.inputs:
        if (isinstance(v, Var) and id(v) not in taken and base(v) == id(v)
                and type(plan.get(id(v))) is np.ndarray and last.get(id(v)) == i
                and id(v) not in escaping and v.aval == o.aval and _inplace_ok(e, v, i, i)):
            return v
    return None


def inplace_target(g: Graph, b: tuple) -> Var:
    """The input a plan entry ``("arg", k)`` or ``("in", var)`` writes over."""
    return b[1] if b[0] == "in" else g.inputs[b[1]]


def _inplace_ok(e: Eqn, iv: Var, last_use: int, i: int) -> bool:
    """May eqn ``e`` (index ``i``) write its output over input ``iv``'s storage?"""
    from taiji.compiler.codegen import UFUNCS
    if last_use > i:
        return False
    if e.prim.name in UFUNCS:
        return True  # elementwise, same shape: each element is read before it is written
    if e.prim.name == "fused":  # the kernel writes through the input's own argument
        r = e.params["region"]
        return any(v is iv for v in e.inputs) and all(
            p == "f" for v, p in zip(e.inputs, r.patterns) if v is iv)
    return False


def merge_softmax_xent(g: Graph) -> Graph:
    """A training step computes ``softmax_cross_entropy(z, y)`` and, in its backward,
    ``softmax_cross_entropy_grad(z, y, g)``: bind one primitive that returns both, so the
    softmax is computed once. Merged only where ``g`` is ready at the loss (a constant, or
    computed earlier), since the merged equation takes the loss's place."""
    losses, grads = {}, {}
    defined_at = {}
    for i, e in enumerate(g.eqns):
        for o in e.outputs:
            defined_at[id(o)] = i
        key = (tuple(_key(v) for v in e.inputs[:2]), _hashable(e.params))
        if e.prim.name == "softmax_cross_entropy":
            losses.setdefault(key, i)
        elif e.prim.name == "softmax_cross_entropy_grad":
            grads.setdefault(key, i)
    merge = {}  # loss eqn index -> grad eqn index
    for key, j in grads.items():
        i = losses.get(key)
        gv = g.eqns[j].inputs[2]
        if i is not None and i < j and (isinstance(gv, Literal) or defined_at.get(id(gv), -1) < i):
            merge[i] = j
    if not merge:
        return g
    from taiji._prims.nn import softmax_xent_with_grad
    drop = set(merge.values())
    eqns = []
    for i, e in enumerate(g.eqns):
        if i in drop:
            continue
        if i in merge:
            ge = g.eqns[merge[i]]
            e = Eqn(softmax_xent_with_grad, [*e.inputs[:2], ge.inputs[2]], e.params,
                    [e.outputs[0], ge.outputs[0]], e.where)
        eqns.append(e)
    return g.with_eqns(eqns, note=f"merge_softmax_xent (merged {len(merge)})")


DEFAULT_PASSES = (dce, cse, fold_constants, simplify, merge_softmax_xent, dce)


def optimize(g: Graph, passes=DEFAULT_PASSES) -> Graph:
    for p in passes:
        g = p(g)
    return g
