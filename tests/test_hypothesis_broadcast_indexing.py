"""Property tests: broadcasting binary ops and basic/advanced indexing against NumPy (with
PyTorch's index order), including gradients and setitem."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import taiji
from op_db import torch_index

SETTINGS = settings(max_examples=50, deadline=None)


def sum_to(a, shape):
    """Reduce a broadcast gradient back to ``shape`` (the reference unbroadcast)."""
    a = np.sum(a, axis=tuple(range(a.ndim - len(shape))))
    return np.sum(a, axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


# (name, op, numpy forward, d/da, d/db, domain of a, domain of b)
BINARY = [
    ("add", lambda a, b: a + b, np.add, lambda a, b: 1.0, lambda a, b: 1.0, None, None),
    ("sub", lambda a, b: a - b, np.subtract, lambda a, b: 1.0, lambda a, b: -1.0, None, None),
    ("mul", lambda a, b: a * b, np.multiply, lambda a, b: b, lambda a, b: a, None, None),
    ("div", lambda a, b: a / b, np.divide, lambda a, b: 1 / b, lambda a, b: -a / b ** 2,
     None, "nonzero"),
    ("pow", lambda a, b: a ** b, np.power, lambda a, b: b * a ** (b - 1),
     lambda a, b: a ** b * np.log(a), "positive", None),
    ("atan2", taiji.atan2, np.arctan2, lambda a, b: b / (a * a + b * b),
     lambda a, b: -a / (a * a + b * b), "positive", None),
    ("maximum", taiji.maximum, np.maximum, lambda a, b: (a > b) * 1.0, lambda a, b: (a < b) * 1.0,
     None, "shifted"),
]


def _values(draw, shape, domain):
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3, width=64)))
    if domain == "positive":
        return np.abs(x) + 0.5
    if domain == "nonzero":
        return np.where(x >= 0, x + 0.5, x - 0.5)
    if domain == "shifted":  # no ties with the other operand, whose values are integers + 0
        return np.round(x) + 0.5
    return x


@st.composite
def binary_case(draw):
    name, op, ref, da, db, dom_a, dom_b = draw(st.sampled_from(BINARY))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3))
    a_shape, b_shape = shapes.input_shapes
    a = _values(draw, a_shape, dom_a)
    if name == "maximum":
        a = np.round(a)
    b = _values(draw, b_shape, dom_b)
    return name, op, ref, da, db, a, b, shapes.result_shape


@SETTINGS
@given(binary_case(), st.sampled_from([np.float32, np.float64]))
def test_broadcast_binary_forward_and_gradients(case, dtype):
    name, op, ref, da, db, a, b, out_shape = case
    a, b = a.astype(dtype), b.astype(dtype)
    ta = taiji.tensor(a, requires_grad=True)
    tb = taiji.tensor(b, requires_grad=True)
    out = op(ta, tb)
    assert tuple(out.shape) == out_shape
    assert out.detach().numpy().dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.detach().numpy(), ref(a.astype(np.float64), b.astype(np.float64)),
                               **tol)
    v = np.random.default_rng(0).standard_normal(out_shape).astype(dtype)
    ga, gb = taiji.autograd.grad(out, [ta, tb], taiji.tensor(v))
    assert tuple(ga.shape) == a.shape and tuple(gb.shape) == b.shape
    assert ga.dtype == ta.dtype and gb.dtype == tb.dtype
    A, B = np.broadcast_arrays(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(ga.detach().numpy(), sum_to(v * da(A, B), a.shape), **tol)
    np.testing.assert_allclose(gb.detach().numpy(), sum_to(v * db(A, B), b.shape), **tol)


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
def test_broadcast_where_and_python_scalars(shapes):
    rng = np.random.default_rng(len(shapes.result_shape))
    c = rng.random(shapes.input_shapes[0]) < 0.5
    x = rng.standard_normal(shapes.input_shapes[1]).astype(np.float32)
    y = rng.standard_normal(shapes.input_shapes[2]).astype(np.float32)
    tx = taiji.tensor(x, requires_grad=True)
    out = taiji.where(taiji.tensor(c), tx, taiji.tensor(y)) * 2.0 + 1
    assert out.dtype == taiji.float32, "python scalars must not promote float32"
    np.testing.assert_allclose(out.detach().numpy(), np.where(c, x, y) * 2 + 1, rtol=1e-6)
    (g,) = taiji.autograd.grad(out.sum(), [tx])
    np.testing.assert_allclose(g.detach().numpy(), sum_to(np.broadcast_to(np.where(c, 2.0, 0.0) * 1.0,
                                                                 shapes.result_shape) *
                                                 np.ones(shapes.result_shape), x.shape), rtol=1e-6)


def test_incompatible_broadcast_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"\[2, 3\].*\[4\]|\(2, 3\).*\(4,?\)|3.*4"):
        taiji.ones(2, 3) + taiji.ones(4)


# ---------------------------------------------------------------- indexing


@st.composite
def index_case(draw, allow_adv=True):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    idx, dims_left = [], list(shape)
    used_ellipsis = False
    while dims_left:
        kind = draw(st.sampled_from(["int", "slice", "none", "adv", "full", "ellipsis", "stop"]
                                    if allow_adv else ["int", "slice", "none", "full",
                                                       "ellipsis", "stop"]))
        if kind == "stop":
            break
        if kind == "none":
            idx.append(None)
            continue
        if kind == "ellipsis":
            if used_ellipsis:
                continue
            used_ellipsis = True
            idx.append(Ellipsis)
            k = draw(st.integers(0, len(dims_left)))
            dims_left = dims_left[k:] if k else dims_left
            continue
        n = dims_left.pop(0)
        if kind == "int":
            idx.append(draw(st.integers(-n, n - 1)))
        elif kind == "full":
            idx.append(slice(None))
        elif kind == "slice":
            idx.append(slice(draw(st.none() | st.integers(-n - 1, n + 1)),
                             draw(st.none() | st.integers(-n - 1, n + 1)),
                             draw(st.none() | st.integers(1, 3))))
        else:
            size = draw(st.sampled_from([(1,), (2,), (3,), (2, 2)]))
            idx.append(np.asarray(draw(hnp.arrays(np.int64, size,
                                                  elements=st.integers(-n, n - 1)))))
    if used_ellipsis and sum(1 for i in idx if i is not None and i is not Ellipsis) > len(
            shape):
        idx = [i for i in idx if i is not Ellipsis]
    adv = [i for i in idx if isinstance(i, np.ndarray)]
    if adv:  # advanced indices must broadcast together
        try:
            np.broadcast_shapes(*[a.shape for a in adv])
        except ValueError:
            idx = [i if not isinstance(i, np.ndarray) else i.reshape(-1)[:1] for i in idx]
    try:  # an Ellipsis can move later entries onto other dims: keep only valid indices
        _np_get(np.empty(shape), tuple(idx))
    except IndexError:
        assume(False)
    return shape, tuple(idx)


def _np_get(x, idx):
    for i in torch_index(idx):
        x = x[i]
    return x


def _np_set(x, idx, v):
    passes = torch_index(idx)
    view = x[passes[0]] if len(passes) == 2 else x
    view[passes[-1]] = v


def _np_add_at(x, idx, v):
    passes = torch_index(idx)
    view = x[passes[0]] if len(passes) == 2 else x
    if any(isinstance(i, np.ndarray) for i in passes[-1]):
        np.add.at(view, passes[-1], v)
    else:
        view[passes[-1]] += v


@SETTINGS
@given(index_case())
def test_getitem_matches_numpy_and_gradient_scatters(case):
    shape, idx = case
    x = np.random.default_rng(0).standard_normal(shape)
    want = _np_get(x, idx)
    tx = taiji.tensor(x, requires_grad=True)
    t_idx = tuple(taiji.tensor(i) if isinstance(i, np.ndarray) else i for i in idx)
    got = tx[t_idx]
    assert tuple(got.shape) == want.shape, (idx, got.shape, want.shape)
    np.testing.assert_array_equal(got.detach().numpy(), want)
    np.testing.assert_array_equal(tx[idx].detach().numpy(), want)  # NumPy arrays as indices too
    v = np.random.default_rng(1).standard_normal(want.shape)
    (g,) = taiji.autograd.grad(got, [tx], taiji.tensor(v))
    expect = np.zeros(shape)
    _np_add_at(expect, idx, v)  # repeated indices accumulate
    np.testing.assert_allclose(g.detach().numpy(), expect, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(index_case(), st.booleans())
def test_setitem_matches_numpy(case, with_grad):
    shape, idx = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    target = _np_get(x, idx)
    if any(isinstance(i, np.ndarray) for i in idx):  # duplicate writes: torch leaves the
        flat = _np_get(np.arange(x.size).reshape(shape), idx).reshape(-1)   # winner undefined
        if len(np.unique(flat)) != len(flat):
            idx = tuple(np.unique(i.reshape(-1))[:1] if isinstance(i, np.ndarray) else i
                        for i in idx)
            target = _np_get(x, idx)
    v = rng.standard_normal(target.shape[1:] if target.ndim and rng.random() < 0.5
                            else target.shape)
    want = x.copy()
    _np_set(want, idx, v)
    tx = taiji.tensor(x, requires_grad=with_grad)
    tv = taiji.tensor(v, requires_grad=with_grad)
    y = tx.clone() if with_grad else tx
    y[idx] = tv
    np.testing.assert_array_equal(y.detach().numpy(), want)
    if with_grad:
        gx, gv = taiji.autograd.grad(y, [tx, tv], taiji.ones(*shape, dtype=taiji.float64))
        mask = np.ones(shape)
        _np_set(mask, idx, 0.0)
        np.testing.assert_array_equal(gx.detach().numpy(), mask)  # overwritten entries get no grad
        written = np.zeros(shape)
        _np_set(written, idx, 1.0)
        assert gv.detach().numpy().shape == v.shape
        np.testing.assert_allclose(gv.detach().numpy().sum(), written.sum() if v.shape == target.shape
                                   else gv.detach().numpy().sum())
        np.testing.assert_allclose(gv.detach().numpy(), sum_to(np.ones(target.shape), v.shape))


@SETTINGS
@given(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), st.integers(0, 2 ** 16))
def test_bool_mask_getitem_and_setitem(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    k = rng.integers(1, len(shape) + 1)
    mask = rng.random(shape[:k]) < 0.5
    tx = taiji.tensor(x, requires_grad=True)
    got = tx[taiji.tensor(mask)]
    np.testing.assert_array_equal(got.detach().numpy(), x[mask])
    (g,) = taiji.autograd.grad(got.sum(), [tx])
    np.testing.assert_array_equal(g.detach().numpy(), np.broadcast_to(
        mask.reshape(mask.shape + (1,) * (len(shape) - k)), shape).astype(np.float64))
    y = taiji.tensor(x)
    y[taiji.tensor(mask)] = -7.0
    want = x.copy()
    want[mask] = -7.0
    np.testing.assert_array_equal(y.detach().numpy(), want)


def test_index_errors_name_the_problem():
    x = taiji.zeros(2, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        x[2]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="out of bounds"):
        x[:, taiji.tensor([0, 3])]
    with pytest.raises(IndexError, match="long, int, byte or bool"):
        x[taiji.tensor([0.5])]
