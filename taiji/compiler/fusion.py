"""Elementwise fusion: chains of elementwise equations of one shape become one `fused`
equation, run by a generated loop kernel (numba) that reads each input once and writes each
output once, instead of one NumPy pass (and one temporary) per operation.

Compilation is tiered: a fused region first runs as plain NumPy (its sub-graph, compiled like
any graph), while its kernel compiles on a background thread (asked for at the region's first
run, so regions a later pass replaced never compile); the region switches to the kernel when
it is ready. Kernels are keyed by their source text, so regions of the same structure (Adam's
update for every parameter) share one. Without numba, regions stay on NumPy. Compiled kernels
go to taiji's own disk cache (kernel_cache.py; numba's would load pickles, which taiji never
does).
"""
from __future__ import annotations

import importlib.util
import os
import threading
import time

import numpy as np

from taiji import _background, _dtypes as dt
from taiji._core.ir import Eqn, Graph, Literal, Var
from taiji._core.primitive import Primitive, ShapedArray
from taiji.compiler import kernel_cache

# primitive -> expression template over scalar operands (numba nopython syntax). Only
# operations IEEE 754 rounds correctly are fused (no exp/log/tanh/pow, whose last bits differ
# between NumPy's and LLVM's implementations) and kernels compile without fast-math or FMA
# contraction: a region gives bit-for-bit the same result on its NumPy tier and its kernel
# tier, so results never depend on when a background compile finished.
SCALAR_OPS = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    # NumPy's maximum and minimum: NaN wins, a tie (0.0 and -0.0) gives the second operand
    # (numba's np.maximum gives the first); NumPy's sign: NaN stays, -0.0 gives 0.0 (numba's
    # gives -0.0)
    "maximum": "({0} if ({0} > {1} or {0} != {0}) else {1})",
    "minimum": "({0} if ({0} < {1} or {0} != {0}) else {1})",
    "neg": "(-{0})", "sqrt": "np.sqrt({0})", "abs": "np.abs({0})",
    "sign": "({0} if {0} != {0} else {one} if {0} > {z} else -{one} if {0} < {z} else {z})",
    "floor": "np.floor({0})", "ceil": "np.ceil({0})", "trunc": "np.trunc({0})",
    "eq": "({0} == {1})", "ne": "({0} != {1})", "lt": "({0} < {1})", "le": "({0} <= {1})",
    "gt": "({0} > {1})", "ge": "({0} >= {1})", "select": "({1} if {0} else {2})",
    "relu": "({0} if ({0} > {z} or {0} != {0}) else {z})",  # NumPy's maximum(x, 0), -0.0 too
}
FLOATS = (dt.float32, dt.float64)
MIN_REGION = 2


def _fusable(e: Eqn) -> bool:
    if e.prim.name not in SCALAR_OPS and e.prim.name != "convert_element_type":
        return False
    o = e.outputs[0]
    if o.dtype not in FLOATS and o.dtype is not dt.bool_:
        return False
    if e.prim.name == "convert_element_type" and (
            o.dtype not in FLOATS or e.inputs[0].dtype not in FLOATS + (dt.bool_,)):
        return False
    return all(v.dtype in FLOATS or v.dtype is dt.bool_ for v in e.inputs)


def pattern(shape, full) -> str | None:
    """How an input of ``shape`` is read in a loop over ``full`` (flat index i):
    'f' full, 's' scalar, 't' trailing dims (i % size), 'r' keepdims row (i // last)."""
    shape = tuple(shape)
    n = int(np.prod(shape)) if shape else 1
    if shape == tuple(full):
        return "f"
    if n == 1:
        return "s"
    k = len(shape)
    while k and shape[0] == 1:
        shape, k = shape[1:], k - 1
    if shape == tuple(full[len(full) - k:]):
        return "t"
    if len(shape) <= len(full) and tuple(full[:-1]) == tuple(
            (1,) * (len(full) - len(shape)) + shape)[:-1] and shape[-1] == 1:
        return "r"
    return None


# ---------------------------------------------------------------- the pass

fused = Primitive("fused", multiple_results=True)


@fused.def_impl
def _fused_impl(xp, *arrays, region):
    return region(*arrays)


@fused.def_shape
def _fused_shape(*avals, region):
    return region.out_avals


def _eval_inline(ins, region):
    from taiji._core.ir import eval_graph
    from taiji._prims.reduce import reduce_sum
    outs = tuple(eval_graph(region.graph, list(ins)))
    return outs + tuple(reduce_sum(outs[k], axes=(0,), keepdims=False) for k in region.colsum)


