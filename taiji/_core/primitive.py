"""`Primitive`: one operation with all of its rules in one place, and `bind()`.

A primitive carries
  impl(xp, *arrays, **params)            the computation over a backend's array module;
  shape_dtype(*avals, **params)          output ShapedArray(s), with the error for bad input;
  vjp(cts, ins, out, **params)           input cotangents, written with Tensor ops (so they
                                         are differentiable again: double backward);
  jvp(tangents, ins, out, **params)      output tangent(s), also written with Tensor ops;
  batch(ins, dims, **params)             (out, out_dim) for vmap.
Rules are registered with decorators next to the primitive's definition (see taiji/_prims).
A missing rule is an error naming the primitive, never a wrong answer.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from taiji._core.interpreters import STATE
from taiji._core import tape

Tensor: Any = None  # set by taiji.tensor (breaks the import cycle)

PRIMITIVES: dict[str, "Primitive"] = {}


class ShapedArray(NamedTuple):
    """What is known about a value without its contents: shape and dtype."""
    shape: tuple
    dtype: Any  # taiji DType

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def str_short(self) -> str:
        return f"{_SHORT.get(self.dtype.name, self.dtype.name)}[{','.join(map(str, self.shape))}]"


_SHORT = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16",
          "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8",
          "bool": "bool"}


class MissingRule(NotImplementedError):
    """A transform needs a rule the primitive does not have."""


class Primitive:
    """A named operation and its rules (see the module docstring)."""

    def __init__(self, name: str, *, multiple_results: bool = False, nondiff: bool = False,
                 vjp_reads_inputs: bool = True, effectful: bool = False):
        if name in PRIMITIVES:
            raise ValueError(f"primitive {name!r} is defined twice")
        self.name = name
        self.multiple_results = multiple_results
        self.nondiff = nondiff  # outputs never carry gradients (comparisons, argmax, ...)
        # False for linear ops whose VJP needs only shapes: an in-place change to their
        # inputs after the call is harmless, so backward does not complain about it
        self.vjp_reads_inputs = vjp_reads_inputs
        # True for ops with effects outside the graph (collectives talk to other processes):
        # the compiler never constant-folds them or merges two of them (see compiler.passes)
        self.effectful = effectful
        self.impl: Callable | None = None
        self.shape_dtype: Callable | None = None
        self.vjp: Callable | None = None
        self.jvp: Callable | None = None
        self.batch: Callable | None = None
        PRIMITIVES[name] = self

    # decorators that keep the rules beside the primitive
    def def_impl(self, fn):
        self.impl = fn
        return fn

    def def_shape(self, fn):
        self.shape_dtype = fn
        return fn

    def def_vjp(self, fn):
        self.vjp = fn
        return fn

    def def_jvp(self, fn):
        self.jvp = fn
        return fn

    def def_batch(self, fn):
        self.batch = fn
        return fn

    def rule(self, kind: str) -> Callable:
        """The ``kind`` rule ('vjp', 'jvp', 'batch', ...) or a MissingRule error."""
        fn = getattr(self, kind)
        if fn is None:
            raise MissingRule(f"primitive '{self.name}' has no {kind} rule; "
                              f"it cannot be used under this transform yet")
        return fn

    def abstract(self, *avals, **params):
        return self.rule("shape_dtype")(*avals, **params)

    def __repr__(self) -> str:
        return f"Primitive({self.name})"


def _xp(arrays):
    for a in arrays:
        if type(a) is np.ndarray:
            continue
        from taiji.backends import backend_of_array
        devs = {backend_of_array(x).name for x in arrays}
        if len(devs) > 1:
            raise RuntimeError(f"expected all tensors to be on the same device, "
                               f"got {', '.join(sorted(devs))}; move them with .to(device)")
        return backend_of_array(a).xp
    return np


def _explain(prim: Primitive, args, params, err: Exception):
    """Turn a backend failure into the primitive's own error message (shape rule), or
    prefix the backend's message with the op name."""
    for a in args:
        p = a._data
        if type(p) is not np.ndarray and hasattr(p, "escaped_error"):
            p.escaped_error()  # a tracer used after its trace ended
    try:
        _xp([a._data for a in args])
    except RuntimeError as e:  # mixed devices: say which op
        raise RuntimeError(f"{prim.name}: {e}") from None
    if prim.shape_dtype is not None:
        avals = [ShapedArray(a.shape, a.dtype) for a in args]
        prim.shape_dtype(*avals, **params)  # raises the informative error if shapes are bad
    try:
        new = type(err)(f"{prim.name}: {err}")
    except Exception:  # exception types whose constructor takes other arguments
        new = RuntimeError(f"{prim.name}: {err}")
    raise new from err


def bind(prim: Primitive, *args, **params):
    """Apply ``prim`` to Tensors ``args`` under the current interpreter; record it on the
    autograd tape when grad mode is on and an input requires grad."""
    st = STATE
    interp = st.interp
    if interp is None:  # eager fast path: concrete arrays straight into impl
        arrays = [a._data for a in args]
        try:
            # NumPy first; a mix of devices fails inside impl and _explain names them
            xp = np if not arrays or type(arrays[0]) is np.ndarray else _xp(arrays)
            out = prim.impl(xp, *arrays, **params)
        except (ValueError, TypeError, IndexError, RuntimeError, AttributeError) as e:
            _explain(prim, args, params, e)
    else:
        out = interp.process(prim, [interp.lift(a) for a in args], params)
    T = Tensor
    if prim.multiple_results:
        result = tuple(T._from_payload(o) for o in out)
    else:
        result = T._from_payload(out)
    if st.grad_enabled and not prim.nondiff:
        for a in args:
            if a._requires_grad:
                tape.record(prim, args, params, result)
                break
    return result


Primitive.__call__ = bind  # prim(*tensors, **params) binds it (no extra Python frame)
