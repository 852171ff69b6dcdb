"""Training machinery shared by the ``taiji`` command (``taiji/cli.py``) and ``examples/``.

* data: Fashion-MNIST as normalised float tensors (the real files where they are found, else
  the 2,000 + 500 image sample committed in ``taiji/datasets/_sample``, announced as such),
  the synthetic recommender, a synthetic linear-regression problem;
* the seed's models (``SeedMLP``, ``SeedCNN``, ``Recommender``, ``LinearRegression``);
* metrics (accuracy, confusion matrix, ROC AUC, the popularity baseline);
* ``fit``: one training loop for eager and jit mode (the step function is the same Python
  function; ``--mode jit`` wraps it in ``taiji.jit``), with checkpoints every epoch, exact
  resume (model, optimizer, data order, RNG, the partial epoch's running sums) and a clean
  stop on Ctrl-C.

Private: the CLI and the examples are its users; its names may change.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import taiji
import taiji.nn as nn
import taiji.nn.functional as F
from taiji.utils.data import DataLoader, TensorDataset

SAMPLE_PATH = os.path.join(os.path.dirname(__file__), "datasets", "_sample",
                           "fashion-mnist-sample.npz")
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


class TrainError(Exception):
    """A user-facing error (bad input, missing data, bad checkpoint): one line, no traceback."""


# ---------------------------------------------------------------- data

@dataclass
class ImageData:
    """Fashion-MNIST as uint8 NumPy arrays, and where it came from."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    is_sample: bool


def load_sample() -> ImageData:
    """The Fashion-MNIST sample committed in the package (2,000 train + 500 test images,
    stratified, from the official files)."""
    with np.load(SAMPLE_PATH, allow_pickle=False) as z:
        return ImageData(z["train_images"], z["train_labels"].astype(np.int64),
                         z["test_images"], z["test_labels"].astype(np.int64),
                         SAMPLE_PATH, True)


def load_fashion_mnist(data_dir: str | None = None, allow_sample: bool = True) -> ImageData:
    """Fashion-MNIST from ``data_dir``, or (without it) from taiji's search path
    ($TAIJI_DATA, ~/.cache/taiji, /usr/share/datasets/fashion-mnist); without the real files
    and ``allow_sample``, the committed sample.

    Raises:
        TrainError: ``data_dir`` lacks the files (or they are nowhere and no sample is allowed).
    """
    from taiji.datasets import FashionMNIST
    if data_dir == "sample":
        return load_sample()
    try:
        tr = FashionMNIST(root=data_dir, train=True)
        te = FashionMNIST(root=data_dir, train=False)
    except (FileNotFoundError, ValueError) as e:
        if data_dir is None and allow_sample and isinstance(e, FileNotFoundError):
            return load_sample()
        where = data_dir if data_dir is not None else "$TAIJI_DATA, ~/.cache/taiji, " \
            "/usr/share/datasets/fashion-mnist"
        first = str(e).splitlines()[0]
        raise TrainError(f"Fashion-MNIST not usable in {where}: {first} (get it with "
                         f"`make demo`, apt-get install dataset-fashion-mnist, or use "
                         f"--data-dir sample)") from None
    return ImageData(tr._images, tr._labels, te._images, te._labels,
                     os.path.dirname(tr.files[0]), False)


def image_tensors(images: np.ndarray, labels: np.ndarray, limit: int | None = None):
    """uint8 [N, 28, 28] -> normalised float32 [N, 1, 28, 28] tensor, int64 [N] tensor."""
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = (images.astype(np.float32) / 255.0 - FASHION_MEAN) / FASHION_STD
    return (taiji.from_numpy(np.ascontiguousarray(x[:, None])),
            taiji.from_numpy(labels.astype(np.int64)))


def linear_problem(n: int = 4096, n_features: int = 13, noise: float = 0.1, seed: int = 0):
    """A synthetic regression problem ``y = X w + b + noise`` (float32 NumPy arrays).

    Returns:
        ``(X, y, w_true, b_true)`` with ``X`` [n, n_features] and ``y`` [n, 1].
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(np.float32)
    w = rng.standard_normal((n_features, 1)).astype(np.float32)
    b = np.float32(0.5)
    y = (X @ w + b + noise * rng.standard_normal((n, 1))).astype(np.float32)
    return X, y, w, b


# ---------------------------------------------------------------- models (the seed's)

class SeedMLP(nn.Module):
    """The seed's ``Net`` (section 5.2.1): 784-256-128-10 with ReLU."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = x.view(-1, 784)
        x = taiji.relu(self.fc1(x))
        x = taiji.relu(self.fc2(x))
        return self.fc3(x)


