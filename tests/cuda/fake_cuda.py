"""A fake CUDA device for testing the device plumbing on a machine without a GPU.

Its arrays are NumPy memory with a distinct type, ``FakeCudaArray``, that (like CuPy's)
refuses to compute with host arrays; its array module is a thin namespace over NumPy whose
functions return ``FakeCudaArray``s. Registered as the 'cuda' backend by the ``fake_cuda``
fixture (tests/cuda/conftest.py), it makes ``device='cuda'``, ``.to('cuda')``, device
mixing errors, ``Module.to``, optimizer state placement and jit's device programs
(including an emulation of CUDA-graph replay) run for real on the CPU.
"""
from __future__ import annotations

import types

import numpy as np

from taiji.backends import numpy_backend
from taiji.backends.numpy_backend import Backend


def _refuse_host(items) -> None:
    """CuPy raises on host arrays mixed into device calls: so does the fake."""
    for x in items:
        if type(x) is np.ndarray:
            raise TypeError(f"Unsupported type {np.ndarray} (a host array given to the fake "
                            f"CUDA device)")
        if isinstance(x, (list, tuple)):
            _refuse_host(x)


def _unwrap(x):
    if isinstance(x, FakeCudaArray):
        return x.view(np.ndarray)
    if isinstance(x, tuple):
        return tuple(_unwrap(v) for v in x)
    if isinstance(x, list):
        return [_unwrap(v) for v in x]
    return x


