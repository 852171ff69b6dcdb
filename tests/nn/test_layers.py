"""Layers against PyTorch with weights copied through state_dict: values and gradients."""
import numpy as np
import pytest

import taiji
import taiji.nn as nn
from tests.nn._util import torch, check_layer, close, copy_weights, t2j

tnn = torch.nn


@pytest.mark.parametrize("make", [
    lambda m: m.Linear(5, 3),
    lambda m: m.Linear(5, 3, bias=False),
    lambda m: m.Bilinear(4, 5, 3),
])
def test_linear_family(make):
    tm, jm = make(tnn), make(nn)
    shapes = [(6, 4), (6, 5)] if isinstance(tm, tnn.Bilinear) else [(2, 6, 5)]
    check_layer(tm, jm, *shapes)


@pytest.mark.parametrize("kw,shape", [
    (dict(in_channels=3, out_channels=4, kernel_size=3), (2, 3, 8, 7)),
    (dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=2, padding=1, dilation=(1, 2),
          groups=2), (2, 4, 9, 9)),
    (dict(in_channels=3, out_channels=2, kernel_size=3, padding="same", dilation=2), (1, 3, 7, 6)),
    (dict(in_channels=2, out_channels=2, kernel_size=3, padding=1, padding_mode="reflect"),
     (1, 2, 5, 5)),
    (dict(in_channels=2, out_channels=3, kernel_size=3, bias=False), (2, 6, 6)),
])
def test_conv2d(kw, shape):
    check_layer(tnn.Conv2d(**kw), nn.Conv2d(**kw), shape, atol=1e-4)


def test_conv1d():
    kw = dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1)
    check_layer(tnn.Conv1d(**kw), nn.Conv1d(**kw), (2, 3, 11), atol=1e-4)


@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1, output_padding=1),
                                dict(kernel_size=2, stride=1, groups=2, dilation=2)])
def test_conv_transpose2d(kw):
    check_layer(tnn.ConvTranspose2d(4, 6, **kw), nn.ConvTranspose2d(4, 6, **kw), (2, 4, 5, 5),
                atol=1e-4)


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.MaxPool2d(2), (2, 3, 8, 8)),
    (lambda m: m.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 9, 8)),
    (lambda m: m.MaxPool2d(2, dilation=2), (1, 2, 7, 7)),
    (lambda m: m.MaxPool1d(3, 2), (2, 3, 9)),
    (lambda m: m.AvgPool2d(3, 2, 1), (2, 2, 7, 8)),
    (lambda m: m.AvgPool2d(3, 2, 1, count_include_pad=False, ceil_mode=True), (1, 2, 8, 8)),
    (lambda m: m.AvgPool1d(2), (2, 3, 8)),
    (lambda m: m.AdaptiveAvgPool2d((2, 3)), (2, 3, 6, 9)),
    (lambda m: m.AdaptiveAvgPool2d(3), (2, 3, 7, 5)),
    (lambda m: m.AdaptiveMaxPool2d(2), (1, 2, 5, 5)),
])
def test_pooling(make, shape):
    check_layer(make(tnn), make(nn), shape)


def test_max_pool_indices():
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 7)).astype(np.float32)
    to, ti = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    jo, ji = taiji.nn.functional.max_pool2d(taiji.tensor(x), 3, 2, 1, return_indices=True)
    close(jo, to)
    np.testing.assert_array_equal(ji.numpy(), ti.numpy())


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.LayerNorm(6), (3, 4, 6)),
    (lambda m: m.LayerNorm((4, 6), elementwise_affine=False), (3, 4, 6)),
    (lambda m: m.GroupNorm(2, 4), (3, 4, 5, 2)),
    (lambda m: m.RMSNorm(6, eps=1e-6), (3, 6)),
    (lambda m: m.InstanceNorm2d(3, affine=True), (2, 3, 4, 4)),
])
def test_norms(make, shape):
    tm, jm = make(tnn), make(nn)
    with torch.no_grad():
        for p in tm.parameters():
            p.uniform_(0.5, 1.5)
    check_layer(tm, jm, shape)


@pytest.mark.parametrize("cls,shape", [(tnn.BatchNorm1d, (8, 3)), (tnn.BatchNorm1d, (4, 3, 5)),
                                       (tnn.BatchNorm2d, (4, 3, 5, 5))])
