"""Samplers (PyTorch's names): which dataset indices an epoch visits, and in what order.

Random samplers draw one key per epoch from a ``taiji.Generator`` (the global one unless
``generator=`` is given), so ``taiji.manual_seed`` makes shuffling reproducible, and the
permutation itself comes from taiji's counter-based RNG. ``state_dict()`` records the
current epoch's key; ``load_state_dict()`` makes the next epoch replay it (exact resume).
"""
from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

import numpy as np

from taiji import _ops as O
from taiji import random as R

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "DistributedSampler"]


def _draw_key(generator) -> list[int]:
    g = R.default_generator if generator is None else generator
    return [int(v) for v in g.next_key().numpy()]


def _key(k) -> O.Tensor:
    return O.const(np.asarray(k, dtype=np.uint32))


def seed_from_key(k) -> int:
    """A non-negative 63-bit integer seed from a key ``[hi, lo]``."""
    return ((int(k[0]) << 32) | int(k[1])) & ((1 << 63) - 1)


def _perm(k, n: int) -> np.ndarray:
    return R.permutation(_key(k), n).numpy().astype(np.int64, copy=False)


class Sampler:
    """Base class: ``__iter__`` yields dataset indices; ``__len__`` counts them."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """State needed to replay the current epoch (empty for deterministic samplers)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``: the next epoch replays the saved one."""


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _epoch_indices(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class _KeyedSampler(Sampler):
    """A sampler whose epoch is a function of one key drawn from ``generator``."""

    generator = None
    _epoch_key = None
    _resume_key = None

    def _next_key(self) -> list[int]:
        if self._resume_key is not None:
            k, self._resume_key = self._resume_key, None
        else:
            k = _draw_key(self.generator)
        self._epoch_key = k
        return k

    def _epoch_indices(self) -> np.ndarray:
        return self._indices_for(self._next_key())

    def _indices_for(self, k) -> np.ndarray:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        return iter(self._epoch_indices().tolist())

    def state_dict(self) -> dict:
        g = self.generator
        return {"epoch_key": self._epoch_key,
                "generator_state": None if g is None else [int(v) for v in g.get_state()
                                                           .numpy()]}

    def load_state_dict(self, state: dict) -> None:
        self._resume_key = state.get("epoch_key")
        gs = state.get("generator_state")
        if gs is not None and self.generator is not None:
            self.generator.set_state(_key(gs))


class RandomSampler(_KeyedSampler):
    """A random order of the dataset (or ``num_samples`` draws with replacement).

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw with replacement.
        num_samples: how many indices per epoch (default: ``len(data_source)``); without
            replacement, more than the length concatenates independent permutations.
        generator: a ``taiji.Generator``; default: one key per epoch from the global one.
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _indices_for(self, k) -> np.ndarray:
        n, m = len(self.data_source), self.num_samples
        if self.replacement:
            return R.randint(_key(k), (m,), 0, n).numpy().astype(np.int64)
        parts = [_perm(k if j == 0 else R.fold_in(_key(k), j).numpy(), n)
                 for j in range(math.ceil(m / n) if n else 0)]
        return np.concatenate(parts)[:m] if parts else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_KeyedSampler):
    """The given ``indices`` in a random order."""

    def __init__(self, indices: Sequence[int], generator=None):
        self.indices = indices
        self.generator = generator

    def _indices_for(self, k) -> np.ndarray:
        return np.asarray(self.indices, dtype=np.int64)[_perm(k, len(self.indices))]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(_KeyedSampler):
    """Indices 0..len(weights)-1 drawn with probability proportional to ``weights``.

    Args:
        weights: non-negative weights (need not sum to one).
        num_samples: draws per epoch.
        replacement: with replacement (default); without, no index repeats.
        generator: a ``taiji.Generator`` (default: the global one).
    """

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        w = np.asarray(weights.numpy() if isinstance(weights, O.Tensor) else weights,
                       dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{list(w.shape)}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        if not isinstance(num_samples, int) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not replacement and num_samples > int((w > 0).sum()):
            raise RuntimeError(f"cannot draw {num_samples} samples without replacement from "
                               f"{int((w > 0).sum())} non-zero weights")
        self.weights, self.num_samples = w, num_samples
        self.replacement, self.generator = bool(replacement), generator

    def _indices_for(self, k) -> np.ndarray:
        u = R.uniform(_key(k), (self.num_samples if self.replacement else len(self.weights),),
                      dtype="float64").numpy()
        if self.replacement:
            cdf = np.cumsum(self.weights)
            cdf /= cdf[-1]
            return np.minimum(np.searchsorted(cdf, u, side="right"),
                              len(self.weights) - 1).astype(np.int64)
        with np.errstate(divide="ignore"):  # Efraimidis-Spirakis: top-k of u^(1/w)
            score = np.where(self.weights > 0, np.log1p(-u) / self.weights, -np.inf)
        return np.argsort(-score, kind="stable")[:self.num_samples].astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size``.

    Example:
        >>> list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def _iter_arrays(self, skip: int = 0) -> Iterator[np.ndarray]:
        """Batches as int64 arrays, skipping the first ``skip`` without materialising them."""
        bs = self.batch_size
        if hasattr(self.sampler, "_epoch_indices"):
            idx = self.sampler._epoch_indices()
            stop = (len(idx) // bs) * bs if self.drop_last else len(idx)
            for s in range(skip * bs, stop, bs):
                yield idx[s:s + bs]
            return
        buf, i = [], 0
        for x in self.sampler:
            buf.append(int(x))
            if len(buf) == bs:
                if i >= skip:
                    yield np.asarray(buf, dtype=np.int64)
                buf, i = [], i + 1
        if buf and not self.drop_last and i >= skip:
            yield np.asarray(buf, dtype=np.int64)

    def __iter__(self) -> Iterator[list[int]]:
        for b in self._iter_arrays():
            yield b.tolist()

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()} if hasattr(self.sampler, "state_dict") \
            else {}

    def load_state_dict(self, state: dict) -> None:
        if "sampler" in state and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])


class DistributedSampler(Sampler):
    """This rank's share of the dataset (``num_replicas`` equal, disjoint shards).

    The order is a function of ``seed`` and the epoch only, so every rank agrees; call
    ``set_epoch(e)`` before each epoch to reshuffle.

    Args:
        dataset: the dataset (only its length is used).
        num_replicas: world size (default: ``$WORLD_SIZE`` or 1).
        rank: this rank (default: ``$RANK`` or 0).
        shuffle: shuffle (with ``seed`` + epoch) or keep the order.
        seed: the shared shuffling seed.
        drop_last: drop the tail so shards divide evenly (else pad by repeating indices).
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None:
            num_replicas = int(os.environ.get("WORLD_SIZE", 1))
        if rank is None:
            rank = int(os.environ.get("RANK", 0))
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def _epoch_indices(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            idx = R.permutation(R.fold_in(R.key(self.seed), self.epoch), n).numpy()
            idx = idx.astype(np.int64)
        else:
            idx = np.arange(n, dtype=np.int64)
        if not self.drop_last:
            pad = self.total_size - len(idx)
            if pad > 0:
                idx = np.concatenate([idx, np.resize(idx, pad)])
        else:
            idx = idx[:self.total_size]
        return idx[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self._epoch_indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` in the shuffle, so each epoch has its own order."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state.get("epoch", self.epoch))
