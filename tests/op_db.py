"""The op registry: one OpInfo per user-facing op (PyTorch's OpInfo, Thunder's opinfos).

Each entry names the op, how to call it on a module (``fn(m, *args, **kwargs)`` where ``m`` is
``taiji`` or ``torch``), a NumPy reference, and a sample-input generator. Samples hold NumPy
arrays; the test harness turns every array (also inside lists, tuples and kwargs) into a
tensor of the library under test. Float array arguments in ``args`` are the differentiable
inputs. Samples keep away from kinks, ties and domain edges unless marked ``grad=False``.

This file never imports torch: the conformance tests pass the torch module in as ``m``.
"""
from __future__ import annotations

import numpy as np

import taiji  # noqa: F401
from taiji import _indexing as I
from taiji import _ops as O
from _op_info import (  # noqa: F401
    FLOATS, OpInfo, SampleInput, arr, ax, binary, bind, convert, distinct, erf_np,
    expected_dtype, is_float_array, leaves, near_half, near_int, near_zero, outputs,
    sample_inputs, unary, _call, UNARY_SHAPES, BINARY_SHAPES,
)

OPS: list[OpInfo] = []


def add(*infos):
    OPS.extend(infos)


INT = (np.int64,)

# ---------------------------------------------------------------- elementwise unary

def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(x * beta > threshold, x, np.log1p(np.exp(beta * x)) / beta).astype(x.dtype)


def _gelu(x, approximate="none"):
    if approximate == "tanh":
        y = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    else:
        y = 0.5 * x * (1 + erf_np(x / np.sqrt(2)))
    return y.astype(x.dtype)


def _sigmoid(x):
    return (1 / (1 + np.exp(-x))).astype(x.dtype)


_POS = dict(low=0.5, high=3.0)


def _clamp_samples(dtype, rng):
    bad = lambda v: near_zero(np.abs(v) - 0.5, 0.1)  # noqa: E731
    lo, hi = (-0.5, 0.5) if np.dtype(dtype).kind == "f" else (-1, 1)
    out = [SampleInput((arr(rng, s, dtype, bad=bad),), kw) for s, kw in [
        ((), dict(min=lo, max=hi)), ((5,), dict(min=lo)), ((2, 3), dict(max=hi)),
        ((2, 1, 3), dict(min=lo, max=hi))]]
    # tensor bounds broadcast against the input
    x, b = arr(rng, (2, 3), dtype, bad=bad), arr(rng, (3,), dtype, 0.0, 1.0)
    b = np.where(np.abs(np.abs(x) - b) < 0.1, b + 0.25, b).astype(dtype)
    if np.all(np.abs(np.abs(x) - b) >= 0.1):
        out.append(SampleInput((x,), dict(min=-b, max=b)))
    return out
add(
    OpInfo("exp", _call("exp"), np.exp, unary(), int_dtypes=INT, int_out="float"),
    OpInfo("log", _call("log"), np.log, unary(**_POS), int_dtypes=INT, int_out="float"),
    OpInfo("log1p", _call("log1p"), np.log1p, unary(-0.5, 2.0)),
    OpInfo("expm1", _call("expm1"), np.expm1, unary()),
    OpInfo("log2", _call("log2"), np.log2, unary(**_POS)),
    OpInfo("sqrt", _call("sqrt"), np.sqrt, unary(**_POS), int_dtypes=INT, int_out="float"),
    OpInfo("rsqrt", _call("rsqrt"), lambda x: (1 / np.sqrt(x)).astype(x.dtype), unary(**_POS)),
    OpInfo("sin", _call("sin"), np.sin, unary()),
    OpInfo("cos", _call("cos"), np.cos, unary()),
    OpInfo("tan", _call("tan"), np.tan, unary(-1.2, 1.2), rtol32=1e-5),
    OpInfo("tanh", _call("tanh"), np.tanh, unary()),
    OpInfo("sigmoid", _call("sigmoid"), _sigmoid, unary()),
    OpInfo("relu", _call("relu"), lambda x: np.maximum(x, 0).astype(x.dtype),
           unary(bad=near_zero), int_dtypes=INT),
    OpInfo("gelu", _call("gelu"), _gelu, unary(extra=[dict(approximate="tanh")]),
           torch_fn=lambda m, x, **k: m.nn.functional.gelu(x, **k)),
    OpInfo("silu", _call("silu"), lambda x: (x * _sigmoid(x)), unary(),
           torch_fn=lambda m, x: m.nn.functional.silu(x)),
    OpInfo("softplus", _call("softplus"), _softplus,
           unary(-3, 3, extra=[dict(beta=2.0, threshold=1.0)]),
           torch_fn=lambda m, x, **k: m.nn.functional.softplus(x, **k)),
    OpInfo("erf", _call("erf"), erf_np, unary()),
    OpInfo("abs", _call("abs"), np.abs, unary(bad=near_zero), int_dtypes=INT),
    OpInfo("sign", _call("sign"), np.sign, unary(bad=near_zero), int_dtypes=INT),
    OpInfo("neg", _call("neg"), np.negative, unary(), int_dtypes=INT),
    OpInfo("reciprocal", _call("reciprocal"), np.reciprocal, unary(bad=near_zero),
           int_dtypes=INT, int_out="float"),
    OpInfo("square", _call("square"), np.square, unary(), int_dtypes=INT),
    OpInfo("floor", _call("floor"), np.floor, unary(bad=near_int), int_dtypes=INT),
    OpInfo("ceil", _call("ceil"), np.ceil, unary(bad=near_int), int_dtypes=INT),
    OpInfo("trunc", _call("trunc"), np.trunc, unary(bad=near_int), int_dtypes=INT),
    OpInfo("round", _call("round"), lambda x, decimals=0: np.round(x, decimals),
           unary(-5, 5, bad=near_half, extra=[dict(decimals=1)])),
    OpInfo("clamp", _call("clamp"), lambda x, min=None, max=None: np.clip(x, min, max),
           _clamp_samples, int_dtypes=INT),
    OpInfo("isnan", _call("isnan"), np.isnan, lambda dt, rng: _nonfinite(dt, rng),
           int_dtypes=INT, int_out="bool", differentiable=False),
    OpInfo("isinf", _call("isinf"), np.isinf, lambda dt, rng: _nonfinite(dt, rng),
           int_dtypes=INT, int_out="bool", differentiable=False),
    OpInfo("isfinite", _call("isfinite"), np.isfinite, lambda dt, rng: _nonfinite(dt, rng),
           int_dtypes=INT, int_out="bool", differentiable=False),
    OpInfo("logical_not", _call("logical_not"), np.logical_not, unary(bad=near_zero),
           int_dtypes=(np.int64, np.bool_), int_out="bool", differentiable=False,
           float_out="bool"),
)


