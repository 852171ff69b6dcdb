"""float64 central-difference gradient checks of every layer, activation and loss in
``taiji.nn`` -- independent of PyTorch.

Parameters are passed as differentiated inputs through ``taiji.func.functional_call``, so
one check covers the gradient w.r.t. the input *and* every parameter. Shapes are tiny (the
numeric Jacobian costs two forward passes per element) and inputs stay away from kinks
(relu/abs at 0, ties in max pooling, hinge corners).
"""
import numpy as np
import pytest

import taiji
from taiji import nn
from taiji.func import functional_call
from tests._gradcheck import gradcheck, gradgradcheck

RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded():
    """Same inputs and initial weights whichever tests run, in whatever order."""
    global RNG
    RNG = np.random.default_rng(1234)
    taiji.manual_seed(1234)


def _rand(*shape, seed=None):
    rng = RNG if seed is None else np.random.default_rng(seed)
    return rng.standard_normal(shape)


def _distinct(*shape, seed=0):
    """Values at least 0.1 apart (no ties, so max pooling is differentiable there)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - 0.05 * n + 0.013).reshape(shape)


def _module_fn(m, n_inputs, extra=(), kwargs=None, out=None):
    """fn(*inputs, *params) -> out(m(*inputs, *extra, **kwargs)) via functional_call."""
    names = [n for n, _ in m.named_parameters()]

    def fn(*ts):
        params = dict(zip(names, ts[n_inputs:]))
        y = functional_call(m, params, tuple(ts[:n_inputs]) + tuple(extra), kwargs)
        return y if out is None else out(y)
    return fn, [p.detach().numpy().copy() for _, p in m.named_parameters()]


def _assert_params_used(fn, arrays, n_inputs):
    """Guard against a vacuous pass: every parameter handed to functional_call must reach
    the output (a zero analytic *and* numeric gradient would otherwise agree)."""
    xs = [taiji.tensor(a.copy(), dtype=taiji.float64, requires_grad=True) for a in arrays]
    outs = fn(*xs)
    outs = [o for o in (outs if isinstance(outs, (tuple, list)) else [outs])
            if o.dtype.is_floating_point and o.requires_grad]
    total = sum((o * o).sum() for o in outs)
    gs = taiji.autograd.grad(total, xs[n_inputs:], allow_unused=True)
    for k, g in enumerate(gs):
        assert g is not None and np.any(g.numpy() != 0), f"parameter {k} does not reach the output"


def check_module(m, inputs, extra=(), kwargs=None, out=None):
    """gradcheck and gradgradcheck of a float64 module w.r.t. its float inputs and all its
    parameters. Off the kinks, piecewise-linear ops (relu, max pooling, hinges) have a zero
    second derivative that double backward must reproduce, so they are checked too; the
    whole file runs in a few seconds."""
    m = m.double()
    fn, params = _module_fn(m, len(inputs), extra, kwargs, out)
    arrays = list(inputs) + params
    _assert_params_used(fn, arrays, len(inputs))
    assert gradcheck(fn, arrays)
    assert gradgradcheck(fn, arrays)


# ---------------------------------------------------------------------------------- layers

def test_linear():
    check_module(nn.Linear(3, 2), [_rand(2, 3)])
    check_module(nn.Linear(3, 2, bias=False), [_rand(2, 2, 3)])


def test_bilinear():
    check_module(nn.Bilinear(2, 3, 2), [_rand(2, 2), _rand(2, 3)])


@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(dilation=2, padding="same"),
    dict(groups=2, padding=1, bias=False),
], ids=["plain", "stride-pad", "dilation-same", "groups"])
def test_conv1d(kw):
    check_module(nn.Conv1d(2, 2, 3, **kw), [_rand(1, 2, 5)])


@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    dict(groups=2, padding="same", dilation=2),
    dict(padding="same"),
], ids=["plain", "stride-pad", "asym-dilation", "groups-same-dilation", "same"])
def test_conv2d(kw):
    check_module(nn.Conv2d(2, 2, 2, **kw), [_rand(1, 2, 4, 4)])


@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=2, groups=2, dilation=2, bias=False),
], ids=["plain", "stride-pad-outpad", "groups-dilation"])
def test_conv_transpose2d(kw):
    check_module(nn.ConvTranspose2d(2, 2, 2, **kw), [_rand(1, 2, 3, 3)])


def test_max_pool1d():
    check_module(nn.MaxPool1d(2), [_distinct(1, 2, 6)])
    check_module(nn.MaxPool1d(3, stride=2, padding=1), [_distinct(1, 2, 6, seed=1)])


def test_max_pool2d():
    check_module(nn.MaxPool2d(2), [_distinct(1, 2, 4, 4)])
    check_module(nn.MaxPool2d(3, stride=2, padding=1, dilation=1),
                 [_distinct(1, 1, 5, 5, seed=1)])
    check_module(nn.MaxPool2d(2, stride=1, dilation=2), [_distinct(1, 1, 4, 4, seed=2)])


def test_adaptive_max_pool2d():
    check_module(nn.AdaptiveMaxPool2d((2, 3)), [_distinct(1, 2, 4, 5)])


def test_avg_pool1d():
    check_module(nn.AvgPool1d(2), [_rand(1, 2, 6)])
    check_module(nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
                 [_rand(1, 2, 6)])
    check_module(nn.AvgPool1d(3, stride=2, padding=1, ceil_mode=True), [_rand(1, 1, 6)])


def test_avg_pool2d():
    check_module(nn.AvgPool2d(2), [_rand(1, 2, 4, 4)])
    check_module(nn.AvgPool2d(3, stride=2, padding=1), [_rand(1, 1, 5, 5)])
    check_module(nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                 [_rand(1, 1, 5, 5)])


def test_adaptive_avg_pool():
    check_module(nn.AdaptiveAvgPool2d((2, 3)), [_rand(1, 2, 5, 4)])
    check_module(nn.AdaptiveAvgPool2d(1), [_rand(2, 2, 3, 3)])
    check_module(nn.AdaptiveAvgPool1d(3), [_rand(1, 2, 5)])


def test_batch_norm1d_train():
    check_module(nn.BatchNorm1d(3), [_rand(4, 3)])
    check_module(nn.BatchNorm1d(2), [_rand(3, 2, 2)])
    check_module(nn.BatchNorm1d(2, affine=False), [_rand(3, 2)])


def test_batch_norm2d_train():
    check_module(nn.BatchNorm2d(2), [_rand(2, 2, 2, 2)])


def test_batch_norm_eval():
    m = nn.BatchNorm2d(2)
    m.running_mean.copy_(taiji.tensor([0.3, -0.2]))
    m.running_var.copy_(taiji.tensor([1.5, 0.7]))
    m.eval()
    check_module(m, [_rand(2, 2, 2, 2)])


def test_layer_norm():
    check_module(nn.LayerNorm(3), [_rand(2, 3)])
    check_module(nn.LayerNorm((2, 3)), [_rand(2, 2, 3)])
    check_module(nn.LayerNorm(3, elementwise_affine=False), [_rand(2, 3)])


def test_group_norm():
    check_module(nn.GroupNorm(2, 4), [_rand(2, 4, 3)])
    check_module(nn.GroupNorm(1, 2), [_rand(1, 2, 2, 2)])


def test_rms_norm():
    check_module(nn.RMSNorm(3), [_rand(2, 3)])
    check_module(nn.RMSNorm((2, 2), eps=1e-5), [_rand(2, 2, 2)])


def test_instance_norm():
    check_module(nn.InstanceNorm1d(2, affine=True), [_rand(2, 2, 3)])


def test_embedding_weight_grad():
    idx = taiji.tensor(np.array([[0, 2, 2], [3, 1, 0]]))
    check_module(nn.Embedding(4, 2), [], extra=(idx,))
    check_module(nn.Embedding(4, 2, max_norm=None), [], extra=(idx,))


def test_prelu():
    x = np.array([[-1.3, 0.4, 2.1], [0.7, -0.2, -2.4]])
    check_module(nn.PReLU(), [x])
    check_module(nn.PReLU(2), [x.reshape(1, 2, 3)])


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_rnn(cls):
    check_module(getattr(nn, cls)(2, 2), [_rand(3, 1, 2)], out=lambda o: o[0])


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_rnn_bidirectional_batch_first_hidden(cls):
    m = getattr(nn, cls)(1, 2, batch_first=True, bidirectional=True)
    h0 = _rand(2, 1, 2) * 0.5
    if cls == "LSTM":
        m = m.double()
        names = [n for n, _ in m.named_parameters()]

        def fn(x, h, c, *ps):
            out, (hn, cn) = functional_call(m, dict(zip(names, ps)), (x, (h, c)))
            return out, hn, cn
        arrays = [_rand(1, 2, 1), h0, _rand(2, 1, 2) * 0.5] + \
            [p.detach().numpy().copy() for _, p in m.named_parameters()]
        _assert_params_used(fn, arrays, 3)
        assert gradcheck(fn, arrays)
        assert gradgradcheck(fn, arrays)
    else:
        check_module(m, [_rand(1, 2, 1), h0])


def test_rnn_two_layers_tanh_relu():
    check_module(nn.RNN(1, 2, num_layers=2), [_rand(2, 1, 1)], out=lambda o: o[0])
    # relu: keep the pre-activations off 0 (positive input, positive weights)
    m = nn.RNN(1, 2, nonlinearity="relu")
    with taiji.no_grad():
        for p in m.parameters():
            p.copy_(p.abs() + 0.1)
    check_module(m, [np.abs(_rand(2, 1, 1)) + 0.1], out=lambda o: o[0])


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_rnn_cells(cls):
    m = getattr(nn, cls)(2, 2).double()
    names = [n for n, _ in m.named_parameters()]
    nh = 2 if cls == "LSTMCell" else 1

    def fn(x, *rest):
        hx = tuple(rest[:nh]) if nh == 2 else rest[0]
        return functional_call(m, dict(zip(names, rest[nh:])), (x, hx))
    arrays = [_rand(1, 2)] + [_rand(1, 2) * 0.5 for _ in range(nh)] + \
        [p.detach().numpy().copy() for _, p in m.named_parameters()]
    _assert_params_used(fn, arrays, 1 + nh)
    assert gradcheck(fn, arrays)
    assert gradgradcheck(fn, arrays)


def test_multihead_attention():
    m = nn.MultiheadAttention(4, 2)
    q, k = _rand(2, 1, 4), _rand(3, 1, 4)
    check_module(m, [q, k, k], out=lambda o: o[0])


def test_multihead_attention_batch_first_weights_and_mask():
    m = nn.MultiheadAttention(2, 1, batch_first=True, kdim=3, vdim=1)
    mask = taiji.tensor(np.array([[False, True], [False, False]]))
    check_module(m, [_rand(1, 2, 2), _rand(1, 2, 3), _rand(1, 2, 1)],
                 kwargs=dict(attn_mask=mask))


def test_transformer_encoder_layer():
    m = nn.TransformerEncoderLayer(4, 2, dim_feedforward=3, dropout=0.0, batch_first=True,
                                   activation="gelu")
    check_module(m, [_rand(1, 2, 4)])


def test_transformer_encoder_layer_norm_first_relu():
    m = nn.TransformerEncoderLayer(2, 1, dim_feedforward=2, dropout=0.0, norm_first=True)
    # relu in the feed-forward: random weights almost never give a pre-activation within eps
    # of 0, and the seed is fixed.
    check_module(m, [_rand(2, 1, 2, seed=7)])


# ----------------------------------------------------------------------------- activations

# Away from every kink: 0, +-1 (hardtanh), +-3 (hardsigmoid/hardswish), 6 (relu6).
ACT_X = np.array([[-3.6, -2.5, -1.3, -0.7, -0.2], [0.3, 0.8, 1.4, 2.2, 6.5]])

ACTIVATIONS = [
    (nn.ReLU, ()), (nn.ReLU6, ()), (nn.LeakyReLU, (0.2,)),
    (nn.ELU, (0.7,)), (nn.CELU, (1.3,)), (nn.SELU, ()),
    (nn.GELU, ()), (nn.GELU, ("tanh",)), (nn.SiLU, ()), (nn.Mish, ()),
    (nn.Tanh, ()), (nn.Sigmoid, ()), (nn.Softplus, ()),
    (nn.Softplus, (2.0, 1.0)), (nn.Hardtanh, ()),
    (nn.Hardtanh, (-2.0, 2.0)), (nn.Hardsigmoid, ()), (nn.Hardswish, ()),
    (nn.Softsign, ()), (nn.LogSigmoid, ()), (nn.Threshold, (0.5, -1.0)),
    (nn.GLU, ()), (nn.Softmax, (1,)), (nn.Softmax, (0,)),
    (nn.LogSoftmax, (1,)), (nn.Softmin, (1,)),
]


@pytest.mark.parametrize("cls,args", ACTIVATIONS,
                         ids=[f"{c.__name__}{a}" for c, a in ACTIVATIONS])
def test_activation(cls, args):
    x = ACT_X[:, :4] if cls is nn.GLU else ACT_X
    check_module(cls(*args), [x])


def test_identity_flatten_unflatten_sequential():
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Tanh(), nn.Unflatten(1, (2, 2)),
                      nn.Identity())
    check_module(m, [_rand(2, 2, 2)])


# ---------------------------------------------------------------------------------- losses

REDUCTIONS = ["none", "mean", "sum"]


def check_loss(loss, inputs, extra=()):
    """gradcheck and gradgradcheck of ``loss(*inputs, *extra)`` w.r.t. the float
    ``inputs``."""
    fn = lambda *ts: loss(*ts, *extra)  # noqa: E731
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def _t(a):
    return taiji.tensor(np.asarray(a))


CE_W = _t(np.array([0.5, 2.0, 1.0, 1.5]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [
    dict(), dict(weight=CE_W), dict(ignore_index=1), dict(label_smoothing=0.2),
    dict(weight=CE_W, ignore_index=2, label_smoothing=0.1),
], ids=["plain", "weight", "ignore_index", "smoothing", "all"])
def test_cross_entropy_indices(reduction, kw):
    kw = {k: (v.double() if isinstance(v, taiji.Tensor) else v) for k, v in kw.items()}
    target = _t(np.array([1, 0, 3, 2, 1]))
    check_loss(nn.CrossEntropyLoss(reduction=reduction, **kw), [_rand(5, 4)], (target,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [dict(), dict(weight=CE_W), dict(label_smoothing=0.3)],
                         ids=["plain", "weight", "smoothing"])
def test_cross_entropy_probabilities(reduction, kw):
    kw = {k: (v.double() if isinstance(v, taiji.Tensor) else v) for k, v in kw.items()}
    p = np.random.default_rng(3).dirichlet(np.ones(4), size=3)
    # the gradient w.r.t. the target probabilities is checked too
    check_loss(nn.CrossEntropyLoss(reduction=reduction, **kw), [_rand(3, 4), p])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_k_dim(reduction):
    target = _t(np.array([[0, 2], [1, 1]]))
    check_loss(nn.CrossEntropyLoss(reduction=reduction, weight=_t([1.0, 0.5, 2.0]),
                                   ignore_index=0), [_rand(2, 3, 2)], (target,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [dict(), dict(weight=CE_W), dict(ignore_index=3)],
                         ids=["plain", "weight", "ignore_index"])
def test_nll_loss(reduction, kw):
    kw = {k: (v.double() if isinstance(v, taiji.Tensor) else v) for k, v in kw.items()}
    target = _t(np.array([1, 0, 3, 2, 3]))
    check_loss(nn.NLLLoss(reduction=reduction, **kw), [_rand(5, 4)], (target,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_loss(reduction, weighted):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.1, 0.9, (2, 3))
    y = rng.uniform(0.0, 1.0, (2, 3))
    w = _t(rng.uniform(0.5, 2.0, (3,))) if weighted else None
    check_loss(nn.BCELoss(weight=w, reduction=reduction), [p, y])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", ["plain", "pos_weight", "weight+pos_weight"])
def test_bce_with_logits_loss(reduction, kw):
    rng = np.random.default_rng(6)
    args = {}
    if "pos_weight" in kw:
        args["pos_weight"] = _t(np.array([0.5, 3.0, 1.5]))
    if "weight+" in kw:
        args["weight"] = _t(rng.uniform(0.5, 2.0, (2, 1)))
    x = rng.standard_normal((2, 3)) * 3
    y = rng.uniform(0.0, 1.0, (2, 3))
    check_loss(nn.BCEWithLogitsLoss(reduction=reduction, **args), [x, y])


# (input, target) pairs whose difference stays away from 0 and from +-1 (SmoothL1/Huber).
def _pair(shape=(2, 3), seed=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    d = rng.choice([-1, 1], shape) * rng.uniform(0.2, 0.8, shape)
    d[0, 0] = 1.7   # one quadratic-region and one linear-region entry for the smooth losses
    d[-1, -1] = -2.3
    return x, x - d


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss(reduction):
    check_loss(nn.MSELoss(reduction=reduction), list(_pair()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_l1_loss(reduction):
    check_loss(nn.L1Loss(reduction=reduction), list(_pair()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_smooth_l1_loss(reduction, beta):
    check_loss(nn.SmoothL1Loss(reduction=reduction, beta=beta), list(_pair()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [1.0, 0.6])
def test_huber_loss(reduction, delta):
    check_loss(nn.HuberLoss(reduction=reduction, delta=delta), list(_pair()))


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_loss(reduction, log_target):
    rng = np.random.default_rng(9)
    logq = np.log(rng.dirichlet(np.ones(3), size=2))
    p = rng.dirichlet(np.ones(3), size=2)
    target = np.log(p) if log_target else p
    check_loss(nn.KLDivLoss(reduction=reduction, log_target=log_target), [logq, target])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_cosine_embedding_loss(reduction, margin):
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    y = np.array([1, -1, -1, 1])
    # keep cos - margin off 0 for the y = -1 hinge rows (and exercise both hinge sides)
    cos = lambda u, v: (u * v).sum() / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    b[1] = a[1] + 0.2 * np.linalg.norm(a[1]) * b[1]     # cos near 1: active hinge
    b[2] = -a[2] + 0.2 * np.linalg.norm(a[2]) * b[2]    # cos near -1: inactive hinge
    assert cos(a[1], b[1]) - margin > 0.1 and cos(a[2], b[2]) - margin < -0.1
    check_loss(nn.CosineEmbeddingLoss(margin=margin, reduction=reduction), [a, b],
               (_t(y),))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_loss(reduction, margin):
    x1 = np.array([0.3, -1.2, 2.0, 0.1, -0.4])
    x2 = np.array([1.1, -0.1, 0.6, 0.9, 1.3])
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    assert np.all(np.abs(-y * (x1 - x2) + margin) > 0.05)
    check_loss(nn.MarginRankingLoss(margin=margin, reduction=reduction), [x1, x2], (_t(y),))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_other_losses(reduction):
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((2, 3)), rng.choice([-1.0, 1.0], (2, 3))
    check_loss(nn.SoftMarginLoss(reduction=reduction), [x], (_t(y),))
    a, p, n = (rng.standard_normal((2, 3)) for _ in range(3))
    check_loss(nn.TripletMarginLoss(margin=3.0, reduction=reduction), [a, p, n])
    rate = rng.uniform(0.5, 3.0, (2, 3))
    check_loss(nn.PoissonNLLLoss(reduction=reduction), [rng.standard_normal((2, 3)), rate])
    check_loss(nn.GaussianNLLLoss(reduction=reduction),
               [x, rng.standard_normal((2, 3)), rng.uniform(0.5, 2.0, (2, 3))])
    d = np.abs(rng.standard_normal((2, 3))) + 0.1
    check_loss(nn.HingeEmbeddingLoss(margin=5.0, reduction=reduction), [d],
               (_t(rng.choice([-1.0, 1.0], (2, 3))),))


# ------------------------------------------------------------------- more configurations

@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_modes(mode):
    check_module(nn.Conv2d(1, 2, 3, padding=1, padding_mode=mode), [_rand(1, 1, 3, 4)])


def test_lstm_proj_size_two_layers():
    check_module(nn.LSTM(1, 3, num_layers=2, proj_size=2), [_rand(2, 1, 1)],
                 out=lambda o: (o[0], o[1][0], o[1][1]))


def test_multihead_attention_bias_kv_zero_attn_padding_mask():
    m = nn.MultiheadAttention(2, 2, add_bias_kv=True, add_zero_attn=True, batch_first=True)
    kpm = taiji.tensor(np.array([[False, True, False]]))
    check_module(m, [_rand(1, 2, 2), _rand(1, 3, 2), _rand(1, 3, 2)],
                 kwargs=dict(key_padding_mask=kpm, average_attn_weights=False))


def test_transformer_encoder_causal_with_norm():
    layer = nn.TransformerEncoderLayer(2, 2, dim_feedforward=2, dropout=0.0,
                                       activation="gelu", batch_first=True)
    m = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(2), enable_nested_tensor=False)
    mask = taiji.tensor(np.triu(np.full((3, 3), -np.inf), 1))
    check_module(m, [_rand(1, 3, 2)], kwargs=dict(mask=mask, is_causal=True))


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention(causal):
    F = nn.functional
    q, k, v = _rand(1, 2, 3, 2), _rand(1, 2, 3, 2), _rand(1, 2, 3, 2)
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa
    assert gradcheck(fn, [q, k, v])
    assert gradgradcheck(fn, [q, k, v])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_functional_pad(mode):
    fn = lambda x: nn.functional.pad(x, (1, 2, 2, 1), mode=mode)  # noqa: E731
    assert gradcheck(fn, [_rand(1, 1, 3, 3)])


def test_functional_normalize_and_embedding_bag_like():
    F = nn.functional
    assert gradcheck(lambda x: F.normalize(x, dim=1), [_rand(2, 3)])
    assert gradgradcheck(lambda x: F.normalize(x, dim=1), [_rand(2, 3)])
    idx = taiji.tensor(np.array([1, 1, 0]))
    assert gradcheck(lambda w: F.embedding(idx, w), [_rand(3, 2)])
    assert gradcheck(lambda x: F.one_hot(idx, 3).double() * x, [_rand(3, 3)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_cross_entropy_double_backward(reduction):
    # the (N, C) class-index case runs as the softmax_cross_entropy primitive
    x = np.random.default_rng(5).standard_normal((4, 3))
    y = taiji.tensor([0, 2, -100, 1])

    def f(inp):
        return taiji.nn.functional.cross_entropy(inp, y, reduction=reduction)
    gradcheck(f, [x])
    gradgradcheck(f, [x])
