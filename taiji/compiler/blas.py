"""The 2-D products of compiled CPU programs, and how many threads they run on.

NumPy's ``matmul`` hands a product to OpenBLAS, which splits it statically between its
threads and waits for the slowest. On a shared machine that is the whole story of a bad
minute: when a neighbour takes one of two cores (for seconds at a time, and invisible as
steal time on this project's VMs), the seed MLP's training step at batch 64 runs 2.5x
slower on two threads, and only ~1.4x slower on one. So a compiled program times itself
and chooses between OpenBLAS's threads and one (``ThreadChoice``).

The choice must not change results. OpenBLAS's one- and two-thread products agree bit for
bit while the inner dimension K fits one of its K blocks (its drivers cut a longer K
differently: float32 products with K = 784 differ in the last bits). So a program that may
switch computes each product with K above its dtype's K block as consecutive calls over K
blocks of at most that size, accumulating into the result (the second call on adds to it),
in the Python tier and the native tier alike. The block is probed once per process: the
largest of ``KBLOCKS`` whose products agree across thread counts (float32: 448 here; float64:
none, its two-thread products differ for some shapes at any K). A program with a whole
product that would need more than ``MAX_BLOCKS`` blocks, a product without a block, or other
BLAS calls (``einsum``, loops), keeps whole products on OpenBLAS's threads; a product
computed in halves (below) runs over its whole K on one thread, so its K (the CNN's weight
gradients: K = 50176) does not count. Eager mode keeps NumPy's ``matmul``.

Such a program (and, with no K blocks, one that keeps OpenBLAS's threads) computes each
product big enough in two halves instead, one per thread,
through OpenBLAS's batch call (``split_axis``, ``gemm_function``): each half runs OpenBLAS's
one-thread driver whatever the thread count, so the bits are a one-thread product's and need
no K blocks, and the two threads share nothing, where OpenBLAS's own two-thread split of one
product packs panels for each other and waits on them (the seed MLP's step: 2-5% faster,
``benchmarks/gemm_split.py``). Only with two threads, where it was measured (``_find_batch``).

The library is the OpenBLAS NumPy loaded, found in ``/proc/self/maps`` and checked once
against ``np.matmul``. Dimensions go as 64-bit integers, which both integer ABIs read
correctly (an LP64 library reads the low half of the register or stack slot).
"""
from __future__ import annotations

import collections
import ctypes
import os
import statistics
import threading
import time
from typing import Callable

import numpy as np

KBLOCKS = (512, 448, 384, 320, 256, 128)  # candidate K blocks, largest first
MAX_BLOCKS = 8
# (m, n) of the probe's products: big enough for OpenBLAS to use its threads, and of the
# kinds whose two-thread results differed from one thread's (float64, n >= ~130)
PROBE_SHAPES = ((96, 80), (70, 130))
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
NOT_SWITCHABLE = {"einsum", "while"}  # BLAS calls this module does not make

# ---------------------------------------------------------------- the library

_lock = threading.Lock()
_lib: dict | None = None


def _openblas_paths() -> list[str]:
    """The OpenBLAS libraries mapped into this process (NumPy's own among them)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    here = os.path.dirname(os.path.dirname(np.__file__))
    return sorted((p for p in paths if p.startswith("/")), key=lambda p: not p.startswith(here))


def library() -> dict:
    """{"gemm": {dtype: cblas_?gemm}, "python_gemm": {dtype: gemm_function}, "set_threads":
    fn, "get_threads": fn, "kblock": {dtype: int}} for the BLAS NumPy loaded, or {} when it
    cannot be found or fails its check."""
    global _lib
    with _lock:
        if _lib is None:
            _lib = _find()
        return _lib


def blas() -> dict:
    """{numpy dtype: ctypes cblas_?gemm} of NumPy's BLAS ({} when not found)."""
    return library().get("gemm", {})


