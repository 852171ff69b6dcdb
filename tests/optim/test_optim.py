"""Optimizers against PyTorch over 50-step trajectories; jit equals eager; bad input."""
import numpy as np
import pytest

import taiji
import taiji.nn as nn
import taiji.nn.functional as F

torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=False)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.01)),
    ("Adamax", dict(lr=0.01, weight_decay=0.01)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
]

rng = np.random.default_rng(0)
W0 = rng.standard_normal((4, 3)).astype(np.float32)
B0 = rng.standard_normal(4).astype(np.float32)
X = rng.standard_normal((16, 3)).astype(np.float32)
Y = rng.integers(0, 4, 16)


def _loss(lib, w, b, x, y):
    out = x @ w.T + b
    return (lib.nn.functional.cross_entropy(out, y) + (w * w).sum() * 0.01)


@pytest.mark.parametrize("name,kw", CASES)
def test_trajectory_matches_pytorch(name, kw):
    tw, tb = torch.tensor(W0, requires_grad=True), torch.tensor(B0, requires_grad=True)
    jw, jb = nn.Parameter(taiji.tensor(W0)), nn.Parameter(taiji.tensor(B0))
    to = getattr(torch.optim, name)([tw, tb], **kw)
    jo = getattr(taiji.optim, name)([jw, jb], **kw)
    tx, ty, jx, jy = torch.tensor(X), torch.tensor(Y), taiji.tensor(X), taiji.tensor(Y)
    for i in range(50):
        for o, lib, w, b, x, y in ((to, torch, tw, tb, tx, ty), (jo, taiji, jw, jb, jx, jy)):
            o.zero_grad()
            _loss(lib, w, b, x, y).backward()
            o.step()
    np.testing.assert_allclose(jw.detach().numpy(), tw.detach().numpy(), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(jb.detach().numpy(), tb.detach().numpy(), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name,kw", CASES)
def test_jit_step_matches_eager(name, kw):
    def make():
        w, b = nn.Parameter(taiji.tensor(W0)), nn.Parameter(taiji.tensor(B0))
        return w, b, getattr(taiji.optim, name)([w, b], **kw)

    def step_fn(w, b, o):
        def step(x, y):
            o.zero_grad()
            loss = _loss(taiji, w, b, x, y)
            loss.backward()
            o.step()
            return loss
        return step
    we, be, oe = make()
    wj, bj, oj = make()
    se, sj = step_fn(we, be, oe), taiji.jit(step_fn(wj, bj, oj))
    x, y = taiji.tensor(X), taiji.tensor(Y)
    for i in range(20):
        if i == 10:  # a changed lr must take effect without recompiling
            oe.param_groups[0]["lr"] *= 0.3
            oj.param_groups[0]["lr"] *= 0.3
        assert abs(float(se(x, y)) - float(sj(x, y))) < 1e-4
    np.testing.assert_allclose(wj.detach().numpy(), we.detach().numpy(), atol=1e-4)
    assert len(sj.compile_log) <= 2


def test_param_groups_and_state_dict_roundtrip():
    a, b = nn.Linear(3, 2), nn.Linear(2, 1)
    opt = taiji.optim.Adam([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.1}],
                           lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    b(a(taiji.randn(4, 3))).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert sd["param_groups"][1]["params"] == [2, 3]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    opt2 = taiji.optim.Adam(list(a.parameters()) + list(b.parameters()), lr=0.5)
    with pytest.raises(ValueError, match="parameter groups"):
        opt2.load_state_dict(sd)
    opt3 = taiji.optim.Adam([{"params": a.parameters()}, {"params": b.parameters()}], lr=0.5)
    opt3.load_state_dict(sd)
    assert opt3.param_groups[1]["lr"] == 0.1
    np.testing.assert_array_equal(opt3.state[a.weight]["exp_avg"].numpy(),
                                  opt.state[a.weight]["exp_avg"].numpy())
    extra = nn.Parameter(taiji.zeros(2))
    opt.add_param_group({"params": [extra], "lr": 1.0})
    assert opt.param_groups[2]["betas"] == (0.9, 0.999)


def test_pytorch_state_dict_loads():
    tw = torch.tensor(W0, requires_grad=True)
    to = torch.optim.Adam([tw], lr=0.01)
    (tw ** 2).sum().backward()
    to.step()
    sd = to.state_dict()
    jw = nn.Parameter(taiji.tensor(W0))
    jo = taiji.optim.Adam([jw], lr=0.01)
    jo.load_state_dict({"state": {k: {n: taiji.tensor(v.numpy()) for n, v in s.items()}
                                  for k, s in sd["state"].items()},
                        "param_groups": sd["param_groups"]})
    np.testing.assert_allclose(jo.state[jw]["exp_avg"].numpy(),
                               sd["state"][0]["exp_avg"].numpy())


def test_bad_input():
    x = taiji.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        taiji.optim.SGD([x * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        taiji.optim.SGD([x, x], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        taiji.optim.Adam([x], lr=-1.0)
    with pytest.raises(ValueError, match="Invalid beta"):
        taiji.optim.Adam([x], betas=(1.5, 0.9))
    with pytest.raises(TypeError, match="iterable"):
        taiji.optim.SGD(x, lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        taiji.optim.SGD([], lr=0.1)


def test_clip_grad_norm_and_vectors():
    ps = [nn.Parameter(taiji.tensor(W0)), nn.Parameter(taiji.tensor(B0))]
    tps = [torch.tensor(W0, requires_grad=True), torch.tensor(B0, requires_grad=True)]
    for p, t in zip(ps, tps):
        p.grad = taiji.tensor(np.arange(p.numel(), dtype=np.float32).reshape(p.shape))
        t.grad = torch.tensor(np.arange(t.numel(), dtype=np.float32).reshape(t.shape))
    for nt in (2.0, 1.0, float("inf")):
        for p, t in zip(ps, tps):
            p.grad = taiji.tensor(np.arange(p.numel(), dtype=np.float32).reshape(p.shape))
            t.grad = torch.tensor(np.arange(t.numel(), dtype=np.float32).reshape(t.shape))
        jn = nn.utils.clip_grad_norm_(ps, 1.5, nt)
        tn = torch.nn.utils.clip_grad_norm_(tps, 1.5, nt)
        np.testing.assert_allclose(jn.item(), tn.item(), rtol=1e-5)
        for p, t in zip(ps, tps):
            np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5)
    nn.utils.clip_grad_value_(ps, 0.1)
    assert np.abs(ps[0].grad.numpy()).max() <= 0.1
    v = nn.utils.parameters_to_vector(ps)
    assert v.shape == (16,)
    nn.utils.vector_to_parameters(v * 0 + 1, ps)
    assert np.all(ps[1].detach().numpy() == 1)


def test_functional_optax_api_matches_stateful_and_jits():
    fo = taiji.optim.functional
    for fopt, cls, kw in ((fo.adam(0.01), taiji.optim.Adam, dict(lr=0.01)),
                          (fo.sgd(0.1, momentum=0.9), taiji.optim.SGD,
                           dict(lr=0.1, momentum=0.9))):
        params = {"w": taiji.tensor(W0), "b": taiji.tensor(B0)}
        state = fopt.init(params)
        x, y = taiji.tensor(X), taiji.tensor(Y)

        @taiji.jit
        def step(params, state, x, y):
            loss, g = taiji.value_and_grad(lambda p: _loss(taiji, p["w"], p["b"], x, y))(params)
            upd, state = fopt.update(g, state, params)
            return fo.apply_updates(params, upd), state, loss
        w, b = nn.Parameter(taiji.tensor(W0)), nn.Parameter(taiji.tensor(B0))
        opt = cls([w, b], **kw)
        for _ in range(30):
            params, state, _ = step(params, state, x, y)
            opt.zero_grad()
            _loss(taiji, w, b, x, y).backward()
            opt.step()
        np.testing.assert_allclose(params["w"].numpy(), w.detach().numpy(), atol=1e-4)
