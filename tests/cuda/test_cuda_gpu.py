"""The real CUDA backend (CuPy) against the CPU backend: ops, gradients, every nn layer, jit
training steps (fused kernels, CUDA graphs). Marked ``cuda``; skipped, with the reason, where
CuPy or a GPU is missing (``pytest -m cuda`` selects them; benchmarks/gpu.sh runs them)."""
from __future__ import annotations

import numpy as np
import pytest

import taiji
from device_cases import (LAYERS, cnn, compare_layer, differentiable_samples, host,
                          program_of, registry_vjp, train)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not taiji.cuda.is_available(),
                       reason="CUDA not available (CuPy missing or no GPU): "
                              f"{taiji.cuda.unavailable_reason()}"),
]


@pytest.fixture(autouse=True)
def full_float32():
    """Exact float32 matmuls (TF32 off) so results match the CPU to float32 tolerance."""
    flags = taiji.backends.cuda.matmul
    old = flags.allow_tf32
    flags.allow_tf32 = False
    yield
    flags.allow_tf32 = old


# ---------------------------------------------------------------- the device

def test_cupy_backend_and_queries():
    import cupy
    x = taiji.ones(3, device="cuda")
    assert type(x._data) is cupy.ndarray and x.is_cuda and x.device == "cuda:0"
    assert taiji.cuda.device_count() >= 1 and taiji.cuda.get_device_name()
    assert len(taiji.cuda.get_device_capability()) == 2
    taiji.cuda.synchronize()
    taiji.cuda.reset_peak_memory_stats()
    before = taiji.cuda.memory_allocated()
    y = taiji.zeros(1 << 20, device="cuda")
    assert taiji.cuda.memory_allocated() >= before + 4 * (1 << 20)
    assert taiji.cuda.max_memory_allocated() >= taiji.cuda.memory_allocated()
    del y
    free, total = taiji.cuda.mem_get_info()
    assert 0 < free <= total


def test_moves_and_mixing_error():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    g = taiji.tensor(a).cuda()
    np.testing.assert_array_equal(g.cpu().numpy(), a)
    assert repr(g).endswith("device='cuda:0')")
    with pytest.raises(RuntimeError, match="found at least two devices, cuda:0 and cpu!"):
        g + taiji.tensor(a)
    assert (g * taiji.tensor(2.0)).device == "cuda:0"  # CPU scalars join


def test_bfloat16_is_refused_clearly():
    with pytest.raises(TypeError, match="bfloat16"):
        taiji.ones(2, dtype=taiji.bfloat16).cuda()


def test_scatter_add_of_small_ints():
    idx = taiji.tensor([0, 0, 4], device="cuda")
    for d in (taiji.int8, taiji.int64, taiji.int32, taiji.float64):
        z = taiji.zeros(5, dtype=d, device="cuda").index_add(0, idx,
                                                              taiji.ones(3, dtype=d,
                                                                         device="cuda"))
        assert z.tolist() == [2, 0, 0, 0, 1]


# ---------------------------------------------------------------- ops and gradients

def _registry_cases():
    from op_db import OPS
    out = []
    for op in OPS:
        dts = [d for d in op.dtypes if np.dtype(d) == np.float32] or list(op.dtypes[:1])
        out += [pytest.param(op, d, id=f"{op.name}-{np.dtype(d).name}") for d in dts]
    return out


@pytest.mark.parametrize("op,dtype", _registry_cases())
def test_op_registry_forward(op, dtype):
    from op_db import convert
    from test_op_registry import check_forward
    check_forward(op, dtype, lambda s: op.fn(taiji, *convert(
        s.args, lambda a: taiji.tensor(a, device="cuda")), **convert(
        s.kwargs, lambda a: taiji.tensor(a, device="cuda"))), label="cuda")


@pytest.mark.parametrize("op,sample", [pytest.param(o, s, id=i) for o, s, i in
                                       differentiable_samples()])
