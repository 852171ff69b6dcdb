"""CUDA numerics switches (PyTorch's ``torch.backends.cuda`` names).

``taiji.backends.cuda.matmul.allow_tf32``: float32 matmuls (and convolutions, which are
matmuls here) may use TF32 tensor cores on GPUs that have them (compute capability >= 8.0):
inputs rounded to a 10-bit mantissa, products accumulated in float32. It is **on by
default, as JAX's default matmul precision is on those GPUs**; set it to False for full
float32 products (``TAIJI_ALLOW_TF32=0`` sets that at startup). PyTorch's default is False.
"""
from __future__ import annotations

import os


class _MatmulFlags:
    """``matmul.allow_tf32``: see the module docstring."""

    def __init__(self):
        self._allow_tf32 = os.environ.get("TAIJI_ALLOW_TF32", "1") not in ("0", "false", "False")

    @property
    def allow_tf32(self) -> bool:
        return self._allow_tf32

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        self._allow_tf32 = bool(value)
        _apply()

    def __repr__(self) -> str:
        return f"taiji.backends.cuda.matmul(allow_tf32={self._allow_tf32})"


matmul = _MatmulFlags()


def _apply() -> None:
    """Hand the switch to the CUDA backend if it is loaded (it applies it when it loads)."""
    from taiji import backends
    be = backends._BACKENDS.get("cuda")
    if be is not None and hasattr(be, "set_allow_tf32"):
        be.set_allow_tf32(matmul.allow_tf32)


def is_built() -> bool:
    """Can this taiji use CUDA at all (CuPy importable and a GPU present)?"""
    from taiji.backends import cuda_unavailable_reason
    return cuda_unavailable_reason() is None
