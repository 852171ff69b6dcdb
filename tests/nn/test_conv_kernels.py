"""The im2col / col2im and max-pooling primitives (taiji/_prims/conv.py, taiji/_prims/pool.py):
values and gradients against PyTorch (ties in max pooling go to the first max), double
backward, forward mode and vmap, and their numba kernels bit-for-bit equal to the NumPy tier."""
import numpy as np
import pytest

import taiji
import taiji.nn.functional as F
from taiji import _kernels
from taiji._prims import conv as C
from taiji._prims import pool as P
from tests.nn._util import torch, close

tF = torch.nn.functional
RNG = np.random.default_rng(7)

# (input shape, kernel, stride, dilation, pads): padded, strided, dilated, 1-D, no padding
WINDOWS = [
    ((3, 4, 9, 8), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((2, 3, 9, 8), (3, 2), (2, 3), (1, 2), ((1, 2), (0, 1))),
    ((2, 3, 11), (3,), (2,), (1,), ((1, 1),)),
    ((2, 3, 7, 7), (2, 2), (1, 1), (2, 2), ((0, 0), (0, 0))),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), ((1, 2), (1, 2))),
    ((1, 2, 5, 6), (2, 2), (2, 2), (1, 1), ((0, 1), (0, 0))),  # right/bottom padding only
]
LAYOUTS = [(False, None), (True, None), (True, 1.0)]  # (batch_inner, extra_row)


def _params(shape, kernel, stride, dil, pads, batch_inner, extra_row):
    outs = tuple((s + lo + hi - d * (k - 1) - 1) // st + 1
                 for s, (lo, hi), k, st, d in zip(shape[2:], pads, kernel, stride, dil))
    return dict(kernel=kernel, stride=stride, dilation=dil, outs=outs, pads=pads,
                batch_inner=batch_inner, extra_row=extra_row)


def _numpy_tier(monkeypatch, *kernels):
    """Make the impls forget compiled kernels (and compile none): the NumPy tier runs."""
    from taiji.compiler import fusion
    monkeypatch.setattr(fusion, "enabled", False)
    for k in kernels:
        monkeypatch.setattr(k, "_compiled", {})


def _kernel_tier(kernels_fixture, call):
    """Run ``call`` once to queue its kernels, wait for them, and return a second call's
    result (which must come from the kernel)."""
    call()
    assert _kernels.wait_for_kernels(300)
    return call()


# every kernel specialisation is a numba compile (~0.2 s): float64 for one case only
@pytest.mark.parametrize("case,dtype", [(c, np.float32) for c in WINDOWS] +
                         [(WINDOWS[1], np.float64)])
def test_windows_kernels_equal_numpy_bit_for_bit(case, dtype, kernels, monkeypatch):
    shape, kernel, stride, dil, pads = case
    x = RNG.standard_normal(shape).astype(dtype)
    for bi, er in LAYOUTS:
        p = _params(shape, kernel, stride, dil, pads, bi, er)
        g = RNG.standard_normal(C._windows_impl(np, x, value=0.0, **p).shape).astype(dtype)
        with monkeypatch.context() as m:
            _numpy_tier(m, C._IM2COL, C._COL2IM)
            want_w = C._windows_impl(np, x, value=-1.5, **p)
            want_t = C._windows_t_impl(np, g, in_spatial=shape[2:], **p)
        got_w = _kernel_tier(kernels, lambda: C._windows_impl(np, x, value=-1.5, **p))
        got_t = _kernel_tier(kernels, lambda: C._windows_t_impl(np, g, in_spatial=shape[2:],
                                                                   **p))
        key = (np.dtype(dtype), C._consts(kernel, stride, dil, pads, shape[2:], p["outs"], bi))
        assert callable(C._IM2COL._compiled.get(key)), "the kernel tier did not run"
        assert got_w.shape == want_w.shape and got_w.tobytes() == want_w.tobytes()
        assert got_t.shape == want_t.shape
        assert np.ascontiguousarray(got_t).tobytes() == np.ascontiguousarray(want_t).tobytes()


