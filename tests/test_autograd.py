"""Reverse-mode autograd: accumulation, retain_graph, double backward, autograd.grad, hooks,
retain_grad, grad modes, detach, grad_fn and is_leaf."""
import numpy as np
import pytest

import taiji
from taiji import autograd


def _torch():
    return pytest.importorskip("torch", reason="torch is the autograd reference; "
                                               "not installed")


# ---------------------------------------------------------------- backward basics


def test_leaf_grad_accumulates_across_backward_calls():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    (x * x).sum().backward()
    assert x.grad.tolist() == [4.0, 8.0]
    (3 * x).sum().backward()
    assert x.grad.tolist() == [7.0, 11.0]
    x.grad = None
    (x * 5).sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


def test_grad_accumulates_over_multiple_paths():
    x = taiji.tensor(2.0, requires_grad=True)
    y = x * x + x * 3 + x.exp()   # x used three times
    y.backward()
    assert x.grad.item() == pytest.approx(2 * 2 + 3 + np.exp(2), rel=1e-6)


def test_backward_with_explicit_gradient():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.backward(taiji.tensor([1.0, 0.5]))
    assert x.grad.tolist() == [2.0, 1.0]
    x2 = taiji.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (x2 ** 2).backward(gradient=taiji.ones(2, 2))
    assert x2.grad.tolist() == [[2.0, 4.0], [6.0, 8.0]]


def test_grad_is_not_tracked_and_has_leaf_dtype():
    x = taiji.tensor([1.0, 2.0], dtype=taiji.float64, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.dtype is taiji.float64
    assert not x.grad.requires_grad and x.grad.grad_fn is None


def test_retain_graph_allows_second_backward():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 3).sum()
    y.backward(retain_graph=True)
    assert x.grad.tolist() == [3.0, 12.0]
    y.backward()
    assert x.grad.tolist() == [6.0, 24.0]


def test_backward_inputs_restricts_accumulation():
    a = taiji.tensor([1.0], requires_grad=True)
    b = taiji.tensor([2.0], requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    assert a.grad.tolist() == [2.0] and b.grad is None


def test_multiple_roots_backward():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    autograd.backward([(x * 2).sum(), (x * x).sum()])
    assert x.grad.tolist() == [4.0, 6.0]


def test_no_grad_flows_through_non_differentiable_paths():
    x = taiji.tensor([1.0, -2.0, 3.0], requires_grad=True)
    idx = x.argmax()
    assert not idx.requires_grad
    mask = x > 0
    assert not mask.requires_grad
    (x * mask).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]


def test_only_float_outputs_require_grad():
    x = taiji.tensor([1.5, 2.5], requires_grad=True)
    assert (x * 2).requires_grad
    assert not (x * 2).long().requires_grad
    assert (x * 2).double().requires_grad


# ---------------------------------------------------------------- double backward


def test_create_graph_double_backward_scalar():
    x = taiji.tensor(2.0, requires_grad=True)
    y = x ** 3
    (g,) = autograd.grad(y, x, create_graph=True)
    assert g.item() == 12.0 and g.requires_grad
    (g2,) = autograd.grad(g, x, create_graph=True)
    assert g2.item() == 12.0            # 6x
    (g3,) = autograd.grad(g2, x)
    assert g3.item() == 6.0
    assert not g3.requires_grad


def test_backward_create_graph_then_backward_grad():
    x = taiji.tensor(2.0, requires_grad=True)
    (x ** 3).backward(create_graph=True)
    gx = x.grad
    assert gx.item() == 12.0 and gx.requires_grad and gx.grad_fn is not None
    x.grad = None
    gx.backward()
    assert x.grad.item() == 12.0


def test_hessian_vector_product_quadratic_form():
    # f(x) = 0.5 x^T A x + sum(sin x):  H = (A + A^T)/2 - diag(sin x)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    xv = rng.standard_normal(4)
    v = rng.standard_normal(4)
    x = taiji.tensor(xv, requires_grad=True)
    At = taiji.tensor(A)
    f = 0.5 * (x @ (At @ x)) + x.sin().sum()
    (g,) = autograd.grad(f, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 0.5 * (A + A.T) @ xv + np.cos(xv),
                               rtol=1e-10)
    (hv,) = autograd.grad(g, x, grad_outputs=taiji.tensor(v), retain_graph=True)
    H = 0.5 * (A + A.T) - np.diag(np.sin(xv))
    np.testing.assert_allclose(hv.numpy(), H @ v, rtol=1e-10)
    # the same via (g . v).backward()
    x.grad = None
    (g * taiji.tensor(v)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), H @ v, rtol=1e-10)


