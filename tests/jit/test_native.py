"""The native tier (taiji/compiler/native.py): runs of equations as one numba function each,
bit for bit what the Python program computes, with the Python code for anything else."""
import re

import numpy as np
import pytest

import taiji
from taiji import nn, optim
from taiji.compiler import blas, fusion, native

from _train import ce_step, first_weight_mlp, train_jit

pytestmark = pytest.mark.skipif(not fusion._numba_available() or not blas.blas(),
                                reason="needs numba and NumPy's OpenBLAS")


@pytest.fixture
def tiers(kernels, monkeypatch):
    """Kernels on, and the native tier on (it follows the kernel switch)."""
    monkeypatch.setattr(native, "enabled", True)
    yield native


def _mlp_run(use_native=True):
    return train_jit((20, 16, 16, 5), use_native=use_native)


def test_training_step_is_bitwise_equal_to_the_python_program(tiers):
    ref_losses, ref_params, ref_low = _mlp_run(use_native=False)
    assert ref_low.native_source is None
    losses, params, low = _mlp_run(use_native=True)
    src = low.native_source
    assert src is not None, low._c.native.error
    # the whole step is one segment: forward, loss, backward and update, with the
    # cross-entropy's exp and log through NumPy's own loops (taiji/compiler/ufunc_loops.py)
    assert len(re.findall(r"= _n\d+\(", src)) == 1
    assert "_np.exp(" not in src and "_np.log(" not in src
    # Adam's parameter, m and v updates run in place over the segment's inputs: the segment
    # does not return them, the program rebinds their names (6 tensors x 3 arrays)
    call = re.search(r"\n        (.*) = (_n\d+)\((.*)\)\n((?:        t\d+ = t\d+\n)+)"
                     r"    except TypeError", src)
    assert call is not None, src
    returned, args = call.group(1).split(", "), call.group(3).split(", ")
    rebound = re.findall(r"(t\d+) = (t\d+)", call.group(4))
    assert len(rebound) == 18
    assert all(o not in returned and i in args for o, i in rebound)
    assert losses == ref_losses
    for a, b in zip(params, ref_params):
        assert np.array_equal(a, b)


def test_the_segments_cut_at_equations_without_a_native_spelling(tiers):
    def f(x, w):
        h = taiji.relu(x @ w + 1.0) * 2.0 - 0.5   # native: products, fused regions
        h = taiji.relu(h @ w) - h
        e = taiji.cumsum(h, 1)                      # no native spelling: a Python call
        return (e @ w.T).sum(0) * 3.0 + h.sum(0)    # native again

    jf = taiji.jit(f)
    rng = np.random.default_rng(1)
    x = taiji.tensor(rng.standard_normal((8, 6)).astype(np.float32))
    w = taiji.tensor(rng.standard_normal((6, 6)).astype(np.float32) * 0.3)
    first = jf(x, w).numpy().copy()
    jf(x, w)
    fusion.wait_for_kernels(120)
    src = jf.lower(x, w).native_source
    assert src is not None
    assert re.search(r"\n    t\d+ = _f\d+\(_np, t\d+", src), src  # cumsum, between them
    assert len(re.findall(r"= _n\d+\(", src)) == 2
    out = jf(x, w).numpy()
    assert np.array_equal(out, first)
    np.testing.assert_allclose(out, f(x, w).numpy(), rtol=1e-5)


def test_arguments_of_other_types_take_the_python_code(tiers):
    def f(x, w):
        h = taiji.relu(x @ w)
        return taiji.relu(h @ w.T) * 2.0 @ w + h * 0.5 - 1.0

    jf = taiji.jit(f)
    rng = np.random.default_rng(2)
    xa = rng.standard_normal((5, 4)).astype(np.float32)
    w = taiji.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    jf(taiji.tensor(xa), w)
    jf(taiji.tensor(xa), w)
    fusion.wait_for_kernels(120)
    assert jf.lower(taiji.tensor(xa), w).native_source is not None
    ro = xa.copy()
    ro.flags.writeable = False  # a read-only array: a type the native build was not made for
    out = jf(taiji.from_numpy(ro), w).numpy()
    assert np.array_equal(out, jf(taiji.tensor(xa), w).numpy())
    np.testing.assert_allclose(out, f(taiji.tensor(xa), w).numpy(), rtol=1e-5)


