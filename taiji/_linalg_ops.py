"""Linear algebra in the op layer: matmul (with NumPy's 1-D rules and BLAS transpose
flags), mm, bmm, dot, outer, einsum, tensordot, linear (taiji._ops re-exports them)."""
from __future__ import annotations

import builtins
import math

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji._prims import structure as S, linalg as L
from taiji._prims._util import swap_last_perm
from taiji._ops import _operands, to
from taiji._core.interpreters import STATE
from taiji._shape_ops import named, permute, reshape, unsqueeze


def matmul(x, y):
    """Matrix product with NumPy's rules for 1-D operands and broadcast batch dims."""
    if not (isinstance(x, O.Tensor) and isinstance(y, O.Tensor)):
        raise TypeError(f"matmul: expected Tensors, got {type(x).__name__} and "
                        f"{type(y).__name__}")
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        x, y = STATE.autocast.cast("matmul", x, y)
    if x.dtype is not y.dtype:
        x, y = _operands(x, y)
    if x.ndim == 0 or y.ndim == 0:
        raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got "
                           f"{x.ndim}D and {y.ndim}D")
    if x.ndim >= 2 and y.ndim >= 2:
        n = y._node
        if n is not None and n.prim is S.transpose and n.params["perm"] == swap_last_perm(y.ndim):
            # `x @ w.T`: multiply by w with BLAS's transpose flag instead of through the
            # transposed view, so the backward pass needs no transposes either
            return L.matmul(x, n.inputs[0], tb=True)
        return L.matmul(x, y)
    if x.ndim == 1 and y.ndim == 1:
        if x.shape[0] != y.shape[0]:
            raise RuntimeError(f"inconsistent tensor size, expected tensor [{x.shape[0]}] and "
                               f"src [{y.shape[0]}] to have the same number of elements")
        return named(S.reshape(L.matmul(S.reshape(x, shape=(1, x.shape[0])),
                                        S.reshape(y, shape=(y.shape[0], 1))), shape=()), "Dot")
    if x.ndim == 1:
        out = L.matmul(S.reshape(x, shape=(1, x.shape[0])), y)
        return S.reshape(out, shape=out.shape[:-2] + out.shape[-1:])
    out = L.matmul(x, S.reshape(y, shape=(y.shape[0], 1)))
    return S.reshape(out, shape=out.shape[:-1])


def mm(x, y):
    if x.ndim != 2 or y.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {x.ndim}D and {y.ndim}D")
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        x, y = STATE.autocast.cast("mm", x, y)
    return matmul(x, y)


def bmm(x, y):
    if x.ndim != 3 or y.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got {x.ndim}D and {y.ndim}D")
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        x, y = STATE.autocast.cast("bmm", x, y)
    return matmul(x, y)


def dot(x, y):
    if x.ndim != 1 or y.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {x.ndim}D and {y.ndim}D tensors")
    return matmul(x, y)


vdot = inner = dot


def mv(x, v):
    return matmul(x, v)


def outer(x, y):
    """Outer product of two vectors."""
    return unsqueeze(x, 1) * unsqueeze(y, 0)


ger = outer


def einsum(equation: str, *operands):
    """Einstein summation: ``einsum('ij,jk->ik', a, b)``; '...' and implicit outputs work."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        operands = STATE.autocast.cast("einsum", *operands)
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ValueError(f"einsum(): '{equation}' names {len(ins)} operands but "
                         f"{len(operands)} were given")
    letters = set(eq) - set(",->.")
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                if c not in letters)
    ell_n = builtins.max([t_.ndim - (len(s) - 3) for s, t_ in zip(ins, operands)
                          if "..." in s] or [0])
    ell = "".join(next(free) for _ in range(ell_n))
    new_ins = []
    for s, t_ in zip(ins, operands):
        if "..." in s:
            k = t_.ndim - (len(s) - 3)
            s = s.replace("...", ell[ell_n - k:] if k else "")
        new_ins.append(s)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {}
        for s in new_ins:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    d = operands[0].dtype
    for t_ in operands[1:]:
        d = dt.promote_types(d, t_.dtype)
    ops_ = [to(t_, d) for t_ in operands]
    return L.einsum(*ops_, spec=",".join(new_ins) + "->" + out)


def tensordot(a, b, dims=2):
    """Sum products over the last ``dims`` axes of ``a`` and first of ``b`` (or listed axes)."""
    if isinstance(dims, int):
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = [list(d) if isinstance(d, (list, tuple)) else [d] for d in dims]
    da = [d % a.ndim for d in da]
    db = [d % b.ndim for d in db]
    fa = [i for i in range(a.ndim) if i not in da]
    fb = [i for i in range(b.ndim) if i not in db]
    m = math.prod(a.shape[i] for i in fa)
    k = math.prod(a.shape[i] for i in da)
    n = math.prod(b.shape[i] for i in fb)
    a2 = reshape(permute(a, fa + da), (m, k))
    b2 = reshape(permute(b, db + fb), (k, n))
    return reshape(matmul(a2, b2), tuple(a.shape[i] for i in fa) + tuple(b.shape[i] for i in fb))


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` (BLAS's transpose flag: no transposed copy, no transpose op)."""
    if STATE.autocast is not None:  # taiji.amp: runs in the autocast dtype
        x, weight, bias = STATE.autocast.cast("linear", x, weight, bias)
    if x.ndim >= 2 and weight.ndim == 2:
        if x.dtype is not weight.dtype:
            x, weight = _operands(x, weight)
        out = L.matmul(x, weight, tb=True)
    else:
        out = matmul(x, weight.mT if weight.ndim == 2 else weight)
    return out if bias is None else out + bias