def test_double_backward_through_nonlinear_ops_matches_torch():
    torch = _torch()
    data = [0.3, -1.2, 2.0]
    v = [1.0, 2.0, -0.5]
    x = taiji.tensor(data, dtype=taiji.float64, requires_grad=True)
    tx = torch.tensor(data, dtype=torch.float64, requires_grad=True)

    def f(lib, t):
        return (lib.tanh(t) * t.exp() + (t * t).sigmoid() / (1 + t * t)).sum()

    (g,) = autograd.grad(f(taiji, x), x, create_graph=True)
    (tg,) = torch.autograd.grad(f(torch, tx), tx, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-10)
    (h,) = autograd.grad(g, x, grad_outputs=taiji.tensor(v, dtype=taiji.float64))
    (th,) = torch.autograd.grad(tg, tx, grad_outputs=torch.tensor(v, dtype=torch.float64))
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-9)


def test_gradient_penalty_style_double_backward():
    # d/dw of ||d(w*x^2)/dx||^2 = d/dw (2 w x)^2 = 8 w x^2
    w = taiji.tensor(1.5, requires_grad=True)
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = (w * x ** 2).sum()
    (gx,) = autograd.grad(y, x, create_graph=True)
    (gx ** 2).sum().backward()
    assert w.grad.item() == pytest.approx(8 * 1.5 * 5.0)


# ---------------------------------------------------------------- autograd.grad


def test_grad_returns_tuple_and_leaves_dot_grad_alone():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    out = autograd.grad((x * x).sum(), x)
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].tolist() == [2.0, 4.0]
    assert x.grad is None


def test_grad_several_inputs_and_nonleaf_input():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    w = taiji.tensor(3.0, requires_grad=True)
    h = x * w
    y = (h * h).sum()
    gx, gw, gh = autograd.grad(y, [x, w, h])
    assert gx.tolist() == [18.0, 36.0]           # 2 w^2 x
    assert gw.item() == 30.0                      # 2 w |x|^2
    assert gh.tolist() == [6.0, 12.0]             # 2 h


def test_grad_allow_unused():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    unused = taiji.tensor([3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"input 1\) appears to not have been used in the "
                                           r"graph. Set allow_unused=True"):
        autograd.grad((x * 2).sum(), [x, unused])
    gx, gu = autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gx.tolist() == [2.0, 2.0] and gu is None
    gx, gu = autograd.grad((x * 2).sum(), [x, unused], allow_unused=True,
                           materialize_grads=True)
    assert gu.tolist() == [0.0]


def test_grad_outputs_weights_vector_output():
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x ** 2
    (g,) = autograd.grad(y, x, grad_outputs=taiji.tensor([1.0, 0.0, -1.0]))
    assert g.tolist() == [2.0, 0.0, -6.0]
    # several outputs with their grad_outputs sum
    (g,) = autograd.grad([x * 2, x * x], x, grad_outputs=[taiji.ones(3), taiji.ones(3)])
    assert g.tolist() == [4.0, 6.0, 8.0]


def test_grad_frees_graph_unless_retained():
    x = taiji.tensor(2.0, requires_grad=True)
    y = x * x
    autograd.grad(y, x, retain_graph=True)
    (g,) = autograd.grad(y, x)
    assert g.item() == 4.0
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        autograd.grad(y, x)


# ---------------------------------------------------------------- hooks and retain_grad


def test_leaf_hook_modifies_grad_and_handle_removes_it():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    h = x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    assert x.grad.tolist() == [20.0, 40.0]
    h.remove()
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_hook_returning_none_observes_only():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    (y * y).sum().backward()
    assert seen == [[6.0, 12.0]]
    assert x.grad.tolist() == [18.0, 36.0]


def test_nonleaf_hook_changes_upstream_gradient():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g + 1)
    y.sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]     # (1 + 1) * 2


