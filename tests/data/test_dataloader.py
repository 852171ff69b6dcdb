"""DataLoader, samplers, collate, workers (threads and processes), seeding and failures."""
import collections
import os
import time

import numpy as np
import pytest

import taiji
from taiji.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset,
                              DistributedSampler, IterableDataset, RandomSampler,
                              SequentialSampler, Subset, SubsetRandomSampler, TensorDataset,
                              WeightedRandomSampler, default_collate, get_worker_info,
                              random_split)

WORKERS = [("thread", 2), ("process", 2)]


def _ds(n=20):
    return TensorDataset(taiji.arange(n * 2, dtype=taiji.float32).reshape(n, 2),
                         taiji.arange(n))


class PerItem(Dataset):
    """Like _ds() but without the fast path."""

    def __init__(self, n=20):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.array([2 * i, 2 * i + 1], np.float32), i


def _labels(loader):
    return [b[1].numpy().tolist() for b in loader]


# ---------------------------------------------------------------- datasets and samplers

def test_tensor_dataset_and_fast_path_match_per_item():
    ds = _ds()
    assert len(ds) == 20 and ds[3][1].item() == 3
    fast = list(DataLoader(ds, batch_size=6))
    slow = list(DataLoader(PerItem(), batch_size=6))
    assert len(fast) == len(slow) == 4
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert np.array_equal(fx.numpy(), sx.numpy()) and fx.dtype == sx.dtype
        assert np.array_equal(fy.numpy(), sy.numpy()) and fy.dtype == sy.dtype == taiji.int64
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(taiji.ones(3), taiji.ones(4))


def test_fast_path_is_used(monkeypatch):
    ds = _ds()
    calls = []
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: calls.append(i))
    list(DataLoader(ds, batch_size=5))
    assert calls == []  # never went per item


def test_concat_subset_random_split():
    a, b = _ds(5), _ds(7)
    c = ConcatDataset([a, b])
    assert len(c) == 12 and c[6][1].item() == 1 and c[-1][1].item() == 6
    assert _labels(DataLoader(c, batch_size=4)) == [[0, 1, 2, 3], [4, 0, 1, 2], [3, 4, 5, 6]]
    s = Subset(_ds(), [5, 3, 9])
    assert _labels(DataLoader(s, batch_size=2)) == [[5, 3], [9]]
    parts = random_split(_ds(10), [0.7, 0.3], generator=taiji.Generator().manual_seed(0))
    idx = sorted(i for p in parts for i in p.indices)
    assert [len(p) for p in parts] == [7, 3] and idx == list(range(10))
    again = random_split(_ds(10), [7, 3], generator=taiji.Generator().manual_seed(0))
    assert again[0].indices == parts[0].indices
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(_ds(10), [3, 3])


def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    g = taiji.Generator().manual_seed(0)
    perm = list(RandomSampler(range(10), generator=g))
    assert sorted(perm) == list(range(10)) and perm != list(range(10))
    assert len(list(RandomSampler(range(5), num_samples=12))) == 12
    rep = list(RandomSampler(range(3), replacement=True, num_samples=50))
    assert set(rep) <= {0, 1, 2} and len(rep) == 50
    assert sorted(SubsetRandomSampler([4, 8, 9])) == [4, 8, 9]
    w = list(WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 400))
    cnt = collections.Counter(w)
    assert set(cnt) == {1, 3} and 2.0 < cnt[3] / cnt[1] < 4.5
    nr = list(WeightedRandomSampler([1, 1, 5, 0], 3, replacement=False))
    assert sorted(nr) == [0, 1, 2]
    with pytest.raises(ValueError):
        WeightedRandomSampler([-1.0, 1.0], 2)
    assert list(BatchSampler(SequentialSampler(range(5)), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3


def test_distributed_sampler_partitions_and_reshuffles():
    ds = range(10)
    shards = [list(DistributedSampler(ds, num_replicas=3, rank=r, seed=1)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)
    assert set(sum(shards, [])) == set(range(10))
    s0 = DistributedSampler(ds, 3, 0, seed=1)
    e0 = list(s0)
    s0.set_epoch(1)
    assert list(s0) != e0
    dl = [list(DistributedSampler(ds, 3, r, shuffle=False, drop_last=True)) for r in range(3)]
    assert dl == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError, match="Invalid rank"):
        DistributedSampler(ds, 2, 2)


def test_default_collate_kinds():
    Point = collections.namedtuple("Point", "x y")
    batch = [{"a": taiji.ones(2), "b": np.zeros(3, np.int32), "c": 1.5, "d": 3, "e": "s",
              "p": Point(1, True), "l": [1, 2]}] * 2
    out = default_collate(batch)
    assert out["a"].shape == (2, 2) and out["b"].dtype == taiji.int32
    assert out["c"].dtype == taiji.float64 and out["d"].dtype == taiji.int64
    assert out["e"] == ["s", "s"] and isinstance(out["p"], Point)
    assert out["p"].y.dtype == taiji.bool and isinstance(out["l"], list)
    assert isinstance(default_collate([(1, 2), (3, 4)]), list)
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object(), object()])


