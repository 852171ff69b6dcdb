"""Shared machinery of the benchmark suite: what a benchmark case is, batch assembly, timing
(first call, warm-up, interleaved repetitions, median), the BLAS GEMM roofline, peak RSS in a
fresh process, and the printed table, target checks and JSON.

Nothing here imports taiji, PyTorch or JAX at module level: the fresh-process RSS runs
(``_child.py``) import this module too, and must load only the framework they measure.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CONTENDERS = ("numpy", "taiji eager", "taiji jit", "pytorch eager", "jax jit")
TAIJI_MODES = ("taiji eager", "taiji jit")
INSTALL_HINT = "pip install -e .[bench]"

# a contender maker takes the initial weights (NumPy arrays, PyTorch layout) and returns
# run(x, y) -> output; it imports its framework itself, so an ImportError means "not installed"
Maker = Callable[[list], Callable[[np.ndarray, np.ndarray], Any]]


@dataclass
class Case:
    """One measured configuration: a workload at one batch size, and its contenders."""

    workload: str                 # "mlp", "cnn", "recommender", "inference"
    name: str                     # unique key, e.g. "mlp/train/b64"
    title: str                    # what a reader sees above the table
    batch: int
    kind: str                     # "train" (random batches) or "inference" (test set in order)
    flops_per_step: float         # matmul/conv FLOPs of one step (see each workload)
    data: Callable[[int | None], tuple[np.ndarray, np.ndarray, str]]  # limit -> (x, y, source)
    weights: Callable[[], list]   # the initial weights every contender starts from
    makers: dict[str, Maker]
    notes: dict[str, str] = field(default_factory=dict)  # contender -> why it is not here
    rss: bool = False             # measure peak RSS / cold first call in fresh processes
    check_rtol: float = 1e-3      # first-step loss (or output) agreement between contenders

    @property
    def unit(self) -> str:
        return "images/s" if self.kind == "inference" else "steps/s"


@dataclass
class Options:
    """How hard to measure (``--quick`` shrinks all of it for a smoke run)."""

    reps: int = 5
    seconds: float = 0.6
    warmup_seconds: float = 0.2
    min_steps: int = 3
    data_limit: int | None = None
    rss_steps: int = 30
    quick: bool = False


# ---------------------------------------------------------------- batch assembly and timing

class Feed:
    """Batch assembly. Training gathers rows of a shuffled pass (a copy, as a data loader
    makes); inference walks the set in order with views. Every contender gets the same
    sequence of batches; step ``i`` wraps around after ``windows`` batches."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, kind: str,
                 windows: int = 64, seed: int = 0):
        n = len(x)
        if n < batch:
            raise ValueError(f"batch {batch} is larger than the data ({n} rows)")
        self.x, self.y, self.batch, self.kind = x, y, batch, kind
        if kind == "inference":
            self.starts = list(range(0, n - batch + 1, batch))
        else:
            perm = np.random.default_rng(seed).permutation(n)
            span = max(1, n - batch)
            self.index = [perm[(i * batch) % span:][:batch] for i in range(windows)]

    def __len__(self) -> int:
        return len(self.starts) if self.kind == "inference" else len(self.index)

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``i``-th batch (assembled now: this cost is part of the measured step)."""
        if self.kind == "inference":
            s = self.starts[i % len(self.starts)]
            return self.x[s:s + self.batch], self.y[s:s + self.batch]
        j = self.index[i % len(self.index)]
        return self.x[j], self.y[j]


def sync(out: Any) -> Any:
    """Wait for an asynchronously dispatched result (JAX); others are ready on return."""
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()
    return out


def to_numpy(out: Any) -> np.ndarray:
    """A contender's output (taiji / PyTorch tensor, JAX or NumPy array) as NumPy."""
    if hasattr(out, "detach"):
        out = out.detach()
    if hasattr(out, "numpy") and not isinstance(out, np.ndarray):
        try:
            return np.asarray(out.numpy())
        except Exception:  # noqa: BLE001 - e.g. a JAX array: np.asarray below handles it
            pass
    return np.asarray(out)


def check_value(out: Any) -> float:
    """One number that every correct contender agrees on: the loss of a training step, the
    mean absolute logit of an inference batch."""
    a = to_numpy(out).astype(np.float64)
    return float(a) if a.ndim == 0 else float(np.abs(a).mean())


