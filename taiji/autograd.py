"""Reverse-mode autograd over the eager tape: backward(), grad(), grad modes, hooks.

`backward` walks recorded nodes in reverse topological order and binds each primitive's VJP
rule. The rules are written in primitives, so with ``create_graph=True`` the backward pass is
itself recorded and can be differentiated again (double backward). Under ``jit`` the same walk
binds into the trace, which is how ``loss.backward()`` compiles into one graph.
"""
from __future__ import annotations

import contextlib
import functools
import heapq
import itertools

import numpy as np

from taiji import _ops as O
from taiji._core.interpreters import STATE
from taiji._core.tape import _grad_fn_name

__all__ = ["backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "inference_mode"]


class _GradMode:
    """Base for grad-mode switches usable as context managers and decorators."""

    mode: bool = True

    def __enter__(self):
        self._prev = STATE.grad_enabled
        STATE.grad_enabled = self.mode

    def __exit__(self, *exc):
        STATE.grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__() if type(self) is not set_grad_enabled else \
                    set_grad_enabled(self.mode):
                return fn(*args, **kwargs)
        return wrapper


class _NoParamGradMode(_GradMode):
    """A grad mode usable as ``with m():``, ``@m()`` and bare ``@m`` (as PyTorch's)."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}() takes no arguments (got {orig_func!r})")
        return cls()(orig_func)


class no_grad(_NoParamGradMode):
    """Operations inside do not record for autograd (context manager or decorator)."""
    mode = False


class enable_grad(_NoParamGradMode):
    """Re-enable recording inside a no_grad region."""
    mode = True


class inference_mode(_GradMode):
    """Like no_grad (taiji has no separate inference tensors)."""
    mode = False

    def __init__(self, mode: bool = True):
        self.mode = not mode


class set_grad_enabled(_GradMode):
    """Set grad mode to ``mode``: takes effect at once, and as a context manager restores
    the previous mode on exit."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = STATE.grad_enabled
        STATE.grad_enabled = self.mode

    def __enter__(self):
        pass

    def __call__(self, fn):
        # used as a decorator: the mode applies inside ``fn`` only, so undo the immediate
        # switch made by __init__ (PyTorch's set_grad_enabled does the same)
        STATE.grad_enabled = self._prev
        return super().__call__(fn)


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


# ---------------------------------------------------------------- hooks

class _Handle:
    _ids = itertools.count()

    def __init__(self, store: dict, key):
        self.store, self.key = store, key

    def remove(self):
        self.store.pop(self.key, None)


def _add_hook(t, hook):
    node = t._node
    if node is None:
        if t._hooks is None:
            t._hooks = {}
        store = t._hooks
    else:
        if node.hooks is None:
            node.hooks = {}
        store = node.hooks.setdefault(t._out_idx, {})
    key = next(_Handle._ids)
    store[key] = hook
    return _Handle(store, key)


def _retain(t):
    import weakref
    node = t._node
    if node.retained is None:
        node.retained = {}
    node.retained[t._out_idx] = weakref.ref(t)
    t._retains_grad = True


def _run_hooks(hooks, g):
    for h in list(hooks.values()):
        r = h(g)
        if r is not None:
            g = r
    return g


_POST_BACKWARD: list = []  # callbacks queued during a backward(), run when it ends


def queue_callback(fn) -> None:
    """Run ``fn()`` once the current ``backward()`` has written every ``.grad`` (PyTorch's
    ``Variable._execution_engine.queue_callback``; DistributedDataParallel uses it from its
    gradient hooks to finish the gradient all-reduce)."""
    _POST_BACKWARD.append(fn)


# ---------------------------------------------------------------- the engine

def _make_seed(t, g):
    if g is None:
        if t.numel() != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got "
                               f"shape {list(t.shape)}: pass gradient= (a tensor of that shape)")
        return t.ones_like()
    g = g if isinstance(g, O.Tensor) else O.as_tensor_arg(g, t.dtype)
    if g.shape != t.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output has a shape of {list(g.shape)} and "
                           f"output has a shape of {list(t.shape)}")
    return O.to(g, t.dtype)


def _freed_error():
    return RuntimeError(
        "Trying to backward through the graph a second time (or directly access saved "
        "tensors after they have already been freed). Saved intermediate values of the graph "
        "are freed when you call .backward() or autograd.grad(). Specify retain_graph=True "
        "if you need to backward through the graph a second time.")


