"""Learning-rate schedules against PyTorch over 50 steps."""
import numpy as np
import pytest

import taiji

torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")

SCHEDS = [
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e)),
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[5, 20, 33], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("CosineAnnealingLR", dict(T_max=20, eta_min=0.001)),
    ("CosineAnnealingWarmRestarts", dict(T_0=7, T_mult=2, eta_min=0.01)),
    ("LinearLR", dict(start_factor=0.2, total_iters=12)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=60)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=60, anneal_strategy="linear",
                        three_phase=True)),
]


def _opts(cls="SGD"):
    tp, jp = torch.zeros(2, requires_grad=True), taiji.zeros(2, requires_grad=True)
    kw = dict(lr=0.1, momentum=0.9) if cls == "SGD" else dict(lr=0.1)
    return getattr(torch.optim, cls)([tp], **kw), getattr(taiji.optim, cls)([jp], **kw)


@pytest.mark.parametrize("name,kw", SCHEDS)
@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_schedule_matches_pytorch(name, kw, opt):
    to, jo = _opts(opt)
    ts = getattr(torch.optim.lr_scheduler, name)(to, **kw)
    js = getattr(taiji.optim.lr_scheduler, name)(jo, **kw)
    for _ in range(50):
        np.testing.assert_allclose(js.get_last_lr(), ts.get_last_lr(), rtol=1e-9, atol=1e-12)
        key = "betas" if opt == "Adam" else "momentum"
        np.testing.assert_allclose(np.ravel(jo.param_groups[0][key]),
                                   np.ravel(to.param_groups[0][key]), rtol=1e-9)
        to.step(), jo.step()
        ts.step(), js.step()


def test_sequential_and_plateau():
    to, jo = _opts()
    ts = torch.optim.lr_scheduler.SequentialLR(
        to, [torch.optim.lr_scheduler.LinearLR(to, 0.1, total_iters=5),
             torch.optim.lr_scheduler.ExponentialLR(to, 0.9)], milestones=[5])
    js = taiji.optim.lr_scheduler.SequentialLR(
        jo, [taiji.optim.lr_scheduler.LinearLR(jo, 0.1, total_iters=5),
             taiji.optim.lr_scheduler.ExponentialLR(jo, 0.9)], milestones=[5])
    for _ in range(20):
        np.testing.assert_allclose(js.get_last_lr(), ts.get_last_lr(), rtol=1e-9)
        to.step(), jo.step(), ts.step(), js.step()
    to, jo = _opts()
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(to, patience=2, factor=0.5, cooldown=1)
    js = taiji.optim.lr_scheduler.ReduceLROnPlateau(jo, patience=2, factor=0.5, cooldown=1)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.94, 0.96, 0.97, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]
    for m in metrics:
        ts.step(m), js.step(m)
        assert jo.param_groups[0]["lr"] == pytest.approx(to.param_groups[0]["lr"])


def test_scheduler_state_dict():
    _, jo = _opts()
    s = taiji.optim.lr_scheduler.StepLR(jo, 3, 0.5)
    for _ in range(4):
        s.step()
    sd = s.state_dict()
    _, jo2 = _opts()
    s2 = taiji.optim.lr_scheduler.StepLR(jo2, 3, 0.5)
    s2.load_state_dict(sd)
    s.step(), s2.step()
    assert s.get_last_lr() == s2.get_last_lr() and s2.last_epoch == 5
