"""MultiheadAttention and the Transformer encoder against PyTorch with weights copied through
state_dict: outputs, attention weights and gradients, with boolean and float masks."""
import numpy as np
import pytest

import taiji
import taiji.nn as nn
import taiji.nn.functional as F
from tests.nn._util import torch, close, copy_weights

tnn = torch.nn
E, H = 8, 2


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return ([torch.tensor(a, requires_grad=True) for a in arrs],
            [taiji.tensor(a).requires_grad_() for a in arrs])


def _masks(kind, N, L, S, to_taiji):
    """attn_mask / key_padding_mask pairs in torch and taiji form."""
    rng = np.random.default_rng(3)
    am = kpm = None
    if kind in ("bool_attn", "both_bool"):
        am = np.triu(np.ones((L, S), dtype=bool), 1)
    if kind == "float_attn":
        am = rng.standard_normal((L, S)).astype(np.float32)
    if kind == "attn3d":
        am = rng.standard_normal((N * H, L, S)).astype(np.float32)
    if kind in ("bool_kpm", "both_bool"):
        kpm = np.zeros((N, S), dtype=bool)
        kpm[0, -2:] = True
    if kind == "float_kpm":
        kpm = rng.standard_normal((N, S)).astype(np.float32)
    conv = (lambda a: None if a is None else taiji.tensor(a)) if to_taiji else \
        (lambda a: None if a is None else torch.tensor(a))
    return conv(am), conv(kpm)


def _check_mha(tm, jm, q_shape, k_shape, v_shape, mask_kind=None, self_attn=False,
               average=True, need_weights=True, batch_first=False, atol=1e-5):
    copy_weights(tm, jm)
    tm.train(False)
    jm.train(False)
    if self_attn:
        k_shape = v_shape = q_shape
        tx, jx = _inputs([q_shape])
        tx, jx = tx * 3, jx * 3
    else:
        tx, jx = _inputs([q_shape, k_shape, v_shape])
    if len(q_shape) == 3:
        N = q_shape[0] if batch_first else q_shape[1]
        L, S = q_shape[1 if batch_first else 0], k_shape[1 if batch_first else 0]
    else:
        N, L, S = 1, q_shape[0], k_shape[0]
    kw = dict(need_weights=need_weights, average_attn_weights=average)
    tam, tkpm = _masks(mask_kind, N, L, S, False)
    jam, jkpm = _masks(mask_kind, N, L, S, True)
    if len(q_shape) == 2 and tkpm is not None:
        tkpm, jkpm = tkpm[0], jkpm[0]
    to, tw = tm(*tx, attn_mask=tam, key_padding_mask=tkpm, **kw)
    jo, jw = jm(*jx, attn_mask=jam, key_padding_mask=jkpm, **kw)
    close(jo, to, atol)
    if need_weights:
        close(jw, tw, atol)
    else:
        assert jw is None and tw is None
    rng = np.random.default_rng(1)
    g = rng.standard_normal(tuple(to.shape)).astype(np.float32)
    (to * torch.tensor(g)).sum().backward()
    (jo * taiji.tensor(g)).sum().backward()
    for a, b in zip(jx, tx):
        close(a.grad, b.grad, atol)
    tp = dict(tm.named_parameters())
    for k, p in jm.named_parameters():
        close(p.grad, tp[k].grad, atol)


@pytest.mark.parametrize("mask_kind", [None, "bool_attn", "float_attn", "attn3d", "bool_kpm",
                                       "float_kpm", "both_bool"])
def test_mha_masks(mask_kind):
    tm, jm = tnn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)
    _check_mha(tm, jm, (5, 3, E), (6, 3, E), (6, 3, E), mask_kind)


@pytest.mark.parametrize("average", [True, False])
def test_mha_self_attention_batch_first(average):
    tm = tnn.MultiheadAttention(E, H, batch_first=True)
    jm = nn.MultiheadAttention(E, H, batch_first=True)
    _check_mha(tm, jm, (3, 5, E), None, None, "bool_kpm", self_attn=True, average=average,
               batch_first=True)