def _pool_input(shape, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :2] = 1.0          # a tie inside a window
    x[0, 0, -1, -1] = np.nan      # NaN wins its window
    x[-1, 0, 0, 0] = np.nan       # ... in another plane, first in its window
    x[0, 1, 0, :2] = (-0.0, 0.0)  # equal zeros: the first wins, whatever its sign
    x[-1, -1] = 0.0               # a plane of ties (relu's zeros)
    return x


@pytest.mark.parametrize("shape,kernel,dtype", [((2, 3, 8, 8), (2, 2), np.float32),
                                                ((2, 3, 7, 9), (2, 3), np.float32),
                                                ((2, 2, 1, 9), (1, 3), np.float32),
                                                ((2, 3, 7, 9), (2, 3), np.float64)])
def test_pool_kernels_equal_numpy_bit_for_bit(shape, kernel, dtype, kernels, monkeypatch):
    x = _pool_input(shape, dtype)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # (C, N) memory
    xs = np.repeat(x, 2, axis=3)[:, :, :, ::2]  # neither layout: the strided kernels
    g = RNG.standard_normal(shape[:2] + (shape[2] // kernel[0], shape[3] // kernel[1]))
    g = g.astype(dtype)
    with monkeypatch.context() as m:
        _numpy_tier(m, P._POOL, P._ROUTE, P._POOL_STRIDED, P._ROUTE_STRIDED)
        want_p = P._pool_impl(np, x, kernel=kernel)
        want_r = P._route_impl(np, g, x, kernel=kernel)
    for arr in (x, xt, xs):
        got_p = _kernel_tier(kernels, lambda: P._pool_impl(np, arr, kernel=kernel))
        got_r = _kernel_tier(kernels, lambda: P._route_impl(np, g, arr, kernel=kernel))
        for kern in ((P._POOL, P._ROUTE) if arr is not xs else
                     (P._POOL_STRIDED, P._ROUTE_STRIDED)):
            assert kern._compiled and all(callable(k) for k in kern._compiled.values())
        assert got_p.tobytes() == want_p.tobytes()
        if arr is not xs:  # the gradient is laid out like the input (compact for xs)
            assert got_r.strides == arr.strides
        assert np.ascontiguousarray(got_r).tobytes() == want_r.tobytes()


@pytest.mark.parametrize("shape,k", [((2, 3, 8, 8), 2), ((2, 3, 7, 9), 2), ((1, 2, 9, 9), 3),
                                     ((3, 6, 6), 2)])
def test_max_pool2d_ties_go_to_the_first_max_like_pytorch(shape, k):
    # integers in a small range: many ties, in every position of the windows
    x = RNG.integers(-2, 3, shape).astype(np.float32)
    g = RNG.standard_normal(tF.max_pool2d(torch.tensor(x), k).shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    jx = taiji.tensor(x).requires_grad_()
    to, jo = tF.max_pool2d(tx, k), F.max_pool2d(jx, k)
    close(jo, to)
    (to * torch.tensor(g)).sum().backward()
    (jo * taiji.tensor(g)).sum().backward()
    np.testing.assert_array_equal(jx.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("relu", [False, True])
def test_max_pool1d_ties_and_ceil_mode_like_pytorch(relu):
    x = RNG.integers(-2, 3, (2, 3, 12)).astype(np.float32)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, ceil_mode=True), dict(kernel_size=5)):
        tx = torch.tensor(x, requires_grad=True)
        jx = taiji.tensor(x).requires_grad_()
        ta, ja = (tF.relu(tx), F.relu(jx)) if relu else (tx, jx)
        to, jo = tF.max_pool1d(ta, **kw), F.max_pool1d(ja, **kw)
        close(jo, to)
        to.sum().backward()
        jo.sum().backward()
        np.testing.assert_array_equal(jx.grad.numpy(), tx.grad.numpy())


def _cnn(F_, x, w1, b1, w2):
    h = F_.max_pool2d(F_.relu(F_.conv2d(x, w1, b1, padding=1)), 2)
    return F_.max_pool2d(F_.relu(F_.conv2d(h, w2, None, padding=1)), 2)


@pytest.mark.parametrize("compiled", [False, True])
def test_conv_relu_pool_gradients_like_pytorch(compiled):
    # relu's zeros tie in most windows; max_pool(relu(y)) runs as relu(max_pool(y)) and must
    # give PyTorch's gradients all the same. (Its own generator: drawn from the module's,
    # the data depended on which tests ran before it in the same worker.)
    rng = np.random.default_rng(140)
    x = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)
    w1 = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b1 = rng.standard_normal(4).astype(np.float32)
    w2 = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w1, b1, w2)]
    tout = _cnn(tF, *ts)
    (tout * tout).sum().backward()

    def loss(*args):
        out = _cnn(F, *args)
        return (out * out).sum(), out

    fn = taiji.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True)
    if compiled:
        fn = taiji.jit(fn)
    (_, out), grads = fn(*[taiji.tensor(a) for a in (x, w1, b1, w2)])
    close(out, tout)
    for g, t in zip(grads, ts):
        close(g, t.grad, atol=1e-4)