# A fused region is a composition, so its rules apply the transform to its sub-graph.
@fused.def_vjp
def _fused_vjp(cts, ins, outs, *, region):
    from taiji.transforms import vjp
    _, pull = vjp(lambda *a: _eval_inline(a, region), *ins)
    cts = tuple(c if c is not None else o.zeros_like() for c, o in zip(cts, outs))
    return pull(cts)


@fused.def_jvp
def _fused_jvp(ts, ins, outs, *, region):
    from taiji.transforms import jvp
    ts = tuple(t if t is not None else x.zeros_like() for t, x in zip(ts, ins))
    return jvp(lambda *a: _eval_inline(a, region), tuple(ins), ts)[1]


@fused.def_batch
def _fused_batch(ins, dims, *, region):
    from taiji.transforms import vmap
    outs = vmap(lambda *a: _eval_inline(a, region), in_axes=tuple(dims))(*ins)
    return tuple(outs), (0,) * len(outs)


def fuse_elementwise(g: Graph) -> Graph:
    """Group elementwise equations into `fused` regions (see the module docstring)."""
    regions = []          # each: dict(eqns, shape, open)
    region_of = {}        # var id -> region index (vars produced inside open regions)
    placement = []        # ("e", eqn) or ("r", region index), in order
    pos = {id(e): i for i, e in enumerate(g.eqns)}
    for e in g.eqns:
        ins_regions = {region_of[id(v)] for v in e.inputs
                       if isinstance(v, Var) and id(v) in region_of}
        shape = e.outputs[0].shape
        if _fusable(e) and shape and all(pattern(v.shape, shape) for v in e.inputs):
            joinable = sorted(r for r in ins_regions
                              if regions[r]["open"] and regions[r]["shape"] == shape)
            for r in ins_regions - set(joinable):
                regions[r]["open"] = False
            if joinable:
                # merge every open region feeding e into the first: no outside consumer has
                # been placed since they were last extended, so they may all run here
                target = joinable[0]
                R = regions[target]
                for r in joinable[1:]:
                    R["eqns"] += regions[r]["eqns"]
                    for m in regions[r]["eqns"]:
                        for o in m.outputs:
                            region_of[id(o)] = target
                    regions[r] = {"eqns": [], "shape": shape, "open": False}
                    placement.remove(("r", r))
                R["eqns"].append(e)
                R["eqns"].sort(key=lambda m: pos[id(m)])
                placement.remove(("r", target))
            else:
                regions.append({"eqns": [e], "shape": shape, "open": True})
                target = len(regions) - 1
            for o in e.outputs:
                region_of[id(o)] = target
            placement.append(("r", target))
            continue
        for r in ins_regions:  # an outside consumer: the region cannot grow past it
            regions[r]["open"] = False
        placement.append(("e", e))
    # which region values are needed outside their region
    used_outside = set(id(v) for v in g.outputs if isinstance(v, Var))
    member = {}
    for i, R in enumerate(regions):
        for e in R["eqns"]:
            for o in e.outputs:
                member[id(o)] = i
    for e in g.eqns:
        for v in e.inputs:
            if isinstance(v, Var) and id(v) in member and member[id(v)] != member.get(
                    id(e.outputs[0]), -1):
                used_outside.add(id(v))
    eqns, n_fused = [], 0
    for kind, item in placement:
        if kind == "e":
            eqns.append(item)
            continue
        R = regions[item]
        if len(R["eqns"]) < MIN_REGION:
            eqns.extend(R["eqns"])
            continue
        defined = {id(o) for e in R["eqns"] for o in e.outputs}
        ins, seen = [], set()
        for e in R["eqns"]:
            for v in e.inputs:
                key = id(v)
                if key not in defined and key not in seen:
                    seen.add(key)
                    ins.append(v)
        outs = [o for e in R["eqns"] for o in e.outputs if id(o) in used_outside]
        if not outs:
            continue
        sub_in = [Var(v.aval) for v in ins]
        env = {id(v): s for v, s in zip(ins, sub_in)}
        sub_eqns = [Eqn(e.prim, [env.get(id(v), v) if not isinstance(v, Literal) else
                                 env.get(id(v), v) for v in e.inputs], e.params, e.outputs,
                        e.where) for e in R["eqns"]]
        sub = Graph(sub_in, sub_eqns, outs, ["fused region"])
        region = Region(sub, R["shape"])
        eqns.append(Eqn(fused, list(ins), {"region": region}, list(outs), R["eqns"][-1].where))
        n_fused += 1
    return g.with_eqns(eqns, note=f"fuse_elementwise ({n_fused} regions)")


