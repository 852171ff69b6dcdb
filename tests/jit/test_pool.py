"""The pool's worker (taiji/compiler/pool.py): halves of products and loop kernels of native
programs that may switch threads, the second half on a second thread. Whoever runs a half,
the bits are the same; a missing worker means the caller runs both, never a wait."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import taiji
from taiji.compiler import blas, fusion, native, pool

from _train import train_jit

F32 = np.dtype(np.float32)
LIB = blas.library()
HAS_POOL = fusion._numba_available() and bool(LIB) and F32 in LIB.get("batch", {}) and \
    pool.enabled
needs_pool = pytest.mark.skipif(not HAS_POOL, reason="needs numba, Linux and OpenBLAS's batch "
                                                     "call on 2 threads")


def _counts():
    return int(pool._ctl[pool.RAN]), int(pool._ctl[pool.STOLEN])


def _region(fn, *args):
    """The fused region of ``taiji.jit(fn)`` at ``args``."""
    low = taiji.jit(fn).lower(*args)
    return next(e for e in low.graph.eqns if e.prim.name == "fused").params["region"]


@pytest.mark.skipif(not fusion._numba_available(), reason="needs numba")
def test_a_rows_kernel_computes_its_rows_as_the_whole_kernel_does():
    # every way an input is read: full (x), trailing dims (b), keepdims rows (c), scalar (s)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 9)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    c = rng.standard_normal((7, 1)).astype(np.float32)
    s = np.float32(1.7)
    r = _region(lambda x, b, c, s: taiji.relu(x * s + b) * c - x,
                *(taiji.from_numpy(a) for a in (x, b, c)), taiji.tensor(s))
    assert sorted(r.patterns) == ["f", "r", "s", "t"]
    whole = fusion._load_kernel(fusion.kernel_source(r.graph, r.patterns, scalar_args=True))
    rows = fusion._load_kernel(fusion.kernel_source(r.graph, r.patterns, scalar_args=True,
                                                    rows=True))
    ins = {"f": x, "t": b, "r": c, "s": s}
    args = [ins[p] for p in r.patterns]
    want, got = np.empty((7, 9), np.float32), np.full((7, 9), np.nan, np.float32)
    whole(r.size, r.last, *args, want)
    rows(0, 3, r.last, *args, got)
    assert np.isnan(got[3:]).all()  # rows 3.. not written yet
    rows(3, 7, r.last, *args, got)
    assert np.array_equal(got, want)
    np.testing.assert_allclose(want, np.maximum(x * s + b, 0) * c - x, rtol=1e-6)


@needs_pool
def test_a_kernel_task_passes_arrays_and_scalars_of_each_dtype():
    src = textwrap.dedent("""
        from numba import njit
        import numpy as np
        @njit
        def kernel(r0, r1, last, a, m, k, o):
            a = a.reshape(-1)[r0 * last:r1 * last]
            m = m.reshape(-1)[r0 * last:r1 * last]
            o = o.reshape(-1)[r0 * last:r1 * last]
            for i in range((r1 - r0) * last):
                o[i] = a[i] * k if m[i] else -a[i]
        """)
    kernel = fusion._load_kernel(src)
    kinds = [("a", np.float64), ("a", np.bool_), ("s", np.float64), ("a", np.float64)]
    task, emit = pool.kernel_task(kernel, kinds)
    lines = emit(["a", "m", "k", "o"], 40, 1000)
    assert lines[-2] == f"    _phalves({task.address})" and lines[-1] == "    _pkeep(a, m, o)"
    from numba import njit
    ns = {"np": np, **pool.namespace()}
    exec("def seg(a, m, k, o):\n" + "\n".join(lines) + "\n    return o\n", ns)
    seg = njit(ns["seg"])
    rng = np.random.default_rng(1)
    a, m = rng.standard_normal((40, 1000)), rng.random((40, 1000)) < 0.5
    want = np.where(m, a * 2.5, -a)
    for on in (False, True):
        pool.wake()
        pool.set_on(on)
        before = _counts()
        o = seg(a, m, 2.5, np.zeros_like(a))
        assert np.array_equal(o, want)
        ran, stolen = (x - y for x, y in zip(_counts(), before))
        assert ran + stolen == (1 if on else 0)
    pool.set_on(False)


@needs_pool
def test_pool_products_are_one_thread_products_and_run_here_without_a_worker():
    g = pool.gemm(F32)
    assert g is not None
    rng = np.random.default_rng(2)
    a = rng.standard_normal((300, 784)).astype(np.float32)
    b = rng.standard_normal((256, 784)).astype(np.float32)
    want, got = np.empty((300, 256), np.float32), np.empty((300, 256), np.float32)
    most = LIB["get_threads"]()
    LIB["set_threads"](1)
    try:
        LIB["python_gemm"][F32](a, b, 0, 1, want, 0)
        pool._stop()  # no worker: every second half runs here
        assert pool._thread is None and pool._ctl[pool.AWAKE] == 0
        pool.set_on(True)
        before = _counts()
        g(a, b, 0, 1, got, LIB["kblock"][F32])
        assert np.array_equal(got, want)
        assert _counts()[1] == before[1] + 1
        pool.wake()  # a new worker
        assert pool._thread.is_alive() and pool._ctl[pool.SERVING] == 1
        got[:] = 0
        ran = _counts()[0]
        for _ in range(20):
            g(a, b, 0, 1, got, LIB["kblock"][F32])
        assert np.array_equal(got, want)
        assert _counts()[0] > ran  # the worker took some
    finally:
        pool.set_on(False)
        LIB["set_threads"](most)


@needs_pool
def test_an_idle_worker_parks_and_the_next_call_wakes_it():
    pool.wake()
    deadline = time.time() + 10
    while pool._ctl[pool.AWAKE] and time.time() < deadline:
        time.sleep(0.01)  # (idle: SPIN pauses and YIELD yields, ~2 ms, then it parks)
    assert pool._ctl[pool.AWAKE] == 0
    assert pool._thread.is_alive()
    pool.wake()
    assert pool._ctl[pool.AWAKE] == 1


@needs_pool
def test_pool_training_matches_the_python_tier_bit_for_bit(kernels, monkeypatch):
    monkeypatch.setattr(native, "enabled", native.enabled)
    # hidden 256 at batch 128: halved products and halved kernels (128 x 256 >= MIN_KERNEL)
    ref_losses, ref_params, _ = train_jit((784, 256, 10), batch=128, lr=1e-3, steps=5,
                                          use_native=False)
    before = sum(_counts())
    losses, params, low = train_jit((784, 256, 10), batch=128, lr=1e-3, steps=5)
    assert getattr(low._c.fn, "pool", False), low._c.native.error
    assert sum(_counts()) >= before + 2 * 4  # (2 steps after the build, 4+ tasks each)
    assert losses == ref_losses
    for a, b in zip(params, ref_params):
        assert np.array_equal(a, b)


@needs_pool
def test_off_with_taiji_pool_0_and_a_forked_child_runs_its_own_worker():
    code = textwrap.dedent("""
        import os, sys
        import numpy as np
        sys.path.insert(0, sys.argv[1])
        from _train import train_jit, train_in_forked_child
        from taiji.compiler import fusion, pool
        fusion.enabled = True
        losses, params, low = train_jit((784, 256, 10), batch=128, steps=5)
        if os.environ.get("TAIJI_POOL") == "0":
            assert pool.gemm(np.float32) is None and not getattr(low._c.fn, "pool", False)
            print("off", losses[-1])
            sys.exit(0)
        assert low._c.fn.pool
        train_in_forked_child(losses)  # (the child: no worker until its first call)
        print("on", losses[-1])
        """)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outs = {}
    for flag in ("1", "0"):
        env = dict(os.environ, TAIJI_POOL=flag)
        p = subprocess.run([sys.executable, "-c", code, here], env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        kind, value = p.stdout.split()[-2:]
        outs[kind] = value
    assert outs["on"] == outs["off"]  # same bits with and without the pool


@needs_pool
def test_a_big_product_with_a_short_k_is_halved_by_its_longer_side():
    # K = 9 (a 3x3 convolution of one channel as a product): OpenBLAS's batch call keeps it
    # whole (split_axis 0), the pool halves it by its longer side; bits as one thread's
    assert blas.split_axis(2000, 500, 9, 0, 0) == 0
    assert blas.small_k_axis(2000, 500, 9) == 1 and blas.small_k_axis(32, 50176, 10) == 2
    assert blas.small_k_axis(2000, 500, 40) == 0 and blas.small_k_axis(200, 50, 9) == 0
    conv = taiji.jit(lambda x, w: taiji.relu(x @ w)).lower(taiji.ones(2000, 9),
                                                             taiji.ones(9, 500)).graph
    assert blas.kblocks(conv) is not None and list(native._pool_gemms(conv)) == [F32]
    rng = np.random.default_rng(3)
    for m, n in ((2000, 500), (32, 50176)):
        a = rng.standard_normal((m, 10)).astype(np.float32)
        b = rng.standard_normal((10, n)).astype(np.float32)
        want, got = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        most = LIB["get_threads"]()
        LIB["set_threads"](1)
        try:
            LIB["python_gemm"][F32](a, b, 0, 0, want, 0)
            pool.wake()
            pool.set_on(True)
            before = sum(_counts())
            pool.gemm(F32)(a, b, 0, 0, got, LIB["kblock"][F32])
            assert sum(_counts()) == before + 1  # one task: the second half
        finally:
            pool.set_on(False)
            LIB["set_threads"](most)
        assert np.array_equal(got, want)


@needs_pool
def test_a_short_wide_product_over_a_long_k_is_swapped_in_the_pool_as_in_the_batch_call():
    # the CNN's 64 x 289 weight gradient over K = 12544, smaller: (B A^T)^T, the same bits
    # as the product computed as written on one thread, in both tiers
    assert blas.swaps(64, 289, 4096, 0, 1)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((64, 4096)).astype(np.float32)
    b = rng.standard_normal((289, 4096)).astype(np.float32)
    want = np.empty((64, 289), np.float32)
    got = {k: np.empty((64, 289), np.float32) for k in ("pool", "batch")}
    most = LIB["get_threads"]()
    kb = LIB["kblock"][F32]
    try:
        LIB["set_threads"](1)
        LIB["python_gemm"][F32](a, b, 0, 1, want, 0)
        pool.wake()
        pool.set_on(True)
        pool.gemm(F32)(a, b, 0, 1, got["pool"], kb)
        pool.set_on(False)
        LIB["set_threads"](most)
        LIB["python_gemm"][F32](a, b, 0, 1, got["batch"], kb)
    finally:
        pool.set_on(False)
        LIB["set_threads"](most)
    for v in got.values():
        assert np.array_equal(v, want)


@needs_pool
def test_plane_kernels_run_in_halves_on_the_worker_with_the_whole_kernels_bits(kernels):
    from taiji._prims import conv as C, pool as P
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5, 12, 12)).astype(np.float32)
    p = dict(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), outs=(12, 12),
             pads=((1, 1), (1, 1)), batch_inner=True, extra_row=1.0)
    calls = {
        "im2col": lambda: C._windows_impl(np, x, value=0.0, **p),
        "pool": lambda: P._pool_impl(np, x, kernel=(2, 2)),
        "route": lambda: P._route_impl(np, x[:, :, ::2, ::2].copy(), x, kernel=(2, 2)),
    }
    cols = calls["im2col"]()
    calls["col2im"] = lambda: C._windows_t_impl(np, cols, in_spatial=(12, 12), **p)
    for f in calls.values():
        f()  # queue the kernels
    assert fusion.wait_for_kernels(300)
    for name, f in calls.items():
        pool.set_on(False)
        before = _counts()
        whole = f()  # (off: both halves here, as outside a pool program)
        assert _counts() == before, name
        pool.wake()
        pool.set_on(True)
        try:
            halves = f()
        finally:
            pool.set_on(False)
        ran, stolen = (a - b for a, b in zip(_counts(), before))
        assert ran + stolen == 1, name  # the second half was a task
        assert np.array_equal(np.ascontiguousarray(halves), np.ascontiguousarray(whole)), name
    for k in (C._IM2COL, C._COL2IM, P._POOL, P._ROUTE):
        assert all(hasattr(fn, "task") for fn in k._compiled.values() if callable(fn))


@needs_pool
def test_a_task_posted_while_the_worker_is_parked_wakes_it():
    g = pool.gemm(F32)
    rng = np.random.default_rng(6)
    a = rng.standard_normal((2048, 784)).astype(np.float32)
    b = rng.standard_normal((512, 784)).astype(np.float32)
    c = np.empty((2048, 512), np.float32)
    most, nap = LIB["get_threads"](), int(pool._ctl[pool.NAP + 1])
    LIB["set_threads"](1)
    pool._ctl[pool.NAP + 1] = 0
    pool._ctl[pool.NAP] = 60  # parked, it sleeps 60 s unless woken: only a wake lets it work
    try:
        pool.wake()
        pool.set_on(True)
        ran = 0
        for _ in range(5):  # (a task may be posted just as the worker parks; on a loaded
            deadline = time.time() + 10  # machine it may wake too late for its half)
            while pool._ctl[pool.AWAKE] and time.time() < deadline:
                time.sleep(0.01)
            assert pool._ctl[pool.AWAKE] == 0  # parked; no ``wake`` before the product
            before = _counts()[0]
            g(a, b, 0, 1, c, LIB["kblock"][F32])
            ran += _counts()[0] - before
        assert ran >= 1
    finally:
        pool._ctl[pool.NAP], pool._ctl[pool.NAP + 1] = 0, nap
        pool.set_on(False)
        LIB["set_threads"](most)
        pool.wake()  # (its next nap: the usual one)


@needs_pool
def test_pool_programs_stepping_in_several_python_threads_keep_their_bits(kernels):
    from taiji import nn, optim
    from _train import ce_step

    def make():
        taiji.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        return model, taiji.jit(ce_step(model, optim.Adam(model.parameters(), lr=1e-2)))
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((12, 128, 784)).astype(np.float32)
    ys = rng.integers(0, 10, (12, 128))
    models = [make() for _ in range(3)]
    losses = [[] for _ in models]

    def run(step, out, lo, hi):
        for i in range(lo, hi):
            out.append(step(taiji.tensor(xs[i]), taiji.tensor(ys[i])).item())
    for (_, step), out in zip(models, losses):
        run(step, out, 0, 3)
    fusion.wait_for_kernels(120)  # (native builds: pool programs from here on)
    threads = [threading.Thread(target=run, args=(step, out, 3, 12))
               for (_, step), out in zip(models[1:], losses[1:])]
    for t in threads:
        t.start()
    run(models[0][1], losses[0], 3, 12)
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert all(getattr(step.lower(taiji.tensor(xs[0]), taiji.tensor(ys[0]))._c.fn, "pool", False)
               for _, step in models)
    assert len(losses[0]) == 12 and all(out == losses[0] for out in losses)
    for model, _ in models[1:]:
        for p, q in zip(model.parameters(), models[0][0].parameters()):
            assert np.array_equal(p.detach().numpy(), q.detach().numpy())