def test_max_pool_double_backward_and_forward_mode():
    x = RNG.permutation(64).reshape(1, 1, 8, 8) * 0.1
    v = RNG.standard_normal((1, 1, 8, 8))
    _, idx = tF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    picked = v.reshape(1, 1, 64)[:, :, idx.numpy().reshape(-1)].reshape(1, 1, 4, 4)
    at_max = np.zeros(64)
    at_max[idx.numpy().reshape(-1)] = 1.0
    jx, jv = taiji.tensor(x), taiji.tensor(v)
    f = lambda a: (F.max_pool2d(a, 2) ** 2).sum()  # noqa: E731
    # the gradient's derivative along v: 2 * v at each window's max (pick, then route)
    hv = taiji.grad(lambda a: (taiji.grad(f)(a) * jv).sum())(jx)
    np.testing.assert_allclose(hv.numpy(), 2 * v * at_max.reshape(v.shape))
    _, t = taiji.jvp(lambda a: F.max_pool2d(a, 2), (jx,), (jv,))
    np.testing.assert_allclose(t.numpy(), picked)


def test_vmap_of_conv_and_pool():
    xs = RNG.standard_normal((3, 2, 2, 6, 6)).astype(np.float32)
    w = taiji.tensor(RNG.standard_normal((3, 2, 3, 3)).astype(np.float32))
    b = taiji.tensor(RNG.standard_normal(3).astype(np.float32))

    def f(x):
        return F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=1)), 2).sum() + \
            F.max_pool2d(x, 2).sum()
    got = taiji.vmap(taiji.grad(f))(taiji.tensor(xs))
    for i in range(3):
        close(got[i], taiji.grad(f)(taiji.tensor(xs[i])))


def test_fold_is_unfolds_transpose_like_pytorch():
    x = RNG.standard_normal((2, 3 * 6, 24)).astype(np.float32)
    kw = dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(1, 2))
    tx = torch.tensor(x, requires_grad=True)
    jx = taiji.tensor(x).requires_grad_()
    to, jo = tF.fold(tx, (5, 9), **kw), F.fold(jx, (5, 9), **kw)
    close(jo, to)
    w = RNG.standard_normal(to.shape).astype(np.float32)
    (to * torch.tensor(w)).sum().backward()
    (jo * taiji.tensor(w)).sum().backward()
    close(jx.grad, tx.grad)


def test_kernels_take_read_only_and_strided_inputs(kernels):
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    want_w = F.unfold(taiji.tensor(x), 3, padding=1).numpy()
    want_p = F.max_pool2d(taiji.tensor(x), 2).numpy()
    ro = x.copy()
    ro.flags.writeable = False
    strided = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    for arr in (ro, strided):
        for _ in range(2):  # queue the kernels, then run them
            got_w = F.unfold(taiji.tensor(arr), 3, padding=1).numpy()
            got_p = F.max_pool2d(taiji.from_numpy(arr), 2).numpy()
            assert _kernels.wait_for_kernels(300)
        np.testing.assert_array_equal(got_w, want_w)
        np.testing.assert_array_equal(got_p, want_p)