def absorb_column_sums(g: Graph) -> Graph:
    """``reduce_sum(v, axes=(0,))`` of a fused region's 2-D output ``v`` (a Linear layer's
    bias gradient) becomes one more output of the region: the kernel adds each row into the
    sums while the row is in registers, instead of a second pass over ``v``. The kernel adds
    rows in order, as NumPy's axis-0 sum does, so both tiers give the same bits."""
    producer = {}
    for i, e in enumerate(g.eqns):
        if e.prim is fused:
            for k, o in enumerate(e.outputs[:len(e.params["region"].graph.outputs)]):
                producer[id(o)] = (i, k)
    extra: dict[int, list] = {}  # fused eqn index -> [(output k, reduce eqn)]
    for e in g.eqns:
        if e.prim.name != "reduce_sum" or tuple(e.params["axes"]) != (0,) or \
                e.params["keepdims"] or id(e.inputs[0]) not in producer:
            continue
        v, o = e.inputs[0], e.outputs[0]
        i, k = producer[id(v)]
        region = g.eqns[i].params["region"]
        if len(region.shape) == 2 and region.shape[1] >= 2 and v.dtype in FLOATS and \
                o.dtype is v.dtype and not region.colsum:
            extra.setdefault(i, []).append((k, e))
    if not extra:
        return g
    drop = {id(e) for items in extra.values() for _, e in items}
    eqns = []
    for i, e in enumerate(g.eqns):
        if id(e) in drop:
            continue
        if i in extra:
            r = e.params["region"]
            ks = tuple(k for k, _ in extra[i])
            region = Region(r.graph, r.shape, colsum=ks)
            e = Eqn(fused, e.inputs, {"region": region},
                    list(e.outputs) + [red.outputs[0] for _, red in extra[i]], e.where)
        eqns.append(e)
    return g.with_eqns(eqns, note=f"absorb_column_sums ({len(drop)})")


# ---------------------------------------------------------------- regions and kernels

