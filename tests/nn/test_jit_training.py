"""PyTorch-style training steps compiled by taiji.jit equal eager execution."""
import numpy as np

import taiji
import taiji.nn as nn
import taiji.nn.functional as F


def _data():
    rng = np.random.default_rng(0)
    return (taiji.tensor(rng.standard_normal((32, 8)).astype(np.float32)),
            taiji.tensor(rng.integers(0, 4, 32)))


def _pair(make, opt_cls, **kw):
    taiji.manual_seed(0)
    me = make()
    taiji.manual_seed(0)
    mj = make()
    return me, opt_cls(me.parameters(), **kw), mj, opt_cls(mj.parameters(), **kw)


def _step(model, opt):
    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return train_step


def test_design_example_adam_100_steps():
    make = lambda: nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))  # noqa: E731
    me, oe, mj, oj = _pair(make, taiji.optim.Adam, lr=1e-3)
    se, sj = _step(me, oe), taiji.jit(_step(mj, oj))
    x, y = _data()
    for i in range(100):
        le, lj = se(x, y), sj(x, y)
        assert abs(float(le) - float(lj)) < 1e-5, i
    for a, b in zip(me.parameters(), mj.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
    assert float(lj) < float(sj(x, y)) + 1  # still runs
    assert len(sj.compile_log) <= 2


def test_batchnorm_dropout_model_under_jit_equals_eager():
    def make():
        return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.25),
                             nn.Linear(16, 4))
    me, oe, mj, oj = _pair(make, taiji.optim.SGD, lr=0.1, momentum=0.9)
    se, sj = _step(me, oe), taiji.jit(_step(mj, oj))
    x, y = _data()
    for i in range(30):
        taiji.manual_seed(100 + i)
        le = se(x, y)
        taiji.manual_seed(100 + i)
        lj = sj(x, y)
        assert abs(float(le) - float(lj)) < 1e-4, i
    for (k, a), (_, b) in zip(me.state_dict().items(), mj.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, err_msg=k)
    assert int(mj[1].num_batches_tracked) == 30
    me.eval()
    mj.eval()
    ev = taiji.jit(lambda x: mj(x))
    np.testing.assert_allclose(ev(x).detach().numpy(), me(x).detach().numpy(), atol=1e-4)


def test_lr_schedule_under_jit_without_recompiling():
    make = lambda: nn.Linear(8, 4)  # noqa: E731
    me, oe, mj, oj = _pair(make, taiji.optim.AdamW, lr=1e-2)
    sch_e = taiji.optim.lr_scheduler.CosineAnnealingLR(oe, 10)
    sch_j = taiji.optim.lr_scheduler.CosineAnnealingLR(oj, 10)
    se, sj = _step(me, oe), taiji.jit(_step(mj, oj))
    x, y = _data()
    for i in range(10):
        assert abs(float(se(x, y)) - float(sj(x, y))) < 1e-5
        sch_e.step()
        sch_j.step()
    np.testing.assert_allclose(mj.weight.detach().numpy(), me.weight.detach().numpy(), atol=1e-5)
    assert len(sj.compile_log) <= 2


def test_conv_net_under_jit():
    def make():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                             nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    me, oe, mj, oj = _pair(make, taiji.optim.SGD, lr=0.05)
    se, sj = _step(me, oe), taiji.jit(_step(mj, oj))
    rng = np.random.default_rng(1)
    x = taiji.tensor(rng.standard_normal((6, 1, 8, 8)).astype(np.float32))
    y = taiji.tensor(rng.integers(0, 3, 6))
    for _ in range(5):
        assert abs(float(se(x, y)) - float(sj(x, y))) < 1e-5
