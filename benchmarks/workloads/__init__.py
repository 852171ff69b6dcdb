"""The suite's workloads, one module each. Every module has ``cases(batches=None)``
returning its :class:`_harness.Case` list (``batches`` overrides its batch sizes)."""
from __future__ import annotations

import importlib

NAMES = ("mlp", "cnn", "recommender", "inference")


def cases(name: str, batches=None) -> list:
    """The cases of workload ``name``."""
    if name not in NAMES:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(NAMES)}")
    return importlib.import_module(f"workloads.{name}").cases(batches)
