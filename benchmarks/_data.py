"""Fashion-MNIST for the benchmarks (read directly from the IDX files so that the benchmarks do
not depend on the library's own loaders), or synthetic data of the same shape when the
dataset is not installed."""
from __future__ import annotations

import gzip
import os

import numpy as np

PLACES = [os.environ.get("TAIJI_DATA", ""), os.path.expanduser("~/.cache/taiji"),
          "/usr/share/datasets/fashion-mnist"]
_PREFIX = {"train": "train", "test": "t10k"}
_SIZE = {"train": 60000, "test": 10000}


def _read_idx(path: str) -> np.ndarray:
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", ndim, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split: str = "train", limit: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """(images float32 [N, 784] in [0, 1], labels int64 [N], source description) of the
    ``"train"`` or ``"test"`` split; only the first ``limit`` images when given."""
    prefix = _PREFIX[split]
    for root in PLACES:
        for sub in ("", "fashion-mnist", "FashionMNIST/raw"):
            d = os.path.join(root, sub) if root else ""
            for ext in (".gz", ""):
                img = os.path.join(d, f"{prefix}-images-idx3-ubyte" + ext)
                lab = os.path.join(d, f"{prefix}-labels-idx1-ubyte" + ext)
                if root and os.path.exists(img) and os.path.exists(lab):
                    x = _read_idx(img).reshape(-1, 784)[:limit].astype(np.float32) / 255.0
                    y = _read_idx(lab)[:limit].astype(np.int64)
                    return x, y, f"Fashion-MNIST ({d})"
    n = _SIZE[split] if limit is None else min(limit, _SIZE[split])
    rng = np.random.default_rng(0 if split == "train" else 1)
    return (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n),
            "synthetic (Fashion-MNIST not found)")
