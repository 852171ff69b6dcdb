"""taiji.jit: results equal eager, stateful PyTorch-style steps, caching, errors."""
import re

import numpy as np
import pytest

import taiji
from taiji.compiler.api import jit


def test_pure_function_matches_eager_and_caches():
    def f(x, y):
        return (x * 2 + y).relu().sum(1), x.exp()
    jf = jit(f)
    x, y = taiji.randn(3, 4), taiji.randn(4)
    a, b = jf(x, y)
    ea, eb = f(x, y)
    np.testing.assert_allclose(a.numpy(), ea.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), eb.numpy(), rtol=1e-6)
    jf(taiji.randn(3, 4), taiji.randn(4))
    assert len(jf.compile_log) == 1
    jf(taiji.randn(5, 4), taiji.randn(4))
    assert len(jf.compile_log) == 2
    assert "argument leaf 0 changed" in jf.compile_log[1][0]
    assert "float32[3, 4] -> float32[5, 4]" in jf.compile_log[1][0]


def test_outputs_are_fresh_between_calls():
    jf = jit(lambda x: x * 3 + 1)
    a = jf(taiji.ones(4))
    b = jf(taiji.zeros(4))
    np.testing.assert_array_equal(a.numpy(), np.full(4, 4.0))
    np.testing.assert_array_equal(b.numpy(), np.ones(4))


def test_pytree_arguments_and_outputs_and_static():
    @jit
    def f(d, scale):
        return {"s": d["a"] * scale + d["b"][0], "n": scale}
    out = f({"a": taiji.ones(2), "b": [taiji.ones(2)]}, 3)
    np.testing.assert_array_equal(out["s"].numpy(), [4.0, 4.0])
    assert out["n"] == 3