def measure(run: Callable, feed: Feed, start: int, seconds: float, min_steps: int = 3
            ) -> tuple[float, int]:
    """(steps/s over at least ``seconds`` and ``min_steps`` steps, next batch index)."""
    n, i = 0, start
    t0 = time.perf_counter()
    while True:
        out = run(*feed.get(i))
        n += 1
        i += 1
        if n >= min_steps and time.perf_counter() - t0 >= seconds:
            break
    sync(out)
    return n / (time.perf_counter() - t0), i


def settle(limit: float = 0.5, window: float = 0.01, busy: float = 0.2) -> float:
    """Wait until this process's threads stop using the CPU (at most ``limit`` seconds);
    returns the seconds waited. Frameworks' worker threads spin a while after their last
    call before they sleep: OpenBLAS's (NumPy, taiji eager) for ~0.1 s, one full core
    (measured here: ~105 ms; PyTorch's ~10 ms, JAX's none). A contender timed in that
    time shares a core with the previous one's spinning thread, so every contender
    starts only once a ``window`` of wall time has used less than ``busy`` of a core."""
    t0 = time.perf_counter()
    time.sleep(window)
    while time.perf_counter() - t0 < limit:
        c0, w0 = time.process_time(), time.perf_counter()
        time.sleep(window)
        if (time.process_time() - c0) < busy * (time.perf_counter() - w0):
            break
    return time.perf_counter() - t0


def wait_for_taiji_kernels() -> None:
    """taiji compiles fused kernels in a background thread after the first call; compile
    time is excluded from the timed steps for every contender, so wait for them."""
    from taiji.compiler.fusion import wait_for_kernels
    wait_for_kernels(600)


# ---------------------------------------------------------------- machine: peak, memory

def roofline(sizes: Sequence[int] = (1024, 2048), reps: int = 5) -> dict:
    """The machine's measured float32 GEMM rate with NumPy's BLAS (best of ``reps`` per
    size): the peak that achieved GFLOP/s is compared against."""
    by_size = {}
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        np.matmul(a, b, out=c)  # first call: page faults, thread start-up
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
        by_size[str(n)] = 2.0 * n ** 3 / best / 1e9
    return {"gflops": max(by_size.values()), "by_size": by_size,
            "what": f"NumPy float32 GEMM n^3, best of {reps}"}


def merge_rooflines(first: dict, last: dict) -> dict:
    """The faster of two roofline runs per size (one at the start, one at the end of the
    suite): on a busy machine a single run underestimates the peak."""
    by_size = {n: max(first["by_size"][n], last["by_size"].get(n, 0.0))
               for n in first["by_size"]}
    return {"gflops": max(by_size.values()), "by_size": by_size,
            "what": first["what"] + ", at the start and the end of the run"}


def rescale_peak(results: list, peak: float) -> None:
    """Recompute every contender's % of peak against ``peak``."""
    for r in results:
        for c in r["contenders"].values():
            c["pct_peak"] = 100.0 * c["gflops"] / peak if peak else None


def _status_kib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM; getrusage where /proc is absent)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib / 1024
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024  # bytes on macOS


