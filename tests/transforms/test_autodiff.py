"""grad / value_and_grad / vjp / jvp / jacrev / jacfwd / hessian against analytic answers and
central differences (float64)."""
import numpy as np
import pytest

import taiji
import taiji.numpy as jnp
from taiji import grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian, vmap
from taiji.transforms import linearize

from tests.transforms._helpers import t64, num_jac, num_jvp

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))
POS = np.abs(X) + 0.5


def test_grad_analytic():
    x = t64([1.0, 2.0, 3.0])
    np.testing.assert_allclose(grad(lambda x: (x ** 3).sum())(x).numpy(), 3 * x.numpy() ** 2)
    np.testing.assert_allclose(grad(lambda x: x.sin().sum())(x).numpy(), np.cos(x.numpy()))


def test_grad_of_python_float_and_result_has_no_history():
    g = grad(lambda x: x * x)(3.0)
    assert g.item() == pytest.approx(6.0) and not g.requires_grad


def test_value_and_grad_argnums_and_pytrees():
    def loss(params, x):
        return ((x @ params["w"] + params["b"]) ** 2).sum()
    p = {"w": t64(RNG.standard_normal((4, 2))), "b": t64(RNG.standard_normal(2))}
    x = t64(X)
    v, g = value_and_grad(loss)(p, x)
    r = X @ p["w"].numpy() + p["b"].numpy()
    assert v.item() == pytest.approx((r ** 2).sum())
    np.testing.assert_allclose(g["w"].numpy(), X.T @ (2 * r), rtol=1e-10)
    np.testing.assert_allclose(g["b"].numpy(), (2 * r).sum(0), rtol=1e-10)
    gp, gx = grad(loss, argnums=(0, 1))(p, x)
    np.testing.assert_allclose(gx.numpy(), (2 * r) @ p["w"].numpy().T, rtol=1e-10)
    np.testing.assert_allclose(gp["b"].numpy(), g["b"].numpy())


def test_has_aux_and_unused_input():
    def f(x, y):
        return (x * x).sum(), {"n": x.shape[0], "y": x * 2}
    (v, aux), g = value_and_grad(f, has_aux=True)(t64([1.0, 2.0]), t64(5.0))
    assert v.item() == 5.0 and aux["n"] == 2
    np.testing.assert_allclose(aux["y"].numpy(), [2.0, 4.0])
    assert not aux["y"].requires_grad
    gy = grad(lambda x, y: (x * x).sum(), argnums=1)(t64([1.0]), t64(5.0))
    assert gy.item() == 0.0


def test_higher_order_grad():
    f = lambda x: x ** 4
    x = t64(1.5)
    assert grad(grad(f))(x).item() == pytest.approx(12 * 1.5 ** 2)
    assert grad(grad(grad(f)))(x).item() == pytest.approx(24 * 1.5)


def test_grad_closure_over_requires_grad_parameter_keeps_history():
    w = t64(2.0).requires_grad_()
    g = grad(lambda x: (w * x * x))(t64(3.0))  # 2 w x
    assert g.item() == pytest.approx(12.0)
    (dw,) = taiji.autograd.grad(g, w)  # d(2 w x)/dw = 2x
    assert dw.item() == pytest.approx(6.0)


FUNCS = {
    "tanh_matmul": lambda x: (x @ x.mT).tanh(),
    "softmax": lambda x: taiji.softmax(x, -1),
    "log_softmax": lambda x: taiji.log_softmax(x, 0),
    "index": lambda x: x[1, ::2] * x[:, 0].sum(),
    "gather": lambda x: taiji.gather(x, 1, taiji.tensor([[0, 3], [1, 1], [2, 0]])),
    "reduce": lambda x: taiji.stack([x.max(1).values, x.amin(0)[:3], x.mean(1), x.prod(1)]),
    "where": lambda x: taiji.where(x > 0, x * x, -x.exp()),
    "cumsum_sort": lambda x: taiji.cumsum(x, 1) + taiji.sort(x, 1).values,
    "concat_pad": lambda x: taiji.cat([x, x.flip(0)], 1).reshape(6, 4).sum(0),
    "einsum": lambda x: taiji.einsum("ij,kj->ik", x, x.sin()),
    "jnp": lambda x: jnp.logaddexp(jnp.take(x, jnp.array([0, 2]), axis=0), 0.5).mean(0),
    "maximum_pow": lambda x: taiji.maximum(x, x.flip(1)) ** 3,
    "var_norm": lambda x: taiji.stack([x.var(1), x.norm(dim=1)]),
}


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_jacrev_jacfwd_vs_finite_differences(name):
    f = FUNCS[name]
    ref = num_jac(f, X)
    jr = jacrev(f)(t64(X)).numpy()
    jf = jacfwd(f)(t64(X)).numpy()
    assert jr.shape == ref.shape and jf.shape == ref.shape
    np.testing.assert_allclose(jr, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jf, jr, rtol=1e-9, atol=1e-10)


