"""The device plumbing on the CPU: a fake 'cuda' backend (tests/cuda/fake_cuda.py) whose
arrays are a distinct type that refuses host arrays, as CuPy's do. Creation with
``device=``, moves, mixing errors, modules, optimizers, gradients, vmap and jit's device
programs (with emulated CUDA-graph replay) all run for real."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import taiji
import taiji.nn as nn
import taiji.nn.functional as F
from device_cases import LAYERS, compare_layer, host, program_of, train, cnn
from fake_cuda import FakeCudaArray


def on_fake(t) -> bool:
    return type(t._data) is FakeCudaArray and t.device == "cuda:0" and t.is_cuda


# ---------------------------------------------------------------- creation and moves

def test_creation_ops_take_device(fake_cuda):
    made = [taiji.zeros(2, 3, device="cuda"), taiji.ones(2, device="cuda:0"),
            taiji.empty(4, device=taiji.device("cuda")), taiji.full((2,), 7.0, device="cuda"),
            taiji.arange(5, device="cuda"), taiji.linspace(0, 1, 3, device="cuda"),
            taiji.logspace(0, 1, 3, device="cuda"), taiji.eye(3, device="cuda"),
            taiji.tensor([[1, 2]], device="cuda"), taiji.scalar_tensor(2.0, device="cuda"),
            taiji.rand(3, device="cuda"), taiji.randn(2, 2, device="cuda"),
            taiji.randint(0, 5, (4,), device="cuda"), taiji.randperm(6, device="cuda")]
    for t in made:
        assert on_fake(t), t
    x = taiji.ones(2, 3, device="cuda")
    for t in (taiji.zeros_like(x), taiji.ones_like(x), taiji.full_like(x, 2.0),
              taiji.rand_like(x), taiji.randn_like(x), x.new_zeros(2), x.new_tensor([1.0]),
              x.zeros_like(), taiji.tensor(x), taiji.as_tensor(x)):
        assert on_fake(t), t
    assert taiji.zeros_like(x, device="cpu").device == "cpu"
    assert taiji.arange(5, device="cuda").tolist() == [0, 1, 2, 3, 4]
    assert taiji.eye(2, device="cuda").tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert sorted(taiji.randperm(6, device="cuda").tolist()) == list(range(6))


def test_to_cuda_cpu_round_trip(fake_cuda):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    c = taiji.tensor(a)
    g = c.to("cuda")
    assert on_fake(g) and c.device == "cpu"
    assert g.to("cuda") is g and c.cpu() is c  # already there: the same tensor
    np.testing.assert_array_equal(g.cpu().numpy(), a)
    np.testing.assert_array_equal(c.cuda().cpu().numpy(), a)
    h = c.to("cuda", taiji.float64)
    assert on_fake(h) and h.dtype is taiji.float64
    assert c.to(g).device == "cuda:0" and g.to(c).device == "cpu"
    assert c.to(device="cuda:0").is_cuda
    assert repr(g).endswith("device='cuda:0')")
    assert g.tolist() == a.tolist() and float(g.sum()) == 15.0 and g[1, 2].item() == 5.0


def test_to_is_differentiable(fake_cuda):
    x = taiji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.cuda()
    assert on_fake(y) and y.requires_grad and y.grad_fn is not None
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])
    w = taiji.tensor([1.0, -1.0], device="cuda", requires_grad=True)
    (w.cpu() * 3).sum().backward()
    assert on_fake(w.grad) and w.grad.tolist() == [3.0, 3.0]


def test_mixing_devices_is_a_clear_error(fake_cuda):
    g = taiji.ones(3, device="cuda")
    c = taiji.ones(3)
    for f in (lambda: g + c, lambda: c * g, lambda: taiji.matmul(g[None], c[:, None]),
              lambda: taiji.where(c > 0, g, g), lambda: taiji.cat([g, c])):
        with pytest.raises(RuntimeError) as ei:
            f()
        msg = str(ei.value)
        assert "Expected all tensors to be on the same device, but found at least two " \
               "devices, cuda:0 and cpu!" in msg
        assert ".to(device)" in msg
    # CPU scalars (0-d) join, as in PyTorch; Python scalars follow the tensor
    assert on_fake(g + taiji.tensor(2.0)) and (g + taiji.tensor(2.0)).tolist() == [3.0] * 3
    assert on_fake(taiji.tensor(2.0) * g) and on_fake(g * 2) and on_fake(1 / g)


def test_unavailable_cuda_says_why():
    """Without the fake (and without a GPU here), 'cuda' is refused with the reason."""
    if taiji.cuda.is_available():
        pytest.skip("a GPU is available here")
    assert taiji.cuda.device_count() == 0
    reason = taiji.cuda.unavailable_reason()
    assert "CuPy" in reason
    with pytest.raises(RuntimeError) as ei:
        taiji.zeros(2, device="cuda")
    msg = str(ei.value)
    assert "device 'cuda' was requested, but CUDA is not available here" in msg
    assert "CuPy" in msg and "device='cpu'" in msg
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        taiji.ones(2).cuda()


def test_cuda_module_queries(fake_cuda):
    assert taiji.cuda.is_available() and taiji.cuda.device_count() == 1
    assert taiji.cuda.current_device() == 0
    assert taiji.cuda.get_device_name() == "Fake CUDA device (NumPy)"
    before = fake_cuda.syncs
    taiji.cuda.synchronize()
    assert fake_cuda.syncs == before + 1
    assert taiji.cuda.memory_allocated() >= 0 and taiji.cuda.max_memory_allocated() >= 0
    with taiji.cuda.device(0):
        assert taiji.cuda.current_device() == 0
    taiji.backends.cuda.matmul.allow_tf32 = False
    try:
        assert fake_cuda.tf32 is False
    finally:
        taiji.backends.cuda.matmul.allow_tf32 = True
    assert fake_cuda.tf32 is True


def test_in_place_ops_keep_device_and_buffer(fake_cuda):
    g = taiji.zeros(4, device="cuda")
    buf = g._data
    g.fill_(2.0)
    g.add_(1.0)
    g.uniform_()
    g.normal_()
    g.zero_()
    g.copy_(taiji.arange(4.0))  # a CPU source is moved over
    assert on_fake(g) and g._data is buf and g.tolist() == [0.0, 1.0, 2.0, 3.0]
    g[1:3] = 9.0
    assert on_fake(g) and g.tolist() == [0.0, 9.0, 9.0, 3.0]


def test_generators_per_device(fake_cuda):
    taiji.manual_seed(3)
    a = taiji.randn(5, device="cuda")
    cpu_after = taiji.randn(5)
    taiji.manual_seed(3)
    b = taiji.randn(5, device="cuda")
    assert on_fake(a) and a.tolist() == b.tolist()
    assert taiji.randn(5).tolist() == cpu_after.tolist()  # the CPU stream is its own
    assert on_fake(taiji.random._gen(None, "cuda")._state)
    taiji.cuda.manual_seed(7)
    c = taiji.rand(3, device="cuda")
    taiji.cuda.manual_seed_all(7)
    assert taiji.rand(3, device="cuda").tolist() == c.tolist()
    with taiji.no_grad():
        d = F.dropout(taiji.ones(200, device="cuda"), 0.5, True)
    assert on_fake(d) and set(np.unique(host(d))) <= {0.0, 2.0}


# ---------------------------------------------------------------- modules and optimizers

def test_module_to_moves_parameters_and_buffers(fake_cuda):
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    params = list(m.parameters())
    assert m.cuda() is m
    assert all(on_fake(p) for p in m.parameters()) and list(m.parameters()) == params
    assert all(on_fake(b) for b in m.buffers())
    assert on_fake(m(taiji.randn(2, 3, device="cuda")))
    m.to("cpu")
    assert all(p.device == "cpu" for p in m.parameters())
    m.to(taiji.device("cuda"), taiji.float64)
    assert all(on_fake(p) and p.dtype is taiji.float64 for p in m.parameters())
    assert m[1].num_batches_tracked.dtype is taiji.int64  # ints only move


@pytest.mark.parametrize("case", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_cpu(fake_cuda, case):
    compare_layer(case, "cuda")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_eager_training_matches_cpu_and_keeps_state_on_device(fake_cuda, optimizer):
    ref, pref, _ = train("cpu", compiled=False, optimizer=optimizer)
    got, pgot, _ = train("cuda", compiled=False, optimizer=optimizer)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    for k in pref:
        np.testing.assert_allclose(pgot[k], pref[k], rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip(fake_cuda, tmp_path):
    m = nn.Linear(3, 2).cuda()
    opt = taiji.optim.Adam(m.parameters())
    m(taiji.randn(4, 3, device="cuda")).sum().backward()
    opt.step()
    taiji.save({"model": m.state_dict(), "opt": opt.state_dict()}, tmp_path / "ck.pt")
    ck = taiji.load(tmp_path / "ck.pt")
    m2 = nn.Linear(3, 2).cuda()
    m2.load_state_dict(ck["model"])
    opt2 = taiji.optim.Adam(m2.parameters())
    opt2.load_state_dict(ck["opt"])
    assert all(on_fake(p) for p in m2.parameters())
    np.testing.assert_array_equal(host(m2.weight), host(m.weight))
    assert all(on_fake(v) for st in opt2.state.values() for v in st.values())


# ---------------------------------------------------------------- transforms

def test_grad_vmap_jvp_on_device(fake_cuda):
    x = taiji.randn(4, 3, device="cuda")
    w = taiji.randn(3, device="cuda")
    f = lambda w, x: taiji.tanh(x @ w).sum()
    g = taiji.grad(f)(w, x)
    gc = taiji.grad(f)(w.cpu(), x.cpu())
    assert on_fake(g)
    np.testing.assert_allclose(host(g), host(gc), rtol=1e-6)
    per = taiji.vmap(taiji.grad(f), in_axes=(None, 0))(w, x[:, None])
    assert on_fake(per) and per.shape == (4, 3)
    rows = taiji.vmap(lambda r, i: r[i], in_axes=(0, 0))(x, taiji.tensor([0, 1, 2, 0],
                                                                         device="cuda"))
    assert on_fake(rows)
    np.testing.assert_allclose(host(rows), host(x)[np.arange(4), [0, 1, 2, 0]])
    _, t = taiji.jvp(lambda v: taiji.sin(v) * 2, (w,), (taiji.ones_like(w),))
    assert on_fake(t)
    np.testing.assert_allclose(host(t), 2 * np.cos(host(w)), rtol=1e-6)
    jac = taiji.jacrev(lambda v: v * v)(w)
    assert on_fake(jac) and np.allclose(host(jac), np.diag(2 * host(w)))


def test_indexing_on_device(fake_cuda):
    x = taiji.arange(12.0, device="cuda").reshape(3, 4)
    for got, want in ((x[[0, 2]], [[0, 1, 2, 3], [8, 9, 10, 11]]),
                      (x[x > 9], [10, 11]), (x[:, 1], [1, 5, 9]),
                      (x.gather(1, taiji.tensor([[0], [1], [3]], device="cuda")),
                       [[0], [5], [11]]),
                      (x.tril(), np.tril(np.arange(12.0).reshape(3, 4)).tolist())):
        assert on_fake(got), got
        assert host(got).tolist() == want
    y = taiji.zeros(5, device="cuda").index_add(0, taiji.tensor([0, 0, 4], device="cuda"),
                                                 taiji.ones(3, device="cuda"))
    assert y.tolist() == [2.0, 0.0, 0.0, 0.0, 1.0]


# ---------------------------------------------------------------- jit device programs

def test_jit_training_step_runs_as_a_device_program(fake_cuda):
    ref, pref, _ = train("cpu")
    got, pgot, f = train("cuda", steps=6)
    np.testing.assert_allclose(got[:4], ref, rtol=1e-6)
    prog = next(iter(f._cache.data.values()))[-1].fn  # (the first call has no .grad yet)
    assert type(prog).__name__ == "DeviceProgram" and prog.mode == "graph"
    # run op by op, then captured once (on the second call), then replayed
    assert prog.calls == 5 and fake_cuda.captures >= 1 and fake_cuda.replays >= 3
    ref6, pref6, _ = train("cpu", steps=6)
    for k in pref6:
        np.testing.assert_allclose(pgot[k], pref6[k], rtol=1e-5, atol=1e-6)


def test_jit_cnn_on_device(fake_cuda):
    ref, pref, _ = train("cpu", model=cnn, shape=(4, 1, 8, 8), classes=3, steps=3)
    got, pgot, f = train("cuda", model=cnn, shape=(4, 1, 8, 8), classes=3, steps=3)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    for k in pref:
        np.testing.assert_allclose(pgot[k], pref[k], rtol=1e-4, atol=1e-6)
    # captured: no op of the step reads device values on the host (max pooling's NaN check
    # once did, which a real capture refuses)
    prog = program_of(f)
    assert prog.mode == "graph", prog.fallback_reason


def test_jit_pure_function_and_new_arguments(fake_cuda):
    @taiji.jit
    def f(x, y):
        return taiji.relu(x @ y + 1.0).sum(0), (x * 2).mean()
    xs = [taiji.randn(4, 3, device="cuda") for _ in range(3)]
    y = taiji.randn(3, 2, device="cuda")
    outs = [f(x, y) for x in xs]  # each call copies a new argument into the graph's buffer
    for x, (a, b) in zip(xs, outs):
        assert on_fake(a) and on_fake(b)
        ra, rb = f.fn(x.cpu(), y.cpu())
        np.testing.assert_allclose(host(a), host(ra), rtol=1e-6)
        np.testing.assert_allclose(host(b), host(rb), rtol=1e-6)
    # outputs are the caller's: a later call does not overwrite an earlier result
    np.testing.assert_allclose(host(outs[0][0]), host(f.fn(xs[0].cpu(), y.cpu())[0]))
    assert "device program on cuda" in f.lower(xs[0], y).source
    # the same function on CPU tensors compiles a CPU program (the key knows the device)
    a, _ = f(xs[0].cpu(), y.cpu())
    assert a.device == "cpu"


def test_jit_graph_outputs_are_the_callers(fake_cuda):
    """Replayed programs hand out copies (one staging block) and write state in place; an
    output that is a constant stays a host value."""
    w = taiji.ones(3, device="cuda")

    @taiji.jit
    def f(x):
        w.add_(x)
        return x * 2, w.sum(), taiji.tensor([1.0, 2.0])
    xs = [taiji.full((3,), float(i), device="cuda") for i in range(4)]
    outs = [f(x) for x in xs]
    prog = program_of(f)
    assert prog.mode == "graph" and prog.staging is not None, prog.fallback_reason
    for i, (a, s, c) in enumerate(outs):
        np.testing.assert_allclose(host(a), [2.0 * i] * 3)
        np.testing.assert_allclose(host(s), 3 * (1 + sum(range(i + 1))))
        np.testing.assert_allclose(host(c), [1.0, 2.0])
    np.testing.assert_allclose(host(w), [1 + 0 + 1 + 2 + 3] * 3)


def test_jit_graph_capture_failure_falls_back_with_a_reason(fake_cuda, caplog):
    fake_cuda.fail_capture = "operation not permitted when stream is capturing"
    from taiji.compiler import cache
    old = cache.config.log_compiles
    cache.config.log_compiles = True
    try:
        with caplog.at_level(logging.WARNING, logger="taiji.jit"):
            got, _, f = train("cuda", steps=3)
    finally:
        cache.config.log_compiles = old
    ref, _, _ = train("cpu", steps=3)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    prog = next(iter(f._cache.data.values()))[-1].fn
    assert prog.mode == "plain" and "not permitted" in prog.fallback_reason
    assert "CUDA graph capture failed" in caplog.text


def test_jit_without_graphs(fake_cuda, monkeypatch):
    from taiji.compiler import cuda as C
    monkeypatch.setattr(C.config, "graphs", False)
    got, _, f = train("cuda", steps=3)
    ref, _, _ = train("cpu", steps=3)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert next(iter(f._cache.data.values()))[-1].fn.mode == "plain"


def test_jit_mixing_devices_is_an_error(fake_cuda):
    f = taiji.jit(lambda a, b: a + b)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        f(taiji.ones(3, device="cuda"), taiji.ones(3))


def test_jit_state_rebound_between_calls(fake_cuda):
    """A parameter whose storage is replaced between calls (``p.data = ...``) is read from
    its new value: the graph's buffer is refreshed from it."""
    lin = nn.Linear(3, 1, bias=False).cuda()
    f = taiji.jit(lambda x: lin(x).sum())
    x = taiji.ones(2, 3, device="cuda")
    f(x), f(x)
    lin.weight.data = taiji.full((1, 3), 2.0, device="cuda")
    assert float(f(x)) == 12.0
    lin.weight.data = taiji.full((1, 3), -1.0, device="cuda")
    assert float(f(x)) == -6.0


