"""Test-wide settings."""
import os

import pytest

# no disk cache of kernels: a test run must not write into the user's cache, and building
# one costs a C compile (tests/jit/test_kernel_cache.py turns it on in its own processes)
os.environ["TAIJI_KERNEL_CACHE"] = "0"

from taiji.compiler import fusion, kernel_cache  # noqa: E402
kernel_cache.enabled = False

# Fused regions run their NumPy tier in tests: compiling a numba kernel for every region of
# every jitted test function would cost minutes of CPU on a 2-core CI machine. The kernel tier
# is exercised by the tests that use the `kernels` fixture (tests/jit/test_fusion.py).
fusion.enabled = False


@pytest.fixture
def kernels(monkeypatch):
    """Turn background kernel compilation on for one test."""
    monkeypatch.setattr(fusion, "enabled", True)
    yield fusion
    fusion.wait_for_kernels(120)
