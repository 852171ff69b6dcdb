"""OpenBLAS's parallel sections run on the pool's worker (taiji/compiler/pool.py).

A native program whose products stay on OpenBLAS's threads (``blas.kblocks`` is None: where
OpenBLAS's one- and two-thread products differ at every K, so a program cannot switch, as on
a 2-core Zen 3 VM) used to leave the second core to OpenBLAS's worker, which spins ~0.1 s
after each product and runs nothing else: the bias and activation kernels and the optimizer's
update between products ran on one core (the seed MLP's Adam update of its 784 x 256 weight:
~115 us, divider-bound). OpenBLAS (0.3.27 on) lets its caller run its parallel sections
(``openblas_set_threads_callback_function``): while such a program runs, a callback here
hands each section's second job to the pool's worker and runs the first itself, so the
worker computes half of each product exactly as OpenBLAS's own thread would (the same jobs,
the same bits: the split is OpenBLAS's) and half of each big loop kernel between them.

A level-3 section's jobs wait on each other's packed panels, so they must run at once: when
the worker is absent (a forked child before its first program), busy (a loop kernel's half)
or does not take the job within ``pool.TAKE_SPINS``, the section's other jobs run on threads
started for them (pthreads) and joined; nothing waits on a thread that may never come.
Sections run one at a time, and once the first such program is built every section of the
process goes through the callback (``install``; NumPy's products in eager mode too, on the
same jobs, so the same bits): sections running at once, or one on OpenBLAS's own threads
next to one through the callback, share OpenBLAS's per-thread buffers (a product in another
Python thread came out wrong about once in 3,000 until both held). Linux (the pool) with
OpenBLAS on two threads only, where it was measured: on a 2-core Zen 3 VM the seed CNN's
compiled step ran ~16% faster (its im2col, col2im and pooling kernels in halves too).
"""
from __future__ import annotations

import atexit
import ctypes
import threading
from typing import Callable

import numpy as np

from taiji.compiler import blas, pool

SETTERS = ("scipy_openblas_set_threads_callback_function64_",
           "openblas_set_threads_callback_function64_",
           "scipy_openblas_set_threads_callback_function",
           "openblas_set_threads_callback_function")

_lock = threading.Lock()
_found: dict | None = None
_depth = 0  # program calls running now, in any Python thread
_installed = False


def _setter():
    lib = blas.library()
    if not lib or "cdll" not in lib:
        return None
    fn = blas._symbol(lib["cdll"], SETTERS)
    if fn is not None:
        fn.restype, fn.argtypes = None, [ctypes.c_void_p]
    return fn


def _build() -> dict:
    """The callback (a numba cfunc) and the setter; {} where either is missing."""
    if not pool.enabled:
        return {}
    lib = blas.library()
    if not lib or lib["get_threads"]() != 2:
        return {}
    setter = _setter()
    if setter is None:
        return {}
    from numba import cfunc, njit, types
    f = pool._intrinsics()
    fns = pool.functions()
    load, store, call_job, ccall = f["load"], f["store"], f["call_job"], f["ccall"]
    cas, pause = f["cas"], f["pause"]
    claim, together = fns["claim"], fns["together"]
    libc = ctypes.CDLL(None)
    create = ctypes.cast(libc.pthread_create, ctypes.c_void_p).value
    join = ctypes.cast(libc.pthread_join, ctypes.c_void_p).value
    sched_yield = libc.sched_yield
    sched_yield.restype, sched_yield.argtypes = ctypes.c_int, []
    job = pool.CTL + 8 * pool.JOB
    section = pool.CTL + 8 * pool.SECTION

    @cfunc(types.int64(types.int64))
    def start(p):
        # a started thread's body (``void *(*)(void *)``): one job, its words at ``p``
        call_job(load(p), load(p + 8), load(p + 16), load(p + 24))
        return 0

    @cfunc(types.void(types.int64, types.int64))
    def task(p, which):
        # the pool's task: job ``which`` of the section whose words ``callback`` wrote
        call_job(load(job), which, load(job + 8) + which * load(job + 16), load(job + 24))

    start_at, task_at = start.address, task.address

    @njit(nogil=True)
    def on_threads(dojob, numjobs, elsize, jobdata, arg):
        # jobs 1.. on threads started for them, job 0 here, then join them
        w = np.zeros(numjobs * 8, np.int64)  # per job: dojob, which, data, arg, thread id
        for i in range(1, numjobs):
            w[8 * i], w[8 * i + 1], w[8 * i + 2], w[8 * i + 3] = dojob, i, \
                jobdata + i * elsize, arg
            q = w.ctypes.data + 64 * i
            while ccall(create, q + 32, 0, start_at, q) != 0:
                sched_yield()  # (out of threads for a moment: the jobs cannot run alone)
        call_job(dojob, 0, jobdata, arg)
        for i in range(1, numjobs):
            ccall(join, w[8 * i + 4], 0, 0, 0)
        return w[0]  # (a use after the joins: numba frees an array after its last use)

    @cfunc(types.void(types.int32, types.int64, types.int32, types.uint64, types.int64,
                      types.int32))
    def callback(sync, dojob, numjobs, elsize, jobdata, arg):
        if numjobs <= 1:
            if numjobs == 1:
                call_job(dojob, 0, jobdata, arg)
            return
        # one section at a time, as OpenBLAS's own server runs them: two at once (one on
        # the worker, one on started threads) shared its per-thread buffers, and a product
        # in one of them came out wrong about once in 3,000
        while not cas(section, 0, 1):
            pause()
        if numjobs == 2 and claim():
            store(job, dojob)
            store(job + 8, jobdata)
            store(job + 16, elsize)
            store(job + 24, arg)
            if together(task_at):
                store(section, 0)
                return
        on_threads(dojob, numjobs, elsize, jobdata, arg)
        store(section, 0)

    return {"setter": setter, "callback": callback, "start": start, "task": task,
            "address": callback.address}


def found() -> dict:
    """The callback and OpenBLAS's setter, built once ({} where unavailable)."""
    global _found
    with _lock:
        if _found is None:
            try:
                _found = _build()
            except Exception:  # noqa: BLE001 - no callback: programs keep OpenBLAS's threads
                _found = {}
        return _found


def available() -> bool:
    """Whether native programs can run OpenBLAS's sections on the pool (``shared``)."""
    return bool(found())


def install() -> None:
    """Run every OpenBLAS section of this process through the callback from now on. Once,
    and never undone: a section on OpenBLAS's own threads running next to one through the
    callback shares OpenBLAS's per-thread buffers with it (a product computed in another
    Python thread while programs came and went, installing and removing the callback, came
    out wrong), so the two never mix after this."""
    global _installed
    f = found()
    with _lock:
        if not _installed:
            f["setter"](f["address"])
            _installed = True
            atexit.register(_uninstall)


def _uninstall() -> None:
    # (at exit, before numba's code goes away: OpenBLAS's own threads for what remains)
    f = found()
    with _lock:
        f["setter"](None)


def _enter() -> None:
    global _depth
    with _lock:
        if _depth == 0:
            pool.set_on(True)
        _depth += 1


def _leave() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            pool.set_on(False)


def shared(fn: Callable) -> Callable:
    """``fn`` (a native program that keeps OpenBLAS's threads and halves its big loop
    kernels on the pool) with OpenBLAS's sections run on the pool's worker while it runs."""
    wake = pool.wake
    install()

    def run(*args):
        wake()
        _enter()
        try:
            return fn(*args)
        finally:
            _leave()
    run.pool = "shared"
    return run