def test_mha_kdim_vdim_no_bias():
    kw = dict(kdim=5, vdim=3, bias=False)
    tm, jm = tnn.MultiheadAttention(E, H, **kw), nn.MultiheadAttention(E, H, **kw)
    assert list(tm.state_dict()) == list(jm.state_dict())
    _check_mha(tm, jm, (4, 2, E), (6, 2, 5), (6, 2, 3), "float_attn")


def test_mha_bias_kv_zero_attn_and_unbatched():
    kw = dict(add_bias_kv=True, add_zero_attn=True)
    tm, jm = tnn.MultiheadAttention(E, H, **kw), nn.MultiheadAttention(E, H, **kw)
    assert sorted(tm.state_dict()) == sorted(jm.state_dict())
    _check_mha(tm, jm, (4, 2, E), (5, 2, E), (5, 2, E), "both_bool")
    _check_mha(tm, jm, (4, E), (5, E), (5, E), "bool_kpm")
    _check_mha(tm, jm, (4, E), (5, E), (5, E), None, need_weights=False)


def test_mha_init_and_state_dict_names():
    taiji.manual_seed(0)
    m = nn.MultiheadAttention(16, 4)
    assert list(m.state_dict()) == list(tnn.MultiheadAttention(16, 4).state_dict())
    assert float(abs(m.in_proj_bias).sum()) == 0 and float(abs(m.out_proj.bias).sum()) == 0
    bound = (6 / (16 + 48)) ** 0.5  # xavier_uniform on (48, 16)
    w = m.in_proj_weight.detach().numpy()
    assert w.min() >= -bound and w.max() <= bound and w.std() > bound / 3


def test_mha_dropout_train_vs_eval():
    m = nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True)
    x = taiji.randn(2, 5, E)
    m.eval()
    a, wa = m(x, x, x)
    b, _ = m(x, x, x)
    close(a, b, 0)
    np.testing.assert_allclose(wa.detach().numpy().sum(-1), 1.0, rtol=1e-5)
    m.train()
    taiji.manual_seed(0)
    c, _ = m(x, x, x)
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())


def test_sdpa_is_available_and_matches_torch():
    tx, jx = _inputs([(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8)])
    mask = np.tril(np.ones((4, 6), dtype=bool))
    to = torch.nn.functional.scaled_dot_product_attention(*tx, attn_mask=torch.tensor(mask))
    jo = F.scaled_dot_product_attention(*jx, attn_mask=taiji.tensor(mask))
    close(jo, to)


def _check_encoder(tm, jm, shape, mask=None, kpm=None, train=False, atol=1e-5):
    copy_weights(tm, jm)
    tm.train(train)
    jm.train(train)
    tx, jx = _inputs([shape])
    tmask = None if mask is None else torch.tensor(mask)
    jmask = None if mask is None else taiji.tensor(mask)
    tk = None if kpm is None else torch.tensor(kpm)
    jk = None if kpm is None else taiji.tensor(kpm)
    if isinstance(tm, tnn.TransformerEncoder):
        to, jo = tm(tx[0], mask=tmask, src_key_padding_mask=tk), \
            jm(jx[0], mask=jmask, src_key_padding_mask=jk)
    else:
        to, jo = tm(tx[0], src_mask=tmask, src_key_padding_mask=tk), \
            jm(jx[0], src_mask=jmask, src_key_padding_mask=jk)
    close(jo, to, atol)
    g = np.random.default_rng(2).standard_normal(tuple(to.shape)).astype(np.float32)
    (to * torch.tensor(g)).sum().backward()
    (jo * taiji.tensor(g)).sum().backward()
    close(jx[0].grad, tx[0].grad, atol)
    tp = dict(tm.named_parameters())
    jp = dict(jm.named_parameters())
    assert set(tp) == set(jp)
    for k, p in jp.items():
        close(p.grad, tp[k].grad, atol, rtol=1e-3)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(activation="gelu", norm_first=True),
    dict(batch_first=True, layer_norm_eps=1e-6),
    dict(bias=False, activation="relu"),
])
def test_encoder_layer(kw):
    kw = dict(dim_feedforward=16, dropout=0.0, **kw)
    tm, jm = tnn.TransformerEncoderLayer(E, H, **kw), nn.TransformerEncoderLayer(E, H, **kw)
    assert list(tm.state_dict()) == list(jm.state_dict())
    shape = (3, 5, E) if kw.get("batch_first") else (5, 3, E)
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    _check_encoder(tm, jm, shape, train=True)
    _check_encoder(tm, jm, shape, mask=causal)


