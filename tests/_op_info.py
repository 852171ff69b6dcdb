"""OpInfo machinery for the op registry (tests/op_db.py): sample records, random inputs that
keep away from kinks and ties, and helpers that run one sample on taiji or torch."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


FLOATS = (np.float32, np.float64)


@dataclass
class SampleInput:
    args: tuple
    kwargs: dict = field(default_factory=dict)
    grad: bool = True        # away from kinks/ties: usable for gradient checks
    desc: str = ""

    def __repr__(self):
        def show(a):
            if isinstance(a, np.ndarray):
                return f"{a.dtype}{list(a.shape)}"
            if isinstance(a, (list, tuple)):
                return "[" + ",".join(show(b) for b in a) + "]"
            return repr(a)
        kw = ",".join(f"{k}={show(v)}" for k, v in self.kwargs.items())
        return f"({','.join(show(a) for a in self.args)}{';' + kw if kw else ''}){self.desc}"


@dataclass
class OpInfo:
    name: str
    fn: Callable                       # fn(m, *args, **kwargs), m = taiji or torch
    ref: Callable                      # NumPy reference on arrays
    samples: Callable                  # samples(dtype, rng) -> list[SampleInput]
    dtypes: tuple = FLOATS
    int_dtypes: tuple = ()             # integer/bool input dtypes the op supports
    int_out: str = "same"              # result dtype for int input: same|float|bool|int64
    differentiable: bool = True
    gradgrad: bool = True
    torch_fn: Callable | None = None   # when torch spells the call differently
    float_out: str | None = None       # result dtype for float input when not numpy's: bool
    rtol32: float = 1.3e-6
    atol32: float = 1e-5

    def call_torch(self, torch, *args, **kwargs):
        return (self.torch_fn or self.fn)(torch, *args, **kwargs)


# ---------------------------------------------------------------- array helpers

def arr(rng, shape, dtype, low=-2.0, high=2.0, bad=None):
    """Random array in [low, high); resample entries where ``bad(values)`` holds."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind in "iu":
        def draw():
            return rng.integers(int(math.ceil(low)), int(math.floor(high)) + 1, shape)
    else:
        def draw():
            return rng.uniform(low, high, shape)
    v = draw()
    for _ in range(200):
        if bad is None:
            break
        with np.errstate(all="ignore"):
            m = np.asarray(bad(v))
        if not m.any():
            break
        v = np.where(m, draw(), v)
    return np.asarray(v, dtype=dtype)


def distinct(rng, shape, dtype, gap=0.1):
    """Values with no ties (differences of at least ``gap``), shuffled."""
    n = int(np.prod(shape, dtype=np.int64))
    v = (rng.permutation(n) - n / 2) * gap * 2 + rng.uniform(-gap / 3, gap / 3, n)
    if np.dtype(dtype).kind in "iu":
        v = rng.permutation(n) - n // 2
    return v.reshape(shape).astype(dtype)


def near_int(v, margin=0.1):
    return np.abs(v - np.round(v)) < margin


def near_half(v, margin=0.1):
    return np.abs(v - np.floor(v) - 0.5) < margin


def near_zero(v, margin=0.2):
    return np.abs(v) < margin


