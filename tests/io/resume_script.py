"""Training run used by test_resume.py: ``python resume_script.py CKPT M OUT [WORKERS]``
resumes from CKPT, trains M steps and saves the parameters to OUT."""
import sys

import taiji
from taiji import nn
from taiji.utils.data import DataLoader, Dataset, TensorDataset


class NoisyDataset(Dataset):
    """Adds noise drawn from the (per-worker) global generator: an augmentation stream."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * taiji.randn(self.x.shape[1]), self.y[i]


def build(workers: int):
    taiji.manual_seed(1234)
    g = taiji.Generator().manual_seed(7)
    x = taiji.randn(52, 6, generator=g)
    y = taiji.randint(0, 3, (52,), generator=g)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = taiji.optim.Adam(model.parameters(), lr=1e-2)
    sched = taiji.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    ds = NoisyDataset(x, y) if workers else TensorDataset(x, y)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers)
    return model, opt, sched, loader


def train(model, opt, sched, loader, steps: int) -> None:
    """Train ``steps`` steps, continuing the loader's current epoch if it has one open."""
    it = getattr(loader, "_open_iter", None)
    done = 0
    while done < steps:
        if it is None:
            it = iter(loader)
        for xb, yb in it:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            if done == steps:
                loader._open_iter = it
                return
        it = None
    loader._open_iter = None


def checkpoint(model, opt, sched, loader) -> dict:
    return {"model": model.state_dict(), "optim": opt.state_dict(),
            "sched": sched.state_dict(), "rng": taiji.get_rng_state(),
            "loader": loader.state_dict()}


def restore(ck, model, opt, sched, loader) -> None:
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    sched.load_state_dict(ck["sched"])
    taiji.set_rng_state(ck["rng"])
    loader.load_state_dict(ck["loader"])


if __name__ == "__main__":
    ckpt, m, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    model, opt, sched, loader = build(workers)
    taiji.manual_seed(999)  # a different global state: the checkpoint must restore it
    restore(taiji.load(ckpt), model, opt, sched, loader)
    train(model, opt, sched, loader, m)
    taiji.save(model.state_dict(), out)
