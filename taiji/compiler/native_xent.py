"""The merged cross-entropy (``softmax_cross_entropy_with_grad``) in the native tier.

Its NumPy implementation (``_prims/nn.py``: ``_XentParts``) makes ~16 small NumPy calls, ~30 us
a step at batch 64 for 10 classes. Of its arithmetic only ``exp`` and ``log`` differ in their
last bits between NumPy and LLVM; everything else (the row max, the subtraction, the sums in
NumPy's own order, the picks, the gradient) numba can redo exactly. So inside a native build
the equation becomes five: ``z = shift(logits)``, ``e = exp(z)``, ``s = rowsum(e)``,
``ls = log(s)``, ``loss, d = finish(...)``, the exp and log through NumPy's own loops
(taiji/compiler/ufunc_loops.py; a Python call between segments where those are not found),
and the result is bit for bit what ``_XentParts`` computes (tests/jit/test_native.py checks).
The three helpers are not primitives: they exist only inside native builds, which are run,
never transformed.
"""
from __future__ import annotations

import functools

import numpy as np

from taiji._core.ir import Eqn, Graph, Var
from taiji._core.primitive import ShapedArray
from taiji._prims.elementwise import exp, log
from taiji._prims.nn import XENT_COLUMN_CLASSES, XENT_COLUMN_ROWS, XENT_OUT_OF_BOUNDS

PW_BLOCKSIZE = 128   # NumPy's pairwise summation block
MODES = {"none": 0, "sum": 1, "mean": 2}
OUT_OF_BOUNDS = XENT_OUT_OF_BOUNDS  # (numba raises with a constant message: no value)


class _Helper:
    """An equation kind of native builds only: a name and a NumPy-side impl (the Python code
    of a segment whose argument types the native build was not compiled for)."""

    multiple_results = False

    def __init__(self, name: str, multiple_results: bool = False):
        self.name = name
        self.multiple_results = multiple_results

    def impl(self, xp, *args, **params):
        return kernels()[self.name](*args, *params.values())


shift = _Helper("xent_shift")
rowsum = _Helper("xent_rowsum")
finish = _Helper("xent_finish", multiple_results=True)
HELPERS = {h.name: h for h in (shift, rowsum, finish)}


def decompose(g: Graph) -> Graph:
    """``g`` with each host-side merged cross-entropy as the five equations above."""
    out, changed = [], False
    for e in g.eqns:
        if e.prim.name != "softmax_cross_entropy_with_grad" or not _ok(e):
            out.append(e)
            continue
        logits, labels, gv = e.inputs
        loss, d = e.outputs
        n = logits.shape[0]
        z, ex = Var(logits.aval), Var(logits.aval)
        s, ls = Var(ShapedArray((n,), logits.dtype)), Var(ShapedArray((n,), logits.dtype))
        p = e.params
        out += [Eqn(shift, [logits], {}, [z], e.where),
                Eqn(exp, [z], {}, [ex], e.where),
                Eqn(rowsum, [ex], {}, [s], e.where),
                Eqn(log, [s], {}, [ls], e.where),
                Eqn(finish, [z, ex, s, ls, labels, gv],
                    {"ignore_index": int(p["ignore_index"]), "mode": MODES[p["reduction"]]},
                    [loss, d], e.where)]
        changed = True
    return g.with_eqns(out, note="native cross-entropy") if changed else g


def _ok(e) -> bool:
    logits, labels, gv = e.inputs
    return (isinstance(logits, Var) and isinstance(labels, Var) and len(logits.shape) == 2
            and logits.shape[0] > 0 and logits.shape[1] > 0
            and logits.dtype.np in (np.float32, np.float64) and gv.dtype == logits.dtype
            and np.dtype(labels.dtype.np).kind in "iu"
            and e.params["reduction"] in MODES
            and (gv.shape == () if e.params["reduction"] != "none" else
                 tuple(gv.shape) == (logits.shape[0],)))


# ---------------------------------------------------------------- the kernels

