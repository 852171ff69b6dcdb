"""Losses against PyTorch: values and input gradients for every reduction."""
import numpy as np
import pytest

import taiji
import taiji.nn.functional as F
from tests.nn._util import torch, close

tF = torch.nn.functional
rng = np.random.default_rng(0)


def _both(fn_j, fn_t, *arrays, grad_idx=(0,), atol=1e-5, **kw):
    jx = [taiji.tensor(a) for a in arrays]
    tx = [torch.tensor(a) for a in arrays]
    for i in grad_idx:
        jx[i].requires_grad_()
        tx[i].requires_grad_()
    jo, to = fn_j(*jx, **kw), fn_t(*tx, **kw)
    close(jo, to, atol)
    jo.sum().backward()
    to.sum().backward()
    for i in grad_idx:
        close(jx[i].grad, tx[i].grad, atol)


X = rng.standard_normal((6, 5)).astype(np.float32)
Y = rng.integers(0, 5, 6)
W = rng.uniform(0.5, 2, 5).astype(np.float32)


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1}, {"ignore_index": 2},
                                {"ignore_index": 1, "label_smoothing": 0.2}])
def test_cross_entropy_indices(red, kw):
    y = Y.copy()
    y[:2] = 2
    y[3] = 1
    _both(F.cross_entropy, tF.cross_entropy, X, y, reduction=red, **kw)
    _both(lambda a, b, c, **k: F.cross_entropy(a, b, c, **k),
          lambda a, b, c, **k: tF.cross_entropy(a, b, c, **k), X, y, W, reduction=red, **kw)


def test_cross_entropy_probabilities_and_spatial():
    p = rng.dirichlet(np.ones(5), 6).astype(np.float32)
    for kw in ({}, {"label_smoothing": 0.3}):
        _both(F.cross_entropy, tF.cross_entropy, X, p, **kw)
        _both(lambda a, b, c, **k: F.cross_entropy(a, b, c, **k),
              lambda a, b, c, **k: tF.cross_entropy(a, b, c, **k), X, p, W, **kw)
    x4 = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
    y4 = rng.integers(0, 5, (2, 3, 4))
    _both(F.cross_entropy, tF.cross_entropy, x4, y4)
    _both(F.cross_entropy, tF.cross_entropy, X[0], Y[0])


def test_nll_and_module():
    lp = np.log(rng.dirichlet(np.ones(5), 6)).astype(np.float32)
    _both(F.nll_loss, tF.nll_loss, lp, Y)
    loss = taiji.nn.CrossEntropyLoss(weight=taiji.tensor(W), label_smoothing=0.1)
    ref = torch.nn.CrossEntropyLoss(weight=torch.tensor(W), label_smoothing=0.1)
    close(loss(taiji.tensor(X), taiji.tensor(Y)), ref(torch.tensor(X), torch.tensor(Y)))


def test_cross_entropy_is_stable():
    x = np.array([[1000.0, -1000.0, 0.0]], np.float32)
    out = F.cross_entropy(taiji.tensor(x), taiji.tensor([1]))
    assert np.isfinite(out.item()) and abs(out.item() - 2000.0) < 1e-2


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_regression_and_binary_losses(red):
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    prob = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    tgt = rng.integers(0, 2, (4, 3)).astype(np.float32)
    _both(F.mse_loss, tF.mse_loss, a, b, grad_idx=(0, 1), reduction=red)
    _both(F.l1_loss, tF.l1_loss, a, b, reduction=red)
    _both(F.smooth_l1_loss, tF.smooth_l1_loss, a, b, reduction=red, beta=0.5)
    _both(F.huber_loss, tF.huber_loss, a, b, reduction=red, delta=0.7)
    _both(F.binary_cross_entropy, tF.binary_cross_entropy, prob, tgt, reduction=red)
    _both(F.binary_cross_entropy_with_logits, tF.binary_cross_entropy_with_logits, a * 10, tgt,
          reduction=red)
    pw = rng.uniform(0.5, 3, 3).astype(np.float32)
    _both(lambda x, t, w, **k: F.binary_cross_entropy_with_logits(x, t, pos_weight=w, **k),
          lambda x, t, w, **k: tF.binary_cross_entropy_with_logits(x, t, pos_weight=w, **k),
          a, tgt, pw, reduction=red)
    lp = np.log(rng.dirichlet(np.ones(3), 4)).astype(np.float32)
    tp = rng.dirichlet(np.ones(3), 4).astype(np.float32)
    tp[0, 0] = 0.0
    _both(F.kl_div, tF.kl_div, lp, tp, reduction=red)
    _both(F.kl_div, tF.kl_div, lp, np.log(tp + 1e-3), reduction=red, log_target=True)
    y = np.array([1, -1, 1, -1], np.float32)
    _both(F.cosine_embedding_loss, tF.cosine_embedding_loss, a, b, y, grad_idx=(0, 1),
          reduction=red, margin=0.1)
    _both(F.margin_ranking_loss, tF.margin_ranking_loss, a[:, 0], b[:, 0], y, grad_idx=(0, 1),
          reduction=red, margin=0.2)


def test_bce_clamps_log():
    out = F.binary_cross_entropy(taiji.tensor([0.0, 1.0]), taiji.tensor([1.0, 0.0]),
                                 reduction="none")
    np.testing.assert_allclose(out.numpy(), [100.0, 100.0])


def test_kl_batchmean_and_bad_input():
    lp = np.log(rng.dirichlet(np.ones(3), 4)).astype(np.float32)
    tp = rng.dirichlet(np.ones(3), 4).astype(np.float32)
    _both(F.kl_div, tF.kl_div, lp, tp, reduction="batchmean")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.mse_loss(taiji.zeros(2), taiji.zeros(2), reduction="avg")
    with pytest.raises(ValueError, match="expected target of size"):
        F.cross_entropy(taiji.zeros(4, 3), taiji.tensor([0, 1]))
