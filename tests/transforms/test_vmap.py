"""vmap against a Python loop: ops, nesting, in/out axes, random keys, errors."""
import numpy as np
import pytest

import taiji
import taiji.numpy as jnp
from taiji import vmap, grad
from taiji._core.primitive import PRIMITIVES, Primitive

RNG = np.random.default_rng(1)
A = RNG.standard_normal((5, 3, 4)).astype(np.float32)
B = RNG.standard_normal((5, 4)).astype(np.float32)
IDX = RNG.integers(0, 4, size=(5, 3))


def loop(f, *args, in_axes=0):
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    n = next(a.shape[ax] for a, ax in zip(args, axes) if ax is not None)
    outs = [f(*[taiji.tensor(a) if ax is None else taiji.tensor(np.take(a, i, axis=ax))
                for a, ax in zip(args, axes)]) for i in range(n)]
    return np.stack([o.numpy() for o in outs])


ONE_ARG = {
    "elementwise": lambda x: x.exp() * x.sin() - x.abs().sqrt(),
    "bcast_const": lambda x: x * taiji.arange(4.0) + 1.0,
    "reduce": lambda x: x.sum(0) + x.amax(1)[:1] + x.mean() + x.prod(-1).sum(),
    "argmax": lambda x: x.argmax(1),
    "argmax_all": lambda x: x.argmax(),
    "matmul_self": lambda x: x @ x.mT,
    "matvec": lambda x: x @ taiji.ones(4),
    "index_int": lambda x: x[1],
    "index_slice": lambda x: x[:, 1:3] + x[::2, 1:][:, :2].sum(),
    "index_adv": lambda x: x[taiji.tensor([2, 0, 0])],
    "index_both": lambda x: x[taiji.tensor([0, 2]), taiji.tensor([1, 3])],
    "concat": lambda x: taiji.cat([x, taiji.zeros(3, 1)], 1),
    "stack": lambda x: taiji.stack([x, x * 2], 1),
    "softmax": lambda x: taiji.softmax(x, -1) + taiji.log_softmax(x, 0),
    "cumsum_cumprod": lambda x: taiji.cumsum(x, 1) + taiji.cumprod(x, 0),
    "sort": lambda x: taiji.sort(x, 1).values,
    "argsort": lambda x: taiji.argsort(x, 0),
    "topk": lambda x: taiji.topk(x, 2, 1).values,
    "reshape_permute": lambda x: x.reshape(2, 6).t().reshape(4, 3).flip(0),
    "pad_roll": lambda x: taiji.roll(x, 1, 1) + x.flip(1),
    "where": lambda x: taiji.where(x > 0, x, taiji.zeros(())),
    "einsum": lambda x: taiji.einsum("ij,ik->jk", x, x),
    "expand": lambda x: x[:, None, :].expand(3, 2, 4),
    "cast": lambda x: (x * 10).long() % 3,
    "compare": lambda x: (x > 0) & (x < 1),
    "scatter_add": lambda x: taiji.zeros(3, 4).scatter_add(1, taiji.tensor([[0, 0, 1, 2]] * 3), x),
    "index_add": lambda x: taiji.zeros(4, 4).index_add(0, taiji.tensor([0, 0, 3]), x),
    "masked_fill": lambda x: x.masked_fill(x < 0, 0.0),
    "setitem": lambda x: _setitem(x),
    "tril_var": lambda x: taiji.tril(x) + x.var(1, keepdim=True),
    "jnp": lambda x: jnp.clip(jnp.take(x, jnp.array([-1, 0]), axis=1), -0.5, 0.5),
    "at_set": lambda x: x.at[0, 1].set(5.0),
}


def _setitem(x):
    y = x.clone()
    y[0] = x[1] * 2
    return y


@pytest.mark.parametrize("name", sorted(ONE_ARG))
def test_vmap_matches_loop(name):
    f = ONE_ARG[name]
    got = vmap(f)(taiji.tensor(A)).numpy()
    ref = loop(f, A)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


