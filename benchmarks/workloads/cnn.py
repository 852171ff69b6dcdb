"""The seed CNN's training step on Fashion-MNIST: conv3x3 1->32 pad 1, ReLU, maxpool 2,
conv3x3 32->64 pad 1, ReLU, maxpool 2, flatten, Linear 3136-512, ReLU, Linear 512-10;
cross-entropy, Adam 1e-3, batch 64 (batch assembly included)."""
from __future__ import annotations

from typing import Sequence

from _harness import Case
from workloads import _common as C

BATCHES = (64,)
NUMPY_NOTE = ("no hand-written NumPy CNN: convolution and pooling backward by hand "
              "(im2col, col2im, argmax routing) is a framework of its own, not a baseline")


def build(nn):
    """The CNN from an ``nn`` namespace (``taiji.nn`` or ``torch.nn``)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(), nn.Linear(512, 10))


def jax_forward(p, x):
    """The same CNN in JAX (NCHW / OIHW, as PyTorch lays it out)."""
    import jax
    from jax import lax
    c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = p
    dn = ("NCHW", "OIHW", "NCHW")

    def block(h, w, b):
        h = lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
        h = jax.nn.relu(h + b[None, :, None, None])
        return lax.reduce_window(h, -float("inf"), lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = block(block(x, c1w, c1b), c2w, c2b)
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ f1w.T + f1b)
    return h @ f2w.T + f2b


def init_weights(seed: int = 0) -> list:
    """The initial weights every contender copies."""
    return C.uniform_init([(32, 1, 3, 3), (64, 32, 3, 3), (512, 64 * 7 * 7), (10, 512)], seed)


def flops(batch: int, train: bool) -> float:
    """Conv and matmul FLOPs (2*M*N*K; a conv is a matmul over its output positions); the
    backward skips the first conv's input gradient (the images need none)."""
    conv1 = 2.0 * batch * 28 * 28 * 32 * (1 * 9)
    layers = [conv1, 2.0 * batch * 14 * 14 * 64 * (32 * 9), 2.0 * batch * 3136 * 512,
              2.0 * batch * 512 * 10]
    fwd = sum(layers)
    return fwd + fwd + (fwd - conv1) if train else fwd


def cases(batches: Sequence[int] | None = None) -> list:
    """One training case per batch size (64 by default)."""
    makers = {
        "taiji eager": lambda ws: C.taiji_train(build, ws, "ce", compiled=False),
        "taiji jit": lambda ws: C.taiji_train(build, ws, "ce", compiled=True),
        "pytorch eager": lambda ws: C.torch_train(build, ws, "ce"),
        "jax jit": lambda ws: C.jax_train(jax_forward, ws, "ce"),
    }
    return [Case(workload="cnn", name=f"cnn/train/b{b}", batch=b, kind="train",
                 title=f"CNN conv32-pool-conv64-pool-fc512-10 training step (fwd+bwd+Adam), "
                       f"batch {b}",
                 flops_per_step=flops(b, train=True),
                 data=lambda limit: C.images("train", limit, True), weights=init_weights,
                 makers=makers, notes={"numpy": NUMPY_NOTE}, rss=(i == 0))
            for i, b in enumerate(batches or BATCHES)]