class Region:
    """One fused region: its sub-graph, a NumPy fallback and (when ready) a loop kernel.

    ``inplace`` maps output k to input j when output k overwrites input j's storage (an
    optimizer's new weights over the old). The kernel then writes through the input's own
    argument: one pointer for both, which LLVM can still vectorise (an output argument that
    merely aliases an input defeats its overlap checks and falls back to scalar code).
    """

    def __init__(self, graph: Graph, shape, inplace: tuple = (), colsum: tuple = ()):
        from taiji.compiler.codegen import compile_graph
        self.graph = graph
        self.shape = tuple(shape)
        self.numpy_fn, _ = compile_graph(graph)
        self.kernel = None
        self.inplace = dict(inplace)
        self.colsum = tuple(colsum)  # outputs whose axis-0 sums are extra outputs, in order
        self.patterns = [pattern(v.shape, shape) for v in graph.inputs]
        self._scalars = [i for i, p in enumerate(self.patterns) if p == "s"]
        self.source = kernel_source(graph, self.patterns, self.inplace, self.colsum)
        self.out_avals = tuple(v.aval for v in graph.outputs) + tuple(
            ShapedArray(self.shape[1:], graph.outputs[k].dtype) for k in self.colsum)
        self.out_dtypes = [a.dtype.np for a in self.out_avals]
        self.out_shapes = [tuple(a.shape) for a in self.out_avals]
        self.size = int(np.prod(shape)) if shape else 1
        self.last = self.shape[-1] if self.shape else 1
        self._variants: dict = {}
        self.run = self._start
        self.kernel_origin = None  # "jit" (compiled here) or "disk" (taiji's kernel cache)

    def _start(self, *arrays, out=None):
        """The first run: ask for the kernel, then run on NumPy until it is ready."""
        self.run = self._general
        _request(self)
        return self._general(*arrays, out=out)

    def with_inplace(self, pairs: tuple) -> "Region":
        """This region with outputs written over inputs (``pairs`` of (output, input))."""
        pairs = tuple(sorted(pairs))
        if not pairs:
            return self
        r = self._variants.get(pairs)
        if r is None:
            r = self._variants[pairs] = Region(self.graph, self.shape, pairs, self.colsum)
        return r

    def _dtypes_match(self, arrays) -> bool:
        """Whether ``arrays`` have the graph's dtypes. An ahead-of-time kernel's wrapper
        does not check argument types (a float64 array where float32 was compiled would be
        read as garbage), so disk-cached kernels only ever see the types they were built
        for; anything else runs on the NumPy tier."""
        return all(np.asarray(a).dtype == v.dtype.np for a, v in zip(arrays, self.graph.inputs))

    def _make_fast(self) -> None:
        """Once the kernel is ready: a call path specialised to this region (which inputs
        are scalars, which outputs overwrite inputs, the output shapes), so a call costs
        the kernel plus a few attribute reads. Anything unusual (a non-contiguous or
        read-only input) takes the general path."""
        n_in = len(self.graph.inputs)
        ip = self.inplace
        args = [f"a{i}" for i in range(n_in)]
        checks = []
        for i in range(n_in):
            if i in ip.values():
                checks.append(f"a{i}.flags.c_contiguous and a{i}.flags.writeable")
            elif i not in self._scalars:
                checks.append(f"a{i}.flags.c_contiguous")
        kargs = [f"a{i}.reshape(1)" if i in self._scalars else f"a{i}" for i in range(n_in)]
        if self.kernel_origin == "disk":  # see _dtypes_match
            checks += [f"a{i}.dtype is d{i}" for i in range(n_in)]
        lines = [f"def run({', '.join(args)}, out=None):"]
        if checks:
            lines.append(f"    if not ({' and '.join(checks)}):")
            lines.append(f"        return slow({', '.join(args)}, out=out)")
        rets, kouts = [], []
        for kk in range(len(self.out_dtypes)):
            if kk in ip:
                rets.append(f"a{ip[kk]}")
                continue
            lines.append(f"    o{kk} = None if out is None else out[{kk}]")
            lines.append(f"    if o{kk} is None:")
            lines.append(f"        o{kk} = empty(shape{kk}, dtype{kk})")
            rets.append(f"o{kk}")
            kouts.append(f"o{kk}")
        lines.append(f"    kernel({self.size}, {self.last}, {', '.join(kargs + kouts)})")
        lines.append(f"    return ({', '.join(rets)},)")
        ns = {"slow": self._general, "kernel": self.kernel, "empty": np.empty}
        for i, v in enumerate(self.graph.inputs):
            ns[f"d{i}"] = np.dtype(v.dtype.np)
        for kk, (sh, d) in enumerate(zip(self.out_shapes, self.out_dtypes)):
            ns[f"shape{kk}"], ns[f"dtype{kk}"] = sh, d
        exec(compile("\n".join(lines), "<taiji fused call>", "exec"), ns)  # noqa: S102
        self.run = ns["run"]  # generated code calls region.run(...): swapped in one store

    def __call__(self, *arrays, out=None):
        return self.run(*arrays, out=out)

    def _general(self, *arrays, out=None):
        k = self.kernel
        ip = self.inplace
        if k is None or any(not arrays[j].flags.c_contiguous or not arrays[j].flags.writeable
                            for j in ip.values()) or (
                self.kernel_origin == "disk" and not self._dtypes_match(arrays)):
            res = self.numpy_fn(*arrays)
            if self.colsum:
                res = (*res, *[np.sum(res[k], axis=0) for k in self.colsum])
            if out is None and not ip:
                return res
            res = list(res)
            for kk, j in ip.items():
                np.copyto(arrays[j], res[kk])
                res[kk] = arrays[j]
            if out is not None:
                for kk, b in enumerate(out):
                    if b is not None:
                        np.copyto(b, res[kk])
                        res[kk] = b
            return tuple(res)
        for a in arrays:  # the kernel reads flat memory: views must be made contiguous
            if not a.flags.c_contiguous:
                arrays = tuple(x if x.flags.c_contiguous else np.ascontiguousarray(x)
                               for x in arrays)
                break
        if self._scalars:  # 0-d values may arrive as NumPy scalars: give the kernel arrays
            arrays = list(arrays)
            for i in self._scalars:
                arrays[i] = arrays[i].reshape(1)
        if not ip:
            if out is None:
                outs = [np.empty(sh, d) for sh, d in zip(self.out_shapes, self.out_dtypes)]
            else:
                outs = [np.empty(sh, d) if b is None else b
                        for b, sh, d in zip(out, self.out_shapes, self.out_dtypes)]
            k(self.size, self.last, *arrays, *outs)
            return tuple(outs)
        outs = []
        for kk, d in enumerate(self.out_dtypes):
            if kk in ip:
                outs.append(arrays[ip[kk]])
            elif out is not None and out[kk] is not None:
                outs.append(out[kk])
            else:
                outs.append(np.empty(self.out_shapes[kk], d))
        k(self.size, self.last, *arrays, *[o for kk, o in enumerate(outs) if kk not in ip])
        return tuple(outs)

    def __repr__(self):
        return f"<fused region: {len(self.graph.eqns)} ops over {list(self.shape)}>"


