"""The side-by-side benchmark suite (issue 7): taiji eager and taiji jit against hand-written
NumPy, PyTorch eager and JAX jit, each where installed.

Workloads (``--workloads``): ``mlp`` (seed MLP training step at batch 64, 128, 512), ``cnn``
(seed CNN training step, batch 64), ``recommender`` (batch 1024), ``inference`` (MLP and CNN
forward over the Fashion-MNIST test set). Every contender starts from the same weights and
sees the same batches; first calls, compiles and warm-up are excluded from the timed steps;
contenders are interleaved in each repetition and the median is reported, with each taiji
mode's ratio to each peer, achieved GFLOP/s against a measured GEMM peak, first-call time,
and peak RSS (each contender in a fresh process). JSON goes to ``--json``.

    python benchmarks/suite.py                          # everything, about 5-8 min on 2 cores
    python benchmarks/suite.py --workloads mlp --only "taiji jit" "jax jit"
    python benchmarks/suite.py --quick --workloads mlp --batches 64   # smoke run, seconds
    taiji bench [same options]                          # the same suite
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _harness as H  # noqa: E402
import workloads  # noqa: E402

DEFAULT_JSON = os.path.join(HERE, "results", "suite.json")


def build_parser(prog: str = "suite.py") -> argparse.ArgumentParser:
    """The suite's options (``taiji bench`` takes the same)."""
    ap = argparse.ArgumentParser(prog=prog, description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--workloads", nargs="+", choices=workloads.NAMES,
                    default=list(workloads.NAMES), metavar="W",
                    help=f"which workloads ({', '.join(workloads.NAMES)}; default: all)")
    ap.add_argument("--only", nargs="+", metavar="CONTENDER",
                    help=f"run only these contenders ({', '.join(repr(c) for c in H.CONTENDERS)})")
    ap.add_argument("--batches", type=int, nargs="+", metavar="B",
                    help="batch sizes of the mlp workload (default: 64 128 512)")
    ap.add_argument("--reps", type=int, default=None,
                    help="interleaved repetitions per case; the median is reported (default 5)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="minimum seconds per contender per repetition (default 0.6)")
    ap.add_argument("--json", default=DEFAULT_JSON, metavar="PATH",
                    help="where to write the results (default: benchmarks/results/suite.json)")
    ap.add_argument("--compare", metavar="OLD.json",
                    help="also print each rate against an earlier JSON of this suite")
    ap.add_argument("--no-rss", action="store_true",
                    help="skip the fresh-process runs (peak RSS, cold first call)")
    ap.add_argument("--rss-steps", type=int, default=None,
                    help="steps per fresh-process run (default 30)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 1 repetition, tiny timings, a small data slice; the "
                         "numbers mean nothing")
    return ap


def options(args: argparse.Namespace) -> H.Options:
    """Measurement settings from the command line (``--quick`` shrinks the defaults)."""
    if args.quick:
        opts = H.Options(reps=1, seconds=0.02, warmup_seconds=0.0, min_steps=1,
                         data_limit=2048, rss_steps=2, quick=True)
    else:
        opts = H.Options()
    if args.reps is not None:
        opts.reps = args.reps
    if args.seconds is not None:
        opts.seconds = args.seconds
    if args.rss_steps is not None:
        opts.rss_steps = args.rss_steps
    if opts.reps < 1 or opts.seconds < 0 or opts.rss_steps < 1:
        raise SystemExit("suite: --reps and --rss-steps must be >= 1, --seconds >= 0")
    return opts


def main(argv: Sequence[str] | None = None, prog: str = "suite.py") -> int:
    """Run the suite; returns the exit status (0, or 2 for bad options)."""
    args = build_parser(prog).parse_args(argv)
    selected = list(args.only or H.CONTENDERS)
    unknown = [c for c in selected if c not in H.CONTENDERS]
    if unknown:
        print(f"{prog}: error: unknown contender(s) {unknown}; choose from "
              f"{', '.join(repr(c) for c in H.CONTENDERS)}", file=sys.stderr)
        return 2
    opts = options(args)
    info = H.machine_info()
    missing = [f"{name} ({dist})" for name, dist in (("pytorch eager", "torch"),
                                                    ("jax jit", "jax"))
               if name in selected and info.get(dist) is None]
    print(f"taiji bench: python {info['python']}, numpy {info['numpy']}, "
          f"taiji {info['taiji']}, torch {info['torch'] or '-'}, jax {info['jax'] or '-'}; "
          f"{info['cpus']} CPUs ({info['cpu']})" +
          (f"; BLAS {info['blas']}" if info.get("blas") else ""))
    if missing:
        print(f"note: peers not installed, skipped: {', '.join(missing)} "
              f"({H.INSTALL_HINT} installs them)")
    print(f"reps {opts.reps} x >= {opts.seconds:g} s per contender, interleaved; median"
          + ("; QUICK smoke run: the numbers mean nothing" if opts.quick else ""), flush=True)
    roof = H.roofline((512,), 1) if opts.quick else H.roofline()
    peak = roof["gflops"]
    print(f"roofline: {peak:.1f} GFLOP/s ({roof['what']}: "
          + ", ".join(f"{n}: {g:.1f}" for n, g in roof["by_size"].items()) + ")", flush=True)

    notes = H.Notes()
    cases = []
    for w in args.workloads:
        cases += workloads.cases(w, args.batches if w == "mlp" else None)
    results = []
    for case in cases:
        res = H.run_case(case, selected, opts, peak, notes)
        H.print_case(res)
        results.append((case, res))

    if not args.no_rss:  # after all timing, so the extra processes disturb none of it
        todo = [(case, k, c) for case, res in results if case.rss
                for k, c in res["contenders"].items()]
        if todo:
            print(f"\nfresh-process runs (peak RSS, cold first call): {len(todo)} processes, "
                  f"{opts.rss_steps} steps each ...", flush=True)
        for case, k, c in todo:
            c["rss"] = H.fresh_process_run(
                case, k, opts, batches=args.batches if case.workload == "mlp" else None)
        H.print_rss([r for _, r in results])

    plain = [r for _, r in results]
    if plain:  # the second roofline run: % of peak uses the faster of the two
        roof = H.merge_rooflines(roof, H.roofline((512,), 1) if opts.quick else H.roofline())
        peak = roof["gflops"]
        H.rescale_peak(plain, peak)
        print(f"\nroofline again at the end: peak taken as {peak:.1f} GFLOP/s "
              f"(the faster run per size)")
    targets = H.check_targets(plain)
    H.print_targets(targets)
    summary = H.summary_markdown(plain, peak)
    print("\n== summary (Markdown; rates are steps/s or images/s, ratios are taiji's speed over "
          "the peer's)\n" + summary)
    if args.compare:
        H.compare(plain, args.compare)
    out = {"meta": {**info, "reps": opts.reps, "seconds": opts.seconds, "quick": opts.quick,
                    "contenders": selected, "workloads": args.workloads},
           "roofline": roof, "results": plain, "targets": targets, "summary_markdown": summary}
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.json)
        print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
