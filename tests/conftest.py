"""Test-wide settings."""
import pytest

from taiji.compiler import fusion

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
