"""The seed's CNN in JAX style (pytorch-and-jax.md, section 6.2.2), adapted to 28x28
Fashion-MNIST: conv3x3 32, pool, conv3x3 64, pool, fc 64*7*7 -> 512 -> 10.

Fixes against the seed listing:
* `jnp.nn.conv2d` / `jnp.nn.max_pool` do not exist (jax.numpy has no `nn`; JAX spells them
  `jax.lax.conv_general_dilated` and `flax.linen.max_pool`): taiji's functional ops
  `taiji.nn.functional.conv2d` / `max_pool2d` are pure functions of arrays, so they serve;
* every layer read the same `params['w']`, `params['b']` (and `maxpool` added a bias):
  each layer has its own weights;
* `64 * 7 * 7` after the wrong number of pools: two 2x2 pools take 28 to 7;
* `conv4.view(...)` is PyTorch's spelling: `jnp.reshape`;
* the loss `mean((argmax(fc2) - targets) ** 2)` has zero gradient (argmax is flat): the
  loss is cross-entropy;
* `params - 0.1 * grads` subtracts a dict from a dict: `tree_map` over the pytree;
* `@jax.jit def test_model(params, test_loader)` jits over a Python data loader: only the
  per-batch function is jitted, the loop over batches stays in Python;
* all-zero weights never break symmetry: He-normal initialisation from `taiji.random`.

Run: python examples/cnn_jax_style.py [--epochs 5] [--batch-size 64] [--limit N]
"""
import time

import numpy as np

import taiji
import taiji.numpy as jnp
from taiji import grad, jit
from taiji._train import example_args, image_tensors, load_fashion_mnist
from taiji.nn.functional import conv2d, log_softmax, max_pool2d
from taiji.tree_util import tree_map

args = example_args(__doc__.splitlines()[0], epochs=5, batch_size=64, lr=0.01)

data = load_fashion_mnist(args.data_dir)
if data.is_sample:
    print("note: using the Fashion-MNIST sample bundled with taiji (2,000 train images)")
train_x, train_y = image_tensors(data.train_images, data.train_labels, args.limit)
test_x, test_y = image_tensors(data.test_images, data.test_labels, args.limit)


def init_params(key):
    k = taiji.random.split(key, 4)

    def he(key, shape, fan_in):
        return taiji.random.normal(key, shape) * np.sqrt(2.0 / fan_in)
    return {"w1": he(k[0], (32, 1, 3, 3), 9), "b1": jnp.zeros((32,)),
            "w2": he(k[1], (64, 32, 3, 3), 32 * 9), "b2": jnp.zeros((64,)),
            "w3": he(k[2], (64 * 7 * 7, 512), 64 * 7 * 7), "b3": jnp.zeros((512,)),
            "w4": he(k[3], (512, 10), 512), "b4": jnp.zeros((10,))}


def relu(x):
    return jnp.maximum(x, 0.0)


def maxpool(x):
    return max_pool2d(x, 2)


def linear(w, b, x):
    return jnp.dot(x, w) + b


def net(params, inputs):
    conv1 = maxpool(relu(conv2d(inputs, params["w1"], params["b1"], padding=1)))  # 28 -> 14
    conv2 = maxpool(relu(conv2d(conv1, params["w2"], params["b2"], padding=1)))   # 14 -> 7
    pool = jnp.reshape(conv2, (-1, 64 * 7 * 7))
    fc1 = relu(linear(params["w3"], params["b3"], pool))
    return linear(params["w4"], params["b4"], fc1)


def loss(params, inputs, targets):
    logp = log_softmax(net(params, inputs), -1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[:, None], axis=1))


grad_loss = grad(loss)


@jit
def train_step(params, momentum, inputs, targets):
    grads = grad_loss(params, inputs, targets)
    momentum = tree_map(lambda m, g: 0.9 * m + g, momentum, grads)
    return tree_map(lambda p, m: p - args.lr * m, params, momentum), momentum


@jit
def batch_correct(params, images, labels):
    return (jnp.argmax(net(params, images), axis=-1) == labels).sum()


def test_model(params, batch_size=500):
    correct = 0
    for i in range(0, len(test_y), batch_size):
        correct += int(batch_correct(params, test_x[i:i + batch_size], test_y[i:i + batch_size]))
    return correct / len(test_y)


params = init_params(taiji.random.key(args.seed))
momentum = tree_map(jnp.zeros_like, params)
key = taiji.random.key(args.seed + 1)
n, bs = len(train_y), args.batch_size
t0, steps = time.perf_counter(), 0
for epoch in range(args.epochs):
    key, sub = taiji.random.split(key)
    perm = taiji.random.permutation(sub, n).numpy()
    for i in range(0, n - bs + 1, bs):
        idx = perm[i:i + bs]
        params, momentum = train_step(params, momentum, train_x[idx], train_y[idx])
        steps += 1
    print(f"Epoch [{epoch + 1}/{args.epochs}] train loss (first 1000): "
          f"{float(loss(params, train_x[:1000], train_y[:1000])):.4f}")

print(f"Test Accuracy: {100 * test_model(params):.2f}%")
print(f"steps/s: {steps / (time.perf_counter() - t0):.1f}")
