"""taiji.numpy (the jax.numpy-style namespace) against NumPy."""
import numpy as np
import pytest

import taiji
import taiji.numpy as jnp
from taiji import grad, vmap

RNG = np.random.default_rng(2)
X = RNG.standard_normal((3, 4)).astype(np.float32)
Y = RNG.standard_normal((4, 2)).astype(np.float32)


def close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a.numpy() if hasattr(a, "numpy") else a), b,
                               rtol=kw.get("rtol", 1e-5), atol=kw.get("atol", 1e-6))


def test_creation_and_default_dtypes():
    assert jnp.array(1.5).dtype is jnp.float32 and jnp.array(1.5).shape == ()
    assert jnp.asarray(np.ones(3)).dtype is jnp.float32       # float64 data -> float32
    assert jnp.array([1, 2]).dtype is jnp.int64
    assert jnp.array(np.ones(2), dtype=jnp.float64).dtype is jnp.float64
    assert jnp.zeros((2, 3)).shape == (2, 3) and jnp.ones(4, dtype=jnp.int32).dtype is jnp.int32
    close(jnp.full((2,), 3.5), [3.5, 3.5])
    close(jnp.arange(1, 7, 2), [1, 3, 5])
    close(jnp.linspace(0.0, 1.0, 5), np.linspace(0, 1, 5))
    close(jnp.linspace(0.0, 1.0, 4, endpoint=False), np.linspace(0, 1, 4, endpoint=False))
    close(jnp.eye(3, 4, k=1), np.eye(3, 4, 1))
    close(jnp.zeros_like(jnp.asarray(X)), np.zeros_like(X))
    close(jnp.ones_like(X), np.ones_like(X))
    assert jnp.newaxis is None and jnp.pi == np.pi and jnp.inf == np.inf


@pytest.mark.parametrize("name", ["tanh", "exp", "sin", "cos", "abs", "square", "sign",
                                  "floor", "ceil", "expm1", "negative"])
def test_unary(name):
    close(getattr(jnp, name)(X), getattr(np, name)(X))


def test_unary_positive_domain():
    P = np.abs(X) + 0.1
    for name in ("log", "sqrt", "log2", "log10", "reciprocal", "log1p"):
        close(getattr(jnp, name)(P), getattr(np, name)(P))


def test_binary_and_where_clip():
    close(jnp.maximum(X, 0.0), np.maximum(X, 0))
    close(jnp.minimum(X, Y[:, :1].T[:, :1]), np.minimum(X, Y[:, :1].T[:, :1]))
    close(jnp.add(X, 1), X + 1)
    close(jnp.multiply(2.0, X), 2 * X)
    close(jnp.power(np.abs(X), 2.5), np.abs(X) ** 2.5)
    close(jnp.logaddexp(X, X.T[:1].T), np.logaddexp(X, X.T[:1].T))
    close(jnp.where(X > 0, X, 0.0), np.where(X > 0, X, 0))
    close(jnp.clip(X, -0.5, 0.5), np.clip(X, -0.5, 0.5))
    close(jnp.clip(X, max=0.2), np.clip(X, None, 0.2))


def test_reductions():
    for name in ("sum", "mean", "max", "min", "prod", "var", "std"):
        for axis in (None, 0, 1, (0, 1)):
            for keepdims in (False, True):
                close(getattr(jnp, name)(X, axis=axis, keepdims=keepdims),
                      getattr(np, name)(X, axis=axis, keepdims=keepdims), rtol=1e-4)
    assert jnp.argmax(X).item() == np.argmax(X)
    close(jnp.argmax(X, axis=1), np.argmax(X, axis=1))
    close(jnp.argmin(X, axis=0, keepdims=True), np.argmin(X, axis=0, keepdims=True))
    close(jnp.cumsum(X, axis=1), np.cumsum(X, axis=1))
    close(jnp.cumsum(X), np.cumsum(X))
    close(jnp.sort(X, axis=0), np.sort(X, axis=0))
    close(jnp.argsort(X), np.argsort(X))
    assert jnp.all(jnp.asarray(X) < 10).item() and not jnp.any(jnp.asarray(X) > 10).item()


