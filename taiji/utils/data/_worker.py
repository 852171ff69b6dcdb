"""What runs inside a DataLoader worker (a thread or a process): the fetch loop, per-worker
seeding, ``get_worker_info``, error wrapping and the NumPy-only wire format."""
from __future__ import annotations

import importlib
import os
import queue
import random as _pyrandom
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from taiji import _ops as O
from taiji.tensor import Tensor

__all__ = ["WorkerInfo", "get_worker_info"]

_POLL_S = 0.5


@dataclass
class WorkerInfo:
    """What a worker knows about itself (``get_worker_info()`` inside a worker).

    Attributes:
        id: this worker's index in ``range(num_workers)``.
        num_workers: how many workers the DataLoader runs.
        seed: this worker's seed for the current epoch (derived from the epoch's base seed
            and ``id``, so no two workers and no two epochs share a random stream).
        dataset: this worker's copy of the dataset.
        generator: the ``taiji.Generator`` seeded with ``seed`` (process workers: the global
            generator itself; thread workers: a private one, since threads share globals).
        rng: a ``numpy.random.Generator`` seeded with ``seed``.
        kind: ``"process"`` or ``"thread"``.
    """

    id: int
    num_workers: int
    seed: int
    dataset: Any
    generator: Any = None
    rng: Any = None
    kind: str = "process"


_process_info: WorkerInfo | None = None
_thread_local = threading.local()


def get_worker_info() -> WorkerInfo | None:
    """The current worker's ``WorkerInfo``, or None in the main process/thread.

    Example:
        >>> class Shards(IterableDataset):
        ...     def __iter__(self):
        ...         info = get_worker_info()
        ...         start = 0 if info is None else info.id
        ...         step = 1 if info is None else info.num_workers
        ...         return iter(range(start, 100, step))
    """
    info = getattr(_thread_local, "info", None)
    return info if info is not None else _process_info


def current_generator():
    """The generator random transforms should draw from: the worker's own in a thread
    worker, else None (the global generator, which process workers seed per worker)."""
    info = getattr(_thread_local, "info", None)
    return None if info is None else info.generator


def worker_seed(base_seed: int, worker_id: int) -> int:
    """A 63-bit seed for ``worker_id`` in the epoch whose base seed is ``base_seed``."""
    s = np.random.SeedSequence([int(base_seed), int(worker_id)]).generate_state(2, np.uint32)
    return ((int(s[0]) << 32) | int(s[1])) & ((1 << 63) - 1)


def _seed(info: WorkerInfo, base_seed: int) -> None:
    import taiji
    info.seed = worker_seed(base_seed, info.id)
    info.rng = np.random.default_rng(info.seed)
    if info.kind == "process":  # this process is ours: seed every global stream
        taiji.manual_seed(info.seed)
        _pyrandom.seed(info.seed)
        np.random.seed(info.seed & 0xFFFFFFFF)
        info.generator = taiji.random.default_generator
    else:
        info.generator = taiji.Generator().manual_seed(info.seed)


# ---------------------------------------------------------------- errors and wire format

class ExceptionWrapper:
    """An exception raised in a worker, carried to the main process as text."""

    def __init__(self, where: str):
        et, ev, tb = sys.exc_info()
        self.type_ref = (et.__module__, et.__qualname__) if et is not None else None
        self.type_name = et.__name__ if et is not None else "Exception"
        self.where = where
        self.tb = "".join(traceback.format_exception(et, ev, tb))

    def reraise(self):
        msg = f"Caught {self.type_name} {self.where}.\nOriginal {self.tb}"
        et = None
        if self.type_ref is not None:
            mod = sys.modules.get(self.type_ref[0])
            try:
                if mod is None:
                    mod = importlib.import_module(self.type_ref[0])
                et = mod
                for part in self.type_ref[1].split("."):
                    et = getattr(et, part)
            except Exception:
                et = None
        if et is KeyError:  # KeyError's str() would repr the whole message
            et = None
        try:
            exc = et(msg) if isinstance(et, type) and issubclass(et, BaseException) else None
        except Exception:
            exc = None
        raise (exc if exc is not None else RuntimeError(msg))