UNARY = ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "erf", "log1p", "expm1",
         "rsqrt", "abs", "relu", "neg", "square", "reciprocal", "tan"]


@pytest.mark.parametrize("name", UNARY)
def test_jvp_unary_vs_finite_differences(name):
    f = getattr(taiji, name)
    v = RNG.standard_normal(POS.shape)
    out, t = jvp(f, (t64(POS),), (t64(v),))
    np.testing.assert_allclose(out.numpy(), f(t64(POS)).numpy())
    np.testing.assert_allclose(t.numpy(), num_jvp(f, POS, v), rtol=1e-5, atol=1e-7)


BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "atan2": taiji.atan2,
          "maximum": taiji.maximum, "minimum": taiji.minimum,
          "bcast": lambda a, b: a[:, :1] * b[:1, :], "matmul": lambda a, b: a @ b.mT}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_jvp_binary_vs_finite_differences(name):
    f = BINARY[name]
    b = t64(POS[::-1].copy() + 0.1)
    va = RNG.standard_normal(POS.shape)
    vb = RNG.standard_normal(POS.shape)
    _, t = jvp(f, (t64(POS), b), (t64(va), t64(vb)))
    eps = 1e-6
    ref = (f(t64(POS + eps * va), t64(b.numpy() + eps * vb)).numpy()
           - f(t64(POS - eps * va), t64(b.numpy() - eps * vb)).numpy()) / (2 * eps)
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-5, atol=1e-7)


def test_jvp_of_grad_and_grad_of_jvp():
    f = lambda x: (x.sin() * x).sum()
    x, v = t64(X[0]), t64(RNG.standard_normal(4))
    _, hv = jvp(grad(f), (x,), (v,))
    H = hessian(f)(x).numpy()
    np.testing.assert_allclose(hv.numpy(), H @ v.numpy(), rtol=1e-10)
    g = grad(lambda x: jvp(f, (x,), (v,))[1])(x)
    np.testing.assert_allclose(g.numpy(), H @ v.numpy(), rtol=1e-10)


def test_hessian_vs_jacfwd_jacrev_and_analytic():
    A = RNG.standard_normal((4, 4))
    f = lambda x: 0.5 * x @ t64(A) @ x + x.exp().sum()
    x = t64(X[1])
    H = hessian(f)(x).numpy()
    np.testing.assert_allclose(H, 0.5 * (A + A.T) + np.diag(np.exp(X[1])), rtol=1e-10)
    np.testing.assert_allclose(jacrev(jacrev(f))(x).numpy(), H, rtol=1e-10)
    np.testing.assert_allclose(jacrev(jacfwd(f))(x).numpy(), H, rtol=1e-10)


def test_jacobian_pytrees_and_argnums():
    f = lambda a, b: {"s": (a * b).sum(), "v": a * 2.0}
    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    for jac in (jacrev, jacfwd):
        J = jac(f, argnums=(0, 1))(a, b)
        np.testing.assert_allclose(J["s"][0].numpy(), [3.0, 4.0])
        np.testing.assert_allclose(J["s"][1].numpy(), [1.0, 2.0])
        np.testing.assert_allclose(J["v"][0].numpy(), 2 * np.eye(2))
        np.testing.assert_allclose(J["v"][1].numpy(), np.zeros((2, 2)))


