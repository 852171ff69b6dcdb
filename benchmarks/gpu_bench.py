"""GPU training benchmark: the seed MLP (784-256-128-10, ReLU, cross-entropy, Adam 1e-3) at
batch 64, 512, 4096 and 32768, and the seed CNN (conv32-pool-conv64-pool-fc512-10) at batch
64, on device-resident synthetic data (no host transfers in the loop), in one run on one GPU:

    taiji eager    taiji.nn + taiji.optim.Adam, op by op (the optimizer step is compiled)
    taiji jit      the same step under taiji.jit (fused kernels, one CUDA graph per step)
    pytorch eager  torch.nn + torch.optim.Adam (its CUDA default: the foreach update)
    jax jit        value_and_grad + Adam written out as optax does, jax.jit, donated state
    cupy (hand)    the MLP's forward, backward and Adam written by hand in CuPy

Every contender starts from the same weights and trains on the same batch. Prints one table
(steps/s, the ratios the issue's bar names, PASS/FAIL) and writes JSON with ``--json``.
A missing peer (no PyTorch, no JAX GPU backend) is skipped with a note. TF32: taiji follows
``taiji.backends.cuda.matmul.allow_tf32`` (on by default, as JAX's default precision), and
PyTorch is given the same setting so the comparison is like for like.

Then the AMP table (mixed precision, float16 on CUDA): the seed MLP at batch 512 and 4096 and
the CNN at batch 64, each training step with float16 autocast and dynamic loss scaling

    taiji amp jit    taiji.autocast("cuda", float16) + taiji.amp.GradScaler, under taiji.jit
    taiji amp eager  the same step op by op
    pytorch amp      torch.autocast("cuda", torch.float16) + torch.amp.GradScaler, eager

against the float32 steps of the first table (taiji jit, pytorch eager; measured again if the
first table did not run them), with the ratios AMP/float32 for each framework and taiji's AMP
against PyTorch's.

``--budget S`` bounds the measuring time: a contender that would start after it is skipped
with a note, so the tables always print (60 % of it for the first table when both run).

    python benchmarks/gpu_bench.py [--seconds 1.0] [--only "taiji jit" "jax jit"] [--json F]
    python benchmarks/gpu_bench.py --device cpu --quick   # dry run of the whole script on CPU
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
MLP_SIZES = (784, 256, 128, 10)
CONTENDERS = ("taiji eager", "taiji jit", "pytorch eager", "jax jit", "cupy (hand)")
# the AMP table's columns: float32 ones are the first table's contenders of those names
AMP_COLUMNS = (("taiji fp32 jit", "taiji jit"), ("taiji amp jit", "taiji amp jit"),
               ("taiji amp eager", "taiji amp eager"), ("pytorch fp32", "pytorch eager"),
               ("pytorch amp", "pytorch amp"))
AMP_CONTENDERS = ("taiji amp jit", "taiji amp eager", "pytorch amp")
AMP_CASES = ("mlp b512", "mlp b4096", "cnn b64")
INIT_SCALE = 2.0 ** 16  # both GradScalers start from PyTorch's default
# the bar: (contender, baseline, minimum ratio) per case name (None: no bar)
BAR = {
    "mlp b64": (2.0, 1.0), "mlp b512": (2.0, 1.0), "mlp b4096": (1.0, 1.0),
    "mlp b32768": (1.0, 1.0), "cnn b64": (1.0, 1.0),
}


@dataclass
class Case:
    name: str          # "mlp b64"
    model: str         # "mlp" or "cnn"
    batch: int


@dataclass
class Result:
    case: str
    contender: str
    steps_per_s: float | None = None
    first_loss: float | None = None
    note: str = ""
    samples: list = field(default_factory=list)


# ---------------------------------------------------------------- weights and data

def init_weights(model: str, seed: int = 0) -> list:
    """PyTorch-layout weights (out, in[, kh, kw]) and biases, uniform(+-1/sqrt(fan_in))."""
    rng = np.random.default_rng(seed)
    if model == "mlp":
        shapes = [(o, i) for i, o in zip(MLP_SIZES[:-1], MLP_SIZES[1:])]
    else:
        shapes = [(32, 1, 3, 3), (64, 32, 3, 3), (512, 64 * 7 * 7), (10, 512)]
    ws = []
    for s in shapes:
        bound = 1.0 / math.sqrt(int(np.prod(s[1:])))
        ws.append(rng.uniform(-bound, bound, s).astype(np.float32))
        ws.append(rng.uniform(-bound, bound, (s[0],)).astype(np.float32))
    return ws


def batch_data(model: str, batch: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    shape = (batch, 784) if model == "mlp" else (batch, 1, 28, 28)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, batch)


def _layers(nn, model: str):
    if model == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(), nn.Linear(512, 10))


# ---------------------------------------------------------------- contenders
# Each maker returns (step, sync): step() runs one training step on the resident batch and
# returns the loss (not waited for); sync() waits for the device and returns a float loss.

def make_taiji(case: Case, device: str, compiled: bool, amp: bool = False):
    """taiji's step; with ``amp``, float16 autocast and a GradScaler around it."""
    import taiji
    f, x, y = taiji_step(case.model, case.batch, device, compiled, amp)
    box = [None]

    def step():
        box[0] = f(x, y)
        return box[0]

    def sync():
        if device != "cpu":
            taiji.cuda.synchronize()
        return float(box[0])
    return step, sync


