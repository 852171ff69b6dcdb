"""A second thread for compiled CPU programs: one half of each big product and loop kernel.

Halving products through OpenBLAS's batch call (taiji/compiler/blas.py) keeps both cores
busy in the products only: everything between them (bias and activation kernels, the
optimizer's update) runs on the caller's thread while OpenBLAS's worker waits. In the seed
MLP's step at batch 512 that worker waited 23% of the time. So a native program that may
switch threads (``blas.kblocks``) runs its products on one OpenBLAS thread and hands the
second half of each big product *and* of each big loop kernel to this module's worker; the
primitives' own loop kernels (im2col, col2im, max pooling: ``plane_kernel``), called between
segments, hand it half their planes while such a program runs (the seed CNN's step: 24.6 ms
as a program on OpenBLAS's threads, 20.5 ms as a pool program).

One task at a time, in a control block of int64 words (``_ctl``): the caller writes the
task's arguments and a function address (a numba ``cfunc`` taking the arguments' address),
then posts it; the worker, spinning on the block, takes it (compare-and-swap) and runs it.
The caller computes its own half, then either finds the task still untaken and runs it itself
(the worker was asleep, busy or gone: a fork, a taken core), or waits for the worker to finish
it. Whoever runs a half, it is the same call on the same memory, so the bits never depend on
the worker, and nothing waits on a thread that may never come.

The worker spins between tasks (``SPIN`` pauses, then ``YIELD`` sched_yields: ~2 ms), then
parks on a futex, which the next pool program call wakes (``wake``), or the next task posted
(a CNN step's Python stretches between segments, im2col and pooling, outlast the spin): no
core is burnt while no program runs, and the worker never takes the GIL (a worker that
waited for it on a Python Event resumed only when the caller's segments let go of it, every
5 ms: the seed MLP's step at batch 512 ran at half speed). Native code holds the GIL, so only one program's segment
posts at a time. Linux only (the futex); ``TAIJI_POOL=0`` turns the pool off.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import platform
import sys
import threading
import time
from typing import Callable

import numpy as np

SPIN = 2000       # pauses (~25 ns each here) before the worker starts yielding its core
YIELD = 4000      # sched_yields (~0.5 us each when nothing else runs) before it parks
MIN_KERNEL = 32768  # elements: a smaller loop kernel runs whole (a hand-off costs ~1 us)
WHOLE_MAX = 2_000_000  # multiply-adds: a pool program's products that stay whole are at most
                       # this (on one thread: bigger ones want OpenBLAS's two, native.py)

# words of the control block (each flag on its own 64-byte line)
STATE, AWAKE, STOP, ON, FN, ARGS = 0, 8, 16, 24, 32, 40
NARGS = 64
RAN, STOLEN = ARGS + NARGS, ARGS + NARGS + 8  # tasks the worker ran; tasks run here instead
PARKS = STOLEN + 8  # times the worker parked
SERVING = PARKS + 8  # 1 while the worker is in ``serve``
NAP = SERVING + 8  # a struct timespec: how long a parked worker sleeps before it looks again
JOB = NAP + 8  # an OpenBLAS parallel section's second job: dojob, jobdata, elsize, dojob_data
SECTION = JOB + 8  # 1 while an OpenBLAS section runs through taiji/compiler/blas_threads.py
SYS_FUTEX = {"x86_64": 202, "AMD64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine())
FUTEX_WAIT, FUTEX_WAKE = 128, 129  # (the _PRIVATE forms: one process)
EMPTY, POSTED, TAKEN, DONE, CLAIMED = 0, 1, 2, 3, 4
TAKE_SPINS = 200_000  # pauses (~5 ms) an OpenBLAS section waits for the worker to take its job

# (parking is a Linux futex, so the worker sleeps and wakes without the GIL)
enabled = os.environ.get("TAIJI_POOL", "1") != "0" and sys.platform.startswith("linux") and \
    SYS_FUTEX is not None


def _aligned_block(words: int) -> np.ndarray:
    """int64 words starting on a 64-byte line, with a line of padding after: the flags the
    worker spins on share no line with other memory (whose writes would make each spin
    reload it, and make the writer wait)."""
    raw = np.zeros(words + 16, np.int64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + words]


_ctl = _aligned_block(SECTION + 1)  # lives as long as the module: its address is baked into
CTL = int(_ctl.ctypes.data)     # the native programs as a constant
_ctl[NAP + 1] = 100_000_000     # ns
_thread: threading.Thread | None = None
_lock = threading.RLock()  # (gemm builds its functions under it)
_built: dict | None = None


def _intrinsics() -> dict:
    """Atomic loads, stores and compare-and-swap on an address, an indirect call, a CPU
    pause, and an address as a pointer: what numba has no spelling for."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic
    i64 = ir.IntType(64)

    @intrinsic
    def load(typingctx, addr):
        def gen(context, builder, sig, args):
            return builder.load_atomic(builder.inttoptr(args[0], i64.as_pointer()), "acquire", 8)
        return types.int64(types.int64), gen

    @intrinsic
    def store(typingctx, addr, val):
        def gen(context, builder, sig, args):
            builder.store_atomic(args[1], builder.inttoptr(args[0], i64.as_pointer()),
                                 "release", 8)
            return context.get_dummy_value()
        return types.void(types.int64, types.int64), gen

    @intrinsic
    def cas(typingctx, addr, old, new):
        def gen(context, builder, sig, args):
            p = builder.inttoptr(args[0], i64.as_pointer())
            pair = builder.cmpxchg(p, args[1], args[2], "acq_rel", "acquire")
            return builder.zext(builder.extract_value(pair, 1), i64)
        return types.int64(types.int64, types.int64, types.int64), gen

    @intrinsic
    def call(typingctx, fn, arg, which):
        # fn(arg, which): a task's cfunc, ``which`` half
        def gen(context, builder, sig, args):
            fnty = ir.FunctionType(ir.VoidType(), [i64, i64])
            builder.call(builder.inttoptr(args[0], fnty.as_pointer()), [args[1], args[2]])
            return context.get_dummy_value()
        return types.void(types.int64, types.int64, types.int64), gen

    @intrinsic
    def call_job(typingctx, fn, which, data, arg):
        # fn(which, data, arg): an OpenBLAS job, ``void (*)(int, void *, int)``
        def gen(context, builder, sig, args):
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i32, i64, i32])
            builder.call(builder.inttoptr(args[0], fnty.as_pointer()),
                         [builder.trunc(args[1], i32), args[2], builder.trunc(args[3], i32)])
            return context.get_dummy_value()
        return types.void(types.int64, types.int64, types.int64, types.int64), gen

    @intrinsic
    def ccall(typingctx, fn, a, b, c, d):
        # fn(a, b, c, d) -> C int, pointer-sized arguments (pthread_create, pthread_join)
        def gen(context, builder, sig, args):
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(i32, [i64] * 4)
            r = builder.call(builder.inttoptr(args[0], fnty.as_pointer()), list(args[1:]))
            return builder.sext(r, i64)
        return types.int64(types.int64, types.int64, types.int64, types.int64,
                           types.int64), gen

    @intrinsic
    def to_bits(typingctx, x):
        def gen(context, builder, sig, args):
            return builder.bitcast(args[0], i64)
        return types.int64(types.float64), gen

    @intrinsic
    def from_bits(typingctx, x):
        def gen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return types.float64(types.int64), gen

    x86 = platform.machine() in ("x86_64", "AMD64")

    @intrinsic
    def pause(typingctx):
        # x86's spin-wait hint (numba's LLVM takes no inline assembly): a no-op elsewhere
        def gen(context, builder, sig, args):
            if x86:
                fnty = ir.FunctionType(ir.VoidType(), [])
                builder.call(cgutils.get_or_insert_function(builder.module, fnty,
                                                            "llvm.x86.sse2.pause"), [])
            return context.get_dummy_value()
        return types.void(), gen

    @intrinsic
    def voidptr(typingctx, addr):
        def gen(context, builder, sig, args):
            return builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        return types.voidptr(types.int64), gen

    return {"load": load, "store": store, "cas": cas, "call": call, "pause": pause,
            "call_job": call_job, "ccall": ccall,
            "voidptr": voidptr, "to_bits": to_bits, "from_bits": from_bits}


