"""jit on a device backend (CUDA through CuPy): the same planned graph, run on the device.

A program whose inputs live on a device compiles like a CPU one (same passes, same fusion
regions, same memory plan, the same codegen with ``_np`` bound to the backend's array module)
and then differs in three places, all here:

1. Device-resident constants and buffers: literals and the memory plan's static buffers are
   allocated on the device once, at compile time.
2. Fused elementwise regions become one CUDA kernel each (``cupy.ElementwiseKernel``, source
   generated from the region's sub-graph, compiled with ``--fmad=false`` so a fused region
   rounds exactly as the unfused ops do). Backends without such kernels run the region's
   sub-graph op by op on the device.
3. The whole program is captured once as a CUDA graph (CuPy stream capture, on its second
   call: the first runs op by op) and replayed: one launch per call instead of one per op.
   Replay writes the addresses recorded at capture, so the program's inputs are static
   buffers: captured state (parameters, optimizer moments) is used in place, arguments are
   copied into buffers owned by the program, and outputs handed to the caller are copied
   out of the graph's own. When capture is impossible (an op syncs with the host, a
   library refuses capture) the program falls back to plain launches and logs why
   (``TAIJI_LOG_COMPILES=1``).

Switches: ``config.graphs`` (``TAIJI_CUDA_GRAPHS=0`` turns capture off) and
``config.fuse_kernels`` (``TAIJI_CUDA_FUSION=0``).
"""
from __future__ import annotations

import hashlib
import os
import struct

import numpy as np

from taiji._core.ir import Eqn, Graph, Literal
from taiji.compiler.cache import log_compile


class config:
    """Device-program switches (process-wide)."""
    graphs: bool = os.environ.get("TAIJI_CUDA_GRAPHS", "1") not in ("0", "false")
    fuse_kernels: bool = os.environ.get("TAIJI_CUDA_FUSION", "1") not in ("0", "false")


# ---------------------------------------------------------------- which device a program uses

def program_backend(res, tensors):
    """The device backend a traced program runs on, or None for a CPU program.

    The device is that of the program's non-CPU inputs (arguments and captured state). Two
    different devices are the same error as in eager mode; explicit arguments left on the
    CPU (other than 0-d ones) next to device ones are too. Captured CPU state is allowed
    (copied to the device and back each call; see DeviceProgram)."""
    from taiji.backends import ARRAY_TYPES, backend_of_array
    names, backend = [], None
    payloads = [t._data for t in tensors] + [c.payload for c in res.captures]
    for p in payloads:
        if type(p) is np.ndarray or type(p) not in ARRAY_TYPES:
            continue
        be = backend_of_array(p)
        n = be.device_name(p)
        if n not in names:
            names.append(n)
        backend = backend or be
    if backend is None:
        return None
    cpu_args = [t for t in tensors if type(t._data) is np.ndarray and t._data.ndim]
    if len(names) > 1 or cpu_args:
        second = names[1] if len(names) > 1 else "cpu"
        raise RuntimeError(
            f"jit: Expected all tensors to be on the same device, but found at least two "
            f"devices, {names[0]} and {second}! (arguments and the tensors the function "
            f"reads); move them to one device with .to(device) first")
    return backend


# ---------------------------------------------------------------- compile

def compile_program(g: Graph, res, n_args: int, backend):
    """``(program, source)`` for planned graph ``g`` on ``backend``'s device."""
    from taiji.compiler.fusion import fused
    eqns = []
    for e in _scalar_prologue(g, backend):
        if e.prim is fused:
            e = Eqn(fused, e.inputs, {"region": DeviceRegion(e.params["region"], backend)},
                    e.outputs, e.where)
        eqns.append(e)
    g2 = g.with_eqns(eqns)
    plan = _device_plan(g.plan or {}, backend)
    fn, src = _codegen(g2, plan, backend)
    program = DeviceProgram(fn, res, n_args, backend)
    return program, src + f"\n# device program on {backend.name}: constants and buffers " \
                          f"on the device; CUDA graph replay: {program.mode == 'graph'}"


