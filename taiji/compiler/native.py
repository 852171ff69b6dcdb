"""The native tier: runs of a compiled program's equations become one numba function each.

The Python program (codegen.py) makes one call per equation: a NumPy product, a fused
region's kernel, a ufunc. Each call costs 1-4 us of interpreter and dispatch on top of its
work, about 100 us a step for the seed MLP at batch 64, where the arithmetic takes ~600 us.
This tier re-emits every maximal run of equations that have a native spelling (a *segment*)
as one ``@njit`` function: products make the BLAS calls of taiji/compiler/blas.py (NumPy's
own library, over the Python tier's K blocks, so the same bits), fused regions call their
loop kernels directly, 0-d arithmetic stays on scalars, and ``exp``, ``log``, ``tanh`` and
their kin, whose last bits differ between NumPy and LLVM, call NumPy's own loops
(taiji/compiler/ufunc_loops.py: the seed MLP's whole step is one segment). What has no
native spelling stays a Python call between segments.

Every native spelling computes exactly what the Python tier computes (same BLAS call, the
same IEEE-rounded operations in the same order): results never depend on whether the native
program was ready yet. It compiles on the background thread (taiji/_background.py), with
the argument types of the program's second run, once the program has spent BUILD_AFTER
seconds in its calls (or when ``wait_for_kernels`` asks); until then, and for any call whose
arguments have other types (a read-only or non-contiguous array), the Python code runs.
"""
from __future__ import annotations

import functools
import os
import time
import weakref
from typing import Callable

import numpy as np

from taiji import _background, _dtypes as dt
from taiji._core.ir import Graph, Literal, Var
from taiji.compiler import (blas, blas_threads, codegen, fusion, layout, native_xent, pool,
                             ufunc_loops)
from taiji.compiler.passes import inplace_target

enabled = os.environ.get("TAIJI_NATIVE", "1") != "0"
MIN_SEGMENT = 3  # shorter runs save less than a numba call costs (~2-3 us)
# A build takes seconds of numba on the background thread, which shares the GIL with the
# caller: the seed MLP's training steps ran ~3x slower meanwhile (`taiji train mlp --mode jit`
# averaged 200 steps/s over 3 epochs, against 1,200 without the native tier), and it saves
# ~0.1 ms a step. So a program asks for its build once its calls have taken this many seconds
# (TAIJI_NATIVE_AFTER), or when ``request_builds`` asks for every waiting one
# (``taiji.compiler.fusion.wait_for_kernels``: benchmarks and tests, before they measure).
BUILD_AFTER = float(os.environ.get("TAIJI_NATIVE_AFTER", "30"))
_waiting: "weakref.WeakSet" = weakref.WeakSet()  # programs whose build is not asked for yet

# primitives whose NumPy result a numba ufunc call reproduces bit for bit (IEEE 754 rounds
# each correctly): the transcendental ones (exp, log, tanh: NumPy's own loops instead,
# ufunc_loops.LOOP_PRIMS; array pow) are not among them, nor maximum, minimum and sign,
# whose signed zeros differ (NumPy's maximum(-0.0, 0.0) is
# 0.0, the second operand, numba's -0.0; NumPy's sign(-0.0) is 0.0, numba's -0.0)
EXACT_UFUNCS = {"add", "sub", "mul", "div", "neg", "abs", "sqrt",
                "floor", "ceil", "trunc", "eq", "ne", "lt", "le", "gt", "ge",
                "isnan", "isinf", "isfinite"}
# 0-d arithmetic on NumPy scalars (what the Python tier runs) and on numba scalars agrees
# bit for bit for these, pow included (both call the C library's powf/pow); maximum and
# minimum are spelled as the fused kernels spell them (NumPy's selects, fusion.SCALAR_OPS)
SCALAR_OK = set(codegen.SCALAR_BINOPS) | {"neg", "sqrt", "abs", "maximum", "minimum"}
_SCALAR_SELECTS = ("maximum", "minimum")
C_VIEWS = {"reshape"}  # views that keep a contiguous array contiguous
NATIVE_DTYPES = {dt.float32, dt.float64, dt.int32, dt.int64, dt.bool_}


# ---------------------------------------------------------------- helpers