class SeedCNN(nn.Module):
    """The seed's CNN (section 6.2) for 28x28 inputs: conv3x3 32, pool, conv3x3 64, pool,
    fc 64*7*7 -> 512 -> 10 (two 2x2 pools take 28 to 7, which is what ``64*7*7`` needs)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 7 * 7, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 64 * 7 * 7)
        return self.fc2(F.relu(self.fc1(x)))


class Recommender(nn.Module):
    """The seed's recommender MLP (section 6.1), 100-50-10-1; returns logits (apply
    ``sigmoid`` for probabilities; train with ``binary_cross_entropy_with_logits``)."""

    def __init__(self, n_features: int = 100):
        super().__init__()
        self.fc1 = nn.Linear(n_features, 50)
        self.fc2 = nn.Linear(50, 10)
        self.fc3 = nn.Linear(10, 1)

    def forward(self, x):
        x = taiji.relu(self.fc1(x))
        x = taiji.relu(self.fc2(x))
        return self.fc3(x)


class LinearRegression(nn.Module):
    """The seed's linear regression (section 4.1)."""

    def __init__(self, input_size: int, output_size: int):
        super().__init__()
        self.linear = nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.linear(x)


# ---------------------------------------------------------------- metrics

def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1) > 0.5
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def popularity_auc(train_set, test_set) -> float:
    """Test AUC of the popularity baseline: score an item by its positives in training."""
    counts = np.bincount(np.asarray(train_set._items)[np.asarray(train_set._labels) > 0.5],
                         minlength=train_set.n_items)
    return roc_auc(counts[np.asarray(test_set._items)], test_set._labels)


def confusion_matrix(pred, target, n: int = 10) -> np.ndarray:
    """``m[true, predicted]`` counts."""
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (np.asarray(target), np.asarray(pred)), 1)
    return m


# ---------------------------------------------------------------- tasks

MODELS = ("mlp", "cnn", "recommender", "linear")
DEFAULT_LR = {"mlp": 1e-3, "cnn": 1e-3, "recommender": 1e-3, "linear": 1e-2}
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}


@dataclass
class Task:
    """What ``fit`` needs to train and evaluate one model."""
    name: str
    kind: str  # "classifier", "binary" or "regression"
    model: nn.Module
    loss_fn: Callable
    train_set: Any
    test_set: Any
    data_note: str = ""
    extra: dict = field(default_factory=dict)


def build_task(name: str, data_dir: str | None = None, limit: int | None = None,
               seed: int = 0) -> Task:
    """Data and model for ``taiji train NAME`` (the model is initialised from ``seed``)."""
    if name not in MODELS:
        raise TrainError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if name in ("mlp", "cnn"):
        d = load_fashion_mnist(data_dir)
        note = (f"Fashion-MNIST sample bundled with taiji ({len(d.train_labels)} train / "
                f"{len(d.test_labels)} test images: accuracy will be lower than on the full "
                f"set)" if d.is_sample else f"Fashion-MNIST from {d.source}")
        train = TensorDataset(*image_tensors(d.train_images, d.train_labels, limit))
        test = TensorDataset(*image_tensors(d.test_images, d.test_labels, limit))
        taiji.manual_seed(seed)
        model = SeedMLP() if name == "mlp" else SeedCNN()
        return Task(name, "classifier", model, F.cross_entropy, train, test, note,
                    {"classes": FASHION_CLASSES})
    if name == "recommender":
        from taiji.datasets import SyntheticRecommender
        tr, te = SyntheticRecommender(train=True), SyntheticRecommender(train=False)
        lim = slice(None) if limit is None else slice(0, limit)
        train = TensorDataset(taiji.from_numpy(tr._x[lim]),
                              taiji.from_numpy(tr._labels[lim][:, None]))
        test = TensorDataset(taiji.from_numpy(te._x), taiji.from_numpy(te._labels[:, None]))
        taiji.manual_seed(seed)
        return Task(name, "binary", Recommender(tr.num_features),
                    F.binary_cross_entropy_with_logits, train, test,
                    f"SyntheticRecommender ({len(train)} train / {len(test)} test pairs)",
                    {"popularity_auc": popularity_auc(tr, te)})
    X, y, w, b = linear_problem(n=5000 if limit is None else limit + 1000)
    taiji.manual_seed(seed)
    train = TensorDataset(taiji.from_numpy(X[1000:]), taiji.from_numpy(y[1000:]))
    test = TensorDataset(taiji.from_numpy(X[:1000]), taiji.from_numpy(y[:1000]))
    return Task(name, "regression", LinearRegression(X.shape[1], 1), F.mse_loss, train, test,
                f"synthetic linear regression ({len(train)} train / {len(test)} test rows)")