def rss_mib() -> float:
    """This process's current resident set size (VmRSS; the peak where /proc is absent)."""
    kib = _status_kib("VmRSS")
    return kib / 1024 if kib is not None else peak_rss_mib()


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; else the platform's processor string):
    ratios move with the machine class (a Xeon's subnormal assists, an EPYC's GEMM peak)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """Versions and threads, read without importing the peers."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu_model(),
            "numpy": np.__version__, "taiji": version("taiji"), "torch": version("torch"),
            "jax": version("jax"), "numba": version("numba")}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = "; ".join(f"{i.get('internal_api')} {i.get('version')} "
                                 f"({i.get('num_threads')} threads)"
                                 for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        pass
    info["env"] = {k: os.environ[k] for k in ("TAIJI_FUSION", "TAIJI_KERNEL_CACHE",
                                              "TAIJI_CACHE_DIR", "OMP_NUM_THREADS",
                                              "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                   if k in os.environ}
    try:
        info["load_avg"] = os.getloadavg()
    except OSError:
        pass
    return info


# ---------------------------------------------------------------- running a case

class Notes:
    """Prints each skip note once per run (a missing peer would otherwise repeat per case)."""

    def __init__(self):
        self.seen: set[str] = set()

    def __call__(self, text: str) -> None:
        if text not in self.seen:
            self.seen.add(text)
            print(f"note: {text}", flush=True)


def build_contenders(case: Case, selected: Sequence[str], notes: Notes
                     ) -> tuple[dict, dict]:
    """(name -> maker that is here, name -> why it is skipped) for the selected contenders."""
    makers, skipped = {}, {}
    for name in CONTENDERS:
        if name not in selected:
            continue
        if name not in case.makers:
            why = case.notes.get(name, "not written for this workload")
            skipped[name] = why
            notes(f"{case.name}: no {name} contender: {why}")
            continue
        makers[name] = case.makers[name]
    return makers, skipped


def run_case(case: Case, selected: Sequence[str], opts: Options, peak: float,
             notes: Notes, seed: int = 0) -> dict:
    """Time one case: build every contender from the same weights, time its first call
    (trace + compile for the jit modes), wait for background compiles, warm up, then run
    ``opts.reps`` interleaved repetitions (the starting contender rotates) and take medians."""
    x, y, source = case.data(opts.data_limit)
    feed = Feed(x, y, case.batch, case.kind, seed=seed)
    ws = case.weights()
    makers, skipped = build_contenders(case, selected, notes)
    runs, info = {}, {}
    for name, make in makers.items():
        try:
            t0 = time.perf_counter()
            run = make(ws)
            setup = time.perf_counter() - t0
        except ImportError as e:
            skipped[name] = f"{e.name or e} is not installed"
            notes(f"skipping {name}: {e.name or e} is not installed ({INSTALL_HINT})")
            continue
        t0 = time.perf_counter()
        out = sync(run(*feed.get(0)))
        first = time.perf_counter() - t0
        value = check_value(out)
        if name.startswith("taiji"):  # eager mode compiles its fused optimizer update too
            wait_for_taiji_kernels()
        ready = time.perf_counter() - t0
        # the second step's loss depends on the first update: backward and Adam agree too
        value2 = check_value(run(*feed.get(1)))
        start = 2
        if name.startswith("taiji"):
            # wait_for_kernels asks for the native build of every program that has run
            # twice, and the first step (no .grad yet) is a program of its own: one more
            # step, then wait for the build
            sync(run(*feed.get(2)))
            start = 3
            t1 = time.perf_counter()
            wait_for_taiji_kernels()
            ready += time.perf_counter() - t1
        _, pos = measure(run, feed, start, opts.warmup_seconds, 1)
        runs[name] = run
        info[name] = {"setup_s": setup, "first_call_s": first, "ready_s": ready,
                      "first_value": value, "second_value": value2, "pos": pos}
    samples: dict[str, list] = {k: [] for k in runs}
    names = list(runs)
    for r in range(opts.reps):
        shift = r % len(names) if names else 0  # rotate who goes first: drift hits all alike
        for k in names[shift:] + names[:shift]:
            settle()  # the previous contender's worker threads go idle first
            rate, info[k]["pos"] = measure(runs[k], feed, info[k]["pos"], opts.seconds,
                                           opts.min_steps)
            samples[k].append(rate)
    del runs
    gc.collect()
    contenders = {}
    for k, s in samples.items():
        med = statistics.median(s)
        gflops = med * case.flops_per_step / 1e9
        d = dict(info[k])
        d.pop("pos")
        d.update({"steps_per_s": med, "items_per_s": med * case.batch, "samples": s,
                  "spread": (max(s) - min(s)) / med if med else 0.0, "gflops": gflops,
                  "pct_peak": 100.0 * gflops / peak if peak else None})
        contenders[k] = d
    mismatch = _value_mismatch(contenders, case.check_rtol)
    if mismatch:
        print(f"warning: {case.name}: contenders disagree on the first two steps' "
              f"{'loss' if case.kind == 'train' else 'mean |output|'}: {mismatch}")
    return {"workload": case.workload, "name": case.name, "title": case.title,
            "kind": case.kind, "batch": case.batch, "unit": case.unit,
            "flops_per_step": case.flops_per_step, "data": source,
            "contenders": contenders, "ratios": ratios(contenders), "skipped": skipped,
            **({"value_mismatch": mismatch} if mismatch else {})}


def _value_mismatch(contenders: dict, rtol: float) -> str:
    """'' when every contender's first and second values agree within ``rtol`` of the
    median, else all of them for the warning."""
    if len(contenders) < 2:
        return ""
    for key in ("first_value", "second_value"):
        vals = {k: c[key] for k, c in contenders.items()}
        ref = statistics.median(vals.values())
        if any(abs(v - ref) > rtol * max(abs(ref), 1e-6) for v in vals.values()):
            return ", ".join(f"{k} {c['first_value']:.6g}/{c['second_value']:.6g}"
                             for k, c in contenders.items())
    return ""


def ratios(contenders: dict) -> dict:
    """Speed of each taiji mode over each peer (>1: taiji is faster)."""
    out = {}
    for mode in TAIJI_MODES:
        if mode in contenders:
            out[mode] = {p: contenders[mode]["steps_per_s"] / c["steps_per_s"]
                         for p, c in contenders.items() if not p.startswith("taiji")}
    return out


# ---------------------------------------------------------------- fresh-process runs

def fresh_process_run(case: Case, contender: str, opts: Options, seed: int = 0,
                      batches: Sequence[int] | None = None) -> dict:
    """Train (or infer) ``opts.rss_steps`` steps of one contender in a new Python process
    that imports only that framework; returns its peak RSS (MiB), the RSS before the
    framework was imported, and its cold first-call time. The data goes over as an ``.npz``
    of just the rows those steps use (loaded without pickle)."""
    x, y, _ = case.data(opts.data_limit)
    feed = Feed(x, y, case.batch, case.kind, seed=seed)
    n = min(opts.rss_steps, len(feed))
    rows = [feed.get(i) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="taiji-bench-") as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, x=np.concatenate([r[0] for r in rows]),
                 y=np.concatenate([r[1] for r in rows]))
        del rows
        spec = {"workload": case.workload, "case": case.name, "contender": contender,
                "data": path, "steps": opts.rss_steps, "batch": case.batch,
                "batches": list(batches) if batches else None}
        # taiji's disk cache of compiled kernels is off in the child: "cold" then means a
        # true first compile, the same on every run, whatever earlier runs left in the cache
        env = dict(os.environ, TAIJI_KERNEL_CACHE="0")
        p = subprocess.run([sys.executable, os.path.join(HERE, "_child.py"), json.dumps(spec)],
                           capture_output=True, text=True, timeout=900, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {p.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- output

def _fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.1f} s"


def print_case(res: dict) -> None:
    """The per-case block: rate, spread, GFLOP/s, % of peak, first call; then the ratios."""
    unit = res["unit"]
    print(f"\n== {res['title']}")
    print(f"   {res['flops_per_step'] / 1e6:.1f} MFLOP/step (matmul/conv), data: {res['data']}")
    print(f"   {'contender':<14}{unit:>12}{'spread':>8}{'GFLOP/s':>9}{'% peak':>8}"
          f"{'first call':>12}{'+kernels':>11}")
    for k, c in res["contenders"].items():
        rate = c["items_per_s"] if unit == "images/s" else c["steps_per_s"]
        print(f"   {k:<14}{rate:>12.1f}{c['spread'] * 100:>7.0f}%{c['gflops']:>9.2f}"
              f"{c['pct_peak']:>7.1f}%{_fmt_ms(c['first_call_s']):>12}"
              f"{_fmt_ms(c['ready_s']):>11}")
    for mode, r in res["ratios"].items():
        if r:
            print(f"   {mode}: " + ", ".join(f"{v:.2f}x {p}" for p, v in r.items()))
    for k, why in res["skipped"].items():
        print(f"   ({k}: skipped, {why})")
    sys.stdout.flush()


def print_rss(results: list) -> None:
    """Peak RSS and cold first call from the fresh-process runs."""
    rows = [(r, k, c) for r in results for k, c in r["contenders"].items() if "rss" in c]
    if not rows:
        return
    print("\n== fresh process per contender: peak RSS (VmHWM) over the run, RSS before the "
          "framework import, cold first call")
    print(f"   {'case':<24}{'contender':<15}{'peak RSS':>10}{'base':>9}{'first call':>12}"
          f"{'+kernels':>11}")
    for r, k, c in rows:
        x = c["rss"]
        if "error" in x:
            print(f"   {r['name']:<24}{k:<15}  failed: {x['error']}")
            continue
        print(f"   {r['name']:<24}{k:<15}{x['peak_rss_mib']:>6.0f} MiB{x['base_rss_mib']:>5.0f} MiB"
              f"{_fmt_ms(x['first_call_s']):>12}{_fmt_ms(x['ready_s']):>11}")


def summary_markdown(results: list, peak: float) -> str:
    """One Markdown table of the whole run (what benchmarks/README.md records)."""
    present = [c for c in CONTENDERS if any(c in r["contenders"] for r in results)]
    pairs = [(m, p) for m in TAIJI_MODES if m in present
             for p in present if not p.startswith("taiji")]
    short = {"numpy": "numpy", "taiji eager": "eager", "taiji jit": "jit",
             "pytorch eager": "torch", "jax jit": "jax"}
    head = (["case", "unit"] + present + [f"{short[m]}/{short[p]}" for m, p in pairs]
            + ["jit GFLOP/s (% peak)", "best GFLOP/s (% peak)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cs = r["contenders"]
        row = [r["name"], r["unit"]]
        for k in present:
            c = cs.get(k)
            row.append("-" if c is None else
                       f"{c['items_per_s'] if r['unit'] == 'images/s' else c['steps_per_s']:.1f}")
        for m, p in pairs:
            v = r["ratios"].get(m, {}).get(p)
            row.append("-" if v is None else f"{v:.2f}x")
        jit = cs.get("taiji jit")
        row.append("-" if jit is None else f"{jit['gflops']:.1f} ({jit['pct_peak']:.0f}%)")
        best = max(cs.items(), key=lambda kv: kv[1]["gflops"], default=None)
        row.append("-" if best is None else
                   f"{best[1]['gflops']:.1f} ({best[1]['pct_peak']:.0f}%, {short[best[0]]})")
        lines.append("| " + " | ".join(row) + " |")
    extra = []
    for r in results:
        for k, c in r["contenders"].items():
            x = c.get("rss")
            if x and "error" not in x:
                extra.append(f"| {r['name']} | {k} | {x['peak_rss_mib']:.0f} | "
                             f"{_fmt_ms(c['first_call_s'])} | {_fmt_ms(x['first_call_s'])} |")
    out = "\n".join(lines)
    if extra:
        out += ("\n\n| case | contender | peak RSS MiB (fresh process) | first call | "
                "cold first call |\n|---|---|---|---|---|\n" + "\n".join(extra))
    return out + f"\n\nroofline: {peak:.1f} GFLOP/s (NumPy float32 GEMM)"


def check_targets(results: list) -> list:
    """The issue's targets, each with the measured value and whether it is met (None: not
    measured in this run, e.g. a peer is missing)."""
    out = []

    def add(name: str, value: float | None, op: str, bound: float) -> None:
        met = None if value is None else (value >= bound if op == ">=" else
                                          value < bound if op == "<" else value <= bound)
        out.append({"target": name, "value": value, "op": op, "bound": bound, "met": met})

    for r in results:
        rt, cs = r["ratios"], r["contenders"]
        if r["workload"] == "mlp" and r["kind"] == "train":
            add(f"{r['name']}: taiji jit / jax jit", rt.get("taiji jit", {}).get("jax jit"),
                ">=", 1.25)
            add(f"{r['name']}: taiji jit / pytorch eager",
                rt.get("taiji jit", {}).get("pytorch eager"), ">=", 1.5)
            add(f"{r['name']}: taiji eager / pytorch eager",
                rt.get("taiji eager", {}).get("pytorch eager"), ">=", 1.0)
            jit = cs.get("taiji jit")
            if jit is not None:
                x = jit.get("rss") or {}
                first = x.get("first_call_s", jit["first_call_s"])
                add(f"{r['name']}: taiji jit first compile (s"
                    f"{', fresh process' if 'first_call_s' in x else ''})", first, "<", 1.0)
            torch_rss = (cs.get("pytorch eager", {}).get("rss") or {}).get("peak_rss_mib")
            for mode in TAIJI_MODES:
                mine = (cs.get(mode, {}).get("rss") or {}).get("peak_rss_mib")
                if mine is not None or mode in cs:
                    add(f"{r['name']}: {mode} peak RSS / pytorch eager's",
                        None if mine is None or torch_rss is None else mine / torch_rss,
                        "<=", 1.0)
        if r["workload"] == "cnn" and r["kind"] == "train" and r["batch"] == 64:
            add(f"{r['name']}: taiji jit / pytorch eager",
                rt.get("taiji jit", {}).get("pytorch eager"), ">=", 1.0)
    return out


def print_targets(targets: list) -> None:
    """One line per target: the measured value, the bound, met / MISSED / not measured."""
    if not targets:
        return
    print("\n== targets (issue 7)")
    for t in targets:
        v = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"   {t['target']:<60} {v:>6} {t['op']} {t['bound']:<5} {verdict}")


def compare(results: list, old_path: str) -> None:
    """Each contender's rate against an earlier JSON of this suite (new / old)."""
    with open(old_path) as f:
        old = {r["name"]: r for r in json.load(f).get("results", [])}
    print(f"\n== against {old_path} (new / old rate)")
    for r in results:
        o = old.get(r["name"])
        if o is None:
            continue
        parts = [f"{k} {c['steps_per_s'] / o['contenders'][k]['steps_per_s']:.2f}x"
                 for k, c in r["contenders"].items() if k in o["contenders"]]
        print(f"   {r['name']:<24}" + ", ".join(parts))