@functools.cache
def helpers() -> dict:
    """The numba functions native code calls (built once, on first use)."""
    from numba import njit
    batch = blas.library().get("batch", {})
    out = {f"_gemm_{d.name}": blas.numba_gemm(fn, d, batch.get(d))
           for d, fn in blas.blas().items()}

    def colsum(a, o):
        # NumPy's add-reduce over axis 0: from +0.0, rows in order
        o[:] = 0
        for r in range(a.shape[0]):
            for c in range(a.shape[1]):
                o[c] += a[r, c]
        return o
    out["_colsum"] = njit(error_model="numpy")(colsum)

    def relu(x, o):
        # NumPy's maximum(x, 0): NaN stays, -0.0 and 0.0 both give 0.0
        a, b = x.ravel(), o.reshape(-1)
        z = a.dtype.type(0)
        for i in range(a.size):
            v = a[i]
            b[i] = v if (v > z or v != v) else z
        return o
    out["_relu"] = njit(error_model="numpy")(relu)
    out["_uloop"] = ufunc_loops.numba_function()
    return out


# ---------------------------------------------------------------- which equations

def _c_array(v, nonc) -> bool:
    return isinstance(v, Var) and v.shape != () and id(v) not in nonc


def native_ok(e, nonc: set, be_dtypes: dict) -> bool:
    """Whether equation ``e`` has a native spelling (``nonc``: ids of values that may not be
    C-contiguous)."""
    p = e.prim.name
    outs, ins = e.outputs, e.inputs
    if p in native_xent.HELPERS:
        return True
    if any(v.dtype not in NATIVE_DTYPES for v in list(ins) + list(outs)):
        return False
    if any(isinstance(v, Literal) and v.shape != () for v in ins):
        return False  # (array constants: numba would freeze a copy; not worth it)
    if p == "fused":
        region = e.params["region"]
        return bool(region.shape) and all(
            _c_array(v, nonc) or (isinstance(v, (Var, Literal)) and v.shape == ())
            for v in ins)
    if len(outs) != 1:
        return False
    o = outs[0]
    if p == "matmul":
        a, b = ins
        return (len(o.shape) == len(a.shape) == len(b.shape) == 2 and a is not b and
                np.dtype(o.dtype.np) in be_dtypes and a.dtype == b.dtype == o.dtype and
                _c_array(a, nonc) and _c_array(b, nonc) and min(o.shape) > 1 and
                (a.shape[0] if e.params.get("ta") else a.shape[1]) > 1)
    if o.shape == ():
        return p in SCALAR_OK and o.dtype.is_floating_point and all(
            v.shape == () and v.dtype == o.dtype for v in ins)
    if p in EXACT_UFUNCS or p == "relu":
        return all(v.dtype == ins[0].dtype for v in ins) and all(
            v.shape == () or isinstance(v, Var) for v in ins)
    if p in ufunc_loops.LOOP_PRIMS:  # NumPy's own loop (exp, log, tanh ...): its bits
        return len(ins) == 1 and ins[0].dtype == o.dtype and _c_array(ins[0], nonc) and \
            ufunc_loops.loop(p, o.dtype.np) is not None
    if p == "reduce_sum":
        a = ins[0]
        return (len(a.shape) == 2 and tuple(e.params["axes"]) == (0,) and not e.params["keepdims"]
                and a.dtype.is_floating_point and isinstance(a, Var))
    if p == "reshape":
        return _c_array(ins[0], nonc) and len(o.shape) > 0
    if p == "convert_element_type":
        return isinstance(ins[0], Var) and ins[0].shape != ()
    if p == "select":
        return all(isinstance(v, Var) and v.shape == o.shape for v in ins)
    return False


