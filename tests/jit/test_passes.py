"""Each graph pass alone, on hand-built graphs."""
import numpy as np

import taiji
from taiji._core.ir import Eqn, Graph, Literal, Var, eval_graph
from taiji._core.primitive import ShapedArray
from taiji._prims import elementwise as E, structure as S, linalg as L
from taiji.compiler import passes as P
from taiji.compiler.codegen import compile_graph

F32 = taiji.float32


def v(*shape):
    return Var(ShapedArray(shape, F32))


def lit(x):
    return Literal(np.asarray(x, np.float32))


def run(g, *arrays):
    fn, _ = compile_graph(g, g.plan)
    return fn(*arrays)


def test_dce_removes_unused_equations_only():
    x, a, b = v(3), v(3), v(3)
    g = Graph([x], [Eqn(E.exp, [x], {}, [a]), Eqn(E.neg, [x], {}, [b])], [b])
    out = P.dce(g)
    assert [e.prim.name for e in out.eqns] == ["neg"]
    assert out.header[-1] == "dce (removed 1)"
    out.typecheck()


def test_cse_merges_identical_equations():
    x, a, b, c = v(3), v(3), v(3), v(3)
    g = Graph([x], [Eqn(E.exp, [x], {}, [a]), Eqn(E.exp, [x], {}, [b]),
                    Eqn(E.add, [a, b], {}, [c])], [c])
    out = P.cse(g)
    assert out.count("exp") == 1
    assert out.eqns[-1].inputs[0] is out.eqns[-1].inputs[1]
    np.testing.assert_allclose(run(out, np.ones(3, np.float32))[0], 2 * np.e, rtol=1e-6)


def test_cse_respects_params():
    x, a, b = v(2, 3), v(3, 2), v(3, 2)
    g = Graph([x], [Eqn(S.transpose, [x], {"perm": (1, 0)}, [a]),
                    Eqn(S.reshape, [x], {"shape": (3, 2)}, [b])], [a, b])
    assert len(P.cse(g).eqns) == 2


def test_fold_constants_evaluates_constant_subgraphs():
    x, a, b = v(3), v(), v(3)
    g = Graph([x], [Eqn(E.mul, [lit(2.0), lit(3.0)], {}, [a]), Eqn(E.add, [x, a], {}, [b])], [b])
    out = P.fold_constants(g)
    assert len(out.eqns) == 1
    assert isinstance(out.eqns[0].inputs[1], Literal)
    assert float(out.eqns[0].inputs[1].value) == 6.0


def test_simplify_identities():
    x, a, b, c, d = v(2, 3), v(2, 3), v(2, 3), v(3, 2), v(2, 3)
    g = Graph([x], [Eqn(E.mul, [x, lit(1.0)], {}, [a]),
                    Eqn(E.add, [a, lit(0.0)], {}, [b]),
                    Eqn(S.transpose, [b], {"perm": (1, 0)}, [c]),
                    Eqn(S.transpose, [c], {"perm": (1, 0)}, [d])], [d])
    out = P.dce(P.simplify(g))
    assert out.eqns == [] and out.outputs[0] is x


def test_simplify_keeps_broadcasting_identities_honest():
    x, a = v(3), v(2, 3)  # x + zeros(2, 3) broadcasts: not an identity
    g = Graph([x], [Eqn(E.add, [x, Literal(np.zeros((2, 3), np.float32))], {}, [a])], [a])
    assert len(P.simplify(g).eqns) == 1


def test_simplify_transposed_matmul_becomes_contiguous_product():
    a, b, m, t = v(4, 3), v(3, 5), v(4, 5), v(5, 4)
    g = Graph([a, b], [Eqn(L.matmul, [a, b], {}, [m]),
                       Eqn(S.transpose, [m], {"perm": (1, 0)}, [t])], [t])
    out = P.dce(P.simplify(g))
    out.typecheck()
    assert out.count("matmul") == 1 and out.eqns[-1].prim.name == "matmul"
    A = np.random.rand(4, 3).astype(np.float32)
    B = np.random.rand(3, 5).astype(np.float32)
    r = run(out, A, B)[0]
    np.testing.assert_allclose(r, (A @ B).T, rtol=1e-6)
    assert r.flags.c_contiguous


def test_plan_memory_reuses_dead_buffers_and_keeps_outputs_fresh():
    x = v(8)
    vs = [v(8) for _ in range(4)]
    eqns = [Eqn(E.exp, [x], {}, [vs[0]]), Eqn(E.neg, [vs[0]], {}, [vs[1]]),
            Eqn(E.exp, [vs[1]], {}, [vs[2]]), Eqn(E.neg, [vs[2]], {}, [vs[3]])]
    g = P.plan_memory(Graph([x], eqns, [vs[3]]))
    assert id(vs[3]) not in g.plan  # returned to the caller: fresh each run
    assert g.plan[id(vs[0])] is g.plan[id(vs[2])]  # vs[0] is dead when vs[2] is made
    assert "1 reused" in g.header[-1]
    a = np.linspace(-1, 1, 8).astype(np.float32)
    r1 = run(g, a)[0]
    np.testing.assert_allclose(r1, -np.exp(-np.exp(a)), rtol=1e-6)
    r2 = run(g, a)[0]
    assert r1 is not r2


