"""Inference: the forward pass over the Fashion-MNIST test set (10,000 images) in batches of
1000, in order, for the seed MLP and the CNN (same weights as their training workloads):
``no_grad`` eager, or the forward under jit. Reported in images/s."""
from __future__ import annotations

from typing import Sequence

from _harness import Case
from workloads import _common as C
from workloads import cnn, mlp

BATCHES = (1000,)


def cases(batches: Sequence[int] | None = None) -> list:
    """The MLP and the CNN forward, one case each per batch size."""
    out = []
    for b in batches or BATCHES:
        out.append(Case(
            workload="inference", name=f"inference/mlp/b{b}", batch=b, kind="inference",
            title=f"MLP 784-256-128-10 inference over the test set, batch {b}",
            flops_per_step=C.dense_flops(mlp.SIZES, b, train=False),
            data=lambda limit: C.images("test", limit, False), weights=mlp.init_weights,
            makers={"numpy": C.numpy_dense_infer,
                    "taiji eager": lambda ws: C.taiji_infer(mlp.BUILD, ws, compiled=False),
                    "taiji jit": lambda ws: C.taiji_infer(mlp.BUILD, ws, compiled=True),
                    "pytorch eager": lambda ws: C.torch_infer(mlp.BUILD, ws),
                    "jax jit": lambda ws: C.jax_infer(C.dense_jax_forward, ws)}))
        out.append(Case(
            workload="inference", name=f"inference/cnn/b{b}", batch=b, kind="inference",
            title=f"CNN inference over the test set, batch {b}",
            flops_per_step=cnn.flops(b, train=False),
            data=lambda limit: C.images("test", limit, True), weights=cnn.init_weights,
            makers={"taiji eager": lambda ws: C.taiji_infer(cnn.build, ws, compiled=False),
                    "taiji jit": lambda ws: C.taiji_infer(cnn.build, ws, compiled=True),
                    "pytorch eager": lambda ws: C.torch_infer(cnn.build, ws),
                    "jax jit": lambda ws: C.jax_infer(cnn.jax_forward, ws)},
            notes={"numpy": cnn.NUMPY_NOTE}))
    return out