TWO_ARG = {
    "add_bcast": (lambda x, v: x + v, (0, 0)),
    "matmul": (lambda x, v: x @ v, (0, 0)),
    "matmul_unbatched_rhs": (lambda x, v: x @ v, (0, None)),
    "matmul_unbatched_lhs": (lambda x, v: x @ v, (None, 0)),
    "concat": (lambda x, v: taiji.cat([x, v[None]], 0), (0, 0)),
    "where": (lambda x, v: taiji.where(x > 0, x, v), (0, None)),
    "einsum": (lambda x, v: taiji.einsum("ij,j->i", x, v), (1, 0)),
    "outer": (lambda x, v: jnp.outer(x.sum(0), v), (2, 0)),
}


@pytest.mark.parametrize("name", sorted(TWO_ARG))
def test_vmap_two_args_matches_loop(name):
    f, axes = TWO_ARG[name]
    a = A if axes[0] != 1 else np.moveaxis(A, 0, 1).copy()
    a = a if axes[0] != 2 else np.moveaxis(A, 0, 2).copy()
    if axes[0] is None:
        a = A[0]
    b = B if axes[1] is not None else B[0]
    got = vmap(f, in_axes=axes)(taiji.tensor(a), taiji.tensor(b)).numpy()
    np.testing.assert_allclose(got, loop(f, a, b, in_axes=axes), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["x_batched", "idx_batched", "both"])
def test_vmap_gather_take(case):
    x, idx = taiji.tensor(A), taiji.tensor(IDX)
    axes = {"x_batched": (0, None), "idx_batched": (None, 0), "both": (0, 0)}[case]
    xa = A if axes[0] == 0 else A[0]
    ia = IDX if axes[1] == 0 else IDX[0]
    f1 = lambda x, i: x[:, i]                       # take along axis 1
    f2 = lambda x, i: taiji.gather(x, 1, i[:, None].expand(3, 2))
    f3 = lambda x, i: jnp.take_along_axis(x, i[:, None], axis=1)
    for f in (f1, f2, f3):
        got = vmap(f, in_axes=axes)(taiji.tensor(xa), taiji.tensor(ia)).numpy()
        np.testing.assert_allclose(got, loop(f, xa, ia, in_axes=axes), rtol=1e-6)
    del x, idx


def test_nested_vmap_and_out_axes():
    f = lambda x, y: (x * y).sum()
    X, Y = taiji.tensor(A[:, 0]), taiji.tensor(B)  # (5, 4) each
    got = vmap(vmap(f, in_axes=(None, 0)), in_axes=(0, None))(X, Y).numpy()
    np.testing.assert_allclose(got, A[:, 0] @ B.T, rtol=1e-5)
    got = vmap(vmap(f, in_axes=(None, 0)), in_axes=(0, None), out_axes=1)(X, Y).numpy()
    np.testing.assert_allclose(got, (A[:, 0] @ B.T).T, rtol=1e-5)
    r = vmap(lambda x: (x, x.sum()), out_axes=(1, None if False else 0))(taiji.tensor(A))
    assert r[0].shape == (3, 5, 4) and r[1].shape == (5,)
    np.testing.assert_allclose(r[0].numpy(), np.moveaxis(A, 0, 1))


def test_in_axes_pytrees_none_and_kwargs():
    def f(p, x, scale=1.0):
        return (x @ p["w"] + p["b"]) * scale
    p = {"w": taiji.tensor(RNG.standard_normal((4, 2)).astype(np.float32)),
         "b": taiji.tensor(RNG.standard_normal((5, 2)).astype(np.float32))}
    got = vmap(f, in_axes=({"w": None, "b": 0}, 0))(p, taiji.tensor(B)).numpy()
    ref = B @ p["w"].numpy() + p["b"].numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    got = vmap(lambda x, y: x - y, in_axes=(0, None))(taiji.tensor(B), taiji.tensor(B[0]))
    np.testing.assert_allclose(got.numpy(), B - B[0])
    got = vmap(lambda x, *, s: x * s)(taiji.tensor(B), s=taiji.arange(5.0))
    np.testing.assert_allclose(got.numpy(), B * np.arange(5.0)[:, None])


