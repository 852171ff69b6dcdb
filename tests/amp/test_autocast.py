"""taiji.autocast: the policy table op by op, nesting, decorator, gradients, jit keys."""
import numpy as np
import pytest

import taiji
import taiji.nn.functional as F
from taiji.amp import POLICY, policy_of

LOW = [taiji.bfloat16, taiji.float16]


def _r(*shape, dtype=taiji.float32):
    return taiji.randn(*shape).to(dtype)


def _t():
    return taiji.tensor([0, 1, 2, 1])


# op name -> (callable over (x32, low), policy); x32 are float32 inputs, `lo` the region dtype
LOWER_CASES = {
    "matmul": lambda: taiji.matmul(_r(4, 5), _r(5, 3)),
    "mm": lambda: taiji.mm(_r(4, 5), _r(5, 3)),
    "bmm": lambda: taiji.bmm(_r(2, 4, 5), _r(2, 5, 3)),
    "linear": lambda: F.linear(_r(4, 5), _r(3, 5), _r(3)),
    "conv1d": lambda: F.conv1d(_r(2, 3, 8), _r(4, 3, 3), _r(4)),
    "conv2d": lambda: F.conv2d(_r(2, 3, 6, 6), _r(4, 3, 3, 3), _r(4)),
    "conv_transpose2d": lambda: F.conv_transpose2d(_r(2, 3, 4, 4), _r(3, 2, 3, 3)),
    "einsum": lambda: taiji.einsum("ij,jk->ik", _r(4, 5), _r(5, 3)),
    "scaled_dot_product_attention": lambda: F.scaled_dot_product_attention(
        _r(2, 4, 8), _r(2, 4, 8), _r(2, 4, 8)),
}
# float32 ops get low-precision inputs (so that the cast up is visible)
FP32_CASES = {
    "exp": lambda lo: taiji.exp(_r(4, dtype=lo)),
    "log": lambda lo: taiji.log(_r(4, dtype=lo).abs()),
    "pow": lambda lo: taiji.pow(_r(4, dtype=lo), 3),
    "rsqrt": lambda lo: taiji.rsqrt(_r(4, dtype=lo).abs()),
    "softmax": lambda lo: taiji.softmax(_r(3, 4, dtype=lo), -1),
    "log_softmax": lambda lo: F.log_softmax(_r(3, 4, dtype=lo), -1),
    "logsumexp": lambda lo: taiji.logsumexp(_r(3, 4, dtype=lo), -1),
    "sum": lambda lo: taiji.sum(_r(3, 4, dtype=lo)),
    "prod": lambda lo: taiji.prod(_r(3, 4, dtype=lo)),
    "cumsum": lambda lo: taiji.cumsum(_r(3, 4, dtype=lo), 1),
    "norm": lambda lo: taiji.norm(_r(3, 4, dtype=lo)),
    "layer_norm": lambda lo: F.layer_norm(_r(3, 4, dtype=lo), (4,)),
    "group_norm": lambda lo: F.group_norm(_r(2, 4, 3, dtype=lo), 2),
    "cross_entropy": lambda lo: F.cross_entropy(_r(4, 3, dtype=lo), _t() % 3),
    "nll_loss": lambda lo: F.nll_loss(_r(4, 3, dtype=lo), _t() % 3),
    "mse_loss": lambda lo: F.mse_loss(_r(4, dtype=lo), _r(4, dtype=lo)),
    "l1_loss": lambda lo: F.l1_loss(_r(4, dtype=lo), _r(4, dtype=lo)),
    "smooth_l1_loss": lambda lo: F.smooth_l1_loss(_r(4, dtype=lo), _r(4, dtype=lo)),
    "huber_loss": lambda lo: F.huber_loss(_r(4, dtype=lo), _r(4, dtype=lo)),
    "binary_cross_entropy": lambda lo: F.binary_cross_entropy(
        taiji.sigmoid(_r(4)).to(lo), taiji.rand(4).to(lo)),
    "binary_cross_entropy_with_logits": lambda lo: F.binary_cross_entropy_with_logits(
        _r(4, dtype=lo), taiji.rand(4).to(lo)),
    "kl_div": lambda lo: F.kl_div(_r(4, dtype=lo), taiji.rand(4).to(lo),
                                  reduction="batchmean"),
}


@pytest.mark.parametrize("lo", LOW, ids=lambda d: d.name)
@pytest.mark.parametrize("op", sorted(LOWER_CASES))
def test_lower_precision_ops(op, lo):
    assert POLICY[op] == "lower"
    with taiji.autocast("cpu", dtype=lo):
        assert LOWER_CASES[op]().dtype is lo
    assert LOWER_CASES[op]().dtype is taiji.float32  # outside: unchanged


@pytest.mark.parametrize("lo", LOW, ids=lambda d: d.name)
@pytest.mark.parametrize("op", sorted(FP32_CASES))
def test_float32_ops(op, lo):
    assert POLICY[op] == "fp32"
    with taiji.autocast("cpu", dtype=lo):
        assert FP32_CASES[op](lo).dtype is taiji.float32
    assert FP32_CASES[op](lo).dtype is lo  # outside: follows the input


