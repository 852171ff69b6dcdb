"""``DataLoader``: batches from a dataset, in the main thread or in worker threads/processes.

Design (PyTorch's, simplified):

* Indices come from a sampler grouped by a ``BatchSampler``. Each epoch (each ``iter()``)
  draws a base seed from ``generator`` (default: the global generator); worker ``i`` of that
  epoch is seeded with a seed derived from (base seed, i), so one ``taiji.manual_seed`` makes
  shuffling and worker randomness reproducible and no two workers share a stream.
* Workers get tasks round-robin (up to ``prefetch_factor`` each in flight) and results are
  yielded in order. Process workers send batches back as NumPy arrays.
* A worker exception is re-raised in the main process with the worker's traceback; a stall
  longer than ``timeout`` raises; a worker that dies is reported; workers are daemons and are
  shut down when the iterator (or, with ``persistent_workers``, the loader) is collected and
  at interpreter exit.
* The fast path: when the collate function is the default one and the dataset defines
  ``__getbatch__`` (``TensorDataset``, ``Subset``/``ConcatDataset`` of one, the image
  datasets without transforms), a batch is one fancy-indexing per array.
* ``state_dict()`` / ``load_state_dict()`` record where the current epoch is, so a run can
  resume mid-epoch, bitwise, in a new process.
"""
from __future__ import annotations

import atexit
import itertools
import multiprocessing as mp
import os
import queue
import threading
import time
import weakref
from typing import Any, Callable, Iterator

import numpy as np

from taiji.utils.data import _worker as W
from taiji.utils.data._collate import default_collate, default_convert
from taiji.utils.data.dataset import IterableDataset, _has_batch_fetch
from taiji.utils.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                                      _draw_key, seed_from_key)

__all__ = ["DataLoader"]

_live_pools: "weakref.WeakSet[_Pool]" = weakref.WeakSet()


def _shutdown_all() -> None:
    for p in list(_live_pools):
        p.shutdown()


atexit.register(_shutdown_all)


class _Pool:
    """``num_workers`` workers (threads or processes) with one task queue each and one shared
    result queue."""

    def __init__(self, loader: "DataLoader", epoch: int, base_seed: int):
        self.kind = loader.worker_type
        self.n = loader.num_workers
        fetch_args = (loader._auto_collation, loader.collate_fn, loader.drop_last,
                      loader.batch_size, loader._fast, loader._iterable)
        if self.kind == "process":
            ctx = loader.multiprocessing_context
            ctx = mp.get_context(ctx) if isinstance(ctx, str) or ctx is None else ctx
            if ctx.get_start_method() == "fork":
                # a fork while the kernel compiler thread is inside an import or LLVM would
                # hand the workers locks no thread releases: let it finish first
                from taiji import _background
                _background.wait(120.0)
            self.result_queue = ctx.Queue()
            self.index_queues = [ctx.Queue() for _ in range(self.n)]
            make = ctx.Process
        else:
            self.result_queue = queue.Queue()
            self.index_queues = [queue.Queue() for _ in range(self.n)]
            make = threading.Thread
        self.workers = []
        for i in range(self.n):
            w = make(target=W.worker_loop, name=f"taiji-dataloader-{i}", daemon=True,
                     args=(self.kind, loader.dataset, fetch_args, self.index_queues[i],
                           self.result_queue, i, self.n, epoch, base_seed,
                           loader.worker_init_fn, os.getpid()))
            w.start()
            self.workers.append(w)
        self.alive = True
        _live_pools.add(self)

    def put(self, worker: int, msg) -> None:
        self.index_queues[worker].put(msg)

    def get(self, timeout: float, what: str):
        """The next result; raises on a stall longer than ``timeout`` or a dead worker."""
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                return self.result_queue.get(timeout=wait)
            except queue.Empty:
                pass
            for i, w in enumerate(self.workers):
                if not w.is_alive():
                    code = getattr(w, "exitcode", None)
                    pid = getattr(w, "pid", None)
                    self.shutdown(force=True)
                    raise RuntimeError(
                        f"DataLoader worker {i} (pid {pid}) exited unexpectedly with exit code "
                        f"{code} while {what}. It may have been killed (out of memory?) or "
                        f"crashed in native code; try num_workers=0 to see the error directly.")
            if deadline is not None and time.monotonic() >= deadline:
                self.shutdown(force=True)
                raise RuntimeError(
                    f"DataLoader timed out after {timeout} seconds while {what}: no worker "
                    f"delivered a batch in time (timeout={timeout}). A worker is stalled in "
                    f"the dataset or collate_fn, or the timeout is too short for one batch.")

    def shutdown(self, force: bool = False) -> None:
        """Stop the workers: ask politely, then (processes) terminate; ``force`` skips the
        polite wait (a stalled or broken pool)."""
        if not getattr(self, "alive", False):
            return
        self.alive = False
        _live_pools.discard(self)
        for q in self.index_queues:
            try:
                q.put(None)
            except Exception:
                pass
        deadline = time.monotonic() + (0.0 if force else 2.0 if self.kind == "process" else 0.2)
        for w in self.workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.kind == "process":
            for w in self.workers:
                if w.is_alive():
                    w.terminate()
                    w.join(timeout=1.0)
            for q in self.index_queues + [self.result_queue]:
                q.cancel_join_thread()
                q.close()

    def __del__(self):
        try:
            self.shutdown()
        except Exception:
            pass


