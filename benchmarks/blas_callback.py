"""Probe: does NumPy's OpenBLAS run its threaded products through a caller's callback?

OpenBLAS (0.3.27 on) lets the caller manage its threads: ``openblas_set_threads_callback_function``
(NumPy's build exports it as ``scipy_openblas_set_threads_callback_function64_``) installs a
function that receives each parallel section's jobs and must run them. This script installs
one that runs job 0 on the calling thread and the others on one Python worker thread, then
checks that products still give OpenBLAS's own bits and times them against OpenBLAS's own
threads. A developer's probe for a single thread pool shared by products and loop kernels
(see benchmarks/README.md, runs 32-34): OpenBLAS's idle workers spin for ~0.1 s after each
product and take the second core from any other thread.

    python benchmarks/blas_callback.py

Findings on the 2-core Xeon VM (2026-11-28): the callback is honoured (two jobs per product,
the same bits); the jobs of a level-3 product wait on each other's packed panels, so they must
run concurrently (a callback that ran them one after another hung); through a Python thread
the 512 x 784 x 256 product took 960-1,010 us against ~840, the 1024^3 one 1.0-2.1x its own
time (GIL hand-offs), so a real executor must not take the GIL (taiji/compiler/pool.py's
worker does not). The process keeps the callback until it exits.
"""
from __future__ import annotations

import ctypes
import queue
import threading
import time

import numpy as np

from taiji.compiler import blas

SETTER = "scipy_openblas_set_threads_callback_function64_"
DOJOB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t,
                            ctypes.c_void_p, ctypes.c_int)


def median_us(fn, n: int = 50) -> float:
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e6)


def main() -> int:
    paths = blas._openblas_paths()
    lib = ctypes.CDLL(paths[0]) if paths else None
    if lib is None or not hasattr(lib, SETTER):
        print(f"no {SETTER} in NumPy's BLAS ({paths[0] if paths else 'none found'})")
        return 1
    jobs: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()

    def worker():
        while True:
            fn, i, data, arg = jobs.get()
            fn(i, data, arg)  # (ctypes lets go of the GIL during the call)
            done.put(i)
    threading.Thread(target=worker, daemon=True).start()
    seen = {"sections": 0, "jobs": 0}

    @CALLBACK
    def run_jobs(sync, dojob, numjobs, elsize, jobdata, dojob_data):
        seen["sections"] += 1
        seen["jobs"] += numjobs
        fn = DOJOB(dojob)
        for i in range(1, numjobs):  # concurrently: level-3 jobs wait on each other
            jobs.put((fn, i, jobdata + i * elsize, dojob_data))
        fn(0, jobdata, dojob_data)
        for _ in range(1, numjobs):
            done.get()

    rng = np.random.default_rng(0)
    shapes = {"1024 x 1024 x 1024": ((1024, 1024), (1024, 1024)),
              "512 x 784 @ 784 x 256": ((512, 784), (784, 256))}
    pairs = {k: (rng.random(a, np.float32), rng.random(b, np.float32)) for k, (a, b) in shapes.items()}
    own = {k: (a @ b, median_us(lambda a=a, b=b: a @ b)) for k, (a, b) in pairs.items()}
    getattr(lib, SETTER)(run_jobs)
    for k, (a, b) in pairs.items():
        same = np.array_equal(a @ b, own[k][0])
        t = median_us(lambda a=a, b=b: a @ b)
        print(f"{k}: OpenBLAS's threads {own[k][1]:8.0f} us, callback {t:8.0f} us, "
              f"same bits: {same}")
    print(f"parallel sections through the callback: {seen['sections']}, jobs: {seen['jobs']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