def kernel_source(g: Graph, patterns, inplace: dict | None = None, colsum=(),
                  scalar_args: bool = False, rows: bool = False) -> str:
    """Source of a numba loop kernel for sub-graph ``g`` (``inplace``: output -> input;
    ``colsum``: outputs whose column sums are extra outputs; ``scalar_args``: inputs read
    as scalars arrive as scalars, not as 1-element arrays, as the native tier passes them;
    ``rows``: the kernel takes ``(r0, r1, last, ...)`` and computes rows r0 to r1 only, the
    half a thread of taiji/compiler/pool.py computes, instead of ``(n, last, ...)``).

    Two nested loops, rows x last dim, so that broadcast reads need no per-element integer
    division: scalars are read once, keepdims rows once per row, trailing-dim operands by
    column. The inner loop is plain arithmetic that LLVM vectorises. (A trailing-dim operand
    is read through a view of its row, indexed by the loop's own counter: read as
    ``a[t + c]``, numba's negative-index wraparound on ``t + c`` kept LLVM from vectorising
    the loop, and a bias + ReLU over 512 x 256 took 74 us instead of 14.)"""
    inplace = inplace or {}
    names = {}
    args = [f"a{i}" for i in range(len(g.inputs))]
    outs = [f"o{i}" for i in range(len(g.outputs)) if i not in inplace]
    sums = [f"s{j}" for j in range(len(colsum))]
    pre, row, inner = [], [], []
    # NumPy's add-reduce starts from +0.0 and adds rows in order (a column of -0.0 sums to
    # +0.0): so do the kernels
    pre += [f"    {sname}[:] = 0.0" for sname in sums]
    for i, (v, p) in enumerate(zip(g.inputs, patterns)):
        names[id(v)] = f"x{i}"
        if p == "s":
            pre.append(f"    x{i} = a{i}" if scalar_args else f"    x{i} = a{i}[0]")
        elif p == "r":
            row.append(f"        x{i} = a{i}[r]")
        elif p == "t":
            pre.append(f"    m{i} = a{i}.size // last")
            row.append(f"        t{i} = ({'(r + r0)' if rows else 'r'} % m{i}) * last")
            row.append(f"        y{i} = a{i}[t{i}:t{i} + last]")
            inner.append(f"            x{i} = y{i}[c]")
        else:
            inner.append(f"            x{i} = a{i}[i]")
    consts = {}

    def ref(v):
        if isinstance(v, Literal):
            key = (v.value.dtype.str, v.value.tobytes())
            if key not in consts:
                consts[key] = (f"c{len(consts)}", v.value)
            return consts[key][0]
        return names[id(v)]
    for j, e in enumerate(g.eqns):
        o = e.outputs[0]
        t = f"v{j}"
        names[id(o)] = t
        tname = "float32" if o.dtype is dt.float32 else "float64"
        if e.prim.name == "convert_element_type":
            expr = f"np.{tname}({ref(e.inputs[0])})"
        else:
            expr = SCALAR_OPS[e.prim.name].format(*[ref(v) for v in e.inputs],
                                                  z=f"np.{tname}(0)", one=f"np.{tname}(1)")
        inner.append(f"            {t} = {expr}")
    for k, v in enumerate(g.outputs):
        target = f"a{inplace[k]}" if k in inplace else f"o{k}"
        inner.append(f"            {target}[i] = {ref(v)}")
    for sname, k in zip(sums, colsum):
        inner.append(f"            {sname}[c] += {ref(g.outputs[k])}")
    head = ["import numpy as np", "from numba import njit", ""]
    for name, value in consts.values():
        kind = {"float32": "np.float32", "float64": "np.float64", "bool": "np.bool_"}[
            value.dtype.name]
        val = repr(value.reshape(()).item())
        if val in ("inf", "-inf", "nan"):
            val = f"float('{val}')"
        head.append(f"{name} = {kind}({val})")
    # (views of contiguous memory; a rows kernel views its rows, so that its indices count
    # from 0 as the whole kernel's do: indices from r0 kept LLVM from vectorising, 8x slower)
    cut = {"f": "[r0 * last:r1 * last]", "r": "[r0:r1]", "t": ""}
    flat = [f"    {a} = {a}.reshape(-1){cut[p] if rows else ''}"
            for a, p in zip(args, patterns) if p != "s"]
    flat += [f"    {o} = {o}.reshape(-1){cut['f'] if rows else ''}" for o in outs]
    span = ("r0, r1", "range(r1 - r0)") if rows else ("n", "range(n // last)")
    body = ["@njit(error_model='numpy', fastmath=False)",
            f"def kernel({span[0]}, last, {', '.join(args + outs + sums)}):"] + flat + pre + [
            f"    for r in {span[1]}:", "        base = r * last"] + row + [
            "        for c in range(last):", "            i = base + c"] + inner
    return "\n".join(head + [""] + body) + "\n"


