"""matmul's transpose flags (BLAS's): values, gradients, double backward, jvp, vmap."""
import itertools

import numpy as np
import pytest

import taiji
from taiji._prims.linalg import matmul
from tests._gradcheck import gradcheck, gradgradcheck

FLAGS = list(itertools.product([False, True], repeat=2))


def _operands(ta, tb, batch=()):
    rng = np.random.default_rng(int(ta) * 2 + int(tb))
    a = rng.standard_normal(batch + ((4, 3) if ta else (3, 4)))
    b = rng.standard_normal(batch + ((5, 4) if tb else (4, 5)))
    return a, b


@pytest.mark.parametrize("ta,tb", FLAGS)
@pytest.mark.parametrize("batch", [(), (2,)])
def test_forward_and_gradients(ta, tb, batch):
    a, b = _operands(ta, tb, batch)
    want = (np.swapaxes(a, -1, -2) if ta else a) @ (np.swapaxes(b, -1, -2) if tb else b)
    out = matmul(taiji.tensor(a), taiji.tensor(b), ta=ta, tb=tb)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12)

    def f(x, y):
        return matmul(x, y, ta=ta, tb=tb)
    gradcheck(f, [a, b])
    gradgradcheck(f, [a, b])


@pytest.mark.parametrize("ta,tb", FLAGS)
def test_gradients_come_out_contiguous(ta, tb):
    a, b = _operands(ta, tb)
    x = taiji.tensor(a, requires_grad=True)
    y = taiji.tensor(b, requires_grad=True)
    matmul(x, y, ta=ta, tb=tb).sum().backward()
    assert x.grad.numpy().flags.c_contiguous and y.grad.numpy().flags.c_contiguous


@pytest.mark.parametrize("ta,tb", FLAGS)
def test_jvp_and_vmap(ta, tb):
    a, b = _operands(ta, tb)
    x, y = taiji.tensor(a), taiji.tensor(b)
    ta_, tb_ = taiji.tensor(np.ones_like(a)), taiji.tensor(np.ones_like(b))
    f = lambda u, v: matmul(u, v, ta=ta, tb=tb)  # noqa: E731
    _, t = taiji.jvp(f, (x, y), (ta_, tb_))
    np.testing.assert_allclose(t.numpy(), (f(ta_, y) + f(x, tb_)).numpy(), rtol=1e-12)
    xs = taiji.stack([x, 2 * x])
    out = taiji.vmap(f, in_axes=(0, None))(xs, y)
    np.testing.assert_allclose(out.numpy(), np.stack([f(x, y).numpy(), f(2 * x, y).numpy()]),
                               rtol=1e-12)


def test_linear_and_x_at_wT_use_the_flag():
    x = taiji.randn(5, 3)
    w = taiji.randn(4, 3, requires_grad=True)
    out = x @ w.T
    assert out.grad_fn.name() == "MmBackward0" and out._node.params == {"tb": True}
    assert out._node.inputs[1] is w
    out2 = taiji.nn.functional.linear(x, w)
    np.testing.assert_allclose(out.detach().numpy(), out2.detach().numpy())


def test_jit_turns_transposes_into_flags():
    f = taiji.jit(lambda x, w: (x @ w.T).relu() @ w)
    text = f.lower(taiji.randn(2, 3), taiji.randn(4, 3)).as_text()
    assert "transpose" not in text and "tb=True" in text
