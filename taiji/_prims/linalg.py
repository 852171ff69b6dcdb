"""Linear algebra primitives: matmul (batched, broadcasting) and einsum."""
from __future__ import annotations

from taiji._core.primitive import Primitive, ShapedArray
from taiji.backends import backend_for_xp
from taiji._prims._util import broadcast_shapes, same_dtype
from taiji._prims.elementwise import unbroadcast, _binary_batch

# matmul(x, y, ta=False, tb=False) = op(x) @ op(y), op transposing the last two dims when its
# flag is set: BLAS's transpose flags, so `x @ w.T` and the gradients of a Linear never copy a
# transposed weight, and every gradient comes out contiguous. Both operands are >= 2-D (the op
# layer reshapes 1-D cases); batch dimensions broadcast.
matmul = Primitive("matmul")


def _lowp_in(xp, *xs):
    """float16 / bfloat16 operands of a NumPy product, upcast to float32: NumPy has no BLAS
    for them (float16 loops are ~6x slower, einsum rejects bfloat16). Products accumulate in
    float32 and round once to the operands' dtype, as PyTorch's CPU and tensor-core kernels
    do. (Array modules with native half-precision products, such as CuPy, are left alone.)"""
    if xp.__name__ != "numpy" or xs[0].dtype.itemsize != 2 or xs[0].dtype.kind not in "fV":
        return xs
    return tuple(a.astype(xp.float32) for a in xs)


@matmul.def_impl
def _matmul_impl(xp, x, y, *, ta=False, tb=False):
    a, b = _lowp_in(xp, x, y)
    out = backend_for_xp(xp).matmul(a, b, ta, tb)  # (CUDA: cuBLAS, capturable in graphs)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


def _eff(shape, t):
    return shape[:-2] + (shape[-1], shape[-2]) if t else shape


@matmul.def_shape
def _matmul_shape(x, y, *, ta=False, tb=False):
    same_dtype("matmul", x, y)
    if x.ndim < 2 or y.ndim < 2:
        raise RuntimeError(f"matmul: primitive operands must be at least 2-D, got shapes "
                           f"{list(x.shape)} and {list(y.shape)}")
    xs, ys = _eff(x.shape, ta), _eff(y.shape, tb)
    if xs[-1] != ys[-2]:
        raise RuntimeError(
            f"matmul: shapes {list(xs)} and {list(ys)} cannot be multiplied: inner dimensions "
            f"differ (x.shape[-1]={xs[-1]} vs y.shape[-2]={ys[-2]})")
    batch = broadcast_shapes(xs[:-2], ys[:-2], op="matmul")
    return ShapedArray(batch + (xs[-2], ys[-1]), x.dtype)


@matmul.def_vjp
def _matmul_vjp(g, ins, out, *, ta=False, tb=False):
    # out = A @ B with A = op(x), B = op(y): dA = g @ B^T, dB = A^T @ g, transposed back
    # through the flags so that no operand or result is ever copied into a new layout
    x, y = ins
    gx = gy = None
    if x.requires_grad:
        gx = matmul(y, g, ta=tb, tb=True) if ta else matmul(g, y, tb=not tb)
        gx = unbroadcast(gx, x.shape)
    if y.requires_grad:
        gy = matmul(g, x, ta=True, tb=ta) if tb else matmul(x, g, ta=not ta)
        gy = unbroadcast(gy, y.shape)
    return gx, gy


@matmul.def_jvp
def _matmul_jvp(ts, ins, out, *, ta=False, tb=False):
    x, y = ins
    terms = []
    if ts[0] is not None:
        terms.append(matmul(ts[0], y, ta=ta, tb=tb))
    if ts[1] is not None:
        terms.append(matmul(x, ts[1], ta=ta, tb=tb))
    if not terms:
        return None
    t = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    return t if t.shape == out.shape else t.expand(out.shape)


matmul.def_batch(_binary_batch(matmul))  # flags act on the last two dims: unaffected

# ---------------------------------------------------------------- einsum
# `spec` is explicit ("ij,jk->ik"), without ellipses (the op layer expands them).

einsum = Primitive("einsum")


@einsum.def_impl
def _einsum_impl(xp, *xs, spec):
    out = xp.einsum(spec, *_lowp_in(xp, *xs), optimize=len(xs) > 2)
    return out if out.dtype == xs[0].dtype else out.astype(xs[0].dtype)


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
            eyes.append((c + f, const(np.eye(x.shape[k], dtype=x.dtype.np), x)))
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