# ---------------------------------------------------------------- background compilation

_lock = threading.Lock()  # guards _to_cache
_kernels: dict = {}
_to_cache: dict = {}  # kernels compiled in memory that the disk cache lacks
enabled = os.environ.get("TAIJI_FUSION", "1") != "0"
disk_cache = True  # read and write taiji.compiler.kernel_cache (tests turn it off)


def _load_kernel(source: str):
    """Compile kernel ``source`` (once per distinct source in this process). Kernels are not
    cached on disk: numba's disk cache loads pickles, which taiji never does."""
    k = _kernels.get(source)
    if k is None:
        ns: dict = {}
        exec(compile(source, "<taiji fused kernel>", "exec"), ns)  # noqa: S102 - our source
        k = _kernels[source] = ns["kernel"]
    return k


def _compile_one(region: Region) -> None:
    ins = []
    for v, p in zip(region.graph.inputs, region.patterns):
        ins.append(np.zeros(1 if p == "s" else v.shape, v.dtype.np))
    outs = [np.zeros(sh, d) for kk, (sh, d) in enumerate(zip(region.out_shapes,
                                                             region.out_dtypes))
            if kk not in region.inplace]
    k = None
    if disk_cache:
        sig = kernel_cache.signature(ins + outs)
        ck = kernel_cache.key(region.source, sig)
        k = kernel_cache.load(ck)
        if k is None and ck not in _to_cache and ck not in kernel_cache.submitted:
            _to_cache[ck] = (ck, region.source, sig)  # built once the JIT queue is empty
    region.kernel_origin = "disk" if k is not None else "jit"
    if k is None:
        k = _load_kernel(region.source)
        k(0, 1, *ins, *outs)  # forces compilation for these argument types (n=0: no work)
    region.kernel = k
    region._make_fast()


def _compile_region(region: Region) -> None:
    try:
        _compile_one(region)
    except Exception:  # a kernel that will not compile leaves the region on NumPy
        region.kernel = None


def _flush_cache_builds() -> None:
    """(idle hook) every kernel asked for so far is ready: write the new ones to disk."""
    with _lock:
        items = list(_to_cache.values())
        _to_cache.clear()
    kernel_cache.build_in_background(items)


def _after_fork_child() -> None:
    global _lock
    _lock = threading.Lock()
    _to_cache.clear()  # a forked worker process builds no cache


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)


def _request(region: Region) -> None:
    if not enabled or not _numba_available():
        return
    _background.add_idle_hook(_flush_cache_builds)
    _background.submit(lambda: _compile_region(region))


def wait_for_kernels(timeout: float = 60.0, cache_builds: bool = True) -> bool:
    """Block until queued kernels are compiled (fused regions and the primitives' own, see
    taiji/_background.py, and the native builds of programs that have run twice, which this
    asks for now; tests and benchmarks use this) and, with ``cache_builds``, until this
    process's disk-cache builds are written."""
    from taiji.compiler import native  # (programs that have not asked for their build yet)
    native.request_builds()
    t0 = time.time()
    if not _background.wait(timeout):
        return False
    return not cache_builds or kernel_cache.wait(max(0.0, timeout - (time.time() - t0)))


_HAVE_NUMBA = None


def _numba_available() -> bool:
    global _HAVE_NUMBA
    if _HAVE_NUMBA is None:
        _HAVE_NUMBA = importlib.util.find_spec("numba") is not None
    return _HAVE_NUMBA