def test_multiple_hooks_run_in_order():
    x = taiji.tensor([1.0], requires_grad=True)
    order = []
    x.register_hook(lambda g: order.append("a") or g * 2)
    x.register_hook(lambda g: order.append("b") or g + 1)
    (x * 1).sum().backward()
    assert order == ["a", "b"] and x.grad.tolist() == [3.0]


def test_hooks_apply_in_autograd_grad():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g * 0)
    (g,) = autograd.grad((x * x).sum(), x)
    assert g.tolist() == [0.0, 0.0]


def test_register_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        taiji.ones(2).register_hook(lambda g: g)


def test_retain_grad_on_nonleaf():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = x * 4
    y.retain_grad()
    assert y.retains_grad and not z.retains_grad
    (y * y + z).sum().backward()
    assert y.grad.tolist() == [6.0, 12.0]
    assert z.grad is None
    assert x.grad.tolist() == [22.0, 40.0]


def test_retain_grad_accumulates_and_leaf_is_noop():
    x = taiji.tensor([1.0], requires_grad=True)
    x.retain_grad()            # a leaf keeps its grad anyway
    y = x * 2
    y.retain_grad()
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    assert y.grad.tolist() == [2.0] and x.grad.tolist() == [4.0]


# ---------------------------------------------------------------- grad modes


def test_no_grad_context():
    x = taiji.tensor([1.0], requires_grad=True)
    with taiji.no_grad():
        y = x * 2
        assert not taiji.is_grad_enabled()
    assert taiji.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert y.tolist() == [2.0]


def test_grad_modes_restore_on_exception():
    with pytest.raises(ValueError):
        with taiji.no_grad():
            raise ValueError("boom")
    assert taiji.is_grad_enabled()


def test_no_grad_decorator_with_and_without_parentheses():
    x = taiji.tensor([1.0], requires_grad=True)

    @taiji.no_grad()
    def f(a):
        return a * 2

    @taiji.no_grad
    def g(a):
        return a * 3

    assert not f(x).requires_grad and f(x).tolist() == [2.0]
    assert not g(x).requires_grad and g(x).tolist() == [3.0]
    assert g.__name__ == "g"
    assert taiji.is_grad_enabled()


def test_enable_grad_inside_no_grad_context_and_decorator():
    x = taiji.tensor([1.0], requires_grad=True)

    @taiji.enable_grad()
    def f(a):
        return a * 2

    @taiji.enable_grad
    def g(a):
        return a * 2

    with taiji.no_grad():
        with taiji.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
        assert f(x).requires_grad and g(x).requires_grad
        assert not taiji.is_grad_enabled()


def test_set_grad_enabled_context_function_and_decorator():
    x = taiji.tensor([1.0], requires_grad=True)
    with taiji.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert taiji.is_grad_enabled()
    with taiji.no_grad():
        with taiji.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not taiji.is_grad_enabled()

    @taiji.set_grad_enabled(False)
    def f(a):
        return a * 2

    assert taiji.is_grad_enabled()          # decorating does not switch the mode
    assert not f(x).requires_grad
    assert taiji.is_grad_enabled()

    taiji.set_grad_enabled(False)           # plain call switches at once
    try:
        assert not taiji.is_grad_enabled() and not (x * 2).requires_grad
    finally:
        taiji.set_grad_enabled(True)
    assert taiji.is_grad_enabled()


def test_inference_mode():
    x = taiji.tensor([1.0], requires_grad=True)
    with taiji.inference_mode():
        assert not (x * 2).requires_grad
    with taiji.inference_mode(False):
        assert (x * 2).requires_grad


# ---------------------------------------------------------------- detach, leaves, grad_fn


def test_detach_shares_data_and_cuts_graph():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    assert d.tolist() == [2.0, 4.0]
    (y + d).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]      # no gradient through d
    a = taiji.zeros(2)
    b = a.detach()
    b.add_(1)                                 # shares memory with a
    assert a.tolist() == [1.0, 1.0]


def test_detach_inplace():
    x = taiji.tensor([1.0], requires_grad=True)
    y = x * 2
    y.detach_()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_requires_grad_flag_rules():
    t = taiji.tensor([1.0])
    assert t.requires_grad_() is t and t.requires_grad
    t.requires_grad_(False)
    assert not t.requires_grad
    t.requires_grad = True
    assert t.requires_grad
    y = t * 2
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf"):
        y.requires_grad_(False)


