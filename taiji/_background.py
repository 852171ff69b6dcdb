"""The one background thread that compiles kernels (fused regions of jit programs, and the
primitives' own loop kernels in taiji/_kernels.py), so compiling never blocks the caller.

Jobs run in submission order. When the queue runs dry the idle hooks run (the disk cache of
kernels starts its builds there), then the thread exits; the next ``submit`` starts another.

fork() while the thread is inside numba/LLVM (or importing it) hands the child locks that no
thread will ever release (a DataLoader's process workers fork). Waiting for the job in a
before-fork hook is no cure: the job may itself need a lock another before-fork hook has
taken (logging's), and both wait forever. So a fork never waits: the child starts with no
thread and an empty queue (each dropped job's ``on_drop`` runs there, so its owner may ask
again), and if a job was running at the fork the child compiles nothing (``_usable`` is
False: its kernels stay on NumPy). At exit, queued jobs are dropped and the running one
finishes, so the interpreter never shuts down underneath the compiler.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Callable

_queue: list = []          # (job, on_drop)
_idle_hooks: list = []
_lock = threading.Lock()
_running = threading.Lock()  # held while a job runs (fork waits on it)
_worker: threading.Thread | None = None


_prepared = False


def _prepare() -> None:
    """Import numba (and what it imports) in the caller's thread, once: an import running on
    the background thread when the process forks would leave the child a module lock that
    no thread releases (seen: a DataLoader worker stuck importing numpy.random)."""
    global _prepared
    if not _prepared:
        _prepared = True
        try:
            import numba  # noqa: F401
            import numba.core.typing.npydecl  # noqa: F401 - imported by the first compile
        except ImportError:
            pass


def submit(job: Callable[[], None], on_drop: Callable[[], None] | None = None) -> None:
    """Run ``job()`` on the background thread (exceptions are the job's to handle)."""
    global _worker
    _prepare()
    if not _usable:
        if on_drop is not None:
            on_drop()
        return
    with _lock:
        _queue.append((job, on_drop))
        if _worker is None:
            _worker = threading.Thread(target=_work, name="taiji-kernels", daemon=True)
            _worker.start()


def add_idle_hook(hook: Callable[[], None]) -> None:
    """Call ``hook()`` on the background thread each time the queue runs dry."""
    if hook not in _idle_hooks:
        _idle_hooks.append(hook)


def _work() -> None:
    global _worker
    while True:
        with _lock:
            job = _queue.pop(0)[0] if _queue else None
        if job is None:
            for hook in _idle_hooks:
                hook()
            with _lock:
                if not _queue:
                    _worker = None
                    return
            continue
        with _running:
            try:
                job()
            except Exception:  # noqa: S110 - a failed compile leaves its owner on NumPy
                pass


def busy() -> bool:
    with _lock:
        return _worker is not None or bool(_queue)


def wait(timeout: float = 60.0) -> bool:
    """Block until every submitted job has run; False if ``timeout`` passed first."""
    t0 = time.time()
    while busy():
        if time.time() - t0 > timeout:
            return False
        time.sleep(0.01)
    return True


_usable = True


def _after_fork_child() -> None:
    global _worker, _lock, _running, _usable
    if _running.locked():
        _usable = False
    _lock, _running = threading.Lock(), threading.Lock()
    for _, on_drop in _queue:
        if on_drop is not None:
            on_drop()
    _queue.clear()
    _worker = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)


def _stop_at_exit() -> None:
    with _lock:
        _queue.clear()
        _idle_hooks.clear()  # no new disk-cache builds while the interpreter shuts down
    wait(timeout=30.0)


atexit.register(_stop_at_exit)