def test_cpu_state_in_a_device_program(fake_cuda):
    """State the program reads and writes that lives on the CPU (here a CPU generator's
    key) is copied over and back each call: correct, if slower."""
    gen = taiji.Generator()
    gen.manual_seed(1)

    @taiji.jit
    def f(x):
        return x + taiji.rand(3, generator=gen, device="cuda")
    x = taiji.zeros(3, device="cuda")
    a, b = f(x), f(x)
    assert on_fake(a) and a.tolist() != b.tolist()
    assert gen._state.device == "cpu"
    gen.manual_seed(1)
    a2 = taiji.rand(3, generator=gen)
    np.testing.assert_allclose(host(a), host(a2))


def test_jit_composes_with_grad_and_vmap_on_device(fake_cuda):
    w = taiji.randn(3, device="cuda")
    x = taiji.randn(5, 3, device="cuda")
    c = np.arange(3, dtype=np.float32)  # a non-scalar constant baked into the graph

    def f(w, x):
        return taiji.tanh(x @ (w * taiji.tensor(c, device="cuda"))).sum()
    jf = taiji.jit(f)
    g = taiji.grad(jf)(w, x)  # runs the graph op by op with autograd
    assert on_fake(g)
    np.testing.assert_allclose(host(g), host(taiji.grad(f)(w, x)), rtol=1e-6)
    per = taiji.jit(taiji.vmap(taiji.grad(f), in_axes=(None, 0)))(w, x[:, None])
    assert on_fake(per) and per.shape == (5, 3)
    ref = taiji.vmap(taiji.grad(f), in_axes=(None, 0))(w, x[:, None])
    np.testing.assert_allclose(host(per), host(ref), rtol=1e-5)


