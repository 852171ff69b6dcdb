"""The seed MLP (784-256-128-10) on Fashion-MNIST under bf16 autocast vs float32 (short CI
run: 5,000 training images, 2 epochs, 2,000 test images)."""
import numpy as np
import pytest

import taiji
import taiji.nn.functional as F


def _data():
    from taiji.datasets import FashionMNIST
    try:
        tr, te = FashionMNIST(train=True), FashionMNIST(train=False)
    except Exception as e:  # pragma: no cover - no local copy
        pytest.skip(f"Fashion-MNIST is not available locally ({e})")
    if len(tr) < 5000 or len(te) < 2000:
        pytest.skip("only a sample of Fashion-MNIST is installed")

    def prep(ds, n):
        x = np.asarray(ds.data[:n].numpy() if hasattr(ds.data, "numpy") else ds.data[:n],
                       dtype=np.float32).reshape(n, -1) / 255.0
        y = np.asarray(ds.targets[:n].numpy() if hasattr(ds.targets, "numpy")
                       else ds.targets[:n]).astype(np.int64)
        return (x - 0.2860) / 0.3530, y
    return prep(tr, 5000), prep(te, 2000)


def _run(amp: bool, train, test, epochs=2, bs=64):
    taiji.manual_seed(0)
    model = taiji.nn.Sequential(taiji.nn.Linear(784, 256), taiji.nn.ReLU(),
                                taiji.nn.Linear(256, 128), taiji.nn.ReLU(),
                                taiji.nn.Linear(128, 10))
    opt = taiji.optim.Adam(model.parameters(), 1e-3)
    region = (lambda: taiji.autocast("cpu", dtype=taiji.bfloat16)) if amp else \
        (lambda: taiji.autocast("cpu", enabled=False))

    @taiji.jit
    def step(x, y):
        opt.zero_grad()
        with region():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    (x, y), (xt, yt) = train, test
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for i in range(0, len(x) - bs + 1, bs):
            idx = perm[i:i + bs]
            step(taiji.tensor(x[idx]), taiji.tensor(y[idx]))
    with taiji.no_grad(), region():
        pred = model(taiji.tensor(xt)).argmax(1).numpy()
    return float((pred == yt).mean())


def test_bf16_mlp_matches_float32_accuracy():
    train, test = _data()
    acc32 = _run(False, train, test)
    acc16 = _run(True, train, test)
    print(f"Fashion-MNIST 5k/2 epochs: float32 {acc32:.4f}, bf16 autocast {acc16:.4f}")
    assert acc32 > 0.7 and acc16 > 0.7
    assert abs(acc16 - acc32) < 0.02