@pytest.mark.parametrize("lo", LOW, ids=lambda d: d.name)
def test_promote_and_unlisted_ops(lo):
    assert policy_of("cat") == "promote" and policy_of("relu") == "promote"
    with taiji.autocast("cpu", dtype=lo):
        a, b = _r(3, dtype=lo), _r(3)
        assert (a + b).dtype is taiji.float32
        assert taiji.cat([a, b]).dtype is taiji.float32
        assert taiji.stack([a, b]).dtype is taiji.float32
        assert taiji.relu(a).dtype is lo and taiji.tanh(b).dtype is taiji.float32
        assert taiji.mean(a).dtype is lo  # mean is not on PyTorch's lists
        x64 = taiji.randn(3, 3, dtype=taiji.float64)
        assert (x64 @ x64).dtype is taiji.float64  # float64 is never cast
        assert taiji.exp(x64).dtype is taiji.float64
        assert taiji.sum(a, dtype=lo).dtype is lo  # an explicit dtype wins


def test_batch_norm_keeps_input_dtype_and_mlp_flow():
    bn = taiji.nn.BatchNorm1d(4)
    with taiji.autocast("cpu"):
        x = F.linear(_r(8, 3), _r(4, 3))
        y = bn(x)
        assert x.dtype is taiji.bfloat16 and y.dtype is taiji.bfloat16
    assert bn.running_mean.dtype is taiji.float32


def test_nested_and_disabled_regions_and_helpers():
    assert not taiji.is_autocast_enabled()
    assert taiji.get_autocast_dtype("cpu") is taiji.bfloat16
    assert taiji.get_autocast_dtype("cuda") is taiji.float16
    x, w = _r(2, 3), _r(3, 3)
    with taiji.autocast("cpu", dtype=taiji.bfloat16):
        assert taiji.is_autocast_enabled() and taiji.is_autocast_enabled("cpu")
        assert not taiji.is_autocast_enabled("cuda")
        with taiji.autocast("cpu", dtype=taiji.float16):
            assert (x @ w).dtype is taiji.float16
            assert taiji.get_autocast_dtype("cpu") is taiji.float16
            with taiji.autocast("cpu", enabled=False):
                assert (x @ w).dtype is taiji.float32
                assert not taiji.is_autocast_enabled("cpu")
            assert (x @ w).dtype is taiji.float16
        assert (x @ w).dtype is taiji.bfloat16
        with taiji.autocast("cuda"):  # another device's region leaves CPU tensors alone...
            assert (x @ w).dtype is taiji.bfloat16  # ...and keeps the CPU region in force
    assert not taiji.is_autocast_enabled()
    with taiji.amp.autocast("cuda"):
        assert (x @ w).dtype is taiji.float32  # CPU tensors: a CUDA region does nothing


def test_decorator_and_errors():
    @taiji.autocast("cpu", dtype=taiji.float16)
    def f(a, b):
        return a @ b

    assert f(_r(2, 2), _r(2, 2)).dtype is taiji.float16
    assert not taiji.is_autocast_enabled()
    with pytest.raises(ValueError, match="bfloat16 or taiji.float16"):
        taiji.autocast("cpu", dtype=taiji.float64)
    with pytest.raises(ValueError, match="device_type"):
        taiji.autocast("tpu")
    with pytest.raises(RuntimeError):
        with taiji.autocast("cpu"):
            raise RuntimeError("boom")
    assert not taiji.is_autocast_enabled()  # restored on an exception


def test_gradients_keep_parameter_dtype():
    model = taiji.nn.Sequential(taiji.nn.Linear(6, 5), taiji.nn.ReLU(), taiji.nn.Linear(5, 3))
    x, y = _r(4, 6), taiji.tensor([0, 1, 2, 0])
    with taiji.autocast("cpu", dtype=taiji.bfloat16):
        out = model(x)
        loss = F.cross_entropy(out, y)
    assert out.dtype is taiji.bfloat16 and loss.dtype is taiji.float32
    loss.backward()
    for p in model.parameters():
        assert p.grad is not None and p.grad.dtype is taiji.float32
    ref = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()  # float32 gradients: close to the bf16 ones
    for r, p in zip(ref, model.parameters()):
        np.testing.assert_allclose(r, p.grad.numpy(), atol=0.05, rtol=0.1)


def test_jit_key_includes_autocast():
    calls = []

    @taiji.jit
    def f(a, b):
        calls.append(1)
        return a @ b

    a, b = _r(3, 3), _r(3, 3)
    assert f(a, b).dtype is taiji.float32
    with taiji.autocast("cpu"):
        assert f(a, b).dtype is taiji.bfloat16
        with taiji.autocast("cpu", dtype=taiji.float16):
            assert f(a, b).dtype is taiji.float16
    assert f(a, b).dtype is taiji.float32
    assert len(calls) == 3  # three traces, the float32 one reused

    @taiji.jit
    def g(a, b):
        with taiji.autocast("cpu"):
            return F.cross_entropy(a @ b, taiji.tensor([0, 1, 2]))

    out = g(a, b)
    with taiji.autocast("cpu"):
        ref = F.cross_entropy(a @ b, taiji.tensor([0, 1, 2]))
    assert out.dtype is taiji.float32
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-6)


def test_bfloat16_on_cuda_is_refused_with_the_way_out():
    """CuPy has no bfloat16: a CUDA bfloat16 region could never run, so it is an error at
    once (with or without a GPU), naming float16 as the alternative."""
    with pytest.raises(ValueError) as ei:
        taiji.autocast("cuda", dtype=taiji.bfloat16)
    msg = str(ei.value)
    assert "bfloat16" in msg and "CuPy" in msg and "dtype=taiji.float16" in msg
    with pytest.raises(ValueError, match="no bfloat16"):
        taiji.autocast(device_type="cuda:0", dtype="bfloat16")
    assert taiji.autocast("cuda").fast_dtype is taiji.float16  # the CUDA default is fine
    with taiji.autocast("cuda", dtype=taiji.bfloat16, enabled=False):  # off: nothing to refuse
        assert not taiji.is_autocast_enabled("cuda")