def test_static_argnums_values_key_the_cache():
    @jit
    def f(x, n):
        return x.reshape(n, -1).sum(0)
    g = jit(f.fn, static_argnums=1)
    np.testing.assert_array_equal(g(taiji.arange(6.0), 2).numpy(), [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(g(taiji.arange(6.0), 3).numpy(), [6.0, 9.0])
    assert len(g.compile_log) == 2


def test_python_floats_are_traced_not_baked():
    jf = jit(lambda x, s: x * s)
    np.testing.assert_allclose(jf(taiji.ones(2), 0.5).numpy(), [0.5, 0.5])
    np.testing.assert_allclose(jf(taiji.ones(2), 2.0).numpy(), [2.0, 2.0])
    assert len(jf.compile_log) == 1


def _model(seed=0):
    taiji.manual_seed(seed)
    w1 = taiji.randn(8, 16) * 0.3
    w2 = taiji.randn(16, 4) * 0.3
    return [w1.requires_grad_(), taiji.zeros(16, requires_grad=True),
            w2.requires_grad_(), taiji.zeros(4, requires_grad=True)]


def _sgd_step(params, x, y, lr=0.05):
    w1, b1, w2, b2 = params
    for p in params:
        p.grad = None
    h = (x @ w1 + b1).relu()
    loss = -(h @ w2 + b2).log_softmax(1).gather(1, y.unsqueeze(1)).mean()
    loss.backward()
    with taiji.no_grad():
        for p in params:
            p.sub_(lr * p.grad)
    return loss


def test_stateful_training_step_matches_eager_for_100_steps():
    rng = np.random.default_rng(0)
    xs = taiji.tensor(rng.standard_normal((32, 8)).astype(np.float32))
    ys = taiji.tensor(rng.integers(0, 4, 32))
    pe, pj = _model(), _model()
    step = jit(lambda x, y: _sgd_step(pj, x, y))
    for i in range(100):
        le = _sgd_step(pe, xs, ys)
        lj = step(xs, ys)
        assert abs(float(le) - float(lj)) < 1e-5, i
    for a, b in zip(pe, pj):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-5)
    assert len(step.compile_log) <= 2  # first call: .grad absent; later: present
    pred_e = ((xs @ pe[0] + pe[1]).relu() @ pe[2] + pe[3]).argmax(1)
    pred_j = ((xs @ pj[0] + pj[1]).relu() @ pj[2] + pj[3]).argmax(1)
    assert (pred_e == pred_j).all()


def test_parameter_buffers_are_updated_in_place():
    params = _model()
    w_view = params[0].detach()  # shares storage, like a PyTorch user's reference
    before = w_view.numpy().copy()
    step = jit(lambda x, y: _sgd_step(params, x, y))
    step(taiji.randn(4, 8), taiji.tensor([0, 1, 2, 3]))
    assert not np.allclose(before, w_view.numpy())
    np.testing.assert_array_equal(w_view.numpy(), params[0].detach().numpy())


def test_global_rng_is_implicit_state():
    @jit
    def noisy(x):
        return x + taiji.randn(3)
    taiji.manual_seed(5)
    a = noisy(taiji.zeros(3))
    b = noisy(taiji.zeros(3))
    assert not np.allclose(a.numpy(), b.numpy())
    taiji.manual_seed(5)
    ea = taiji.zeros(3) + taiji.randn(3)
    np.testing.assert_allclose(a.numpy(), ea.numpy(), rtol=1e-6)


def test_lower_shows_graph_source_and_cost():
    f = jit(lambda x, w: (x @ w).relu())
    low = f.lower(taiji.ones(2, 3), taiji.ones(3, 4))
    text = low.as_text()
    assert "def f(" in text and "matmul(t0, t1)  # f32[2,4]" in text
    assert "# pass: dce" in text and "# pass: plan_memory" in text
    assert "_np.matmul" in low.source
    cost = low.cost_analysis()
    assert cost["flops"] == 2 * 2 * 3 * 4 + 8
    compile(text.split("# pass")[-1].split("\n", 1)[1], "<graph>", "exec")  # valid Python


def test_control_flow_on_tracer_names_user_line():
    @jit
    def f(x):
        if x.sum() > 0:
            return x
        return -x
    with pytest.raises(taiji.TracerError) as ei:
        f(taiji.ones(2))
    msg = str(ei.value)
    assert "bool()" in msg and "taiji.cond" in msg and "static_argnums" in msg
    assert re.search(r"test_jit\.py:\d+", msg)


@pytest.mark.parametrize("what", ["item", "numpy", "float"])
def test_concrete_conversions_on_tracer_fail(what):
    ops = {"item": lambda t: t.item(), "numpy": lambda t: t.numpy(),
           "float": lambda t: float(t)}

    @jit
    def f(x):
        ops[what](x.sum())
        return x
    with pytest.raises(taiji.TracerError, match=r"needs a concrete value"):
        f(taiji.ones(2))


def test_escaped_tracer_is_reported_where_it_was_made():
    leak = []

    @jit
    def f(x):
        y = x * 2
        leak.append(y)
        return y
    f(taiji.ones(2))
    with pytest.raises(taiji.TracerError, match=r"escaped its trace") as ei:
        leak[0] + 1
    assert "test_jit.py" in str(ei.value)


def test_static_argument_errors():
    f = jit(lambda x, n: x * n, static_argnums=1)
    with pytest.raises(TypeError, match="must be hashable"):
        f(taiji.ones(2), [1, 2])
    with pytest.raises(TypeError, match="tensors are traced"):
        f(taiji.ones(2), taiji.ones(2))
    g = jit(lambda x: x, static_argnums=2)
    with pytest.raises(TypeError, match=r"static_argnums includes 2.*1 positional"):
        g(taiji.ones(2))


def test_cache_is_bounded_lru():
    from taiji.compiler.cache import config
    old = config.cache_size
    config.cache_size = 2
    try:
        f = jit(lambda x: x + 1)
        for n in (1, 2, 3, 1):
            f(taiji.ones(n))
        assert len(f._cache) == 2 and f._cache.evictions == 2
        assert len(f.compile_log) == 4  # n=1 was evicted and compiled again
    finally:
        config.cache_size = old


def test_log_compiles(caplog):
    from taiji.compiler.cache import config
    config.log_compiles = True
    try:
        with caplog.at_level("INFO", logger="taiji.jit"):
            jit(lambda x: x * 2)(taiji.ones(3))
    finally:
        config.log_compiles = False
    assert any("compiled" in r.message and "first call" in r.message for r in caplog.records)


def test_nested_jit_inlines():
    inner = jit(lambda x: x * 2)
    outer = jit(lambda x: inner(x) + 1)
    np.testing.assert_array_equal(outer(taiji.ones(2)).numpy(), [3.0, 3.0])


def test_differentiable_when_called_with_grad_inputs():
    f = jit(lambda x: (x * x).sum())
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    y = f(x)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_replacing_a_module_attribute_recompiles_the_step():
    from taiji import nn
    taiji.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = taiji.optim.SGD(model.parameters(), lr=0.1)

    @jit
    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    x, y = taiji.randn(16, 4), taiji.tensor(np.arange(16) % 2)
    step(x, y)
    step(x, y)
    n = len(step.compile_log)
    for _ in range(3):  # a plain training loop never recompiles
        step(x, y)
    assert len(step.compile_log) == n
    model[2] = nn.Linear(8, 2)            # a new head, as when fine-tuning
    opt = taiji.optim.SGD(model.parameters(), lr=0.1)
    new0 = model[2].weight.detach().numpy().copy()
    with taiji.no_grad():
        want = nn.functional.cross_entropy(model(x), y).item()
    got = step(x, y).item()               # the loss of the new model, before its update
    assert "replaced" in step.compile_log[-1][0]
    assert abs(got - want) < 1e-6
    assert not np.array_equal(model[2].weight.detach().numpy(), new0)  # the new head trains
    step(x, y)  # (.grad now exists for the new head: one more variant, as on the first steps)
    n = len(step.compile_log)
    step(x, y)
    assert len(step.compile_log) == n


def test_the_repeat_call_path_still_notices_every_signature_change():
    # a training loop's call skips building the cache key when nothing changed since the last
    # call: any change of an argument's dtype, shape, requires_grad or of grad mode must still
    # take the full lookup
    f = taiji.jit(lambda x: x * 2.0 + 1.0)
    x = taiji.ones(3)
    for _ in range(3):
        np.testing.assert_array_equal(f(x).numpy(), [3.0, 3.0, 3.0])
    assert len(f.compile_log) == 1
    np.testing.assert_array_equal(f(taiji.ones(4)).numpy(), [3.0] * 4)  # shape
    assert f(taiji.ones(3, dtype=taiji.float64)).dtype == taiji.float64  # dtype
    xg = taiji.ones(3, requires_grad=True)
    out = f(xg)                                                         # requires_grad
    out.sum().backward()
    np.testing.assert_array_equal(xg.grad.numpy(), [2.0, 2.0, 2.0])
    with taiji.no_grad():                                               # grad mode
        assert not f(xg).requires_grad
    assert len(f.compile_log) == 5
    assert f(x).shape == (3,) and len(f.compile_log) == 5  # back to the first: no compile


def test_a_registered_buffer_replaced_under_a_compiled_function_recompiles():
    m = taiji.nn.Module()
    m.register_buffer("scale", taiji.tensor([2.0, 2.0]))
    f = jit(lambda x: x * m.scale)
    np.testing.assert_array_equal(f(taiji.ones(2)).numpy(), [2.0, 2.0])
    m.register_buffer("scale", taiji.tensor([3.0, 3.0]))  # not m.scale = ...: the same path
    np.testing.assert_array_equal(f(taiji.ones(2)).numpy(), [3.0, 3.0])
    assert "replaced" in f.compile_log[-1][0]


def test_rebinding_a_global_or_closure_variable_retraces():
    """A name the function reads, rebound to a new tensor, module, optimizer or helper
    function, is seen at the next call (as in eager mode and torch.compile); Python numbers
    stay baked into the trace, as in JAX."""
    from taiji import nn
    ns = {"taiji": taiji, "nn": nn}
    exec(  # (module-level globals, as in a script)
        "w = taiji.tensor([1.0, 2.0])\n"
        "scale = 2.0\n"
        "def helper(v):\n"
        "    return v * 3\n"
        "def f(x):\n"
        "    return (helper(x) * w).sum() * scale\n"
        "model = nn.Linear(2, 1, bias=False)\n"
        "def g(x):\n"
        "    return model(x).sum()\n", ns)
    f, g = jit(ns["f"]), jit(ns["g"])
    x = taiji.tensor([1.0, 1.0])
    assert float(f(x)) == 18.0 and float(f(x)) == 18.0 and len(f.compile_log) == 1
    ns["w"] = taiji.tensor([10.0, 20.0])
    assert float(f(x)) == 180.0
    assert f.compile_log[-1][0] == "global 'w', which the function reads, was rebound"
    ns["helper"] = lambda v: v * 5
    assert float(f(x)) == 300.0 and "global 'helper'" in f.compile_log[-1][0]
    ns["scale"] = 4.0  # a number: baked in, not tracked
    assert float(f(x)) == 300.0 and len(f.compile_log) == 3
    before = float(g(x))
    ns["model"] = nn.Linear(2, 1, bias=False)
    with taiji.no_grad():
        ns["model"].weight.copy_(taiji.tensor([[7.0, 8.0]]))
    assert float(g(x)) == 15.0 != before and "global 'model'" in g.compile_log[-1][0]

    def make():
        w = taiji.tensor([1.0, 1.0])

        @jit
        def h(x):
            return (x * w).sum()

        def rebind(t):
            nonlocal w
            w = t
        return h, rebind
    h, rebind = make()
    assert float(h(x)) == 2.0 and float(h(x)) == 2.0
    rebind(taiji.tensor([5.0, 5.0]))
    assert float(h(x)) == 10.0
    assert h.compile_log[-1][0] == "closure variable 'w', which the function reads, was rebound"
    n = len(h.compile_log)
    for _ in range(3):  # nothing rebound: no retrace
        h(x)
    assert len(h.compile_log) == n


def test_a_compiled_run_delivers_mutations_grads_and_a_tree_of_outputs():
    w = taiji.ones(3, requires_grad=True)
    total = taiji.zeros(3)
    storage = total._data

    def step(x):
        loss = (w * x).sum()
        loss.backward()
        with taiji.no_grad():
            total.add_(w.grad)
        return loss, {"double": loss * 2}

    f = taiji.jit(step)
    v0 = total._version
    for i in range(3):
        w.grad = None
        loss, extra = f(taiji.full((3,), 2.0))
        assert float(loss) == 6.0 and float(extra["double"]) == 12.0
    assert total._data is storage  # updated in place: views and references see it
    np.testing.assert_array_equal(total.numpy(), [6.0, 6.0, 6.0])
    assert total._version == v0 + 3  # one bump per run, as one in-place op each
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0, 2.0])
    assert w.grad._data is not storage and not w.grad.requires_grad