def test_plan_memory_respects_views():
    x, a, b, c = v(2, 3), v(2, 3), v(3, 2), v(3, 2)
    eqns = [Eqn(E.exp, [x], {}, [a]), Eqn(S.transpose, [a], {"perm": (1, 0)}, [b]),
            Eqn(E.neg, [b], {}, [c])]
    g = P.plan_memory(Graph([x], eqns, [b, c]))
    assert id(a) not in g.plan  # its view b escapes, so a's storage cannot be reused
    X = np.ones((2, 3), np.float32)
    b1, _ = run(g, X)
    run(g, 2 * X)
    np.testing.assert_allclose(b1, np.e, rtol=1e-6)


def test_eval_graph_rebinds_for_autograd():
    x, a, b = v(3), v(3), v(3)
    g = Graph([x], [Eqn(E.exp, [x], {}, [a]), Eqn(E.mul, [a, x], {}, [b])], [b])
    t = taiji.tensor([0.0, 1.0, 2.0], requires_grad=True)
    (out,) = eval_graph(g, [t])
    out.sum().backward()
    xs = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(t.grad.numpy(), np.exp(xs) * (1 + xs), rtol=1e-6)


def test_typecheck_catches_bad_graphs():
    import pytest
    x, a = v(3), v(4)
    with pytest.raises(TypeError, match="declared f32\\[4\\]"):
        Graph([x], [Eqn(E.exp, [x], {}, [a])], [a]).typecheck()
    y = v(3)
    with pytest.raises(TypeError, match="before it is defined"):
        Graph([x], [Eqn(E.exp, [y], {}, [v(3)])], []).typecheck()


def test_simplify_divides_by_a_scalar_once():
    x, s, o = v(8), v(), v(8)
    g = P.simplify(Graph([x, s], [Eqn(E.div, [x, s], {}, [o])], [o]))
    g.typecheck()
    assert [e.prim.name for e in g.eqns] == ["div", "mul"] and g.eqns[0].outputs[0].shape == ()
    a = np.linspace(1, 2, 8).astype(np.float32)
    np.testing.assert_allclose(run(g, a, np.float32(3.0))[0], a / 3, rtol=1e-6)


# ---------------------------------------------------------------- cross-entropy merge

def _xent_step():
    from taiji import nn
    taiji.manual_seed(0)
    model = nn.Linear(6, 4)

    def step(x, y):
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y, ignore_index=2)
        loss.backward()
        return loss
    return model, step


def test_merge_softmax_xent_binds_one_primitive_with_the_same_results():
    model, step = _xent_step()
    x = taiji.randn(300, 6)  # >= 128 rows: the column-reduction path of the impl
    y = taiji.tensor(np.arange(300) % 4)  # every fourth label is the ignored class
    eager = step(x, y)
    g_eager = model.weight.grad.numpy().copy()
    jitted = taiji.jit(step)
    text = jitted.lower(x, y).as_text()
    assert "softmax_cross_entropy_with_grad" in text and "softmax_cross_entropy_grad(" not in text
    loss = jitted(x, y)
    np.testing.assert_array_equal(loss.detach().numpy(), eager.detach().numpy())
    np.testing.assert_array_equal(model.weight.grad.numpy(), g_eager)


def test_merged_xent_matches_pytorch_and_skips_ignored_rows():
    torch = __import__("pytest").importorskip("torch")
    from taiji._prims.nn import softmax_xent_with_grad
    rng = np.random.default_rng(1)
    for n in (5, 200):
        z = rng.standard_normal((n, 10)).astype(np.float32)
        y = rng.integers(0, 10, n)
        y[::3] = -100
        for red in ("mean", "sum", "none"):
            g = np.float32(0.5) if red != "none" else rng.random(n).astype(np.float32)
            loss, d = softmax_xent_with_grad.impl(np, z, y, np.asarray(g), ignore_index=-100,
                                                  reduction=red)
            tz = torch.tensor(z, requires_grad=True)
            tl = torch.nn.functional.cross_entropy(tz, torch.tensor(y), reduction=red)
            tl.backward(torch.tensor(g))
            np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(d, tz.grad.numpy(), rtol=1e-5, atol=1e-7)
            assert d[::3].max() == 0 and d[::3].min() == 0


