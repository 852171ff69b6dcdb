"""Signature keys, the bounded LRU of compiled programs, and the compile log."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

log = logging.getLogger("taiji.jit")


class config:
    """Process-wide jit settings (``TAIJI_LOG_COMPILES=1`` turns logging on at import)."""
    log_compiles: bool = os.environ.get("TAIJI_LOG_COMPILES", "") not in ("", "0")
    cache_size: int = int(os.environ.get("TAIJI_JIT_CACHE_SIZE", "32"))


def log_compile(msg: str) -> None:
    if config.log_compiles:
        if not log.handlers and not logging.getLogger().handlers:
            h = logging.StreamHandler()
            h.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            log.addHandler(h)
            log.setLevel(logging.INFO)
        log.warning(msg)


class LRU:
    """A bounded mapping; the least recently used entry is evicted first."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.data: OrderedDict = OrderedDict()
        self.evictions = 0

    def get(self, key):
        v = self.data.get(key)
        if v is not None:
            self.data.move_to_end(key)
        return v

    def put(self, key, value):
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.maxsize:
            self.data.popitem(last=False)
            self.evictions += 1

    def __len__(self):
        return len(self.data)

    def clear(self):
        self.data.clear()


def describe_change(old, new) -> str:
    """Why signature ``new`` missed the cache, relative to the most recent ``old`` one."""
    if old is None:
        return "first call"
    (otree, ospec, ostatic, ograd), (ntree, nspec, nstatic, ngrad) = old, new
    if otree != ntree:
        return f"argument structure changed: {otree} -> {ntree}"
    if ostatic != nstatic:
        return f"static arguments changed: {ostatic} -> {nstatic}"
    if ograd != ngrad:
        return f"grad mode changed: {ograd} -> {ngrad}"
    for i, (a, b) in enumerate(zip(ospec, nspec)):
        if a != b:
            return f"argument leaf {i} changed: {_fmt(a)} -> {_fmt(b)}"
    return "captured state changed (shape, dtype or .grad presence)"


def _fmt(spec) -> str:
    if spec[0] == "T":
        _, shape, dtype, rg = spec[:4]
        mod = spec[4].__module__.split(".")[0] if len(spec) > 4 else "numpy"
        where = f" ({mod} array)" if mod != "numpy" else ""  # a device array
        return f"{dtype.name}{list(shape)}" + (" requires_grad" if rg else "") + where
    return repr(spec[1])