def _nonfinite(dtype, rng):
    x = arr(rng, (2, 4), dtype)
    if np.dtype(dtype).kind == "f":
        x[0, 1], x[1, 2], x[1, 3] = np.nan, np.inf, -np.inf
    return [SampleInput((x,)), SampleInput((arr(rng, (), dtype),))]


def _round_halves(dtype, rng):
    return [SampleInput((np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -3.51], dtype),),
                        grad=False, desc="halves")]


_round = next(o for o in OPS if o.name == "round")
_round_samples = _round.samples
_round.samples = lambda dt, rng: _round_samples(dt, rng) + (
    _round_halves(dt, rng) if np.dtype(dt).kind == "f" else [])

# ---------------------------------------------------------------- elementwise binary


def _floordiv_bad(a, b):
    if np.asarray(a).dtype.kind in "iub":
        return np.asarray(b) == 0
    with np.errstate(all="ignore"):
        return near_int(a / b, 0.05)


def _remainder_ref(a, b):
    return np.mod(a, b)


def _pow_samples(dtype, rng):
    if np.dtype(dtype).kind == "f":
        return binary(0.5, 2.0, -1.5, 1.5, scalar=2.0, rscalar=1.7)(dtype, rng)
    return binary(-3, 3, 0, 3, scalar=2, rscalar=2)(dtype, rng)


_SIGNED = dict(bad=near_zero, bad2=lambda v: near_zero(v, 0.5))
_ALL = (np.int64,)
add(
    OpInfo("add", _call("add"), np.add, binary(rscalar=2.5), int_dtypes=_ALL),
    OpInfo("add_alpha", lambda m, a, b: m.add(a, b, alpha=2), lambda a, b: a + 2 * b,
           binary(scalar=None), int_dtypes=_ALL),
    OpInfo("sub", _call("sub"), np.subtract, binary(), int_dtypes=_ALL),
    OpInfo("mul", _call("mul"), np.multiply, binary(), int_dtypes=_ALL),
    OpInfo("div", _call("div"), np.true_divide, binary(**_SIGNED), int_dtypes=_ALL,
           int_out="float"),
    OpInfo("div_floor", lambda m, a, b: m.div(a, b, rounding_mode="floor"), np.floor_divide,
           binary(-3, 3, **_SIGNED, pair_bad=_floordiv_bad), int_dtypes=_ALL,
           differentiable=False),
    OpInfo("div_trunc", lambda m, a, b: m.div(a, b, rounding_mode="trunc"),
           lambda a, b: np.trunc(a / b).astype(np.result_type(a, b)),
           binary(-3, 3, **_SIGNED, pair_bad=_floordiv_bad), int_dtypes=_ALL),
    OpInfo("pow", _call("pow"), np.power, _pow_samples,
           int_dtypes=_ALL, rtol32=1e-5),
    OpInfo("pow_int", lambda m, a, b: m.pow(a, b), np.power,
           lambda dt, rng: [SampleInput((arr(rng, (2, 3), dt, -3, 3), 3)),
                            SampleInput((arr(rng, (4,), dt, 0.5, 3), 0.5)),
                            SampleInput((arr(rng, (4,), dt, -3, 3), 0))]),
    OpInfo("maximum", _call("maximum"), np.maximum,
           binary(pair_bad=lambda a, b: np.abs(a - b) < 0.1, scalar=None), int_dtypes=_ALL),
    OpInfo("minimum", _call("minimum"), np.minimum,
           binary(pair_bad=lambda a, b: np.abs(a - b) < 0.1, scalar=None), int_dtypes=_ALL),
    OpInfo("atan2", _call("atan2"), np.arctan2,
           binary(pair_bad=lambda a, b: np.hypot(a, b) < 0.5, scalar=None)),
    OpInfo("logical_and", _call("logical_and"), np.logical_and,
           binary(bad=near_zero, bad2=near_zero, scalar=None), int_dtypes=(np.bool_, np.int64),
           int_out="bool", float_out="bool", differentiable=False),
    OpInfo("logical_or", _call("logical_or"), np.logical_or,
           binary(bad=near_zero, bad2=near_zero, scalar=None), int_dtypes=(np.bool_, np.int64),
           int_out="bool", float_out="bool", differentiable=False),
    OpInfo("op_add", lambda m, a, b: a + b, np.add, binary(rscalar=2.0), int_dtypes=_ALL),
    OpInfo("op_sub", lambda m, a, b: a - b, np.subtract, binary(rscalar=2.0), int_dtypes=_ALL),
    OpInfo("op_mul", lambda m, a, b: a * b, np.multiply, binary(rscalar=2.0),
           int_dtypes=_ALL),
    OpInfo("op_truediv", lambda m, a, b: a / b, np.true_divide,
           binary(**_SIGNED, rscalar=2.0), int_dtypes=_ALL, int_out="float"),
    OpInfo("op_floordiv", lambda m, a, b: a // b, np.floor_divide,
           binary(-3, 3, **_SIGNED, pair_bad=_floordiv_bad, rscalar=2.0), int_dtypes=_ALL,
           differentiable=False),
    OpInfo("op_mod", lambda m, a, b: a % b, _remainder_ref,
           binary(-3, 3, **_SIGNED, pair_bad=_floordiv_bad, rscalar=2.0), int_dtypes=_ALL),
    OpInfo("remainder", _call("remainder"), _remainder_ref,
           binary(-3, 3, **_SIGNED, pair_bad=_floordiv_bad), int_dtypes=_ALL),
    OpInfo("op_pow", lambda m, a, b: a ** b, np.power, _pow_samples, int_dtypes=_ALL,
           rtol32=1e-5),
    OpInfo("eq", _call("eq"), np.equal, binary(-2, 2, scalar=1.0), int_dtypes=_ALL,
           int_out="bool", differentiable=False),
    OpInfo("lt", _call("lt"), np.less, binary(scalar=0.5), int_dtypes=_ALL, int_out="bool",
           differentiable=False),
)


