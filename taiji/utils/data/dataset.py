"""Datasets (PyTorch's ``torch.utils.data`` names): map-style ``Dataset`` and iterable
``IterableDataset``, ``TensorDataset``, ``ConcatDataset``, ``ChainDataset``, ``Subset`` and
``random_split``.

The batched fast path: a map-style dataset may define ``__getbatch__(indices)`` taking a
NumPy int64 array and returning exactly what ``default_collate([ds[i] for i in indices])``
would (or ``NotImplemented`` to fall back). ``DataLoader`` calls it when the collate function
is the default one, so in-memory datasets are batched by one fancy-indexing per array instead
of a Python loop over items.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Generic, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from taiji import _ops as O
from taiji.tensor import Tensor

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset",
           "Subset", "random_split"]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__``.

    Example:
        >>> class Squares(Dataset):
        ...     def __len__(self): return 10
        ...     def __getitem__(self, i): return i * i
    """

    def __getitem__(self, index) -> T_co:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A dataset that is a stream: subclasses define ``__iter__``.

    With ``num_workers > 0`` every worker iterates its own copy; use
    ``taiji.utils.data.get_worker_info()`` inside ``__iter__`` to shard the stream.
    """

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


def _host(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x._concrete("TensorDataset")
    return np.asarray(x)


class TensorDataset(Dataset):
    """Samples are the ``index``-th rows of each tensor (all share the first dimension).

    Batches are made by fancy-indexing each tensor once (the fast path).

    Args:
        *tensors: tensors (or NumPy arrays) with equal ``size(0)``.

    Example:
        >>> ds = TensorDataset(taiji.randn(100, 3), taiji.arange(100))
        >>> x, y = ds[0]
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        arrays = [_host(t) for t in tensors]
        n = arrays[0].shape[0] if arrays[0].ndim else None
        for i, a in enumerate(arrays):
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(
                    f"Size mismatch between tensors: tensor 0 has size(0) {n}, tensor {i} "
                    f"has shape {list(a.shape)}")
        self._arrays = arrays
        self.tensors = tuple(t if isinstance(t, Tensor) else O.const(a)
                             for t, a in zip(tensors, arrays))

    def __getitem__(self, index):
        return tuple(O.const(np.asarray(a[index])) for a in self._arrays)

    def __getbatch__(self, indices: np.ndarray):
        return [O.const(a[indices]) for a in self._arrays]

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    # pickled as plain arrays (spawned workers), never as taiji internals
    def __getstate__(self):
        return {"arrays": self._arrays}

    def __setstate__(self, state):
        self._arrays = state["arrays"]
        self.tensors = tuple(O.const(a) for a in self._arrays)


class ConcatDataset(Dataset):
    """The concatenation of several map-style datasets."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset; use "
                                "ChainDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def _locate(self, idx: int):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        if idx >= len(self):
            raise IndexError(f"index {idx} is out of range for ConcatDataset of length "
                             f"{len(self)}")
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        return d, idx - (self.cumulative_sizes[d - 1] if d else 0)

    def __getitem__(self, idx):
        d, i = self._locate(int(idx))
        return self.datasets[d][i]

    def __getbatch__(self, indices: np.ndarray):
        indices = np.asarray(indices)
        if indices.size == 0:
            return NotImplemented
        d = np.searchsorted(self.cumulative_sizes, indices, side="right")
        if (d != d[0]).any() or d[0] >= len(self.datasets):
            return NotImplemented  # spans datasets: the per-item path handles it
        sub = self.datasets[int(d[0])]
        fn = getattr(sub, "__getbatch__", None)
        if fn is None:
            return NotImplemented
        start = self.cumulative_sizes[int(d[0]) - 1] if d[0] else 0
        return fn(indices - start)


class ChainDataset(IterableDataset):
    """Iterable datasets chained one after another."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getbatch__(self, indices: np.ndarray):
        fn = getattr(self.dataset, "__getbatch__", None)
        if fn is None:
            return NotImplemented
        cache = self.__dict__.get("_index_cache")
        if cache is None or cache[0] is not self.indices:
            cache = (self.indices, np.asarray(self.indices, dtype=np.int64))
            self._index_cache = cache
        return fn(cache[1][np.asarray(indices)])

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths.

    Args:
        dataset: the dataset to split.
        lengths: sizes, or fractions summing to 1 (remainders go round-robin, like PyTorch).
        generator: a ``taiji.Generator`` (default: the global one).

    Returns:
        One ``Subset`` per length.

    Example:
        >>> train, val = random_split(ds, [0.8, 0.2], generator=taiji.Generator().manual_seed(0))
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if sum(lengths) != n:
        raise ValueError(f"Sum of input lengths ({sum(lengths)}) does not equal the length of "
                         f"the input dataset ({n})")
    from taiji._random_ops import randperm
    perm = randperm(n, generator=generator).numpy().tolist()
    out, offset = [], 0
    for ln in lengths:
        out.append(Subset(dataset, perm[offset:offset + ln]))
        offset += ln
    return out


def _has_batch_fetch(dataset: Any) -> bool:
    return callable(getattr(dataset, "__getbatch__", None))