def test_unbatched_output_is_broadcast_and_axis_size():
    c = taiji.tensor([1.0, 2.0])
    out = vmap(lambda x: c, in_axes=0)(taiji.tensor(B))
    np.testing.assert_allclose(out.numpy(), np.tile([1.0, 2.0], (5, 1)))
    out = vmap(lambda: taiji.ones(2), in_axes=(), axis_size=3)()
    assert out.shape == (3, 2)
    out = vmap(lambda x: x.sum(), out_axes=None, in_axes=None, axis_size=2)(taiji.tensor(B))
    assert out.shape == ()


def test_negative_axes():
    got = vmap(lambda x: x.sum(0), in_axes=-1, out_axes=-1)(taiji.tensor(A))
    np.testing.assert_allclose(got.numpy(), A.sum(0), rtol=1e-5)
    got = vmap(lambda x: x.sum(0), in_axes=1, out_axes=0)(taiji.tensor(A))
    np.testing.assert_allclose(got.numpy(), A.sum(0), rtol=1e-5)


def test_vmap_of_grad_with_indexing_and_softmax():
    def loss(w, x, y):
        logits = x @ w
        return -taiji.log_softmax(logits, -1)[y]
    w = taiji.tensor(RNG.standard_normal((4, 3)).astype(np.float32))
    xs = taiji.tensor(B)
    ys = taiji.tensor(np.array([0, 2, 1, 1, 0]))
    per = vmap(grad(loss), in_axes=(None, 0, 0))(w, xs, ys).numpy()
    ref = np.stack([grad(loss)(w, xs[i], ys[i]).numpy() for i in range(5)])
    np.testing.assert_allclose(per, ref, rtol=1e-5, atol=1e-6)


def test_random_keys_eager_equals_vmap():
    keys = taiji.random.split(taiji.random.key(0), 4)
    for draw in (lambda k: taiji.random.normal(k, (3,)),
                 lambda k: taiji.random.uniform(k, (2, 2), minval=-1.0, maxval=2.0),
                 lambda k: taiji.random.split(k, 3),
                 lambda k: taiji.random.bernoulli(k, 0.3, (5,)),
                 lambda k: taiji.random.randint(k, (4,), 0, 10)):
        got = vmap(draw)(keys).numpy()
        ref = np.stack([draw(keys[i]).numpy() for i in range(4)])
        np.testing.assert_array_equal(got, ref)
    a = taiji.random.normal(taiji.random.key(3), (4,)).numpy()
    b = taiji.random.normal(taiji.random.key(3), (4,)).numpy()
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- errors

def test_vmap_inconsistent_sizes_names_arguments():
    def f(x, y):
        return x + y
    with pytest.raises(ValueError, match=r"inconsistent sizes[\s\S]*argument x of type "
                                         r"f32\[3\] has size 3[\s\S]*argument y .* size 4"):
        vmap(f)(taiji.zeros(3), taiji.zeros(4))
    with pytest.raises(ValueError, match=r"argument p\['b'\]"):
        vmap(lambda p: p["a"])({"a": taiji.zeros(3), "b": taiji.zeros(2)})