def _where_samples(dtype, rng):
    out = []
    for sc, sx, sy in [((), (), ()), ((4,), (4,), (4,)), ((2, 3), (3,), (2, 1)),
                       ((2, 1, 3), (2, 3), ())]:
        out.append(SampleInput((arr(rng, sc, np.bool_), arr(rng, sx, dtype),
                                arr(rng, sy, dtype))))
    s = 0.5 if np.dtype(dtype).kind == "f" else 1
    out.append(SampleInput((rng.random((2, 3)) < 0.5, arr(rng, (2, 3), dtype), s),
                           desc="scalar"))
    return out


add(OpInfo("where", _call("where"), np.where, _where_samples, int_dtypes=_ALL))

# ---------------------------------------------------------------- reductions

RED_KWARGS = [((3, 4), {}), ((3, 4), dict(dim=1)), ((3, 4), dict(dim=-1, keepdim=True)),
              ((2, 3, 2), dict(dim=(0, 2))), ((2, 3, 2), dict(dim=0, keepdim=True)),
              ((), {}), ((4,), dict(dim=0))]


def reduction(low=-2.0, high=2.0, kwsets=RED_KWARGS, extra=None, unique=False):
    def gen(dtype, rng):
        out = []
        for shape, kw in kwsets:
            x = distinct(rng, shape, dtype) if unique else arr(rng, shape, dtype, low, high)
            # var/std of one element divide by zero degrees of freedom: nan, no gradient
            out.append(SampleInput((x,), dict(kw, **(extra or {})),
                                   grad=int(np.prod(shape)) > 1))
        return out
    return gen


def _np_red(f):
    return lambda x, **k: np.asarray(f(x, **ax(k)))


def _ref_var(x, dim=None, correction=1, keepdim=False, std=False):
    a = ax(dict(dim=dim, keepdim=keepdim))
    v = np.var(x, axis=a["axis"], keepdims=keepdim, ddof=correction)
    return np.asarray(np.sqrt(v) if std else v, dtype=x.dtype)


def _ref_argext(f):
    def ref(x, dim=None, keepdim=False):
        if dim is None:
            return np.asarray(f(x.reshape(-1)))
        return np.asarray(f(x, axis=dim, keepdims=keepdim))
    return ref


def _ref_max_dim(vf, af):
    def ref(x, dim=None, keepdim=False):
        if dim is None:
            return np.asarray(vf(x))
        return np.asarray(vf(x, axis=dim, keepdims=keepdim)), \
            np.asarray(af(x, axis=dim, keepdims=keepdim))
    return ref


def _ref_lse(x, dim=None, keepdim=False):
    a = ax(dict(dim=dim, keepdim=keepdim))
    m = np.max(x, axis=a["axis"], keepdims=True)
    r = np.log(np.sum(np.exp(x - m), axis=a["axis"], keepdims=True)) + m
    if not keepdim:
        r = np.squeeze(r, axis=a["axis"]) if a["axis"] is not None else r.reshape(())
    return np.asarray(r, dtype=x.dtype)


def _ref_norm(x, p="fro", dim=None, keepdim=False):
    a = ax(dict(dim=dim, keepdim=keepdim))["axis"]
    if p in ("fro", 2):
        r = np.sqrt(np.sum(x * x, axis=a, keepdims=keepdim))
    elif p == np.inf:
        r = np.max(np.abs(x), axis=a, keepdims=keepdim)
    else:
        r = np.sum(np.abs(x) ** p, axis=a, keepdims=keepdim) ** (1 / p)
    return np.asarray(r, dtype=x.dtype)