def _build() -> dict:
    """The numba functions: the worker's loop, ``halves`` for native code, and the argument
    accessors (compiled once, on first use)."""
    from numba import njit
    f = _intrinsics()
    load, store, cas, call, pause = f["load"], f["store"], f["cas"], f["call"], f["pause"]
    to_bits, from_bits = f["to_bits"], f["from_bits"]
    sched_yield = ctypes.CDLL(None).sched_yield
    sched_yield.restype, sched_yield.argtypes = ctypes.c_int, []
    futex = _futex()
    ctl = CTL

    @njit(nogil=True)
    def serve():
        # the worker: run posted tasks, parking when idle for SPIN + YIELD rounds, until
        # told to stop
        idle = 0
        store(ctl + 8 * SERVING, 1)
        while True:
            s = load(ctl + 8 * STATE)
            if s == POSTED:
                if cas(ctl + 8 * STATE, POSTED, TAKEN):
                    call(load(ctl + 8 * FN), ctl + 8 * ARGS, 1)
                    store(ctl + 8 * RAN, load(ctl + 8 * RAN) + 1)
                    store(ctl + 8 * STATE, DONE)
                idle = 0
                continue
            if load(ctl + 8 * STOP):
                store(ctl + 8 * AWAKE, 0)
                store(ctl + 8 * SERVING, 0)
                return 1
            idle += 1
            if idle < SPIN:
                pause()
            elif idle < SPIN + YIELD:
                sched_yield()
            else:  # park: sleep on AWAKE until ``wake`` sets it (or a nap passes)
                store(ctl + 8 * PARKS, load(ctl + 8 * PARKS) + 1)
                store(ctl + 8 * AWAKE, 0)
                if load(ctl + 8 * STATE) != POSTED and load(ctl + 8 * STOP) == 0:
                    futex(SYS_FUTEX, ctl + 8 * AWAKE, FUTEX_WAIT, 0, ctl + 8 * NAP)
                    if load(ctl + 8 * AWAKE) == 0 and load(ctl + 8 * STATE) != POSTED:
                        continue  # the nap passed, nothing to do: park again
                store(ctl + 8 * AWAKE, 1)
                idle = 0

    @njit(nogil=True)
    def halves(fn):
        # both halves of the task whose arguments ``put`` wrote: the second on the worker
        # when the pool is on and the worker takes it in time, else here
        args = ctl + 8 * ARGS
        if load(ctl + 8 * ON) == 0:
            call(fn, args, 0)
            call(fn, args, 1)
            return
        if not cas(ctl + 8 * STATE, EMPTY, CLAIMED):
            # the block is an OpenBLAS section's of another thread (``together``): both here
            call(fn, args, 0)
            call(fn, args, 1)
            return
        store(ctl + 8 * FN, fn)
        store(ctl + 8 * STATE, POSTED)
        if load(ctl + 8 * AWAKE) == 0 and load(ctl + 8 * SERVING) == 1:
            # parked (a program's Python stretch between segments outlasted its spin): wake
            # it for this task (if it parks just now, missing the post, the task runs here;
            # no worker at all: ``wake`` starts one at the next program call)
            store(ctl + 8 * AWAKE, 1)
            futex(SYS_FUTEX, ctl + 8 * AWAKE, FUTEX_WAKE, 1, 0)
        call(fn, args, 0)
        if cas(ctl + 8 * STATE, POSTED, EMPTY):  # not taken: run it here
            call(fn, args, 1)
            store(ctl + 8 * STOLEN, load(ctl + 8 * STOLEN) + 1)
            return
        while load(ctl + 8 * STATE) != DONE:
            pause()
        store(ctl + 8 * STATE, EMPTY)

    @njit(nogil=True)
    def claim():
        # the block for ``together``'s caller: 1 when the worker is serving (awake or
        # parked) and no task is in flight (another thread's, or the worker's own call)
        if load(ctl + 8 * SERVING) == 0:
            return 0
        return cas(ctl + 8 * STATE, EMPTY, CLAIMED)

    @njit(nogil=True)
    def together(fn):
        # both halves of a task at once, the second on the worker: for OpenBLAS's jobs,
        # which wait on each other's packed panels (run one after the other, they hang).
        # 0 when the worker does not take it within TAKE_SPINS: then nothing ran, the
        # block is free again, and the caller runs the jobs on threads of its own
        # (the caller claimed the block: ``claim``)
        store(ctl + 8 * FN, fn)
        store(ctl + 8 * STATE, POSTED)
        if load(ctl + 8 * AWAKE) == 0:
            store(ctl + 8 * AWAKE, 1)
            futex(SYS_FUTEX, ctl + 8 * AWAKE, FUTEX_WAKE, 1, 0)
        spins = 0
        while load(ctl + 8 * STATE) == POSTED:
            pause()
            spins += 1
            if spins > TAKE_SPINS and cas(ctl + 8 * STATE, POSTED, EMPTY):
                return 0
        call(fn, ctl + 8 * ARGS, 0)
        while load(ctl + 8 * STATE) != DONE:
            pause()
        store(ctl + 8 * STATE, EMPTY)
        return 1

    @njit(nogil=True)
    def put(i, v):
        store(ctl + 8 * (ARGS + i), v)

    @njit(nogil=True)
    def put_f(i, v):
        store(ctl + 8 * (ARGS + i), to_bits(np.float64(v)))

    @njit(nogil=True)
    def get(p, i):
        return load(p + 8 * i)

    @njit(nogil=True)
    def get_f(p, i):
        return from_bits(load(p + 8 * i))

    @njit(nogil=True)
    def keep(*arrays):
        # a use of the task's arrays after it: numba frees a temporary after its last use
        return len(arrays)

    # compiled now, by the caller (the native build's background thread): compiled on the
    # worker's first call it took seconds, each GIL slice won from a caller running segments
    serve.compile(())
    return {"serve": serve, "halves": halves, "claim": claim, "together": together,
            "put": put, "put_f": put_f, "get": get, "get_f": get_f, "keep": keep,
            "voidptr": f["voidptr"]}