def test_loader_options():
    ds = _ds(10)
    assert len(DataLoader(ds, batch_size=4)) == 3
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    one = list(DataLoader(ds, batch_size=None))
    assert len(one) == 10 and one[0][1].shape == ()
    bs = list(DataLoader(ds, batch_sampler=[[1, 2], [7]]))
    assert [b[1].tolist() for b in bs] == [[1, 2], [7]]
    assert list(DataLoader(ds, batch_size=5, collate_fn=len)) == [5, 5]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, sampler=SequentialSampler(ds), shuffle=True)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="worker_type"):
        DataLoader(ds, num_workers=1, worker_type="fiber")


def test_shuffle_reproducible_with_manual_seed():
    ds = _ds(30)
    taiji.manual_seed(3)
    a = _labels(DataLoader(ds, batch_size=7, shuffle=True))
    taiji.manual_seed(3)
    loader = DataLoader(ds, batch_size=7, shuffle=True)
    b = _labels(loader)
    c = _labels(loader)  # the next epoch differs
    assert a == b and a != c
    assert sorted(sum(a, [])) == list(range(30))
    g = taiji.Generator().manual_seed(5)
    d1 = _labels(DataLoader(ds, batch_size=7, shuffle=True, generator=g))
    g.manual_seed(5)
    assert _labels(DataLoader(ds, batch_size=7, shuffle=True, generator=g)) == d1


# ---------------------------------------------------------------- workers

@pytest.mark.parametrize("kind,n", WORKERS)
def test_workers_same_batches_in_order(kind, n):
    taiji.manual_seed(0)
    want = _labels(DataLoader(PerItem(23), batch_size=4, shuffle=True))
    taiji.manual_seed(0)
    loader = DataLoader(PerItem(23), batch_size=4, shuffle=True, num_workers=n,
                        worker_type=kind, timeout=30)
    assert _labels(loader) == want
    fast = DataLoader(_ds(23), batch_size=4, num_workers=n, worker_type=kind, timeout=30)
    assert sum(_labels(fast), []) == list(range(23))