UNARY_SHAPES = [(), (5,), (2, 3), (2, 1, 3)]
BINARY_SHAPES = [((), ()), ((4,), (4,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((3,), (2, 1, 3)),
                 ((2, 3), ())]


def unary(low=-2.0, high=2.0, bad=None, extra=()):
    def gen(dtype, rng):
        out = [SampleInput((arr(rng, s, dtype, low, high, bad),)) for s in UNARY_SHAPES]
        for kwargs in extra:
            out.append(SampleInput((arr(rng, (2, 3), dtype, low, high, bad),), dict(kwargs)))
        return out
    return gen


def binary(low=-2.0, high=2.0, low2=None, high2=None, bad=None, bad2=None, pair_bad=None,
           scalar=1.5, rscalar=None):
    """Broadcasting pairs; ``pair_bad(a, b)`` rejects broadcast pairs (ties, kinks)."""
    low2 = low if low2 is None else low2
    high2 = high if high2 is None else high2

    def gen(dtype, rng):
        out = []
        for sa, sb in BINARY_SHAPES:
            for _ in range(100):
                a = arr(rng, sa, dtype, low, high, bad)
                b = arr(rng, sb, dtype, low2, high2, bad2)
                if pair_bad is None or not np.any(pair_bad(*np.broadcast_arrays(a, b))):
                    break
            out.append(SampleInput((a, b)))
        s = scalar if np.dtype(dtype).kind == "f" or scalar is None else int(scalar)
        if s is not None:
            a = arr(rng, (2, 3), dtype, low, high, bad)
            if pair_bad is None or not np.any(pair_bad(a, np.asarray(s))):
                out.append(SampleInput((a, s), desc="scalar"))
        if rscalar is not None:
            s = rscalar if np.dtype(dtype).kind == "f" else int(rscalar)
            b = arr(rng, (3,), dtype, low2, high2, bad2)
            out.append(SampleInput((s, b), desc="rscalar"))
        return out
    return gen


def erf_np(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(np.result_type(x, np.float32))


def ax(kwargs):
    """PyTorch reduction kwargs -> NumPy's (axis, keepdims)."""
    d = kwargs.get("dim")
    return dict(axis=tuple(d) if isinstance(d, list) else d,
                keepdims=kwargs.get("keepdim", False))


def _call(name):
    return lambda m, *a, **k: getattr(m, name)(*a, **k)


def sample_inputs(op: OpInfo, dtype, seed: int = 0) -> list[SampleInput]:
    rng = np.random.default_rng(seed + sum(map(ord, op.name)) * 7919 + np.dtype(dtype).num)
    return op.samples(dtype, rng)


def leaves(obj) -> list:
    """Array leaves of args in order (lists/tuples flattened)."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [a for b in obj for a in leaves(b)]
    return []


def convert(obj, to: Callable) -> Any:
    """Replace every ndarray leaf (also in lists, tuples and dict values) via ``to``."""
    if isinstance(obj, np.ndarray):
        return to(obj)
    if isinstance(obj, tuple):
        return tuple(convert(a, to) for a in obj)
    if isinstance(obj, list):
        return [convert(a, to) for a in obj]
    if isinstance(obj, dict):
        return {k: convert(v, to) for k, v in obj.items()}
    return obj


def expected_dtype(op: OpInfo, in_dtype, ref_dtype) -> np.dtype:
    """Result dtype following PyTorch: float inputs keep NumPy's result dtype unless
    ``float_out`` says otherwise; int/bool inputs follow ``int_out``. Index outputs (argmax,
    sort indices) are int64: ``same`` for int64 input, NumPy's dtype for float input."""
    if np.dtype(in_dtype).kind == "f":
        return np.dtype(op.float_out or ref_dtype)
    return {"same": np.dtype(in_dtype), "float": np.dtype(np.float32),
            "bool": np.dtype(np.bool_), "int64": np.dtype(np.int64)}[op.int_out]


def is_float_array(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def bind(op: OpInfo, sample: SampleInput, m, to: Callable, call: Callable | None = None):
    """``(fn, diff)``: ``fn(*tensors)`` runs the op with the sample's float array args
    replaced by ``tensors`` (the differentiable inputs); ``diff`` lists those arrays."""
    diff = [a for a in leaves(sample.args) if is_float_array(a)]
    call = call or op.fn

    def fn(*tensors):
        it = iter(tensors)

        def sub(obj):
            if is_float_array(obj):
                return next(it)
            if isinstance(obj, np.ndarray):
                return to(obj)
            if isinstance(obj, tuple):
                return tuple(sub(a) for a in obj)
            if isinstance(obj, list):
                return [sub(a) for a in obj]
            return obj
        return call(m, *sub(sample.args), **convert(sample.kwargs, to))
    return fn, diff


def outputs(out) -> list:
    """An op's result as a flat list (tuples, lists and named tuples unpacked)."""
    if isinstance(out, (tuple, list)):
        return [b for a in out for b in outputs(a)]
    return [out]