def test_vjp_matches_jacobian_and_pytree_cotangents():
    f = lambda x, y: (x * y, (x ** 2).sum())
    x, y = t64([1.0, 2.0]), t64([3.0, 5.0])
    (p, s), pull = vjp(f, x, y)
    np.testing.assert_allclose(p.numpy(), [3.0, 10.0])
    gx, gy = pull((t64([1.0, 1.0]), t64(2.0)))
    np.testing.assert_allclose(gx.numpy(), [3.0 + 4.0, 5.0 + 8.0])
    np.testing.assert_allclose(gy.numpy(), [1.0, 2.0])
    gx2, _ = pull((t64([1.0, 0.0]), t64(0.0)))  # the pullback can be called again
    np.testing.assert_allclose(gx2.numpy(), [3.0, 0.0])


def test_vjp_has_aux_and_int_input():
    out, pull, aux = vjp(lambda x, i: (x * 2.0, i + 1), t64([1.0]), taiji.tensor([3]),
                         has_aux=True)
    assert aux.tolist() == [4]
    gx, gi = pull(t64([1.0]))
    assert gx.tolist() == [2.0] and gi.tolist() == [0]


def test_jvp_pytrees_and_python_control_flow():
    def f(d):
        y = d["a"] * d["b"]
        if y.sum().item() > 0:  # the primal is concrete under jvp
            return y
        return -y
    (out, t) = jvp(f, ({"a": t64([1.0, 2.0]), "b": t64([3.0, 4.0])},),
                   ({"a": t64([1.0, 0.0]), "b": t64([0.0, 1.0])},))
    np.testing.assert_allclose(out.numpy(), [3.0, 8.0])
    np.testing.assert_allclose(t.numpy(), [3.0, 2.0])


def test_linearize():
    y, lin = linearize(lambda x: x.sin() * x, t64(1.0))
    assert y.item() == pytest.approx(np.sin(1.0))
    assert lin(t64(2.0)).item() == pytest.approx(2 * (np.cos(1.0) + np.sin(1.0)))


def test_grad_vmap_and_vmap_grad():
    f = lambda x: (x.tanh() ** 2).sum()
    xs = t64(X)
    per = vmap(grad(f))(xs).numpy()
    loop = np.stack([grad(f)(t64(r)).numpy() for r in X])
    np.testing.assert_allclose(per, loop, rtol=1e-12)
    summed = grad(lambda xs: vmap(f)(xs).sum())(xs).numpy()
    np.testing.assert_allclose(summed, loop, rtol=1e-12)
    hs = vmap(hessian(f))(xs).numpy()
    np.testing.assert_allclose(hs[2], hessian(f)(t64(X[2])).numpy(), rtol=1e-10)


# ---------------------------------------------------------------- errors

def test_grad_errors():
    with pytest.raises(TypeError, match=r"Gradient only defined for scalar-output functions. "
                                        r"Output had shape: \(3,\)"):
        grad(lambda x: x * 2)(t64([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="grad requires real-valued inputs.*int64"):
        grad(lambda x: x.sum())(taiji.tensor([1, 2]))
    with pytest.raises(TypeError, match="argnums 2 is out of bounds"):
        grad(lambda x: x, argnums=2)(t64(1.0))
    with pytest.raises(TypeError, match="has_aux=True requires"):
        grad(lambda x: x, has_aux=True)(t64(1.0))
    g = grad(lambda x, i: (x * i).sum(), argnums=(0, 1), allow_int=True)(t64([1.0]),
                                                                       taiji.tensor([2]))
    assert g[0].tolist() == [2.0] and g[1].tolist() == [0]


def test_jvp_and_vjp_errors():
    with pytest.raises(TypeError, match="primal arguments to jvp must be a tuple or a list"):
        jvp(lambda x: x, t64(1.0), (t64(1.0),))
    with pytest.raises(ValueError, match="different primal and tangent shapes"):
        jvp(lambda x: x, (t64([1.0]),), (t64([1.0, 2.0]),))
    with pytest.raises(TypeError, match="dtypes must be equal"):
        jvp(lambda x: x, (t64([1.0]),), (taiji.tensor([1.0]),))
    _, pull = vjp(lambda x: x * 2, t64([1.0, 2.0]))
    with pytest.raises(ValueError, match="Shape of cotangent input"):
        pull(t64([1.0]))