class RandomAug(Dataset):
    """Each item is a random draw: from the worker's generator (threads) or the global one."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        info = get_worker_info()
        g = info.generator if info is not None and info.kind == "thread" else None
        return taiji.rand(1, generator=g), (info.id if info else -1), (info.seed if info else 0)


@pytest.mark.parametrize("kind,n", WORKERS)
def test_worker_seeds_distinct_and_reproducible(kind, n):
    def run(seed, epochs=2):
        taiji.manual_seed(seed)
        loader = DataLoader(RandomAug(), batch_size=2, num_workers=n, worker_type=kind,
                            timeout=30)
        out = []
        for _ in range(epochs):
            out.append([(b[0].numpy().ravel().tolist(), b[1].tolist(), b[2].tolist())
                        for b in loader])
        return out

    e = run(11)
    assert e == run(11)  # one manual_seed reproduces every worker's stream
    vals = [v for ep in e for b in ep for v in b[0]]
    assert len(set(vals)) == len(vals)  # no repeated augmentation across workers/epochs
    seeds = {(ep, b[1][0], b[2][0]) for ep in range(2) for b in e[ep]}
    per_epoch = [{s for (ep, w, s) in seeds if ep == k} for k in range(2)]
    assert all(len(s) == n for s in per_epoch) and not (per_epoch[0] & per_epoch[1])
    assert e != run(12)


def test_persistent_workers_and_worker_init_fn():
    calls = []
    loader = DataLoader(_ds(12), batch_size=3, num_workers=2, worker_type="thread",
                        persistent_workers=True, worker_init_fn=calls.append, timeout=30)
    assert sum(_labels(loader), []) == list(range(12))
    pool = loader._pool
    it = iter(loader)
    next(it)  # abandon mid-epoch: the next epoch must not see stale batches
    assert sum(_labels(loader), []) == list(range(12))
    assert loader._pool is pool and sorted(calls) == [0, 1]
    loader._shutdown_workers()


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


@pytest.mark.parametrize("kind,n", [("main", 0)] + WORKERS)
def test_iterable_dataset(kind, n):
    kw = {} if n == 0 else {"num_workers": n, "worker_type": kind, "timeout": 30}
    out = sum(_labels_iter(DataLoader(Stream(11), batch_size=3, **kw)), [])
    assert sorted(out) == list(range(11))
    dl = sum(_labels_iter(DataLoader(Stream(11), batch_size=3, drop_last=True, **kw)), [])
    assert len(dl) == 9  # with workers, each drops its own tail (as in PyTorch)
    chained = list(DataLoader(ChainDataset([Stream(2), Stream(3)]), batch_size=None))
    assert [int(x) for x in chained] == [0, 1, 0, 1, 2]


def _labels_iter(loader):
    return [b.tolist() for b in loader]


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise ValueError(f"bad sample {i}")
        return i


@pytest.mark.parametrize("kind,n", WORKERS)
def test_worker_exception_reraised_with_traceback(kind, n):
    loader = DataLoader(Failing(), batch_size=2, num_workers=n, worker_type=kind, timeout=30)
    with pytest.raises(ValueError) as e:
        list(loader)
    msg = str(e.value)
    assert "bad sample 5" in msg and "DataLoader worker" in msg
    assert "Traceback" in msg and "__getitem__" in msg


class Stall(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i == 2:
            time.sleep(20)  # far longer than the timeout: the loader must not wait for it
        return i


@pytest.mark.parametrize("kind,n", WORKERS)
def test_stalled_worker_times_out(kind, n):
    loader = DataLoader(Stall(), batch_size=1, num_workers=n, worker_type=kind, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"timed out after 0.5 seconds"):
        list(loader)
    assert time.monotonic() - t0 < 8  # generous for loaded CI machines, far below the stall


class Dies(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i == 1:
            os._exit(3)
        return i


def test_dead_process_worker_reported():
    loader = DataLoader(Dies(), batch_size=1, num_workers=1, timeout=20)
    with pytest.raises(RuntimeError, match="exited unexpectedly with exit code 3"):
        list(loader)


def test_spawn_context():
    loader = DataLoader(_ds(6), batch_size=3, num_workers=1, multiprocessing_context="spawn",
                        timeout=60)
    assert _labels(loader) == [[0, 1, 2], [3, 4, 5]]


def test_no_hang_at_exit(tmp_path):
    """A process that abandons iterators with busy workers must exit promptly."""
    import subprocess
    import sys
    code = ("import time, taiji\nfrom taiji.utils.data import DataLoader, Dataset\n"
            "class S(Dataset):\n    def __len__(self): return 100\n"
            "    def __getitem__(self, i): time.sleep(0.2); return i\n"
            "for kind in ('process', 'thread'):\n"
            "    it = iter(DataLoader(S(), batch_size=1, num_workers=2, worker_type=kind,"
            " persistent_workers=True))\n    next(it)\nprint('ok')\n")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    assert time.monotonic() - t0 < 20


def test_loader_state_dict_resumes_mid_epoch():
    ds = _ds(20)
    taiji.manual_seed(4)
    full = _labels(DataLoader(ds, batch_size=3, shuffle=True))
    taiji.manual_seed(4)
    loader = DataLoader(ds, batch_size=3, shuffle=True)
    it = iter(loader)
    first = [next(it)[1].tolist() for _ in range(3)]
    state = loader.state_dict()
    assert state["in_epoch"] and state["batches_yielded"] == 3
    fresh = DataLoader(ds, batch_size=3, shuffle=True)
    fresh.load_state_dict(state)
    assert first + _labels(fresh) == full