@functools.cache
def kernels() -> dict:
    """The cross-entropy's numba pieces (built once, on first use)."""
    from numba import njit
    jit = njit(error_model="numpy", fastmath=False)

    @jit
    def pairwise(a, lo, n):
        # NumPy's pairwise sum of a[lo:lo+n] (loops_utils.h: 8 accumulators, blocks of 128)
        if n < 8:
            res = a.dtype.type(0)
            for i in range(lo, lo + n):
                res += a[i]
            return res
        if n <= PW_BLOCKSIZE:
            r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
            r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
            i = 8
            while i < n - (n % 8):
                r0 += a[lo + i]
                r1 += a[lo + i + 1]
                r2 += a[lo + i + 2]
                r3 += a[lo + i + 3]
                r4 += a[lo + i + 4]
                r5 += a[lo + i + 5]
                r6 += a[lo + i + 6]
                r7 += a[lo + i + 7]
                i += 8
            res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            while i < n:
                res += a[lo + i]
                i += 1
            return res
        n2 = n // 2
        n2 -= n2 % 8
        return pairwise(a, lo, n2) + pairwise(a, lo + n2, n - n2)

    @jit
    def total(a):
        # np.add.reduce of a contiguous 1-D array (no cast, so no buffering): +0.0 plus
        # one pairwise sum of the whole array
        return a.dtype.type(0) + pairwise(a, 0, a.size)

    @jit
    def xent_shift(x):
        n, c = x.shape
        z = np.empty_like(x)
        for i in range(n):
            m = x[i, 0]
            for j in range(1, c):  # np.maximum's rule: NaN wins, ties keep the first
                v = x[i, j]
                if not (m >= v or m != m):
                    m = v
            for j in range(c):
                z[i, j] = x[i, j] - m
        return z

    @jit
    def xent_rowsum(e):
        n, c = e.shape
        s = np.empty(n, e.dtype)
        if c <= XENT_COLUMN_CLASSES and n >= XENT_COLUMN_ROWS:  # as _XentParts: by column
            for i in range(n):
                acc = e[i, 0]
                for j in range(1, c):
                    acc += e[i, j]
                s[i] = acc
        else:  # e.sum(axis=1): a pairwise sum per row, from +0.0
            flat = e.reshape(-1)
            for i in range(n):
                s[i] = e.dtype.type(0) + pairwise(flat, i * c, c)
        return s

    @jit
    def xent_finish(z, e, s, ls, labels, g, ignore_index, mode):
        # _xent_loss and _xent_dlogits, operation for operation (d overwrites e): the rows'
        # losses, the gradient and the number of rows that count
        n, c = z.shape
        one = z.dtype.type(1)
        zero = z.dtype.type(0)
        count = 0
        for i in range(n):
            lab = labels[i]
            if lab != ignore_index:
                count += 1
                if lab < 0 or lab >= c:
                    raise IndexError(OUT_OF_BOUNDS)
        all_valid = count == n
        loss = np.empty(n, z.dtype)
        for i in range(n):
            lab = labels[i]
            valid = lab != ignore_index
            safe = lab if (all_valid or valid) else 0
            v = ls[i] - z[i, safe]
            if not all_valid:
                v *= one if valid else zero
            loss[i] = v
            si = s[i]
            for j in range(c):
                e[i, j] /= si
            e[i, safe] -= one
        # g: the cotangent, per row for 'none', else one value (a 1-element array)
        if all_valid:
            w0 = g[0] / z.dtype.type(count) if mode == 2 else g[0]
            for i in range(n):
                wi = g[i] if mode == 0 else w0
                for j in range(c):
                    e[i, j] *= wi
        else:
            for i in range(n):
                wv = one if labels[i] != ignore_index else zero
                if mode == 2:
                    wv /= z.dtype.type(count) if count else zero
                wv = wv * (g[i] if mode == 0 else g[0])
                for j in range(c):
                    e[i, j] *= wv
        return loss, e, count

    @jit
    def reduce_loss(loss, mode, count):
        # loss.sum(dtype), then / count for 'mean' (NaN when no row counts)
        t = total(loss)
        if mode == 1:
            return t
        if count == 0:
            return loss.dtype.type(np.nan)
        return t / loss.dtype.type(count)

    return {"xent_shift": xent_shift, "xent_rowsum": xent_rowsum,
            "xent_finish_rows": xent_finish, "reduce_loss": reduce_loss,
            "xent_finish": _finish_py}


def _finish_py(z, e, s, ls, labels, g, ignore_index, mode):
    """(the Python-side impl) ``finish``, the loss reduced for 'sum' and 'mean'."""
    k = kernels()
    g = np.asarray(g)
    loss, d, count = k["xent_finish_rows"](z, e, s, ls, labels, g.reshape(-1),
                                           ignore_index, mode)
    if mode == 0:
        return loss, d
    return np.asarray(k["reduce_loss"](loss, mode, count)), d


def emit(e, ins: list, outs: list) -> str:
    """The native spelling of helper equation ``e`` (``ins``/``outs``: names)."""
    if e.prim is shift:
        return f"    {outs[0]} = _xent_shift({ins[0]})"
    if e.prim is rowsum:
        return f"    {outs[0]} = _xent_rowsum({ins[0]})"
    mode = e.params["mode"]
    rows, cnt = f"{outs[0]}_rows", f"{outs[0]}_n"
    if mode != 0:  # (one cotangent value: the kernel reads g[0])
        ins = ins[:5] + [f"np.full(1, {ins[5]})"]
    call = (f"    {rows}, {outs[1]}, {cnt} = _xent_finish_rows({', '.join(ins)}, "
            f"{e.params['ignore_index']}, {mode})")
    if mode == 0:
        return f"{call}\n    {outs[0]} = {rows}"
    return f"{call}\n    {outs[0]} = _reduce_loss({rows}, {mode}, {cnt})"


def namespace() -> dict:
    """The helpers native code calls."""
    k = kernels()
    return {"_xent_shift": k["xent_shift"], "_xent_rowsum": k["xent_rowsum"],
            "_xent_finish_rows": k["xent_finish_rows"], "_reduce_loss": k["reduce_loss"]}
