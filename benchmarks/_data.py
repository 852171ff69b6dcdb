"""Fashion-MNIST batches for the benchmarks (read directly from the IDX files so that the
benchmarks do not depend on the library's own loaders), or synthetic data of the same shape
when the dataset is not installed."""
from __future__ import annotations

import gzip
import os

import numpy as np

PLACES = [os.environ.get("TAIJI_DATA", ""), os.path.expanduser("~/.cache/taiji"),
          "/usr/share/datasets/fashion-mnist"]


def _read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", ndim, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_train():
    """(images float32 [N, 784] in [0, 1], labels int64 [N], source description)."""
    for root in PLACES:
        for sub in ("", "fashion-mnist", "FashionMNIST/raw"):
            d = os.path.join(root, sub) if root else ""
            for ext in (".gz", ""):
                img = os.path.join(d, "train-images-idx3-ubyte" + ext)
                lab = os.path.join(d, "train-labels-idx1-ubyte" + ext)
                if root and os.path.exists(img) and os.path.exists(lab):
                    x = _read_idx(img).reshape(-1, 784).astype(np.float32) / 255.0
                    return x, _read_idx(lab).astype(np.int64), f"Fashion-MNIST ({d})"
    rng = np.random.default_rng(0)
    return (rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000),
            "synthetic (Fashion-MNIST not found)")


def batches(x, y, batch, n, seed=0):
    """``n`` (images, labels) batches from one shuffled pass (wrapping around)."""
    idx = np.random.default_rng(seed).permutation(len(x))
    out = []
    for i in range(n):
        j = idx[(i * batch) % (len(x) - batch):][:batch]
        out.append((np.ascontiguousarray(x[j]), np.ascontiguousarray(y[j])))
    return out