def test_merged_xent_vjp_is_the_sum_of_both_parts():
    from taiji._prims.nn import softmax_xent, softmax_xent_grad, softmax_xent_with_grad
    z0 = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    y = taiji.tensor([0, 2, 1, 2])
    p = dict(ignore_index=-100, reduction="mean")

    def merged(z):
        loss, d = softmax_xent_with_grad(z, y, taiji.tensor(1.0), **p)
        return loss * 2 + (d * d).sum()

    def separate(z):
        return softmax_xent(z, y, **p) * 2 + (softmax_xent_grad(z, y, taiji.tensor(1.0), **p) ** 2).sum()
    ga = taiji.grad(merged)(taiji.tensor(z0))
    gb = taiji.grad(separate)(taiji.tensor(z0))
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-6)


def test_merge_waits_when_the_cotangent_comes_after_the_loss():
    from taiji._prims.nn import softmax_xent, softmax_xent_grad
    z, yv, loss, g, d = v(4, 3), Var(ShapedArray((4,), taiji.int64)), v(), v(), v(4, 3)
    p = dict(ignore_index=-100, reduction="mean")
    g_ = Graph([z, yv], [Eqn(softmax_xent, [z, yv], p, [loss]),
                         Eqn(E.mul, [loss, lit(2.0)], {}, [g]),  # g depends on the loss
                         Eqn(softmax_xent_grad, [z, yv, g], p, [d])], [d])
    assert [e.prim.name for e in P.merge_softmax_xent(g_).eqns] == [
        "softmax_cross_entropy", "mul", "softmax_cross_entropy_grad"]


# ---------------------------------------------------------------- 0-d arithmetic

def test_scalar_arithmetic_runs_on_numpy_scalars_with_float32_results():
    f = taiji.jit(lambda x, s: x * ((s + 1) ** 1.5 / 3 - s).sqrt())
    x, s = taiji.ones(3), taiji.tensor(2.0)
    src = f.lower(x, s).source
    assert "+ _c" in src and "**" in src  # operators, not ufunc calls, for the 0-d chain
    s32 = np.float32(2.0)
    want = np.sqrt((s32 + np.float32(1)) ** np.float32(1.5) / np.float32(3) - s32)
    out = f(x, s)
    assert out.dtype == taiji.float32
    np.testing.assert_array_equal(out.numpy(), np.full(3, want, np.float32))
    r = taiji.jit(lambda s: s * 2 + 1)(s)  # a 0-d result comes back as a mutable 0-d array
    assert type(r._data) is np.ndarray and r.item() == 5.0
    r.add_(1)
    assert r.item() == 6.0


def test_merged_xent_jvp_and_vmap_agree_with_the_separate_primitives():
    from taiji._prims.nn import softmax_xent, softmax_xent_grad, softmax_xent_with_grad
    rng = np.random.default_rng(4)
    z, t = (taiji.tensor(rng.standard_normal((3, 4, 5)).astype(np.float32)) for _ in range(2))
    y = taiji.tensor(rng.integers(0, 5, (3, 4)))
    p = dict(ignore_index=-100, reduction="mean")
    one = taiji.tensor(1.0)

    def merged(z, y):
        return softmax_xent_with_grad(z, y, one, **p)

    def separate(z, y):
        return softmax_xent(z, y, **p), softmax_xent_grad(z, y, one, **p)
    for a, b in zip(taiji.vmap(merged)(z, y), taiji.vmap(separate)(z, y)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    _, ta = taiji.jvp(lambda z: merged(z, y[0]), (z[0],), (t[0],))
    _, tb = taiji.jvp(lambda z: separate(z, y[0]), (z[0],), (t[0],))
    for a, b in zip(ta, tb):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def test_plan_writes_a_region_over_the_product_it_reads_when_that_dies():
    def f(x, w, b):
        return (taiji.relu(x @ w + b) * 2.0 - 1.0) @ w.T

    rng = np.random.default_rng(5)
    x, w, b = (taiji.tensor(rng.standard_normal(s).astype(np.float32))
               for s in ((6, 5), (5, 4), (4,)))
    jf = taiji.jit(f)
    g = jf.lower(x, w, b).graph
    over = [b_ for b_ in g.plan.values() if isinstance(b_, tuple) and b_[0] == "in"]
    assert len(over) == 1 and over[0][1] is g.eqns[0].outputs[0]  # the product's buffer
    for _ in range(2):  # (the second run reuses the buffers)
        np.testing.assert_array_equal(jf(x, w, b).numpy(), f(x, w, b).numpy())
    # a product read again later keeps its own buffer
    def h(x, w, b):
        return (taiji.relu(x @ w + b) @ w.T) * (x @ w).sum()

    jg = taiji.jit(h)
    g2 = jg.lower(x, w, b).graph
    assert not [b_ for b_ in g2.plan.values() if isinstance(b_, tuple) and b_[0] == "in"]
    np.testing.assert_allclose(jg(x, w, b).numpy(), h(x, w, b).numpy(), rtol=1e-5)