def _symbol(lib, names):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def _find() -> dict:
    i64, vp, ci = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        gemm = {}
        for letter, ctype, npt in (("s", ctypes.c_float, np.float32),
                                   ("d", ctypes.c_double, np.float64)):
            fn = _symbol(lib, (f"scipy_cblas_{letter}gemm64_", f"cblas_{letter}gemm64_",
                               f"scipy_cblas_{letter}gemm", f"cblas_{letter}gemm"))
            if fn is not None:
                fn.restype = None
                fn.argtypes = [ci, ci, ci, i64, i64, i64, ctype, vp, i64, vp, i64, ctype, vp,
                               i64]
                gemm[np.dtype(npt)] = fn
        set_n = _symbol(lib, ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                              "scipy_openblas_set_num_threads", "openblas_set_num_threads"))
        get_n = _symbol(lib, ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                              "scipy_openblas_get_num_threads", "openblas_get_num_threads"))
        if len(gemm) != 2 or set_n is None or get_n is None:
            continue
        set_n.argtypes, set_n.restype = [ci], None
        get_n.argtypes, get_n.restype = [], ci
        found = {"gemm": gemm, "set_threads": set_n, "get_threads": get_n,
                 "python_gemm": {d: gemm_function(fn, d) for d, fn in gemm.items()},
                 "cdll": lib}
        if _check(found):
            found["kblock"] = {d: _probe_kblock(found, d) for d in gemm}
            found["batch"] = _find_batch(lib, found)
            found["python_gemm"].update({d: gemm_function(gemm[d], d, fn)
                                         for d, fn in found["batch"].items()})
            return found
    return {}


def _find_batch(lib, found: dict) -> dict:
    """{dtype: ctypes cblas_?gemm_batch} where it splits products in halves that agree bit
    for bit with whole one-thread products (``_probe_split``). Only 64-bit-integer builds
    (the ``64_`` symbols NumPy's wheels ship): the batch call reads arrays of integers, whose
    width must be the library's. Only where OpenBLAS has two threads, the configuration this
    was measured on: with more, two halves would leave the other cores idle where OpenBLAS
    spreads a product over all of them. Off with TAIJI_GEMM_SPLIT=0."""
    if os.environ.get("TAIJI_GEMM_SPLIT", "1") == "0" or found["get_threads"]() != 2:
        return {}
    vp = ctypes.c_void_p
    out = {}
    for letter, d in (("s", np.dtype(np.float32)), ("d", np.dtype(np.float64))):
        if not found["kblock"][d]:
            continue  # (float64 here: no K block for the probe's shapes, halves not measured)
        fn = _symbol(lib, (f"scipy_cblas_{letter}gemm_batch64_", f"cblas_{letter}gemm_batch64_"))
        if fn is None:
            continue
        fn.restype = None
        fn.argtypes = [ctypes.c_int] + [vp] * 13 + [ctypes.c_int64, vp]
        if _probe_split(found, d, gemm_function(found["gemm"][d], d, fn)):
            out[d] = fn
    return out


