"""RNN, LSTM, GRU and their cells against PyTorch with weights copied through state_dict:
outputs, final states, and gradients of inputs, initial states and parameters."""
import math

import numpy as np
import pytest

import taiji
import taiji.nn as nn
import taiji.nn.functional as F
from tests.nn._util import torch, close, copy_weights

tnn = torch.nn


def _flat(out):
    """(output, h) or (output, (h, c)) or h or (h, c) -> list of tensors."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def compare(tm, jm, x_shape, state_shapes=(), train=False, atol=1e-5):
    """Run both modules on the same input (and initial states); compare every output and the
    gradients of the input, the initial states and every parameter."""
    copy_weights(tm, jm)
    tm.train(train)
    jm.train(train)
    rng = np.random.default_rng(0)
    arrs = [rng.standard_normal(s).astype(np.float32) for s in (x_shape,) + tuple(state_shapes)]
    tx = [torch.tensor(a, requires_grad=True) for a in arrs]
    jx = [taiji.tensor(a).requires_grad_() for a in arrs]

    def call(m, xs):
        if not state_shapes:
            return m(xs[0])
        if isinstance(m, (tnn.LSTM, nn.LSTM, tnn.LSTMCell, nn.LSTMCell)):
            return m(xs[0], (xs[1], xs[2]))
        return m(xs[0], xs[1])

    to, jo = _flat(call(tm, tx)), _flat(call(jm, jx))
    assert len(to) == len(jo)
    for a, b in zip(jo, to):
        assert tuple(a.shape) == tuple(b.shape)
        close(a, b, atol)
    ws = [rng.standard_normal(tuple(t.shape)).astype(np.float32) for t in to]
    sum((t * torch.tensor(w)).sum() for t, w in zip(to, ws)).backward()
    total = None
    for j, w in zip(jo, ws):
        s = (j * taiji.tensor(w)).sum()
        total = s if total is None else total + s
    total.backward()
    for a, b in zip(jx, tx):
        close(a.grad, b.grad, atol)
    tp = dict(tm.named_parameters())
    jp = dict(jm.named_parameters())
    assert set(tp) == set(jp)
    for k, p in jp.items():
        close(p.grad, tp[k].grad, atol)
    return to, jo


CONFIGS = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(num_layers=3, bias=False),
]


@pytest.mark.parametrize("kind", ["RNN", "RNN_relu", "LSTM", "GRU"])
@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in
                                                                  kw.items()) or "default")
def test_recurrent_layers_match_torch(kind, kw):
    kw = dict(kw)
    if kind == "RNN_relu":
        kind, kw["nonlinearity"] = "RNN", "relu"
    tm, jm = getattr(tnn, kind)(4, 5, **kw), getattr(nn, kind)(4, 5, **kw)
    assert list(tm.state_dict()) == list(jm.state_dict())
    shape = (2, 6, 4) if kw.get("batch_first") else (6, 2, 4)
    compare(tm, jm, shape)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_initial_states(kind):
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    tm, jm = getattr(tnn, kind)(3, 4, **kw), getattr(nn, kind)(3, 4, **kw)
    states = [(4, 2, 4)] * (2 if kind == "LSTM" else 1)
    compare(tm, jm, (2, 5, 3), states)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input(kind):
    tm, jm = getattr(tnn, kind)(3, 4, num_layers=2), getattr(nn, kind)(3, 4, num_layers=2)
    compare(tm, jm, (5, 3))
    states = [(2, 4)] * (2 if kind == "LSTM" else 1)
    compare(tm, jm, (5, 3), states)


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_lstm_proj_size():
    kw = dict(num_layers=2, bidirectional=True, proj_size=3)
    tm, jm = tnn.LSTM(4, 6, **kw), nn.LSTM(4, 6, **kw)
    assert {k: tuple(v.shape) for k, v in tm.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in jm.state_dict().items()}
    compare(tm, jm, (5, 2, 4))
    compare(tm, jm, (5, 2, 4), [(4, 2, 3), (4, 2, 6)])


def test_dropout_between_layers_train_vs_eval():
    kw = dict(num_layers=3, dropout=0.5)
    tm, jm = tnn.GRU(4, 8, **kw), nn.GRU(4, 8, **kw)
    compare(tm, jm, (6, 2, 4), train=False)  # eval: dropout is off, equal to torch
    x = taiji.randn(6, 2, 4)
    jm.train()
    taiji.manual_seed(1)
    a, _ = jm(x)
    taiji.manual_seed(1)
    b, _ = jm(x)
    taiji.manual_seed(2)
    c, _ = jm(x)
    jm.eval()
    e, _ = jm(x)
    close(a, b, 0)  # same seed, same mask
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())
    assert not np.allclose(a.detach().numpy(), e.detach().numpy())
    # dropout=0 in training mode equals torch
    kw = dict(num_layers=2, dropout=0.0)
    compare(tnn.LSTM(4, 5, **kw), nn.LSTM(4, 5, **kw), (4, 3, 4), train=True)


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_cells(kind, bias):
    tm, jm = getattr(tnn, kind)(3, 5, bias=bias), getattr(nn, kind)(3, 5, bias=bias)
    assert list(tm.state_dict()) == list(jm.state_dict())
    n = 2 if kind == "LSTMCell" else 1
    compare(tm, jm, (4, 3))
    compare(tm, jm, (4, 3), [(4, 5)] * n)
    compare(tm, jm, (3,), [(5,)] * n)


def test_rnn_cell_relu():
    compare(tnn.RNNCell(3, 4, nonlinearity="relu"), nn.RNNCell(3, 4, nonlinearity="relu"),
            (2, 3), [(2, 4)])


def test_default_init_and_repr():
    taiji.manual_seed(0)
    m = nn.LSTM(3, 16, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(16)
    for name, p in m.named_parameters():
        a = p.detach().numpy()
        assert a.min() >= -bound and a.max() <= bound, name
        assert a.std() > bound / 3, name  # uniform, not constant
    assert repr(m) == repr(tnn.LSTM(3, 16, num_layers=2, bidirectional=True))
    assert repr(nn.RNN(3, 4, nonlinearity="relu", batch_first=True)) == \
        repr(tnn.RNN(3, 4, nonlinearity="relu", batch_first=True))
    assert repr(nn.GRUCell(3, 4, bias=False)) == repr(tnn.GRUCell(3, 4, bias=False))
    assert len(m.all_weights) == 4 and len(m.all_weights[0]) == 4
    m.flatten_parameters()


def test_bad_input_messages():
    model = nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 8, num_layers=2))
    with pytest.raises(RuntimeError, match=r"model\.1 \(LSTM 4->8\) expected input last dim "
                                           r"4, got 6"):
        model[1](taiji.randn(5, 2, 6))
    with pytest.raises(RuntimeError, match=r"expected h0 of shape \[2, 2, 8\].*got \[1, 2, 8\]"):
        model[1](taiji.randn(5, 2, 4), (taiji.zeros(1, 2, 8), taiji.zeros(2, 2, 8)))
    with pytest.raises(ValueError, match="2-D .* or 3-D"):
        nn.GRU(4, 8)(taiji.randn(1, 5, 2, 4))
    with pytest.raises(TypeError, match=r"tuple \(h0, c0\)"):
        nn.LSTM(4, 8)(taiji.randn(5, 2, 4), taiji.zeros(1, 2, 8))
    with pytest.raises(RuntimeError, match=r"GRUCell 3->5\) expected hidden state of shape "
                                           r"\[2, 5\]"):
        nn.GRUCell(3, 5)(taiji.randn(2, 3), taiji.zeros(3, 5))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="proj_size"):
        nn.GRU(3, 4, proj_size=2)


class _Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.lstm = nn.LSTM(6, 8, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        out, (h, c) = self.lstm(self.emb(x))
        return self.fc(out)


def test_lstm_trains_under_jit_like_eager():
    rng = np.random.default_rng(0)
    x = taiji.tensor(rng.integers(0, 10, (4, 7)))
    y = taiji.tensor(rng.integers(0, 3, (4, 7)))

    def make():
        taiji.manual_seed(0)
        m = _Tagger()
        return m, taiji.optim.Adam(m.parameters(), lr=1e-2)

    def step_fn(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x).reshape(-1, 3), y.reshape(-1))
            loss.backward()
            opt.step()
            return loss
        return step

    me, oe = make()
    mj, oj = make()
    se, sj = step_fn(me, oe), taiji.jit(step_fn(mj, oj))
    losses = []
    for i in range(5):
        le, lj = float(se(x, y)), float(sj(x, y))
        assert abs(le - lj) < 1e-5, (i, le, lj)
        losses.append(le)
    assert losses[-1] < losses[0]
    for (k, a), (_, b) in zip(me.state_dict().items(), mj.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=k)


def test_gru_regression_under_jit_mse():
    rng = np.random.default_rng(1)
    x = taiji.tensor(rng.standard_normal((5, 3, 2)).astype(np.float32))
    y = taiji.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    taiji.manual_seed(0)
    m = nn.GRU(2, 4)
    opt = taiji.optim.Adam(m.parameters(), lr=1e-2)

    @taiji.jit
    def step(x, y):
        opt.zero_grad()
        _, h = m(x)
        loss = F.mse_loss(h[-1], y)
        loss.backward()
        opt.step()
        return loss
    first = float(step(x, y))
    for _ in range(4):
        last = float(step(x, y))
    assert last < first
