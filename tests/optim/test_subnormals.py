"""Optimizer state never holds subnormals: a moment whose gradient stays zero decays into the
subnormal range, where PyTorch's stays (and every later step runs ~100x slower arithmetic on
x86); taiji's flushes to zero, with parameters still equal to PyTorch's."""
import numpy as np
import pytest

import taiji
import taiji.nn as nn
from taiji.optim.optimizer import flush_subnormals_

torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")

TINY32 = np.finfo(np.float32).tiny

# (optimizer, options, state buffers that decay when the gradient is zero). With betas near 1
# round-to-nearest pins a decayed moment at a few ulp above zero (0.9 x 4 ulp rounds to 4 ulp),
# so PyTorch's stays subnormal for good; gradients of 1e-30 and 1e-18 put the moments there
# within STEPS steps (1e-18 squared, times 1 - beta2, is subnormal from the first step), 1e-8
# moves the parameters.
CASES = [
    ("Adam", dict(lr=0.01), ("exp_avg", "exp_avg_sq")),
    ("AdamW", dict(lr=0.01), ("exp_avg", "exp_avg_sq")),
    ("NAdam", dict(lr=0.01), ("exp_avg", "exp_avg_sq")),
    ("Adamax", dict(lr=0.01), ("exp_avg",)),
    ("SGD", dict(lr=0.1, momentum=0.9), ("momentum_buffer",)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True),
     ("square_avg", "grad_avg", "momentum_buffer")),
    ("Adadelta", dict(lr=1.0), ("square_avg", "acc_delta")),
]
STEPS = 300
P0 = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
G0 = np.array([1e-30, -1e-30, 1e-18, -1e-18, 1e-8, -1e-8] * 2, np.float32).reshape(3, 4)


def _grads():
    # one tiny gradient, then zeros: the moments only decay after the first step
    yield G0
    for _ in range(STEPS - 1):
        yield np.zeros_like(G0)


def _subnormal(a: np.ndarray) -> np.ndarray:
    return (a != 0) & (np.abs(a) < TINY32)


def test_flush_subnormals_values():
    x = np.array([1e-39, -1e-40, 1.0, -2.0, np.nan, np.inf, -np.inf, -0.0, TINY32, -TINY32,
                  1.4e-45], np.float32)
    t = taiji.tensor(x)
    assert flush_subnormals_(t) is t
    want = np.array([0.0, 0.0, 1.0, -2.0, np.nan, np.inf, -np.inf, 0.0, TINY32, -TINY32, 0.0],
                    np.float32)
    np.testing.assert_array_equal(t.numpy(), want)
    assert not np.signbit(t.numpy()[[0, 1, 7]]).any()  # flushed to +0
    d = taiji.tensor(np.array([1e-310, 2.0], np.float64))
    np.testing.assert_array_equal(flush_subnormals_(d).numpy(), [0.0, 2.0])
    # float16's subnormals (below 6.1e-5) still carry signal: left alone
    h = taiji.tensor(np.array([1e-6, 1.0], np.float16))
    np.testing.assert_array_equal(flush_subnormals_(h).numpy(), np.array([1e-6, 1.0], np.float16))


@pytest.mark.parametrize("name,kw,keys", CASES, ids=[c[0] + str(i) for i, c in enumerate(CASES)])
def test_decayed_moments_flush_to_zero_and_params_match_pytorch(name, kw, keys):
    tp = torch.tensor(P0, requires_grad=True)
    to = getattr(torch.optim, name)([tp], **kw)
    for g in _grads():
        to.zero_grad()
        (tp * torch.tensor(g)).sum().backward()
        to.step()
    tstate = to.state[tp]
    # the premise: PyTorch's moments are stuck in the subnormal range
    assert any(_subnormal(tstate[k].numpy()).any() for k in keys)

    results = []
    for compiled in (False, True):
        p = nn.Parameter(taiji.tensor(P0))
        opt = getattr(taiji.optim, name)([p], **kw)

        def step(g):
            opt.zero_grad()
            (p * g).sum().backward()
            opt.step()
        run = taiji.jit(step) if compiled else step
        for g in _grads():
            run(taiji.tensor(g))
        state = {k: opt.state[p][k].numpy().copy() for k in keys}
        for k in keys:
            ref = tstate[k].numpy()
            assert not _subnormal(state[k]).any(), f"{name} {k}: subnormals kept"
            # where PyTorch's is subnormal, taiji's is zero; elsewhere the same numbers
            np.testing.assert_array_equal(state[k][_subnormal(ref)], 0.0)
            # (300 steps of rounding differ in the last bits, as in PyTorch's own foreach
            # and fused updates)
            np.testing.assert_allclose(state[k][~_subnormal(ref)], ref[~_subnormal(ref)],
                                       rtol=1e-4, atol=0)
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-7)
        results.append((p.detach().numpy().copy(), state))
    (pe, se), (pj, sj) = results  # eager and jit: the same bits
    np.testing.assert_array_equal(pj, pe)
    for k in keys:
        np.testing.assert_array_equal(sj[k], se[k])
