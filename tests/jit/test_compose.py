"""jit composes with the other transforms; control flow under jit, vmap and grad."""
import numpy as np
import pytest

import taiji


def f(x):
    return (x.tanh() * x).sum()


def df(x):
    t = np.tanh(x)
    return t + x * (1 - t * t)


X = np.array([0.3, -1.2, 2.0], np.float32)


def test_jit_of_grad():
    g = taiji.jit(taiji.grad(f))
    np.testing.assert_allclose(g(taiji.tensor(X)).numpy(), df(X), rtol=1e-5)
    assert "matmul" not in g.lower(taiji.tensor(X)).as_text()


def test_grad_of_jit():
    g = taiji.grad(taiji.jit(f))
    np.testing.assert_allclose(g(taiji.tensor(X)).numpy(), df(X), rtol=1e-5)


def test_vmap_of_jit_and_jit_of_vmap():
    xs = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    want = np.array([float(f(taiji.tensor(r))) for r in xs])
    np.testing.assert_allclose(taiji.vmap(taiji.jit(f))(taiji.tensor(xs)).numpy(), want,
                               rtol=1e-5)
    np.testing.assert_allclose(taiji.jit(taiji.vmap(f))(taiji.tensor(xs)).numpy(), want,
                               rtol=1e-5)


def test_jit_of_vmap_of_grad_matches_loop():
    xs = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    out = taiji.jit(taiji.vmap(taiji.grad(f)))(taiji.tensor(xs)).numpy()
    np.testing.assert_allclose(out, np.stack([df(r) for r in xs]), rtol=1e-5)


def test_cond_under_jit_grad_and_vmap():
    def h(x):
        return taiji.cond(x.sum() > 0, lambda v: (v * v).sum(), lambda v: -v.sum(), x)
    jh = taiji.jit(h)
    assert float(jh(taiji.tensor([1.0, 2.0]))) == 5.0
    assert float(jh(taiji.tensor([-1.0, -2.0]))) == 3.0
    np.testing.assert_allclose(taiji.grad(jh)(taiji.tensor([1.0, 2.0])).numpy(), [2.0, 4.0])
    np.testing.assert_allclose(taiji.grad(h)(taiji.tensor([-1.0, -2.0])).numpy(), [-1.0, -1.0])
    out = taiji.vmap(h)(taiji.tensor([[1.0, 2.0], [-1.0, -2.0]]))
    np.testing.assert_allclose(out.numpy(), [5.0, 3.0])


def test_switch_picks_branch_by_index():
    br = [lambda v: v + 1, lambda v: v * 10, lambda v: -v]
    js = taiji.jit(lambda i, v: taiji.switch(i, br, v))
    for i, want in [(0, 3.0), (1, 20.0), (2, -2.0), (7, -2.0)]:
        assert float(js(taiji.tensor(i), taiji.tensor(2.0))) == want


def test_while_loop_jit_and_vmap():
    def collatz_steps(n):
        def body(c):
            k, steps = c
            return taiji.where(k % 2 == 0, k // 2, 3 * k + 1), steps + 1
        return taiji.while_loop(lambda c: c[0] != 1, body, (n, taiji.tensor(0)))[1]
    assert int(taiji.jit(collatz_steps)(taiji.tensor(6))) == 8
    out = taiji.vmap(collatz_steps)(taiji.tensor([1, 6, 7]))
    assert out.tolist() == [0, 8, 16]
    text = taiji.jit(collatz_steps).lower(taiji.tensor(6)).as_text()
    assert "while(" in text and "_cond_graph" in text and "_body_graph" in text


def test_while_loop_is_not_reverse_differentiable():
    x = taiji.tensor(1.0, requires_grad=True)
    y = taiji.while_loop(lambda v: v < 10, lambda v: v * 2, x)
    with pytest.raises(RuntimeError, match="Reverse-mode differentiation does not work"):
        y.backward()


def test_fori_loop_and_scan_are_differentiable_under_jit():
    def poly(x):
        return taiji.fori_loop(0, 3, lambda i, v: v * x + i, taiji.zeros_like(x)).sum()
    x = taiji.tensor([2.0])  # ((0*x+0)*x+1)*x+2 = x + 2
    np.testing.assert_allclose(taiji.jit(taiji.grad(poly))(x).numpy(), [1.0])

    def cumulative(xs):
        c, ys = taiji.scan(lambda c, v: (c + v, c * v), taiji.zeros(2), xs)
        return c.sum() + ys.sum()
    xs = taiji.tensor(np.arange(6.0, dtype=np.float32).reshape(3, 2))
    g = taiji.jit(taiji.grad(cumulative))(xs).numpy()
    eps = 1e-3
    num = np.zeros((3, 2))
    for i in range(3):
        for j in range(2):
            d = np.zeros((3, 2), np.float32)
            d[i, j] = eps
            num[i, j] = (float(cumulative(xs + taiji.tensor(d))) -
                         float(cumulative(xs - taiji.tensor(d)))) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-2, atol=1e-2)


def test_fori_loop_with_traced_bounds_uses_while():
    js = taiji.jit(lambda n, x: taiji.fori_loop(0, n, lambda i, v: v + 2.0, x))
    assert float(js(taiji.tensor(4), taiji.tensor(1.0))) == 9.0


def test_cond_branches_must_agree():
    with pytest.raises(TypeError, match="output leaf 0 differs"):
        taiji.jit(lambda x: taiji.cond(x.sum() > 0, lambda v: v, lambda v: v.sum(), x))(
            taiji.ones(2))


def test_random_keys_identical_eager_jit_vmap():
    k = taiji.random.key(42)
    eager = taiji.random.normal(k, (3,)).numpy()
    jitted = taiji.jit(lambda key: taiji.random.normal(key, (3,)))(k).numpy()
    np.testing.assert_array_equal(eager, jitted)
    keys = taiji.random.split(k, 4)
    batched = taiji.vmap(lambda key: taiji.random.normal(key, (3,)))(keys).numpy()
    loop = np.stack([taiji.random.normal(keys[i], (3,)).numpy() for i in range(4)])
    np.testing.assert_allclose(batched, loop, rtol=1e-6)


def test_while_loop_forward_mode():
    # x doubles until it passes 10: for x0 = 1.5 that is 3 doublings, d/dx0 = 8
    f = lambda x: taiji.while_loop(lambda v: v < 10, lambda v: v * 2, x)  # noqa: E731
    out, tan = taiji.jvp(f, (taiji.tensor(1.5),), (taiji.tensor(1.0),))
    assert float(out) == 12.0 and float(tan) == 8.0
    out, tan = taiji.jit(lambda x, t: taiji.jvp(f, (x,), (t,)))(taiji.tensor(1.5),
                                                               taiji.tensor(1.0))
    assert float(tan) == 8.0
