"""Elementwise fusion: regions form where they should, and kernels equal NumPy."""
import numpy as np
import pytest

import taiji
from taiji.compiler import fusion
from taiji.compiler.fusion import pattern


def adam_like(p, g, m, v, c1, c2):
    m2 = m * 0.9 + g * 0.1
    v2 = v * 0.999 + g * g * 0.001
    p2 = p - 1e-3 * (m2 / c1) / ((v2 / c2).sqrt() + 1e-8)
    return p2, m2, v2


def test_patterns():
    assert pattern((4, 5), (4, 5)) == "f"
    assert pattern((), (4, 5)) == "s"
    assert pattern((1, 1), (4, 5)) == "s"
    assert pattern((5,), (4, 5)) == "t"
    assert pattern((1, 5), (4, 5)) == "t"
    assert pattern((4, 1), (4, 5)) == "r"
    assert pattern((4,), (4, 5)) is None


def test_one_region_for_an_elementwise_chain():
    f = taiji.jit(adam_like)
    args = [taiji.randn(8, 16), taiji.randn(8, 16), taiji.randn(8, 16),
            taiji.rand(8, 16), taiji.tensor(0.1), taiji.tensor(0.01)]
    g = f.lower(*args).graph
    fused = [e for e in g.eqns if e.prim.name == "fused"]
    assert len(fused) == 1 and len(fused[0].outputs) == 3
    assert "fuse_elementwise (1 regions)" in f.lower(*args).as_text()


def test_regions_stop_at_reductions_and_shape_changes():
    def h(x, b):
        y = (x * 2 + b).relu()     # region over [4, 6] (b broadcast as 't')
        s = y.sum(1, keepdim=True)  # a reduction ends it
        return (y / s).abs() * 3    # a second region, s read as 'r'
    f = taiji.jit(h)
    g = f.lower(taiji.randn(4, 6), taiji.randn(6)).graph
    names = [e.prim.name for e in g.eqns]
    assert names.count("fused") == 2 and "reduce_sum" in names


@pytest.mark.skipif(not fusion._numba_available(), reason="numba is not installed")
def test_kernels_match_numpy_path_and_eager(kernels):
    rng = np.random.default_rng(0)
    arrs = [rng.standard_normal((32, 48)).astype(np.float32) for _ in range(3)]
    arrs.append(rng.random((32, 48)).astype(np.float32))
    args = [taiji.tensor(a) for a in arrs] + [taiji.tensor(0.1), taiji.tensor(0.01)]
    eager = [t.numpy() for t in adam_like(*args)]
    f = taiji.jit(adam_like)
    first = [t.numpy() for t in f(*args)]  # NumPy tier (the kernel may still compile)
    assert fusion.wait_for_kernels(120)
    region = next(e.params["region"] for e in f.lower(*args).graph.eqns
                  if e.prim.name == "fused")
    assert region.kernel is not None
    second = [t.numpy() for t in f(*args)]  # kernel tier
    for a, b, c in zip(eager, first, second):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(not fusion._numba_available(), reason="numba is not installed")
def test_kernel_broadcast_patterns_and_select(kernels):
    def h(x, b, r):
        return taiji.where(x > 0, x * b, (x - r).tanh()).sigmoid()
    f = taiji.jit(h)
    x, b, r = taiji.randn(5, 7), taiji.randn(7), taiji.randn(5, 1)
    want = h(x, b, r).numpy()
    f(x, b, r)
    fusion.wait_for_kernels(120)
    np.testing.assert_allclose(f(x, b, r).numpy(), want, rtol=1e-5, atol=1e-6)


def test_numpy_tier_when_fusion_disabled(monkeypatch):
    monkeypatch.setattr(fusion, "enabled", False)
    f = taiji.jit(lambda x: (x * 2).abs() + 1)
    x = taiji.randn(3, 3)
    region = next(e.params["region"] for e in f.lower(x).graph.eqns if e.prim.name == "fused")
    np.testing.assert_allclose(f(x).numpy(), ((x * 2).abs() + 1).numpy(), rtol=1e-6)
    assert region.kernel is None


