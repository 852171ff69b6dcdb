"""Bad input gives the right exception with a message that names what went wrong."""
import inspect
import os

import numpy as np
import pytest

import taiji
from taiji import autograd


def _line_of(marker):
    """The line number in this file of the source line containing ``marker``."""
    src, start = inspect.getsourcelines(inspect.getmodule(_line_of))
    for i, line in enumerate(src):
        if marker in line and "_line_of" not in line:
            return start + i if start else i + 1
    raise AssertionError(marker)


# ---------------------------------------------------------------- shape mismatches


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "pow"])
def test_broadcast_mismatch_names_op_shapes_axis(op):
    a, b = taiji.ones(2, 3), taiji.ones(4, 3)
    with pytest.raises(RuntimeError) as ei:
        getattr(taiji, op)(a, b)
    msg = str(ei.value)
    assert op in msg
    assert "(2, 3)" in msg and "(4, 3)" in msg
    assert "dimension -2" in msg and "2" in msg and "4" in msg


def test_broadcast_mismatch_via_operators():
    with pytest.raises(RuntimeError, match=r"mul.*\(2, 3\).*\(3, 2\).*dimension -2"):
        taiji.ones(2, 3) * taiji.ones(3, 2)
    with pytest.raises(RuntimeError, match=r"add.*\(5,\).*\(4,\).*dimension -1 is 5 in one "
                                           r"and 4 in the other"):
        taiji.ones(5) + taiji.ones(4)


def test_broadcast_mismatch_in_backward_graph_tensor():
    x = taiji.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"sub.*\(3,\).*\(2,\)"):
        x - taiji.ones(2)


def test_matmul_inner_dims_named():
    with pytest.raises(RuntimeError) as ei:
        taiji.ones(2, 3) @ taiji.ones(2, 3)
    msg = str(ei.value)
    assert "matmul" in msg
    assert "[2, 3]" in msg
    assert "inner dimensions" in msg and "3" in msg and "2" in msg
    with pytest.raises(RuntimeError, match=r"matmul.*\[4, 5\].*\[6, 7\].*inner dimensions.*"
                                           r"5.*6"):
        taiji.matmul(taiji.ones(4, 5), taiji.ones(6, 7))


def test_matmul_vector_matrix_inner_dims():
    with pytest.raises(RuntimeError, match=r"matmul.*inner dimensions.*3.*2"):
        taiji.matmul(taiji.ones(3), taiji.ones(2, 4))


def test_matmul_vector_vector_mismatch():
    with pytest.raises(RuntimeError) as ei:
        taiji.ones(5) @ taiji.ones(4)
    msg = str(ei.value)
    assert "[5]" in msg and "[4]" in msg


def test_matmul_batch_mismatch_names_batch_dims():
    with pytest.raises(RuntimeError) as ei:
        taiji.ones(2, 2, 3) @ taiji.ones(3, 3, 4)
    msg = str(ei.value)
    assert "matmul" in msg and "2" in msg and "3" in msg


def test_cat_mismatch():
    with pytest.raises(RuntimeError, match=r"cat.*dimension 0.*\[2, 3\].*\[2, 4\]"):
        taiji.cat([taiji.ones(2, 3), taiji.ones(2, 4)])


def test_reshape_bad_size():
    with pytest.raises(RuntimeError, match=r"shape '\[4, 2\]' is invalid for input of size 6"):
        taiji.ones(2, 3).reshape(4, 2)


def test_reduction_dim_out_of_range():
    with pytest.raises(IndexError, match=r"Dimension out of range.*\[-2, 1\].*5"):
        taiji.ones(2, 3).sum(5)


def test_inplace_broadcast_into_smaller_shape():
    with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(2, 4\)"):
        taiji.ones(2, 3).add_(taiji.ones(2, 4))


# ---------------------------------------------------------------- autograd errors


def test_backward_through_freed_graph():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError) as ei:
        y.backward()
    msg = str(ei.value)
    assert "backward through the graph a second time" in msg
    assert "retain_graph=True" in msg


def test_grad_through_freed_graph():
    x = taiji.tensor(1.0, requires_grad=True)
    y = x.exp()
    autograd.grad(y, x)
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        autograd.grad(y, x)


def test_inplace_modification_of_saved_tensor_names_op_and_line():
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    z = y.exp()  # MARK-EXP-LINE
    y.add_(1)
    with pytest.raises(RuntimeError) as ei:
        z.sum().backward()
    msg = str(ei.value)
    assert "modified by an inplace operation" in msg
    assert "exp" in msg and "ExpBackward0" in msg
    assert f"{os.path.abspath(__file__)}:{_line_of('MARK-EXP-LINE')}" in msg
    assert "version 1; expected version 0" in msg
    assert "[taiji.float32 [3]]" in msg


def test_inplace_modification_error_names_mul_and_its_line():
    a = taiji.tensor([1.0, 2.0], requires_grad=True)
    h = a * 2
    out = h * h  # MARK-MUL-LINE
    h.mul_(3)
    with pytest.raises(RuntimeError) as ei:
        out.sum().backward()
    msg = str(ei.value)
    assert "MulBackward0" in msg and "'mul'" in msg
    assert f"test_errors.py:{_line_of('MARK-MUL-LINE')}" in msg


