"""Cases shared by the fake-device tests (test_fake_device.py) and the real-GPU tests
(test_cuda_gpu.py): each runs the same thing on the CPU and on 'cuda' and compares."""
from __future__ import annotations

import numpy as np

import taiji
import taiji.nn as nn
import taiji.nn.functional as F


def program_of(f):
    """The compiled program of jit function ``f``'s latest variant."""
    return next(reversed(f._cache.data.values()))[-1].fn


def host(t) -> np.ndarray:
    """A tensor's values as a NumPy array, whatever its device."""
    return t.detach().cpu().numpy()


# (name, module factory, input shapes or ("int", high, shape), train mode)
LAYERS = [
    ("linear", lambda: nn.Linear(6, 4), [(3, 6)], True),
    ("bilinear", lambda: nn.Bilinear(3, 4, 2), [(5, 3), (5, 4)], True),
    ("mlp", lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.Tanh()),
     [(4, 6)], True),
    ("activations", lambda: nn.Sequential(nn.GELU(), nn.SiLU(), nn.Sigmoid(), nn.Softplus(),
                                          nn.ELU(), nn.LeakyReLU(0.1), nn.Softmax(-1)),
     [(3, 5)], True),
    ("prelu", lambda: nn.PReLU(), [(3, 5)], True),
    ("conv1d", lambda: nn.Conv1d(2, 3, 3, padding=1), [(2, 2, 7)], True),
    ("conv2d", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), [(2, 2, 7, 7)], True),
    ("conv_transpose2d", lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), [(1, 2, 4, 4)], True),
    ("maxpool2d", lambda: nn.MaxPool2d(2), [(2, 3, 6, 6)], True),
    ("maxpool1d", lambda: nn.MaxPool1d(2), [(2, 3, 6)], True),
    ("avgpool2d", lambda: nn.AvgPool2d(2), [(2, 3, 6, 6)], True),
    ("adaptive_avgpool2d", lambda: nn.AdaptiveAvgPool2d(3), [(2, 3, 7, 7)], True),
    ("adaptive_maxpool2d", lambda: nn.AdaptiveMaxPool2d(2), [(2, 3, 6, 6)], True),
    ("batchnorm1d", lambda: nn.BatchNorm1d(4), [(6, 4)], True),
    ("batchnorm2d_eval", lambda: nn.BatchNorm2d(3), [(2, 3, 4, 4)], False),
    ("batchnorm2d", lambda: nn.BatchNorm2d(3), [(2, 3, 4, 4)], True),
    ("layernorm", lambda: nn.LayerNorm(5), [(3, 5)], True),
    ("rmsnorm", lambda: nn.RMSNorm(5), [(3, 5)], True),
    ("groupnorm", lambda: nn.GroupNorm(2, 4), [(2, 4, 3)], True),
    ("instancenorm2d", lambda: nn.InstanceNorm2d(3), [(2, 3, 4, 4)], True),
    ("embedding", lambda: nn.Embedding(10, 4, padding_idx=0), [("int", 10, (3, 5))], True),
    ("flatten", lambda: nn.Sequential(nn.Flatten(), nn.Unflatten(1, (2, 6))), [(2, 3, 4)],
     True),
    ("dropout_eval", lambda: nn.Dropout(0.5), [(4, 5)], False),
    ("rnn", lambda: nn.RNN(3, 4, batch_first=True), [(2, 5, 3)], True),
    ("lstm", lambda: nn.LSTM(3, 4, num_layers=2), [(5, 2, 3)], True),
    ("gru", lambda: nn.GRU(3, 4, bidirectional=True), [(5, 2, 3)], True),
    ("gru_cell", lambda: nn.GRUCell(3, 4), [(2, 3)], True),
    ("lstm_cell", lambda: nn.LSTMCell(3, 4), [(2, 3)], True),
    ("multihead_attention", lambda: nn.MultiheadAttention(8, 2, batch_first=True),
     [(2, 5, 8)], True),
    ("transformer_layer", lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16,
                                                             dropout=0.0, batch_first=True),
     [(2, 5, 8)], True),
]


