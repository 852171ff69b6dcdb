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
from taiji.backends import _BY_TYPE  # exact array type -> backend (device arrays' xp)

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


def _one_device(arrays):
    """``(xp, arrays)`` for an eager call whose first array is not NumPy's. CPU 0-d arrays
    (constants made from Python scalars) join a device's arrays, as CPU scalar tensors join
    CUDA tensors in PyTorch; any other mix of devices is an error naming two of them."""
    t0 = type(arrays[0])
    be = _BY_TYPE.get(t0)
    if be is None:
        from taiji.backends import backend_of_array
        be = backend_of_array(arrays[0])
    for a in arrays:
        if type(a) is not t0:
            return _unify(arrays)
    return be.xp, arrays


def _unify(arrays):
    from taiji.backends import backend_of_array
    bes = [backend_of_array(a) for a in arrays]
    names = []
    for be, a in zip(bes, arrays):
        n = be.device_name(a)
        if n not in names:
            names.append(n)
    if len(names) == 1:
        return bes[0].xp, arrays
    devs = [n for n in names if n != "cpu"]
    if len(devs) == 1 and all(be.name != "cpu" or a.ndim == 0 for be, a in zip(bes, arrays)):
        target = next(be for be in bes if be.name != "cpu")
        return target.xp, [target.asarray(a) if be.name == "cpu" else a
                           for be, a in zip(bes, arrays)]
    first, second = (devs + ["cpu"])[:2]
    raise _MixedDevices(f"Expected all tensors to be on the same device, but found at least "
                        f"two devices, {first} and {second}! Move them to one device with "
                        f".to(device) first")


class _MixedDevices(RuntimeError):
    """Operands of one eager call live on different devices."""


def _explain(prim: Primitive, args, params, err: Exception):
    """Turn a backend failure into the primitive's own error message (shape rule), or
    prefix the backend's message with the op name. Operands on different devices are the
    one failure that may recover: CPU scalars then join the device's arrays (the result is
    returned); any other mix raises the same-device error."""
    for a in args:
        p = a._data
        if type(p) is not np.ndarray and hasattr(p, "escaped_error"):
            p.escaped_error()  # a tracer used after its trace ended
    arrays = [a._data for a in args]
    if isinstance(err, _MixedDevices):
        raise RuntimeError(f"{prim.name}: {err}") from None
    if any(type(a) is not np.ndarray for a in arrays):
        try:
            xp, moved = _unify(arrays)
        except _MixedDevices as e:
            raise RuntimeError(f"{prim.name}: {e}") from None
        except TypeError:
            moved = None
        if moved is not None and any(m is not a for m, a in zip(moved, arrays)):
            try:
                return prim.impl(xp, *moved, **params)
            except (ValueError, TypeError, IndexError, RuntimeError, AttributeError) as e:
                err = e
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
            if not arrays or type(arrays[0]) is np.ndarray:
                # NumPy first (the hot path: no device checks); a device array among the
                # rest fails inside impl, as CuPy's refuse host arrays, and _explain sorts
                # it out
                out = prim.impl(np, *arrays, **params)
            else:
                xp, arrays = _one_device(arrays)
                out = prim.impl(xp, *arrays, **params)
        except (ValueError, TypeError, IndexError, RuntimeError, AttributeError) as e:
            out = _explain(prim, args, params, e)
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
