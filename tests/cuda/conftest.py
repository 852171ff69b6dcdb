"""Fixtures for the device tests: ``fake_cuda`` registers the fake CUDA backend
(tests/cuda/fake_cuda.py) for one test; ``cuda_or_skip`` gives the real one or skips."""
import pytest

from taiji import backends as B


@pytest.fixture
def fake_cuda():
    """The fake 'cuda' backend, registered for this test only (a real one is put back)."""
    from fake_cuda import FakeCudaBackend
    from taiji import random as R
    real = B._BACKENDS.get("cuda")
    gens = dict(R._device_generators)
    be = FakeCudaBackend()
    B.register_backend("cuda", be)
    R._device_generators.clear()
    try:
        yield be
    finally:
        B.unregister_backend("cuda")
        if real is not None:
            B.register_backend("cuda", real)
        R._device_generators.clear()
        R._device_generators.update(gens)