# ---------------------------------------------------------------- the op registry on the device

def _registry_cases():
    from op_db import OPS
    out = []
    for op in OPS:
        dts = [d for d in op.dtypes if np.dtype(d) == np.float32] or list(op.dtypes[:1]) or \
            list(op.int_dtypes[:1])
        out += [pytest.param(op, d, id=f"{op.name}-{np.dtype(d).name}") for d in dts]
    return out


def _to_cuda(a):
    return taiji.tensor(a, device="cuda")


@pytest.mark.parametrize("op,dtype", _registry_cases())
def test_op_registry_forward_on_device(fake_cuda, op, dtype):
    """Every registered op, on device inputs, against its NumPy reference (the registry's
    own check): impl rules run with the device's array module, unchanged."""
    from op_db import convert
    from test_op_registry import check_forward

    def run(s):
        out = op.fn(taiji, *convert(s.args, _to_cuda), **convert(s.kwargs, _to_cuda))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, taiji.Tensor):
                assert t.device == "cuda:0", f"{op.name}: an output on {t.device}"
        return out
    check_forward(op, dtype, run, label="fake cuda")


def test_cross_entropy_on_device_with_ignored_rows(fake_cuda):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 3, -100, 2, -100, 1])
    for red in ("mean", "sum", "none"):
        got, ref = [], []
        for dev, out in (("cuda", got), ("cpu", ref)):
            zt = taiji.tensor(z, device=dev, requires_grad=True)
            loss = F.cross_entropy(zt, taiji.tensor(y, device=dev), reduction=red)
            loss.sum().backward()
            out += [host(loss), host(zt.grad)]
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    zt = taiji.tensor(z, device="cuda")
    assert np.isnan(float(F.cross_entropy(zt, taiji.full((6,), -100, device="cuda"))))


@pytest.mark.parametrize("op,sample", [pytest.param(o, s, id=i) for o, s, i in
                                       __import__("device_cases").differentiable_samples()])
def test_op_registry_gradients_on_device(fake_cuda, op, sample):
    from device_cases import registry_vjp
    ref = registry_vjp(op, sample, "cpu")
    got = registry_vjp(op, sample, "cuda")
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert (g is None) == (r is None)
        if g is not None:
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def test_setitem_with_cpu_index_tensors(fake_cuda):
    g = taiji.zeros(4, device="cuda")
    g[taiji.tensor([0, 2])] = 1.0  # a CPU index tensor indexes a GPU tensor, as in PyTorch
    g[taiji.tensor([False, True, False, False])] = taiji.tensor(5.0)
    assert on_fake(g) and g.tolist() == [1.0, 5.0, 1.0, 0.0]
    assert g[taiji.tensor([3, 1])].tolist() == [0.0, 5.0]