def test_inplace_modification_via_setitem_detected():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = x + 0
    z = y.sin()  # MARK-SIN-LINE
    y[0] = 0.0
    with pytest.raises(RuntimeError, match=rf"sin.*test_errors.py:{_line_of('MARK-SIN-LINE')}"):
        z.sum().backward()


def test_nonscalar_backward_needs_gradient():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError) as ei:
        (x * 2).backward()
    msg = str(ei.value)
    assert "grad can be implicitly created only for scalar outputs" in msg
    assert "[2]" in msg and "gradient=" in msg
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        autograd.grad(x * 2, x)


def test_gradient_shape_mismatch():
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output has a shape of "
                                           r"\[3\] and output has a shape of \[2\]"):
        (x * 2).backward(taiji.ones(3))


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        taiji.ones(1).sum().backward()


def test_grad_wrt_tensor_not_requiring_grad():
    x = taiji.tensor([1.0], requires_grad=True)
    c = taiji.tensor([1.0])
    with pytest.raises(RuntimeError, match=r"input 1\) does not require grad"):
        autograd.grad((x * c).sum(), [x, c])


@pytest.mark.parametrize("dtype", [taiji.int64, taiji.int32, taiji.uint8, taiji.bool])
def test_int_tensors_cannot_require_grad(dtype):
    with pytest.raises(RuntimeError) as ei:
        taiji.tensor([1, 0], dtype=dtype, requires_grad=True)
    msg = str(ei.value)
    assert "only Tensors of floating point dtype can require gradients" in msg
    assert dtype.name in msg
    with pytest.raises(RuntimeError, match="floating point dtype"):
        taiji.zeros(2, dtype=dtype).requires_grad_()
    with pytest.raises(RuntimeError, match="floating point dtype"):
        taiji.ones(2, dtype=dtype, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point dtype"):
        taiji.arange(3, requires_grad=True) if dtype is taiji.int64 else \
            taiji.full((2,), 1, dtype=dtype, requires_grad=True)


def test_inplace_on_leaf_requiring_grad():
    w = taiji.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used "
                                           "in an in-place operation"):
        w.mul_(2)


def test_numpy_of_requires_grad():
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires "
                                           r"grad. Use tensor.detach\(\).numpy\(\) instead."):
        taiji.ones(2, requires_grad=True).numpy()


def test_item_of_many_elements():
    with pytest.raises(RuntimeError, match="a Tensor with 4 elements cannot be converted to "
                                           "Scalar"):
        taiji.ones(2, 2).item()


def test_unknown_dtype():
    with pytest.raises(TypeError, match="unsupported dtype 'complex64'"):
        taiji.zeros(2, dtype="complex64")


# ---------------------------------------------------------------- devices


class _FakeArray(np.ndarray):
    """Arrays that a fake 'cuda' backend claims (the CPU doing the work). Like CuPy's, they
    refuse to compute with plain host arrays."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(type(x) is np.ndarray for x in inputs):
            raise TypeError(f"Unsupported type {np.ndarray}")
        inputs = [x.view(np.ndarray) if isinstance(x, _FakeArray) else x for x in inputs]
        out = getattr(ufunc, method)(*inputs, **kwargs)
        return out.view(_FakeArray) if isinstance(out, np.ndarray) else out


@pytest.fixture
def fake_cuda(monkeypatch):
    import taiji.backends as B
    from taiji.backends.numpy_backend import Backend

    class FakeCuda(Backend):
        def owns(self, a):
            return isinstance(a, _FakeArray)

        def asarray(self, data, dtype=None):
            return np.asarray(data, dtype=dtype).view(_FakeArray)

        def to_host(self, a):
            return np.asarray(a).view(np.ndarray)

        def device_name(self, a):
            return "cuda:0"

    # the fake backend must be asked before the CPU one (its arrays are ndarrays too)
    monkeypatch.setattr(B, "_BACKENDS", {"cuda": FakeCuda("cuda", np), "cpu": B.numpy_backend})
    return "cuda"


def test_mixing_devices_raises(fake_cuda):
    g = taiji.tensor([1.0, 2.0], device="cuda")
    c = taiji.tensor([1.0, 2.0])
    assert g.device == "cuda:0" and c.device == "cpu"
    assert (g * g).device == "cuda:0" and (g * g).tolist() == [1.0, 4.0]
    for f, op in ((lambda: g + c, "add"), (lambda: g * c, "mul"),
                  (lambda: taiji.matmul(g, c), "matmul")):
        with pytest.raises(RuntimeError) as ei:
            f()
        msg = str(ei.value)
        assert "Expected all tensors to be on the same device" in msg
        assert "cpu" in msg and "cuda" in msg
        assert op in msg
    # moving fixes it
    assert (g.to("cpu") + c).tolist() == [2.0, 4.0]
    assert (g + c.to("cuda")).device == "cuda:0"


def test_python_scalars_follow_tensor_device(fake_cuda):
    g = taiji.tensor([1.0, 2.0], device="cuda")
    assert (g * 2).tolist() == [2.0, 4.0]
    assert (g + 1.5).device == "cuda:0"


def test_mixing_devices_cpu_operand_first(fake_cuda):
    g = taiji.tensor([1.0, 2.0], device="cuda")
    c = taiji.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        c * g
