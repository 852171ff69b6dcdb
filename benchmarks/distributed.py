"""2-rank vs 1-rank data-parallel throughput of the seed MLP (784-256-128-10), eager and
under taiji.jit, on this machine.

    python benchmarks/distributed.py            # runs both world sizes through the launcher

Each rank trains on its own batch of 64 (weak scaling: the global batch grows with the world
size), so ideal scaling doubles samples/s. On a 2-core machine the two ranks share the cores
that a single process's BLAS already uses, so expect little or no gain: the number to read is
the overhead of the gradient all-reduce.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

STEPS, WARMUP, BATCH = 60, 5, 64


def worker(mode: str) -> None:
    import taiji
    import taiji.distributed as dist
    import taiji.nn as nn
    import taiji.nn.functional as F
    from taiji.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("mpi")
    r, n = dist.get_rank(), dist.get_world_size()
    taiji.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    model = DDP(net) if n > 1 else net
    opt = taiji.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rs = np.random.RandomState(r)
    x = taiji.tensor(rs.standard_normal((BATCH, 784)).astype(np.float32))
    y = taiji.tensor(rs.randint(0, 10, BATCH))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = taiji.jit(step) if mode == "jit" else step
    for _ in range(WARMUP):
        fn(x, y)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(STEPS):
        fn(x, y)
    dist.barrier()
    dt = time.perf_counter() - t0
    if r == 0:
        print(f"RESULT {mode} world={n} samples/s={STEPS * BATCH * n / dt:.0f} "
              f"ms/step={1000 * dt / STEPS:.2f}", flush=True)


def main() -> None:
    here = os.path.abspath(__file__)
    print(f"seed MLP, per-rank batch {BATCH}, {STEPS} steps, {os.cpu_count()} CPU cores")
    for mode in ("eager", "jit"):
        for n in (1, 2):
            for check in ("1", "0"):
                if n == 1 and check == "0":
                    continue
                env = dict(os.environ, TAIJI_DIST_CHECK=check)
                out = subprocess.run([sys.executable, "-m", "taiji.distributed.launch", "-n",
                                      str(n), here, "--worker", mode], capture_output=True,
                                     text=True, env=env, timeout=600)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
                note = "" if n == 1 else f" (shape checks {'on' if check == '1' else 'off'})"
                print((lines[0][7:] if lines else f"{mode} world={n} FAILED:\n{out.stderr[-2000:]}")
                      + note)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        main()