class _SingleIter:
    """num_workers == 0: fetch in the calling thread."""

    def __init__(self, loader: "DataLoader", tasks: Iterator, skip: int):
        self.loader = loader
        self.fetcher = W.Fetcher(loader.dataset, loader._auto_collation, loader.collate_fn,
                                 loader.drop_last, loader.batch_size, loader._fast,
                                 loader._iterable)
        self.tasks = tasks
        for _ in range(skip if loader._iterable else 0):
            try:
                self.fetcher.fetch(None)
            except StopIteration:
                break

    def __next__(self):
        task = next(self.tasks)  # StopIteration ends the epoch
        return self.fetcher.fetch(task)


class _MultiIter:
    """num_workers > 0: round-robin tasks, in-order results, prefetching."""

    def __init__(self, loader: "DataLoader", tasks: Iterator, epoch: int, base_seed: int,
                 skip: int):
        self.loader, self.tasks, self.epoch, self.base_seed = loader, tasks, epoch, base_seed
        if loader._pool is not None and loader._pool.alive:
            self.pool = loader._pool
        else:
            self.pool = _Pool(loader, epoch, base_seed)
            if loader.persistent_workers:
                loader._pool = self.pool
        self.n = loader.num_workers
        self.active = [True] * self.n
        self.next_worker = 0
        self.send_idx = self.rcvd_idx = 0
        self.task_worker: dict[int, int] = {}
        self.buffer: dict[int, Any] = {}
        self.done = False
        # skipped batches (resume) are fetched and dropped, so each worker's random stream
        # advances exactly as in the uninterrupted run
        self.skip = skip
        for _ in range(loader.prefetch_factor * self.n):
            self._put()

    def _put(self) -> None:
        if not any(self.active):
            return
        try:
            task = next(self.tasks)
        except StopIteration:
            return
        for _ in range(self.n):
            w = self.next_worker
            self.next_worker = (self.next_worker + 1) % self.n
            if self.active[w]:
                break
        self.pool.put(w, (self.epoch, self.send_idx, task, self.base_seed))
        self.task_worker[self.send_idx] = w
        self.send_idx += 1

    def __next__(self):
        while True:
            if self.done:
                raise StopIteration
            if self.rcvd_idx in self.buffer:
                data = self.buffer.pop(self.rcvd_idx)
                w = self.task_worker.pop(self.rcvd_idx)
                self.rcvd_idx += 1
                if isinstance(data, W.Exhausted):
                    self.active[w] = False
                    self._put()
                    continue
                self._put()
                if isinstance(data, W.ExceptionWrapper):
                    data.reraise()
                if self.skip:
                    self.skip -= 1
                    continue
                return W.from_wire(data) if self.pool.kind == "process" else data
            if self.rcvd_idx >= self.send_idx:
                self._finish()
                raise StopIteration
            what = (f"waiting for batch {self.rcvd_idx} from worker "
                    f"{self.task_worker[self.rcvd_idx]}")
            try:
                epoch, tid, data = self.pool.get(self.loader.timeout, what)
            except BaseException:
                self.done = True
                if self.loader._pool is self.pool:
                    self.loader._pool = None
                raise
            if epoch == self.epoch:
                self.buffer[tid] = data

    def _finish(self) -> None:
        self.done = True
        if not self.loader.persistent_workers:
            self.pool.shutdown()

    def __del__(self):
        try:
            if not self.loader.persistent_workers:
                self.pool.shutdown()
        except Exception:
            pass


