"""The ``taiji`` command.

``taiji train {mlp,cnn,recommender,linear}`` trains one of the seed's models (eager or jit),
with progress bars, per-epoch checkpoints, exact ``--resume``, a JSON-lines metrics log and
a plot; ``taiji info`` prints versions, devices, BLAS, threads and where datasets are;
``taiji bench`` runs the side-by-side benchmark suite of a source checkout (benchmarks/).

Bad input ends with one line on stderr (``taiji: error: ...``) and exit status 2; Ctrl-C
during training saves a checkpoint and exits with status 130.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Sequence

__all__ = ["main", "build_parser", "plot_history"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        self.exit(2, f"taiji: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``taiji`` argument parser (subcommands ``train`` and ``info``)."""
    from taiji._train import MODELS, OPTIMIZERS
    p = _Parser(prog="taiji", description="taiji: PyTorch's eager face and JAX's compiled "
                "face over one core.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser,
                           metavar="{train,info,launch,bench}")
    t = sub.add_parser("train", help="train one of the seed's models",
                       description="Train one of the seed's models (eager or jit).")
    t.add_argument("model", choices=MODELS, help="which model")
    t.add_argument("--mode", choices=("eager", "jit"), default="eager",
                   help="eager: op by op; jit: the whole train step compiled by taiji.jit")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: 10; cnn 5)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default per model)")
    t.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning-rate schedule over the epochs (default cosine, to 0)")
    t.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adam")
    t.add_argument("--device", default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data-dir", default=None,
                   help="Fashion-MNIST directory; 'sample' uses the sample bundled with taiji")
    t.add_argument("--checkpoint-dir", default=None,
                   help="write MODEL-epochNNN.safetensors and MODEL-last.safetensors here")
    t.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="continue from CKPT (default: CHECKPOINT_DIR/MODEL-last.safetensors)")
    t.add_argument("--plot", default=None, metavar="FILE.png",
                   help="write loss / test metric per epoch (and the confusion matrix)")
    t.add_argument("--metrics", default=None, metavar="FILE.jsonl",
                   help="append one JSON line per epoch")
    t.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only the first N training (and test) examples")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--amp", choices=("bf16", "fp16"), default=None,
                   help="automatic mixed precision (taiji.autocast; fp16 adds a GradScaler)")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI ranks (started through mpirun)")
    t.add_argument("--nproc", type=int, default=2,
                   help="ranks to start for --distributed when not already under MPI")
    sub.add_parser("launch", help="run a script on N MPI ranks: taiji launch -n 2 script.py",
                   add_help=False)
    sub.add_parser("info", help="versions, devices, BLAS, threads, datasets",
                   description="Print versions, devices, BLAS, threads and dataset locations.")
    sub.add_parser("bench", help="the side-by-side benchmark suite: taiji bench --help",
                   add_help=False)
    return p


# ---------------------------------------------------------------- train

def plot_history(history: list, path: str, title: str, kind: str,
                 classes: Sequence[str] | None = None) -> None:
    """Write training loss and the test metric per epoch (and, for classifiers, the last
    epoch's confusion matrix) to ``path`` with matplotlib's Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from taiji._train import primary_metric
    metric = primary_metric(kind)
    ncols = 3 if kind == "classifier" else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4))
    ep = [h["epoch"] for h in history]
    axes[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    axes[0].plot(ep, [h["test_loss"] for h in history], "s--", label="test loss")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    axes[0].set_title("loss")
    axes[1].plot(ep, [h[metric] for h in history], "o-", color="C2")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel(metric.replace("_", " "))
    axes[1].set_title(metric.replace("_", " "))
    if kind == "classifier" and history:
        import numpy as np
        cm = np.asarray(history[-1]["confusion"])
        ax = axes[2]
        ax.imshow(cm, cmap="Blues")
        n = cm.shape[0]
        names = list(classes) if classes else [str(i) for i in range(n)]
        ax.set_xticks(range(n), names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("confusion matrix (test)")
    fig.suptitle(title)
    fig.tight_layout()
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, "." + os.path.basename(path) + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _train(args, argv: Sequence[str] | None = None) -> int:
    from taiji._train import FitConfig, TrainError, build_task, fit, primary_metric
    epochs = args.epochs if args.epochs is not None else (5 if args.model == "cnn" else 10)
    if epochs < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise TrainError("--epochs, --batch-size and --limit must be positive")
    resume = args.resume
    if resume == "auto":
        if not args.checkpoint_dir:
            raise TrainError("--resume without a path needs --checkpoint-dir")
        resume = os.path.join(args.checkpoint_dir, f"{args.model}-last.safetensors")
    for path, flag in ((args.plot, "--plot"), (args.metrics, "--metrics")):
        if path is not None:
            d = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(d) or not os.access(d, os.W_OK):
                raise TrainError(f"{flag} {path!r}: directory {d!r} does not exist or is not "
                                 f"writable")
    if args.distributed and "OMPI_COMM_WORLD_SIZE" not in os.environ and \
            "PMI_SIZE" not in os.environ:
        # not under MPI yet: start this same command on --nproc ranks through the launcher
        import tempfile
        from taiji.distributed.launch import main as launch
        entry = os.path.join(tempfile.mkdtemp(prefix="taiji-launch-"), "taiji_train.py")
        with open(entry, "w") as f:  # a script outside the package for the launcher to run
            f.write("import sys\nfrom taiji.cli import main\nsys.exit(main(sys.argv[1:]))\n")
        return launch(["-n", str(args.nproc), entry, *argv])
    task = build_task(args.model, args.data_dir, args.limit, args.seed)
    lead = not args.distributed or os.environ.get("OMPI_COMM_WORLD_RANK",
                                                  os.environ.get("PMI_RANK", "0")) == "0"
    if lead:  # in a distributed run only rank 0 reports
        print(f"taiji train {args.model} --mode {args.mode}: {task.data_note}", flush=True)
    cfg = FitConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                    optimizer=args.optimizer, mode=args.mode, seed=args.seed,
                    device=args.device, checkpoint_dir=args.checkpoint_dir, resume=resume,
                    metrics=args.metrics, progress=not args.no_progress,
                    schedule=args.schedule, amp=args.amp, distributed=args.distributed)
    res = fit(task, cfg, log=lambda s: print(s, flush=True))
    if res["interrupted"]:
        where = res["checkpoint"] or "(no --checkpoint-dir: nothing saved)"
        print(f"interrupted: checkpoint saved to {where}; continue with --resume",
              file=sys.stderr, flush=True)
        return 130
    if not lead:
        return 0
    final, m = res["final"], primary_metric(task.kind)
    line = (f"summary: model={args.model} mode={args.mode} epochs={len(res['history'])} "
            f"{m}={final.get(m, float('nan')):.4f} train_time={res['train_time']:.1f}s "
            f"steps/s={res['steps_per_s']:.1f}")
    if task.kind == "binary":
        line += f" popularity_auc={task.extra['popularity_auc']:.4f}"
    print(line, flush=True)
    if args.plot:
        plot_history(res["history"], args.plot,
                     f"taiji train {args.model} ({args.mode})", task.kind,
                     task.extra.get("classes"))
        print(f"plot written to {args.plot}")
    if res["checkpoint"]:
        print(f"checkpoint: {res['checkpoint']}")
    return 0


# ---------------------------------------------------------------- info

def _version(dist: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cupy_version() -> str:
    """CuPy's version, whichever CUDA build of it is installed (cupy-cuda12x, -cuda13x...)."""
    from importlib import metadata
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name == "cupy" or name.startswith("cupy-cuda") or name.startswith("cupy-rocm"):
            return f"{dist.version} ({name})"
    return "not installed"


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info
        libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        if libs:
            return "; ".join(libs)
    except ImportError:
        pass
    try:
        import numpy as np
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: no dict mode
        return "unknown (numpy.show_config() prints the details)"