def _version_error(node, t, v):
    code, line = node.where
    f = code.co_filename if code is not None else "<unknown>"
    raise RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: [taiji.{t.dtype.name} {list(t.shape)}] is at version "
        f"{t._version}; expected version {v} instead. It was saved by "
        f"{node.name()} (the '{node.prim.name}' created at {f}:{line}). Avoid the "
        f"in-place change (use an out-of-place op, or .clone() the tensor first).")


def _outputs_of(node):
    """The node's outputs as Tensors wired back to it (for rules that use the output)."""
    make = O.Tensor._from_payload
    if node.n_out == 1:
        t = make(node.out_payloads[0], True)
        t._node = node
        return [t]
    outs = []
    for i, p in enumerate(node.out_payloads):
        t = make(p)
        if t.dtype.is_floating_point:
            t._requires_grad, t._node, t._out_idx = True, node, i
        outs.append(t)
    return outs


def _engine(roots, seeds, retain_graph, create_graph, capture=None):
    """Propagate ``seeds`` from ``roots``. Leaf gradients accumulate into ``.grad`` unless
    ``capture`` (a dict keyed by leaf id or (node id, output index)) collects them."""
    buffers = {}     # id(node) -> list of cotangents per output
    leaf_grads = {}  # id(leaf) -> [leaf, grad]
    for i, r in enumerate(roots):
        if not r._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                               f"have a grad_fn")
    # Nodes are numbered as they are recorded, and every consumer of a node's outputs was
    # recorded after it: popping the highest number first visits each node after all of its
    # consumers (PyTorch's ready queue), with no separate topological sort.
    heap, queued = [], set()
    push, pop = heapq.heappush, heapq.heappop
    for r, g in zip(roots, seeds):
        n = r._node
        if n is None:
            _send_leaf(leaf_grads, r, g)
            continue
        if n.freed:
            raise _freed_error()
        buf = buffers.get(id(n))
        if buf is None:
            buf = buffers[id(n)] = [None] * n.n_out
        i = r._out_idx
        buf[i] = g if buf[i] is None else buf[i] + g
        if id(n) not in queued:
            queued.add(id(n))
            push(heap, (-n.seq, n))
    interp = STATE.interp
    if interp is not None and hasattr(interp, "saw_backward"):
        interp.saw_backward = True  # a jit trace: its outputs need no history
    prev = STATE.grad_enabled
    STATE.grad_enabled = bool(create_graph)
    make = O.Tensor._from_payload
    try:
        while heap:
            node = pop(heap)[1]
            cts = buffers.pop(id(node), None)
            if cts is None:
                continue
            if node.hooks:
                cts = [g if g is None or i not in node.hooks else _run_hooks(node.hooks[i], g)
                       for i, g in enumerate(cts)]
            if node.retained:
                for i, ref in node.retained.items():
                    t = ref()
                    if t is not None and cts[i] is not None:
                        t.grad = cts[i] if t.grad is None else t.grad + cts[i]
            if capture is not None:
                for i, g in enumerate(cts):
                    key = (id(node), i)
                    if key in capture and g is not None:
                        capture[key] = g
            prim = node.prim
            if prim.vjp_reads_inputs:
                for t, v in zip(node.inputs, node.versions):
                    if t._version != v:
                        _version_error(node, t, v)
            rule = prim.vjp
            if rule is None:
                raise RuntimeError(f"primitive '{prim.name}' has no vjp rule: cannot "
                                   f"differentiate through it")
            if node.n_out == 1 and not prim.multiple_results:
                out = make(node.out_payloads[0], True)
                out._node = node
                gins = rule(cts[0], node.inputs, out, **node.params)
            else:
                gins = rule(tuple(cts), node.inputs, tuple(_outputs_of(node)), **node.params)
            for edge, g in zip(node.edges, gins):
                if edge is None or g is None:
                    continue
                p, i = edge
                if i < 0:
                    _send_leaf(leaf_grads, p, g)
                    continue
                buf = buffers.get(id(p))
                if buf is None:
                    buf = buffers[id(p)] = [None] * p.n_out
                buf[i] = g if buf[i] is None else buf[i] + g
                if id(p) not in queued:
                    if p.freed:
                        raise _freed_error()
                    queued.add(id(p))
                    push(heap, (-p.seq, p))
            if not retain_graph:
                node.freed = True
                node.inputs = node.edges = ()
                node.out_payloads = []
    finally:
        STATE.grad_enabled = prev
    return leaf_grads


