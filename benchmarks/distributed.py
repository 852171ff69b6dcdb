"""2-rank vs 1-rank data-parallel throughput of the seed MLP (784-256-128-10) and the seed
CNN (conv32-pool-conv64-pool-fc512-10), eager and under taiji.jit, on this machine.

    python benchmarks/distributed.py            # both models, both world sizes, via the launcher
    python benchmarks/distributed.py --models mlp

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
CNN_STEPS = 12


def _model(name: str, nn):
    """The suite's seed model (benchmarks/workloads), built from ``nn``."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from workloads import cnn, mlp
    return (cnn.build if name == "cnn" else mlp.BUILD)(nn)


def worker(mode: str, name: str = "mlp") -> None:
    import taiji
    import taiji.distributed as dist
    import taiji.nn as nn
    import taiji.nn.functional as F
    from taiji.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("mpi")
    r, n = dist.get_rank(), dist.get_world_size()
    taiji.manual_seed(0)
    net = _model(name, nn)
    model = DDP(net) if n > 1 else net
    opt = taiji.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rs = np.random.RandomState(r)
    shape = (BATCH, 1, 28, 28) if name == "cnn" else (BATCH, 784)
    x = taiji.tensor(rs.standard_normal(shape).astype(np.float32))
    y = taiji.tensor(rs.randint(0, 10, BATCH))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    fn = taiji.jit(step) if mode == "jit" else step
    steps = CNN_STEPS if name == "cnn" else STEPS
    for _ in range(WARMUP):
        fn(x, y)
    from taiji.compiler.fusion import wait_for_kernels
    wait_for_kernels()  # background kernel compiles are not part of the measurement
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn(x, y)
    dist.barrier()
    dt = time.perf_counter() - t0
    if r == 0:
        print(f"RESULT {name} {mode} world={n} samples/s={steps * BATCH * n / dt:.0f} "
              f"ms/step={1000 * dt / steps:.2f}", flush=True)


def main(models=("mlp", "cnn")) -> None:
    here = os.path.abspath(__file__)
    print(f"per-rank batch {BATCH}, {STEPS} steps (MLP) / {CNN_STEPS} (CNN), "
          f"{os.cpu_count()} CPU cores")
    for name, mode in [(m, k) for m in models for k in ("eager", "jit")]:
        for n in (1, 2):
            for check in ("1", "0"):
                if n == 1 and check == "0":
                    continue
                env = dict(os.environ, TAIJI_DIST_CHECK=check)
                out = subprocess.run([sys.executable, "-m", "taiji.distributed.launch", "-n",
                                      str(n), here, "--worker", mode, name],
                                     capture_output=True,
                                     text=True, env=env, timeout=600)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
                note = "" if n == 1 else f" (shape checks {'on' if check == '1' else 'off'})"
                print((lines[0][7:] if lines else
                       f"{name} {mode} world={n} FAILED:\n{out.stderr[-2000:]}") + note)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(*sys.argv[2:4])
    elif sys.argv[1:2] == ["--models"]:
        main(tuple(sys.argv[2:]))
    else:
        main()
