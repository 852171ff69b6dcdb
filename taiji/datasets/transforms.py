"""Image transforms (torchvision's names) on tensors: Compose, ToTensor, Normalize,
RandomCrop, RandomHorizontalFlip, Lambda.

Images are ``[..., C, H, W]`` tensors (``ToTensor`` makes them from ``uint8`` HxW or HxWxC
arrays/tensors). Random transforms draw from taiji's global generator, so
``taiji.manual_seed`` makes them reproducible; in a DataLoader thread worker they draw from
that worker's own generator (``get_worker_info().generator``) instead, and process workers
seed the global generator per worker, so no two workers repeat a stream.
"""
from __future__ import annotations

import numbers
from typing import Callable, Sequence

import numpy as np

from taiji import _ops as O
from taiji.tensor import Tensor
from taiji.utils.data._worker import current_generator

__all__ = ["Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Lambda"]


def _arr(x) -> np.ndarray:
    return x._concrete("transforms") if isinstance(x, Tensor) else np.asarray(x)


def _randint(high: int) -> int:
    from taiji._random_ops import randint
    return int(randint(0, high, (1,), generator=current_generator()).item())


def _rand() -> float:
    from taiji._random_ops import rand
    return float(rand(1, generator=current_generator()).item())


class Compose:
    """Apply ``transforms`` in order.

    Example:
        >>> t = Compose([ToTensor(), Normalize((0.2860,), (0.3530,))])
    """

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class ToTensor:
    """A ``uint8`` image (HxW or HxWxC, array or tensor) to a float32 [C, H, W] tensor in
    [0, 1]; float images are only moved to channels-first."""

    def __call__(self, pic) -> Tensor:
        a = _arr(pic)
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 3:
            a = a.transpose(2, 0, 1)
        else:
            raise ValueError(f"ToTensor: expected an HxW or HxWxC image, got shape "
                             f"{list(a.shape)}")
        if a.dtype == np.uint8:
            return O.const(a.astype(np.float32) * np.float32(1 / 255))
        return O.const(np.ascontiguousarray(a, dtype=np.float32))

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel of a [..., C, H, W] float tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean, self.std = list(mean), list(std)
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std evaluated to zero ({self.std}), leading to "
                             f"division by zero")
        self.inplace = inplace

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point or x.ndim < 3:
            raise TypeError("Normalize: expected a float tensor [..., C, H, W] (use ToTensor "
                            "first)")
        c = x.shape[-3]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            raise ValueError(f"Normalize: {len(self.mean)} means / {len(self.std)} stds for "
                             f"{c} channels")
        d = x.dtype.np
        m = np.asarray(self.mean, d).reshape(-1, 1, 1)
        s = np.asarray(self.std, d).reshape(-1, 1, 1)
        if x.requires_grad:
            return (x - O.const(m)) / O.const(s)
        return O.const((_arr(x) - m) / s)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomCrop:
    """Crop a random ``size`` window (after optional ``padding``) from [..., H, W].

    Args:
        size: output (h, w), or one int for a square.
        padding: pixels added on each border first: int, (lr, tb) or (l, t, r, b).
        pad_if_needed: pad when the image is smaller than ``size``.
        fill: value for constant padding.
        padding_mode: ``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``.
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant"):
        self.size = (int(size), int(size)) if isinstance(size, numbers.Number) else \
            tuple(int(s) for s in size)
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"RandomCrop: unknown padding_mode {padding_mode!r}")

    def _pad(self, a: np.ndarray, left, top, right, bottom) -> np.ndarray:
        widths = [(0, 0)] * (a.ndim - 2) + [(top, bottom), (left, right)]
        if self.padding_mode == "constant":
            return np.pad(a, widths, constant_values=self.fill)
        return np.pad(a, widths, mode=self.padding_mode)

    def __call__(self, img):
        a = _arr(img)
        if self.padding is not None:
            p = self.padding
            p = (p, p, p, p) if isinstance(p, numbers.Number) else tuple(p)
            if len(p) == 2:
                p = (p[0], p[1], p[0], p[1])
            a = self._pad(a, *p)
        th, tw = self.size
        h, w = a.shape[-2:]
        if self.pad_if_needed and (h < th or w < tw):
            a = self._pad(a, max(0, tw - w), max(0, th - h), max(0, tw - w), max(0, th - h))
            h, w = a.shape[-2:]
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the "
                             f"input image size {(h, w)}")
        i = _randint(h - th + 1)
        j = _randint(w - tw + 1)
        return O.const(np.ascontiguousarray(a[..., i:i + th, j:j + tw]))

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Flip [..., H, W] left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        if _rand() < self.p:
            return O.const(np.ascontiguousarray(_arr(img)[..., ::-1]))
        return img if isinstance(img, Tensor) else O.const(np.asarray(img))

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Lambda:
    """Wrap a function as a transform."""

    def __init__(self, lambd: Callable):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, x):
        return self.lambd(x)

    def __repr__(self) -> str:
        return "Lambda()"
