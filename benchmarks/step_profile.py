"""Where a compiled training step's time goes, line by line of its native build.

    python benchmarks/step_profile.py --case mlp/train/b512 [--steps 300] [--min-us 2]

Builds the suite's taiji jit contender for one case (same data, weights and batches), with
every line of every native segment (taiji/compiler/native.py) followed by a cycle-counter
stamp, and a stamp before and after each segment call and around the whole step. After the
warm-up it runs ``--steps`` steps on one fixed batch and prints, for each stamp, the median
and mean microseconds since the stamp before it: a product's line is that product, a
``_phalves`` line one loop kernel in halves on the pool, a ``py:`` line the Python between
segments (NumPy's exp and log, boxing, the jit's call path). A stamp costs ~0.1 us.

This patches the native tier's code generation for this process only (a developer's tool,
not a benchmark: no peers, no ratios). The clock is the CPU's cycle counter
(``llvm.readcyclecounter``), converted with its rate over the run.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

LOG = np.zeros(1 << 22, np.int64)  # [count, (stamp id, cycles) ...]
LINES: dict = {}                   # stamp id -> (where, what)


def _stamp_function():
    """A numba function ``stamp(k)`` appending (k, cycle counter) to ``LOG``."""
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    from taiji.compiler import pool

    @intrinsic
    def cycles(typingctx):
        def gen(context, builder, sig, args):
            fn = builder.module.declare_intrinsic("llvm.readcyclecounter",
                                                  fnty=ir.FunctionType(ir.IntType(64), []))
            return builder.call(fn, [])
        return types.int64(), gen
    f = pool._intrinsics()
    load, store, addr = f["load"], f["store"], int(LOG.ctypes.data)  # (an address: numba
    # would freeze a global array as a constant copy)

    @njit
    def stamp(k):
        i = load(addr)
        store(addr + 8 * (1 + 2 * i), k)
        store(addr + 8 * (2 + 2 * i), cycles())
        store(addr, i + 1)
    return stamp


def _new_id(where: str, what: str) -> int:
    k = len(LINES)
    LINES[k] = (where, what)
    return k


def instrument(stamp) -> None:
    """Stamp every top-level line of each native segment and each segment call."""
    from taiji.compiler import native
    source = native._Segment.source
    build = native.build

    def stamped_source(self, fname):
        out = []
        for line in source(self, fname).split("\n"):
            if line.startswith("    return"):
                out.append(f"    _stamp({_new_id(fname, 'end')})")
            out.append(line)
            if line.startswith("def "):
                out.append(f"    _stamp({_new_id(fname, 'begin')})")
            elif line.startswith("    ") and not line.startswith(("     ", "    return")):
                out.append(f"    _stamp({_new_id(fname, line.strip()[:80])})")
        self.ns["_stamp"] = stamp
        return "\n".join(out)

    def stamped_build(*args, **kwargs):
        fn, src = build(*args, **kwargs)
        if fn is None:
            return fn, src
        ns = fn.__globals__
        for name in [n for n in ns if n.startswith("_n") and callable(ns[n])]:
            seg, before, after = ns[name], _new_id("py", f"to {name}"), \
                _new_id("py", f"{name} returned")

            def call(*a, _seg=seg, _b=before, _a=after):
                stamp(_b)
                out = _seg(*a)
                stamp(_a)
                return out
            ns[name] = call
        enter, leave = _new_id("py", "program entered"), _new_id("py", "program returned")

        def program(*a):
            stamp(enter)
            out = fn(*a)
            stamp(leave)
            return out
        program.pool = getattr(fn, "pool", False)
        return program, src

    native._Segment.source = stamped_source
    native.build = stamped_build


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="mlp/train/b512",
                    help="a training case of the suite (default mlp/train/b512)")
    ap.add_argument("--steps", type=int, default=300, help="timed steps (default 300)")
    ap.add_argument("--min-us", type=float, default=2.0,
                    help="hide stamps whose median is below this (default 2 us)")
    ap.add_argument("--data-limit", type=int, default=None,
                    help="use only the first N training images (default: all)")
    args = ap.parse_args(argv)
    import workloads
    from _harness import Feed
    from taiji.compiler import fusion
    workload, kind, batch = args.case.split("/")
    if kind != "train" or not batch.startswith("b"):
        ap.error(f"--case: expected a training case such as mlp/train/b512, got {args.case!r}")
    found = [c for c in workloads.cases(workload, [int(batch[1:])]) if c.name == args.case]
    if not found:
        ap.error(f"--case: no case {args.case!r} in the suite's {workload!r} workload")
    case = found[0]
    stamp = _stamp_function()
    instrument(stamp)
    x, y, _ = case.data(args.data_limit)
    feed = Feed(x, y, case.batch, case.kind, seed=0)
    run = case.makers["taiji jit"](case.weights())
    for i in range(3):
        run(*feed.get(i))
    fusion.wait_for_kernels(600)
    for i in range(3, 50):
        run(*feed.get(i))
    if not any(where.startswith("_seg") for where, _ in LINES.values()):
        print("no native build (numba missing, TAIJI_NATIVE=0 or TAIJI_FUSION=0?)")
        return 1
    xs, ys = feed.get(0)
    loop, done = _new_id("py", "step started"), _new_id("py", "step returned")
    LOG[0] = 0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        stamp(loop)
        run(xs, ys)
        stamp(done)
    seconds = time.perf_counter() - t0
    n = int(LOG[0])
    rec = LOG[1:1 + 2 * n].reshape(n, 2)
    hz = (rec[-1, 1] - rec[0, 1]) / seconds  # (the loop's own overhead is ~0.1%)
    gaps = collections.defaultdict(list)
    for (_, c0), (k, c1) in zip(rec[:-1], rec[1:]):
        gaps[int(k)].append((c1 - c0) / hz * 1e6)
    print(f"{args.case}: {args.steps / seconds:.1f} steps/s on one fixed batch "
          f"({seconds / args.steps * 1e6:.0f} us a step), median and mean us since the "
          f"stamp before:")
    shown = 0.0
    for k in sorted(gaps):
        med = float(np.median(gaps[k]))
        if med >= args.min_us:
            where, what = LINES[k]
            print(f"{med:9.1f} {np.mean(gaps[k]):9.1f}  {where}: {what}")
            shown += med
    print(f"(shown: {shown:.0f} us of the step's medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