def test_batchnorm_train_then_eval(cls, shape):
    tm = cls(3, momentum=0.2)
    jm = getattr(nn, cls.__name__)(3, momentum=0.2)
    for _ in range(3):
        check_layer(tm, jm, shape, train=True) if False else None
        x = np.random.default_rng(_).standard_normal(shape).astype(np.float32)
        close(jm(taiji.tensor(x)), tm(torch.tensor(x)))
    close(jm.running_mean, tm.running_mean)
    close(jm.running_var, tm.running_var)
    assert int(jm.num_batches_tracked) == 3
    check_layer(tm, jm, shape, train=False)
    jm.train()
    check_layer(tm, jm, shape, train=True)


def test_batchnorm_cumulative_momentum():
    tm, jm = tnn.BatchNorm1d(3, momentum=None), nn.BatchNorm1d(3, momentum=None)
    for i in range(4):
        x = np.random.default_rng(i).standard_normal((6, 3)).astype(np.float32)
        tm(torch.tensor(x)), jm(taiji.tensor(x))
    close(jm.running_mean, tm.running_mean)
    close(jm.running_var, tm.running_var)


def test_embedding_padding_idx():
    tm, jm = tnn.Embedding(10, 4, padding_idx=2), nn.Embedding(10, 4, padding_idx=2)
    assert np.all(jm.weight.detach().numpy()[2] == 0)
    idx = np.array([[1, 2, 3], [2, 9, 0]])
    copy_weights(tm, jm)
    to, jo = tm(torch.tensor(idx)), jm(taiji.tensor(idx))
    close(jo, to)
    to.sum().backward()
    jo.sum().backward()
    close(jm.weight.grad, tm.weight.grad)
    assert np.all(jm.weight.grad.numpy()[2] == 0)


@pytest.mark.parametrize("name,args", [
    ("ReLU", ()), ("LeakyReLU", (0.2,)), ("ELU", ()), ("GELU", ()), ("GELU", ("tanh",)),
    ("SiLU", ()), ("Mish", ()), ("Tanh", ()), ("Sigmoid", ()), ("Softplus", (2.0,)),
    ("Hardtanh", (-0.5, 0.5)), ("Softmax", (1,)), ("LogSoftmax", (-1,)), ("SELU", ()),
    ("ReLU6", ()), ("Hardswish", ()), ("LogSigmoid", ()), ("CELU", (0.5,)), ("GLU", ()),
])
def test_activations(name, args):
    check_layer(getattr(tnn, name)(*args), getattr(nn, name)(*args), (4, 6))


def test_prelu_flatten_unflatten():
    check_layer(tnn.PReLU(3), nn.PReLU(3), (2, 3, 4))
    x = taiji.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Identity(54, unused="x")(x) is x


def test_dropout_train_and_eval():
    taiji.manual_seed(0)
    d = nn.Dropout(0.3)
    x = taiji.ones(200, 50)
    y = d(x).numpy()
    kept = y != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    d.eval()
    assert d(x) is x
    x.requires_grad_()
    d.train()
    out = d(x)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), out.detach().numpy())
    assert np.all(nn.Dropout(1.0)(x).detach().numpy() == 0)


def test_default_init_matches_pytorch_distribution():
    taiji.manual_seed(0)
    lin = nn.Linear(100, 300)
    w = lin.weight.detach().numpy()
    bound = 1 / np.sqrt(100)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), ...)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound
    conv = nn.Conv2d(4, 8, 3)
    b = 1 / np.sqrt(4 * 9)
    assert np.abs(conv.weight.detach().numpy()).max() <= b
    assert np.abs(conv.bias.detach().numpy()).max() <= b


def test_functional_extras():
    F, tF = taiji.nn.functional, torch.nn.functional
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    for mode in ("reflect", "replicate", "circular"):
        close(F.pad(taiji.tensor(x), (1, 2, 2, 1), mode=mode),
              tF.pad(torch.tensor(x), (1, 2, 2, 1), mode=mode))
    close(F.unfold(taiji.tensor(x), 2, padding=1, stride=2),
          tF.unfold(torch.tensor(x), 2, padding=1, stride=2))
    close(F.normalize(taiji.tensor(x), dim=1), tF.normalize(torch.tensor(x), dim=1))
    close(F.interpolate(taiji.tensor(x), scale_factor=2),
          tF.interpolate(torch.tensor(x), scale_factor=2))
    q, k, v = (np.random.default_rng(i).standard_normal((2, 3, 4, 8)).astype(np.float32)
               for i in range(3))
    close(F.scaled_dot_product_attention(*map(taiji.tensor, (q, k, v)), is_causal=True),
          tF.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), is_causal=True))
    oh = F.one_hot(taiji.tensor([0, 2, 1]), 3)
    np.testing.assert_array_equal(oh.numpy(), np.eye(3)[[0, 2, 1]])