def test_equations_reading_a_strided_input_stay_python(tiers):
    # the run the native build is typed from got a transposed x: the equations reading x
    # stay Python (a segment typed for C arrays would refuse x at every call, and a refused
    # numba call costs ~100 us before its fallback), the rest is native; a segment typed from
    # such an array failed with "incompatible shape for array" before
    def f(x, w):
        h = taiji.relu(x @ w + 0.5)
        g = taiji.relu(h @ w.T * 2.0 - 1.0)
        return (g @ w + h * 0.5 - 1.0).sum(0)

    jf = taiji.jit(f)
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((9, 4)).astype(np.float32)
    w = taiji.tensor(rng.standard_normal((4, 6)).astype(np.float32))
    xt = taiji.from_numpy(np.ascontiguousarray(xa.T)).t()       # a transposed view
    xs = taiji.from_numpy(np.repeat(xa, 2, axis=0)[::2])         # a strided one
    assert not xt._data.flags.c_contiguous and not xs._data.flags.c_contiguous
    outs = [jf(xt, w).numpy().copy() for _ in range(2)]
    fusion.wait_for_kernels(120)
    src = jf.lower(xt, w).native_source
    assert src is not None, jf.lower(xt, w)._c.native.error
    segment_args = " ".join(re.findall(r"= _n\d+\(([^)]*)\)", src))
    assert segment_args and not re.search(r"\bt0\b", segment_args)  # t0: x
    outs += [jf(xt, w).numpy(), jf(xs, w).numpy(), jf(taiji.tensor(xa), w).numpy()]
    want = f(taiji.tensor(xa), w).numpy()
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_training_a_transposed_parameter(tiers):
    # a parameter whose storage is another tensor's transpose (Parameter(w.t())), trained
    # by a jitted step past its native build: the same as the same values stored row-major
    def run(transposed):
        model, _ = first_weight_mlp(transposed)
        step = taiji.jit(ce_step(model, optim.Adam(model.parameters(), lr=1e-2)))
        rng = np.random.default_rng(4)
        losses = []
        for i in range(6):
            x = taiji.tensor(rng.standard_normal((16, 12)).astype(np.float32))
            y = taiji.tensor(rng.integers(0, 3, 16))
            losses.append(step(x, y).item())
            if i == 2:
                fusion.wait_for_kernels(120)
        return losses, [p.detach().numpy().copy() for p in model.parameters()]

    losses, params = run(transposed=True)
    ref_losses, ref_params = run(transposed=False)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    assert losses[-1] < losses[0]
    for a, b in zip(params, ref_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_program_run_once_is_not_built(tiers):
    jf = taiji.jit(lambda x, w: (taiji.relu(x @ w) @ w.T + 1.0) * 2.0 - 1.0)
    x, w = taiji.ones(4, 4), taiji.ones(4, 4)
    jf(x, w)
    fusion.wait_for_kernels(120)
    low = jf.lower(x, w)
    assert low._c.native is not None and low.native_source is None


def test_native_switched_off(monkeypatch, kernels):
    monkeypatch.setattr(native, "enabled", False)
    jf = taiji.jit(lambda x, w: (taiji.relu(x @ w) @ w.T + 1.0) * 2.0 - 1.0)
    x, w = taiji.ones(4, 4), taiji.ones(4, 4)
    jf(x, w)
    jf(x, w)
    assert jf.lower(x, w)._c.native is None


@pytest.mark.parametrize("n,c", [(1, 1), (5, 3), (64, 10), (127, 32), (128, 10), (300, 33),
                                 (512, 100), (20000, 10)])
def test_native_cross_entropy_is_bitwise_the_primitive(n, c):
    from taiji._prims.nn import softmax_xent_with_grad
    from taiji.compiler import native_xent as X
    k = X.kernels()
    rng = np.random.default_rng(n * 1000 + c)
    for dtype in (np.float32, np.float64):
        for red in ("mean", "sum", "none"):
            for ignored in (False, True):
                x = (rng.standard_normal((n, c)) * 3).astype(dtype)
                y = rng.integers(0, c, n)
                if ignored:
                    y[::3] = -100
                g = dtype(0.7) if red != "none" else rng.random(n).astype(dtype)
                with np.errstate(all="ignore"):
                    ref_l, ref_d = softmax_xent_with_grad.impl(
                        np, x, y, np.asarray(g), ignore_index=-100, reduction=red)
                    z = k["xent_shift"](x)
                    e = np.exp(z)
                    s = k["xent_rowsum"](e)
                    loss, d = X._finish_py(z, e, s, np.log(s), y, g, -100, X.MODES[red])
                assert np.array_equal(np.asarray(loss), np.asarray(ref_l), equal_nan=True)
                assert np.array_equal(d, ref_d, equal_nan=True)


def test_cross_entropy_targets_out_of_bounds_raise_in_every_tier(tiers):
    from taiji._prims.nn import XENT_OUT_OF_BOUNDS
    model = nn.Linear(4, 3)
    step = ce_step(model, optim.SGD(model.parameters(), lr=0.1))
    x = taiji.randn(6, 4)
    good, bad = taiji.tensor([0, 1, 2, 0, 1, 2]), taiji.tensor([0, 1, 3, 0, 1, 2])
    with pytest.raises(IndexError, match=r"out of bounds.*got 3 with C = 3"):
        step(x, bad)  # eager
    jstep = taiji.jit(step)
    for _ in range(3):
        jstep(x, good)
    fusion.wait_for_kernels(120)
    assert jstep.lower(x, good).native_source is not None
    before = model.weight.detach().numpy().copy()
    with pytest.raises(IndexError, match=re.escape(XENT_OUT_OF_BOUNDS)):
        jstep(x, bad)  # the native build
    assert np.array_equal(model.weight.detach().numpy(), before)  # nothing was updated


def test_a_program_asks_for_its_build_after_its_calls_took_a_while(tiers, monkeypatch):
    """The build (seconds of numba sharing the GIL with the caller) waits until the
    program's calls have taken BUILD_AFTER seconds, or until wait_for_kernels asks; the
    Python program runs until then, with the same results."""
    rng = np.random.default_rng(3)
    x = taiji.tensor(rng.standard_normal((8, 6)).astype(np.float32))
    w = taiji.tensor(rng.standard_normal((6, 6)).astype(np.float32))

    def f(x, w):
        return taiji.relu(taiji.relu(x @ w + 1.0) @ w - 0.5).sum(0)
    monkeypatch.setattr(native, "BUILD_AFTER", 3600.0)
    jf = taiji.jit(f)
    outs = [jf(x, w).numpy().copy() for _ in range(5)]
    prog = jf.lower(x, w)._c.native
    assert prog.runs == 2 and not prog.requested and prog.spent > 0  # (timed, waiting)
    fusion.wait_for_kernels(120)  # asks for every waiting build, then waits for it
    assert prog.requested and jf.lower(x, w).native_source is not None, prog.error
    assert all(np.array_equal(o, jf(x, w).numpy()) for o in outs)

    monkeypatch.setattr(native, "BUILD_AFTER", 0.0)  # (any time spent is enough)
    jg = taiji.jit(lambda x, w: f(x, w) * 2.0)
    jg(x, w)
    jg(x, w)
    prog = jg.lower(x, w)._c.native
    assert not prog.requested
    jg(x, w)  # the first timed call: its time passes BUILD_AFTER
    assert prog.requested


def test_a_strided_view_between_segments_takes_the_native_code(tiers, monkeypatch):
    # a convolution's weight and bias gradients are slices of one product (the bias is its
    # last column), cut in the Python code between segments: views that are not contiguous.
    # The Adam segment that reads them is typed for contiguous arrays, so they are passed
    # contiguous; it ran its Python fallback every step before (the seed CNN: ~8% of a step)
    fallbacks = []
    build = native.build

    def counting_build(*args, **kwargs):
        fn, src = build(*args, **kwargs)
        if fn is not None:
            ns = fn.__globals__
            for name in [n for n in ns if n.startswith("_py") and callable(ns[n])]:
                def counted(*a, _f=ns[name], _n=name):
                    fallbacks.append(_n)
                    return _f(*a)
                ns[name] = counted
        return fn, src
    monkeypatch.setattr(native, "build", counting_build)

    def train(use_native):
        taiji.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
        step = taiji.jit(ce_step(model, optim.Adam(model.parameters(), lr=1e-2)))
        rng = np.random.default_rng(5)
        native.enabled = use_native
        losses = []
        for i in range(6):
            x = taiji.tensor(rng.standard_normal((8, 1, 6, 6)).astype(np.float32))
            y = taiji.tensor(rng.integers(0, 3, 8))
            losses.append(step(x, y).item())
            if i == 2:
                fusion.wait_for_kernels(120)
        return losses, [p.detach().numpy().copy() for p in model.parameters()], \
            step.lower(x, y).native_source

    ref_losses, ref_params, _ = train(use_native=False)
    losses, params, src = train(use_native=True)
    assert src is not None and "_np.ascontiguousarray(" in src
    assert fallbacks == []  # every segment ran its native code
    assert losses == ref_losses
    for a, b in zip(params, ref_params):
        assert np.array_equal(a, b)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # (-x * 0.0 at x = inf)
def test_relu_gives_numpys_bits_in_every_tier(tiers, monkeypatch):
    # NumPy's maximum(x, 0): NaN stays NaN, -0.0 and -inf give +0.0. numba's np.maximum gave
    # -0.0 for -0.0 (and ran 9x slower), so native segments and fused kernels spell ReLU as
    # a select that keeps NumPy's bits
    vals = np.float32([np.nan, -np.inf, -0.0, 0.0, 1.5, np.inf, -2.0, 3.0])
    xa = np.tile(vals, (4, 1))
    w = taiji.tensor(np.eye(8, dtype=np.float32))
    want_a = np.maximum(xa, np.float32(0))
    want_b = np.maximum(xa * np.float32(2), np.float32(0))
    assert np.signbit(want_a).sum() == 0  # (NumPy's own: the +0.0 this test pins)

    def f(x, w):
        a = taiji.relu(x)        # alone, on an argument: _relu in a native segment
        b = taiji.relu(x * 2.0)  # fused with its producer: the kernel's select
        return a, b, a @ w + b @ w, taiji.maximum(x * 2.0, -x * 0.0), \
            taiji.minimum(x * 2.0, -x * 0.0)

    names = []  # the names the native segments call
    build = native.build

    def recording_build(*args, **kwargs):
        fn, src = build(*args, **kwargs)
        if fn is not None:
            for name in re.findall(r"= (_n\d+)\(", src):
                names.extend(fn.__globals__[name].py_func.__code__.co_names)
        return fn, src
    monkeypatch.setattr(native, "build", recording_build)

    def run(use_native):
        monkeypatch.setattr(native, "enabled", use_native)
        jf = taiji.jit(f)
        x = taiji.tensor(xa)
        jf(x, w)
        jf(x, w)
        fusion.wait_for_kernels(120)
        a, b, _, mx, mn = jf(x, w)
        return [a.numpy(), b.numpy(), mx.numpy(), mn.numpy()], jf.lower(x, w).native_source

    # (fused maximum and minimum: NumPy's ties give the second operand, here -x * 0.0)
    x2, zs = xa * np.float32(2), -xa * np.float32(0)
    wants = [want_a, want_b, np.maximum(x2, zs), np.minimum(x2, zs)]
    eager = [t.numpy() for i, t in enumerate(f(taiji.tensor(xa), w)) if i != 2]
    python, none = run(use_native=False)
    native_, src = run(use_native=True)
    assert none is None and src is not None and "_relu" in names
    for got in (eager, python, native_):
        for g, want in zip(got, wants):
            assert np.array_equal(g.view(np.uint32), want.view(np.uint32))


def test_maximum_minimum_and_sign_give_numpys_signed_zeros_in_every_tier(tiers, monkeypatch):
    # NumPy's maximum(-0.0, 0.0) is 0.0 (a tie gives the second operand) and its sign(-0.0)
    # is 0.0; numba's np.maximum and np.sign give -0.0. Arrays of these stay Python, 0-d
    # ones and fused ones are spelled as NumPy's selects
    sources = []
    source = native._Segment.source

    def recording_source(self, fname):
        sources.append(source(self, fname))
        return sources[-1]
    monkeypatch.setattr(native._Segment, "source", recording_source)
    xa = np.tile(np.float32([-0.0, 0.0, np.nan, -1.0, 2.0, 0.0, -0.0, 3.0]), (4, 1))
    ya = np.tile(np.float32([0.0, -0.0, 1.0, np.nan, 2.0, 0.0, -0.0, -3.0]), (4, 1))
    w = taiji.tensor(np.eye(8, dtype=np.float32))
    s = taiji.tensor(np.float32(-0.0))

    def f(x, y, s, w):
        m = taiji.maximum(s, -s)       # 0-d, in a native segment: maximum(-0.0, 0.0)
        n = taiji.minimum(-s, s)       # minimum(0.0, -0.0)
        h = (x @ w) * m + (y @ w) * n
        return (m, n, taiji.maximum(x, y), taiji.minimum(x, y), taiji.sign(x),
                taiji.sign(x * 1.0), h)  # (the last sign is fused with its producer)

    wants = [np.maximum(np.float32(-0.0), np.float32(0.0)),
             np.minimum(np.float32(0.0), np.float32(-0.0)),
             np.maximum(xa, ya), np.minimum(xa, ya), np.sign(xa), np.sign(xa)]
    assert np.signbit(wants[0]) == 0 and np.signbit(wants[1]) == 1  # (NumPy's own)

    def run(use_native):
        monkeypatch.setattr(native, "enabled", use_native)
        jf = taiji.jit(f)
        args = (taiji.tensor(xa), taiji.tensor(ya), s, w)
        jf(*args)
        jf(*args)
        fusion.wait_for_kernels(120)
        return [t.numpy() for t in jf(*args)[:6]], jf.lower(*args).native_source

    eager = [t.numpy() for t in f(taiji.tensor(xa), taiji.tensor(ya), s, w)[:6]]
    python, none = run(use_native=False)
    native_, src = run(use_native=True)
    assert none is None and src is not None
    assert any(" if (" in seg for seg in sources)  # the 0-d selects ran natively
    for got in (eager, python, native_):
        for g, want in zip(got, wants):
            assert np.array_equal(np.asarray(g, np.float32).view(np.uint32),
                                  np.asarray(want, np.float32).view(np.uint32))
