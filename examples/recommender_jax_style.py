"""The seed's recommender in JAX style (pytorch-and-jax.md, section 6.1.2), on
`taiji.datasets.SyntheticRecommender`, scored by test ROC AUC against popularity.

Fixes against the seed listing:
* `params - 0.1 * grads` subtracts a dict from a dict: the update maps over the pytree;
* `grad_loss(params, batch[0])` dropped the targets; `batch` was never defined;
* `@jax.jit def test_model(params, test_loader)` jits over a Python data loader: the jitted
  function scores one array, the test set is passed whole;
* all-zero weights never break symmetry: weights are drawn from `taiji.random.normal`;
* the L1 loss on raw outputs of a 0/1 target is replaced by the logistic loss (what the
  PyTorch listing's BCELoss computes), and "accuracy" by AUC.

Run: python examples/recommender_jax_style.py [--epochs 10] [--limit N]
"""
import numpy as np

import taiji
import taiji.numpy as jnp
from taiji import grad, jit
from taiji._train import example_args, popularity_auc, roc_auc
from taiji.datasets import SyntheticRecommender
from taiji.optim import functional as optax

args = example_args(__doc__.splitlines()[0], epochs=10, batch_size=64, lr=0.003)
train_set, test_set = SyntheticRecommender(train=True), SyntheticRecommender(train=False)
n = len(train_set) if args.limit is None else min(args.limit, len(train_set))
train_x, train_y = jnp.asarray(train_set._x[:n]), jnp.asarray(train_set._labels[:n])
test_x, test_y = jnp.asarray(test_set._x), test_set._labels


def init(key):
    k1, k2, k3 = taiji.random.split(key, 3)
    return {"fc1": taiji.random.normal(k1, (100, 50)) * np.sqrt(1 / 100),
            "fc2": taiji.random.normal(k2, (50, 10)) * np.sqrt(1 / 50),
            "fc3": taiji.random.normal(k3, (10, 1)) * np.sqrt(1 / 10),
            "b1": jnp.zeros((50,)), "b2": jnp.zeros((10,)), "b3": jnp.zeros((1,))}


def recommender(params, inputs):
    h = jnp.tanh(jnp.dot(inputs, params["fc1"]) + params["b1"])
    h = jnp.tanh(jnp.dot(h, params["fc2"]) + params["b2"])
    return (jnp.dot(h, params["fc3"]) + params["b3"])[:, 0]


def loss(params, inputs, targets):
    z = recommender(params, inputs)
    # logistic loss from logits: log(1 + e^z) - y z, written stably
    return jnp.mean(jnp.logaddexp(0.0, z) - targets * z)


optimizer = optax.adam(args.lr)
grad_loss = grad(loss)


@jit
def train_step(params, opt_state, inputs, targets):
    grads = grad_loss(params, inputs, targets)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


score = jit(recommender)

params = init(taiji.random.key(args.seed))
opt_state = optimizer.init(params)
key = taiji.random.key(args.seed + 1)
bs = args.batch_size
for epoch in range(args.epochs):
    key, sub = taiji.random.split(key)
    perm = taiji.random.permutation(sub, n).numpy()
    for i in range(0, n - bs + 1, bs):
        idx = perm[i:i + bs]
        params, opt_state = train_step(params, opt_state, train_x[idx], train_y[idx])
    print(f"Epoch [{epoch + 1}/{args.epochs}] train loss: "
          f"{float(loss(params, train_x, train_y)):.4f}")

print(f"Test AUC: {roc_auc(score(params, test_x).numpy(), test_y):.4f} "
      f"(popularity baseline: {popularity_auc(train_set, test_set):.4f})")