def segments(g: Graph, be_dtypes: dict, seen: tuple = (),
             pooled: bool = False) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of native equations, MIN_SEGMENT long or longer (in a pool
    program, ``pooled``, also shorter ones with a loop kernel big enough to run in halves:
    the CNN's relu gradient between its pooling and im2col calls, 0.6 ms whole). An
    equation reading a graph input whose array in ``seen`` (a run's arguments) is not
    C-contiguous (a transposed parameter) stays Python: segment code reads flat C memory,
    and a segment typed for C arrays would refuse that array at every call (a refused numba
    call costs ~100 us of type matching before the fallback runs). The transpose of an F-order
    one (compiler/layout.py) is C-contiguous, and may be native."""
    strided = {id(v) for v, a in zip(g.inputs, seen)
               if type(a) is np.ndarray and a.ndim and not a.flags.c_contiguous}
    f_order = {id(v) for v, a in zip(g.inputs, seen) if layout.transposed(a)}
    nonc = set(strided)
    for e in g.eqns:
        if e.prim.name == "transpose" and id(e.inputs[0]) in f_order and \
                tuple(e.params["perm"]) == (1, 0):
            continue  # (if a later run's array is not F-order, numba refuses the view)
        if e.prim.name in codegen.VIEW_PRIMS and e.prim.name not in C_VIEWS:
            nonc.update(id(o) for o in e.outputs)
    runs, start = [], None

    def keep(lo, hi):  # (a cross-entropy helper has no other spelling worth having)
        return hi - lo >= MIN_SEGMENT or any(
            x.prim.name in native_xent.HELPERS or
            (pooled and x.prim.name == "fused" and _halved(x.params["region"]))
            for x in g.eqns[lo:hi])
    for i, e in enumerate(g.eqns):
        if native_ok(e, nonc, be_dtypes) and not any(id(v) in strided for v in e.inputs):
            start = i if start is None else start
            continue
        if start is not None and keep(start, i):
            runs.append((start, i))
        start = None
    if start is not None and keep(start, len(g.eqns)):
        runs.append((start, len(g.eqns)))
    return runs


# ---------------------------------------------------------------- emission

def _np_name(d) -> str:
    return f"np.{np.dtype(d).name}"


class _Segment:
    """One run of equations as numba source: its inputs, outputs and buffers."""

    def __init__(self, g: Graph, lo: int, hi: int, em: codegen.Emitter, plan: dict,
                 later_use: set):
        self.eqns = g.eqns[lo:hi]
        defined, used = set(), []
        for e in self.eqns:
            for v in e.inputs:
                if isinstance(v, Var) and id(v) not in defined and v not in used:
                    used.append(v)
            defined.update(id(o) for o in e.outputs)
        self.inputs = used
        self.outputs = [o for e in self.eqns for o in e.outputs if id(o) in later_use]
        self.em, self.plan, self.g = em, plan, g
        self.ns: dict = {"np": np, **helpers(), **native_xent.namespace()}
        if em.pool:
            self.ns.update(pool.namespace())
            self.ns.update({f"_pgemm_{d.name}": fn for d, fn in em.pool.items()})
        self.buffers: list = []  # (name in the segment, array)
        self._bufnames: dict = {}
        self.lines: list[str] = []
        # {id(output): input name} for outputs computed in place over one of the segment's
        # own (array) inputs: not returned, the program rebinds the name (numba boxes each
        # returned array anew, ~0.5 us apiece: an Adam step returns 3 per parameter)
        self.aliases: dict = {}

    def buf(self, v) -> str | None:
        b = self.plan.get(id(v))
        if b is None or isinstance(b, tuple):
            return None
        n = self._bufnames.get(id(b))
        if n is None:
            n = self._bufnames[id(b)] = f"_b{len(self._bufnames)}"
            self.buffers.append((n, b))
        return n

    def ref(self, v) -> str:
        if isinstance(v, Literal):  # 0-d constants only (native_ok)
            n = f"_k{len(self.ns)}"
            self.ns[n] = v.value.reshape(())[()]
            return n
        return self.em.name(v)

    def source(self, fname: str) -> str:
        for e in self.eqns:
            self.lines.append(self._emit(e))
        args = [self.em.name(v) for v in self.inputs] + [n for n, _ in self.buffers]
        rets = [self.em.name(v) for v in self.returned()]
        return "\n".join([f"def {fname}({', '.join(args)}):"] + self.lines + [
            f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})"])

    def returned(self) -> list:
        """The outputs the native segment returns (those not in ``aliases``)."""
        return [v for v in self.outputs if id(v) not in self.aliases]

    def _alloc(self, v) -> str:
        b = self.buf(v)
        return b if b else f"np.empty({tuple(v.shape)!r}, {_np_name(v.dtype.np)})"

    def _emit(self, e) -> str:
        p, o = e.prim.name, e.outputs[0]
        ins = [self.ref(v) for v in e.inputs]
        out = self.em.name(o)
        if p == "matmul":
            ta, tb = int(bool(e.params.get("ta"))), int(bool(e.params.get("tb")))
            fn = f"_{'p' if self.em.pool else ''}gemm_{np.dtype(o.dtype.np).name}"
            kb = blas.product_kb(self.em.kblocks, o.dtype.np)  # (as the Python tier's)
            return f"    {out} = {fn}({ins[0]}, {ins[1]}, {ta}, {tb}, {self._alloc(o)}, {kb})"
        if p == "fused":
            return self._emit_fused(e, ins)
        if p in native_xent.HELPERS:
            return native_xent.emit(e, ins, [self.em.name(v) for v in e.outputs])
        if o.shape == ():
            if p in codegen.SCALAR_BINOPS:
                return f"    {out} = {ins[0]} {codegen.SCALAR_BINOPS[p]} {ins[1]}"
            if p == "neg":
                return f"    {out} = -{ins[0]}"
            if p in _SCALAR_SELECTS:  # NumPy's: NaN wins, a tie gives the second operand
                return f"    {out} = {fusion.SCALAR_OPS[p].format(*ins)}"
            return f"    {out} = np.{codegen.UFUNCS[p]}({', '.join(ins)})"
        if p == "relu":  # (numba's np.maximum: 9x slower, and -0.0 for -0.0, NumPy's 0.0)
            return f"    {out} = _relu({ins[0]}, {self._alloc(o)})"
        if p in EXACT_UFUNCS:
            fn = codegen.UFUNCS[p]
            b = self.buf(o)
            return f"    {out} = np.{fn}({', '.join(ins + ([b] if b else []))})"
        if p in ufunc_loops.LOOP_PRIMS:
            fn, data = ufunc_loops.loop(p, o.dtype.np)
            return f"    {out} = _uloop({fn}, {data}, {ins[0]}, {self._alloc(o)})"
        if p == "reduce_sum":
            return f"    {out} = _colsum({ins[0]}, {self._alloc(o)})"
        if p == "reshape":
            return f"    {out} = {ins[0]}.reshape({tuple(e.params['shape'])!r})"
        if p == "convert_element_type":
            return f"    {out} = {ins[0]}.astype({_np_name(o.dtype.np)})"
        if p == "select":
            return f"    {out} = np.where({', '.join(ins)})"
        raise AssertionError(p)  # native_ok admits nothing else

    def _emit_fused(self, e, ins) -> str:
        from taiji.compiler.fusion import _load_kernel, kernel_source
        region = e.params["region"]
        pairs = []
        for k, o in enumerate(e.outputs):
            b = self.plan.get(id(o))
            if isinstance(b, tuple):  # over one of its inputs (passes.plan_memory)
                pairs.append((k, e.inputs.index(inplace_target(self.g, b))))
        r = region.with_inplace(tuple(pairs))
        halves = bool(self.em.pool) and _halved(r)
        kname = f"_kern{len(self.ns)}"
        self.ns[kname] = _load_kernel(kernel_source(r.graph, r.patterns, r.inplace,
                                                    r.colsum, scalar_args=True, rows=halves))
        args, kinds = [], []
        for v, name, pat in zip(e.inputs, ins, r.patterns):
            args.append(f"{name}.reshape(-1)[0]" if pat == "s" and v.shape != () else name)
            kinds.append(("s" if pat == "s" else "a", v.dtype.np))
        lines, outs, names = [], [], []
        for k, o in enumerate(e.outputs):
            if k in r.inplace:
                names.append(args[r.inplace[k]])
                continue
            n = self.em.name(o)
            lines.append(f"    {n} = {self._alloc(o)}")
            outs.append(n)
            names.append(n)
            kinds.append(("a", o.dtype.np))
        task = pool.kernel_task(self.ns[kname], kinds) if halves else None
        if task is not None:  # rows in two halves, the second on the pool's worker
            self.ns[f"{kname}_task"] = task[0]  # (its code lives while the segment does)
            call = "\n".join(task[1](args + outs, r.size // r.last, r.last))
        elif halves:  # (too many arguments for a task: whole, as the rows kernel spells it)
            call = f"    {kname}(0, {r.size // r.last}, {r.last}, {', '.join(args + outs)})"
        else:
            call = f"    {kname}({r.size}, {r.last}, {', '.join(args + outs)})"
        assigns = [f"    {self.em.name(o)} = {n}" for o, n in zip(e.outputs, names)
                   if self.em.name(o) != n]
        inputs = {self.em.name(v) for v in self.inputs if v.shape != ()}
        for o, n in zip(e.outputs, names):
            if n in inputs and self.em.name(o) != n:
                self.aliases[id(o)] = n
        return "\n".join(lines + [call] + assigns)


def _halved(region) -> bool:
    """Whether a pool program runs fused ``region``'s loop kernel in two halves of its rows
    (big enough to pay for the hand-off; a column sum is one pass over every row)."""
    return not region.colsum and region.size >= pool.MIN_KERNEL and \
        region.size // region.last >= 2


def _type_proxy(a):
    """A small array that numba types as it types array ``a`` (dtype, dimensions, layout,
    read-only) and that the build's contiguity checks see alike, so a program waiting for
    its build keeps no reference to a batch's memory. Anything else is returned as is."""
    if type(a) is not np.ndarray or a.ndim == 0:
        return a
    if a.flags.c_contiguous:
        p = np.empty((2,) * a.ndim, a.dtype)
    elif a.flags.f_contiguous:
        p = np.empty((2,) * a.ndim, a.dtype, order="F")
    else:  # (strided in every dimension: neither layout)
        p = np.empty((4,) * a.ndim, a.dtype)[(slice(None, None, 2),) * a.ndim]
    if not a.flags.writeable:
        p.flags.writeable = False
    return p


def _numba_type(v, seen):
    """The numba type of value ``v`` as the segment receives it (``seen``: the value at the
    first run, for graph inputs)."""
    import numba
    from numba.core import types
    if seen is not None:
        return numba.typeof(seen)
    d = numba.from_dtype(np.dtype(v.dtype.np))
    return d if v.shape == () else types.Array(d, len(v.shape), "C")


# ---------------------------------------------------------------- the program

class NativeProgram:
    """A compiled program's Python function, replaced by its native build once that is
    compiled. ``attach`` installs it as the program (``entry.fn``)."""

    def __init__(self, entry, g: Graph):
        self.entry, self.graph = entry, g
        self.python = entry.fn
        self.runs = 0
        self.spent = 0.0                # seconds in the program's calls before its build
        self.requested = False          # the build is queued (or done)
        self._seen: tuple | None = None  # the second run's arguments: the build's types
        self._threaded: Callable | None = None
        self.source: str | None = None  # the mixed program, once built
        self.error: str | None = None   # why it (or a segment of it) was not built

    def __call__(self, *args):
        self.runs += 1
        if self.runs == 2:  # a program run once is not worth a native compile
            self._seen = tuple(_type_proxy(a) for a in args)
            self._threaded = blas.with_threads(self.graph, self.python)
            self.entry.fn = self._timed
            _waiting.add(self)
        return self.python(*args)

    def _timed(self, *args):
        """The Python program until the build is asked for (see BUILD_AFTER)."""
        t0 = time.perf_counter()
        out = self._threaded(*args)
        self.spent += time.perf_counter() - t0
        if self.spent >= BUILD_AFTER:
            self.request()
        return out

    def request(self) -> None:
        """Queue the native build. Until it is in, the Python program runs under a thread
        choice that starts on one thread: the compile takes one of the cores, and OpenBLAS's
        static two-way split of each product would wait for it."""
        if self.requested or self._seen is None:
            return
        self.requested = True
        _waiting.discard(self)
        seen, self._seen = self._seen, None
        self.entry.fn = blas.with_threads(self.graph, self.python, start_one=True)
        _background.submit(lambda: self._build(seen))

    def _build(self, seen) -> None:
        errors: list = []
        try:
            fn, src = build(self.graph, self.graph.plan, seen, errors)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the Python program
            errors.append(f"{type(exc).__name__}: {exc}")
            fn = None
        self.error = "; ".join(errors) or None
        if fn is not None:
            self.source = src
        if getattr(fn, "pool", False) == "shared":
            self.entry.fn = blas_threads.shared(fn)
        elif getattr(fn, "pool", False):
            self.entry.fn = pool.with_pool(fn)
        else:
            self.entry.fn = blas.with_threads(self.graph, fn or self.python)


def request_builds() -> None:
    """Queue the native build of every program that has run twice and not asked yet (its
    Python program is compiled; ``wait_for_kernels`` calls this before it waits)."""
    for program in list(_waiting):
        program.request()


def attach(entry) -> None:
    """Let ``entry`` (a CPU program) switch to a native build after its first runs."""
    if not enabled or not _numba_ok() or not blas.blas():
        return
    if not segments(entry.graph, blas.blas()):
        return
    entry.fn = entry.native = NativeProgram(entry, entry.graph)


def _numba_ok() -> bool:
    from taiji.compiler.fusion import _numba_available, enabled as fusion_on
    return fusion_on and _numba_available()


def build(g: Graph, plan: dict, seen: tuple,
          errors: list | None = None) -> tuple[Callable | None, str]:
    """The mixed program for ``g``: native segments and Python calls between them
    (``seen``: the arguments of a run, for their types; ``errors`` collects why a segment
    could not compile, if one could not)."""
    errors = [] if errors is None else errors
    g = native_xent.decompose(g)
    em = codegen.Emitter()
    em.kblocks = blas.kblocks(g)  # products over K blocks, as the Python tier computes them
    em.pool = _pool_gemms(g) if em.kblocks is not None else {}
    shared = not em.pool and em.kblocks is None and blas_threads.available()
    if shared:  # whole products on OpenBLAS's threads, run on the pool (blas_threads)
        em.pool = {d: helpers()[f"_gemm_{d.name}"] for d in blas.FLOATS}
    runs = dict(segments(g, blas.blas(), seen, pooled=bool(em.pool)))
    if not runs:
        return None, ""
    if em.pool:  # the products between segments: the pool's halves too
        em.ns["_mm"] = functools.partial(blas.matmul, gemms=em.pool)
    args = [em.name(v) for v in g.inputs]
    first_seen = {id(v): a for v, a in zip(g.inputs, seen)}
    last = _last_uses(g)
    i, nseg = 0, 0
    while i < len(g.eqns):
        hi = runs.get(i)
        if hi is None:
            _emit_python(em, g, plan, g.eqns[i], args)
            i += 1
            continue
        use = {vid for vid, k in last.items() if k >= hi}
        seg = _Segment(g, i, hi, em, plan, use)
        if _emit_segment(em, seg, f"_seg{nseg}", first_seen, errors, (i, hi)):
            nseg += 1
        else:  # this run stays Python
            for e in g.eqns[i:hi]:
                _emit_python(em, g, plan, e, args)
        i = hi
    if nseg == 0:
        return None, ""
    rets = [em.name(v) for v in g.outputs]
    src = "\n".join([f"def compiled({', '.join(args)}):"] + em.lines + [
        f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})"])
    ns = em.ns
    exec(compile(src, "<taiji.jit native>", "exec"), ns)  # noqa: S102 - our source
    fn = ns["compiled"]
    fn.pool = "shared" if shared else bool(em.pool)
    return fn, src


def _pool_gemms(g: Graph) -> dict:
    """{dtype: the pool's product} when every product of ``g`` has one and is either halved
    or small (``pool.WHOLE_MAX``): a program that then runs on one OpenBLAS thread plus the
    pool's worker (taiji/compiler/pool.py); else {} (a big product that stays whole would
    lose OpenBLAS's second thread: with the CNN's first convolution, K = 10, whole, its
    compiled inference ran 25% slower; the pool halves such a short-K product by its longer
    side, ``blas.small_k_axis``)."""
    out = {}
    for e in g.eqns:
        if e.prim.name == "matmul":
            a, b = e.inputs
            ta, tb = int(bool(e.params.get("ta"))), int(bool(e.params.get("tb")))
            m, k = (a.shape[1], a.shape[0]) if ta else (a.shape[0], a.shape[1])
            n = b.shape[0] if tb else b.shape[1]
            if m * n * k > pool.WHOLE_MAX and blas.split_axis(m, n, k, ta, tb) == 0 and \
                    blas.small_k_axis(m, n, k) == 0:
                return {}
            d = np.dtype(e.outputs[0].dtype.np)
            fn = out.get(d) or pool.gemm(d)
            if fn is None:
                return {}
            out[d] = fn
    return out


def _last_uses(g: Graph) -> dict:
    """var id -> index of the last equation reading it (graph outputs: past the end)."""
    last = {}
    for i, e in enumerate(g.eqns):
        for v in e.inputs:
            if isinstance(v, Var):
                last[id(v)] = i
    for v in g.outputs:
        if isinstance(v, Var):
            last[id(v)] = len(g.eqns)
    return last


def _emit_segment(em, seg: _Segment, fname: str, first_seen: dict, errors: list,
                  span: tuple) -> bool:
    """Compile ``seg`` for the types it will receive and emit its call (with the Python
    fallback for other types); False, with the reason in ``errors``, if it will not
    compile."""
    from numba import njit
    src = seg.source(fname)
    sig, call_args = [], []
    written = set(seg.aliases.values())
    for v in seg.inputs:
        n = em.name(v)
        sample = first_seen.get(id(v))
        if v.shape == ():  # 0-d values travel as scalars
            call_args.append(em.names.get(("s", id(v))) or f"{n}[()]")
            sample = None if sample is None else np.asarray(sample)[()]
        elif sample is None and n not in written:
            # a value the Python code between segments computed: typed C-contiguous (below),
            # so passed so. A slice's view is not (the CNN's bias gradient, a column of a
            # product): its segment, the whole Adam update, took the Python code every step
            call_args.append(f"_np.ascontiguousarray({n})")
        else:
            call_args.append(n)
        sig.append(_numba_type(v, sample))
    for _, barr in seg.buffers:
        call_args.append(em.const(barr, "_b"))
        sig.append(_numba_type(None, barr))
    ns = dict(seg.ns)
    exec(compile(src, f"<taiji native {fname}>", "exec"), ns)  # noqa: S102 - our source
    try:
        native = njit(tuple(sig), error_model="numpy", fastmath=False)(ns[fname])
    except Exception as exc:  # noqa: BLE001 - the caller keeps this run Python
        errors.append(f"{fname} (equations {span[0]}-{span[1] - 1}) stays Python: "
                      f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return False
    fallback = _python_segment(seg)
    nat, fb = em.const(native, "_n"), em.const(fallback, "_py")
    lhs = ", ".join(em.name(v) for v in seg.outputs) + ","
    returned = seg.returned()
    call = f"{nat}({', '.join(call_args)})"
    em.lines += ["    try:",
                 f"        {', '.join(em.name(v) for v in returned)}, = {call}" if returned
                 else f"        {call}"]
    em.lines += [f"        {em.name(v)} = {seg.aliases[id(v)]}" for v in seg.outputs
                 if id(v) in seg.aliases]
    em.lines += ["    except TypeError:  # arguments of other types: the Python code",
                 f"        {lhs} = {fb}({', '.join(call_args[:len(seg.inputs)])})"]
    for v in seg.outputs:
        if v.shape == ():  # numba returns Python numbers: back to NumPy scalars
            n = em.name(v)
            em.lines.append(f"    {n} = {em.const(np.dtype(v.dtype.np).type, '_t')}({n})")
            em.names[("s", id(v))] = n
    return True


def _emit_python(em, g, plan, e, args) -> None:
    """One equation as the Python tier spells it."""
    em.lines.append(codegen.emit_line(em, g, plan, e, args))


def _python_segment(seg: _Segment) -> Callable:
    """The segment's equations as Python code, for calls whose types the native build was
    not compiled for (inputs as the native segment takes them: 0-d values as scalars)."""
    em = codegen.Emitter()
    em.kblocks = seg.em.kblocks
    names = [em.name(v) for v in seg.inputs]
    for v in seg.inputs:
        if v.shape == ():
            em.names[("s", id(v))] = em.name(v)
    g_args = [em.name(v) for v in seg.g.inputs]
    for e in seg.eqns:
        _emit_python(em, seg.g, seg.plan, e, g_args)
    rets = [em.name(v) for v in seg.outputs]
    src = "\n".join([f"def segment({', '.join(names)}):"] + em.lines + [
        f"    return ({', '.join(rets)}{',' if len(rets) == 1 else ''})"])
    exec(compile(src, "<taiji native fallback>", "exec"), em.ns)  # noqa: S102 - our source
    return em.ns["segment"]