def _info() -> int:
    import taiji
    rows = [("taiji", taiji.__version__), ("python", platform.python_version()),
            ("platform", platform.platform())]
    rows += [(d, _version(d)) for d in ("numpy", "ml_dtypes", "numba", "tqdm", "matplotlib",
                                        "safetensors", "threadpoolctl")]
    rows.append(("cupy", _cupy_version()))
    devices = ["cpu"]
    if taiji.cuda.is_available():  # each GPU with its name (taiji.cuda, CuPy underneath)
        devices += [f"cuda:{i} ({taiji.cuda.get_device_name(i)})"
                    for i in range(taiji.cuda.device_count())]
    else:
        devices.append(f"no CUDA: {taiji.cuda.unavailable_reason()}")
    rows.append(("devices", ", ".join(devices)))
    tf32 = taiji.backends.cuda.matmul.allow_tf32
    rows.append(("GPU float32 matmuls", f"{'TF32' if tf32 else 'full float32'} "
                                        f"(taiji.backends.cuda.matmul.allow_tf32={tf32})"))
    rows.append(("BLAS", _blas()))
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    threads = f"{os.cpu_count()} CPUs, {usable} usable"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        if os.environ.get(var):
            threads += f", {var}={os.environ[var]}"
    rows.append(("threads", threads))
    from taiji.datasets import MNIST, FashionMNIST
    from taiji._train import SAMPLE_PATH
    for cls in (FashionMNIST, MNIST):
        obj = cls.__new__(cls)
        obj.root, obj._names = None, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
        found = obj._find()
        rows.append((cls.__name__, os.path.dirname(found[0]) if found else
                     "not found (searched $TAIJI_DATA, ~/.cache/taiji"
                     + (", /usr/share/datasets/fashion-mnist" if cls.system_dirs else "")
                     + ")"))
    rows.append(("Fashion-MNIST sample", SAMPLE_PATH if os.path.isfile(SAMPLE_PATH)
                 else "missing"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0


# ---------------------------------------------------------------- bench

def _find_suite() -> str | None:
    """benchmarks/suite.py of the checkout taiji runs from (an editable install), else of the
    current directory. The suite is not part of the installed package: it imports PyTorch and
    JAX, which the library itself never does."""
    import taiji
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(taiji.__file__))), os.getcwd()]
    for root in roots:
        path = os.path.join(root, "benchmarks", "suite.py")
        if os.path.isfile(path):
            return path
    return None


def _bench(argv: Sequence[str]) -> int:
    """``taiji bench [options]``: run benchmarks/suite.py's ``main`` with these options."""
    import importlib.util
    path = _find_suite()
    if path is None:
        print("taiji: error: taiji bench runs the suite in benchmarks/ of a source checkout; "
              "none found next to the installed package or in the current directory",
              file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("taiji_bench_suite", path)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite.main(list(argv), prog="taiji bench")


# ---------------------------------------------------------------- entry point

def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``taiji`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:  # everything after `launch` belongs to the launcher
        from taiji.distributed.launch import main as launch
        return launch(argv[1:])
    if argv[:1] == ["bench"]:  # the suite parses its own options
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from taiji._train import TrainError
    try:
        return _train(args, argv) if args.command == "train" else _info()
    except TrainError as e:
        print(f"taiji: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("taiji: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