def make_optimizer(name: str, params, lr: float):
    """An optimizer by its CLI name (adam, adamw, sgd, rmsprop)."""
    if name not in OPTIMIZERS:
        raise TrainError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    cls = getattr(taiji.optim, OPTIMIZERS[name])
    return cls(params, lr=lr, momentum=0.9) if name == "sgd" else cls(params, lr=lr)


def n_correct(kind: str, out, y):
    """Correct predictions in a batch (a tensor; zero for regression)."""
    if kind == "classifier":
        return (out.argmax(1) == y).sum()
    if kind == "binary":
        return ((out > 0) == (y > 0.5)).sum()
    return (out * 0).sum()


AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def make_train_step(model, optimizer, loss_fn: Callable, kind: str, amp: str | None = None,
                    scaler=None) -> Callable:
    """The PyTorch-style step, ``step(x, y) -> (loss, n_correct)``; the same function runs
    eagerly or, wrapped in ``taiji.jit``, as one compiled program. ``amp`` ('bf16' or
    'fp16') runs forward and loss under ``taiji.autocast``; fp16 also scales the loss with
    ``scaler`` (a ``taiji.amp.GradScaler``), which skips steps whose gradients overflow."""
    dtype = getattr(taiji, AMP_DTYPES[amp]) if amp else None

    def train_step(x, y):
        optimizer.zero_grad()
        with taiji.autocast("cpu", dtype=dtype, enabled=amp is not None):
            out = model(x)
            loss = loss_fn(out, y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss, n_correct(kind, out, y)
    return train_step


def evaluate(task: Task, predict: Callable, batch_size: int = 1000) -> dict:
    """Test metrics: loss, and accuracy + confusion matrix (classifier), AUC (binary) or
    MSE (regression). ``predict`` maps a batch to model outputs (under ``no_grad``)."""
    loader = DataLoader(task.test_set, batch_size=batch_size, shuffle=False)
    outs, ys = [], []
    with taiji.no_grad():
        for x, y in loader:
            outs.append(predict(x).numpy())
            ys.append(y.numpy())
    out, y = np.concatenate(outs), np.concatenate(ys)
    loss = float(task.loss_fn(taiji.from_numpy(out), taiji.from_numpy(y)))
    res: dict = {"test_loss": loss}
    if task.kind == "classifier":
        pred = out.argmax(1)
        res["test_acc"] = float((pred == y).mean())
        res["confusion"] = confusion_matrix(pred, y, out.shape[1]).tolist()
    elif task.kind == "binary":
        res["test_auc"] = roc_auc(out, y)
        res["test_acc"] = float(((out > 0) == (y > 0.5)).mean())
    else:
        res["test_mse"] = loss
    return res


def primary_metric(kind: str) -> str:
    return {"classifier": "test_acc", "binary": "test_auc", "regression": "test_mse"}[kind]


# ---------------------------------------------------------------- the loop

@dataclass
class FitConfig:
    """Options of ``fit`` (the CLI's flags)."""
    epochs: int = 10
    batch_size: int = 64
    lr: float | None = None
    optimizer: str = "adam"
    mode: str = "eager"
    seed: int = 0
    device: str = "cpu"
    checkpoint_dir: str | None = None
    resume: str | None = None
    metrics: str | None = None
    progress: bool = True
    schedule: str = "cosine"
    amp: str | None = None          # 'bf16' | 'fp16'
    distributed: bool = False       # data-parallel over MPI ranks (taiji launch)


def _ckpt_config(task: Task, cfg: FitConfig, n_train: int) -> dict:
    return {"model": task.name, "optimizer": cfg.optimizer, "lr": cfg.lr,
            "schedule": cfg.schedule, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "seed": cfg.seed, "n_train": n_train}


def check_checkpoint_dir(path: str) -> None:
    """Create ``path`` and check a file can be written there (raises ``TrainError``)."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".taiji-write-test-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise TrainError(f"checkpoint directory {path!r} is not writable: "
                         f"{e.strerror or e}") from None


def load_checkpoint(path: str) -> dict:
    """``taiji.load`` a training checkpoint, turning every failure into a ``TrainError``."""
    if not os.path.isfile(path):
        raise TrainError(f"no checkpoint at {path!r} to resume from")
    try:
        ck = taiji.load(path)
    except (taiji.SerializationError, OSError, ValueError) as e:
        raise TrainError(f"cannot resume from {path!r}: corrupt or not a taiji checkpoint "
                         f"({str(e).splitlines()[0]})") from None
    need = {"model", "optimizer", "loader", "rng", "epoch", "config", "history", "partial"}
    if not isinstance(ck, dict) or not need <= set(ck):
        raise TrainError(f"cannot resume from {path!r}: not a `taiji train` checkpoint")
    return ck


def _quiet(message: str) -> None:
    """The log of ranks other than 0 in distributed runs."""


class _StopFlag:
    """First Ctrl-C: finish the current step, save, exit. Second: stop at once."""

    def __init__(self):
        self.set = False
        self._old = None

    def __enter__(self):
        def handler(signum, frame):
            if self.set:
                raise KeyboardInterrupt
            self.set = True
        try:
            self._old = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def fit(task: Task, cfg: FitConfig, log: Callable[[str], None] = print) -> dict:
    """Train ``task.model`` for ``cfg.epochs`` epochs (eager or jit), evaluating and
    checkpointing after each; resume from ``cfg.resume`` when given.

    Returns:
        ``{"history": [per-epoch dicts], "final": last evaluation, "interrupted": bool,
        "checkpoint": last path, "steps": int, "train_time": s, "steps_per_s": float}``.
    """
    from tqdm import tqdm
    if cfg.lr is None:
        cfg.lr = DEFAULT_LR[task.name]
    if cfg.mode not in ("eager", "jit"):
        raise TrainError(f"unknown mode {cfg.mode!r}; use eager or jit")
    if cfg.device != "cpu":
        try:
            task.model.to(cfg.device)
        except Exception as e:  # noqa: BLE001 - report any backend failure in one line
            raise TrainError(f"device {cfg.device!r} is not usable: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") \
                from None
    if cfg.checkpoint_dir:
        check_checkpoint_dir(cfg.checkpoint_dir)
    model, kind = task.model, task.kind
    rank, world = 0, 1
    if cfg.distributed:  # every rank trains on its shard; gradients are averaged by DDP
        import taiji.distributed as dist
        from taiji.nn.parallel import DistributedDataParallel
        if not dist.is_initialized():
            dist.init_process_group("mpi")
        rank, world = dist.get_rank(), dist.get_world_size()
        model = DistributedDataParallel(model)
        if rank != 0:  # only rank 0 reports and writes files
            cfg.progress, cfg.checkpoint_dir, cfg.metrics = False, None, None
            log = _quiet
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    if cfg.amp is not None and cfg.amp not in AMP_DTYPES:
        raise TrainError(f"unknown --amp {cfg.amp!r}; use bf16 or fp16")
    scaler = taiji.amp.GradScaler() if cfg.amp == "fp16" else None
    if cfg.schedule not in ("cosine", "constant"):
        raise TrainError(f"unknown schedule {cfg.schedule!r}; use cosine or constant")
    # cosine: the learning rate decays from lr to 0 over the run, stepped once per epoch
    sched = (taiji.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
             if cfg.schedule == "cosine" else None)
    gen = taiji.Generator().manual_seed(cfg.seed)
    if cfg.distributed:
        from taiji.utils.data import DistributedSampler
        sampler = DistributedSampler(task.train_set, num_replicas=world, rank=rank,
                                     seed=cfg.seed)
        loader = DataLoader(task.train_set, batch_size=cfg.batch_size, sampler=sampler)
    else:
        sampler = None
        loader = DataLoader(task.train_set, batch_size=cfg.batch_size, shuffle=True,
                            generator=gen)
    n_train = len(task.train_set)
    history: list = []
    partial = {"loss": 0.0, "correct": 0.0, "seen": 0, "steps": 0, "time": 0.0}
    start_epoch, total_steps, train_time = 0, 0, 0.0
    if cfg.resume:
        ck = load_checkpoint(cfg.resume)
        want = _ckpt_config(task, cfg, n_train)
        for k in ("model", "batch_size", "n_train", "optimizer", "schedule", "epochs"):
            if ck["config"].get(k) != want[k]:
                raise TrainError(f"checkpoint {cfg.resume!r} was made with {k}="
                                 f"{ck['config'].get(k)!r}, this run has {k}={want[k]!r}")
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if sched is not None and ck.get("scheduler") is not None:
                sched.load_state_dict(ck["scheduler"])
            if scaler is not None and ck.get("scaler") is not None:
                scaler.load_state_dict(ck["scaler"])
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise TrainError(f"cannot resume from {cfg.resume!r}: "
                             f"{str(e).splitlines()[0]}") from None
        loader.load_state_dict(ck["loader"])
        taiji.set_rng_state(ck["rng"])
        start_epoch, history, partial = int(ck["epoch"]), list(ck["history"]), dict(ck["partial"])
        total_steps, train_time = int(ck.get("steps", 0)), float(ck.get("train_time", 0.0))
        log(f"resumed from {cfg.resume} at epoch {start_epoch + 1}"
            + (f", step {partial['steps']}" if partial["steps"] else ""))

    step = make_train_step(model, opt, task.loss_fn, kind, cfg.amp, scaler)

    def predict(x):
        return model(x)
    if cfg.mode == "jit":
        step, predict = taiji.jit(step), taiji.jit(predict)

    def save(epoch_done: int, tag: str) -> str | None:
        if not cfg.checkpoint_dir:
            return None
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(),
              "loader": loader.state_dict(), "rng": taiji.get_rng_state(),
              "scheduler": sched.state_dict() if sched is not None else None,
              "scaler": scaler.state_dict() if scaler is not None else None,
              "epoch": epoch_done, "history": history, "partial": partial,
              "steps": total_steps, "train_time": train_time,
              "config": _ckpt_config(task, cfg, n_train)}
        path = os.path.join(cfg.checkpoint_dir, f"{task.name}-{tag}.safetensors")
        try:
            taiji.save(ck, path)
            taiji.save(ck, os.path.join(cfg.checkpoint_dir, f"{task.name}-last.safetensors"))
        except OSError as e:
            raise TrainError(f"cannot write checkpoint {path!r}: {e.strerror or e}") from None
        return path

    if cfg.metrics and not cfg.resume:
        open(cfg.metrics, "w").close()
    ckpt_path, interrupted, final = None, False, history[-1] if history else {}
    with _StopFlag() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            bar = tqdm(total=len(loader), initial=partial["steps"], unit="step",
                       desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress,
                       dynamic_ncols=True, leave=True)
            t0 = time.perf_counter()
            last_post = 0.0
            for x, y in loader:
                loss, correct = step(x, y)
                loss_v = float(loss)
                b = len(y)
                partial["loss"] += loss_v * b
                partial["correct"] += float(correct)
                partial["seen"] += b
                partial["steps"] += 1
                total_steps += 1
                bar.update(1)
                now = time.perf_counter()
                if now - last_post > 0.25 or partial["steps"] == len(loader):
                    el = partial["time"] + now - t0
                    post = {"loss": f"{loss_v:.4f}"}
                    if kind != "regression":
                        post["acc"] = f"{partial['correct'] / partial['seen']:.4f}"
                    post["samples/s"] = f"{partial['seen'] / max(el, 1e-9):.0f}"
                    bar.set_postfix(post, refresh=False)
                    last_post = now
                if stop.set:
                    break
            dt = time.perf_counter() - t0
            partial["time"] += dt
            train_time += dt
            bar.close()
            if stop.set:
                interrupted = True
                ckpt_path = save(epoch, "interrupted")
                break
            ev = evaluate(task, predict)
            if sched is not None:
                sched.step()
            rec = {"epoch": epoch + 1, "train_loss": partial["loss"] / partial["seen"],
                   "train_time": partial["time"],
                   "steps_per_s": partial["steps"] / max(partial["time"], 1e-9),
                   "samples_per_s": partial["seen"] / max(partial["time"], 1e-9)}
            if kind != "regression":
                rec["train_acc"] = partial["correct"] / partial["seen"]
            rec.update(ev)
            history.append(rec)
            final = rec
            partial = {"loss": 0.0, "correct": 0.0, "seen": 0, "steps": 0, "time": 0.0}
            m = primary_metric(kind)
            log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {rec['train_loss']:.4f}, "
                f"{m.replace('_', ' ')} {rec[m]:.4f}, {rec['steps_per_s']:.1f} steps/s")
            if cfg.metrics:
                with open(cfg.metrics, "a") as f:
                    f.write(json.dumps({k: v for k, v in rec.items() if k != "confusion"})
                            + "\n")
            ckpt_path = save(epoch + 1, f"epoch{epoch + 1:03d}")
    return {"history": history, "final": final, "interrupted": interrupted,
            "checkpoint": ckpt_path, "steps": total_steps, "train_time": train_time,
            "steps_per_s": total_steps / train_time if train_time > 0 else math.nan}


# ---------------------------------------------------------------- the examples' flags

def example_args(description: str, epochs: int, batch_size: int, lr: float,
                 argv: list | None = None) -> argparse.Namespace:
    """``--epochs --batch-size --limit --lr --seed --data-dir`` for ``examples/*.py``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training (and test) examples")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None,
                   help="Fashion-MNIST directory ('sample': the bundled sample)")
    return p.parse_args(argv)