def test_op_registry_gradients(op, sample):
    ref = registry_vjp(op, sample, "cpu")
    got = registry_vjp(op, sample, "cuda")
    for g, r in zip(got, ref):
        assert (g is None) == (r is None)
        if g is not None:  # float64: GPU math libraries differ from NumPy's in last bits
            np.testing.assert_allclose(g, r, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("case", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_cpu(case):
    compare_layer(case, "cuda", rtol=2e-4, atol=2e-5)


def test_grad_vmap_jvp():
    w = taiji.randn(3, device="cuda")
    x = taiji.randn(4, 3, device="cuda")
    f = lambda w, x: taiji.tanh(x @ w).sum()
    np.testing.assert_allclose(host(taiji.grad(f)(w, x)),
                               host(taiji.grad(f)(w.cpu(), x.cpu())), rtol=1e-5)
    per = taiji.vmap(taiji.grad(f), in_axes=(None, 0))(w, x[:, None])
    ref = taiji.vmap(taiji.grad(f), in_axes=(None, 0))(w.cpu(), x.cpu()[:, None])
    np.testing.assert_allclose(host(per), host(ref), rtol=1e-5, atol=1e-6)
    _, t = taiji.jvp(lambda v: taiji.sin(v) * 2, (w,), (taiji.ones_like(w),))
    np.testing.assert_allclose(host(t), 2 * np.cos(host(w)), rtol=1e-5)


# ---------------------------------------------------------------- training

@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_mlp_training_matches_cpu(compiled):
    ref, pref, _ = train("cpu", compiled=compiled, steps=5)
    got, pgot, f = train("cuda", compiled=compiled, steps=5)
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    for k in pref:
        np.testing.assert_allclose(pgot[k], pref[k], rtol=1e-3, atol=1e-5)
    if compiled:
        prog = program_of(f)
        assert prog.mode == "graph", prog.fallback_reason
        regions = [v for v in prog.fn.__globals__.values()
                   if type(v).__name__ == "DeviceRegion"]
        assert regions and all(r.kernel is not None for r in regions)


def test_cnn_training_matches_cpu():
    ref, pref, _ = train("cpu", model=cnn, shape=(4, 1, 8, 8), classes=3, steps=3)
    got, pgot, f = train("cuda", model=cnn, shape=(4, 1, 8, 8), classes=3, steps=3)
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    for k in pref:
        np.testing.assert_allclose(pgot[k], pref[k], rtol=1e-3, atol=1e-5)
    assert program_of(f).mode == "graph", program_of(f).fallback_reason


def test_fused_kernels_round_like_separate_ops(monkeypatch):
    """--fmad=false: a fused region gives the bits the unfused ops give."""
    from taiji.compiler import cuda as C
    got = {}
    for fuse in (True, False):
        monkeypatch.setattr(C.config, "fuse_kernels", fuse)
        got[fuse] = train("cuda", steps=3)[0]
    np.testing.assert_allclose(got[True], got[False], rtol=1e-6)


def test_graphs_off_gives_the_same_results(monkeypatch):
    from taiji.compiler import cuda as C
    with_graphs = train("cuda", steps=4)[0]
    monkeypatch.setattr(C.config, "graphs", False)
    without, _, f = train("cuda", steps=4)
    assert program_of(f).mode == "plain"
    np.testing.assert_allclose(without, with_graphs, rtol=1e-6)


def test_kernel_source_nan_and_inf_constants():
    """Region kernels compute NumPy's NaN rules and exact constants."""
    import cupy
    from taiji.compiler.cuda import _elementwise_kernel, kernel_source
    from taiji._core.ir import Graph, Literal, Var, Eqn
    from taiji._core.primitive import ShapedArray
    from taiji._prims import elementwise as E
    a = Var(ShapedArray((4,), taiji.float32))
    m = Var(ShapedArray((4,), taiji.float32))
    r = Var(ShapedArray((4,), taiji.float32))
    inf = Literal(np.array(np.inf, np.float32))
    g = Graph([a], [Eqn(E.maximum, [a, Literal(np.array(0.5, np.float32))], {}, [m]),
                    Eqn(E.minimum, [m, inf], {}, [r])], [r])
    k = _elementwise_kernel(cupy, *kernel_source(g))
    x = np.array([np.nan, -1.0, 2.0, np.inf], np.float32)
    out = cupy.empty(4, np.float32)
    k(cupy.asarray(x), out)
    np.testing.assert_array_equal(out.get(), np.minimum(np.maximum(x, 0.5), np.inf))


def test_tf32_switch():
    flags = taiji.backends.cuda.matmul
    a = taiji.randn(256, 256, device="cuda")
    flags.allow_tf32 = False
    exact = host(a @ a)
    flags.allow_tf32 = True
    fast = host(a @ a)
    np.testing.assert_allclose(fast, exact, rtol=5e-2, atol=5e-2)


def test_dropout_inside_jit_uses_the_gpu_generator():
    m = taiji.nn.Sequential(taiji.nn.Linear(8, 8), taiji.nn.Dropout(0.5)).cuda()
    f = taiji.jit(lambda x: m(x).sum())
    x = taiji.ones(4, 8, device="cuda")
    with taiji.no_grad():  # (the compiled program, not op-by-op differentiable replay)
        a, b = float(f(x)), float(f(x))
    assert a != b  # a fresh mask each call
    assert taiji.random._gen(None, "cuda")._state.device == "cuda:0"
    assert program_of(f).host_inputs == set()  # nothing copied from the CPU per call


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_cublas_products_match_numpy_for_every_layout(dtype):
    """The backend's products (cuBLAS called directly, taiji.backends.cublas) on views of
    every layout the plan reads without a copy, and ones it must copy, against NumPy."""
    import cupy
    from test_cublas_plan import CASES
    be = taiji.backends.get_backend("cuda")
    gemm = be._cublas()
    assert gemm, be.gemm_unavailable_reason
    tol = dict(rtol=1e-2, atol=5e-2) if dtype == "float16" else dict(rtol=1e-5, atol=1e-5)
    extra = {"strided both axes": (lambda b: b[:48].reshape(6, 8)[::2, ::2],
                                   lambda b: b[:20].reshape(4, 5), 0, 0)}
    for name, (make_a, make_b, ta, tb) in {**CASES, **extra}.items():
        buf = np.random.default_rng(1).standard_normal(4096).astype(dtype)
        a_h, b_h = make_a(buf), make_b(buf[::-1].copy())
        dbuf, dbuf2 = cupy.asarray(buf), cupy.asarray(buf[::-1].copy())
        a_d, b_d = make_a(dbuf), make_b(dbuf2)
        a64, b64 = a_h.astype(np.float64), b_h.astype(np.float64)
        want = np.matmul(a64.swapaxes(-1, -2) if ta else a64, b64.swapaxes(-1, -2) if tb else b64)
        got = be.matmul(a_d, b_d, bool(ta), bool(tb))
        assert got.dtype == np.dtype(dtype), name
        np.testing.assert_allclose(got.get().astype(np.float64), want, err_msg=name, **tol)
        out = cupy.full(want.shape, 7, dtype=dtype)
        assert be.matmul(a_d, b_d, bool(ta), bool(tb), out=out) is out
        np.testing.assert_allclose(out.get().astype(np.float64), want, err_msg=name, **tol)


def test_a_product_is_captured_in_a_cuda_graph():
    """cuBLAS inside stream capture: the replayed graph recomputes from new input values."""
    import cupy
    be = taiji.backends.get_backend("cuda")
    a = cupy.asarray(np.random.default_rng(2).standard_normal((64, 32)), dtype=cupy.float32)
    b = cupy.asarray(np.random.default_rng(3).standard_normal((48, 32)), dtype=cupy.float32)
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        be.matmul(a, b, False, True)  # (the handle meets the stream before the capture)
        s.begin_capture()
        c = be.matmul(a, b, False, True)
        graph = s.end_capture()
    a[...] = 2 * a
    cupy.cuda.Device().synchronize()  # (s does not wait for the default stream)
    graph.launch(s)
    s.synchronize()
    np.testing.assert_allclose(c.get(), a.get() @ b.get().T, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_kernels_match_the_array_rule(reduction):
    """The three-kernel CUDA cross-entropy (taiji/backends/cupy_xent.py) against NumPy's
    rule: ignored rows, more classes than a warp has lanes, a NaN logit."""
    import cupy
    from taiji._prims.nn import _xent_both_impl
    be = taiji.backends.get_backend("cuda")
    rng = np.random.default_rng(4)
    for n, c in ((5, 3), (64, 10), (37, 70), (3000, 10)):
        x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
        x[1, 2] = np.nan
        lab = rng.integers(0, c, n)
        lab[::4] = -100
        g = (np.asarray(0.7, np.float32) if reduction != "none"
             else rng.standard_normal(n).astype(np.float32))
        loss, d = _xent_both_impl(np, x, lab, g, ignore_index=-100, reduction=reduction)
        got = be.softmax_xent_with_grad(cupy.asarray(x), cupy.asarray(lab), cupy.asarray(g),
                                        -100, reduction)
        assert got is not None
        gl, gd = (a.get() for a in got)
        alone, none = be.softmax_xent_with_grad(cupy.asarray(x), cupy.asarray(lab), None, -100,
                                                reduction, "loss")
        assert none is None  # (the loss primitive alone: no gradient computed)
        np.testing.assert_array_equal(alone.get(), gl)
        assert gl.shape == np.shape(loss) and gd.shape == d.shape
        if reduction == "none":
            np.testing.assert_allclose(gl, loss, rtol=1e-5, atol=1e-6, err_msg=f"{n}x{c}")
        else:  # (row 1's NaN reaches the total; row 0 is ignored, so take rows 2..)
            assert np.isnan(gl) and np.isnan(loss)
            keep = np.ones(n, bool)
            keep[1] = False
            x2 = x[keep]
            l2, _ = _xent_both_impl(np, x2, lab[keep], g, ignore_index=-100,
                                    reduction=reduction)
            g2 = be.softmax_xent_with_grad(cupy.asarray(x2), cupy.asarray(lab[keep]),
                                           cupy.asarray(g), -100, reduction)[0].get()
            np.testing.assert_allclose(g2, l2, rtol=1e-5, err_msg=f"{n}x{c}")
        # (atol: the label column's p - 1 cancels, so a last-bit difference in exp shows
        # as a relative one of ~1e-5 there)
        np.testing.assert_allclose(gd, d, rtol=1e-5, atol=1e-6, err_msg=f"{n}x{c}")


def test_column_sums_match_numpy():
    """Backend.colsum on CUDA (a cuBLAS product with a ones vector, full float32), with and
    without an output buffer, and CuPy's sum for other dtypes."""
    import cupy
    be = taiji.backends.get_backend("cuda")
    rng = np.random.default_rng(5)
    for n, c in ((1, 7), (64, 10), (4096, 256), (33000, 3)):
        for dtype in (np.float32, np.float64, np.float16):
            x = rng.standard_normal((n, c)).astype(dtype)
            want = x.astype(np.float64).sum(axis=0)
            # (float16: the float32 sum rounded once to float16)
            tol = dict(rtol=1e-3, atol=2e-3 * np.sqrt(n)) if dtype == np.float16 else \
                dict(rtol=1e-4, atol=1e-4 * np.sqrt(n))
            got = be.colsum(cupy.asarray(x))
            assert got.shape == (c,) and got.dtype == dtype
            np.testing.assert_allclose(got.get().astype(np.float64), want, **tol)
            out = cupy.full(c, 9, dtype=dtype)
            assert be.colsum(cupy.asarray(x), out=out) is out
            np.testing.assert_allclose(out.get().astype(np.float64), want, **tol)
    xi = rng.integers(0, 5, (20, 3))
    np.testing.assert_array_equal(be.colsum(cupy.asarray(xi)).get(), xi.sum(axis=0))


def test_max_pool_kernels_match_the_array_rule():
    """taiji/backends/cupy_pool.py against NumPy's rule: remainder rows and columns, tied
    maxima (the first wins), NaN, a 3x2 window."""
    import cupy
    from taiji._prims.pool import _pool_impl, _route_impl
    be = taiji.backends.get_backend("cuda")
    rng = np.random.default_rng(6)
    for shape, kernel in (((2, 3, 7, 9), (2, 2)), ((1, 2, 6, 5), (3, 2)), ((4, 8, 28, 28), (2, 2))):
        x = rng.integers(-3, 3, shape).astype(np.float32)  # (many ties)
        x[0, 0, 1, 1] = np.nan
        g = rng.standard_normal((shape[0], shape[1], shape[2] // kernel[0],
                                 shape[3] // kernel[1])).astype(np.float32)
        want_y = _pool_impl(np, x, kernel=kernel)
        want_dx = _route_impl(np, g, x, kernel=kernel)
        got_y = be.max_pool(cupy.asarray(x), kernel).get()
        got_dx = be.max_pool_route(cupy.asarray(g), cupy.asarray(x), kernel).get()
        np.testing.assert_array_equal(got_y, want_y, err_msg=str(shape))
        np.testing.assert_array_equal(got_dx, want_dx, err_msg=str(shape))
