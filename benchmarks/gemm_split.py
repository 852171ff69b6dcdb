"""Products in halves (taiji/compiler/blas.py, docs/jit.md "Products in halves"), on and off:
the seed MLP's compiled training step with ``TAIJI_GEMM_SPLIT=0`` against the default, in
fresh processes that alternate (off, on; then on, off; ...), so machine drift hits both.
``--switch pool``: the pool's worker (taiji/compiler/pool.py) off (``TAIJI_POOL=0``: halves
through OpenBLAS's batch call) and on.

    python benchmarks/gemm_split.py [--switch split|pool] [--batches 64 128 512] [--rounds 4]
                                    [--seconds 1.5]

Prints steps/s per round and the median of the rounds' on/off ratios per batch size.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child(batch: int, seconds: float) -> None:
    """Train the seed MLP under taiji.jit and print its steps/s (batch assembly included)."""
    sys.path.insert(0, HERE)
    from _harness import Feed
    from workloads import _common as C, mlp
    from taiji.compiler import fusion
    x, y, _ = C.images("train", 10000, False)
    feed = Feed(x, y, batch, "train")
    run = C.taiji_train(mlp.BUILD, mlp.init_weights(), "ce", compiled=True)
    for i in range(5):
        run(*feed.get(i))
    fusion.wait_for_kernels()  # the native tier, as the suite measures it
    for i in range(20):
        run(*feed.get(i))
    rates, k = [], 0
    for _ in range(5):
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds / 5:
            run(*feed.get(k))
            k, n = k + 1, n + 1
        rates.append(n / (time.perf_counter() - t0))
    print(statistics.median(rates))


SWITCHES = {"split": "TAIJI_GEMM_SPLIT", "pool": "TAIJI_POOL"}


def measure(batch: int, seconds: float, on: bool, switch: str = "split") -> float:
    env = dict(os.environ, **{SWITCHES[switch]: "1" if on else "0"})
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(batch),
                          "--seconds", str(seconds)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switch", choices=sorted(SWITCHES), default="split",
                    help="what goes off and on: products in halves, or the pool's worker")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128, 512])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=1.5, help="measured seconds per process")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.child, a.seconds)
        return 0
    what = {"split": "products in halves", "pool": "the pool's worker"}[a.switch]
    print(f"seed MLP training step under taiji.jit, {what} off / on "
          f"({a.rounds} rounds of fresh processes, alternating order)")
    for b in a.batches:
        ratios = []
        for r in range(a.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            got = {s: measure(b, a.seconds, s, a.switch) for s in order}
            ratios.append(got[True] / got[False])
            print(f"   batch {b:4d} round {r + 1}: off {got[False]:8.1f}  on {got[True]:8.1f} "
                  f"steps/s  on/off {ratios[-1]:.3f}")
        print(f"batch {b}: on/off median {statistics.median(ratios):.3f} "
              f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