def taiji_step(model_name: str, batch: int, device: str, compiled: bool, amp: bool = False):
    """``(f, x, y)``: taiji's training step ``f(x, y) -> loss`` (jitted when ``compiled``)
    and the resident batch (gpu_profile.py profiles the same step)."""
    import taiji
    import taiji.nn.functional as F
    model = _layers(taiji.nn, model_name)
    with taiji.no_grad():
        for p, w in zip(model.parameters(), init_weights(model_name)):
            p.copy_(taiji.tensor(w))
    model.to(device)
    opt = taiji.optim.Adam(model.parameters(), lr=LR)
    xs, ys = batch_data(model_name, batch)
    x, y = taiji.tensor(xs, device=device), taiji.tensor(ys, device=device)

    def step_fn(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    scaler = taiji.amp.GradScaler(device, init_scale=INIT_SCALE) if amp else None

    def amp_step_fn(x, y):
        opt.zero_grad()
        with taiji.autocast(device, dtype=taiji.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss
    fn = amp_step_fn if amp else step_fn
    return (taiji.jit(fn) if compiled else fn), x, y


def make_torch(case: Case, device: str, tf32: bool, amp: bool = False):
    """PyTorch's eager step; with ``amp``, torch.autocast(float16) + torch.amp.GradScaler."""
    import torch
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("PyTorch here has no CUDA")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    model = _layers(torch.nn, case.model)
    with torch.no_grad():
        for p, w in zip(model.parameters(), init_weights(case.model)):
            p.copy_(torch.from_numpy(w))
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    xs, ys = batch_data(case.model, case.batch)
    x, y = torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device)
    F = torch.nn.functional
    box = [None]
    scaler = torch.amp.GradScaler(device, init_scale=INIT_SCALE) if amp else None

    def step():
        opt.zero_grad()
        if amp:
            with torch.autocast(device_type=device, dtype=torch.float16):
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        box[0] = loss
        return loss

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()
        return float(box[0].detach())
    return step, sync


def _jax_forward(model: str):
    import jax
    from jax import lax

    def mlp(p, x):
        h = x
        for i in range(0, len(p) - 2, 2):
            h = jax.nn.relu(h @ p[i].T + p[i + 1])
        return h @ p[-2].T + p[-1]

    def cnn(p, x):
        c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = p
        dn = ("NCHW", "OIHW", "NCHW")

        def block(h, w, b):
            h = lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
            h = jax.nn.relu(h + b[None, :, None, None])
            return lax.reduce_window(h, -float("inf"), lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")
        h = block(block(x, c1w, c1b), c2w, c2b)
        h = h.reshape(h.shape[0], -1)
        h = jax.nn.relu(h @ f1w.T + f1b)
        return h @ f2w.T + f2b
    return mlp if model == "mlp" else cnn


def make_jax(case: Case, device: str):
    import jax
    import jax.numpy as jnp
    platform_ = "gpu" if device == "cuda" else "cpu"
    try:
        dev = jax.devices(platform_)[0]
    except RuntimeError as e:
        raise RuntimeError(f"JAX here has no {platform_} backend ({e})") from None
    forward = _jax_forward(case.model)

    def loss_fn(p, x, y):
        z = forward(p, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))

    put = lambda a: jax.device_put(a, dev)
    params = [put(w) for w in init_weights(case.model)]
    state = {"p": params, "m": [jnp.zeros_like(w) for w in params],
             "v": [jnp.zeros_like(w) for w in params], "t": put(np.zeros((), np.float32))}
    xs, ys = batch_data(case.model, case.batch)
    x, y = put(xs), put(ys.astype(np.int32))

    def update(s, x, y):
        value, g = jax.value_and_grad(loss_fn)(s["p"], x, y)
        t = s["t"] + 1
        m = [B1 * a + (1 - B1) * b for a, b in zip(s["m"], g)]
        v = [B2 * a + (1 - B2) * b * b for a, b in zip(s["v"], g)]
        c1, c2 = 1 - B1 ** t, 1 - B2 ** t
        p = [w - LR * (a / c1) / (jnp.sqrt(b / c2) + EPS) for w, a, b in zip(s["p"], m, v)]
        return {"p": p, "m": m, "v": v, "t": t}, value
    update = jax.jit(update, donate_argnums=(0,))  # the state is updated in place
    box = [state, None]

    def step():
        box[0], box[1] = update(box[0], x, y)
        return box[1]

    def sync():
        return float(box[1].block_until_ready())
    return step, sync


def make_cupy(case: Case, device: str):
    """The MLP by hand in CuPy (NumPy for the CPU dry run): what op-by-op array code costs."""
    if case.model != "mlp":
        raise RuntimeError("only the MLP is written by hand")
    if device == "cuda":
        import cupy as xp
    else:
        xp = np
    p = [xp.asarray(w) for w in init_weights("mlp")]
    m = [xp.zeros_like(w) for w in p]
    v = [xp.zeros_like(w) for w in p]
    xs, ys = batch_data("mlp", case.batch)
    x, y = xp.asarray(xs), xp.asarray(ys)
    rows = xp.arange(case.batch)
    t = [0]
    box = [None]

    def step():
        n = x.shape[0]
        h1 = x @ p[0].T + p[1]
        a1 = xp.maximum(h1, 0)
        h2 = a1 @ p[2].T + p[3]
        a2 = xp.maximum(h2, 0)
        z = a2 @ p[4].T + p[5]
        z = z - z.max(axis=1, keepdims=True)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = (xp.log(s[:, 0]) - z[rows, y]).mean()
        g = e / s
        g[rows, y] -= 1
        g /= n
        g2 = (g @ p[4]) * (h2 > 0)
        g1 = (g2 @ p[2]) * (h1 > 0)
        grads = [g1.T @ x, g1.sum(0), g2.T @ a1, g2.sum(0), g.T @ a2, g.sum(0)]
        t[0] += 1
        c1, c2 = 1 - B1 ** t[0], 1 - B2 ** t[0]
        for w, mm, vv, gr in zip(p, m, v, grads):
            mm *= B1
            mm += (1 - B1) * gr
            vv *= B2
            vv += (1 - B2) * gr * gr
            w -= LR * (mm / c1) / (xp.sqrt(vv / c2) + EPS)
        box[0] = loss
        return loss

    def sync():
        if device == "cuda":
            xp.cuda.Device().synchronize()
        return float(box[0])
    return step, sync


# ---------------------------------------------------------------- measuring

def measure(step: Callable, sync: Callable, seconds: float, reps: int,
            warmup: int = 3) -> tuple[float, float, list]:
    """(median steps/s, first loss, samples): a warm-up (compiles, captures), then ``reps``
    timed blocks of ~``seconds / reps`` each, the device waited for at each block's end."""
    step()
    first = sync()
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()  # calibrate the block length
    n = 0
    while True:
        step()
        n += 1
        if n >= 2 and time.perf_counter() - t0 > 0.05:
            break
    sync()
    per = (time.perf_counter() - t0) / n
    block = max(1, int(seconds / reps / max(per, 1e-6)))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(block):
            step()
        sync()
        samples.append(block / (time.perf_counter() - t0))
    return statistics.median(samples), first, samples


BUDGET_NOTE = "skipped: the time budget (--budget) was spent"


def run_case(case: Case, device: str, only, seconds: float, reps: int, tf32: bool,
             notes: dict, names: tuple = CONTENDERS, deadline: float | None = None) -> list:
    """Measure contenders ``names`` (those ``only`` allows) on ``case``; a contender that
    would start after ``deadline`` (a ``time.perf_counter()`` value) is skipped."""
    makers = {
        "taiji eager": lambda: make_taiji(case, device, compiled=False),
        "taiji jit": lambda: make_taiji(case, device, compiled=True),
        "pytorch eager": lambda: make_torch(case, device, tf32),
        "jax jit": lambda: make_jax(case, device),
        "cupy (hand)": lambda: make_cupy(case, device),
        "taiji amp jit": lambda: make_taiji(case, device, compiled=True, amp=True),
        "taiji amp eager": lambda: make_taiji(case, device, compiled=False, amp=True),
        "pytorch amp": lambda: make_torch(case, device, tf32, amp=True),
    }
    out = []
    for name in names:
        if only and name not in only:
            continue
        r = Result(case.name, name)
        if deadline is not None and time.perf_counter() > deadline:
            r.note = BUDGET_NOTE
            out.append(r)
            continue
        try:
            step, sync = makers[name]()
        except ImportError as e:
            r.note = f"skipped: {e.name or e} is not installed"
            notes.setdefault(name, r.note)
            out.append(r)
            continue
        except RuntimeError as e:
            r.note = f"skipped: {e}"
            notes.setdefault(name, r.note)
            out.append(r)
            continue
        try:
            r.steps_per_s, r.first_loss, r.samples = measure(step, sync, seconds, reps)
        except Exception as e:  # noqa: BLE001 - one contender failing must not end the run
            r.note = f"failed: {type(e).__name__}: {str(e)[:200]}"
        out.append(r)
        del step, sync
    return out


# ---------------------------------------------------------------- the table

def _rate(results, case, who):
    r = next((r for r in results if r.case == case and r.contender == who), None)
    return r.steps_per_s if r is not None else None


def table(results: list, cases: list, header: list) -> tuple[str, bool]:
    """The report (one table) and whether every bar that could be measured was met."""
    lines = list(header)
    cols = [c for c in CONTENDERS if any(r.contender == c for r in results)]
    w = 13
    lines.append(f"{'case':<12}" + "".join(f"{c:>{w + 2}}" for c in cols) +
                 f"{'jit/JAX':>10}{'eager/torch':>13}  bar")
    ok_all = True
    for case in cases:
        row = f"{case.name:<12}"
        for c in cols:
            v = _rate(results, case.name, c)
            row += f"{(f'{v:,.1f}/s' if v else '-'):>{w + 2}}"
        jit, jax_, eager, torch_ = (_rate(results, case.name, c) for c in
                                    ("taiji jit", "jax jit", "taiji eager", "pytorch eager"))
        need_jit, need_eager = BAR.get(case.name, (None, None))
        verdicts = []
        r1 = jit / jax_ if jit and jax_ else None
        r2 = eager / torch_ if eager and torch_ else None
        row += f"{(f'{r1:.2f}x' if r1 else '-'):>10}{(f'{r2:.2f}x' if r2 else '-'):>13}"
        for r, need, what in ((r1, need_jit, "jit"), (r2, need_eager, "eager")):
            if r is None or need is None:
                continue
            good = r >= need
            ok_all &= good
            verdicts.append(f"{what} {'PASS' if good else 'FAIL'} (>= {need:.1f}x)")
        lines.append(row + "  " + (", ".join(verdicts) if verdicts else "n/a"))
    losses = {}
    for r in results:
        if r.first_loss is not None:
            losses.setdefault(r.case, []).append((r.contender, r.first_loss))
    spread = [f"{c}: {max(v for _, v in ls) - min(v for _, v in ls):.1e}"
              for c, ls in losses.items() if len(ls) > 1]
    if spread:
        lines.append("first-step loss spread across contenders (same weights and batch): "
                     + ", ".join(spread))
    lines += _notes(results)
    return "\n".join(lines), ok_all


def _notes(results: list) -> list:
    """Failures, and what the time budget left unmeasured."""
    lines = [f"note: {r.case} / {r.contender}: {r.note}" for r in results
             if r.note and not r.note.startswith("skipped")]
    late = [f"{r.case} / {r.contender}" for r in results if r.note == BUDGET_NOTE]
    if late:
        lines.append("not measured, the time budget (--budget) was spent: " + ", ".join(late))
    return lines


def amp_table(results: list, cases: list) -> str:
    """The AMP table: float16 autocast + loss scaling against float32, taiji and PyTorch."""
    def rate(case, who):
        return _rate(results, case, who)
    w = 16
    lines = ["", "AMP: float16 autocast + GradScaler training steps/s (float32 columns: the "
             "first table's taiji jit and pytorch eager)",
             f"{'case':<12}" + "".join(f"{c:>{w}}" for c, _ in AMP_COLUMNS) +
             f"{'taiji amp/fp32':>16}{'torch amp/fp32':>16}{'taiji/torch amp':>17}"]
    for case in cases:
        row = f"{case.name:<12}"
        for _, who in AMP_COLUMNS:
            v = rate(case.name, who)
            row += f"{(f'{v:,.1f}/s' if v else '-'):>{w}}"
        t32, tamp, p32, pamp = (rate(case.name, c) for c in
                                ("taiji jit", "taiji amp jit", "pytorch eager", "pytorch amp"))
        for num, den, width in ((tamp, t32, 16), (pamp, p32, 16), (tamp, pamp, 17)):
            row += f"{(f'{num / den:.2f}x' if num and den else '-'):>{width}}"
        lines.append(row)
    amp_names = {who for _, who in AMP_COLUMNS}
    mine = [r for r in results if r.contender in amp_names and
            any(r.case == c.name for c in cases)]
    losses = {}
    for r in mine:
        if r.first_loss is not None and r.contender in AMP_CONTENDERS:
            losses.setdefault(r.case, []).append(r.first_loss)
    spread = [f"{c}: {max(v) - min(v):.1e}" for c, v in losses.items() if len(v) > 1]
    if spread:
        lines.append("first-step loss spread across the AMP contenders: " + ", ".join(spread))
    lines += _notes([r for r in mine if r.contender in AMP_CONTENDERS])
    return "\n".join(lines)


def environment(device: str, tf32: bool, quick: bool) -> list:
    """The table's header: versions, the GPU and the matmul precision."""
    import taiji
    lines = [f"taiji GPU benchmark on {device}{' (quick dry run)' if quick else ''}: python "
             f"{platform.python_version()}, taiji {taiji.__version__}, numpy {np.__version__}"]
    if device == "cuda":
        cc = ".".join(map(str, taiji.cuda.get_device_capability()))
        lines.append(f"GPU: {taiji.cuda.get_device_name()} (compute capability {cc}); float32 "
                     f"matmuls: {'TF32' if tf32 else 'full float32'} for taiji and PyTorch, "
                     f"JAX's default precision")
    found = []
    for mod in ("cupy", "torch", "jax"):
        try:
            found.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            found.append(f"{mod}: not installed")
    lines.append(", ".join(found))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--quick", action="store_true",
                    help="tiny batches and short timings (a dry run of the script)")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 512, 4096, 32768],
                    help="MLP batch sizes")
    ap.add_argument("--no-cnn", action="store_true", help="skip the CNN case")
    ap.add_argument("--no-amp", action="store_true", help="skip the AMP table")
    ap.add_argument("--only", nargs="+", choices=CONTENDERS + AMP_CONTENDERS,
                    help="run only these")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per result")
    ap.add_argument("--reps", type=int, default=5, help="timed blocks per result")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of measuring in all; later contenders are skipped with a "
                         "note (60%% of it for the first table when the AMP table runs)")
    ap.add_argument("--json", help="write the results here as JSON")
    args = ap.parse_args(argv)
    import taiji
    if args.device == "cuda" and not taiji.cuda.is_available():
        print(f"CUDA not available (CuPy missing or no GPU): {taiji.cuda.unavailable_reason()}"
              f"; run with --device cpu for a dry run", file=sys.stderr)
        return 2
    tf32 = taiji.backends.cuda.matmul.allow_tf32
    cases = [Case(f"mlp b{b}", "mlp", b) for b in args.batches]
    if not args.no_cnn:
        cases.append(Case("cnn b64", "cnn", 64))
    amp_cases = [Case(n, n.split()[0], int(n.split()[1][1:])) for n in AMP_CASES]
    if args.quick:  # one small MLP case and a small CNN one, short timings
        cases = [Case("mlp b64", "mlp", 64)] + [Case("cnn b8", "cnn", 8)
                                                for c in cases if c.model == "cnn"][:1]
        amp_cases = list(cases)
        args.seconds, args.reps = min(args.seconds, 0.2), min(args.reps, 2)
    if args.no_cnn:
        amp_cases = [c for c in amp_cases if c.model != "cnn"]
    if args.no_amp or (args.only and not set(args.only) & set(AMP_CONTENDERS)):
        amp_cases = []
    t0 = time.perf_counter()
    budget = args.budget
    deadline_main = None if budget is None else t0 + budget * (0.6 if amp_cases else 1.0)
    deadline_amp = None if budget is None else t0 + budget
    notes: dict = {}
    results = []
    for case in cases:
        results += run_case(case, args.device, args.only, args.seconds, args.reps, tf32,
                            notes, deadline=deadline_main)
        print(f"  {case.name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    amp_results = []
    for case in amp_cases:
        # the float32 columns come from the first table; measured here only if missing
        have = {r.contender for r in results if r.case == case.name and r.steps_per_s}
        names = tuple(c for c in ("taiji jit", "pytorch eager") if c not in have) + \
            AMP_CONTENDERS
        got = run_case(case, args.device, args.only, args.seconds, args.reps, tf32, notes,
                       names=names, deadline=deadline_amp)
        amp_results += [r for r in got if r.contender in AMP_CONTENDERS]
        results += [r for r in got if r.contender not in AMP_CONTENDERS and r.steps_per_s]
        print(f"  AMP {case.name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    header = environment(args.device, tf32, args.quick)
    header += [f"skipped {k}: {v[len('skipped: '):]}" for k, v in notes.items()]
    text, ok = table([r for r in results if r.case in {c.name for c in cases}], cases, header)
    print(text)
    if amp_cases:
        print(amp_table(results + amp_results, amp_cases))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "all_bars_met": ok,
                       "results": [r.__dict__ for r in results + amp_results],
                       "amp_cases": [c.name for c in amp_cases],
                       "seconds": round(time.perf_counter() - t0, 1)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
