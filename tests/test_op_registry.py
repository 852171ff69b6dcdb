"""Generated tests over the op registry (tests/op_db.py): forward against NumPy, gradients
against central differences (gradcheck), double backward (gradgradcheck), int/bool dtypes."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import taiji
from _gradcheck import gradcheck, gradgradcheck
from op_db import OPS, bind, convert, expected_dtype, outputs, sample_inputs




def _tol(op, dtype):
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-7, atol=1e-7)
    return dict(rtol=op.rtol32, atol=op.atol32)


def to_taiji(a):
    return taiji.tensor(a)


def _upcast(obj, ints=False):
    """float32 arrays (and int ones for ops whose int result is float) -> float64, so the
    reference is exact to float32 rounding."""
    if isinstance(obj, np.ndarray) and (obj.dtype == np.float32 or
                                        ints and obj.dtype.kind in "iu"):
        return obj.astype(np.float64)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_upcast(a, ints) for a in obj)
    return obj


def _ref(op, s):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dtypes = [np.asarray(r).dtype for r in outputs(op.ref(*s.args, **s.kwargs))]
        values = [np.asarray(r) for r in outputs(op.ref(*_upcast(s.args, op.int_out == "float"),
                                                  **s.kwargs))]
    return dtypes, values


def _cases(pred=lambda op, dt: True):
    return [pytest.param(op, dt, id=f"{op.name}-{np.dtype(dt).name}")
            for op in OPS for dt in op.dtypes + op.int_dtypes if pred(op, dt)]


def check_forward(op, dtype, run, label="taiji"):
    """Run every sample through ``run(sample)`` and compare with the NumPy reference."""
    samples = sample_inputs(op, dtype)
    assert samples, f"{op.name}: no samples for {dtype}"
    for s in samples:
        got = outputs(run(s))
        dtypes, ref = _ref(op, s)
        assert len(got) == len(ref), f"{op.name}{s}: {len(got)} outputs, expected {len(ref)}"
        for k, (g, r, rdt) in enumerate(zip(got, ref, dtypes)):
            want = expected_dtype(op, dtype, rdt)
            arr = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
            assert tuple(g.shape) == r.shape, f"{op.name}{s} out {k}: shape {tuple(g.shape)} " \
                                              f"!= {r.shape}"
            assert arr.dtype == want, f"{op.name}{s} out {k}: dtype {arr.dtype} != {want}"
            if want.kind == "f":
                np.testing.assert_allclose(arr, r.astype(want), **_tol(op, want),
                                           err_msg=f"{label} {op.name}{s} out {k}")
            else:
                np.testing.assert_array_equal(arr, r.astype(want),
                                              err_msg=f"{label} {op.name}{s} out {k}")


@pytest.mark.parametrize("op,dtype", _cases())
def test_forward(op, dtype):
    check_forward(op, dtype, lambda s: op.fn(taiji, *convert(s.args, to_taiji),
                                              **convert(s.kwargs, to_taiji)))


def _grad_samples(op):
    return [s for s in sample_inputs(op, np.float64) if s.grad and any(
        isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in outputs(s.args))]


_DIFF = [pytest.param(op, id=op.name) for op in OPS
         if op.differentiable and np.float64 in op.dtypes]


@pytest.mark.parametrize("op", _DIFF)
def test_gradcheck(op):
    samples = _grad_samples(op)
    assert samples, f"{op.name}: no differentiable samples"
    for s in samples:
        fn, diff = bind(op, s, taiji, to_taiji)
        try:
            gradcheck(fn, diff)
        except AssertionError as e:
            raise AssertionError(f"{op.name}{s}: {e}") from None


@pytest.mark.parametrize("op", [p for p in _DIFF if p.values[0].gradgrad])
def test_gradgradcheck(op):
    for s in _grad_samples(op):
        fn, diff = bind(op, s, taiji, to_taiji)
        try:
            gradgradcheck(fn, diff)
        except AssertionError as e:
            raise AssertionError(f"{op.name}{s}: {e}") from None


@pytest.mark.parametrize("op,dtype", _cases(lambda op, dt: np.dtype(dt).kind in "iub"))
def test_int_bool_inputs_dtype_and_no_grad(op, dtype):
    """Int/bool inputs give PyTorch's result dtype, and results of integer ops never require
    grad (integer tensors cannot)."""
    for s in sample_inputs(op, dtype):
        for g, rdt in zip(outputs(op.fn(taiji, *convert(s.args, to_taiji),
                                        **convert(s.kwargs, to_taiji))), _ref(op, s)[0]):
            assert np.dtype(g.numpy().dtype) == expected_dtype(op, dtype, rdt)
            assert not g.requires_grad, f"{op.name}{s}: integer result requires grad"


def test_int_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        taiji.tensor([1, 2], requires_grad=True)


def test_non_differentiable_outputs_do_not_require_grad():
    x = taiji.tensor([[1.0, 3.0], [2.0, 0.5]], requires_grad=True)
    for out in (taiji.argmax(x, 1), x > 1, taiji.isnan(x), taiji.sort(x)[1], x.max(1)[1]):
        assert not out.requires_grad
    assert taiji.sort(x)[0].requires_grad


REQUIRED = """exp log log1p expm1 log2 sqrt rsqrt sin cos tan tanh sigmoid relu gelu silu softplus
erf abs sign neg reciprocal square clamp floor ceil round trunc maximum minimum where isnan isinf
isfinite logical_and logical_or logical_not pow atan2 op_add op_sub op_mul op_truediv op_floordiv
op_mod sum mean var std prod max min amax amin argmax argmin logsumexp all any cumsum cumprod norm
reshape view flatten unflatten squeeze unsqueeze permute transpose T mT expand expand_as
broadcast_to cat stack split chunk unbind pad flip repeat tile roll narrow getitem setitem gather
scatter scatter_add index_select take_along_dim masked_fill one_hot sort argsort topk matmul
einsum tensordot outer softmax log_softmax""".split()


def test_registry_covers_required_ops():
    names = {op.name for op in OPS}
    assert not [n for n in REQUIRED if n not in names]
    for op in OPS:
        for dt in op.dtypes + op.int_dtypes:
            assert sample_inputs(op, dt), f"{op.name} has no samples for {dt}"


def test_gradcheck_catches_a_wrong_gradient():
    def wrong(x):  # forward is 3x, but the tape sees only 2x
        return x * 2 + (x * 1).detach()
    with pytest.raises(AssertionError, match="gradient of input 0"):
        gradcheck(wrong, [np.array([0.5, -1.0])])
    assert gradcheck(lambda x: x * 3, [np.array([0.5, -1.0])])


def test_gradgradcheck_catches_a_wrong_second_derivative():
    def cube(x):  # value x**3, first derivative 3x**2 right, but built from detached x
        c = x.detach()
        return c ** 3 + (x - c) * 3 * c ** 2
    assert gradcheck(cube, [np.array([0.5, -1.0])])
    with pytest.raises(AssertionError, match="second-order gradient of input 0"):
        gradgradcheck(cube, [np.array([0.5, -1.0])])
    assert gradgradcheck(lambda x: x ** 3, [np.array([0.5, -1.0])])
