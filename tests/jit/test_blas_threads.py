"""OpenBLAS's parallel sections on the pool's worker (taiji/compiler/blas_threads.py): for
native programs that keep OpenBLAS's threads. The jobs are OpenBLAS's own, so the bits are
its two-thread products'; a worker that cannot take a job sends the section to started
threads, never into a wait. (A test that installs the callback leaves it in, as a shared
program does: every later product of the process runs through it.)"""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from taiji.compiler import blas, blas_threads, fusion, native, pool

from _train import train_jit

HAS = fusion._numba_available() and blas_threads.available()
needs_callback = pytest.mark.skipif(not HAS, reason="needs numba, Linux and an OpenBLAS on 2 "
                                                    "threads with a threads callback")
SHAPES = [((512, 784), (256, 784), 0, 1), ((128, 256), (256, 128), 0, 0),
          ((300, 200), (300, 96), 1, 0), ((70, 1000), (130, 1000), 0, 1)]


def _products(rng):
    out = []
    for sa, sb, ta, tb in SHAPES:
        a = rng.standard_normal(sa).astype(np.float32)
        b = rng.standard_normal(sb).astype(np.float32)
        out.append((a.T if ta else a) @ (b.T if tb else b))
    return out


def _ran():
    return int(pool._ctl[pool.RAN])


@needs_callback
def test_sections_on_the_worker_and_on_started_threads_give_openblas_bits():
    want = _products(np.random.default_rng(0))  # (OpenBLAS's own threads, unless installed)
    pool.wake()
    blas_threads.install()
    blas_threads._enter()
    try:
        before = _ran()
        on_pool = _products(np.random.default_rng(0))
        took = _ran() - before
        pool._ctl[pool.SERVING] = 0  # no worker (a forked child's): started threads
        before = _ran()
        try:
            on_threads = _products(np.random.default_rng(0))
        finally:
            pool._ctl[pool.SERVING] = 1
        assert _ran() == before
        pool._ctl[pool.STATE] = pool.CLAIMED  # the block is another thread's
        try:
            busy = _products(np.random.default_rng(0))
        finally:
            pool._ctl[pool.STATE] = pool.EMPTY
        assert _ran() == before
    finally:
        blas_threads._leave()
    assert took >= len(SHAPES) - 1  # (the smallest may run on one thread)
    assert blas_threads._depth == 0 and pool._ctl[pool.ON] == 0
    for got in (on_pool, on_threads, busy):
        for g, w in zip(got, want):
            assert np.array_equal(g, w)
    assert np.array_equal(_products(np.random.default_rng(0))[0], want[0])  # outside programs


@needs_callback
def test_a_shared_program_trains_as_the_python_tier_does_bit_for_bit(kernels, monkeypatch):
    monkeypatch.setattr(native, "enabled", native.enabled)
    ref_losses, ref_params, _ = train_jit((784, 256, 10), batch=128, lr=1e-3, steps=5,
                                          use_native=False)
    before = _ran()
    losses, params, low = train_jit((784, 256, 10), batch=128, lr=1e-3, steps=5)
    assert getattr(low._c.fn, "pool", False) == "shared", low._c.native.error
    assert _ran() >= before + 2 * 3  # (2 steps after the build: products and Adam's halves)
    assert losses == ref_losses
    for a, b in zip(params, ref_params):
        assert np.array_equal(a, b)


@needs_callback
def test_numpy_products_in_another_thread_during_shared_programs_keep_their_bits(kernels):
    # a thread multiplying with NumPy (its sections go to the worker or to started threads
    # while the callback is in, to OpenBLAS's threads otherwise) next to a training loop
    blas_threads.found()  # (blas.library()'s first call probes on one OpenBLAS thread)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((400, 700)).astype(np.float32)
    b = rng.standard_normal((700, 300)).astype(np.float32)
    want = a @ b
    stop, bad, count = threading.Event(), [], [0]

    def multiply():
        while not stop.is_set():
            if not np.array_equal(a @ b, want):
                bad.append(1)
            count[0] += 1
    t = threading.Thread(target=multiply)
    t.start()
    try:
        losses, params, low = train_jit((784, 256, 10), batch=128, lr=1e-3, steps=12)
    finally:
        stop.set()
        t.join(timeout=120)
    assert not t.is_alive() and count[0] > 0 and not bad
    ref_losses = train_jit((784, 256, 10), batch=128, lr=1e-3, steps=12)[0]
    assert losses == ref_losses


@needs_callback
def test_a_forked_child_runs_shared_programs_with_its_own_worker():
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from _train import train_jit, train_in_forked_child
        from taiji.compiler import fusion
        fusion.enabled = True
        losses, params, low = train_jit((784, 256, 10), batch=128, steps=5)
        assert low._c.fn.pool == "shared"
        train_in_forked_child(losses)
        print("ok")
        """)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and p.stdout.split()[-1] == "ok", p.stderr[-3000:]


def test_no_callback_without_two_openblas_threads(monkeypatch):
    lib = blas.library()
    if not lib:
        pytest.skip("no OpenBLAS found")
    monkeypatch.setattr(blas_threads, "_found", None)
    most = lib["get_threads"]()
    lib["set_threads"](1)
    try:
        assert not blas_threads.available()
    finally:
        lib["set_threads"](most)
