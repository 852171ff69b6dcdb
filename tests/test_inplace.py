"""In-place ops: values, version counter, aliasing (views and from_numpy), and in-place
updates inside the autograd graph."""
import numpy as np
import pytest

import taiji


def _torch():
    return pytest.importorskip("torch", reason="torch is the reference for in-place autograd; "
                                               "not installed")


# ---------------------------------------------------------------- values


def test_inplace_arithmetic_values():
    t = taiji.tensor([1.0, 2.0, 3.0])
    assert t.add_(1) is t and t.tolist() == [2.0, 3.0, 4.0]
    t.add_(taiji.tensor([1.0, 1.0, 1.0]), alpha=2)
    assert t.tolist() == [4.0, 5.0, 6.0]
    t.sub_(1)
    assert t.tolist() == [3.0, 4.0, 5.0]
    t.mul_(2)
    assert t.tolist() == [6.0, 8.0, 10.0]
    t.div_(4)
    assert t.tolist() == [1.5, 2.0, 2.5]
    t.pow_(2)
    assert t.tolist() == [2.25, 4.0, 6.25]


def test_augmented_assignment_is_inplace():
    t = taiji.tensor([1.0, 2.0])
    alias = t
    t += 1
    t *= 3
    t -= 1
    t /= 2
    assert t is alias
    assert t.tolist() == [2.5, 4.0]


def test_clamp_zero_fill_copy():
    t = taiji.tensor([-3.0, 0.5, 3.0])
    assert t.clamp_(-1, 1) is t and t.tolist() == [-1.0, 0.5, 1.0]
    t.clamp_(min=0)
    assert t.tolist() == [0.0, 0.5, 1.0]
    t.clamp_(max=0.25)
    assert t.tolist() == [0.0, 0.25, 0.25]
    assert t.zero_() is t and t.tolist() == [0.0, 0.0, 0.0]
    assert t.fill_(2.5) is t and t.tolist() == [2.5, 2.5, 2.5]
    t.fill_(taiji.tensor(4.0))
    assert t.tolist() == [4.0, 4.0, 4.0]
    t.copy_(taiji.tensor([4, 5, 6]))          # dtype converted
    assert t.dtype is taiji.float32 and t.tolist() == [4.0, 5.0, 6.0]
    t.copy_(taiji.tensor(9.0))                # broadcast
    assert t.tolist() == [9.0, 9.0, 9.0]
    t.copy_(np.array([1.0, 2.0, 3.0]))
    assert t.tolist() == [1.0, 2.0, 3.0]


def test_int_tensor_inplace():
    t = taiji.tensor([1, 2, 3])
    t.add_(2)
    t.mul_(3)
    assert t.dtype is taiji.int64 and t.tolist() == [9, 12, 15]
    t.fill_(7)
    assert t.tolist() == [7, 7, 7]
    with pytest.raises(RuntimeError, match="float32 can't be cast to the desired output "
                                           "type int64"):
        t.add_(1.5)
    assert t.tolist() == [7, 7, 7]  # unchanged by the failed op


def test_inplace_broadcast_only_into_self_shape():
    t = taiji.zeros(2, 3)
    t.add_(taiji.tensor([1.0, 2.0, 3.0]))
    assert t.tolist() == [[1.0, 2.0, 3.0]] * 2
    with pytest.raises(RuntimeError, match=r"\[3\].*\[2, 3\]|\(3,\).*\(2, 3\)"):
        taiji.zeros(3).add_(taiji.ones(2, 3))


@pytest.mark.parametrize("name,args", [("add_", (2.0,)), ("mul_", (3.0,)), ("sub_", (1.0,)),
                                       ("div_", (2.0,)), ("clamp_", (0.0, 1.5)),
                                       ("pow_", (2,)), ("exp_", ()), ("abs_", ()),
                                       ("neg_", ()), ("sqrt_", ())])
def test_inplace_matches_torch(name, args):
    torch = _torch()
    data = [0.25, 1.0, 2.5]
    ours = taiji.tensor(data)
    theirs = torch.tensor(data)
    getattr(ours, name)(*args)
    getattr(theirs, name)(*args)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


# ---------------------------------------------------------------- version counter


def test_version_counter_bumps_once_per_inplace_op():
    t = taiji.zeros(3)
    v0 = t._version
    t.add_(1)
    assert t._version == v0 + 1
    t += 1
    t.mul_(2)
    t.zero_()
    t.fill_(1)
    t.copy_(taiji.ones(3))
    t.clamp_(0, 1)
    t[0] = 5.0
    t.uniform_()
    t.normal_()
    assert t._version == v0 + 10
    _ = t + 1  # out-of-place ops do not bump
    _ = t.exp()
    assert t._version == v0 + 10


# ---------------------------------------------------------------- aliasing


