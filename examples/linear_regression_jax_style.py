"""Linear regression in JAX style (pytorch-and-jax.md, section 4.1), with
`import taiji.numpy as jnp` and `taiji.jit(taiji.grad(loss))` as in the seed.

The seed defines `grad_loss` but never uses it; this adds the data and the update loop. Its
update is a pytree map (a dict minus a dict, as a training step would naively write it, is a
TypeError), and the step function is jitted, not the data loop.

Run: python examples/linear_regression_jax_style.py [--epochs 20] [--limit N]
"""
import taiji
import taiji.numpy as jnp
from taiji._train import example_args, linear_problem
from taiji.tree_util import tree_map

args = example_args(__doc__.splitlines()[0], epochs=20, batch_size=64, lr=0.05)
X, y, w_true, b_true = linear_problem(n=args.limit or 4096, seed=args.seed)
X, y = jnp.asarray(X), jnp.asarray(y)


def linear_regression(params, inputs):
    w = params["w"]
    b = params["b"]
    return jnp.dot(inputs, w) + b


def loss(params, inputs, targets):
    outputs = linear_regression(params, inputs)
    loss = jnp.mean((outputs - targets) ** 2)
    return loss


grad_loss = taiji.jit(taiji.grad(loss))


@taiji.jit
def train_step(params, inputs, targets):
    grads = grad_loss(params, inputs, targets)
    return tree_map(lambda p, g: p - args.lr * g, params, grads)


params = {"w": jnp.zeros((X.shape[1], 1)), "b": jnp.zeros((1,))}
key = taiji.random.key(args.seed)
n, bs = X.shape[0], args.batch_size
for epoch in range(args.epochs):
    key, sub = taiji.random.split(key)
    perm = taiji.random.permutation(sub, n).numpy()
    for i in range(0, n - bs + 1, bs):
        idx = perm[i:i + bs]
        params = train_step(params, X[idx], y[idx])
    print(f"Epoch [{epoch + 1}/{args.epochs}] MSE: {float(loss(params, X, y)):.5f}")

w_err = float(jnp.max(jnp.abs(params["w"] - jnp.asarray(w_true))))
print(f"max |w - w_true|: {w_err:.4f}, b: {float(params['b'][0]):.4f} "
      f"(true {float(b_true):.4f})")