def _scalar_prologue(g: Graph, backend) -> list:
    """``g``'s equations with its 0-d arithmetic on inputs and constants (an optimizer's
    bias corrections: about eight operations per parameter) as one fused region at the
    start. On a CPU these run as Python scalars; on a GPU each would be a kernel launch,
    and inside a CUDA graph a node of its own, several microseconds each. One kernel with
    one thread computes them all instead."""
    from types import SimpleNamespace

    from taiji.compiler.fusion import fused
    if not config.fuse_kernels:
        return g.eqns
    avail = {id(v) for v in g.inputs if v.shape == () and v.dtype.name in _CTYPES}
    group = []
    for e in g.eqns:
        o = e.outputs[0]
        if (e.prim is fused or len(e.outputs) != 1 or o.shape != ()
                or o.dtype.name not in _CTYPES or not _expressible(e)):
            continue
        if all(id(v) in avail if not isinstance(v, Literal) else _literal_ok(v)
               for v in e.inputs):
            group.append(e)
            avail.add(id(o))
    if len(group) < 2:
        return g.eqns
    members = {id(e) for e in group}
    made = {id(e.outputs[0]) for e in group}
    used = {id(v) for e in g.eqns if id(e) not in members for v in e.inputs}
    used |= {id(v) for v in g.outputs}
    ins, seen = [], set()
    for e in group:
        for v in e.inputs:
            if not isinstance(v, Literal) and id(v) not in made and id(v) not in seen:
                seen.add(id(v))
                ins.append(v)
    outs = [e.outputs[0] for e in group if id(e.outputs[0]) in used]
    region = SimpleNamespace(graph=Graph(ins, group, outs), shape=(), patterns=["s"] * len(ins),
                             colsum=())
    head = Eqn(fused, ins, {"region": region}, outs, group[0].where)
    return [head] + [e for e in g.eqns if id(e) not in members]


def _expressible(e) -> bool:
    try:
        _expr(e.prim.name, ["a"] * len(e.inputs), _CTYPES[e.outputs[0].dtype.name])
    except KeyError:
        return False
    return not e.params or e.prim.name == "convert_element_type"


def _literal_ok(v: Literal) -> bool:
    try:
        _literal(v)
    except KeyError:
        return False
    return True


def _device_plan(plan: dict, backend) -> dict:
    """The memory plan with each static host buffer replaced by a device one (buffers
    shared between values stay shared)."""
    xp, moved, out = backend.xp, {}, {}
    for vid, b in plan.items():
        if isinstance(b, np.ndarray):
            d = moved.get(id(b))
            if d is None:
                d = moved[id(b)] = xp.empty(b.shape, dtype=b.dtype)
            out[vid] = d
        else:
            out[vid] = b
    return out


def _codegen(g: Graph, plan, backend):
    """Codegen with ``_np`` bound to the backend's array module and every host array
    constant moved onto the device."""
    from taiji.compiler.codegen import generate
    src, ns = generate(g, plan, backend.xp, device=backend)
    for k, v in list(ns.items()):
        if type(v) is np.ndarray:  # (literals, zero scalars; not the plan's device buffers)
            ns[k] = backend.asarray(v)
    exec(compile(src, "<taiji.jit device>", "exec"), ns)  # noqa: S102 - our own IR
    return ns["compiled"], src


# ---------------------------------------------------------------- fused regions

_CTYPES = {"float32": "float", "float64": "double", "bool": "bool"}
_kernels: dict = {}  # kernel source -> compiled ElementwiseKernel (shared by equal regions)


