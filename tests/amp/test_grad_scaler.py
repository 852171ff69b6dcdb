"""taiji.amp.GradScaler: skipping, backoff, growth, unscale_ + clipping, checkpoints, jit."""
import math
import warnings

import numpy as np
import pytest

import taiji
import taiji.nn.functional as F
from taiji.amp import GradScaler


def _setup(seed=0, opt="adam"):
    taiji.manual_seed(seed)
    model = taiji.nn.Sequential(taiji.nn.Linear(6, 8), taiji.nn.ReLU(), taiji.nn.Linear(8, 3))
    o = taiji.optim.Adam(model.parameters(), 1e-2) if opt == "adam" else \
        taiji.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    return model, o


def _params(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def _backward(model, scaler, x, y, bad=None):
    with taiji.autocast("cpu", dtype=taiji.bfloat16):
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    if bad is not None:
        list(model.parameters())[1].grad.fill_(bad)
    return loss


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_nonfinite_gradient_skips_step_and_backs_off(bad):
    model, opt = _setup()
    scaler = GradScaler(init_scale=2.0 ** 10)
    x, y = taiji.randn(5, 6), taiji.tensor([0, 1, 2, 0, 1])
    before = _params(model)
    _backward(model, scaler, x, y, bad=bad)
    assert scaler.step(opt) is None
    scaler.update()
    for a, p in zip(before, model.parameters()):
        np.testing.assert_array_equal(a, p.detach().numpy())
    assert scaler.get_scale() == 2.0 ** 9
    assert not opt.state or all("step" not in s or s["step"].item() == 0
                                for s in opt.state.values())
    opt.zero_grad()
    _backward(model, scaler, x, y)
    scaler.step(opt)
    scaler.update()
    assert any(not np.array_equal(a, p.detach().numpy()) for a, p in zip(before, model.parameters()))
    assert scaler.get_scale() == 2.0 ** 9 and scaler._get_growth_tracker() == 1


def test_growth_after_interval_and_floor():
    model, opt = _setup(opt="sgd")
    scaler = GradScaler(init_scale=4.0, growth_interval=3, growth_factor=2.0)
    x, y = taiji.randn(5, 6), taiji.tensor([0, 1, 2, 0, 1])
    scales = []
    for _ in range(7):
        opt.zero_grad()
        _backward(model, scaler, x, y)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    assert scales == [4.0, 4.0, 8.0, 8.0, 8.0, 16.0, 16.0]
    floor = GradScaler(init_scale=1.0, backoff_factor=0.5, min_scale=0.25,
                       skip_warning_after=0)
    for _ in range(4):
        opt.zero_grad()
        _backward(model, floor, x, y, bad=math.inf)
        floor.step(opt)
        floor.update()
    assert floor.get_scale() == 0.25 and floor.get_min_scale() == 0.25


def test_unscale_then_clip_and_double_unscale_raises():
    model, opt = _setup(opt="sgd")
    scaler = GradScaler(init_scale=2.0 ** 8)
    x, y = taiji.randn(5, 6), taiji.tensor([0, 1, 2, 0, 1])
    _backward(model, scaler, x, y)
    scaled = [p.grad.numpy().copy() for p in model.parameters()]
    scaler.unscale_(opt)
    for s, p in zip(scaled, model.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), s / 2.0 ** 8, rtol=1e-6)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    total = taiji.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
    assert total.item() > 1e-3
    norm = math.sqrt(sum(float((p.grad * p.grad).sum().item()) for p in model.parameters()))
    assert norm == pytest.approx(1e-3, rel=1e-3)
    scaler.step(opt)  # no second unscale
    with pytest.raises(RuntimeError, match="step"):
        scaler.step(opt)
    scaler.update()
    with pytest.raises(RuntimeError, match="No inf checks"):
        scaler.update()


