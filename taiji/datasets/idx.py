"""MNIST and Fashion-MNIST from IDX files (gzip or raw), with a checked, atomic downloader.

Where the files are looked for (the first directory holding both files of the split wins):

* with ``root``: ``root``, ``root/<folder>``, ``root/<ClassName>/raw`` (torchvision's layout);
* without: ``$TAIJI_DATA`` (and its ``<folder>`` and ``<ClassName>/raw``),
  ``~/.cache/taiji/<folder>``, ``~/.cache/taiji``, then system directories (Fashion-MNIST:
  ``/usr/share/datasets/fashion-mnist``, installed by the Debian package
  ``dataset-fashion-mnist``).

``download=True`` fetches missing files from ``mirrors`` (a class attribute or argument, so
tests and private mirrors can point elsewhere) into ``root`` (default
``$TAIJI_DATA/<folder>`` or ``~/.cache/taiji/<folder>``), checks each file's SHA-256 against
the published digest, and renames it into place only when it matches.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
from typing import Callable, Sequence

import numpy as np

from taiji import _ops as O
from taiji.utils.data.dataset import Dataset

__all__ = ["read_idx", "write_idx", "MNIST", "FashionMNIST"]

_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array in native byte order.

    Raises:
        ValueError: the file is not IDX, or is truncated (the message names the file).
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupted gzip stream ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    count = int(np.prod(dims, dtype=np.int64))
    need = 4 + 4 * ndim + count * dtype.itemsize
    if len(data) != need:
        raise ValueError(f"{path}: IDX file of shape {list(dims)} should have {need} bytes, "
                         f"has {len(data)} (truncated or corrupted)")
    arr = np.frombuffer(data, dtype, count, 4 + 4 * ndim).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str, array, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzip when ``compress`` or the name ends in .gz)."""
    a = np.asarray(array)
    if a.dtype not in _IDX_CODES:
        raise TypeError(f"IDX cannot store dtype {a.dtype}")
    be = a.astype(a.dtype.newbyteorder(">"), copy=False)
    blob = bytes([0, 0, _IDX_CODES[a.dtype], a.ndim]) + \
        np.asarray(a.shape, ">u4").tobytes() + be.tobytes()
    if compress or (compress is None and str(path).endswith(".gz")):
        blob = gzip.compress(blob, mtime=0)
    with open(path, "wb") as f:
        f.write(blob)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(filename: str, sha256: str, mirrors: Sequence[str], dest_dir: str,
                  timeout: float = 60.0) -> str:
    """Fetch ``filename`` from the first mirror that serves it with the right SHA-256.

    The bytes go to a temporary file in ``dest_dir`` and are renamed into place only after
    the digest matches; on any failure nothing is left behind.

    Returns:
        The path of the downloaded file.

    Raises:
        RuntimeError: no mirror delivered the file with the expected digest (each attempt
            and its reason are listed).
    """
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, filename)
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix="." + filename + ".", suffix=".part")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            got = h.hexdigest()
            if got != sha256:
                errors.append(f"{url}: checksum mismatch (expected sha256 {sha256}, got {got})"
                              f"; the file was discarded")
                continue
            os.replace(tmp, dest)
            return dest
        except OSError as e:  # URLError, HTTPError, timeouts and disk errors are OSErrors
            errors.append(f"{url}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"could not download {filename}:\n  " + "\n  ".join(errors))


class MNIST(Dataset):
    """The MNIST handwritten digits (60,000 train / 10,000 test, 28x28 grayscale).

    Each item is ``(image, label)``. Without ``transform`` the image is a ``uint8`` tensor of
    shape [28, 28] with values 0..255 (torchvision returns a PIL image there; use
    ``transforms.ToTensor()`` for a float [1, 28, 28] tensor in [0, 1]) and the label an int.
    For whole-array use, ``.data`` is the uint8 [N, 28, 28] tensor and ``.targets`` the int64
    [N] tensor; without transforms a ``DataLoader`` batches by fancy indexing (fast path).

    Args:
        root: directory holding the IDX files (see the module docstring for the search).
        train: the 60,000-image training split (else the 10,000-image test split).
        transform: applied to each image.
        target_transform: applied to each label.
        download: fetch missing files from ``mirrors`` (SHA-256 checked, atomic writes).
        mirrors: base URLs to try in order (default: the class's ``mirrors``).

    Raises:
        FileNotFoundError: the files are nowhere; the message lists every place looked and
            how to get the data.
    """

    folder = "mnist"
    mirrors: list[str] = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                          "https://storage.googleapis.com/cvdf-datasets/mnist/"]
    # Published SHA-256 digests of the official files.
    resources: list[tuple[str, str]] = [
        ("train-images-idx3-ubyte.gz",
         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz",
         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz",
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz",
         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ]
    system_dirs: list[str] = []
    install_hint = ""
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
               "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: str | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, mirrors: Sequence[str] | None = None):
        self.root = None if root is None else os.path.expanduser(os.fspath(root))
        self.train = train
        self.transform, self.target_transform = transform, target_transform
        if mirrors is not None:
            self.mirrors = list(mirrors)
        prefix = "train" if train else "t10k"
        self._names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        found = self._find()
        if found is None and download:
            self.download()
            found = self._find()
        if found is None:
            raise FileNotFoundError(self._not_found_message())
        images, labels = read_idx(found[0]), read_idx(found[1])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{found[0]} / {found[1]}: expected images [N, H, W] and labels "
                             f"[N], got {list(images.shape)} and {list(labels.shape)}")
        self.files = found
        self._images = images.astype(np.uint8, copy=False)
        self._labels = labels.astype(np.int64)
        self.data = O.const(self._images)
        self.targets = O.const(self._labels)

    # ------------------------------------------------------------ locating files
    def _search_dirs(self) -> list[str]:
        name = type(self).__name__
        if self.root is not None:
            r = self.root
            return [r, os.path.join(r, self.folder), os.path.join(r, name, "raw")]
        dirs = []
        env = os.environ.get("TAIJI_DATA")
        if env:
            env = os.path.expanduser(env)
            dirs += [env, os.path.join(env, self.folder), os.path.join(env, name, "raw")]
        cache = os.path.join(os.path.expanduser("~"), ".cache", "taiji")
        dirs += [os.path.join(cache, self.folder), cache]
        return dirs + list(self.system_dirs)

    def _find(self):
        for d in self._search_dirs():
            paths = []
            for n in self._names:
                for ext in (".gz", ""):
                    p = os.path.join(d, n + ext)
                    if os.path.isfile(p):
                        paths.append(p)
                        break
            if len(paths) == 2:
                return tuple(paths)
        return None

    def _download_dir(self) -> str:
        if self.root is not None:
            return self.root
        base = os.environ.get("TAIJI_DATA") or os.path.join(os.path.expanduser("~"), ".cache",
                                                            "taiji")
        return os.path.join(os.path.expanduser(base), self.folder)

    def _not_found_message(self) -> str:
        places = "\n".join(f"  {d}" for d in self._search_dirs())
        name = type(self).__name__
        hint = f"\n  - {self.install_hint}" if self.install_hint else ""
        return (f"{name}: could not find {self._names[0]}[.gz] and {self._names[1]}[.gz]. "
                f"Looked in:\n{places}\nTo get the data:{hint}\n"
                f"  - pass download=True to fetch the official files (SHA-256 checked) into "
                f"{self._download_dir()}\n"
                f"  - or put the IDX files in a directory and set $TAIJI_DATA to it (or pass "
                f"root=)")

    def download(self) -> None:
        """Fetch the files not already present into the download directory."""
        dest = self._download_dir()
        for fname, digest in self.resources:
            if os.path.isfile(os.path.join(dest, fname)):
                continue
            download_file(fname, digest, self.mirrors, dest)

    # ------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int):
        img = O.const(self._images[index])
        target = int(self._labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __getbatch__(self, indices: np.ndarray):
        """The collated batch ``[uint8 [B, 28, 28], int64 [B]]`` by fancy indexing (only
        without transforms)."""
        if self.transform is not None or self.target_transform is not None:
            return NotImplemented
        return [O.const(self._images[indices]), O.const(self._labels[indices])]

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
                f"    Split: {split}\n    Files: {', '.join(self.files)}")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (same format and sizes as MNIST, 10 clothing classes).

    See ``MNIST`` for the arguments. Also found in ``/usr/share/datasets/fashion-mnist``
    (Debian package ``dataset-fashion-mnist``).
    """

    folder = "fashion-mnist"
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    # Published SHA-256 digests of the official files (the MD5s torchvision checks are
    # 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...).
    resources = [
        ("train-images-idx3-ubyte.gz",
         "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"),
        ("train-labels-idx1-ubyte.gz",
         "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"),
        ("t10k-images-idx3-ubyte.gz",
         "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"),
        ("t10k-labels-idx1-ubyte.gz",
         "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"),
    ]
    system_dirs = ["/usr/share/datasets/fashion-mnist"]
    install_hint = ("install the Debian package: sudo apt-get install dataset-fashion-mnist "
                    "(files land in /usr/share/datasets/fashion-mnist)")
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
