"""Where a taiji training step's time goes on the GPU: the profile a GPU session reads before
it changes anything (benchmarks/gpu.sh runs it last when time is left).

For each case (the seed MLP and CNN of gpu_bench.py, same weights and batch):

- ``step``: one taiji.jit training step, called back to back (us per step, steps/s), the
  program's mode ('graph' or 'plain', with the fallback reason), and for a graph the GPU
  time of its replay alone (replays back to back, then a sync) and the host time of a
  launch (no sync: a launch that waits for a full queue shows up here too);
- ``kernels`` (``--kernels``): the same step with CUDA graphs off, so every kernel shows,
  under ``torch.profiler`` (CUPTI sees every kernel of the process, CuPy's and cuBLAS's
  included): the kernels by total GPU time, and the GPU time of a step;
- ``eager``: the eager step's host-side profile (cProfile, by own time): where eager mode's
  per-op overhead goes.

    python benchmarks/gpu_profile.py [--cases "mlp b64" "mlp b32768"] [--kernels] [--steps N]
    python benchmarks/gpu_profile.py --device cpu --quick     # dry run on the CPU
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_bench import taiji_step  # noqa: E402

DEFAULT_CASES = ("mlp b64", "mlp b512", "mlp b4096", "mlp b32768", "cnn b64")


def build(model: str, batch: int, device: str, compiled: bool):
    """The benchmark's training step: ``(step, x, y)``; ``step(x, y)`` returns the loss."""
    return taiji_step(model, batch, device, compiled)


def _sync(device: str) -> None:
    import taiji
    if device != "cpu":
        taiji.cuda.synchronize()


def _per_call(fn, n: int, device: str) -> float:
    _sync(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / n


def profile_step(model: str, batch: int, device: str, steps: int) -> list[str]:
    """The compiled step's timings (see the module docstring)."""
    step, x, y = build(model, batch, device, compiled=True)
    for _ in range(5):
        step(x, y)
    prog = next(reversed(step._cache.data.values()))[-1].fn
    dt = _per_call(lambda: step(x, y), steps, device)
    mode = getattr(prog, "mode", "cpu")
    why = getattr(prog, "fallback_reason", None)
    lines = [f"  jit step {dt * 1e6:9.1f} us  ({1 / dt:,.0f} steps/s)  mode {mode}"
             + (f" ({why})" if why and mode != "graph" else "")]
    replay = getattr(prog, "replay", None)
    if replay is not None:
        gpu = _per_call(replay, steps, device)
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            replay()
        launch = (time.perf_counter() - t) / steps
        _sync(device)
        lines.append(f"  replay   {gpu * 1e6:9.1f} us of GPU time; a launch {launch * 1e6:.1f} us "
                     f"of host time; the rest of a step, {max(dt - gpu, 0) * 1e6:.1f} us, is the "
                     f"call around it")
    return lines


def profile_kernels(model: str, batch: int, device: str, steps: int, rows: int) -> list[str]:
    """Kernels by GPU time with graphs off (torch.profiler), or a note why not."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except Exception as e:  # noqa: BLE001 - no PyTorch: no CUPTI reader here
        return [f"  kernels: not profiled (PyTorch's profiler is not importable: {e})"]
    if device == "cpu" or not torch.cuda.is_available():
        return ["  kernels: not profiled (needs a GPU that PyTorch sees)"]
    from taiji.compiler import cuda as C
    old = C.config.graphs
    C.config.graphs = False  # (each kernel launched on its own: each shows in the trace)
    try:
        step, x, y = build(model, batch, device, compiled=True)
        for _ in range(3):
            step(x, y)
        _sync(device)
    finally:
        C.config.graphs = old
    torch.cuda.init()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(steps):
            step(x, y)
        _sync(device)
    def gpu_us(e):  # (older PyTorch names it cuda_time_total)
        return getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
    events = sorted((e for e in p.key_averages() if gpu_us(e) > 0), key=lambda e: -gpu_us(e))
    total = sum(gpu_us(e) for e in events) or 1.0
    out = [f"  kernels (graphs off, {steps} steps): {total / steps:.1f} us of GPU time a step"]
    for e in events[:rows]:
        out.append(f"    {gpu_us(e) / steps:8.1f} us  {100 * gpu_us(e) / total:5.1f} %"
                   f"  x{e.count // steps:<3d} {e.key[:90]}")
    return out


def profile_eager(model: str, batch: int, device: str, steps: int, rows: int) -> list[str]:
    """The eager step's time per step and its host-side profile by own time."""
    step, x, y = build(model, batch, device, compiled=False)
    for _ in range(5):
        step(x, y)
    dt = _per_call(lambda: step(x, y), steps, device)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step(x, y)
    _sync(device)
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(rows)
    body = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(body) if ln.lstrip().startswith("ncalls")), 0)
    return [f"  eager step {dt * 1e6:9.1f} us ({1 / dt:,.0f} steps/s); host profile of {steps} "
            f"steps, by own time:"] + ["    " + ln for ln in body[start:start + rows + 1]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--cases", nargs="+", default=None, help='e.g. "mlp b64" "cnn b64"')
    ap.add_argument("--steps", type=int, default=200, help="calls timed per measurement")
    ap.add_argument("--kernels", action="store_true", help="add the per-kernel tables")
    ap.add_argument("--no-eager", action="store_true", help="skip the eager profiles")
    ap.add_argument("--rows", type=int, default=14, help="rows per table")
    ap.add_argument("--quick", action="store_true", help="small cases, few steps (dry run)")
    args = ap.parse_args(argv)
    import taiji
    if args.device == "cuda" and not taiji.cuda.is_available():
        print(f"no GPU: {taiji.cuda.unavailable_reason()} (--device cpu for a dry run)")
        return 2
    cases = args.cases or (["mlp b64", "cnn b8"] if args.quick else list(DEFAULT_CASES))
    steps = 5 if args.quick else args.steps
    name = taiji.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"taiji GPU profile on {name}: {steps} steps per measurement")
    for case in cases:
        model, b = case.split()
        batch = int(b.lstrip("b"))
        print(f"== {case}")
        for line in profile_step(model, batch, args.device, steps):
            print(line)
        if args.kernels:
            for line in profile_kernels(model, batch, args.device, min(steps, 20), args.rows):
                print(line)
        if not args.no_eager and model == "mlp" and batch <= 512:
            for line in profile_eager(model, batch, args.device, min(steps, 100), args.rows):
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