def _wrap(x):
    if type(x) is np.ndarray:
        return x.view(FakeCudaArray)
    if isinstance(x, np.generic):  # CuPy returns 0-d arrays where NumPy returns scalars
        return np.asarray(x).view(FakeCudaArray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


CAPTURING = [False]  # set while FakeCapturer records a program, as a capturing stream is


def _refuse_while_capturing() -> None:
    """CuPy refuses device-to-host reads while its stream is captured: so does the fake."""
    if CAPTURING[0]:
        raise RuntimeError("the current stream is capturing, so D2H transfers are disallowed")


class FakeCudaArray(np.ndarray):
    """An array on the fake GPU (reading one's values on the host, ``bool(a)``, ``float(a)``,
    ``a.item()``, ``a.tolist()``, is refused during a graph capture, as in CuPy)."""

    def __bool__(self):
        _refuse_while_capturing()
        return super().__bool__()

    def __float__(self):
        _refuse_while_capturing()
        return super().__float__()

    def __int__(self):
        _refuse_while_capturing()
        return super().__int__()

    def __index__(self):
        _refuse_while_capturing()
        return super().__index__()

    def item(self, *args):
        _refuse_while_capturing()
        return super().item(*args)

    def tolist(self):
        _refuse_while_capturing()
        return super().tolist()

    def __getitem__(self, idx):
        return _wrap(super().__getitem__(idx))  # x[()] is a 0-d array, as in CuPy

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(inputs)
        if out is not None:
            _refuse_host(out)
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        res = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        if method == "at":
            return None
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(res)

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host(args)
        _refuse_host(kwargs.values())
        res = func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        out = kwargs.get("out")
        if isinstance(out, FakeCudaArray):
            return out
        return _wrap(res)


_CREATION = {"asarray", "array", "asanyarray", "ascontiguousarray", "seterr", "dtype",
             "result_type", "broadcast_shapes"}


class _Ufunc:
    """A NumPy ufunc that refuses host arrays (methods such as ``.at`` go to NumPy, which
    dispatches them to FakeCudaArray.__array_ufunc__)."""

    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        _refuse_host(args)
        return _wrap(self._uf(*args, **kwargs))

    def __getattr__(self, name):
        return getattr(self._uf, name)


class _Namespace(types.SimpleNamespace):
    """NumPy's namespace whose functions return FakeCudaArrays and refuse host arrays."""

    def __init__(self, mod, name):
        super().__init__()
        object.__setattr__(self, "_mod", mod)
        object.__setattr__(self, "__name__", name)

    def __getattr__(self, name):
        attr = getattr(self._mod, name)
        if isinstance(attr, types.ModuleType):
            wrapped = _Namespace(attr, f"{self.__name__}.{name}")
        elif isinstance(attr, np.ufunc):
            wrapped = _Ufunc(attr)
        elif isinstance(attr, type) or not callable(attr):
            wrapped = attr  # dtypes (xp.float32, xp.uint32), constants (xp.nan)
        else:
            def wrapped(*args, _fn=attr, _name=name, **kwargs):
                if _name not in _CREATION:
                    _refuse_host(args)
                return _wrap(_fn(*args, **kwargs))
            wrapped.__name__ = name
        object.__setattr__(self, name, wrapped)
        return wrapped


FAKE_XP = _Namespace(np, "fakecupy")


class FakeCapturer:
    """Emulates CUDA-graph capture and replay: capture records the program without running
    it (the arrays the graph will write are allocated then), and each replay computes into
    exactly those arrays, as a real graph writes the addresses recorded at capture."""

    def __init__(self, backend):
        self.backend = backend
        self.replays = 0

    def warmup(self, fn, args):
        return fn(*args)

    def capture(self, fn, args):
        be = self.backend
        if be.fail_capture:
            raise RuntimeError(be.fail_capture)
        be.captures += 1
        probe_args = [a.copy() for a in args]
        CAPTURING[0] = True
        try:
            probe = list(fn(*probe_args))  # (shapes only: computed on copies, then dropped)
        finally:
            CAPTURING[0] = False
        outs = []
        for r in probe:
            j = next((j for j, a in enumerate(probe_args) if r is a), None)
            outs.append(args[j] if j is not None else FAKE_XP.empty(r.shape, dtype=r.dtype))

        def replay():
            self.replays += 1
            be.replays += 1
            res = fn(*args)
            for o, r in zip(outs, res):
                if o is not r:
                    np.copyto(_unwrap(o), _unwrap(r))
        return outs, replay


class FakeCudaBackend(Backend):
    """The 'cuda' backend of the fake device (see the module docstring)."""

    array_types = (FakeCudaArray,)

    def __init__(self):
        super().__init__("cuda", FAKE_XP)
        self.syncs = 0
        self.captures = 0
        self.replays = 0
        self.fail_capture: str | None = None  # set: graph capture raises this message
        self.tf32 = None

    def owns(self, a) -> bool:
        return type(a) is FakeCudaArray

    def asarray(self, data, dtype=None):
        if type(data) is FakeCudaArray:
            return data if dtype is None or data.dtype == dtype else data.astype(dtype)
        return np.array(_unwrap(data), dtype=dtype, copy=True).view(FakeCudaArray)  # upload

    def to_host(self, a) -> np.ndarray:
        _refuse_while_capturing()
        return np.array(_unwrap(a), copy=True)

    def device_name(self, a) -> str:
        return "cuda:0"

    def erf(self, x):
        return _wrap(numpy_backend.erf(_unwrap(x)))

    def add_at(self, out, index, src) -> None:
        _refuse_host([out, index, src])
        np.add.at(_unwrap(out), _unwrap(index), _unwrap(src))

    def as_strided(self, x, shape, strides):
        return _wrap(np.lib.stride_tricks.as_strided(_unwrap(x), shape=shape, strides=strides,
                                                     writeable=False))

    def copyto(self, dst, src) -> None:
        _refuse_host([dst, src])
        np.copyto(_unwrap(dst), _unwrap(src))

    def synchronize(self, index=None) -> None:
        self.syncs += 1

    def device_count(self) -> int:
        return 1

    def current_device(self) -> int:
        return 0

    def set_device(self, index: int) -> None:
        if index != 0:
            raise RuntimeError(f"the fake CUDA device has one GPU, got index {index}")

    def get_device_name(self, index=None) -> str:
        return "Fake CUDA device (NumPy)"

    def set_allow_tf32(self, allow: bool) -> None:
        self.tf32 = allow

    def graph_capturer(self):
        return FakeCapturer(self)
