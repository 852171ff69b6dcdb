"""Output dtypes inside autocast against torch.autocast on CPU, for the ops both lists agree
on (taiji applies PyTorch's CUDA lists on every device; see taiji/amp/autocast_mode.py)."""
import numpy as np
import pytest

import taiji
import taiji.nn.functional as F

torch = pytest.importorskip("torch", reason="PyTorch is the reference for autocast dtypes")
TF = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:reduction")

DT = {"bfloat16": (taiji.bfloat16, torch.bfloat16), "float16": (taiji.float16, torch.float16)}


def _pair(*shape, low=None):
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    t, x = taiji.tensor(a), torch.tensor(a)
    if low is not None:
        t, x = t.to(low[0]), x.to(low[1])
    return t, x


# name -> (taiji fn, torch fn, argument shapes, feed low-precision inputs?)
CASES = {
    "matmul": (taiji.matmul, torch.matmul, [(4, 5), (5, 3)], False),
    "mm": (taiji.mm, torch.mm, [(4, 5), (5, 3)], False),
    "bmm": (taiji.bmm, torch.bmm, [(2, 4, 5), (2, 5, 3)], False),
    "linear": (F.linear, TF.linear, [(4, 5), (3, 5), (3,)], False),
    "conv1d": (F.conv1d, TF.conv1d, [(2, 3, 8), (4, 3, 3)], False),
    "conv2d": (F.conv2d, TF.conv2d, [(2, 3, 6, 6), (4, 3, 3, 3)], False),
    "conv_transpose2d": (F.conv_transpose2d, TF.conv_transpose2d, [(2, 3, 4, 4), (3, 2, 3, 3)],
                         False),
    "scaled_dot_product_attention": (F.scaled_dot_product_attention,
                                     TF.scaled_dot_product_attention,
                                     [(2, 4, 8), (2, 4, 8), (2, 4, 8)], False),
    "prod": (taiji.prod, torch.prod, [(3, 4)], True),
    "mse_loss": (F.mse_loss, TF.mse_loss, [(4,), (4,)], True),
    "l1_loss": (F.l1_loss, TF.l1_loss, [(4,), (4,)], True),
    "smooth_l1_loss": (F.smooth_l1_loss, TF.smooth_l1_loss, [(4,), (4,)], True),
    "huber_loss": (F.huber_loss, TF.huber_loss, [(4,), (4,)], True),
    "kl_div": (F.kl_div, TF.kl_div, [(4,), (4,)], True),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits,
                                         TF.binary_cross_entropy_with_logits, [(4,), (4,)],
                                         True),
    "soft_margin_loss": (F.soft_margin_loss, TF.soft_margin_loss, [(4,), (4,)], True),
    # unlisted in both: follow the inputs
    "relu": (taiji.relu, torch.relu, [(4,)], True),
    "add": (taiji.add, torch.add, [(4,), (4,)], True),
    "tanh": (taiji.tanh, torch.tanh, [(4,)], True),
}


@pytest.mark.parametrize("low", sorted(DT))
@pytest.mark.parametrize("name", sorted(CASES))
def test_dtype_matches_torch_cpu_autocast(name, low):
    fn, tfn, shapes, feed_low = CASES[name]
    pairs = [_pair(*s, low=DT[low] if feed_low else None) for s in shapes]
    with taiji.autocast("cpu", dtype=DT[low][0]):
        out = fn(*[p[0] for p in pairs])
    with torch.autocast("cpu", dtype=DT[low][1]):
        ref = tfn(*[p[1] for p in pairs])
    assert out.dtype.name == str(ref.dtype).replace("torch.", ""), name


@pytest.mark.parametrize("low", sorted(DT))
def test_losses_with_targets_match_torch(low):
    lo = DT[low]
    x, tx = _pair(4, 3, low=lo)
    y, ty = taiji.tensor([0, 2, 1, 0]), torch.tensor([0, 2, 1, 0])
    with taiji.autocast("cpu", dtype=lo[0]):
        ce, nll = F.cross_entropy(x, y), F.nll_loss(x, y)
    with torch.autocast("cpu", dtype=lo[1]):
        tce, tnll = TF.cross_entropy(tx, ty), TF.nll_loss(tx, ty)
    assert ce.dtype.name == str(tce.dtype)[6:] == "float32"
    assert nll.dtype.name == str(tnll.dtype)[6:] == "float32"
    np.testing.assert_allclose(ce.item(), tce.item(), rtol=1e-5)