class DeviceRegion:
    """A fused region on a device: one generated CUDA kernel (CuPy), or the region's
    sub-graph run op by op with the backend's array module. Called like
    ``taiji.compiler.fusion.Region``: ``region(*arrays, out=(buffer or None, ...))``,
    outputs in ``inplace`` written over their inputs."""

    def __init__(self, region, backend, inplace: tuple = ()):
        self.region = region
        self.graph = region.graph
        self.shape = tuple(region.shape)
        self.patterns = region.patterns  # (plan_memory's in-place check reads these)
        self.backend = backend
        self.inplace = dict(inplace)
        # outputs whose axis-0 sums are extra outputs (fusion.absorb_column_sums)
        self.colsum = tuple(getattr(region, "colsum", ()))
        self.out_dtypes = [v.dtype.np for v in self.graph.outputs]
        self.fn, _ = _codegen(self.graph, None, backend)
        self.kernel = None
        self.source = None
        self._checked = False
        cupy = getattr(backend, "cupy", None)
        if cupy is not None and config.fuse_kernels:
            try:
                self.source = kernel_source(self.graph, self.inplace)
            except KeyError:  # an op or constant the kernel writer does not know
                self.source = None
            if self.source is not None:
                self.kernel = _elementwise_kernel(cupy, *self.source)
        self._variants: dict = {}
        self.run = self.__call__  # (generated code calls region.run, as for fusion.Region)

    def with_inplace(self, pairs: tuple) -> "DeviceRegion":
        pairs = tuple(sorted(pairs))
        if not pairs:
            return self
        r = self._variants.get(pairs)
        if r is None:
            r = self._variants[pairs] = DeviceRegion(self.region, self.backend, pairs)
        return r

    def __call__(self, *arrays, out=None):
        ip = self.inplace
        if self.kernel is not None and not self._checked:
            try:  # the first call compiles the kernel (NVRTC): a failure falls back, logged
                return self._kernel_call(arrays, out)
            except Exception as e:  # noqa: BLE001 - any compile or launch error
                log_compile(f"device program: fused kernel {self.source[3]} failed "
                            f"({type(e).__name__}: {e}); running its ops one by one")
                self.kernel = None
            finally:
                self._checked = True
        if self.kernel is not None:
            return self._kernel_call(arrays, out)
        outs = list(self.fn(*arrays))
        for k, j in ip.items():
            self.backend.copyto(arrays[j], outs[k])
            outs[k] = arrays[j]
        if out is not None:
            for k, b in enumerate(out[:len(outs)]):
                if b is not None and k not in ip:
                    self.backend.copyto(b, outs[k])
                    outs[k] = b
        return self._colsums(outs, out)

    def _kernel_call(self, arrays, out):
        ip = self.inplace
        xp = self.backend.xp
        outs = []
        for k, d in enumerate(self.out_dtypes):
            if k in ip:
                outs.append(arrays[ip[k]])
            elif out is not None and out[k] is not None:
                outs.append(out[k])
            else:
                outs.append(xp.empty(self.shape, dtype=d))
        targets = sorted(set(ip.values()))
        ins = [a for i, a in enumerate(arrays) if i not in targets]
        self.kernel(*ins, *[o for k, o in enumerate(outs) if k not in ip],
                    *[arrays[j] for j in targets])
        return self._colsums(outs, out)

    def _colsums(self, outs: list, out) -> tuple:
        n = len(self.out_dtypes)
        for i, k in enumerate(self.colsum):  # (a second pass on the device: a column sum)
            b = out[n + i] if out is not None and len(out) > n + i else None
            outs.append(self.backend.colsum(outs[k], out=b))
        return tuple(outs)

    def __repr__(self):
        kind = "CUDA kernel" if self.kernel is not None else "array ops"
        return f"<device region ({kind}): {len(self.graph.eqns)} ops over {list(self.shape)}>"


def _literal(v: Literal) -> str:
    """A scalar constant as exact CUDA C (bit patterns: inf and NaN included)."""
    a = np.asarray(v.value)
    if a.size != 1:
        raise KeyError("non-scalar literal")
    x = a.reshape(())
    if a.dtype == np.float32:
        return f"__int_as_float(0x{struct.unpack('<I', x.tobytes())[0]:08x})"
    if a.dtype == np.float64:
        return f"__longlong_as_double(0x{struct.unpack('<Q', x.tobytes())[0]:016x}LL)"
    if a.dtype == np.bool_:
        return "true" if bool(x) else "false"
    raise KeyError(f"literal of dtype {a.dtype}")