def _first(out):
    """The tensor a layer's output is judged by (RNNs return (output, state))."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _call(name, m, xs):
    if name == "multihead_attention":  # causal: the mask is built inside the layer
        return m(xs[0], xs[0], xs[0], need_weights=False, is_causal=True)
    if name == "transformer_layer":
        return m(xs[0], is_causal=True)
    return m(*xs)


def run_layer(case, device: str, seed: int = 0):
    """Build the layer (same weights for every device), run forward and backward on
    ``device``; returns host arrays: output, input grads, parameter grads (by name)."""
    name, make, shapes, train = case
    taiji.manual_seed(seed)
    m = make().train(train)
    m.to(device)
    rng = np.random.default_rng(seed)
    xs = []
    for s in shapes:
        if s[0] == "int":
            xs.append(taiji.tensor(rng.integers(0, s[1], s[2]), device=device))
        else:
            xs.append(taiji.tensor(rng.standard_normal(s).astype(np.float32), device=device,
                                   requires_grad=True))
    out = _first(_call(name, m, xs))
    assert out.device == taiji.device(device), f"{name}: output on {out.device}"
    w = taiji.tensor(rng.standard_normal(out.shape).astype(np.float32), device=device)
    (out * w).sum().backward()
    grads = {k: host(p.grad) for k, p in m.named_parameters() if p.grad is not None}
    for k, p in m.named_parameters():
        assert p.device == taiji.device(device), f"{name}: parameter {k} on {p.device}"
    return host(out), [host(x.grad) for x in xs if x.grad is not None], grads


def compare_layer(case, device: str, rtol=1e-5, atol=1e-5):
    """The layer on ``device`` gives the CPU's values and gradients."""
    ref = run_layer(case, "cpu")
    got = run_layer(case, device)
    name = case[0]
    np.testing.assert_allclose(got[0], ref[0], rtol=rtol, atol=atol, err_msg=f"{name} output")
    assert len(got[1]) == len(ref[1])
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{name} input grad")
    assert sorted(got[2]) == sorted(ref[2])
    for k in ref[2]:
        np.testing.assert_allclose(got[2][k], ref[2][k], rtol=rtol, atol=atol,
                                   err_msg=f"{name} grad of {k}")


# ---------------------------------------------------------------- training steps

def mlp(sizes=(20, 16, 5)):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Linear(16, 3))


def train(device: str, model=mlp, shape=(8, 20), classes=5, steps=4, compiled=True,
          optimizer="adam", seed=0):
    """Losses of a few training steps (PyTorch style, under taiji.jit when ``compiled``),
    and the final parameters (host arrays)."""
    taiji.manual_seed(seed)
    m = model().to(device)
    opt = taiji.optim.Adam(m.parameters(), lr=1e-2) if optimizer == "adam" else \
        taiji.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(seed)
    x = taiji.tensor(rng.standard_normal(shape).astype(np.float32), device=device)
    y = taiji.tensor(rng.integers(0, classes, shape[0]), device=device)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss
    f = taiji.jit(step) if compiled else step
    losses = [float(f(x, y)) for _ in range(steps)]
    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, taiji.Tensor):
                assert v.device == taiji.device(device), f"optimizer state {k} on {v.device}"
    return losses, {k: host(p) for k, p in m.named_parameters()}, f


# ---------------------------------------------------------------- the op registry

def registry_vjp(op, sample, device: str):
    """Gradients of sum(v * op(x)) for one registry sample on ``device`` (host arrays),
    with the same random cotangents ``v`` on every device."""
    from op_db import bind, outputs
    fn, diff = bind(op, sample, taiji, lambda a: taiji.tensor(a, device=device))
    xs = [taiji.tensor(a, dtype=taiji.float64, device=device, requires_grad=True)
          for a in diff]
    outs = [o for o in outputs(fn(*xs)) if isinstance(o, taiji.Tensor) and o.requires_grad]
    if not outs:
        return []
    rng = np.random.default_rng(0)
    vs = [taiji.tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=device)
          for o in outs]
    gs = taiji.autograd.grad(outs, xs, grad_outputs=vs, allow_unused=True)
    for g in gs:
        assert g is None or g.device == taiji.device(device), \
            f"{op.name}: a gradient on {g.device}"
    return [None if g is None else host(g) for g in gs]


def differentiable_samples(max_per_op: int = 2):
    """(op, sample) pairs of the registry's differentiable float64 samples."""
    from op_db import OPS, outputs, sample_inputs
    cases = []
    for op in OPS:
        if not op.differentiable or np.float64 not in op.dtypes:
            continue
        ss = [s for s in sample_inputs(op, np.float64) if s.grad and any(
            isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in outputs(s.args))]
        cases += [(op, s, f"{op.name}-{i}") for i, s in enumerate(ss[:max_per_op])]
    return cases
