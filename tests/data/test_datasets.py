"""IDX files, MNIST/Fashion-MNIST lookup and download, transforms, the recommender set."""
import functools
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

import taiji
from taiji.datasets import MNIST, FashionMNIST, SyntheticRecommender, read_idx, write_idx
from taiji.datasets import transforms as T
from taiji.utils.data import DataLoader

REAL = "/usr/share/datasets/fashion-mnist"
NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def _write_split(d, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(d, exist_ok=True)
    arrays = {NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              NAMES[1]: rng.integers(0, 10, n_train).astype(np.uint8),
              NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              NAMES[3]: rng.integers(0, 10, n_test).astype(np.uint8)}
    for name, a in arrays.items():
        write_idx(os.path.join(d, name + (".gz" if gz else "")), a)
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $TAIJI_DATA, a fresh home, no system directories: only what the test writes."""
    monkeypatch.delenv("TAIJI_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(FashionMNIST, "system_dirs", [str(tmp_path / "system")])
    return tmp_path


def test_idx_round_trip_gzip_and_raw(tmp_path):
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        for name in ("a.idx", "a.idx.gz"):
            write_idx(tmp_path / name, a)
            b = read_idx(str(tmp_path / name))
            assert b.dtype == a.dtype and np.array_equal(a, b)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(str(tmp_path / "bad"))
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(str(tmp_path / "junk"))


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_root(isolated, gz):
    arrays = _write_split(isolated / "d", gz=gz)
    ds = MNIST(root=isolated / "d")
    assert len(ds) == 12 and ds.data.shape == (12, 28, 28) and ds.data.dtype == taiji.uint8
    assert ds.targets.dtype == taiji.int64
    img, y = ds[3]
    assert img.dtype == taiji.uint8 and img.shape == (28, 28) and isinstance(y, int)
    assert np.array_equal(img.numpy(), arrays[NAMES[0]][3]) and y == arrays[NAMES[1]][3]
    test = MNIST(root=isolated / "d", train=False)
    assert len(test) == 5
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))  # fast path == per-item collate
    assert xb.dtype == taiji.uint8 and xb.shape == (4, 28, 28) and yb.dtype == taiji.int64
    tds = MNIST(root=isolated / "d", transform=T.ToTensor(), target_transform=lambda t: t + 1)
    x, y1 = tds[3]
    assert x.shape == (1, 28, 28) and x.dtype == taiji.float32 and y1 == y + 1
    xb2, _ = next(iter(DataLoader(tds, batch_size=4)))
    np.testing.assert_allclose(xb2.numpy()[:, 0], xb.numpy() / 255.0, rtol=1e-6)


def test_search_order_env_and_cache(isolated, monkeypatch):
    _write_split(isolated / "env" / "fashion-mnist", seed=1)
    _write_split(isolated / "home" / ".cache" / "taiji" / "fashion-mnist", n_train=7, seed=2)
    monkeypatch.setenv("TAIJI_DATA", str(isolated / "env"))
    assert len(FashionMNIST()) == 12
    monkeypatch.delenv("TAIJI_DATA")
    assert len(FashionMNIST()) == 7
    _write_split(isolated / "tv" / "FashionMNIST" / "raw", n_train=3)
    assert len(FashionMNIST(root=isolated / "tv")) == 3  # torchvision's layout


def test_not_found_lists_places_and_remedies(isolated, monkeypatch):
    monkeypatch.setenv("TAIJI_DATA", str(isolated / "env"))
    with pytest.raises(FileNotFoundError) as e:
        FashionMNIST()
    msg = str(e.value)
    for place in (str(isolated / "env"), os.path.join(str(isolated / "home"), ".cache",
                                                      "taiji"), str(isolated / "system")):
        assert place in msg
    assert "dataset-fashion-mnist" in msg and "download=True" in msg and "TAIJI_DATA" in msg


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _digests(d):
    return [(n + ".gz", hashlib.sha256((d / (n + ".gz")).read_bytes()).hexdigest())
            for n in NAMES]


def test_download_from_local_mirror(isolated, server, monkeypatch):
    www, url = server
    arrays = _write_split(www, n_train=9)

    class Local(FashionMNIST):
        resources = _digests(www)

    dest = isolated / "dl"
    ds = Local(root=dest, download=True, mirrors=["http://127.0.0.1:1/", url])  # 1st is dead
    assert len(ds) == 9 and np.array_equal(ds.data.numpy(), arrays[NAMES[0]])
    assert sorted(os.listdir(dest)) == sorted(n + ".gz" for n in NAMES)  # no temp files
    monkeypatch.setattr(Local, "mirrors", [url])
    monkeypatch.setenv("TAIJI_DATA", str(isolated / "envdl"))
    assert len(Local(train=False, download=True)) == 5
    assert os.path.isfile(isolated / "envdl" / "fashion-mnist" / (NAMES[2] + ".gz"))


def test_download_checksum_mismatch_leaves_nothing(isolated, server):
    www, url = server
    _write_split(www)
    good = _digests(www)
    (www / good[0][0]).write_bytes(b"corrupted" * 100)

    class Local(FashionMNIST):
        resources = good
        mirrors = [url]

    dest = isolated / "dl"
    with pytest.raises(RuntimeError, match="checksum mismatch") as e:
        Local(root=dest, download=True)
    assert good[0][1] in str(e.value)
    assert not os.path.exists(dest / good[0][0])
    assert not [f for f in os.listdir(dest) if f.startswith(".")]  # no partial file


def test_official_digests_are_sha256():
    for cls in (MNIST, FashionMNIST):
        assert len(cls.resources) == 4
        for name, digest in cls.resources:
            assert name.endswith(".gz") and len(digest) == 64 and int(digest, 16) >= 0


# ---------------------------------------------------------------- transforms

def test_transforms():
    img = taiji.tensor(np.arange(16, dtype=np.uint8).reshape(4, 4))
    x = T.ToTensor()(img)
    assert x.shape == (1, 4, 4) and abs(x.numpy().max() - 15 / 255) < 1e-7
    assert T.ToTensor()(np.zeros((4, 5, 3), np.uint8)).shape == (3, 4, 5)
    n = T.Normalize((0.5,), (0.25,))(x)
    np.testing.assert_allclose(n.numpy(), (x.numpy() - 0.5) / 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match="std"):
        T.Normalize((0.0,), (0.0,))
    taiji.manual_seed(0)
    crops = [T.RandomCrop(4, padding=2)(x).numpy() for _ in range(20)]
    assert all(c.shape == (1, 4, 4) for c in crops)
    assert len({c.tobytes() for c in crops}) > 1
    taiji.manual_seed(0)
    assert all(np.array_equal(c, T.RandomCrop(4, padding=2)(x).numpy()) for c in crops)
    with pytest.raises(ValueError, match="larger"):
        T.RandomCrop(6)(x)
    assert T.RandomCrop(6, pad_if_needed=True, padding_mode="reflect")(x).shape == (1, 6, 6)
    flip = T.RandomHorizontalFlip(p=1.0)(x)
    assert np.array_equal(flip.numpy(), x.numpy()[..., ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(x) is x
    taiji.manual_seed(1)
    flips = [bool((T.RandomHorizontalFlip()(x).numpy() != x.numpy()).any()) for _ in range(40)]
    assert 5 < sum(flips) < 35
    pipe = T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)])
    assert np.allclose(pipe(img).numpy(), 2 * x.numpy())
    with pytest.raises(TypeError):
        T.Lambda(3)


# ---------------------------------------------------------------- recommender

def test_synthetic_recommender():
    a = SyntheticRecommender(n_users=60, n_items=40, positives_per_user=5)
    b = SyntheticRecommender(n_users=60, n_items=40, positives_per_user=5)
    test = SyntheticRecommender(train=False, n_users=60, n_items=40, positives_per_user=5)
    assert np.array_equal(a._x, b._x) and np.array_equal(a._labels, b._labels)
    assert len(a) + len(test) == 60 * 5 * 2
    assert a.labels.numpy().mean() == pytest.approx(0.5)
    x, y = a[0]
    assert x.shape == (100,) and y.shape == (1,) and y.dtype == taiji.float32
    xb, yb = next(iter(DataLoader(a, batch_size=16, shuffle=True)))
    assert xb.shape == (16, 100) and yb.shape == (16, 1)
    pairs = set(zip(a._users.tolist(), a._items.tolist()))
    tpairs = set(zip(test._users.tolist(), test._items.tolist()))
    assert len(pairs) == len(a) and not (pairs & tpairs)  # no duplicate, no leak
    # positives have higher true affinity than negatives (the signal a model can learn)
    aff = a.affinity[a._users, a._items]
    assert aff[a._labels == 1].mean() > aff[a._labels == 0].mean() + 0.5
    c = SyntheticRecommender(n_users=60, n_items=40, positives_per_user=5, seed=1)
    assert not np.array_equal(a._x, c._x)


# ---------------------------------------------------------------- the real data

@pytest.mark.skipif(not os.path.isfile(os.path.join(REAL, "train-images-idx3-ubyte.gz")),
                    reason=f"Fashion-MNIST not installed in {REAL} (apt-get install "
                           f"dataset-fashion-mnist)")
def test_real_fashion_mnist(monkeypatch):
    train = FashionMNIST(root=REAL)
    test = FashionMNIST(root=REAL, train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert np.bincount(train.targets.numpy()).tolist() == [6000] * 10
    assert np.bincount(test.targets.numpy()).tolist() == [1000] * 10
    px = train.data.numpy().astype(np.float64) / 255.0
    assert px.mean() == pytest.approx(0.286, abs=0.001)
    assert px.std() == pytest.approx(0.353, abs=0.001)
    monkeypatch.delenv("TAIJI_DATA", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent-home")
    assert len(FashionMNIST()) == 60000  # found by the default search
    xb, yb = next(iter(DataLoader(train, batch_size=64, shuffle=True)))
    assert xb.shape == (64, 28, 28) and yb.shape == (64,)
