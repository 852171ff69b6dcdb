"""One contender in a fresh process, for peak RSS and the cold first call (started by
``_harness.fresh_process_run``; not meant to be run by hand).

    python benchmarks/_child.py '{"workload": ..., "case": ..., "contender": ..., "data": ...}'

Loads only NumPy before the contender's maker imports its framework, so one framework's
imports do not inflate another's numbers. Prints one JSON line.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402
from _harness import Feed, peak_rss_mib, rss_mib, sync, wait_for_taiji_kernels  # noqa: E402


def main(spec: dict) -> dict:
    """Build the contender, time its first call, run ``spec["steps"]`` steps, report."""
    with np.load(spec["data"]) as d:  # .npz of plain arrays: no pickle is loaded
        x, y = d["x"], d["y"]
    batches = spec.get("batches") or [spec["batch"]]
    case = next(c for c in workloads.cases(spec["workload"], batches)
                if c.name == spec["case"])
    feed = Feed(x, y, case.batch, case.kind)
    ws = case.weights()
    base = rss_mib()
    t0 = time.perf_counter()
    run = case.makers[spec["contender"]](ws)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    sync(run(*feed.get(0)))
    first = time.perf_counter() - t0
    if spec["contender"].startswith("taiji"):
        wait_for_taiji_kernels()
    ready = time.perf_counter() - t0
    out = None
    for i in range(1, spec["steps"]):
        out = run(*feed.get(i))
    sync(out)
    return {"peak_rss_mib": peak_rss_mib(), "base_rss_mib": base, "setup_s": setup,
            "first_call_s": first, "ready_s": ready, "steps": spec["steps"]}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
