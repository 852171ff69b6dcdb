"""Products of compiled CPU programs (taiji/compiler/blas.py): over K blocks whose bits do
not depend on OpenBLAS's thread count, and the per-program choice of one thread or all."""
import numpy as np
import pytest

import taiji
from taiji.compiler import blas, fusion, native

from _train import train_jit

LIB = blas.library()
CHOICE = blas.ThreadChoice
pytestmark = pytest.mark.skipif(not LIB, reason="needs NumPy's OpenBLAS")
F32 = np.dtype(np.float32)
SWITCHES = bool(LIB) and LIB["get_threads"]() >= 2 and LIB["kblock"][F32] > 0
needs_threads = pytest.mark.skipif(not SWITCHES, reason="needs OpenBLAS with 2+ threads whose "
                                                        "float32 products agree with one's")


def _ref(a, b, ta, tb):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if ta else a64) @ (b64.T if tb else b64)


def test_blocks():
    assert blas.blocks(784, 448) == 2
    assert blas.blocks(448, 448) == 1
    assert blas.blocks(1000, 384) == 3
    assert blas.blocks(50176, 0) == 1


@needs_threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_over_k_blocks_agree_on_one_thread_and_all(dtype):
    d = np.dtype(dtype)
    kb, most = LIB["kblock"][d], LIB["get_threads"]()
    if kb == 0:  # (float64 here: no K block agrees, so programs with its products never switch)
        assert blas.kblocks(taiji.jit(lambda x: x @ x.T).lower(
            taiji.ones(3, 5, dtype=taiji.float64)).graph) is None
        return
    rng = np.random.default_rng(0)
    shapes = [(64, 256, 784), (96, 80, kb + 1), (128, 96, 2 * kb - 1), (70, 130, 3 * kb)]
    shapes += [(48, 144, int(k)) for k in rng.integers(kb // 2, 4 * kb, 8)]
    for m, n, k in shapes:
        for ta in (0, 1):
            for tb in (0, 1):
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(d)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(d)
                out = []
                try:
                    for threads in (1, most):
                        LIB["set_threads"](threads)
                        out.append(blas.matmul(a, b, ta, tb, kb))
                finally:
                    LIB["set_threads"](most)
                assert np.array_equal(out[0], out[1]), (m, n, k, ta, tb)
                np.testing.assert_allclose(out[0], _ref(a, b, ta, tb),
                                           rtol=1e-4 if d == np.float32 else 1e-12,
                                           atol=1e-3 if d == np.float32 else 1e-10)


SPLITS = SWITCHES and F32 in LIB.get("batch", {})
needs_split = pytest.mark.skipif(not SPLITS, reason="needs OpenBLAS's 64-bit batch call and "
                                                    "2+ threads")


def test_split_axis_splits_only_halves_above_the_small_matrix_bound():
    assert blas.split_axis(128, 256, 448, 0, 1) == 2   # C = A B^T, wide: by C's columns
    assert blas.split_axis(512, 256, 784, 0, 1) == 2   # ... up to twice as tall as wide
    assert blas.split_axis(1000, 256, 784, 0, 1) == 1  # ... taller: by its rows
    assert blas.split_axis(32, 10, 50176, 0, 1) == 1   # (the CNN's conv1 weight gradient)
    assert blas.split_axis(256, 784, 128, 1, 0) == 1   # C = A^T B: by C's rows
    assert blas.split_axis(128, 256, 128, 0, 0) == 1
    assert blas.split_axis(64, 3136, 512, 0, 0) == 2   # ... 8x as wide as tall: by columns
    assert blas.split_axis(289, 12544, 64, 1, 0) == 2
    assert blas.split_axis(32, 50176, 10, 0, 0) == 0   # K < 32: a product that mostly writes
    assert blas.SMALL_MNK == 1_000_000
    assert blas.split_axis(64, 64, 489, 0, 0) == 1   # half: 32 * 64 * 489 = 1,001,472
    assert blas.split_axis(64, 64, 488, 0, 0) == 0   # half: 999,424
    small = blas.SMALL_MNK
    assert blas.split_axis(2, 2, small // 2, 0, 1) == 0
    assert not blas.splits(F32, 128, 256, 784, 0, 1, 0)  # kb 0: whole products, as NumPy's
    assert not blas.splits(F32, 1, 4096, 784, 0, 0, 448)  # one row: nothing to halve


@needs_split
def test_split_products_are_one_thread_products_bit_for_bit():
    kb, most = LIB["kblock"][F32], LIB["get_threads"]()
    whole = blas.gemm_function(LIB["gemm"][F32], F32)  # no batch: whole products
    rng = np.random.default_rng(3)
    shapes = [(128, 256, 784), (256, 784, 96), (64, 128, 256), (129, 257, 300), (512, 10, 600),
              (7, 3000, 200), (96, 64, 1500), (5, 4, 30)]
    for m, n, k in shapes:
        for ta in (0, 1):
            for tb in (0, 1):
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(F32)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(F32)
                split = blas.matmul(a, b, ta, tb, kb)
                # halves are one-thread products on any thread count: over the whole K
                whole_k = 0 if blas.splits(F32, m, n, k, ta, tb, kb) else kb
                try:
                    LIB["set_threads"](1)
                    one = whole(a, b, ta, tb, np.empty((m, n), F32), whole_k)
                finally:
                    LIB["set_threads"](most)
                assert np.array_equal(split, one), (m, n, k, ta, tb)
                np.testing.assert_allclose(split, _ref(a, b, ta, tb), rtol=1e-4, atol=1e-3)
    assert any(blas.splits(F32, m, n, k, 0, 1, kb) for m, n, k in shapes)


def test_swaps_only_short_wide_a_bt_products_over_a_long_k():
    assert blas.swaps(64, 289, 12544, 0, 1)       # the CNN's conv2 weight gradient
    assert blas.swaps(64, 512, 3136, 0, 1)        # its fully connected forward
    assert not blas.swaps(64, 256, 784, 0, 1)     # the MLP's: K too short
    assert not blas.swaps(128, 512, 3136, 0, 1)   # taller
    assert not blas.swaps(64, 200, 3136, 0, 1)    # not 4x as wide
    assert not blas.swaps(32, 10, 50176, 0, 1)    # (the conv1 weight gradient: narrow)
    assert not any(blas.swaps(64, 512, 3136, ta, tb) for ta, tb in ((0, 0), (1, 0), (1, 1)))


@needs_split
@pytest.mark.skipif(not fusion._numba_available(), reason="needs numba")
def test_a_swapped_product_has_the_bits_of_the_unswapped_halves():
    # kb -1 (a program that keeps OpenBLAS's threads) swaps; the same halves unswapped, on
    # one thread or two, and the native tier's product give the same bits
    rng = np.random.default_rng(5)
    m, n, k = 48, 200, 2304
    assert blas.swaps(m, n, k, 0, 1)
    a = rng.standard_normal((m, k)).astype(F32)
    b = rng.standard_normal((n, k)).astype(F32)
    got = blas.matmul(a, b, 0, 1, -1)
    assert got.shape == (m, n) and got.flags.c_contiguous
    np.testing.assert_allclose(got, _ref(a, b, 0, 1), rtol=1e-4, atol=1e-3)
    whole = blas.gemm_function(LIB["gemm"][F32], F32)
    most = LIB["get_threads"]()
    try:
        LIB["set_threads"](1)
        one = whole(a, b, 0, 1, np.empty((m, n), F32), 0)
    finally:
        LIB["set_threads"](most)
    assert np.array_equal(got, one)
    native = blas.numba_gemm(LIB["gemm"][F32], F32, LIB["batch"][F32])
    assert np.array_equal(native(a, b, 0, 1, np.empty((m, n), F32), -1), got)


def test_halving_is_off_when_asked_or_when_halves_differ_from_whole_products(monkeypatch):
    # more threads than the two it was measured on: OpenBLAS spreads products itself
    assert blas._find_batch(None, {"get_threads": lambda: 4}) == {}
    monkeypatch.setenv("TAIJI_GEMM_SPLIT", "0")
    assert blas._find_batch(None, LIB or {"get_threads": lambda: 2}) == {}
    if not SWITCHES:
        return
    exact = LIB["python_gemm"][F32]

    def off_by_one_ulp(a, b, ta, tb, c, kb):  # a batch call whose bits are not one thread's
        exact(a, b, ta, tb, c, kb)
        c[0, 0] = np.nextafter(c[0, 0], np.inf)
        return c
    assert blas._probe_split(LIB, F32, exact)
    assert not blas._probe_split(LIB, F32, off_by_one_ulp)
    assert LIB["get_threads"]() >= 2  # (the probe restores the thread count)


@needs_split
def test_a_switching_program_spells_its_split_products_as_the_native_tier_does():
    x, w = taiji.ones(128, 256), taiji.ones(512, 256)
    low = taiji.jit(lambda a, b: a @ b.T).lower(x, w)  # K = 256: no K blocks, but halves
    assert "_mm(" in low.source
    np.testing.assert_array_equal(taiji.jit(lambda a, b: a @ b.T)(x, w).numpy(),
                                  np.full((128, 512), 256.0, np.float32))


@pytest.mark.skipif(not fusion._numba_available(), reason="needs numba")
@pytest.mark.parametrize("kb", [0, 100, 448])
def test_the_native_product_is_the_python_tiers(kb):
    rng = np.random.default_rng(1)
    for d in blas.FLOATS:
        gemm = blas.numba_gemm(blas.blas()[d], d, LIB.get("batch", {}).get(d))
        for m, n, k in ((7, 5, 9), (33, 40, 250), (128, 256, 300)):
            for ta in (0, 1):
                for tb in (0, 1):
                    a = rng.standard_normal((k, m) if ta else (m, k)).astype(d)
                    b = rng.standard_normal((n, k) if tb else (k, n)).astype(d)
                    got = gemm(a, b, ta, tb, np.empty((m, n), d), kb)
                    assert np.array_equal(got, blas.matmul(a, b, ta, tb, kb))
                    if kb == 0:  # one call: NumPy's own product
                        assert np.array_equal(got, np.matmul(a.T if ta else a, b.T if tb else b))


def test_matmul_takes_views_and_empty_inner_dimensions():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal((30, 20)).astype(np.float32)
    want = blas.matmul(a, b, 0, 0, 8)
    assert np.array_equal(blas.matmul(np.asfortranarray(a), b[:, :], 0, 0, 8), want)
    out = np.empty((20, 40), np.float32).T  # a non-contiguous destination
    assert blas.matmul(a, b, 0, 0, 8, out=out) is out
    assert np.array_equal(out, want)
    z = blas.matmul(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32), 0, 0, 8)
    assert z.shape == (3, 4) and not z.any()


def test_matmul_errors_say_what_was_expected():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"inner dimensions 4 and 5 differ"):
        blas.matmul(a, np.ones((5, 2), np.float32), 0, 0, 2)
    with pytest.raises(TypeError, match=r"2-D float32/float64 arrays of one dtype; got "
                                        r"float32\(3, 4\) and float64\(4, 2\)"):
        blas.matmul(a, np.ones((4, 2)), 0, 0, 2)


def _calls(choice, n, ms_all, ms_one):
    """Feed ``choice`` n synthetic call times."""
    for _ in range(n):
        choice.record((ms_one if choice.one else ms_all) / 1e3)


@needs_threads
def test_thread_choice_takes_one_thread_when_it_is_faster_and_goes_back():
    c = blas.ThreadChoice()
    c._next = 0.0
    _calls(c, c.WINDOW, ms_all=1.0, ms_one=1.4)  # a quiet machine: all threads win
    assert c.one and not c.current                 # ... the window is full: a probe starts
    _calls(c, c.PROBE, ms_all=1.0, ms_one=1.4)
    assert not c.one and not c.current and c.switches == 0
    assert c._next == pytest.approx(c._spent + c.PERIOD)  # the next probe, in program time
    _calls(c, c.WINDOW, ms_all=2.5, ms_one=1.4)  # a core is taken ...
    assert not c.one and c.switches == 0           # ... (no probe before PERIOD is out)
    c._next = c._spent  # PERIOD is out
    _calls(c, 1 + c.PROBE, ms_all=2.5, ms_one=1.4)  # ... the next probe: one thread wins
    assert c.one and c.current and c.switches == 1
    assert c._next == pytest.approx(c._spent + c.RECHECK)  # on one thread: probed sooner
    _calls(c, c.WINDOW, ms_all=1.0, ms_one=1.4)  # the core is back
    c._next = c._spent  # RECHECK is out
    _calls(c, 1 + c.PROBE, ms_all=1.0, ms_one=1.4)
    assert not c.one and not c.current and c.switches == 2


@needs_threads
def test_thread_choice_probes_long_calls_every_calls_calls_not_every_period():
    # a probe's calls cost up to twice their time: with 30 ms calls (the seed CNN's step)
    # a probe every PERIOD (2 s) costs ~6%, so the next probe waits CALLS calls instead
    c = blas.ThreadChoice()
    c._next = 0.0
    _calls(c, c.WINDOW + c.PROBE, ms_all=30.0, ms_one=45.0)
    assert not c.current and c.switches == 0
    assert c._next == pytest.approx(c._spent + c.CALLS * 0.030)
    assert c.CALLS * 0.030 > 2 * c.PERIOD


@needs_threads
def test_thread_choice_wants_a_clear_win():
    c = blas.ThreadChoice()
    c._next = 0.0
    _calls(c, c.WINDOW + c.PROBE, ms_all=1.0, ms_one=0.97)  # within MARGIN: stay
    assert not c.current and c.switches == 0


@needs_threads
def test_the_timed_program_runs_on_one_thread_and_restores_the_count():
    c = blas.ThreadChoice()
    seen = []
    run = c.timed(lambda: seen.append(LIB["get_threads"]()))
    most = LIB["get_threads"]()
    run()
    c.one = True
    run()
    assert seen == [most, 1] and LIB["get_threads"]() == most
    assert len(c._recent) == 1 and len(c._probe) == 1  # the second call counted as a probe


@needs_threads
def test_one_thread_calls_from_several_threads_restore_the_count_once_all_end():
    most = LIB["get_threads"]()
    outer, inner = blas.ThreadChoice(), blas.ThreadChoice()
    outer.one = inner.one = True
    seen = []
    inner_run = inner.timed(lambda: seen.append(LIB["get_threads"]()))

    def outer_body():  # another program's one-thread call starts and ends inside this one
        inner_run()
        seen.append(LIB["get_threads"]())
    outer.timed(outer_body)()
    assert seen == [1, 1] and LIB["get_threads"]() == most
    with pytest.raises(RuntimeError):  # a failing call restores the count too
        outer.timed(lambda: (_ for _ in ()).throw(RuntimeError("boom")))()
    assert LIB["get_threads"]() == most


def _train(monkeypatch, use_native=True, one_thread=False):
    """The K = 784 MLP trained (taiji/tests/_train.py), on one thread from the start if asked."""
    class One(CHOICE):
        def __init__(self, start_one=False):
            super().__init__(start_one)
            self.one = self.current = True
            self._next = float("inf")
    monkeypatch.setattr(blas, "ThreadChoice", One if one_thread else CHOICE)
    monkeypatch.setattr(native, "enabled", native.enabled)  # (restored after the test)
    return train_jit((784, 64, 10), batch=96, lr=1e-3, use_native=use_native)


@needs_threads
def test_training_bits_do_not_depend_on_the_tier_or_the_threads(kernels, monkeypatch):
    ref_losses, ref_params, low = _train(monkeypatch, use_native=False)
    assert "_mm(" in low.source  # K = 784: the forward product goes over K blocks
    runs = [_train(monkeypatch, use_native=False, one_thread=True)]
    if fusion._numba_available():
        runs.append(_train(monkeypatch))
        assert runs[-1][2].native_source is not None, runs[-1][2]._c.native.error
        runs.append(_train(monkeypatch, one_thread=True))
    for losses, params, _ in runs:
        assert losses == ref_losses
        for a, b in zip(params, ref_params):
            assert np.array_equal(a, b)


def test_programs_with_other_blas_calls_keep_whole_products():
    a, b = taiji.ones(8, 20000), taiji.ones(20000, 8)
    big_k = taiji.jit(lambda x, y: x @ y)  # far more K blocks than MAX_BLOCKS, whole
    assert blas.kblocks(big_k.lower(a, b).graph) is None
    assert "_np.matmul(" in big_k.lower(a, b).source
    np.testing.assert_allclose(big_k(a, b).numpy(), np.full((8, 8), 20000.0))
    # ... but a product in halves runs over its whole K on one thread: its K blocks, however
    # many, do not stop the program from switching threads
    a, b = taiji.ones(8, 60000), taiji.ones(60000, 8)
    if SPLITS:
        assert blas.kblocks(big_k.lower(a, b).graph) is not None
        assert f"_mm(t0, t1, 0, 0, {blas.library()['kblock'][np.dtype(np.float32)]})" in \
            big_k.lower(a, b).source
    np.testing.assert_allclose(big_k(a, b).numpy(), np.full((8, 8), 60000.0))
    small = taiji.jit(lambda x, y: x @ y)  # below the halves' bound: NumPy's whole product
    assert "_np.matmul(" in small.lower(taiji.ones(8, 300), taiji.ones(300, 8)).source
    ein = taiji.jit(lambda x, y: taiji.einsum("ij,jk->ik", x, y) + x @ y)
    assert blas.kblocks(ein.lower(taiji.ones(4, 900), taiji.ones(900, 4)).graph) is None
