"""Helpers shared by the nn tests: copy weights to/from PyTorch, compare."""
import numpy as np
import pytest

import taiji

torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle for these tests")


def t2j(t, requires_grad=False):
    a = taiji.tensor(t.detach().numpy().copy())
    return a.requires_grad_() if requires_grad else a


def copy_weights(tm, jm):
    """Load the torch module's state_dict into the taiji module."""
    jm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})


def close(a, b, atol=1e-5, rtol=1e-4):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol)


def check_layer(tm, jm, *shapes, atol=1e-5, train=True, int_input=None):
    """Same weights, same input: outputs, input grads and parameter grads agree."""
    copy_weights(tm, jm)
    tm.train(train)
    jm.train(train)
    rng = np.random.default_rng(0)
    if int_input is not None:
        xs = [rng.integers(0, int_input, s) for s in shapes]
        tx = [torch.tensor(x) for x in xs]
        jx = [taiji.tensor(x) for x in xs]
    else:
        xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        tx = [torch.tensor(x, requires_grad=True) for x in xs]
        jx = [taiji.tensor(x).requires_grad_() for x in xs]
    to, jo = tm(*tx), jm(*jx)
    close(jo, to, atol)
    w = rng.standard_normal(tuple(to.shape)).astype(np.float32)
    (to * torch.tensor(w)).sum().backward()
    (jo * taiji.tensor(w)).sum().backward()
    if int_input is None:
        for a, b in zip(jx, tx):
            close(a.grad, b.grad, atol)
    tp = dict(tm.named_parameters())
    for k, p in jm.named_parameters():
        close(p.grad, tp[k].grad, atol)
    return to, jo