def _probe_split(found: dict, d: np.dtype, split_gemm, threads: int = 0) -> bool:
    """Products split in halves (each on its own thread) equal whole products on one
    thread, bit for bit, for every layout and both split directions, K within and past the
    K block. ``threads``: OpenBLAS's thread count for the split products (0: all; the pool's
    run on one, taiji/compiler/pool.py)."""
    kb, most = found["kblock"][d], found["get_threads"]()
    noise = np.random.default_rng(2).standard_normal(400 * kb * 2).astype(d)
    try:
        # (the last: a short K, which only the pool halves, ``small_k_axis``)
        for m, n, k in ((130, 96, kb), (64, 250, 2 * kb - 37), (200, 120, kb // 2 + 5),
                        (64, 4000, 9)):
            for ta in (0, 1):
                for tb in (0, 1):
                    x = noise[:m * k].reshape((k, m) if ta else (m, k))
                    y = noise[-n * k:].reshape((n, k) if tb else (k, n))
                    whole, halves = np.empty((m, n), d), np.empty((m, n), d)
                    found["set_threads"](1)
                    found["python_gemm"][d](x, y, ta, tb, whole, 0)
                    found["set_threads"](threads or most)
                    split_gemm(x, y, ta, tb, halves, kb)
                    if not np.array_equal(whole, halves):
                        return False
        return True
    finally:
        found["set_threads"](most)


def _check(lib: dict) -> bool:
    """A small product through each entry point equals NumPy's."""
    rng = np.random.default_rng(0)
    for d, fn in lib["gemm"].items():
        a, b = rng.standard_normal((3, 5)).astype(d), rng.standard_normal((4, 5)).astype(d)
        c = np.empty((3, 4), d)
        fn(101, 111, 112, 3, 4, 5, d.type(1), a.ctypes.data, 5, b.ctypes.data, 5, d.type(0),
           c.ctypes.data, 4)
        if not np.array_equal(c, np.matmul(a, b.swapaxes(-1, -2))):
            return False
    return True


def _probe_kblock(lib: dict, d: np.dtype) -> int:
    """The largest of KBLOCKS whose products agree on one thread and on all of OpenBLAS's
    (several shapes, several K from half of it up to it, both layouts: OpenBLAS's drivers
    agree while K fits their K block, and for some K above it); 0 when none does (float64
    here: its two-thread products differ for some shapes at any K) or there is one thread."""
    most = lib["get_threads"]()
    if most < 2:
        return 0
    noise = np.random.default_rng(1).standard_normal(600 * KBLOCKS[0]).astype(d)
    gemm = lib["python_gemm"][d]
    try:
        for kb in KBLOCKS:
            # (above its own K block, OpenBLAS's one-thread driver disagreed for K in
            # windows starting one past a multiple of 32: probe each such start)
            ks = [kb] + list(range(kb - 31, kb // 2, -32))
            if all(_agree(gemm, lib["set_threads"], noise, m, n, k, most)
                   for m, n in PROBE_SHAPES for k in ks):
                return kb
        return 0
    finally:
        lib["set_threads"](most)


def _agree(gemm, set_n, noise, m, n, k, most) -> bool:
    """A product untransposed and one transposed, on one thread and on ``most``: equal
    bits?"""
    d = noise.dtype
    for ta, tb in ((0, 0), (1, 1)):
        x = noise[:m * k].reshape((k, m) if ta else (m, k))
        y = noise[-n * k:].reshape((n, k) if tb else (k, n))
        out = [np.empty((m, n), d), np.empty((m, n), d)]
        for c, threads in zip(out, (1, most)):
            set_n(threads)
            gemm(x, y, ta, tb, c, 0)
        if not np.array_equal(out[0], out[1]):
            return False
    return True


# ---------------------------------------------------------------- the products

def blocks(k: int, kb: int) -> int:
    """How many K blocks of at most ``kb`` (0: one call) a product with inner dimension k
    is computed in."""
    return 1 if kb <= 0 or k <= kb else -(-k // kb)


# OpenBLAS's batch call runs a product of at most this m*n*k through a small-matrix kernel
# chosen without its usual checks, which crashed here (0.3.31, a DYNAMIC_ARCH build): a half
# must be larger
SMALL_MNK = 1_000_000


def split_axis(m: int, n: int, k: int, ta: int, tb: int) -> int:
    """How a product (m x n, inner dimension k) is split in halves, one per thread: 2 by the
    result's columns, 1 by its rows, 0 not at all. Measured on the seed MLP's and CNN's
    products on 2 cores (each halved product up to 40% faster than OpenBLAS's own two-thread
    split, which shares packed panels between its threads and waits on them):

    - ``A @ B.T`` by columns while at most twice as tall as wide (each thread packs its own
      rows of B and all of A): at batch 512 the MLP's step ran 5% faster with its 512 x 256
      forward product halved by columns than by rows; at batch 1000, with each thread
      packing all of a 3 MB A, by columns was 12-50% slower than by rows;
    - the other layouts by rows, unless the result is at least 8x as wide as tall (the
      CNN's 64 x 3136 and 289 x 12544 results: by rows 10-20% slower than whole products,
      by columns 0-5% faster; the MLP's 256 x 784 weight gradient: by rows 7-10% faster);
    - not when k < 32 (the CNN's first convolution, K = 10: a product that mostly writes
      its result ran 60-80% slower in halves) or when a half would be at or below
      SMALL_MNK."""
    if k < 32:
        return 0
    if (tb and not ta and m <= 2 * n) or (not (tb and not ta) and n >= 8 * m):
        return 2 if m * (n // 2) * k > SMALL_MNK else 0
    return 1 if (m // 2) * n * k > SMALL_MNK else 0


def small_k_axis(m: int, n: int, k: int) -> int:
    """How the pool's halves (taiji/compiler/pool.py: two separate one-thread calls, not
    OpenBLAS's batch call) split a product that ``split_axis`` keeps whole for its short K
    (k < 32) but that is too big to run whole on one thread: by its longer side (the CNN's
    first convolution, 32 x 50176 with K = 10, 2-core Xeon: 450 us in the pool's halves,
    440 us whole on OpenBLAS's two threads, 910 us whole on one). 0: whole."""
    if k >= 32 or m * n * k <= 2_000_000 or max(m, n) < 64:
        return 0
    return 2 if n >= m else 1


def swaps(m: int, n: int, k: int, ta: int, tb: int) -> bool:
    """Whether ``A @ B.T`` (m x n, inner dimension k) computed in halves (by OpenBLAS's
    batch call or the pool's) is computed as ``(B @ A.T).T``: a short wide result over a
    long K. OpenBLAS's
    halves of the transposed product ran 12-17% faster, the transposing copy included
    (2-core Xeon: the CNN's 64 x 289 convolution weight gradient, K = 12544, and its
    64 x 512 fully connected forward, K = 3136); with K = 784 or 128 rows, even or slower."""
    return ta == 0 and tb == 1 and m <= 64 and n >= 4 * m and k >= 2048


def half_offsets(axis: int, h: int, ta: int, tb: int, lda: int, ldb: int,
                 ldc: int) -> tuple:
    """Where the second half of a product split at ``h`` (``split_axis``) starts in A, B and
    C, in elements from their starts (row-major, leading dimensions ``lda``/``ldb``/``ldc``):
    by rows of C (``axis`` 1) the rows of op(A), by its columns the columns of op(B). The
    batch call's halves and the pool's (taiji/compiler/pool.py) both read it."""
    if axis == 1:
        return (h if ta else h * lda), 0, h * ldc
    return 0, (h * ldb if tb else h), h


def product_kb(kblocks: dict | None, dtype) -> int:
    """The ``kb`` a compiled program passes to ``gemm_function`` for a product of ``dtype``
    (its Python tier and native tier alike): the K block where the program may switch
    threads (``kblocks``, from ``kblocks(g)``), else -1 (no K blocks; halves still apply)."""
    return kblocks.get(np.dtype(dtype), 0) if kblocks else -1


def splits(dtype, m: int, n: int, k: int, ta: int, tb: int, kb: int) -> bool:
    """Whether a product is computed in halves (``gemm_function``; ``kb``: the K block of a
    program that may switch threads, -1 for one that keeps OpenBLAS's threads): where the
    library has a batch call for ``dtype``."""
    if kb == 0 or m < 2 or n < 2 or np.dtype(dtype) not in library().get("batch", {}):
        return False
    return split_axis(m, n, k, ta, tb) != 0


def gemm_function(fn, dtype, batch=None, jit: Callable | None = None) -> Callable:
    """``gemm(a, b, ta, tb, c, kb)``: C = op(a) op(b) through ``fn`` (a ctypes cblas_?gemm),
    over K blocks of at most ``kb`` (0: one call), written so that numba can compile it too
    (``numba_gemm``): the Python tier and the native tier make the very same calls. CBLAS
    codes: RowMajor 101, NoTrans 111, Trans 112.

    With ``batch`` (a ctypes cblas_?gemm_batch) and ``kb`` != 0 (> 0: a program that may
    switch threads; -1: one that keeps OpenBLAS's threads, and no K blocks), a product is
    one batch call of two halves (``split_axis``), which OpenBLAS runs one per thread with
    its one-thread driver: the bits of a one-thread product on any number of threads, so
    over the whole K. ``kb`` 0: whole products, as NumPy computes them.
    ``jit``: what compiles the functions it calls (numba's ``njit`` for the native tier)."""
    one, zero, item = dtype.type(1), dtype.type(0), dtype.itemsize
    jit = jit or (lambda f: f)

    def gemm(a, b, ta, tb, c, kb):
        m = a.shape[1] if ta else a.shape[0]
        k = a.shape[0] if ta else a.shape[1]
        n = b.shape[0] if tb else b.shape[1]
        nk = 1 if kb <= 0 or k <= kb else (k + kb - 1) // kb
        for j in range(nk):
            lo, hi = j * k // nk, (j + 1) * k // nk
            aoff = lo * a.shape[1] if ta else lo
            boff = lo if tb else lo * b.shape[1]
            fn(101, 112 if ta else 111, 112 if tb else 111, m, n, hi - lo, one,
               a.ctypes.data + item * aoff, max(a.shape[1], 1), b.ctypes.data + item * boff,
               max(b.shape[1], 1), zero if j == 0 else one, c.ctypes.data, max(n, 1))
        return c

    if batch is None:
        return jit(gemm)
    whole, axis_of, offsets = jit(gemm), jit(split_axis), jit(half_offsets)

    def halves(a, b, ta, tb, c, kb):
        m = a.shape[1] if ta else a.shape[0]
        k = a.shape[0] if ta else a.shape[1]
        n = b.shape[0] if tb else b.shape[1]
        axis = 0
        if kb != 0 and m > 1 and n > 1:
            axis = axis_of(m, n, k, ta, tb)
        if axis == 0:
            return whole(a, b, ta, tb, c, kb)
        lda, ldb, ldc = max(a.shape[1], 1), max(b.shape[1], 1), max(n, 1)
        # the batch call's arrays, two entries each: m n k lda ldb ldc A B C group-size
        iv = np.empty(20, np.int64)
        tv = np.empty(4, np.int32)   # transa transa transb transb (CBLAS enums: C ints)
        fv = np.empty(4, c.dtype)    # alpha alpha beta beta
        tv[0] = tv[1] = 112 if ta else 111
        tv[2] = tv[3] = 112 if tb else 111
        fv[0] = fv[1] = one
        iv[18] = iv[19] = 1
        h = (m if axis == 1 else n) // 2
        if axis == 1:  # rows of C: rows of op(a)
            iv[0], iv[1], iv[2], iv[3] = h, m - h, n, n
        else:          # columns of C: columns of op(b)
            iv[0], iv[1], iv[2], iv[3] = m, m, h, n - h
        da, db, dc = offsets(axis, h, ta, tb, lda, ldb, ldc)
        iv[4] = iv[5] = k
        iv[6], iv[7], iv[8], iv[9], iv[10], iv[11] = lda, lda, ldb, ldb, ldc, ldc
        iv[12] = a.ctypes.data
        iv[13] = iv[12] + item * da
        iv[14] = b.ctypes.data
        iv[15] = iv[14] + item * db
        iv[16] = c.ctypes.data
        iv[17] = iv[16] + item * dc
        fv[2] = fv[3] = zero
        p, q = iv.ctypes.data, tv.ctypes.data
        batch(101, q, q + 8, p, p + 16, p + 32, fv.ctypes.data, p + 96, p + 48,
              p + 112, p + 64, fv.ctypes.data + 2 * item, p + 128, p + 80, 2, p + 144)
        return c
    return with_swaps(jit(halves), jit)


def with_swaps(product: Callable, jit: Callable) -> Callable:
    """``product`` (``gemm``'s signature, computing in halves where it can) with a short
    wide ``A @ B.T`` over a long K computed as ``(B @ A.T).T`` (``swaps``) whenever ``kb``
    != 0: the batch call's halves and the pool's (taiji/compiler/pool.py) alike, so every
    tier makes the same calls. (The swapped product never swaps again: its m is >= 4 n.)"""
    swapped = jit(swaps)

    def split_gemm(a, b, ta, tb, c, kb):
        m = a.shape[1] if ta else a.shape[0]
        k = a.shape[0] if ta else a.shape[1]
        n = b.shape[0] if tb else b.shape[1]
        if kb != 0 and swapped(m, n, k, ta, tb):
            # C = (B A^T)^T: the product with its operands swapped, then one transposing
            # copy of the (small) result; each element is the same dot product, the same bits
            ct = np.empty((n, m), c.dtype)
            product(b, a, 0, 1, ct, kb)
            c[:, :] = ct.T
            return c
        return product(a, b, ta, tb, c, kb)
    return jit(split_gemm)


def numba_gemm(fn, dtype, batch=None) -> Callable:
    """The native tier's product for one dtype: ``gemm_function`` compiled by numba."""
    from numba import njit
    return gemm_function(fn, dtype, batch, njit(nogil=True))


def kblocks(g) -> dict | None:
    """{dtype: K block} for a CPU program whose thread count may switch, None for one that
    keeps OpenBLAS's threads (see the module's docstring) or has no float product."""
    lib = library()
    if not lib or lib["get_threads"]() < 2:
        return None
    products = 0
    for e in g.eqns:
        if e.prim.name in NOT_SWITCHABLE:
            return None
        if e.prim.name == "matmul":
            a, b = e.inputs
            d = np.dtype(a.dtype.np)
            if d.kind in "biu":
                continue  # integer products: NumPy's own loops, no BLAS
            if len(a.shape) != 2 or len(b.shape) != 2 or d not in FLOATS:
                return None  # stacked, complex or half-precision products: whole NumPy calls
            kb = lib["kblock"][d]
            ta, tb = int(bool(e.params.get("ta"))), int(bool(e.params.get("tb")))
            m, k = (a.shape[1], a.shape[0]) if ta else a.shape
            n = b.shape[0] if tb else b.shape[1]
            if kb == 0:
                return None
            # (a product in halves runs over its whole K on one thread either way: its K
            # blocks are never used, however many)
            if blocks(k, kb) > MAX_BLOCKS and not splits(d, m, n, k, ta, tb, kb):
                return None
            products += 1
    return dict(lib["kblock"]) if products else None  # (no products: nothing to choose)


def matmul(a: np.ndarray, b: np.ndarray, ta: int, tb: int, kb: int,
           out: np.ndarray | None = None, gemms: dict | None = None) -> np.ndarray:
    """``op(a) @ op(b)`` (``op`` transposes when its flag is set) over K blocks of at most
    ``kb``: the Python tier's spelling of a product in a program that may switch threads.
    The native tier makes the same calls (``numba_gemm``). ``gemms``: {dtype: product} to
    call instead of ``gemm_function``'s (a pool program's, taiji/compiler/pool.py)."""
    if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype not in FLOATS:
        raise TypeError(f"taiji.jit: a product in K blocks takes two 2-D float32/float64 "
                        f"arrays of one dtype; got {a.dtype}{a.shape} and {b.dtype}{b.shape}")
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    kk, n = (b.shape[1], b.shape[0]) if tb else b.shape
    if k != kk:
        raise ValueError(f"taiji.jit: product of {a.shape} (ta={ta}) and {b.shape} (tb={tb}): "
                         f"inner dimensions {k} and {kk} differ")
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    c = out if out is not None and out.flags.c_contiguous else np.empty((m, n), a.dtype)
    if k == 0:
        c[...] = 0
    elif m and n:
        (gemms or library()["python_gemm"])[a.dtype](a, b, ta, tb, c, kb)
    if out is not None and c is not out:
        out[...] = c
        return out
    return c


# ---------------------------------------------------------------- how many threads

class ThreadChoice:
    """OpenBLAS's threads, or one, for one program: the program's calls are timed; after
    ``FIRST`` seconds spent in them, then every ``PERIOD`` seconds spent and ``CALLS`` calls
    (``RECHECK`` seconds while on one thread; time between calls does not count, so a caller
    that pauses is not probed on every return), the other choice runs ``PROBE`` calls (the
    first of them not counted:
    it wakes OpenBLAS's threads or lets them sleep), and is kept when the mean of the rest
    beats the mean of the last ``WINDOW`` calls by ``MARGIN``. The bits are the same either
    way (see the module's docstring), so only the speed changes."""

    FIRST = 0.5   # seconds before the first probe
    PERIOD = 2.0  # ... between probes on OpenBLAS's threads, and at least CALLS calls: a
    CALLS = 300   # probe's calls cost up to twice their time (the seed CNN's 22 ms steps
                  # probed every 2 s ran 6% slower on average; every 300 calls, 2%)
    RECHECK = 0.5  # ... between probes on one thread (a taken core is usually back soon)
    PROBE = 6
    WINDOW = 15
    MARGIN = 0.95

    def __init__(self, start_one: bool = False):
        self.one = start_one       # what the next call uses: one thread (else OpenBLAS's)
        self.current = start_one   # the choice in force (``one`` differs while probing)
        self.switches = 0
        self._recent: collections.deque = collections.deque(maxlen=self.WINDOW)
        self._probe: list = []
        self._spent = 0.0            # seconds spent in the program's calls so far
        self._next = self.RECHECK if start_one else self.FIRST  # ... when the next probe starts

    def record(self, seconds: float) -> None:
        """One call of the program took ``seconds``."""
        self._spent += seconds
        if self.one != self.current:
            self._probe.append(seconds)
            if len(self._probe) >= self.PROBE:
                # means, not medians: the throughput is the mean, and on two threads with a
                # core taken the calls are bimodal (a lucky fast one, then slow ones)
                tried = statistics.fmean(self._probe[1:])
                if tried < self.MARGIN * statistics.fmean(self._recent):
                    self.current = self.one
                    self.switches += 1
                    self._recent.clear()
                    self._recent.extend(self._probe[1:])
                self.one = self.current
                self._probe = []
                self._next = self._spent + (self.RECHECK if self.current else max(
                    self.PERIOD, self.CALLS * statistics.fmean(self._recent)))
            return
        self._recent.append(seconds)
        if self._spent >= self._next and len(self._recent) == self.WINDOW:
            self.one = not self.current

    def timed(self, fn: Callable, always_one: bool = False) -> Callable:
        """``fn`` run on the chosen threads, each call recorded (``always_one``: OpenBLAS on
        one thread either way; ``fn`` reads ``self.one`` for what to do with the other core,
        as a pool program does, taiji/compiler/pool.py)."""
        clock, record = time.perf_counter, self.record

        def run(*args):
            if self.one or always_one:
                _one_thread(+1)
                t0 = clock()
                try:
                    out = fn(*args)
                finally:
                    _one_thread(-1)
            else:
                t0 = clock()
                out = fn(*args)
            record(clock() - t0)
            return out
        run.threads = self
        return run


_one_lock = threading.Lock()
_one_calls = 0        # program calls running on one thread now, in any Python thread
_saved_threads = 1    # OpenBLAS's count before the first of them


def _one_thread(delta: int) -> None:
    """A program call on one thread starts (+1) or ends (-1). OpenBLAS's count is one per
    process: it goes to 1 when the first such call starts and back when the last one ends,
    so calls from several Python threads cannot leave it at 1."""
    global _one_calls, _saved_threads
    lib = library()
    with _one_lock:
        if delta > 0 and _one_calls == 0:
            _saved_threads = lib["get_threads"]()
            lib["set_threads"](1)
        _one_calls += delta
        if delta < 0 and _one_calls == 0:
            lib["set_threads"](_saved_threads)


def with_threads(g, fn: Callable, start_one: bool = False) -> Callable:
    """``fn`` (program ``g``'s function) under a ThreadChoice when ``g`` may switch threads,
    else ``fn`` itself; ``start_one``: on one thread until a probe finds two faster (while
    the background thread compiles, it holds one of the cores)."""
    return ThreadChoice(start_one).timed(fn) if kblocks(g) is not None else fn