def test_is_leaf():
    a = taiji.tensor([1.0], requires_grad=True)
    b = taiji.tensor([1.0])
    assert a.is_leaf and b.is_leaf
    assert not (a * 2).is_leaf
    assert (b * 2).is_leaf                # no graph: still a leaf
    assert (a * 2).detach().is_leaf
    with taiji.no_grad():
        assert (a * 2).is_leaf


def test_grad_fn_names_for_core_ops():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    assert x.grad_fn is None
    assert type(x.grad_fn).__name__ == "NoneType"
    names = {
        "x * x": (x * x).grad_fn.name(),
        "x + 1": (x + 1).grad_fn.name(),
        "x - x": (x - x).grad_fn.name(),
        "x / 2": (x / 2).grad_fn.name(),
        "exp": x.exp().grad_fn.name(),
        "-x": (-x).grad_fn.name(),
    }
    assert names == {"x * x": "MulBackward0", "x + 1": "AddBackward0",
                     "x - x": "SubBackward0", "x / 2": "DivBackward0",
                     "exp": "ExpBackward0", "-x": "NegBackward0"}
    assert repr((x * x).grad_fn) == "<MulBackward0 object>"


def test_grad_fn_names_match_torch_for_composites():
    torch = _torch()
    x = taiji.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    tx = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    for f in (lambda t: t.sum(), lambda t: t[0], lambda t: t @ t, lambda t: t.double(),
              lambda t: t.reshape(4), lambda t: t.t()):
        assert f(x).grad_fn.name() == f(tx).grad_fn.name()


def test_grads_match_torch_on_a_small_network():
    torch = _torch()
    rng = np.random.default_rng(1)
    X, W1, W2 = (rng.standard_normal(s) for s in [(5, 3), (3, 4), (4, 1)])
    ours = [taiji.tensor(a, requires_grad=True) for a in (W1, W2)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (W1, W2)]
    for lib, (w1, w2) in ((taiji, ours), (torch, theirs)):
        h = lib.tanh(lib.tensor(X) @ w1)
        loss = ((h @ w2) ** 2).mean()
        loss.backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("dtype", [taiji.float16, taiji.bfloat16, taiji.float32,
                                   taiji.float64])
def test_backward_in_every_float_dtype(dtype):
    # a 0-d seed of a low-precision dtype must stay an array (bfloat16 used to fail)
    x = taiji.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.dtype is dtype and x.grad.tolist() == [2.0, 4.0]
    s = taiji.tensor(3.0, dtype=dtype, requires_grad=True)
    (s * s).backward()
    assert s.grad.dtype is dtype and s.grad.item() == 6.0


def test_grad_through_casts_returns_leaf_dtype():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 2).sum().backward()
    assert x.grad.dtype is taiji.float32 and x.grad.tolist() == [2.0, 2.0]
    x.grad = None
    (x * taiji.tensor([1.0, 3.0], dtype=taiji.float64)).sum().backward()
    assert x.grad.dtype is taiji.float32 and x.grad.tolist() == [1.0, 3.0]
    x.grad = None
    (x * 2).backward(taiji.tensor([1, 2]))   # integer gradient= is converted
    assert x.grad.dtype is taiji.float32 and x.grad.tolist() == [2.0, 4.0]


def test_ones_like_of_zero_dim_is_an_array():
    o = taiji.tensor(2.0, dtype=taiji.bfloat16).ones_like()
    assert o.shape == () and o.dtype is taiji.bfloat16 and o.item() == 1.0
    assert isinstance(o.numpy(), np.ndarray)


def test_leaf_grads_own_their_storage():
    # add's VJP hands the same cotangent to both inputs; a sum's is a broadcast view
    a = taiji.ones(3, requires_grad=True)
    b = taiji.ones(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.zero_()
    assert b.grad.tolist() == [1.0, 1.0, 1.0]
    w = taiji.ones(2, 3, requires_grad=True)
    w.sum().backward()
    w.grad.mul_(2.0)  # writable, and only w's
    assert w.grad.tolist() == [[2.0] * 3] * 2