def _send_leaf(leaf_grads, t, g):
    slot = leaf_grads.get(id(t))
    if slot is None:
        leaf_grads[id(t)] = [t, g]
    else:
        slot[1] = slot[1] + g


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on.

    Args:
        tensors: a Tensor or sequence of Tensors to differentiate.
        grad_tensors: matching gradients (needed for non-scalar tensors).
        retain_graph: keep the graph for another backward (defaults to ``create_graph``).
        create_graph: record the backward pass so it can be differentiated again.
        inputs: accumulate only into these leaves.
    """
    if isinstance(tensors, O.Tensor):
        tensors = [tensors]
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, O.Tensor):
        grad_tensors = [grad_tensors]
    if retain_graph is None:
        retain_graph = create_graph
    seeds = [_make_seed(t, g) for t, g in zip(tensors, grad_tensors)]
    leaf_grads = _engine(list(tensors), seeds, retain_graph, create_graph)
    only = None if inputs is None else {id(t) for t in (
        [inputs] if isinstance(inputs, O.Tensor) else inputs)}
    owned = set()
    for key, (t, g) in leaf_grads.items():
        if only is not None and key not in only:
            continue
        if t._hooks:
            g = _run_hooks(t._hooks, g)
        if not create_graph:
            g = _own(g, owned)
        t.grad = g if t.grad is None else (t.grad + g if create_graph else _acc(t.grad, g))
    while _POST_BACKWARD:
        _POST_BACKWARD.pop(0)()


def _own(g, owned: set):
    """``g`` as a leaf's own gradient: without history, and with storage no other tensor
    shares (a cotangent passed through an add reaches two leaves; a broadcast one is a
    read-only view), so in-place work on one ``.grad`` (clipping, zero_) touches only it."""
    a = g._data
    if type(a) is np.ndarray and (a.base is not None or not a.flags.writeable or
                                  id(a) in owned):
        a = a.copy()
    owned.add(id(a))
    if a is g._data and not g._requires_grad:
        return g
    return O.Tensor._from_payload(a)


def _acc(old, g):
    with no_grad():
        return old + g


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` is left
    alone).

    Example:
        >>> x = taiji.tensor(3.0, requires_grad=True)
        >>> (dx,) = taiji.autograd.grad(x ** 3, x, create_graph=True)
        >>> taiji.autograd.grad(dx, x)[0]   # 6 * x
        tensor(18.)
    """
    if isinstance(outputs, O.Tensor):
        outputs = [outputs]
    single = isinstance(inputs, O.Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, O.Tensor):
        grad_outputs = [grad_outputs]
    if retain_graph is None:
        retain_graph = create_graph
    for i, t in enumerate(inputs):
        if not t._requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require "
                               f"grad")
    capture = {(id(t._node), t._out_idx): None for t in inputs if t._node is not None}
    seeds = [_make_seed(t, g) for t, g in zip(outputs, grad_outputs)]
    leaf_grads = _engine(list(outputs), seeds, retain_graph, create_graph, capture)
    res = []
    for i, t in enumerate(inputs):
        if t._node is None:
            g = leaf_grads.get(id(t), (None, None))[1]
            if g is not None and t._hooks:
                g = _run_hooks(t._hooks, g)
        else:
            g = capture.get((id(t._node), t._out_idx))
        if g is None:
            if materialize_grads:
                g = t.zeros_like()
            elif not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to "
                                   f"not have been used in the graph. Set allow_unused=True if "
                                   f"this is the desired behavior.")
        elif not create_graph:
            g = g.detach()
        res.append(g)
    return tuple(res)


def grad_fn_name(prim_name: str) -> str:
    """The ``grad_fn`` class name shown for tensors made by primitive ``prim_name``."""
    return _grad_fn_name(prim_name)


@contextlib.contextmanager
def detect_anomaly(check_nan: bool = True):
    """Accepted for PyTorch compatibility; taiji always records where each op was created."""
    yield