class Exhausted:
    """An iterable-style worker has no more data this epoch."""


class _WireTensor:
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a

    def __reduce__(self):
        return (_WireTensor, (self.a,))


def to_wire(x):
    """Replace tensors by plain NumPy arrays (what crosses a process boundary)."""
    if isinstance(x, Tensor):
        return _WireTensor(np.asarray(x._concrete("DataLoader worker")))
    if isinstance(x, dict):
        return {k: to_wire(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(to_wire(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(to_wire(v) for v in x)
    return x


def from_wire(x):
    if isinstance(x, _WireTensor):
        return O.const(x.a)
    if isinstance(x, dict):
        return {k: from_wire(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(from_wire(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(from_wire(v) for v in x)
    return x


# ---------------------------------------------------------------- fetching

class Fetcher:
    """Turns a task (batch indices, one index, or "next" for iterable datasets) into data."""

    def __init__(self, dataset, auto_collation: bool, collate_fn: Callable, drop_last: bool,
                 batch_size: int | None, fast: bool, iterable: bool):
        self.dataset, self.auto_collation, self.collate_fn = dataset, auto_collation, collate_fn
        self.drop_last, self.batch_size, self.fast, self.iterable = (drop_last, batch_size,
                                                                      fast, iterable)
        self._it = None
        self._done = False

    def reset(self) -> None:
        self._it, self._done = None, False

    def fetch(self, task):
        if self.iterable:
            return self._next_iterable()
        if not self.auto_collation:
            return self.collate_fn(self.dataset[int(task)])
        if self.fast:
            out = self.dataset.__getbatch__(task)
            if out is not NotImplemented:
                return out
        idx = task.tolist() if isinstance(task, np.ndarray) else list(task)
        getitems = getattr(self.dataset, "__getitems__", None)
        data = getitems(idx) if getitems else [self.dataset[i] for i in idx]
        return self.collate_fn(data)

    def _next_iterable(self):
        if self._done:
            raise StopIteration
        if self._it is None:
            self._it = iter(self.dataset)
        if not self.auto_collation:
            try:
                return self.collate_fn(next(self._it))
            except StopIteration:
                self._done = True
                raise
        items = []
        for x in self._it:
            items.append(x)
            if len(items) == self.batch_size:
                break
        if len(items) < self.batch_size:
            self._done = True
            if not items or self.drop_last:
                raise StopIteration
        return self.collate_fn(items)


def worker_loop(kind: str, dataset, fetch_args: tuple, index_queue, result_queue,
                worker_id: int, num_workers: int, epoch0: int, base_seed: int,
                worker_init_fn, parent_pid: int) -> None:
    """The body of one worker: seed, run ``worker_init_fn``, then answer tasks until told to
    stop (None) or, for a process, until the parent is gone."""
    global _process_info
    info = WorkerInfo(worker_id, num_workers, 0, dataset, kind=kind)
    _seed(info, base_seed)
    if kind == "process":
        _process_info = info
    else:
        _thread_local.info = info
    where = f"in DataLoader worker {kind} {worker_id}"
    init_error = None
    if worker_init_fn is not None:
        try:
            worker_init_fn(worker_id)
        except Exception:
            init_error = ExceptionWrapper(where + " (in worker_init_fn)")
    fetcher = Fetcher(dataset, *fetch_args)
    epoch = epoch0
    try:
        while True:
            try:
                msg = index_queue.get(timeout=_POLL_S)
            except queue.Empty:
                if kind == "process" and os.getppid() != parent_pid:
                    return  # the main process died without telling us
                continue
            if msg is None:
                return
            task_epoch, task_id, task, seed = msg
            if task_epoch != epoch:  # persistent workers: a new epoch, a new seed
                epoch = task_epoch
                _seed(info, seed)
                fetcher.reset()
            if init_error is not None:
                data = init_error
            else:
                try:
                    data = fetcher.fetch(task)
                    if kind == "process":
                        data = to_wire(data)
                except StopIteration:
                    data = Exhausted()
                except Exception:
                    data = ExceptionWrapper(where)
            result_queue.put((task_epoch, task_id, data))
    except KeyboardInterrupt:
        return
