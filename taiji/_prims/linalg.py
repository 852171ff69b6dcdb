"""Linear algebra primitives: matmul (batched, broadcasting) and einsum."""
from __future__ import annotations

import numpy as np

from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._util import broadcast_shapes, same_dtype
from taiji._prims.elementwise import unbroadcast, _binary_batch

matmul = Primitive("matmul")  # both operands >= 2-D; 1-D cases are reshaped by the op layer
matmul.def_impl(lambda xp, x, y: xp.matmul(x, y))


@matmul.def_shape
def _matmul_shape(x, y):
    same_dtype("matmul", x, y)
    if x.ndim < 2 or y.ndim < 2:
        raise RuntimeError(f"matmul: primitive operands must be at least 2-D, got shapes "
                           f"{list(x.shape)} and {list(y.shape)}")
    if x.shape[-1] != y.shape[-2]:
        raise RuntimeError(
            f"matmul: shapes {list(x.shape)} and {list(y.shape)} cannot be multiplied: "
            f"inner dimensions differ (x.shape[-1]={x.shape[-1]} vs y.shape[-2]={y.shape[-2]})")
    batch = broadcast_shapes(x.shape[:-2], y.shape[:-2], op="matmul")
    return ShapedArray(batch + (x.shape[-2], y.shape[-1]), x.dtype)


def _transposed(t) -> bool:
    """Is ``t`` stored as the transpose of a contiguous array (e.g. ``w.T`` in a Linear)?
    Its gradient is then computed as the transpose of a contiguous product, so that after
    the transpose's own VJP the gradient is contiguous and later elementwise ops run fast."""
    p = t._data
    return (type(p) is np.ndarray and p.ndim >= 2 and p.flags.f_contiguous
            and not p.flags.c_contiguous)


@matmul.def_vjp
def _matmul_vjp(g, ins, out):
    x, y = ins
    gx = gy = None
    if x.requires_grad:
        gx = matmul(y, g.mT).mT if _transposed(x) else matmul(g, y.mT)
        gx = unbroadcast(gx, x.shape)
    if y.requires_grad:
        gy = matmul(g.mT, x).mT if _transposed(y) else matmul(x.mT, g)
        gy = unbroadcast(gy, y.shape)
    return gx, gy


@matmul.def_jvp
def _matmul_jvp(ts, ins, out):
    x, y = ins
    terms = []
    if ts[0] is not None:
        terms.append(matmul(ts[0], y))
    if ts[1] is not None:
        terms.append(matmul(x, ts[1]))
    if not terms:
        return None
    t = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    return t if t.shape == out.shape else t.expand(out.shape)


matmul.def_batch(_binary_batch(matmul))

# ---------------------------------------------------------------- einsum
# `spec` is explicit ("ij,jk->ik"), without ellipses (the op layer expands them).

einsum = Primitive("einsum")
einsum.def_impl(lambda xp, *xs, spec: xp.einsum(spec, *xs, optimize=len(xs) > 2))


def _parse(spec):
    lhs, out = spec.split("->")
    return lhs.split(","), out


@einsum.def_shape
def _einsum_shape(*xs, spec):
    ins, out = _parse(spec)
    if len(ins) != len(xs):
        raise ValueError(f"einsum: '{spec}' names {len(ins)} operands, got {len(xs)}")
    sizes = {}
    for k, (sub, x) in enumerate(zip(ins, xs)):
        if len(sub) != x.ndim:
            raise ValueError(f"einsum: operand {k} has {x.ndim} dimension(s) but '{sub}' "
                             f"names {len(sub)}")
        for c, n in zip(sub, x.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: index '{c}' has size {sizes[c]} in one operand and "
                                 f"{n} in operand {k}")
    same_dtype("einsum", *xs)
    return ShapedArray(tuple(sizes[c] for c in out), xs[0].dtype)


@einsum.def_vjp
def _einsum_vjp(g, ins, out, *, spec):
    subs, osub = _parse(spec)
    res = []
    for i, x in enumerate(ins):
        if not x.requires_grad:
            res.append(None)
            continue
        sub = subs[i]
        uniq = "".join(dict.fromkeys(sub))  # a repeated index ('ii') reads a diagonal
        ushape = tuple(x.shape[sub.index(c)] for c in uniq)
        others = [s for j, s in enumerate(subs) if j != i]
        avail = set(osub).union(*others) if others else set(osub)
        kept = "".join(c for c in uniq if c in avail)
        r = einsum(g, *[t for j, t in enumerate(ins) if j != i],
                   spec=",".join([osub] + others) + "->" + kept)
        if kept != uniq:  # indices summed away inside operand i alone: broadcast back
            shape = tuple(n if c in avail else 1 for c, n in zip(uniq, ushape))
            r = r.reshape(shape).expand(ushape)
        if uniq != sub:
            r = _onto_diagonal(r, uniq, sub, x, spec)
        res.append(r)
    return tuple(res)


def _onto_diagonal(r, uniq, sub, x, spec):
    """Place ``r`` (indexed by ``uniq``) on the diagonals that the repeated indices of
    ``sub`` read: each repeat gets a fresh letter tied to the first by an identity matrix."""
    import numpy as np
    from taiji._ops import const
    fresh = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 if c not in spec)
    new, eyes, seen = [], [], set()
    for k, c in enumerate(sub):
        if c in seen:
            f = next(fresh)
            new.append(f)
            eyes.append((c + f, const(np.eye(x.shape[k], dtype=x.dtype.np))))
        else:
            seen.add(c)
            new.append(c)
    return einsum(r, *[e for _, e in eyes],
                  spec=",".join([uniq] + [s for s, _ in eyes]) + "->" + "".join(new))


@einsum.def_jvp
def _einsum_jvp(ts, ins, out, *, spec):
    total = None
    for i, t in enumerate(ts):
        if t is None:
            continue
        args = list(ins)
        args[i] = t
        term = einsum(*args, spec=spec)
        total = term if total is None else total + term
    return total


@einsum.def_batch
def _einsum_batch(ins, dims, *, spec):
    subs, osub = _parse(spec)
    used = set(spec)
    b = next(c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba" if c not in used)
    args, new = [], []
    for x, d, s in zip(ins, dims, subs):
        if d is None:
            args.append(x)
            new.append(s)
        else:
            args.append(x.movedim(d, 0))
            new.append(b + s)
    return einsum(*args, spec=",".join(new) + "->" + b + osub), 0