def test_from_numpy_sees_inplace_writes():
    a = np.zeros(4, dtype=np.float32)
    t = taiji.from_numpy(a)
    t.add_(1)
    t[1] = 5.0
    t.mul_(2)
    t.clamp_(max=4.0)
    np.testing.assert_array_equal(a, [2.0, 4.0, 2.0, 2.0])
    t.zero_()
    assert not a.any()
    t.copy_(taiji.tensor([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0, 4.0])
    t.fill_(9.0)
    np.testing.assert_array_equal(a, [9.0] * 4)


def test_numpy_view_of_tensor_sees_writes():
    t = taiji.zeros(3)
    a = t.numpy()
    t.add_(2)
    t[0] = -1.0
    np.testing.assert_array_equal(a, [-1.0, 2.0, 2.0])


def test_slice_views_see_base_writes_and_back():
    base = taiji.zeros(2, 3)
    row = base[0]
    base.add_(1)
    assert row.tolist() == [1.0, 1.0, 1.0]
    row.fill_(7.0)
    assert base.tolist() == [[7.0, 7.0, 7.0], [1.0, 1.0, 1.0]]
    part = base[:, 1:]
    part.mul_(0)
    assert base.tolist() == [[7.0, 0.0, 0.0], [1.0, 0.0, 0.0]]


def test_setitem_values():
    t = taiji.zeros(3, 3)
    t[0] = 1.0
    t[1, 2] = 2.0
    t[:, 0] = taiji.tensor([5.0, 6.0, 7.0])
    t[t == 0] = -1.0
    assert t.tolist() == [[5.0, 1.0, 1.0], [6.0, -1.0, 2.0], [7.0, -1.0, -1.0]]
    i = taiji.tensor([1, 2, 3])
    i[taiji.tensor([0, 2])] = 0
    assert i.tolist() == [0, 2, 0]


# ---------------------------------------------------------------- autograd


def test_inplace_on_leaf_requiring_grad_raises():
    w = taiji.tensor([1.0, 2.0], requires_grad=True)
    for f in (lambda: w.add_(1), lambda: w.mul_(2), lambda: w.zero_(),
              lambda: w.fill_(1.0), lambda: w.copy_(taiji.ones(2)), lambda: w.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being "
                                               "used in an in-place operation"):
            f()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w[0] = 3.0
    assert w.tolist() == [1.0, 2.0]


def test_inplace_on_leaf_allowed_under_no_grad():
    w = taiji.tensor([1.0, 2.0], requires_grad=True)
    with taiji.no_grad():
        w.add_(1)
        w.mul_(2)
        w[0] = 0.0
    assert w.tolist() == [0.0, 6.0]
    assert w.requires_grad and w.is_leaf and w.grad_fn is None
    (w * w).sum().backward()
    assert w.grad.tolist() == [0.0, 12.0]


def test_setitem_in_graph_gradient():
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y[0] = 5.0
    assert y.tolist() == [5.0, 4.0, 6.0]
    assert y.grad_fn is not None and not y.is_leaf
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 2.0, 2.0]  # the overwritten entry gets no gradient


def test_setitem_differentiable_in_value_and_target():
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = taiji.tensor([10.0, 20.0], requires_grad=True)
    y = x * 1
    y[taiji.tensor([0, 2])] = v
    (y * taiji.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 2.0, 0.0]
    assert v.grad.tolist() == [1.0, 3.0]


def test_setitem_with_expression_of_same_input():
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y[1:] = x[:2] ** 2        # y = [2 x0, x0^2, x1^2]
    y.sum().backward()
    assert x.grad.tolist() == [4.0, 4.0, 0.0]


def test_setitem_on_detached_then_used_in_graph():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    mask = taiji.ones(2)
    mask[1] = 0.0
    (x * mask).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]


def test_inplace_arithmetic_in_graph_gradients():
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    y += 1
    y *= x           # y = (x + 1) * x
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 5.0, 7.0]  # 2x + 1


@pytest.mark.parametrize("op", [
    lambda y, x: y.mul_(x), lambda y, x: y.pow_(2), lambda y, x: y.exp_(),
    lambda y, x: y.clamp_(1.5, 2.5), lambda y, x: y.div_(x + 1), lambda y, x: y.sub_(x, alpha=3),
    lambda y, x: y.sigmoid_(), lambda y, x: y.tanh_(),
], ids=["mul_", "pow_", "exp_", "clamp_", "div_", "sub_", "sigmoid_", "tanh_"])
def test_inplace_in_graph_matches_torch(op):
    torch = _torch()
    data = [1.0, 2.0, 3.0]
    x = taiji.tensor(data, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    y = x * 1
    ty = tx * 1
    op(y, x)
    op(ty, tx)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6)
    (y * taiji.tensor([1.0, -2.0, 0.5])).sum().backward()
    (ty * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5)


def test_inplace_makes_result_require_grad():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    buf = taiji.zeros(2)
    buf.add_(x)   # a plain tensor becomes part of the graph
    assert buf.requires_grad and buf.grad_fn is not None
    (buf * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_copy_into_graph_tensor_routes_gradient_to_source():
    src = taiji.tensor([1.0, 2.0], requires_grad=True)
    dst = taiji.zeros(2)
    dst.copy_(src * 2)
    (dst ** 2).sum().backward()
    assert src.grad.tolist() == [8.0, 16.0]   # d/dsrc (2 src)^2 = 8 src


def test_inplace_version_bump_of_graph_tensor():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    v = y._version
    y.add_(1)
    assert y._version == v + 1
    assert y.tolist() == [3.0, 5.0]
    assert type(y.grad_fn).__name__ != "NoneType"


def test_inplace_on_tensor_saved_only_by_nonreading_op_is_fine():
    # add's backward does not read its inputs, so changing one afterwards is allowed
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y + 1
    y.mul_(10)
    z.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
