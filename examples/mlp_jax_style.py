"""The seed's MLP in JAX style (pytorch-and-jax.md, sections 3.2.2 and 5.2.2), on
Fashion-MNIST, with `import taiji.numpy as jnp` and `from taiji import jit, grad`.

Fixes against the seed listing:
* `params - 0.1 * grads` subtracts a dict from a dict (a TypeError in JAX too): the update
  maps over the pytree with `tree_map`;
* `grad_loss(params, batch[0])` dropped the targets: the loss takes images and labels;
* `@jit def test_model(params, test_loader)` jits over a Python data loader (a loader is not
  an array, and the loop would be unrolled at trace time): only the per-batch accuracy is
  jitted, the loop over batches stays in Python;
* `_, predicted = jnp.argmax(...)` unpacks one array into two names: `argmax` returns one;
* all-zero weights never break the symmetry (every hidden unit stays equal): they are drawn
  from `taiji.random.normal`; the seed's 784-256-10 tanh net with a squared error becomes the
  784-256-128-10 ReLU net of section 5.2.1 with cross-entropy, so both styles train the same
  model.

Run: python examples/mlp_jax_style.py [--epochs 10] [--batch-size 64] [--limit N]
"""
import time

import numpy as np

import taiji
import taiji.numpy as jnp
from taiji import grad, jit
from taiji._train import example_args, image_tensors, load_fashion_mnist
from taiji.nn.functional import log_softmax
from taiji.tree_util import tree_map

args = example_args(__doc__.splitlines()[0], epochs=10, batch_size=64, lr=0.02)

data = load_fashion_mnist(args.data_dir)
if data.is_sample:
    print("note: using the Fashion-MNIST sample bundled with taiji (2,000 train images)")
train_x, train_y = image_tensors(data.train_images, data.train_labels, args.limit)
test_x, test_y = image_tensors(data.test_images, data.test_labels, args.limit)
train_x, test_x = train_x.reshape(-1, 784), test_x.reshape(-1, 784)


def init_params(key):
    sizes = [(784, 256), (256, 128), (128, 10)]
    keys = taiji.random.split(key, len(sizes))
    params = {}
    for i, ((m, n), k) in enumerate(zip(sizes, keys), start=1):
        params[f"w{i}"] = taiji.random.normal(k, (m, n)) * np.sqrt(2.0 / m)
        params[f"b{i}"] = jnp.zeros((n,))
    return params


def simple_net(params, inputs):
    h = jnp.maximum(jnp.dot(inputs, params["w1"]) + params["b1"], 0.0)
    h = jnp.maximum(jnp.dot(h, params["w2"]) + params["b2"], 0.0)
    return jnp.dot(h, params["w3"]) + params["b3"]


def loss(params, inputs, targets):
    logp = log_softmax(simple_net(params, inputs), -1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[:, None], axis=1))


grad_loss = grad(loss)


@jit
def train_step(params, momentum, inputs, targets):
    grads = grad_loss(params, inputs, targets)
    momentum = tree_map(lambda m, g: 0.9 * m + g, momentum, grads)
    params = tree_map(lambda p, m: p - args.lr * m, params, momentum)
    return params, momentum


@jit
def batch_correct(params, images, labels):
    return (jnp.argmax(simple_net(params, images), axis=-1) == labels).sum()


def test_model(params, batch_size=1000):
    correct = 0
    for i in range(0, len(test_y), batch_size):
        correct += int(batch_correct(params, test_x[i:i + batch_size], test_y[i:i + batch_size]))
    return correct / len(test_y)


params = init_params(taiji.random.key(args.seed))
momentum = tree_map(jnp.zeros_like, params)
key = taiji.random.key(args.seed + 1)
n = len(train_y)
t0, steps = time.perf_counter(), 0
for epoch in range(args.epochs):
    key, sub = taiji.random.split(key)
    perm = taiji.random.permutation(sub, n).numpy()
    for i in range(0, n - args.batch_size + 1, args.batch_size):
        idx = perm[i:i + args.batch_size]
        params, momentum = train_step(params, momentum, train_x[idx], train_y[idx])
        steps += 1
    print(f"Epoch [{epoch + 1}/{args.epochs}] train loss: {float(loss(params, train_x[:2000], train_y[:2000])):.4f}")

print(f"Test Accuracy: {100 * test_model(params):.2f}%")
print(f"steps/s: {steps / (time.perf_counter() - t0):.1f}")
