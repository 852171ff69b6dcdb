"""Transposed (F-order) inputs computed on their C-order transposes (compiler/layout.py)."""
import re

import numpy as np
import pytest

import taiji
from taiji import optim
from taiji.compiler import blas, fusion, layout, native

from _train import ce_step, first_weight_mlp


def _t(a):
    """Tensor over an F-order array holding ``a``'s values."""
    return taiji.from_numpy(np.asfortranarray(a))


def _rng():
    return np.random.default_rng(7)


def test_transposed():
    a = np.ones((3, 4), np.float32)
    assert not layout.transposed(a) and layout.transposed(a.T)
    assert not layout.transposed(np.ones(3, np.float32))         # 1-D: both layouts
    assert not layout.transposed(np.ones((3, 1), np.float32).T)  # (1, 3): C too
    assert not layout.transposed(a.T[:, ::2]) and not layout.transposed([[1.0]])


def test_an_update_meeting_products_runs_on_transposes():
    def f(w, m, x, d):
        g = x.T @ d                       # a product: computed as (d.T @ x).T
        m2 = m * 0.9 + g * 0.1
        return w - 0.5 * m2, m2

    jf = taiji.jit(f)
    rng = _rng()
    w, m = _t(rng.standard_normal((5, 3), np.float32)), _t(rng.standard_normal((5, 3), np.float32))
    x, d = taiji.tensor(rng.standard_normal((8, 5), np.float32)), \
        taiji.tensor(rng.standard_normal((8, 3), np.float32))
    out = jf(w, m, x, d)
    text = jf.lower(w, m, x, d).as_text()
    assert "# pass: layout (" in text
    assert re.search(r"matmul\(t\d+, t\d+, ta=True, tb=False\)  # f32\[3,5\]", text)
    want = f(w, m, x, d)
    for o, e in zip(out, want):
        assert o._data.flags.f_contiguous and not o._data.flags.c_contiguous  # a view out
        np.testing.assert_allclose(o.numpy(), e.numpy(), rtol=1e-6)


def test_a_c_order_partner_keeps_the_graph():
    # w (F-order) meets c (C-order) elementwise: one of them would need a copy, so nothing
    # is transposed; the values are right either way
    def f(w, c):
        return w * 2.0 + c

    jf = taiji.jit(f)
    rng = _rng()
    w, c = _t(rng.standard_normal((4, 6), np.float32)), \
        taiji.tensor(rng.standard_normal((4, 6), np.float32))
    out = jf(w, c)
    assert "# pass: layout" not in jf.lower(w, c).as_text()
    np.testing.assert_allclose(out.numpy(), f(w, c).numpy(), rtol=1e-6)


def test_a_program_traced_on_a_transposed_array_takes_a_row_major_one():
    jf = taiji.jit(lambda w, x: (x @ w.T) * 2.0)
    rng = _rng()
    w = rng.standard_normal((4, 6), np.float32)
    x = taiji.tensor(rng.standard_normal((2, 6), np.float32))
    jf(_t(w), x)
    assert "# pass: layout (" in jf.lower(_t(w), x).as_text()
    for arr in (w, np.asfortranarray(w)):  # the same program (the key has no layout)
        np.testing.assert_allclose(jf(taiji.from_numpy(arr), x).numpy(), x.numpy() @ w.T * 2.0,
                                   rtol=1e-5)


def _trained(transposed: bool):
    model, w = first_weight_mlp(transposed)
    storage = model[0].weight._data
    opt = optim.Adam(model.parameters(), lr=1e-2)
    step = taiji.jit(ce_step(model, opt))
    rng = _rng()
    x = taiji.tensor(rng.standard_normal((16, 12), np.float32))
    y = taiji.tensor(rng.integers(0, 3, 16))
    for i in range(5):
        step(x, y)
        if i == 2:
            fusion.wait_for_kernels(120)
    return model, opt, storage, w, step.lower(x, y)


@pytest.mark.skipif(not fusion._numba_available() or not blas.blas(),
                    reason="needs numba and NumPy's OpenBLAS")
def test_a_transposed_parameter_is_updated_in_place_natively(kernels, monkeypatch):
    monkeypatch.setattr(native, "enabled", True)
    model, opt, storage, w, low = _trained(transposed=True)
    text = low.as_text()
    assert "# pass: layout (" in text
    # the new weight and its Adam state are written over their own storage, as row-major
    in_place = re.compile(r"plan_memory \(.*?(\d+) in place\)")
    assert in_place.search(text)[1] == in_place.search(_trained(False)[4].as_text())[1]
    src = low.native_source
    assert src is not None, low._c.native.error
    # the weight's transpose (a C-contiguous view) is an argument of a native segment
    views = re.findall(r"(t\d+) = t\d+\.transpose\(\(1, 0\)\)", src)
    calls = " ".join(re.findall(r"= _n\d+\(([^)]*)\)", src))
    assert views and any(re.search(rf"\b{v}\b", calls) for v in views)
    assert model[0].weight._data is storage  # updated in place, never rebound
    st = opt.state[model[0].weight]
    assert st["exp_avg"]._data.flags.f_contiguous and st["exp_avg_sq"]._data.flags.f_contiguous
    assert model[0].weight.grad._data.flags.f_contiguous
    assert not np.array_equal(storage, w.T.T)  # it trained


def test_a_transposed_state_updated_by_one_operation():
    # no fused region to write through: the new value is computed aside and copied back
    w = _t(np.arange(12, dtype=np.float32).reshape(3, 4))
    storage = w._data

    @taiji.jit
    def f():
        with taiji.no_grad():
            w.mul_(0.5)
        return taiji.ones(2).sum()

    for k in range(1, 4):
        assert f().item() == 2.0
        np.testing.assert_array_equal(w.numpy(), np.arange(12).reshape(3, 4) * 0.5 ** k)
    assert "# pass: layout (" in f.lower().as_text()
    assert w._data is storage and storage.flags.f_contiguous