def test_scale_nested_disabled_and_setters():
    s = GradScaler(init_scale=8.0)
    a, b = taiji.tensor(1.0), taiji.tensor([2.0])
    out = s.scale({"a": a, "b": [b, (a,)]})
    assert out["a"].item() == 8.0 and out["b"][0].tolist() == [16.0]
    assert out["b"][1][0].item() == 8.0
    off = GradScaler(enabled=False)
    assert off.scale(a) is a and off.get_scale() == 1.0 and off.state_dict() == {}
    s.set_growth_factor(3.0)
    s.set_backoff_factor(0.25)
    s.set_growth_interval(7)
    assert (s.get_growth_factor(), s.get_backoff_factor(), s.get_growth_interval()) == \
        (3.0, 0.25, 7)
    with pytest.raises(ValueError, match="growth_factor"):
        GradScaler(growth_factor=0.5)


def test_state_dict_round_trips_through_save(tmp_path):
    model, opt = _setup()
    scaler = GradScaler(init_scale=2.0 ** 12, growth_interval=5)
    x, y = taiji.randn(5, 6), taiji.tensor([0, 1, 2, 0, 1])
    for bad in (None, None, math.inf):
        opt.zero_grad()
        _backward(model, scaler, x, y, bad=bad)
        scaler.step(opt)
        scaler.update()
    sd = scaler.state_dict()
    assert set(sd) == {"scale", "growth_factor", "backoff_factor", "growth_interval",
                       "_growth_tracker"}
    taiji.save({"scaler": sd, "model": model.state_dict()}, tmp_path / "ckpt.tj")
    back = taiji.load(tmp_path / "ckpt.tj")
    other = GradScaler()
    other.load_state_dict(back["scaler"])
    assert other.state_dict() == sd
    assert other.get_scale() == 2.0 ** 11 and other.get_growth_interval() == 5


def test_warning_names_parameter_after_repeated_skips():
    model, opt = _setup(opt="sgd")
    scaler = GradScaler(init_scale=1.0, skip_warning_after=3)
    x, y = taiji.randn(5, 6), taiji.tensor([0, 1, 2, 0, 1])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(5):
            opt.zero_grad()
            _backward(model, scaler, x, y, bad=math.nan)
            scaler.step(opt)
            scaler.update()
    msgs = [str(w.message) for w in rec if "GradScaler" in str(w.message)]
    assert len(msgs) == 1  # once
    assert "3 optimizer steps in a row" in msgs[0]
    assert "param_groups[0]['params'][1] (shape [8]" in msgs[0]


def _train(model, opt, scaler, steps, xs, ys, bad_step, compiled):
    def step(x, y, bad):
        opt.zero_grad()
        with taiji.autocast("cpu", dtype=taiji.bfloat16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        g = list(model.parameters())[1].grad
        g.add_(bad)  # 0.0, or inf on the injected step
        scaler.step(opt)
        scaler.update()
        return loss

    fn = taiji.jit(step) if compiled else step
    losses, scales = [], []
    for i in range(steps):
        bad = taiji.tensor(math.inf if i == bad_step else 0.0)
        losses.append(fn(xs[i], ys[i], bad).item())
        scales.append(scaler.get_scale())
    return losses, scales


@pytest.mark.filterwarnings("ignore:invalid value")  # the discarded update of an inf step
@pytest.mark.parametrize("optname", ["adam", "sgd"])
def test_jit_amp_step_equals_eager(optname):
    rng = np.random.default_rng(1)
    xs = [taiji.tensor(rng.standard_normal((16, 6)).astype(np.float32)) for _ in range(10)]
    ys = [taiji.tensor(rng.integers(0, 3, 16)) for _ in range(10)]
    runs = []
    for compiled in (False, True):
        model, opt = _setup(opt=optname)
        scaler = GradScaler(init_scale=2.0 ** 8, growth_interval=3)
        losses, scales = _train(model, opt, scaler, 10, xs, ys, bad_step=4, compiled=compiled)
        runs.append((losses, scales, _params(model), scaler.state_dict()))
    (le, se, pe, sde), (lj, sj, pj, sdj) = runs
    assert se == sj and sde == sdj
    assert se[4] == se[3] / 2  # the injected inf backed the scale off
    np.testing.assert_allclose(le, lj, rtol=1e-5, atol=1e-6)
    for a, b in zip(pe, pj):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
