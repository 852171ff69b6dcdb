"""Randomness in both styles, from one counter-based generator (Threefry-2x32).

JAX style: explicit keys. ``key = taiji.random.key(0)``; ``k1, k2 = taiji.random.split(key)``;
``taiji.random.normal(k1, (3,))``. The same key gives the same numbers eagerly, under jit and
under vmap.

PyTorch style: ``taiji.manual_seed(0)`` seeds the global ``Generator``; ``taiji.randn(3)``
draws from it. A generator's state is a key tensor that each draw advances, so under jit it
is ordinary implicit state.
"""
from __future__ import annotations

import math

import numpy as np

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji._prims.random import threefry2x32

__all__ = ["key", "PRNGKey", "split", "fold_in", "bits", "uniform", "normal", "bernoulli",
           "randint", "permutation", "Generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "default_generator"]

_U32 = dt.uint32
_SPLIT, _FOLD, _BITS = 0xFFFFFFFF, 0xFFFFFFFE, 0


def _u32(values, like=None) -> O.Tensor:
    """uint32 constants, on the device of key ``like`` when given."""
    return O.const(np.asarray(values, dtype=np.uint32), like)


def key(seed: int) -> O.Tensor:
    """A PRNG key (uint32[2]) from an integer seed."""
    seed = int(seed)
    if seed < 0:
        seed &= (1 << 64) - 1
    return _u32([(seed >> 32) & 0xFFFFFFFF, seed & 0xFFFFFFFF])


PRNGKey = key


def _check_key(k):
    if not isinstance(k, O.Tensor) or k.dtype is not _U32 or k.shape[-1:] != (2,):
        got = f"{k.dtype} {list(k.shape)}" if isinstance(k, O.Tensor) else type(k).__name__
        raise TypeError(f"expected a PRNG key (uint32 tensor of shape [2], from "
                        f"taiji.random.key), got {got}")


def _cipher(k, x0, x1):
    k0, k1 = k[..., 0], k[..., 1]
    if k0.ndim:
        extra = x0.ndim
        k0 = k0.reshape(k0.shape + (1,) * extra)
        k1 = k1.reshape(k1.shape + (1,) * extra)
    return threefry2x32(k0, k1, x0, x1)


def split(k: O.Tensor, num: int = 2) -> O.Tensor:
    """``num`` new independent keys from ``k`` (shape [num, 2])."""
    _check_key(k)
    a, b = _cipher(k, _u32(np.arange(num), k), _u32(_SPLIT, k))
    return O.stack([a, b], -1)


def fold_in(k: O.Tensor, data: int) -> O.Tensor:
    """A new key from ``k`` and an integer (e.g. a step or rank)."""
    _check_key(k)
    d = data if isinstance(data, O.Tensor) else _u32(int(data) & 0xFFFFFFFF, k)
    a, b = _cipher(k, O.to(d, _U32), _u32(_FOLD, k))
    return O.stack([a, b], -1)


def bits(k: O.Tensor, shape=()) -> O.Tensor:
    """Uniform random uint32 bits of ``shape``."""
    _check_key(k)
    shape = tuple(shape)
    n = math.prod(shape)
    a, _ = _cipher(k, _u32(np.arange(n), k), _u32(_BITS, k))
    return a.reshape(k.shape[:-1] + shape)


def _unit(k, shape, d: dt.DType):
    """Uniform floats in [0, 1) with the full mantissa of ``d``."""
    if d is dt.float64:
        hi = O.to(bits(k, shape), dt.float64)
        lo = O.to(bits(fold_in(k, 1), shape), dt.float64)
        return (O.floor_divide(hi, 2048.0) * 4294967296.0 + lo) * (2.0 ** -53)
    # keep only as many bits as ``d`` has significand digits, so every value is exact in
    # ``d`` and the cast cannot round up to 1.0 (bfloat16: 8, float16: 11, float32: 24)
    p = {"bfloat16": 8, "float16": 11}.get(d.name, 24)
    b = O.floor_divide(bits(k, shape), _u32(1 << (32 - p), k))
    return O.to(O.to(b, dt.float32) * (2.0 ** -p), d)


def _float_dtype(dtype):
    d = dt.to_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    if not d.is_floating_point:
        raise TypeError(f"expected a floating dtype, got {d}")
    return d


def uniform(k, shape=(), dtype=None, minval=0.0, maxval=1.0) -> O.Tensor:
    """Uniform samples in [minval, maxval)."""
    d = _float_dtype(dtype)
    u = _unit(k, tuple(shape), d)
    return u * (maxval - minval) + minval if (minval, maxval) != (0.0, 1.0) else u


def normal(k, shape=(), dtype=None) -> O.Tensor:
    """Standard normal samples (Box-Muller over two uniform streams)."""
    d = _float_dtype(dtype)
    shape = tuple(shape)
    cd = dt.float64 if d is dt.float64 else dt.float32
    u1 = 1.0 - _unit(k, shape, cd)  # (0, 1]: log is finite
    u2 = _unit(fold_in(k, 2), shape, cd)
    return O.to(O.sqrt(-2.0 * O.log(u1)) * O.cos((2.0 * math.pi) * u2), d)


def bernoulli(k, p=0.5, shape=None) -> O.Tensor:
    """Bool samples that are True with probability ``p``."""
    if shape is None:
        shape = p.shape if isinstance(p, O.Tensor) else ()
    return _unit(k, tuple(shape), dt.float32) < p


def randint(k, shape, minval, maxval, dtype=dt.int64) -> O.Tensor:
    """Integers uniform in [minval, maxval)."""
    if maxval <= minval:
        raise ValueError(f"randint: expected minval < maxval, got {minval} and {maxval}")
    u = _unit(k, tuple(shape), dt.float64)
    return O.to(O.floor(u * float(maxval - minval)) + float(minval), dtype)


def permutation(k, n) -> O.Tensor:
    """A random permutation of ``range(n)`` (or of the rows of tensor ``n``)."""
    if isinstance(n, O.Tensor):
        idx = permutation(k, n.shape[0])
        return n[idx]
    from taiji._indexing import argsort
    return argsort(O.to(bits(k, (int(n),)), dt.int64))


# ---------------------------------------------------------------- PyTorch-style generators

_DEFAULT_SEED = 67280421310721  # PyTorch's default seed value


class Generator:
    """A stateful random generator (PyTorch's ``torch.Generator``).

    Its state is a key tensor; each draw splits it into (next state, key for this draw).
    """

    def __init__(self, device="cpu"):
        from taiji._device import device as _device
        self.device = _device(device)
        self._seed = _DEFAULT_SEED
        self._state = key(self._seed)
        if self.device.type != "cpu":  # the state lives on the device it draws for
            self._state = self._state.to(self.device)

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = int(seed)
        self._state._assign(key(self._seed))
        return self

    def seed(self) -> int:
        s = int.from_bytes(np.random.default_rng().bytes(8), "little") & ((1 << 63) - 1)
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> O.Tensor:
        """The state as a CPU uint32 tensor (as in PyTorch, whatever the device)."""
        return O.const(np.array(self._state._concrete("get_state()"), copy=True))

    def set_state(self, state: O.Tensor) -> "Generator":
        _check_key(state)
        self._state._assign(state)
        return self

    def next_key(self) -> O.Tensor:
        """Advance the state; return a fresh key for one draw."""
        ks = split(self._state, 2)
        self._state._assign(ks[0])
        return ks[1]


default_generator = Generator()


_device_generators: dict = {}  # taiji.device -> the default generator of a GPU


def _gen(generator, device=None) -> Generator:
    """``generator``, else the default generator of ``device`` (the CPU's for None or 'cpu';
    each GPU has its own, whose state lives on it, as in PyTorch)."""
    if generator is not None:
        return generator
    if device is None:
        return default_generator
    from taiji._device import device as _device
    d = device if isinstance(device, _device) else _device(device)
    if d.type == "cpu":
        return default_generator
    if d.index is None:
        from taiji import cuda
        d = _device(d.type, cuda.current_device())
    g = _device_generators.get(d)
    if g is None:
        g = _device_generators[d] = Generator(d)
        g.manual_seed(default_generator.initial_seed())
    return g


def manual_seed(seed: int) -> Generator:
    """Seed the global generators (the CPU's and each GPU's): every eager random call
    becomes reproducible."""
    for g in _device_generators.values():
        g.manual_seed(seed)
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> O.Tensor:
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


def _uniform_like(t, a, b, generator=None):
    d = t.dtype if t.dtype.is_floating_point else dt.get_default_dtype()
    u = uniform(_gen(generator, t.device).next_key(), t.shape, d)
    return u * (b - a) + a if (a, b) != (0.0, 1.0) else u


def _normal_like(t, mean, std, generator=None):
    d = t.dtype if t.dtype.is_floating_point else dt.get_default_dtype()
    z = normal(_gen(generator, t.device).next_key(), t.shape, d)
    return z * std + mean if (mean, std) != (0.0, 1.0) else z