def _expr(p: str, a: list, t: str) -> str:
    """CUDA C for primitive ``p`` on operand expressions ``a``, result C type ``t``. NaN
    handling follows NumPy (maximum/minimum/relu propagate NaN; sign(NaN) is NaN)."""
    if p in ("add", "sub", "mul", "div"):
        return f"({a[0]} {dict(add='+', sub='-', mul='*', div='/')[p]} {a[1]})"
    if p in ("eq", "ne", "lt", "le", "gt", "ge"):
        op = dict(eq="==", ne="!=", lt="<", le="<=", gt=">", ge=">=")[p]
        return f"({a[0]} {op} {a[1]})"
    if t == "bool":
        if p == "maximum":
            return f"({a[0]} || {a[1]})"
        if p == "minimum":
            return f"({a[0]} && {a[1]})"
        if p == "select":
            return f"({a[0]} ? {a[1]} : {a[2]})"
        raise KeyError(p)
    if p == "maximum":
        return f"(({a[0]} > {a[1]} || isnan({a[0]})) ? {a[0]} : {a[1]})"
    if p == "minimum":
        return f"(({a[0]} < {a[1]} || isnan({a[0]})) ? {a[0]} : {a[1]})"
    if p == "relu":
        return f"(({a[0]} > ({t})0 || isnan({a[0]})) ? {a[0]} : ({t})0)"
    if p == "neg":
        return f"(-{a[0]})"
    if p == "pow":
        return f"pow({a[0]}, {a[1]})"
    if p in ("sqrt", "floor", "ceil", "trunc"):
        return f"{p}({a[0]})"
    if p == "abs":
        return f"fabs({a[0]})"
    if p == "sign":
        return f"(isnan({a[0]}) ? {a[0]} : ({t})(({a[0]} > ({t})0) - ({a[0]} < ({t})0)))"
    if p == "select":
        return f"({a[0]} ? {a[1]} : {a[2]})"
    if p == "convert_element_type":
        return f"(({t})({a[0]}))"
    raise KeyError(p)


def kernel_source(g: Graph, inplace: dict | None = None) -> tuple:
    """``(in_params, out_params, body, name)`` of a ``cupy.ElementwiseKernel`` computing
    sub-graph ``g``. Broadcasting is CuPy's; output k in ``inplace`` is written over input
    ``inplace[k]``, which then becomes an output parameter (read, then written, by the
    thread that owns the element). Raises KeyError for anything it cannot express."""
    inplace = inplace or {}
    targets = sorted(set(inplace.values()))
    names = {}
    ins, outs = [], []
    for i, v in enumerate(g.inputs):
        names[id(v)] = f"x{i}"
        decl = f"{v.dtype.name} x{i}"
        (outs if i in targets else ins).append(decl)
    body = []

    def ref(v):
        return _literal(v) if isinstance(v, Literal) else names[id(v)]
    for j, e in enumerate(g.eqns):
        o = e.outputs[0]
        t = _CTYPES[o.dtype.name]
        names[id(o)] = f"v{j}"
        body.append(f"const {t} v{j} = {_expr(e.prim.name, [ref(v) for v in e.inputs], t)};")
    decl_out = []
    for k, v in enumerate(g.outputs):
        if k in inplace:
            body.append(f"x{inplace[k]} = {ref(v)};")
        else:
            decl_out.append(f"{v.dtype.name} o{k}")
            body.append(f"o{k} = {ref(v)};")
    for v in list(g.inputs) + list(g.outputs):
        if v.dtype.name not in _CTYPES:
            raise KeyError(v.dtype.name)
    in_params, out_params = ", ".join(ins), ", ".join(decl_out + outs)
    text = "\n".join(body)
    name = "taiji_fused_" + hashlib.sha1(
        (in_params + "|" + out_params + "|" + text).encode()).hexdigest()[:12]
    return in_params, out_params, text, name


def _elementwise_kernel(cupy, in_params, out_params, body, name):
    key = (in_params, out_params, body)
    k = _kernels.get(key)
    if k is None:
        # --fmad=false: no a*b+c contraction, so a fused region rounds like separate ops
        k = _kernels[key] = cupy.ElementwiseKernel(in_params, out_params, body, name,
                                                   options=("--fmad=false",))
    return k


# ---------------------------------------------------------------- running a program

class CaptureError(RuntimeError):
    """A program could not be captured as a CUDA graph (it then runs op by op)."""