def test_vmap_spec_errors():
    with pytest.raises(ValueError, match="len\\(in_axes\\)=2, len\\(args\\)=1"):
        vmap(lambda x: x, in_axes=(0, 0))(taiji.zeros(3))
    with pytest.raises(ValueError, match="rank should be at least 1, but is only 0"):
        vmap(lambda x: x)(taiji.tensor(1.0))
    with pytest.raises(ValueError, match="at least one non-None"):
        vmap(lambda x: x, in_axes=None)(taiji.zeros(3))
    with pytest.raises(TypeError, match="in_axes must be an int, None"):
        vmap(lambda x: x, in_axes="0")
    with pytest.raises(ValueError, match="out_axes is None"):
        vmap(lambda x: x, out_axes=None)(taiji.zeros(3))


def test_vmap_control_flow_error():
    from taiji.transforms import ConcretizationError
    def f(x):
        return x if x.sum().item() > 0 else -x
    with pytest.raises(ConcretizationError, match="vmapped axis of size 3.*taiji.where"):
        vmap(f)(taiji.zeros(3, 2))
    r = repr(vmap(lambda x: taiji.tensor(repr(x) == "") if False else x * 0 + len(repr(x)))(
        taiji.zeros(2)))
    assert "tensor" in r


def test_missing_rule_names_the_primitive():
    p = Primitive("test_only_double")
    try:
        p.def_impl(lambda xp, x: x * 2)
        p.def_shape(lambda x: x)
        with pytest.raises(NotImplementedError, match="'test_only_double' has no batch rule"):
            vmap(lambda x: p(x))(taiji.zeros(3, 2))
        with pytest.raises(NotImplementedError, match="'test_only_double' has no jvp rule"):
            taiji.jvp(lambda x: p(x), (taiji.zeros(2),), (taiji.ones(2),))
    finally:
        PRIMITIVES.pop("test_only_double", None)


def test_every_primitive_has_every_rule():
    """Every primitive of the core set (taiji/_prims) has all of its rules. (Control-flow
    primitives owned by taiji.jit are checked by the jit tests.)"""
    missing = []
    for name, p in sorted(PRIMITIVES.items()):
        if not p.impl.__module__.startswith("taiji._prims"):
            continue
        kinds = ["impl", "shape_dtype", "batch"] + ([] if p.nondiff else ["vjp", "jvp"])
        missing += [f"{name}.{k}" for k in kinds if getattr(p, k) is None]
    assert missing == []


def test_take_both_batched_with_negative_and_leading_axes():
    from taiji._prims import structure as S
    x = taiji.tensor(A)                                   # (5, 3, 4)
    idx = taiji.tensor(np.array([[-1, 0], [1, 2], [3, -2], [0, 0], [2, 1]]))  # (5, 2)
    f = lambda x, i: S.take(x, i, axis=1)
    got = vmap(f)(x, idx).numpy()
    ref = np.stack([np.take(A[b], idx.numpy()[b], axis=1) for b in range(5)])
    np.testing.assert_allclose(got, ref)
    got = vmap(f, in_axes=(None, 0))(x[0], idx).numpy()
    np.testing.assert_allclose(got, np.stack([np.take(A[0], r, axis=1) for r in idx.numpy()]))
    got = vmap(lambda v: v.argmax())(taiji.tensor([1.0, 2.0]))
    assert got.tolist() == [0, 0]


def test_index_add_and_scatter_add_batched():
    src = taiji.tensor(A)  # (5, 3, 4)
    f = lambda s, i: taiji.zeros(4, 4).index_add(0, i, s)
    idx = taiji.tensor(np.array([[0, 0, 3], [1, 2, 3], [3, 3, 3], [0, 1, 2], [2, 2, 0]]))
    got = vmap(f)(src, idx).numpy()
    ref = np.stack([f(src[b], idx[b]).numpy() for b in range(5)])
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    g = lambda s, i: taiji.zeros(3, 4).scatter_add(1, i, s)
    idx2 = taiji.tensor(RNG.integers(0, 4, size=(5, 3, 4)))
    got = vmap(g)(src, idx2).numpy()
    ref = np.stack([g(src[b], idx2[b]).numpy() for b in range(5)])
    np.testing.assert_allclose(got, ref, rtol=1e-6)