_DIMRED = [((3, 4), dict(dim=1)), ((3, 4), dict(dim=0, keepdim=True)),
           ((2, 3, 2), dict(dim=-1)), ((4,), dict(dim=0))]
_SUM_INT = (np.int32, np.int64)
add(
    OpInfo("sum", _call("sum"), lambda x, **k: np.asarray(np.sum(x, **ax(k)), dtype=(
        x.dtype if x.dtype.kind == "f" else np.int64)), reduction(), int_dtypes=_SUM_INT + (
        np.bool_,), int_out="int64"),
    OpInfo("mean", _call("mean"), _np_red(np.mean), reduction()),
    OpInfo("var", _call("var"), _ref_var, reduction()),
    OpInfo("var_corr", lambda m, x, **k: m.var(x, **k), _ref_var,
           reduction(kwsets=[((3, 4), dict(dim=1, correction=0)),
                             ((2, 3, 4), dict(dim=(0, 2), correction=2, keepdim=True)),
                             ((5,), dict(correction=0))])),
    OpInfo("std", _call("std"), lambda x, **k: _ref_var(x, std=True, **k),
           reduction(kwsets=RED_KWARGS[:5] + [((3, 4), dict(dim=1, correction=0)),
                                              ((2, 3, 4), dict(dim=2, correction=2))])),
    OpInfo("prod", _call("prod"), lambda x, **k: np.asarray(np.prod(x, **ax(k)), dtype=(
        x.dtype if x.dtype.kind == "f" else np.int64)),
           reduction(0.5, 1.5, kwsets=[s for s in RED_KWARGS if not isinstance(
               s[1].get("dim"), tuple)]), int_dtypes=_SUM_INT, int_out="int64"),
    OpInfo("max", _call("max"), _ref_max_dim(np.max, np.argmax),
           reduction(kwsets=[((3, 4), {}), ((), {})] + _DIMRED, unique=True), int_dtypes=INT),
    OpInfo("min", _call("min"), _ref_max_dim(np.min, np.argmin),
           reduction(kwsets=[((3, 4), {}), ((), {})] + _DIMRED, unique=True), int_dtypes=INT),
    OpInfo("amax", _call("amax"), _np_red(np.max), reduction(unique=True), int_dtypes=INT),
    OpInfo("amin", _call("amin"), _np_red(np.min), reduction(unique=True), int_dtypes=INT),
    OpInfo("argmax", _call("argmax"), _ref_argext(np.argmax),
           reduction(kwsets=[((3, 4), {}), ((), {})] + _DIMRED, unique=True), int_dtypes=INT,
           int_out="int64", differentiable=False),
    OpInfo("argmin", _call("argmin"), _ref_argext(np.argmin),
           reduction(kwsets=[((3, 4), {}), ((), {})] + _DIMRED, unique=True), int_dtypes=INT,
           int_out="int64", differentiable=False),
    OpInfo("logsumexp", lambda m, x, dim=None, **k: m.logsumexp(x, dim=(
        tuple(range(x.ndim)) if dim is None else dim), **k), _ref_lse,
           reduction(kwsets=[s for s in RED_KWARGS if s[1]])),
    OpInfo("all", _call("all"), _np_red(np.all), reduction(-1, 1), int_dtypes=(np.bool_,
                                                                                np.int64),
           int_out="bool", float_out="bool", differentiable=False),
    OpInfo("any", _call("any"), _np_red(np.any), reduction(-1, 1), int_dtypes=(np.bool_,
                                                                                np.int64),
           int_out="bool", float_out="bool", differentiable=False),
    OpInfo("cumsum", _call("cumsum"), lambda x, dim: np.cumsum(x, axis=dim, dtype=(
        x.dtype if x.dtype.kind == "f" else np.int64)),
           reduction(kwsets=[((5,), dict(dim=0)), ((3, 4), dict(dim=1)),
                             ((2, 3, 2), dict(dim=-2))]), int_dtypes=_SUM_INT, int_out="int64"),
    OpInfo("cumprod", _call("cumprod"), lambda x, dim: np.cumprod(x, axis=dim, dtype=(
        x.dtype if x.dtype.kind == "f" else np.int64)),
           reduction(0.5, 1.5, kwsets=[((5,), dict(dim=0)), ((3, 4), dict(dim=1)),
                                       ((2, 3, 2), dict(dim=-2))]), int_dtypes=_SUM_INT,
           int_out="int64"),
    OpInfo("norm", _call("norm"), _ref_norm,
           reduction(0.3, 2.0, kwsets=[((3, 4), {}), ((3, 4), dict(p=2, dim=1)),
                                       ((3, 4), dict(p=1, dim=0, keepdim=True)),
                                       ((2, 3, 2), dict(p=3, dim=(0, 2))),
                                       ((5,), dict(p=float("inf"), dim=0))])),
    OpInfo("softmax", _call("softmax"), lambda x, dim: np.exp(x - _ref_lse(
        x, dim=dim, keepdim=True)), reduction(kwsets=[((5,), dict(dim=0)),
                                                      ((3, 4), dict(dim=1)),
                                                      ((2, 3, 2), dict(dim=0))])),
    OpInfo("log_softmax", _call("log_softmax"), lambda x, dim: x - _ref_lse(
        x, dim=dim, keepdim=True), reduction(kwsets=[((5,), dict(dim=0)),
                                                     ((3, 4), dict(dim=1)),
                                                     ((2, 3, 2), dict(dim=-2))])),
)