class DeviceProgram:
    """A compiled program on a device: called with the payloads of (arguments, captured
    tensors), returns its outputs, as a CPU program does.

    ``mode`` is 'graph' (run op by op on the first call, captured on the second, replayed
    after), or 'plain' (each op launched from Python) where capture is off, unsupported by
    the backend, or failed."""

    def __init__(self, fn, res, n_args: int, backend):
        self.fn = fn
        self.backend = backend
        self.n_args = n_args
        self.n_inputs = n_args + len(res.captures)
        n_user = res.n_user_outputs
        # output index -> input index whose storage holds that state's value
        self.state_of = {n_user + k: n_args + i for k, i in enumerate(res.mutated)}
        self.capturer, self.fallback_reason = None, None
        if not config.graphs:
            self.fallback_reason = "CUDA graphs are off (taiji.compiler.cuda.config.graphs)"
        else:
            try:
                self.capturer = _capturer(backend)
            except Exception as e:  # noqa: BLE001 - no stream or pool: plain launches
                self.fallback_reason = f"no capture stream ({type(e).__name__}: {e})"
            if self.capturer is None and self.fallback_reason is None:
                self.fallback_reason = f"the {backend.name} backend cannot capture graphs"
        self.mode = "graph" if self.capturer is not None else "plain"
        self.static = None      # graph mode: the input buffers the graph reads
        self.graph_outs = None  # graph mode: the output arrays the graph writes
        # graph mode: (block, [(output k, byte offset, shape, dtype)]): the graph copies its
        # outputs other than state into one block, which each call copies out at once
        self.staging = None
        self.copy_each: list = []
        self.replay = None
        self.host_inputs: set = set()
        self.calls = 0

    def __call__(self, *payloads):
        self.calls += 1
        arrays = self._on_device(payloads)
        if self.mode == "plain" or self.calls == 1:
            # (graph mode too on the first call: a program called once, such as a training
            # step's first variant, before any .grad exists, is never worth capturing)
            return self._deliver(list(self.fn(*arrays)), arrays, payloads, copy_out=False)
        if self.replay is None:
            return self._capture(arrays, payloads)
        static = self.static
        for i, a in enumerate(arrays):
            if a is not static[i]:  # a new batch, or state rebound since the last call
                self.backend.copyto(static[i], a)
        self.replay()
        outs = list(self.graph_outs)
        if self.staging is not None:  # the graph's own outputs: one copy hands them out
            block, where = self.staging
            block = block.copy()
            view = self.backend.view_bytes
            for k, off, shape, dtype in where:
                outs[k] = view(block, off, shape, dtype)
        for k in self.copy_each:  # (outputs that are not device arrays: host constants)
            outs[k] = outs[k].copy()
        return self._deliver(outs, static, payloads, copy_out=False)

    def _on_device(self, payloads):
        """The payloads as device arrays (host ones, such as a CPU generator's key that
        the program reads, are copied over: a one-time note says what that costs)."""
        arrays = list(payloads)
        be = self.backend
        for i, p in enumerate(payloads):
            if type(p) is np.ndarray:
                if i not in self.host_inputs:
                    self.host_inputs.add(i)
                    log_compile(f"device program: input {i} ({p.dtype}{list(p.shape)}) lives "
                                f"on the CPU and is copied to {be.name} on every call"
                                + (" and back" if i in self.state_of.values() else "")
                                + "; create it on the device to avoid the transfers")
                arrays[i] = be.asarray(p)
        return arrays

    def _deliver(self, outs: list, arrays, payloads, copy_out: bool):
        """Outputs for the caller. Updated state is written into the state's own storage
        (so the next call, and a graph replay, read it there); outputs that the next call
        would overwrite (a graph's) are copied."""
        be = self.backend
        for k, j in self.state_of.items():
            new, home = outs[k], arrays[j]
            if type(payloads[j]) is np.ndarray:  # CPU-resident state: hand back host values
                outs[k] = be.to_host(new)
            elif new is not home:
                if _writable(home):
                    be.copyto(home, new)
                    outs[k] = home
                else:
                    outs[k] = new.copy()
        if copy_out:
            for k in range(len(outs)):
                if k not in self.state_of:
                    outs[k] = outs[k].copy()
        return tuple(outs)

    def _capture(self, arrays, payloads):
        """Second call in graph mode: run once on the capture stream (the result of this
        call; libraries such as cuBLAS set themselves up for that stream), then capture the
        program as a graph for the calls after it."""
        be = self.backend
        static = []
        for i, a in enumerate(arrays):
            adopt = i >= self.n_args and type(payloads[i]) is not np.ndarray and _writable(a)
            if adopt:
                static.append(a)  # state: the graph reads and writes it in place
            else:
                b = be.xp.empty(a.shape, dtype=a.dtype)
                be.copyto(b, a)
                static.append(b)
        cap = self.capturer
        first = list(cap.warmup(self.fn, static))
        adopted = {k: j for k, j in self.state_of.items() if static[j] is arrays[j]
                   and type(payloads[j]) is not np.ndarray and _writable(static[j])}
        staged = [k for k in range(len(first)) if k not in self.state_of and be.owns(first[k])]
        self.copy_each = [k for k in range(len(first))
                          if k not in self.state_of and k not in staged]
        layout, size = [], 0
        for k in staged:
            a = first[k]
            layout.append((k, size, a.shape, a.dtype))
            size += -(-max(a.nbytes, 1) // 256) * 256  # (256-byte aligned views)
        block = be.xp.empty(size, dtype=np.uint8) if staged else None
        fn = self.fn

        def step(*args):
            # (captured with the program: state written back in place, the other outputs
            # copied into the staging block, so a replay leaves nothing to do in Python
            # but one copy of that block)
            outs = list(fn(*args))
            for k, j in adopted.items():
                if outs[k] is not args[j]:
                    be.copyto(args[j], outs[k])
                    outs[k] = args[j]
            for k, off, shape, dtype in layout:
                be.copyto(be.view_bytes(block, off, shape, dtype), outs[k])
            return outs
        try:
            self.graph_outs, self.replay = cap.capture(step, static)
            self.static = static
            self.staging = (block, layout) if staged else None
        except Exception as e:  # noqa: BLE001 - any capture failure: plain launches
            self.mode = "plain"
            self.fallback_reason = f"{type(e).__name__}: {e}"
            log_compile(f"device program: CUDA graph capture failed, running op by op "
                        f"instead ({self.fallback_reason})")
        return self._deliver(first, static, payloads, copy_out=self.mode == "graph")


def _writable(a) -> bool:
    """Can the program write into array ``a`` (contiguous: never a stride-0 broadcast)?"""
    f = a.flags
    return bool(f.c_contiguous and getattr(f, "writeable", True))


def _capturer(backend):
    """The backend's graph capturer, or None when it has none."""
    make = getattr(backend, "graph_capturer", None)
    if make is not None:
        return make()
    cupy = getattr(backend, "cupy", None)
    if cupy is not None:
        return CupyCapturer(cupy)
    return None


class CupyCapturer:
    """CUDA graphs through CuPy stream capture.

    Warm-up and capture run on a private non-blocking stream with a private memory pool:
    the memory the graph's kernels write (intermediates, outputs) then belongs to this
    graph alone and is never handed to other code while the graph lives (PyTorch does the
    same). Replays run on the current stream, so they are ordered with the work queued on
    it before and after."""

    def __init__(self, cupy):
        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.pool = cupy.cuda.MemoryPool()
        self.graph = None

    def _enter(self):
        cur = self.cupy.cuda.get_current_stream()
        self.stream.wait_event(cur.record())
        return cur

    def warmup(self, fn, args):
        cp = self.cupy
        cur = self._enter()
        with cp.cuda.using_allocator(self.pool.malloc), self.stream:
            outs = fn(*args)
        cur.wait_event(self.stream.record())
        return outs

    def capture(self, fn, args):
        cp = self.cupy
        cur = self._enter()
        s = self.stream
        with cp.cuda.using_allocator(self.pool.malloc), s:
            s.begin_capture()
            try:
                outs = fn(*args)
            except BaseException:
                try:
                    s.end_capture()
                except Exception:  # noqa: BLE001 - the capture is broken either way
                    pass
                self.stream = cp.cuda.Stream(non_blocking=True)  # a fresh, uncaptured one
                raise
            graph = s.end_capture()
        try:  # instantiate now rather than on the first replay (an optimisation only)
            graph.upload(s)
        except Exception:  # noqa: BLE001 - older CuPy: the first launch instantiates
            pass
        cur.wait_event(s.record())
        self.graph = graph

        def replay():
            # (on the caller's stream: ordered after its queued work and before what it
            # queues next, with no events; the graph's memory is the private pool's)
            graph.launch(cp.cuda.get_current_stream())
        return list(outs), replay
