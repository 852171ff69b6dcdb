"""``taiji.cuda``: PyTorch's ``torch.cuda`` queries over the CUDA backend (CuPy).

Everything here works without a GPU: ``is_available()`` is then False, ``device_count()``
is 0, and the calls that need a GPU raise a RuntimeError saying why there is none (CuPy not
installed, or CuPy finding no GPU) and what to do.

Example:
    >>> device = "cuda" if taiji.cuda.is_available() else "cpu"
    >>> x = taiji.ones(3, device=device)
"""
from __future__ import annotations

from taiji import backends as _backends


def _backend():
    """The CUDA backend, or the RuntimeError saying why there is none."""
    return _backends.get_backend("cuda")


def _index(device) -> int | None:
    if device is None:
        return None
    if isinstance(device, int):
        return device
    from taiji._device import device as _device
    d = _device(device)
    if d.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {d}")
    return d.index


def is_available() -> bool:
    """Can tensors live on ``'cuda'`` here (CuPy installed and a GPU visible)?"""
    return _backends.cuda_unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why ``is_available()`` is False (None when it is True)."""
    return _backends.cuda_unavailable_reason()


def device_count() -> int:
    """The number of visible GPUs (0 without CUDA)."""
    if not is_available():
        return 0
    return int(getattr(_backend(), "device_count", lambda: 1)())


def current_device() -> int:
    """The index of the GPU that new CUDA tensors land on."""
    return int(getattr(_backend(), "current_device", lambda: 0)())


def set_device(device) -> None:
    """Make GPU ``device`` (an index, 'cuda:N' or a taiji.device) the current one."""
    i = _index(device)
    be = _backend()
    if i is not None and hasattr(be, "set_device"):
        be.set_device(i)


class device:
    """Context manager: GPU ``index`` is current inside the block (``torch.cuda.device``)."""

    def __init__(self, index):
        self.index = _index(index)

    def __enter__(self):
        self.prev = current_device()
        if self.index is not None:
            set_device(self.index)
        return self

    def __exit__(self, *exc):
        set_device(self.prev)


def synchronize(device=None) -> None:
    """Wait until every kernel queued on the GPU has finished (timing needs this)."""
    _backend().synchronize(_index(device))


def get_device_name(device=None) -> str:
    """The GPU's name, e.g. 'NVIDIA H100 80GB HBM3'."""
    be = _backend()
    return be.get_device_name(_index(device)) if hasattr(be, "get_device_name") else be.name


def get_device_capability(device=None) -> tuple:
    """(major, minor) compute capability."""
    be = _backend()
    return be.get_device_capability(_index(device)) if hasattr(
        be, "get_device_capability") else (0, 0)


def mem_get_info(device=None) -> tuple:
    """(free, total) bytes of GPU memory."""
    return _backend().mem_get_info(_index(device))


def _stat(name: str, device) -> int:
    be = _backend()
    fn = getattr(be, name, None)
    return int(fn(_index(device))) if fn is not None else 0


def memory_allocated(device=None) -> int:
    """Bytes held by live CUDA tensors (CuPy's memory pool in use)."""
    return _stat("memory_allocated", device)


def max_memory_allocated(device=None) -> int:
    """Peak of ``memory_allocated`` since ``reset_peak_memory_stats()``; before any reset,
    the memory pool's high-water mark (what it holds, an upper bound of the peak)."""
    return _stat("max_memory_allocated", device)


def memory_reserved(device=None) -> int:
    """Bytes the memory pool holds (in use or cached for reuse)."""
    return _stat("memory_reserved", device)


def reset_peak_memory_stats(device=None) -> None:
    """Start tracking the exact peak of ``memory_allocated`` from now."""
    fn = getattr(_backend(), "reset_peak_memory_stats", None)
    if fn is not None:
        fn(_index(device))


def empty_cache() -> None:
    """Return the memory pool's unused blocks to the driver."""
    fn = getattr(_backend(), "empty_cache", None)
    if fn is not None:
        fn()


def manual_seed(seed: int) -> None:
    """Seed the current GPU's default generator (draws with ``device='cuda'``)."""
    from taiji import random as R
    R._gen(None, "cuda").manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """Seed the default generator of every GPU used so far (and those created later start
    from the CPU generator's seed)."""
    from taiji import random as R
    for g in R._device_generators.values():
        g.manual_seed(seed)


__all__ = ["is_available", "unavailable_reason", "device_count", "current_device",
           "set_device", "device", "synchronize", "get_device_name", "get_device_capability",
           "mem_get_info", "memory_allocated", "max_memory_allocated", "memory_reserved",
           "reset_peak_memory_stats", "empty_cache", "manual_seed", "manual_seed_all"]
