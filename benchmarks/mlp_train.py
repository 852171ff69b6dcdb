"""Seed MLP training step (784-256-128-10, ReLU, cross-entropy, Adam 1e-3) side by side:
hand-written NumPy, taiji eager, taiji jit, PyTorch eager, JAX jit. Kept for its command
line; it is the suite's ``mlp`` workload (``suite.py --workloads mlp``), with the same
options (``--batches --reps --seconds --only --json ...``) and its JSON in
``benchmarks/results/mlp_train.json`` unless ``--json`` says otherwise.

    python benchmarks/mlp_train.py [--batches 64 128 512] [--reps 5] [--seconds 0.6]
    python benchmarks/mlp_train.py --only "taiji jit" "jax jit"
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite import HERE, main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--workloads", "mlp", "--json",
                   os.path.join(HERE, "results", "mlp_train.json"), *sys.argv[1:]],
                  prog="mlp_train.py"))
