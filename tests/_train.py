"""A jitted PyTorch-style training run, for tests that compare how it was computed (native
tier or not, one thread or all) by comparing what it computed."""
import numpy as np

import taiji
from taiji import nn, optim
from taiji.compiler import fusion, native


def ce_step(model, opt):
    """The PyTorch-style training step (cross-entropy, backward, update), not yet jitted."""
    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def train_jit(sizes, steps=6, batch=32, lr=1e-2, use_native=True, seed=0):
    """Train a ReLU MLP of layer ``sizes`` with Adam for ``steps`` jitted steps on random
    data; returns (losses, parameters, the step's Lowered). Sets ``native.enabled``: callers
    restore it (the ``tiers`` fixture, or monkeypatch)."""
    taiji.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    step = taiji.jit(ce_step(model, optim.Adam(model.parameters(), lr=lr)))
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((steps, batch, sizes[0])).astype(np.float32)
    ys = rng.integers(0, sizes[-1], (steps, batch))
    native.enabled = use_native
    losses = []
    for i in range(steps):
        losses.append(step(taiji.tensor(xs[i]), taiji.tensor(ys[i])).item())
        if i == 2:
            fusion.wait_for_kernels(120)  # the native build is asked for at the 2nd run
    lowered = step.lower(taiji.tensor(xs[0]), taiji.tensor(ys[0]))
    return losses, [p.detach().numpy().copy() for p in model.parameters()], lowered


def first_weight_mlp(transposed: bool):
    """A 12-10-3 ReLU MLP (seed 0) whose first weight is stored transposed (F-order, as
    ``nn.Parameter(w.t())`` makes it) or row-major, with the same values; returns (model,
    that weight's values)."""
    taiji.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3))
    w = model[0].weight.detach().numpy().copy()
    with taiji.no_grad():
        data = taiji.from_numpy(np.ascontiguousarray(w.T)).t() if transposed else \
            taiji.from_numpy(w)
    model[0].weight = nn.Parameter(data)
    assert model[0].weight._data.flags.c_contiguous != transposed
    return model, w


def train_in_forked_child(losses) -> None:
    """Fork (in a test's subprocess): the child must start without the pool's worker, train as
    ``train_jit((784, 256, 10), batch=128, steps=5)`` does, reach ``losses[-1]`` bit for bit
    and have started a worker of its own."""
    import os
    from taiji.compiler import pool
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        fresh = pool._thread is None
        out = train_jit((784, 256, 10), batch=128, steps=5)[0]
        os.write(w, f"{out[-1]!r} {fresh and pool._thread is not None}".encode())
        os._exit(0)
    os.close(w)
    got = os.read(r, 200).decode().split()
    os.waitpid(pid, 0)
    assert got == [repr(losses[-1]), "True"], (got, losses)