class _LoaderIter:
    """The iterator ``iter(loader)`` returns; counts batches for ``state_dict``."""

    def __init__(self, loader: "DataLoader", impl, skip: int):
        self._loader, self._impl = loader, impl
        self._yielded = skip
        self._exhausted = False

    def __iter__(self):
        return self

    def __next__(self):
        try:
            out = next(self._impl)
        except StopIteration:
            self._exhausted = True
            raise
        self._yielded += 1
        return out

    def __len__(self) -> int:
        return len(self._loader)


class DataLoader:
    """Iterate over ``dataset`` in batches (PyTorch's ``torch.utils.data.DataLoader``).

    Args:
        dataset: a map-style ``Dataset`` or an ``IterableDataset``.
        batch_size: samples per batch; None turns automatic batching off.
        shuffle: reshuffle every epoch (a ``RandomSampler``).
        sampler: where indices come from (excludes ``shuffle``).
        batch_sampler: yields lists of indices (excludes batch_size, shuffle, sampler,
            drop_last).
        num_workers: 0 loads in the calling thread; N > 0 starts N workers.
        collate_fn: merges a list of samples (default ``default_collate``).
        pin_memory: accepted for compatibility (no effect on the CPU).
        drop_last: drop the last incomplete batch.
        timeout: seconds to wait for a batch from the workers (0: forever).
        worker_init_fn: called as ``fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: ``"fork"``, ``"spawn"``, ``"forkserver"`` or a context;
            implies process workers.
        generator: the ``taiji.Generator`` for shuffling and worker base seeds (default:
            the global one).
        prefetch_factor: batches in flight per worker (default 2).
        persistent_workers: keep the workers between epochs.
        worker_type: ``"process"`` (default; each worker's global RNGs are seeded for it) or
            ``"thread"`` (no start-up cost, no pickling; shares the GIL, so it helps when the
            dataset releases it — NumPy, file I/O; random transforms should draw from
            ``get_worker_info().generator``, as ``taiji.datasets.transforms`` do).

    Example:
        >>> loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
        >>> for xb, yb in loader:
        ...     loss = F.cross_entropy(model(xb), yb)
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | None = None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True,
                 worker_type: str | None = None):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 "
                             "to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "
                             "multiprocessing. let num_workers > 0 to enable multiprocessing.")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if worker_type is None:
            worker_type = "process"
        if worker_type not in ("process", "thread"):
            raise ValueError(f"worker_type must be 'process' or 'thread', got {worker_type!r}")
        if multiprocessing_context is not None:
            if worker_type == "thread":
                raise ValueError("multiprocessing_context needs process workers, but "
                                 "worker_type='thread'")
        elif worker_type == "process":
            multiprocessing_context = "fork" if "fork" in mp.get_all_start_methods() \
                else "spawn"
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = 2 if prefetch_factor is None else int(prefetch_factor)
        self.pin_memory = pin_memory
        self.timeout = float(timeout)
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.worker_type = worker_type
        self.persistent_workers = persistent_workers
        self.generator = generator
        self._iterable = isinstance(dataset, IterableDataset)

        if self._iterable:
            if shuffle:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle option, but got shuffle={shuffle}")
            if sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 "sampler and batch_sampler options")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle \
                else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self._auto_collation = batch_sampler is not None or (self._iterable and
                                                             batch_size is not None)
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._fast = (collate_fn is default_collate and not self._iterable
                      and _has_batch_fetch(dataset))
        self._pool: _Pool | None = None
        self._iter: _LoaderIter | None = None
        self._epoch = 0
        self._base_seed: int | None = None
        self._resume: dict | None = None

    # ------------------------------------------------------------ iteration
    def _tasks(self, skip: int) -> Iterator:
        if self._iterable:
            return itertools.repeat(None)
        if self.batch_sampler is not None:
            bs = self.batch_sampler
            if hasattr(bs, "_iter_arrays"):
                return bs._iter_arrays(skip)
            return itertools.islice((np.asarray(b, dtype=np.int64) for b in bs), skip, None)
        return itertools.islice(iter(self.sampler), skip, None)

    def __iter__(self) -> _LoaderIter:
        skip = 0
        resume, self._resume = self._resume, None
        if resume is not None and resume.get("in_epoch"):
            skip = int(resume["batches_yielded"])
            base_seed = int(resume["base_seed"])
            self._restore_sampler(resume)
        else:
            base_seed = seed_from_key(_draw_key(self.generator))
        self._base_seed = base_seed
        self._epoch += 1
        tasks = self._tasks(skip if self.num_workers == 0 else 0)
        if self.num_workers == 0:
            impl = _SingleIter(self, tasks, skip)
        else:
            impl = _MultiIter(self, tasks, self._epoch, base_seed, skip)
        self._iter = _LoaderIter(self, impl, skip)
        return self._iter

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError if the stream has no length, as in PyTorch
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    # ------------------------------------------------------------ exact resume
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def _restore_sampler(self, state: dict) -> None:
        s = self._index_sampler()
        if s is not None and hasattr(s, "load_state_dict") and "sampler" in state:
            s.load_state_dict(state["sampler"])

    def state_dict(self) -> dict:
        """Where the current epoch is: its base seed, the sampler's epoch key (and its
        generator's state) and how many batches were yielded. ``taiji.save`` it with the
        model, optimizer and ``taiji.get_rng_state()``.

        Returns:
            A dict of numbers and lists (JSON-able).
        """
        it = self._iter
        in_epoch = it is not None and not it._exhausted
        s = self._index_sampler()
        out = {"in_epoch": bool(in_epoch), "batches_yielded": it._yielded if in_epoch else 0,
               "base_seed": self._base_seed if in_epoch else None, "epoch": self._epoch}
        if in_epoch and s is not None and hasattr(s, "state_dict"):
            out["sampler"] = s.state_dict()
        if self.generator is not None:
            out["generator_state"] = [int(v) for v in self.generator.get_state().numpy()]
        return out

    def load_state_dict(self, state: dict) -> None:
        """Make the next ``iter(self)`` continue the saved epoch where it stopped (same order,
        same worker seeds; already-seen batches are skipped by index, not loaded)."""
        self._resume = dict(state)
        self._epoch = int(state.get("epoch", 0)) - (1 if state.get("in_epoch") else 0)
        gs = state.get("generator_state")
        if gs is not None and self.generator is not None:
            from taiji import _ops as O
            self.generator.set_state(O.const(np.asarray(gs, dtype=np.uint32)))

    # ------------------------------------------------------------ cleanup
    def _shutdown_workers(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self):
        try:
            self._shutdown_workers()
        except Exception:
            pass