@pytest.mark.filterwarnings("ignore:Support for mismatched")
def test_encoder_stack_with_norm_and_padding_mask():
    kw = dict(dim_feedforward=16, dropout=0.0, batch_first=True)
    tm = tnn.TransformerEncoder(tnn.TransformerEncoderLayer(E, H, **kw), 2,
                                norm=tnn.LayerNorm(E), enable_nested_tensor=False)
    jm = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, **kw), 2, norm=nn.LayerNorm(E))
    assert list(tm.state_dict()) == list(jm.state_dict())
    # the copies are independent
    assert jm.layers[0].linear1.weight is not jm.layers[1].linear1.weight
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[1, -2:] = True
    mask = np.random.default_rng(5).standard_normal((5, 5)).astype(np.float32)
    _check_encoder(tm, jm, (3, 5, E), kpm=kpm, train=True)
    _check_encoder(tm, jm, (3, 5, E), mask=mask, kpm=kpm)


def test_encoder_dropout_train_vs_eval_and_jit():
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.2, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2)
    x = taiji.randn(2, 4, E)
    enc.eval()
    e1, e2 = enc(x), enc(x)
    close(e1, e2, 0)
    enc.train()
    taiji.manual_seed(3)
    t1 = enc(x)
    assert not np.allclose(t1.detach().numpy(), e1.detach().numpy())
    taiji.manual_seed(3)
    t2 = taiji.jit(lambda x: enc(x))(x)
    close(t2, t1, 1e-5)


def test_encoder_trains_under_jit_like_eager():
    rng = np.random.default_rng(0)
    x = taiji.tensor(rng.standard_normal((4, 5, E)).astype(np.float32))
    y = taiji.tensor(rng.integers(0, 3, 4))

    def make():
        taiji.manual_seed(0)
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, 16, 0.0, batch_first=True),
                                    2)
        head = nn.Linear(E, 3)
        model = nn.ModuleList([enc, head])
        return model, taiji.optim.Adam(model.parameters(), lr=1e-2)

    def step_fn(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model[1](model[0](x).mean(1)), y)
            loss.backward()
            opt.step()
            return loss
        return step

    me, oe = make()
    mj, oj = make()
    se, sj = step_fn(me, oe), taiji.jit(step_fn(mj, oj))
    for i in range(4):
        le, lj = float(se(x, y)), float(sj(x, y))
        assert abs(le - lj) < 1e-5, (i, le, lj)


def test_bad_input_messages():
    model = nn.Sequential(nn.Linear(8, 8), nn.MultiheadAttention(8, 2))
    x = taiji.randn(5, 3, 8)
    with pytest.raises(RuntimeError, match=r"model\.1 \(MultiheadAttention embed_dim=8, "
                                           r"num_heads=2\) expected key last dim 8, got 6"):
        model[1](x, taiji.randn(5, 3, 6), x)
    with pytest.raises(RuntimeError, match=r"expected key_padding_mask of shape \[3, 5\]"):
        model[1](x, x, x, key_padding_mask=taiji.zeros(5, 3, dtype=taiji.bool))
    with pytest.raises(RuntimeError, match=r"expected attn_mask of shape \[5, 5\] or "
                                           r"\[6, 5, 5\]"):
        model[1](x, x, x, attn_mask=taiji.zeros(4, 5))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