# ---------------------------------------------------------------- shape ops


def shaped(*cases):
    """cases: (shapes, kwargs) -> samples with one random array per shape."""
    def gen(dtype, rng):
        return [SampleInput(tuple(arr(rng, s, dtype) for s in shapes), dict(kw))
                for shapes, kw in cases]
    return gen


def listed(*cases):
    """cases: (shapes, kwargs) -> samples whose first argument is a list of arrays."""
    def gen(dtype, rng):
        return [SampleInput(([arr(rng, s, dtype) for s in shapes],), dict(kw))
                for shapes, kw in cases]
    return gen


def _np_pad(x, pad, value=0.0):
    pw = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pw[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    neg = [(max(-a, 0), max(-b, 0)) for a, b in pw]
    pos = [(max(a, 0), max(b, 0)) for a, b in pw]
    y = np.pad(x, pos, constant_values=value)
    return y[tuple(slice(a, y.shape[i] - b) for i, (a, b) in enumerate(neg))]


def _np_squeeze(x, dim=None):
    if dim is None:
        return np.squeeze(x)
    dims = dim if isinstance(dim, tuple) else (dim,)
    return np.squeeze(x, axis=tuple(d for d in dims if x.shape[d] == 1))


def _np_split(x, s, dim=0):
    if isinstance(s, int):
        return tuple(np.split(x, range(s, x.shape[dim], s), axis=dim))
    return tuple(np.split(x, np.cumsum(s)[:-1], axis=dim))


def _np_chunk(x, chunks, dim=0):
    return _np_split(x, -(-x.shape[dim] // chunks), dim)


def _np_unflatten(x, dim, sizes):
    d = dim % x.ndim
    return x.reshape(x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def _np_repeat(x, *sizes):
    return np.tile(x.reshape((1,) * (len(sizes) - x.ndim) + x.shape), sizes)


SH = (np.int64,)
add(
    OpInfo("reshape", _call("reshape"), lambda x, shape: np.reshape(x, shape),
           lambda dt, rng: [SampleInput((arr(rng, (2, 3, 2), dt), (3, -1))),
                            SampleInput((arr(rng, (), dt), (1, 1))),
                            SampleInput((arr(rng, (6,), dt), (2, 3)))], int_dtypes=SH),
    OpInfo("view", lambda m, x, *s: x.view(*s), lambda x, *s: x.reshape(s),
           lambda dt, rng: [SampleInput((arr(rng, (2, 3, 2), dt), 4, 3)),
                            SampleInput((arr(rng, (4,), dt), -1, 2))], int_dtypes=SH),
    OpInfo("flatten", _call("flatten"),
           lambda x, start_dim=0, end_dim=-1: x.reshape(
               x.shape[:start_dim] + (-1,) + x.shape[end_dim % max(x.ndim, 1) + 1:])
           if x.ndim else x.reshape(1),
           shaped(([(2, 3, 2)], {}), ([(2, 3, 2, 2)], dict(start_dim=1, end_dim=2)),
                  ([()], {})), int_dtypes=SH),
    OpInfo("unflatten", _call("unflatten"), _np_unflatten,
           shaped(([(2, 6)], dict(dim=1, sizes=(3, 2))), ([(6, 2)], dict(dim=0, sizes=(-1, 3)))),
           int_dtypes=SH),
    OpInfo("squeeze", _call("squeeze"), _np_squeeze,
           shaped(([(2, 1, 3, 1)], {}), ([(2, 1, 3)], dict(dim=1)), ([(2, 1, 3)], dict(dim=0)),
                  ([(1, 2, 1)], dict(dim=(0, 2)))), int_dtypes=SH),
    OpInfo("unsqueeze", _call("unsqueeze"), lambda x, dim: np.expand_dims(x, dim),
           shaped(([(2, 3)], dict(dim=0)), ([(2, 3)], dict(dim=-1)), ([()], dict(dim=0))),
           torch_fn=_call("unsqueeze"), int_dtypes=SH),
    OpInfo("permute", lambda m, x, dims: x.permute(*dims), lambda x, dims: np.transpose(x, dims),
           shaped(([(2, 3, 4)], dict(dims=(2, 0, 1))), ([(2, 3)], dict(dims=(1, 0)))),
           int_dtypes=SH),
    OpInfo("transpose", _call("transpose"), lambda x, d0, d1: np.swapaxes(x, d0, d1),
           lambda dt, rng: [SampleInput((arr(rng, (2, 3, 4), dt), 0, 2)),
                            SampleInput((arr(rng, (2, 3), dt), -1, 0))], int_dtypes=SH),
    OpInfo("T", lambda m, x: x.T, lambda x: x.T, shaped(([(2, 3)], {}), ([(4,)], {})),
           int_dtypes=SH),
    OpInfo("mT", lambda m, x: x.mT, lambda x: np.swapaxes(x, -1, -2),
           shaped(([(2, 3)], {}), ([(2, 3, 4)], {})), int_dtypes=SH),
    OpInfo("expand", lambda m, x, *s: x.expand(*s), lambda x, *s: np.broadcast_to(
        x, tuple(x.shape[i - len(s) + x.ndim] if n == -1 else n for i, n in enumerate(s))),
           lambda dt, rng: [SampleInput((arr(rng, (3, 1), dt), 2, 3, 4)),
                            SampleInput((arr(rng, (3, 1), dt), -1, 4)),
                            SampleInput((arr(rng, (), dt), 3))], int_dtypes=SH),
    OpInfo("expand_as", lambda m, x, y: x.expand_as(y), lambda x, y: np.broadcast_to(
        x, y.shape), shaped(([(3, 1), (2, 3, 4)], {})), int_dtypes=SH),
    OpInfo("broadcast_to", _call("broadcast_to"), lambda x, shape: np.broadcast_to(x, shape),
           lambda dt, rng: [SampleInput((arr(rng, (3, 1), dt), (2, 3, 4))),
                            SampleInput((arr(rng, (), dt), (2,)))], int_dtypes=SH),
    OpInfo("cat", _call("cat"), lambda xs, dim=0: np.concatenate(xs, axis=dim),
           listed(([(2, 3), (1, 3)], {}), ([(2, 1), (2, 3), (2, 2)], dict(dim=1)),
                  ([(3,), (2,)], dict(dim=-1))), int_dtypes=SH),
    OpInfo("stack", _call("stack"), lambda xs, dim=0: np.stack(xs, axis=dim),
           listed(([(2, 3), (2, 3)], {}), ([(2,), (2,), (2,)], dict(dim=1)),
                  ([(), ()], {})), int_dtypes=SH),
    OpInfo("split", _call("split"), _np_split,
           lambda dt, rng: [SampleInput((arr(rng, (5, 2), dt), 2)),
                            SampleInput((arr(rng, (2, 6), dt), [1, 3, 2]), dict(dim=1))],
           int_dtypes=SH),
    OpInfo("chunk", _call("chunk"), _np_chunk,
           lambda dt, rng: [SampleInput((arr(rng, (5, 2), dt), 3)),
                            SampleInput((arr(rng, (2, 6), dt), 2), dict(dim=-1))],
           int_dtypes=SH),
    OpInfo("unbind", _call("unbind"), lambda x, dim=0: tuple(np.moveaxis(x, dim, 0)),
           shaped(([(3, 2)], {}), ([(2, 3, 2)], dict(dim=1))), int_dtypes=SH),
    OpInfo("pad", lambda m, x, pad, **k: O.pad(x, pad, **k), _np_pad,
           shaped(([(2, 3)], dict(pad=(1, 2))), ([(2, 3, 2)], dict(pad=(0, 1, 2, 0), value=1.5)),
                  ([(2, 4)], dict(pad=(-1, 1)))),
           torch_fn=lambda m, x, pad, **k: m.nn.functional.pad(x, pad, **k)),
    OpInfo("flip", _call("flip"), lambda x, dims: np.flip(x, axis=dims),
           shaped(([(2, 3)], dict(dims=(0,))), ([(2, 3, 2)], dict(dims=(0, 2)))), int_dtypes=SH),
    OpInfo("repeat", lambda m, x, *s: x.repeat(*s), _np_repeat,
           lambda dt, rng: [SampleInput((arr(rng, (2, 3), dt), 2, 1)),
                            SampleInput((arr(rng, (3,), dt), 2, 1, 2))], int_dtypes=SH),
    OpInfo("tile", _call("tile"), lambda x, dims: np.tile(x, dims),
           shaped(([(2, 3)], dict(dims=(2,))), ([(3,)], dict(dims=(2, 2)))), int_dtypes=SH),
    OpInfo("roll", _call("roll"), lambda x, shifts, dims=None: np.roll(x, shifts, axis=dims),
           shaped(([(2, 3)], dict(shifts=1)), ([(2, 3)], dict(shifts=(1, -2), dims=(0, 1))),
                  ([(4, 3)], dict(shifts=-1, dims=0))), int_dtypes=SH),
    OpInfo("narrow", _call("narrow"), lambda x, dim, start, length: np.take(
        x, range(start % x.shape[dim], start % x.shape[dim] + length), axis=dim),
           lambda dt, rng: [SampleInput((arr(rng, (4, 3), dt), 0, 1, 2)),
                            SampleInput((arr(rng, (2, 5), dt), 1, -3, 2))], int_dtypes=SH),
)

# ---------------------------------------------------------------- indexing


def _getitem_samples(dtype, rng):
    x = lambda: arr(rng, (4, 5, 3), dtype)  # noqa: E731
    idxs = [1, -1, (slice(None, None, 2), -1), (None, Ellipsis, 1), (Ellipsis, slice(1, 4, 2)),
            (slice(1, None), None, slice(None, None, 3)), np.array([0, 2, 2]),
            (np.array([[0, 1], [3, 3]]), slice(None), np.array([2, 0])),
            (slice(None), np.array([4, 0])), (Ellipsis, np.array([1, 0])),
            (1, slice(None), np.array([0, 2, 1]))]
    out = [SampleInput((x(),), dict(idx=i)) for i in idxs]
    v = x()
    out.append(SampleInput((v,), dict(idx=v > 0), desc="mask"))
    v = x()
    out.append(SampleInput((v,), dict(idx=(v[:, :, 0] > 0,)), desc="mask2d"))
    out.append(SampleInput((arr(rng, (), dtype),), dict(idx=None)))
    return out


def _setitem_samples(dtype, rng):
    out = []
    for idx, vshape in [(1, (5, 3)), ((slice(None, None, 2), -1), (3,)),
                        ((Ellipsis, 0), ()), (np.array([0, 3]), (2, 5, 3)),
                        ((np.array([1, 2]), slice(None), np.array([0, 2])), (2, 5)),
                        ((slice(1, 3), None), (1, 5, 1))]:
        out.append(SampleInput((arr(rng, (4, 5, 3), dtype), arr(rng, vshape, dtype)),
                               dict(idx=idx)))
    x = arr(rng, (4, 5, 3), dtype)
    out.append(SampleInput((x, arr(rng, (), dtype)), dict(idx=x > 0), desc="mask"))
    return out


def torch_index(idx):
    """PyTorch applies integer indices before advanced ones (``x[1, :, [0, 2]]`` is
    ``x[1][:, [0, 2]]``), where NumPy would move the broadcast index dims to the front.
    Returns the two NumPy index passes that give PyTorch's result."""
    if not isinstance(idx, tuple) or not any(isinstance(i, int) for i in idx) or not any(
            isinstance(i, np.ndarray) for i in idx):
        return (idx,)
    first, second = [], []
    for i in idx:
        if isinstance(i, int):
            first.append(i)
        elif i is None:
            second.append(i)
        elif isinstance(i, np.ndarray) and i.dtype == np.bool_:
            first.extend([slice(None)] * i.ndim)
            second.append(i)
        else:
            first.append(i if i is Ellipsis else slice(None))
            second.append(i)
    return tuple(first), tuple(second)


def _np_getitem(x, idx):
    for i in torch_index(idx):
        x = x[i]
    return x


def _setitem(m, x, v, idx):
    y = x.clone()
    y[idx] = v
    return y


def _np_setitem(x, v, idx):
    y = x.copy()
    y[idx] = v
    return y


def _index(rng, shape, n):
    return rng.integers(0, n, shape)


def _perm_index(rng, shape, dim):
    """Index for scatter along ``dim`` with no duplicates along that dim."""
    idx = np.argsort(rng.random(shape), axis=dim)
    return idx


def _np_scatter(x, dim, index, src=None, value=None, add_=False):
    y = x.copy()
    coords = list(np.indices(index.shape))
    coords[dim] = index
    if src is None:
        src = np.full(index.shape, value, x.dtype)
    else:
        src = src[tuple(slice(0, n) for n in index.shape)]
    if add_:
        np.add.at(y, tuple(coords), src)
    else:
        y[tuple(coords)] = src
    return y


def _gather_samples(dtype, rng):
    return [SampleInput((arr(rng, (3, 4), dtype), 1, _index(rng, (3, 2), 4))),
            SampleInput((arr(rng, (3, 4), dtype), 0, _index(rng, (2, 4), 3))),
            SampleInput((arr(rng, (2, 3, 2), dtype), -1, _index(rng, (2, 3, 3), 2)))]


def _scatter_samples(dtype, rng):
    return [SampleInput((arr(rng, (3, 4), dtype), 1, _perm_index(rng, (3, 4), 1)[:, :2],
                         arr(rng, (3, 2), dtype))),
            SampleInput((arr(rng, (3, 4), dtype), 0, _perm_index(rng, (3, 4), 0)[:2],
                         arr(rng, (2, 4), dtype)))]


def _scatter_add_samples(dtype, rng):
    return [SampleInput((arr(rng, (3, 4), dtype), 1, _index(rng, (3, 5), 4),
                         arr(rng, (3, 5), dtype))),
            SampleInput((arr(rng, (3, 4), dtype), 0, _index(rng, (2, 4), 3),
                         arr(rng, (2, 4), dtype)))]


def _sort_samples(dtype, rng, kws=(dict(), dict(dim=0), dict(descending=True),
                                   dict(dim=-1, descending=True))):
    return [SampleInput((distinct(rng, (3, 4), dtype),), dict(kw)) for kw in kws] + [
        SampleInput((distinct(rng, (5,), dtype),))]


def _np_sort(x, dim=-1, descending=False):
    i = np.argsort(-x if descending else x, axis=dim, kind="stable")
    return np.take_along_axis(x, i, dim), i


def _np_topk(x, k, dim=-1, largest=True, sorted=True):
    v, i = _np_sort(x, dim, descending=largest)
    return np.take(v, range(k), axis=dim), np.take(i, range(k), axis=dim)


def _np_take_along_dim(x, indices, dim=None):
    if dim is None:
        return np.take_along_axis(x.reshape(-1), indices.reshape(-1), 0)
    return np.take_along_axis(x, indices, dim)


def _np_one_hot(x, num_classes=-1):
    n = x.max() + 1 if num_classes < 0 else num_classes
    return (x[..., None] == np.arange(n)).astype(np.int64)


add(
    OpInfo("getitem", lambda m, x, idx: x[idx], _np_getitem, _getitem_samples,
           int_dtypes=SH),
    OpInfo("setitem", _setitem, _np_setitem, _setitem_samples, int_dtypes=SH),
    OpInfo("gather", _call("gather"), lambda x, dim, index: np.take_along_axis(x, index, dim),
           _gather_samples, int_dtypes=SH),
    OpInfo("take_along_dim", _call("take_along_dim"), _np_take_along_dim,
           lambda dt, rng: [SampleInput((arr(rng, (3, 4), dt), _index(rng, (3, 2), 4)),
                                        dict(dim=1)),
                            SampleInput((arr(rng, (3, 4), dt), _index(rng, (5,), 12)))],
           int_dtypes=SH),
    OpInfo("scatter", _call("scatter"), _np_scatter, _scatter_samples, int_dtypes=SH),
    OpInfo("scatter_value", lambda m, x, dim, index: m.scatter(x, dim, index, value=1.5),
           lambda x, dim, index: _np_scatter(x, dim, index, value=1.5),
           lambda dt, rng: [SampleInput((arr(rng, (3, 4), dt), 1, _index(rng, (3, 2), 4)))]),
    OpInfo("scatter_add", _call("scatter_add"),
           lambda x, dim, index, src: _np_scatter(x, dim, index, src, add_=True),
           _scatter_add_samples, int_dtypes=SH),
    OpInfo("index_select", _call("index_select"), lambda x, dim, index: np.take(
        x, index, axis=dim),
           lambda dt, rng: [SampleInput((arr(rng, (3, 4), dt), 1, np.array([3, 0, 3]))),
                            SampleInput((arr(rng, (3, 4), dt), 0, np.array([2])))],
           int_dtypes=SH),
    OpInfo("masked_fill", lambda m, x, mask, value: m.masked_fill(x, mask, value),
           lambda x, mask, value: np.where(mask, np.asarray(value, x.dtype), x),
           lambda dt, rng: [SampleInput((arr(rng, (3, 4), dt), rng.random((3, 4)) < 0.5,
                                         -1.0 if np.dtype(dt).kind == "f" else -1)),
                            SampleInput((arr(rng, (3, 4), dt), rng.random((4,)) < 0.5,
                                         2.5 if np.dtype(dt).kind == "f" else 2))],
           int_dtypes=SH),
    OpInfo("one_hot", lambda m, x, **k: I.one_hot(x, **k), _np_one_hot,
           lambda dt, rng: [SampleInput((rng.integers(0, 4, (3, 2)),), dict(num_classes=5)),
                            SampleInput((np.array([0, 3, 1]),))],
           dtypes=(np.int64,), differentiable=False,
           torch_fn=lambda m, x, **k: m.nn.functional.one_hot(x, **k)),
    OpInfo("sort", lambda m, x, **k: tuple(m.sort(x, **k)), _np_sort, _sort_samples,
           int_dtypes=SH),
    OpInfo("argsort", _call("argsort"), lambda x, **k: _np_sort(x, **k)[1], _sort_samples,
           int_dtypes=SH, int_out="int64", differentiable=False),
    OpInfo("topk", lambda m, x, k, **kw: tuple(m.topk(x, k, **kw)), _np_topk,
           lambda dt, rng: [SampleInput((distinct(rng, (3, 5), dt), 2)),
                            SampleInput((distinct(rng, (3, 5), dt), 3), dict(dim=0, largest=False)),
                            SampleInput((distinct(rng, (6,), dt), 1))], int_dtypes=SH),
)

# ---------------------------------------------------------------- linear algebra

_MATMUL = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((2, 2, 3), (3, 4)),
           ((3,), (2, 3, 4)), ((2, 2, 3), (3,)), ((2, 1, 2, 3), (3, 3, 4))]
_EINSUM = [("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
           ("ij->", [(2, 3)]), ("i,j->ij", [(3,), (2,)]), ("ij->ji", [(2, 3)]),
           ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("iij->j", [(2, 2, 3)]), ("...ij,...jk", [(2, 2, 3), (3, 2)]), ("ij,ij->i", [(2, 3),
                                                                                  (2, 3)]),
           ("abc,cd,ad->b", [(2, 3, 2), (2, 4), (2, 4)])]
add(
    OpInfo("matmul", _call("matmul"), np.matmul, lambda dt, rng: [
        SampleInput((arr(rng, a, dt), arr(rng, b, dt))) for a, b in _MATMUL], int_dtypes=SH,
           rtol32=1e-5),
    OpInfo("op_matmul", lambda m, a, b: a @ b, np.matmul, lambda dt, rng: [
        SampleInput((arr(rng, a, dt), arr(rng, b, dt))) for a, b in _MATMUL[:4]],
           rtol32=1e-5),
    OpInfo("einsum", lambda m, eq, *ops: m.einsum(eq, *ops),
           lambda eq, *ops: np.einsum(eq, *ops), lambda dt, rng: [
               SampleInput((eq,) + tuple(arr(rng, s, dt) for s in shapes))
               for eq, shapes in _EINSUM], rtol32=1e-5),
    OpInfo("tensordot", _call("tensordot"), lambda a, b, dims=2: np.tensordot(a, b, dims),
           lambda dt, rng: [
               SampleInput((arr(rng, (2, 3, 4), dt), arr(rng, (3, 4, 2), dt))),
               SampleInput((arr(rng, (2, 3), dt), arr(rng, (3, 4), dt)), dict(dims=1)),
               SampleInput((arr(rng, (2, 3, 4), dt), arr(rng, (4, 3), dt)),
                           dict(dims=([1, 2], [1, 0])))], rtol32=1e-5),
    OpInfo("outer", _call("outer"), np.outer, shaped(([(3,), (4,)], {})), int_dtypes=SH),
)

OPS_BY_NAME = {op.name: op for op in OPS}
assert len(OPS_BY_NAME) == len(OPS), "duplicate OpInfo names"


__all__ = ["OPS", "OPS_BY_NAME", "OpInfo", "SampleInput", "sample_inputs", "leaves", "convert",
           "expected_dtype", "bind", "outputs", "torch_index"]