def functions() -> dict:
    """The pool's numba functions (see ``_build``), built once."""
    global _built
    with _lock:
        if _built is None:
            _built = _build()
        return _built


def _futex():
    """libc's ``syscall`` typed for ``syscall(SYS_futex, addr, op, val, timeout)``."""
    fn = ctypes.CDLL(None).syscall
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return fn


def wake() -> None:
    """Before a pool program's call: start the worker, or wake it if it parked."""
    global _thread
    if _ctl[AWAKE]:
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _ctl[STOP] = 0
            _ctl[AWAKE] = 1
            _ctl[SERVING] = 0
            # (serve is nogil and parks without the GIL: it returns at STOP only)
            _thread = threading.Thread(target=functions()["serve"], name="taiji-pool",
                                       daemon=True)
            _thread.start()
            # let it reach ``serve`` now: a thread starting while the caller runs segments
            # won each of the GIL slices it needs only every 5 ms (0.5 s of halves run here)
            deadline = time.perf_counter() + 1.0
            while not _ctl[SERVING] and time.perf_counter() < deadline:
                time.sleep(0.0002)
        else:
            _ctl[AWAKE] = 1
            _futex_wake()


def _futex_wake() -> None:
    global _waker
    if _waker is None:
        _waker = _futex()
    _waker(SYS_FUTEX, CTL + 8 * AWAKE, FUTEX_WAKE, 1, None)