def test_linear_algebra():
    close(jnp.dot(X, Y), X @ Y)
    close(jnp.dot(X[0], X[1]), X[0] @ X[1])
    close(jnp.dot(2.0, X), 2 * X)
    Z = RNG.standard_normal((2, 4, 3)).astype(np.float32)
    close(jnp.dot(X, Z), np.dot(X, Z), rtol=1e-4)
    close(jnp.matmul(X, Y), X @ Y)
    close(jnp.einsum("ij,jk->ik", X, Y), X @ Y)
    close(jnp.outer(X[0], Y[:, 0]), np.outer(X[0], Y[:, 0]))
    close(jnp.inner(X, X), np.inner(X, X), rtol=1e-4)
    close(jnp.vdot(X, X), np.vdot(X, X), rtol=1e-4)
    close(jnp.tensordot(X, Y, axes=1), np.tensordot(X, Y, axes=1))
    close(jnp.trace(X), np.trace(X))
    close(jnp.trace(X, 1), np.trace(X, 1))


def test_shapes():
    close(jnp.reshape(X, (4, 3)), X.reshape(4, 3))
    close(jnp.reshape(X, -1), X.reshape(-1))
    close(jnp.transpose(X), X.T)
    Z = RNG.standard_normal((2, 3, 4))
    close(jnp.transpose(Z, (1, 2, 0)), Z.transpose(1, 2, 0))
    close(jnp.swapaxes(Z, 0, 2), Z.swapaxes(0, 2))
    close(jnp.moveaxis(Z, 0, -1), np.moveaxis(Z, 0, -1))
    close(jnp.concatenate([X, X], axis=1), np.concatenate([X, X], 1))
    close(jnp.concatenate([X, X], axis=None), np.concatenate([X, X], None))
    close(jnp.stack([X, X], axis=-1), np.stack([X, X], -1))
    close(jnp.squeeze(X[None, :, None], axis=(0, 2)), X)
    with pytest.raises(ValueError, match="size not equal to one"):
        jnp.squeeze(X, axis=0)
    close(jnp.expand_dims(X, (0, 3)), np.expand_dims(X, (0, 3)))
    close(jnp.broadcast_to(X[0], (2, 4)), np.broadcast_to(X[0], (2, 4)))
    close(jnp.flip(X, 1), np.flip(X, 1))
    close(jnp.tile(X[0], (2,)), np.tile(X[0], 2))
    close(jnp.repeat(X[0], 2), np.repeat(X[0], 2))
    parts = jnp.split(X, [1, 3], axis=1)
    for a, b in zip(parts, np.split(X, [1, 3], axis=1)):
        close(a, b)
    close(jnp.hstack([X, X]), np.hstack([X, X]))
    close(jnp.vstack([X[0], X[1]]), np.vstack([X[0], X[1]]))
    assert jnp.shape(X) == (3, 4) and jnp.ndim(X) == 2 and jnp.size(X) == 12


def test_indexing_and_at_updates():
    idx = np.array([[0, 3], [1, -1], [2, 2]])
    close(jnp.take_along_axis(X, idx, axis=1), np.take_along_axis(X, idx, axis=1))
    close(jnp.take(X, np.array([-1, 0]), axis=0), np.take(X, [-1, 0], axis=0))
    close(jnp.take(X, np.array([5, 0])), np.take(X, [5, 0]))
    x = jnp.asarray(X)
    y = x.at[0, 1].set(10.0)
    assert y[0, 1].item() == 10.0 and x[0, 1].item() == X[0, 1]
    close(x.at[1].add(1.0), X + np.eye(3, dtype=np.float32)[1][:, None])
    close(x.at[:, 0].multiply(2.0)[:, 0], X[:, 0] * 2)
    close(x.at[2].get(), X[2])


def test_jnp_under_transforms():
    f = lambda w, x: jnp.sum(jnp.tanh(jnp.dot(x, w)) ** 2)
    w = jnp.asarray(Y)
    g = grad(f)(w, jnp.asarray(X))
    t = np.tanh(X @ Y)
    close(g, X.T @ (2 * t * (1 - t ** 2)), rtol=1e-4)
    per = vmap(lambda x: jnp.mean(jnp.take(x, jnp.array([0, -1]))))(jnp.asarray(X))
    close(per, (X[:, 0] + X[:, -1]) / 2)
