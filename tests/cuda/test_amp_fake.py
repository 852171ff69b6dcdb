"""float16 autocast and GradScaler on 'cuda' tensors, on the CPU through the fake CUDA device
(tests/cuda/fake_cuda.py): the dtypes the policy gives, the scaler's state following the loss
to the device, skipped steps on injected inf/NaN, and jit (a CUDA-graph program with no host
copies) equal to eager. The real GPU versions are in test_amp_gpu.py."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import taiji
import taiji.nn.functional as F
from device_cases import cnn, host, mlp, program_of
from fake_cuda import FakeCudaArray


def on_fake(t) -> bool:
    return type(t._data) is FakeCudaArray and t.is_cuda


def test_float16_policy_on_cuda_tensors(fake_cuda):
    g = lambda *s: taiji.randn(*s, device="cuda")  # noqa: E731
    with taiji.autocast("cuda"):  # float16 is CUDA's default
        assert taiji.get_autocast_dtype("cuda") is taiji.float16
        y = F.linear(g(4, 5), g(3, 5), g(3))
        c = F.conv2d(g(2, 3, 6, 6), g(4, 3, 3, 3), g(4))
        s = F.softmax(y, -1)
        loss = F.cross_entropy(y, taiji.tensor([0, 1, 2, 0], device="cuda"))
        h = y + g(4, 3)                         # promote: widest input
        cpu = taiji.randn(2, 3) @ taiji.randn(3, 2)  # CPU tensors: not this region's
    assert all(on_fake(t) for t in (y, c, s, loss, h))
    assert y.dtype is taiji.float16 and c.dtype is taiji.float16
    assert s.dtype is taiji.float32 and loss.dtype is taiji.float32 and h.dtype is taiji.float32
    assert cpu.dtype is taiji.float32
    with taiji.autocast("cpu"), taiji.autocast("cuda"):  # both devices, each its own dtype
        assert (g(2, 3) @ g(3, 2)).dtype is taiji.float16
        assert (taiji.randn(2, 3) @ taiji.randn(3, 2)).dtype is taiji.bfloat16


def _amp_train(device, compiled, model=mlp, shape=(8, 20), classes=5, steps=5, bad_step=None,
               bad=math.inf, seed=0, optimizer="adam"):
    """Losses, final parameters (host), the scaler and the step of an fp16 AMP run: autocast
    + GradScaler + Adam (or SGD with momentum, whose updates scale with the gradients, for
    comparing runs whose float16 rounding differs); at ``bad_step`` the input holds ``bad``
    (every gradient non-finite)."""
    taiji.manual_seed(seed)
    m = model().to(device)
    opt = taiji.optim.Adam(m.parameters(), lr=1e-2) if optimizer == "adam" else \
        taiji.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    scaler = taiji.amp.GradScaler(init_scale=2.0 ** 10)
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal(shape).astype(np.float32)
    x = taiji.tensor(xs, device=device)
    xbad = taiji.tensor(np.where(np.arange(xs.size).reshape(shape) == 0, bad, xs)
                        .astype(np.float32), device=device)
    y = taiji.tensor(rng.integers(0, classes, shape[0]), device=device)
    seen = {}

    def step(x, y):
        opt.zero_grad()
        with taiji.autocast(device, dtype=taiji.float16):
            out = m(x)
            loss = F.cross_entropy(out, y)
        seen["out"], seen["loss"] = out.dtype, loss.dtype
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss
    f = taiji.jit(step) if compiled else step
    losses = [float(f(xbad if i == bad_step else x, y)) for i in range(steps)]
    assert seen == {"out": taiji.float16, "loss": taiji.float32}
    for p in m.parameters():
        assert p.dtype is taiji.float32 and p.grad.dtype is taiji.float32
        assert p.device == taiji.device(device if device == "cpu" else "cuda:0")
    return losses, [host(p) for p in m.parameters()], scaler, f


@pytest.mark.filterwarnings("ignore:invalid value")  # (the discarded update of an inf step)
@pytest.mark.parametrize("model,shape,classes", [(mlp, (8, 20), 5), (cnn, (4, 1, 8, 8), 3)],
                         ids=["mlp", "cnn"])
def test_fp16_amp_training_on_cuda_jit_equals_eager_and_cpu(fake_cuda, model, shape, classes):
    runs = {(d, c): _amp_train(d, c, model, shape, classes, bad_step=2)
            for d in ("cpu", "cuda") for c in (False, True)}
    ref_losses = runs[("cpu", False)][0]
    assert math.isnan(ref_losses[2]) and ref_losses[-1] < ref_losses[0]
    for (d, c), (losses, params, scaler, f) in runs.items():
        # jit == eager on each device; the devices agree to float16 rounding (the fake's
        # NumPy float16 products round differently from the CPU's float32-accumulated ones)
        eager_losses, eager_params = runs[(d, False)][:2]
        np.testing.assert_allclose(losses, eager_losses, rtol=1e-6, err_msg=f"{d} jit={c}")
        for a, b in zip(params, eager_params):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=f"{d} jit={c}")
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, err_msg=f"{d} jit={c}")
        for a, b in zip(params, runs[("cpu", False)][1]):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=f"{d} jit={c}")
        assert scaler.get_scale() == 2.0 ** 9  # one skipped step: backed off once
    for c in (False, True):  # the scaler's state followed the loss to the GPU
        scaler = runs[("cuda", c)][2]
        assert all(on_fake(t) for t in scaler._state_tensors())
        assert scaler.state_dict()["scale"] == 2.0 ** 9
    f = runs[("cuda", True)][3]
    prog = program_of(f)
    assert prog.mode == "graph" and prog.host_inputs == set()  # nothing copied per call


@pytest.mark.filterwarnings("ignore:invalid value")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_skipped_steps_leave_parameters_and_warn(fake_cuda, compiled):
    """Every step non-finite: parameters never move, the scale backs off each step, and the
    warning names a parameter (a compiled step checks every skip_warning_after calls)."""
    taiji.manual_seed(0)
    m = mlp().cuda()
    opt = taiji.optim.SGD(m.parameters(), lr=0.1)
    scaler = taiji.amp.GradScaler(init_scale=2.0 ** 8, skip_warning_after=2)
    before = [host(p) for p in m.parameters()]
    x = taiji.full((4, 20), math.nan, device="cuda")
    y = taiji.tensor([0, 1, 2, 3], device="cuda")

    def step(x, y):
        opt.zero_grad()
        with taiji.autocast("cuda"):
            loss = F.cross_entropy(m(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss
    f = taiji.jit(step) if compiled else step
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(4):
            f(x, y)
    for a, p in zip(before, m.parameters()):
        np.testing.assert_array_equal(a, host(p))
    assert scaler.get_scale() == 2.0 ** 4
    msgs = [str(w.message) for w in rec if "GradScaler" in str(w.message)]
    assert len(msgs) == 1 and "param_groups[0]['params']" in msgs[0], msgs


def test_scaler_setters_and_checkpoint_on_the_device(fake_cuda):
    scaler = taiji.amp.GradScaler(init_scale=8.0)
    scaler.scale(taiji.ones((), device="cuda"))
    assert all(on_fake(t) for t in scaler._state_tensors())
    scaler.set_growth_factor(3.0)
    assert scaler.get_growth_factor() == 3.0 and on_fake(scaler._hp)
    state = scaler.state_dict()
    other = taiji.amp.GradScaler()
    other.load_state_dict(state)
    assert other.state_dict() == state
    # a CPU loss later brings the state back (one scaler, the loss's device)
    assert scaler.scale(taiji.tensor(2.0)).item() == 16.0
    assert scaler._scale.device == "cpu"
