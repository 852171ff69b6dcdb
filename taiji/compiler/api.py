"""``taiji.jit``: compile a function (pure, or PyTorch-style with implicit state) into one
static graph per signature."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from taiji import _dtypes as dt
from taiji._core.interpreters import MODULE_EPOCH, STATE
from taiji._core.ir import Graph, eval_graph
from taiji.compiler import blas, environment, layout, native, passes as P
from taiji.compiler.cache import LRU, config, describe_change, log_compile
from taiji.compiler.codegen import compile_graph
from taiji.compiler.fusion import absorb_column_sums, fuse_elementwise
from taiji.compiler.cuda import compile_program as compile_device, program_backend
from taiji.backends import ARRAY_TYPES
from taiji.compiler.trace import TraceResult, trace


@dataclass
class Compiled:
    """One compiled program and what it needs to run."""
    result: TraceResult
    graph: Graph
    fn: Callable
    source: str
    compile_seconds: float
    native: Any = None  # its native build (taiji/compiler/native.py), when it may have one


class Lowered:
    """What ``f.lower(*args)`` returns: the graph, the generated source, a cost estimate."""

    def __init__(self, compiled: Compiled):
        self._c = compiled

    @property
    def graph(self) -> Graph:
        return self._c.graph

    def as_text(self, optimized: bool = True) -> str:
        """The graph as Python with shape comments (``optimized=False``: as traced)."""
        return str(self._c.graph if optimized else self._c.result.graph)

    @property
    def source(self) -> str:
        """The generated Python source (the program's first runs use it)."""
        return self._c.source

    @property
    def native_source(self) -> str | None:
        """The program's native build (taiji/compiler/native.py) once it is compiled: Python
        that calls one numba function per run of equations; None before, or without one."""
        n = self._c.native
        return None if n is None else n.source

    def cost_analysis(self) -> dict:
        """Estimated flops and bytes moved by one run."""
        return cost_analysis(self._c.graph)

    def compile(self) -> Callable:
        return self._c.fn


def cost_analysis(g: Graph) -> dict:
    flops = 0
    nbytes = 0
    for e in g.eqns:
        outs = e.outputs
        n_out = sum(int(np.prod(o.shape)) for o in outs)
        if e.prim.name == "matmul":
            a, b = e.inputs
            k = a.shape[-1]
            flops += 2 * n_out * k
        elif e.prim.name in ("reshape", "transpose", "broadcast_to", "slice"):
            pass
        else:
            flops += n_out
        for v in list(e.inputs) + list(outs):
            nbytes += int(np.prod(v.shape)) * v.dtype.itemsize
    return {"flops": float(flops), "bytes accessed": float(nbytes), "equations": len(g.eqns)}


def _static_key(v, what):
    from taiji._ops import Tensor
    if isinstance(v, (Tensor, np.ndarray)):
        raise TypeError(f"jit: {what} is a {type(v).__name__}, but static arguments must be "
                        f"hashable Python values baked into the program; tensors are traced: "
                        f"remove it from static_argnums/static_argnames")
    try:
        hash(v)
    except TypeError:
        raise TypeError(f"jit: {what} must be hashable to be static, got "
                        f"{type(v).__name__}; pass a tuple instead of a list, or make it a "
                        f"traced tensor") from None
    return (type(v).__name__, v)


class JitFunction:
    """A function compiled by ``taiji.jit``; call it like the original."""

    def __init__(self, fn: Callable, static_argnums=(), static_argnames=(), donate_argnums=()):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else \
            tuple(static_argnums)
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else \
            tuple(static_argnames)
        self.donate_argnums = donate_argnums
        self._cache = LRU(config.cache_size)
        self._flat_treedefs: dict = {}
        self._last_key = None
        self._epoch = MODULE_EPOCH[0]
        self._reason: str | None = None  # why the next compile happens, when not the key
        self._hot = None  # the last plain call f(tensor, ...): its argument spec and program
        # the tensors, modules, optimizers and functions the function's globals and closure
        # held when it was traced: rebinding one drops the programs (compiler/environment.py)
        self._env: tuple | None = None
        self.compile_log: list[tuple[str, float]] = []

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    # ------------------------------------------------------------ signatures
    def _split(self, args, kwargs):
        """(key, tensors, rebuild) for a call: tensors are the traced leaves."""
        from taiji import _tree
        from taiji._ops import Tensor
        if not _TENSOR:
            _TENSOR.append(Tensor)
        spec = None if kwargs or self.static_argnums or self.static_argnames else \
            _plain_spec(args)
        if spec is not None:
            # the common call, f(tensor, ...): the same key as the general path, built
            # without flattening (a training loop makes this call every step)
            treedef = self._flat_treedefs.get(len(args))
            if treedef is None:
                treedef = self._flat_treedefs[len(args)] = _tree.tree_flatten(
                    (list(args), {}))[1]
            ac = STATE.autocast
            key = (treedef, spec, (),
                   STATE.grad_enabled if ac is None else (STATE.grad_enabled, ac.key))
            return key, list(args), _flat_rebuild
        static = []
        dyn_args = []
        name = getattr(self.fn, "__name__", "f")
        for i in self.static_argnums:
            if i >= len(args) or i < -len(args):
                raise TypeError(f"jit({name}): static_argnums includes {i}, but {name} was "
                                f"called with {len(args)} positional argument(s); pass that "
                                f"argument positionally or fix static_argnums")
        for i, a in enumerate(args):
            if i in self.static_argnums:
                static.append((i, _static_key(a, f"static argument {i}")))
                dyn_args.append(None)
            else:
                dyn_args.append(a)
        dyn_kwargs = {}
        for k, v in kwargs.items():
            if k in self.static_argnames:
                static.append((k, _static_key(v, f"static argument '{k}'")))
            else:
                dyn_kwargs[k] = v
        leaves, treedef = _tree.tree_flatten((dyn_args, dyn_kwargs))
        tensors, spec, slots = [], [], []
        for leaf in leaves:
            if isinstance(leaf, np.ndarray):
                from taiji._creation import from_numpy
                leaf = from_numpy(leaf)
            elif isinstance(leaf, float):
                from taiji._ops import scalar
                leaf = scalar(leaf, dt.get_default_dtype())
            if isinstance(leaf, Tensor):
                p = leaf._data
                if not hasattr(p, "__array__") and hasattr(p, "concrete_error"):
                    raise RuntimeError("jit: a traced tensor was passed in from outside")
                tensors.append(leaf)
                spec.append(("T", tuple(leaf.shape), leaf.dtype, leaf._requires_grad,
                             type(leaf._data)))
                slots.append(None)
            else:
                spec.append(("S", _static_key(leaf, "a non-tensor argument")))
                slots.append(leaf)
        ac = STATE.autocast  # taiji.amp: a region's policy changes the traced graph
        key = (treedef, tuple(spec), tuple(static),
               STATE.grad_enabled if ac is None else (STATE.grad_enabled, ac.key))

        def rebuild(traced):
            it = iter(traced)
            filled = [next(it) if s is None else s for s in slots]
            a, kw = _tree.tree_unflatten(treedef, filled)
            a = [args[i] if i in self.static_argnums else x for i, x in enumerate(a)]
            kw = dict(kw)
            for k in self.static_argnames:
                if k in kwargs:
                    kw[k] = kwargs[k]
            return a, kw
        return key, tensors, rebuild

    # ------------------------------------------------------------ compile / run
    def _compile(self, key, tensors, rebuild) -> Compiled:
        t0 = time.perf_counter()
        res = trace(self.fn, tensors, rebuild)
        g = P.optimize(res.graph)
        be = program_backend(res, tensors)  # a device (CUDA) program: taiji/compiler/cuda.py
        n_user = res.n_user_outputs
        state = frozenset(range(n_user, n_user + len(res.mutated)))
        n_args = len(tensors)
        inplace = {n_user + k: n_args + i for k, i in enumerate(res.mutated)}
        if be is None:  # F-order inputs (Parameter(w.t())): computed on their transposes
            arrays = [t._data for t in tensors] + [c.payload for c in res.captures]
            g = layout.apply(g, [layout.transposed(a) for a in arrays], inplace)
        # (a region asks for its CPU kernel at its first run: device programs never run one)
        g = absorb_column_sums(fuse_elementwise(g))
        g = P.plan_memory(g, state, inplace, over_dying=be is None)
        fn, src = compile_graph(g, g.plan) if be is None else compile_device(g, res, n_args, be)
        dt_ = time.perf_counter() - t0
        reason = self._reason or (describe_change(self._last_key, key) if key is not None else
                                  "captured state changed (a captured tensor's shape or "
                                  ".grad presence)")
        self._reason = None
        self.compile_log.append((reason, dt_))
        log_compile(f"compiled {getattr(self.fn, '__qualname__', self.fn)} in "
                    f"{dt_ * 1e3:.1f} ms ({len(g.eqns)} equations); reason: {reason}")
        entry = Compiled(res, g, fn, src, dt_)
        if be is None:
            native.attach(entry)  # one numba call per run of equations, from the 2nd run
            if entry.native is None:  # (a native build chooses its threads itself)
                entry.fn = blas.with_threads(g, entry.fn)
        return entry

    def _lookup(self, args, kwargs):
        """The compiled variant for this call: the key covers the arguments; each key keeps
        variants for different states of the captured tensors (shapes, .grad presence)."""
        if MODULE_EPOCH[0] != self._epoch:
            # a module's parameter / buffer / submodule was replaced since these programs
            # were traced: they captured the old tensors (PyTorch users do model.fc = ...)
            self._epoch = MODULE_EPOCH[0]
            self._cache = LRU(config.cache_size)
            self._reason = "a module's parameter, buffer or submodule was replaced"
        if self._env:
            what = environment.rebound(self._env)
            if what is not None:  # the traces read the object that name held before
                self._cache = LRU(config.cache_size)
                self._env = None
                why = f"{what}, which the function reads, was rebound"
                self._reason = why if self._reason is None else f"{self._reason}; {why}"
        key, tensors, rebuild = self._split(args, kwargs)
        variants = self._cache.get(key)
        entry = None
        if variants is not None:
            entry = next((v for v in variants if _guards_hold(v.result)), None)
        if entry is None:
            if self._env is None:
                self._env = environment.snapshot(self.fn)
            entry = self._compile(key if variants is None else None, tensors, rebuild)
            if variants is None:
                variants = []
                self._cache.put(key, variants)
            variants.append(entry)
        self._last_key = key
        # a plain call remembers its key: the next one with an equal spec skips hashing it
        self._hot = (key, entry) if rebuild is _flat_rebuild and STATE.autocast is None \
            else None
        return entry, tensors

    def _hot_entry(self, args):
        """The last call's program when this call's key equals the last plain call's
        (compared, not hashed and looked up) and the program's guards hold."""
        key, entry = self._hot
        if STATE.autocast is not None or MODULE_EPOCH[0] != self._epoch or \
                key[3] != STATE.grad_enabled or _plain_spec(args) != key[1] or \
                (self._env and environment.rebound(self._env) is not None):
            return None
        return entry if _guards_hold(entry.result) else None

    def lower(self, *args, **kwargs) -> Lowered:
        """Trace and compile for these arguments without running; see ``Lowered``."""
        entry, _ = self._lookup(args, kwargs)
        return Lowered(entry)

    def __call__(self, *args, **kwargs):
        if STATE.interp is not None:  # inside another trace or transform: inline
            return self.fn(*args, **kwargs)
        entry = None
        if self._hot is not None and not kwargs:  # a training loop's call: the same as last
            entry = self._hot_entry(args)
            tensors = args
        if entry is None:
            entry, tensors = self._lookup(args, kwargs)
        res = entry.result
        if STATE.grad_enabled and res.outputs_need_grad and not res.saw_backward:
            return _run_differentiable(entry, tensors)
        for fn in res.prologue:
            fn()
        f = _fast(res)
        return f.finish(f.call(entry.fn, *tensors))


_TENSOR: list = []  # taiji's Tensor class, once imported (api loads before it)


def _plain_spec(args) -> tuple | None:
    """The key's argument part for a call of tensors only, else None."""
    T = _TENSOR[0]
    for a in args:
        if type(a) is not T or type(a._data) not in ARRAY_TYPES:
            return None
    # (the payload's type too: CPU and GPU programs differ)
    return tuple(("T", a._data.shape, a.dtype, a._requires_grad, type(a._data)) for a in args)


def _flat_rebuild(traced):
    return list(traced), {}


class _Fast:
    """What every run of one compiled program re-reads, gathered once (a training loop pays
    for guards and delivery on each step): the guard check and the gathering of the
    payloads as straight-line code, generated once."""

    __slots__ = ("guards", "mutated", "grads", "single", "check", "call", "finish")

    def __init__(self, res: TraceResult):
        from taiji import _tree
        caps = res.captures
        self.guards = tuple((c.tensor, c.var.aval.shape, np.dtype(c.var.aval.dtype.np),
                             type(c.payload), c.grad_seen, c.grad is None) for c in caps)
        self.mutated = tuple(caps[i].tensor for i in res.mutated)
        self.grads = tuple(res.grads)
        mark = object()  # does the user's output tree hold exactly one tensor, bare?
        self.single = res.out_static == [None] and \
            _tree.tree_unflatten(res.out_tree, [mark]) is mark
        self.check = self._gen_check()
        self.call = self._gen_call(res)
        self.finish = self._gen_finish(res)

    def _gen_call(self, res: TraceResult) -> Callable:
        """``call(program, *tensors)``: the program on the arguments' and the captured
        tensors' payloads (the tensors' current ``_data``, read at each call)."""
        ns: dict = {}
        n = len(res.graph.inputs) - len(res.captures)
        params = [f"a{i}" for i in range(n)]
        payloads = [f"a{i}._data" for i in range(n)]
        for k, c in enumerate(res.captures):
            ns[f"c{k}"] = c.tensor
            payloads.append(f"c{k}._data")
        src = (f"def call(fn{''.join(', ' + a for a in params)}):\n"
               f"    return fn({', '.join(payloads)})")
        exec(compile(src, "<taiji jit call>", "exec"), ns)  # noqa: S102 - our own source
        return ns["call"]

    def _gen_finish(self, res: TraceResult) -> Callable:
        """``finish(outs)``: ``_deliver`` with ``_as_payload`` and ``_write_array`` for this
        program, as straight-line code: a mutated tensor computed in place (the usual case)
        only has its version bumped."""
        ns: dict = {"_write": _write_array, "_wrap": _as_payload, "_nd": np.ndarray,
                    "_new": _TENSOR[0]._from_payload, "_res": res, "_user": _user_outputs}
        lines = ["def finish(outs):"]
        k = res.n_user_outputs
        for j, t in enumerate(self.mutated):
            ns[f"m{j}"] = t
            lines += [f"    n = outs[{k}]",
                      f"    if n is m{j}._data:",
                      f"        m{j}._version += 1",
                      "    else:",
                      f"        _write(m{j}, n)"]
            k += 1
        for j, (t, kind) in enumerate(self.grads):
            ns[f"g{j}"] = t
            if kind == "none":
                lines.append(f"    g{j}._grad = None")
                continue
            lines += [f"    n = outs[{k}]",
                      f"    g{j}._grad = _new(n) if type(n) is _nd else _wrap(n)"]
            k += 1
        lines.append("    return _wrap(outs[0])" if self.single else
                     "    return _user(_res, outs, _wrap)")
        exec(compile("\n".join(lines), "<taiji jit finish>", "exec"), ns)  # noqa: S102
        return ns["finish"]

    def _gen_check(self) -> Callable:
        """``check()``: whether the captured tensors still match the trace (payload type,
        shape, dtype; ``.grad`` presence where the function read it)."""
        ns: dict = {}
        lines = ["def check():"]
        for k, (t, shape, dtype, ptype, grad_seen, grad_none) in enumerate(self.guards):
            ns[f"t{k}"], ns[f"s{k}"], ns[f"d{k}"], ns[f"p{k}"] = t, shape, dtype, ptype
            lines.append(f"    a = t{k}._data")
            lines.append(f"    if type(a) is not p{k} or a.shape != s{k} or "
                         f"(a.dtype is not d{k} and a.dtype != d{k}):")
            lines.append("        return False")
            if grad_seen:
                lines.append(f"    if t{k}._grad is {'not ' if grad_none else ''}None:")
                lines.append("        return False")
        lines.append("    return True")
        exec(compile("\n".join(lines), "<taiji jit guards>", "exec"), ns)  # noqa: S102
        return ns["check"]


def _fast(res: TraceResult) -> _Fast:
    f = res.__dict__.get("_fast")
    if f is None:
        f = res._fast = _Fast(res)
    return f


def _guards_hold(res: TraceResult) -> bool:
    return _fast(res).check()


def _deliver(res: TraceResult, outs, wrap: Callable, write: Callable):
    """Hand a run's outputs back: ``write(tensor, value)`` each mutated captured tensor,
    set the ``.grad``s the function assigned, and rebuild the user's output pytree, with
    ``wrap`` turning a raw output into a Tensor."""
    f = _fast(res)
    k = res.n_user_outputs
    for t in f.mutated:
        write(t, outs[k])
        k += 1
    for t, kind in f.grads:
        if kind == "none":
            t._grad = None
        else:
            t._grad = wrap(outs[k])
            k += 1
    if f.single:
        return wrap(outs[0])
    return _user_outputs(res, outs, wrap)


def _user_outputs(res: TraceResult, outs, wrap: Callable):
    """The user's output pytree from a run's raw outputs."""
    from taiji import _tree
    it = iter(outs[:res.n_user_outputs])
    leaves = [wrap(next(it)) if s is None else s for s in res.out_static]
    return _tree.tree_unflatten(res.out_tree, leaves)


def _write_array(t, new) -> None:
    """Store a compiled program's new value of captured tensor ``t`` (in place, so views
    and references to its storage see it, as after a PyTorch in-place update)."""
    old = t._data
    if new is old:
        pass  # computed in place
    elif _view_of_itself(new, old):
        pass  # computed in place through a view of its storage (compiler/layout.py)
    elif isinstance(new, np.generic) and type(old) is np.ndarray and old.shape == () and \
            old.flags.writeable:
        old[()] = new  # a 0-d result (a step count): 10x cheaper than copyto
    elif type(old) is np.ndarray and old.flags.writeable and old.shape == new.shape:
        np.copyto(old, new)
    else:
        t._data = np.asarray(new) if isinstance(new, np.generic) else new
    t._version += 1


def _view_of_itself(new, old) -> bool:
    """Is ``new`` a view of exactly ``old``'s elements, laid out alike? (A base check
    first: outputs in fresh memory leave at once.)"""
    b = getattr(new, "base", None)
    return (b is not None and (b is old or b is getattr(old, "base", None))
            and type(new) is np.ndarray and new.shape == old.shape
            and new.strides == old.strides and new.dtype == old.dtype
            and new.__array_interface__["data"][0] == old.__array_interface__["data"][0])


def _as_payload(a):
    """A tensor payload from a compiled output: NumPy scalars (0-d arithmetic returns them)
    become 0-d arrays, so the tensor is mutable and takes the ndarray fast paths."""
    from taiji._ops import Tensor
    return Tensor._from_payload(np.asarray(a) if isinstance(a, np.generic) else a)


def _run_differentiable(entry: Compiled, tensors):
    """Evaluate the graph op by op with autograd recording, so the outputs carry history
    (``grad(jit(f))``, or ``jit(f)(x).backward()`` outside)."""
    res = entry.result
    outs = eval_graph(entry.graph, [*tensors, *[c.tensor for c in res.captures]])
    return _deliver(res, outs, lambda t: t, lambda t, new: t._assign(new))


def jit(fn: Callable | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (), donate_argnums=()) -> Any:
    """Compile ``fn`` into one static graph per signature (JAX's ``jax.jit``).

    The function may be pure (JAX style) or PyTorch style: tensors it reads from closures
    (parameters, optimizer state, the global RNG) become implicit inputs and the ones it
    mutates (``opt.step()``, ``loss.backward()`` filling ``.grad``) are written back after
    each call.

    Args:
        fn: the function to compile.
        static_argnums / static_argnames: arguments that are Python values baked into the
            program (each distinct value compiles once); they must be hashable.
        donate_argnums: accepted for JAX compatibility.

    Returns:
        A callable ``JitFunction`` with ``.lower(*args)`` for inspection.

    Example:
        >>> @taiji.jit
        ... def f(x):
        ...     return (x * 2).sum()
        >>> f(taiji.ones(3))
        tensor(6.)
    """
    if fn is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames, donate_argnums=donate_argnums)
    return JitFunction(fn, static_argnums, static_argnames, donate_argnums)