@pytest.mark.skipif(not fusion._numba_available(), reason="numba is not installed")
def test_kernel_tier_is_bitwise_equal_to_numpy_tier(kernels):
    # results must not depend on when the background compile finished
    rng = np.random.default_rng(3)
    args = [taiji.tensor(rng.standard_normal((64, 96)).astype(np.float32)) for _ in range(3)]
    args += [taiji.tensor(rng.random((64, 96)).astype(np.float32)), taiji.tensor(0.1),
             taiji.tensor(0.01)]
    f = taiji.jit(adam_like)
    first = [t.numpy().copy() for t in f(*args)]
    fusion.wait_for_kernels(120)
    region = next(e.params["region"] for e in f.lower(*args).graph.eqns
                  if e.prim.name == "fused")
    assert region.kernel is not None
    for a, b in zip(first, f(*args)):
        assert np.array_equal(a, b.numpy())


def test_transcendental_ops_stay_out_of_kernels():
    g = taiji.jit(lambda x: (x * 2 + 1).exp().tanh() * 3).lower(taiji.randn(4, 4)).graph
    for e in g.eqns:
        if e.prim.name == "fused":
            names = {q.prim.name for q in e.params["region"].graph.eqns}
            assert not names & {"exp", "tanh", "log", "pow"}


def _relu_backward_with_bias_grad(h, g):
    d = (h > 0) * g
    return d * 1.0, d.sum(0)


def test_column_sums_join_the_region_that_produces_them():
    f = taiji.jit(_relu_backward_with_bias_grad)
    g = f.lower(taiji.randn(6, 5), taiji.randn(6, 5)).graph
    names = [e.prim.name for e in g.eqns]
    assert "reduce_sum" not in names and names.count("fused") == 1
    assert "absorb_column_sums (1)" in str(g)
    region = next(e for e in g.eqns if e.prim.name == "fused").params["region"]
    assert region.colsum == (0,) and region.out_shapes[-1] == (5,)
    # a sum over rows of a 1-column region would be a pairwise sum in NumPy: not absorbed
    g1 = f.lower(taiji.randn(6, 1), taiji.randn(6, 1)).graph
    assert "reduce_sum" in [e.prim.name for e in g1.eqns]


def test_column_sum_kernel_is_bitwise_equal_to_numpy(kernels):
    rng = np.random.default_rng(3)
    h = rng.standard_normal((300, 7)).astype(np.float32)
    g = (rng.standard_normal((300, 7)) * rng.uniform(0.1, 1e4, (300, 1))).astype(np.float32)
    h[:, 2] = -1.0   # a dead unit: its column is (False * negative) = -0.0, summing to +0.0
    g[:, 2] = -np.abs(g[:, 2])
    want_d = (h > 0) * g
    want_s = want_d.sum(0)
    f = taiji.jit(_relu_backward_with_bias_grad)
    numpy_tier = [o.numpy() for o in f(taiji.tensor(h), taiji.tensor(g))]
    assert kernels.wait_for_kernels(120)
    region = next(e for e in f.lower(taiji.tensor(h), taiji.tensor(g)).graph.eqns
                  if e.prim.name == "fused").params["region"]
    assert region.kernel is not None
    kernel_tier = [o.numpy() for o in f(taiji.tensor(h), taiji.tensor(g))]
    for a, b in zip(numpy_tier, kernel_tier):
        assert a.tobytes() == b.tobytes()
    assert kernel_tier[1].tobytes() == want_s.tobytes()
    assert not np.signbit(kernel_tier[1][2]) and np.signbit(kernel_tier[0][:, 2]).all()


def test_backward_through_a_one_output_region_outside_jit():
    # jit(f)(x) with x requiring grad runs the graph under autograd; a fused region is a
    # multiple-results primitive, so its VJP takes tuples even for one output (the engine
    # handed it a bare tensor, which raised a pytree mismatch)
    f = taiji.jit(lambda x: (x * 2.0 + 1.0) * x)
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert any(e.prim.name == "fused" for e in f.lower(x).graph.eqns)
    f(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 9.0, 13.0])  # d/dx (2x^2 + x) = 4x + 1