_waker = None


def set_on(on: bool) -> None:
    """Whether native programs hand halves to the worker (else they run them themselves)."""
    _ctl[ON] = 1 if on else 0


def _stop() -> None:
    global _thread
    _ctl[STOP] = 1
    t, _thread = _thread, None
    if t is not None:
        _futex_wake()
        t.join(timeout=1.0)


def _after_fork() -> None:
    # the child has no worker: the next call starts one (until then every half runs here)
    global _thread, _lock
    _thread, _lock = None, threading.RLock()
    _ctl[AWAKE] = _ctl[STATE] = _ctl[SERVING] = 0


atexit.register(_stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def with_pool(fn: Callable) -> Callable:
    """``fn`` (a native pool program) under a ``blas.ThreadChoice`` between the pool and this
    thread alone; OpenBLAS on one thread throughout (its second would fight the worker)."""
    from taiji.compiler import blas
    choice = blas.ThreadChoice()

    def pooled(*args):
        on = not choice.one
        if on:
            wake()
        set_on(on)
        try:
            return fn(*args)
        finally:  # (a plane kernel called outside a pool program runs whole, here)
            set_on(False)
    run = choice.timed(pooled, always_one=True)
    run.pool = True
    return run


# ---------------------------------------------------------------- tasks

def _np_name(d) -> str:
    d = np.dtype(d)
    return "np.bool_" if d == np.bool_ else f"np.{d.name}"


def kernel_task(kernel, kinds: list) -> tuple | None:
    """A loop kernel of ``fusion.kernel_source(..., rows=True)`` as a task: (a cfunc running
    rows [0, h) or [h, R) of it, which must live while code using its address does, ``emit``). ``kinds``: per kernel argument
    after ``last``, ("a", dtype) for an array, ("s", dtype) for a scalar. ``emit(exprs,
    rows, last)`` gives the native source lines that write the arguments (``exprs``: their
    spellings in the caller) and run both halves. None when the arguments do not fit the
    block."""
    from numba import carray, cfunc, types
    fns = functions()
    slots = 3 + sum(2 if kind == "a" else 1 for kind, _ in kinds)
    if slots > NARGS:
        return None
    lines = ["def half(p, which):",
             "    h = get(p, 1)",
             "    r0 = 0 if which == 0 else h",
             "    r1 = h if which == 0 else get(p, 0)"]
    slot, names = 3, []
    for i, (kind, d) in enumerate(kinds):
        if kind == "a":
            lines.append(f"    v{i} = carray(voidptr(get(p, {slot})), get(p, {slot + 1}), "
                         f"{_np_name(d)})")
            slot += 2
        else:
            lines.append(f"    v{i} = {_np_name(d)}(get_f(p, {slot}))")
            slot += 1
        names.append(f"v{i}")
    lines.append(f"    kernel(r0, r1, get(p, 2), {', '.join(names)})")
    ns = {"np": np, "carray": carray, "kernel": kernel, "get": fns["get"],
          "get_f": fns["get_f"], "voidptr": fns["voidptr"]}
    exec(compile("\n".join(lines), "<taiji pool task>", "exec"), ns)  # noqa: S102 - our source
    task = cfunc(types.void(types.int64, types.int64), error_model="numpy")(ns["half"])

    def emit(exprs: list, rows: int, last: int) -> list:
        out = [f"    _pput(0, {rows})", f"    _pput(1, {rows // 2})", f"    _pput(2, {last})"]
        slot, arrays = 3, []
        for (kind, _), e in zip(kinds, exprs):
            if kind == "a":
                out += [f"    _pput({slot}, {e}.ctypes.data)", f"    _pput({slot + 1}, {e}.size)"]
                arrays.append(e)
                slot += 2
            else:
                out.append(f"    _pput_f({slot}, {e})")
                slot += 1
        return out + [f"    _phalves({task.address})", f"    _pkeep({', '.join(arrays)})"]
    return task, emit


def plane_kernel(fn: Callable, argtypes: list, planes: int) -> Callable:
    """A loop kernel over planes as a function run in two halves, the second on the worker
    while a pool program runs (taiji/_kernels.py's split kernels: im2col, col2im, pooling).
    ``fn(lo, hi, *args)`` (plain Python, compiled here) computes planes [lo, hi), flat over
    the first two dimensions of argument ``planes``, each plane's writes its own;
    ``argtypes``: numba types of ``args`` (C-contiguous arrays, float64 or int64 scalars).
    Returns ``run(*args)``, compiled for ``argtypes``, holding the GIL as native segments do
    (one poster at a time): planes [0, P/2) here, [P/2, P) on the worker or, when it is off
    or busy, here too. The bits never depend on which thread ran a plane."""
    from numba import carray, cfunc, njit, types
    fns = functions()
    inner = njit(error_model="numpy")(fn)
    lines = ["def half(p, which):", "    h = get(p, 1)",
             "    lo = 0 if which == 0 else h", "    hi = h if which == 0 else get(p, 0)"]
    put_lines = [f"    put(0, a{planes}.shape[0] * a{planes}.shape[1])",
                 f"    put(1, (a{planes}.shape[0] * a{planes}.shape[1]) // 2)"]
    ns = {"np": np, "carray": carray, "inner": inner, "get": fns["get"],
          "get_f": fns["get_f"], "voidptr": fns["voidptr"], "put": fns["put"],
          "put_f": fns["put_f"], "halves": fns["halves"], "keep": fns["keep"]}
    slot, names, arrays = 2, [], []
    for i, t in enumerate(argtypes):
        if isinstance(t, types.Array):
            ns[f"d{i}"] = np.dtype(str(t.dtype))
            dims = "".join(f"get(p, {slot + 1 + j}), " for j in range(t.ndim))
            lines.append(f"    v{i} = carray(voidptr(get(p, {slot})), ({dims}), d{i})")
            put_lines.append(f"    put({slot}, a{i}.ctypes.data)")
            put_lines += [f"    put({slot + 1 + j}, a{i}.shape[{j}])" for j in range(t.ndim)]
            slot += 1 + t.ndim
            arrays.append(f"a{i}")
        elif isinstance(t, types.Float):
            lines.append(f"    v{i} = get_f(p, {slot})")
            put_lines.append(f"    put_f({slot}, a{i})")
            slot += 1
        else:
            lines.append(f"    v{i} = get(p, {slot})")
            put_lines.append(f"    put({slot}, a{i})")
            slot += 1
        names.append(f"v{i}")
    if slot > NARGS:
        raise ValueError(f"pool.plane_kernel: {slot} argument words, the block has {NARGS}")
    lines.append(f"    inner(lo, hi, {', '.join(names)})")
    exec(compile("\n".join(lines), "<taiji pool plane task>", "exec"), ns)  # noqa: S102
    task = cfunc(types.void(types.int64, types.int64), error_model="numpy")(ns["half"])
    args = ", ".join(f"a{i}" for i in range(len(argtypes)))
    src = "\n".join([f"def run({args}):"] + put_lines + [
        f"    halves({task.address})", f"    keep({', '.join(arrays)})"])
    exec(compile(src, "<taiji pool plane run>", "exec"), ns)  # noqa: S102 - our source
    run = njit(types.void(*argtypes), error_model="numpy")(ns["run"])
    run.task = task  # (its code lives while the function does)
    return run


def namespace() -> dict:
    """What ``kernel_task``'s emitted lines call."""
    f = functions()
    return {"_pput": f["put"], "_pput_f": f["put_f"], "_phalves": f["halves"],
            "_pkeep": f["keep"]}


def gemm_function(fn, dtype, fallback: Callable) -> Callable:
    """The native tier's product (``blas.gemm_function``'s signature) for a pool program:
    with ``kb`` > 0 (a program that may switch threads) a product big enough is computed in
    two halves (``blas.split_axis``), each one call of ``fn`` (a ctypes cblas_?gemm) on
    OpenBLAS's one thread, the second handed to the worker; other products as ``fallback``
    (``blas.numba_gemm``) computes them."""
    from numba import cfunc, njit, types
    from taiji.compiler import blas
    f = functions()
    get, put, halves = f["get"], f["put"], f["halves"]
    one, zero, item = dtype.type(1), dtype.type(0), dtype.itemsize
    axis_of, offsets = njit(blas.split_axis), njit(blas.half_offsets)
    small_k = njit(blas.small_k_axis)

    def half(p, which):
        # arguments: ta tb m n k a lda b ldb c ldc axis h
        ta, tb, m, n, k = get(p, 0), get(p, 1), get(p, 2), get(p, 3), get(p, 4)
        a, lda, b, ldb, c, ldc = get(p, 5), get(p, 6), get(p, 7), get(p, 8), get(p, 9), get(p, 10)
        axis, h = get(p, 11), get(p, 12)
        if which:
            da, db, dc = offsets(axis, h, ta, tb, lda, ldb, ldc)
            a, b, c = a + item * da, b + item * db, c + item * dc
        if axis == 1:  # rows of C
            m = m - h if which else h
        else:          # columns of C
            n = n - h if which else h
        fn(101, 112 if ta else 111, 112 if tb else 111, m, n, k, one, a, lda, b, ldb, zero,
           c, ldc)
    task = cfunc(types.void(types.int64, types.int64))(half)
    address = task.address

    def gemm(a, b, ta, tb, c, kb):
        if kb <= 0:
            return fallback(a, b, ta, tb, c, kb)
        m = a.shape[1] if ta else a.shape[0]
        k = a.shape[0] if ta else a.shape[1]
        n = b.shape[0] if tb else b.shape[1]
        axis = 0
        if m > 1 and n > 1:  # (a short K: the batch call's rule keeps it whole, the pool not)
            axis = axis_of(m, n, k, ta, tb)
            if axis == 0:
                axis = small_k(m, n, k)
        if axis == 0:
            return fallback(a, b, ta, tb, c, kb)
        put(0, ta)
        put(1, tb)
        put(2, m)
        put(3, n)
        put(4, k)
        put(5, a.ctypes.data)
        put(6, max(a.shape[1], 1))
        put(7, b.ctypes.data)
        put(8, max(b.shape[1], 1))
        put(9, c.ctypes.data)
        put(10, max(n, 1))
        put(11, axis)
        put(12, (m if axis == 1 else n) // 2)
        halves(address)
        return c
    # (holding the GIL, as the segments calling it do: one poster at a time)
    out = blas.with_swaps(njit(gemm), njit)
    out.task = task
    return out


_gemms: dict = {}


def gemm(dtype) -> Callable | None:
    """The pool's product for ``dtype`` (``gemm_function``), or None where the pool is off,
    OpenBLAS does not halve products (``blas.splits``: two threads, its batch call), or its
    halves failed ``blas._probe_split`` (built and probed once, on first use)."""
    d = np.dtype(dtype)
    with _lock:
        if d not in _gemms:
            _gemms[d] = _make_gemm(d)
        return _gemms[d]


def _make_gemm(d: np.dtype) -> Callable | None:
    from taiji.compiler import blas
    lib = blas.library()
    if not enabled or d not in lib.get("batch", {}):
        return None
    fn = lib["gemm"][d]
    out = gemm_function(fn, d, blas.numba_gemm(fn, d, lib["batch"][d]))
    # products in the pool's halves (on one OpenBLAS thread, as pool programs run) equal
    # whole one-thread products bit for bit, as the batch call's halves must
    return out if blas._probe_split(lib, d, out, threads=1) else None
