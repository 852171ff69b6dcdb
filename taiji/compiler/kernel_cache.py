"""A disk cache of fused-region kernels, so a second process starts with machine code.

numba's own cache (``cache=True``) stores pickles, which taiji never loads. Instead, once a
program's kernels are compiled (in memory, on the background thread), their sources are
compiled ahead of time into one CPython extension module with numba's AOT compiler
(``numba.pycc``: the same LLVM pipeline, for this host CPU, without fast-math) and written
to the cache directory with a JSON index. A later process imports the module (a plain
extension-module import) and uses its functions directly; those calls are also cheaper than
a JIT dispatch (no type dispatch). Bit-for-bit the same results: the kernels hold only
IEEE-exact operations.

Keys cover the kernel source, the argument types, and the numba version, host CPU name and
feature set, and Python version, so a module is only ever loaded where it was built for.
Building needs a C compiler (pycc links a small C wrapper); without one, or with pycc
missing from numba, the cache is skipped and kernels compile in memory as before.

    TAIJI_CACHE_DIR     where the cache lives (default: $XDG_CACHE_HOME/taiji or ~/.cache/taiji)
    TAIJI_KERNEL_CACHE  "0" turns the disk cache off
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import warnings

import numpy as np

enabled = os.environ.get("TAIJI_KERNEL_CACHE", "1") != "0"
_lock = threading.Lock()
_index: dict | None = None  # key -> (module file, exported name)
_loaded: dict = {}          # module file -> module
_stats = {"loaded": 0, "built": 0, "failed": 0}
_broken = False             # building failed once (no compiler): stop trying


def cache_dir() -> str:
    """The directory holding cached kernel modules."""
    root = os.environ.get("TAIJI_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        root = os.path.join(base, "taiji")
    return os.path.join(root, "kernels")


def _environment() -> str:
    import llvmlite.binding as ll
    import numba
    return "|".join([numba.__version__, ll.get_host_cpu_name(),
                     ll.get_host_cpu_features().flatten(), sys.version, np.__version__])


_ENV: str | None = None


def signature(arrays) -> str:
    """numba signature of a kernel called as ``kernel(n, last, *arrays)``."""
    codes = {"float32": "f4", "float64": "f8", "bool": "b1"}
    parts = ["i8", "i8"]
    for a in arrays:
        dims = [":"] * (a.ndim - 1) + ["::1"]
        parts.append(f"{codes[a.dtype.name]}[{', '.join(dims)}]")
    return f"void({', '.join(parts)})"


def key(source: str, sig: str) -> str:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return hashlib.sha256("\0".join([source, sig, _ENV]).encode()).hexdigest()[:24]


def _read_index() -> dict:
    """Every cached kernel's (module file, exported name), from the modules' JSON files."""
    global _index
    if _index is None:
        _index = {}
        d = cache_dir()
        if os.path.isdir(d):
            for f in os.listdir(d):
                if not f.endswith(".json"):
                    continue
                try:
                    with open(os.path.join(d, f)) as fh:
                        entries = json.load(fh)
                    for k, name in entries["kernels"].items():
                        _index[k] = (entries["module"], name)
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a partial or foreign file: ignore it
    return _index


def load(k: str):
    """The cached kernel for key ``k``, or None."""
    if not enabled:
        return None
    with _lock:
        hit = _read_index().get(k)
        if hit is None:
            return None
        mod_file, name = hit
        mod = _loaded.get(mod_file)
        if mod is None:
            path = os.path.join(cache_dir(), mod_file)
            modname = mod_file.split(".")[0]
            try:
                spec = importlib.util.spec_from_file_location(modname, path)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
            except Exception:  # missing, truncated, or built for another interpreter
                _index.pop(k, None)
                return None
            _loaded[mod_file] = mod
        _stats["loaded"] += 1
        return getattr(mod, name, None)


def build(items: list) -> bool:
    """Compile ``items`` — (key, source, signature) — into one extension module in the cache
    directory. Written under a temporary name and renamed, so a reader never sees half a
    file. Returns whether it worked."""
    global _broken
    if not enabled or _broken or not items:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycc is deprecated in numba; it still works
            from numba.pycc import CC
            from numba.pycc import compiler as pycc_compiler
    except Exception:
        _broken = True
        return False
    d = cache_dir()
    os.makedirs(d, exist_ok=True)
    modname = "tk_" + hashlib.sha256("".join(k for k, _, _ in items).encode()).hexdigest()[:20]
    tmp = tempfile.mkdtemp(prefix=".build-", dir=d)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc = CC(modname)
            cc.output_dir = tmp
            cc.target_cpu = "host"  # the key pins the CPU: vectorise as the JIT does
            cc.verbose = False
            names = {}
            for i, (k, source, sig) in enumerate(items):
                ns: dict = {"_noop": _noop}
                # the source's @njit(...) line becomes a no-op: pycc compiles the function
                exec(compile(source.replace("@njit(", "@_noop(", 1), "<taiji fused kernel>",
                             "exec"), ns)  # noqa: S102 - our own generated source
                names[k] = f"kernel_{i}"
                cc.export(names[k], sig)(ns["kernel"])
            old = pycc_compiler.Flags
            pycc_compiler.Flags = _numpy_error_flags(old)  # x / 0 -> inf, as in the JIT
            try:
                cc.compile()
            finally:
                pycc_compiler.Flags = old
        ext = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        mod_file = modname + ext
        os.replace(os.path.join(tmp, mod_file), os.path.join(d, mod_file))
        index_tmp = os.path.join(tmp, "index.json")
        with open(index_tmp, "w") as fh:
            json.dump({"module": mod_file, "kernels": names}, fh)
        os.replace(index_tmp, os.path.join(d, modname + ".json"))
        with _lock:
            for k in names:
                _read_index()[k] = (mod_file, names[k])
        _stats["built"] += 1
        _prune(d)
        return True
    except Exception as exc:  # no C compiler, no Python headers, a full disk: no cache
        _stats["failed"] += 1
        _stats["error"] = f"{type(exc).__name__}: {exc}"
        _broken = True
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_builders: list = []  # child processes building modules
submitted: set = set()  # keys this process has asked a builder for (not asked twice)


def build_in_background(items: list) -> None:
    """Build ``items`` into the cache in a separate process, so this one neither waits for
    the C compiler nor holds up its exit (the child finishes on its own)."""
    items = [i for i in items if i[0] not in submitted]
    if not enabled or _broken or not items:
        return
    submitted.update(i[0] for i in items)
    d = cache_dir()
    try:
        os.makedirs(d, exist_ok=True)
        fd, spec = tempfile.mkstemp(prefix=".request-", suffix=".json", dir=d)
        with os.fdopen(fd, "w") as fh:
            json.dump([list(i) for i in items], fh)
        env = dict(os.environ, TAIJI_CACHE_DIR=os.path.dirname(d))
        _builders.append(subprocess.Popen(
            [sys.executable, "-m", "taiji.compiler.kernel_cache", spec], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
    except OSError:
        pass  # an unwritable cache directory: run without a cache


def wait(timeout: float | None = None) -> bool:
    """Wait for this process's background builds (benchmarks: a quiet machine)."""
    ok = True
    for p in list(_builders):
        try:
            p.wait(timeout)
            _builders.remove(p)
        except subprocess.TimeoutExpired:
            ok = False
    return ok


def _main(argv) -> int:
    """``python -m taiji.compiler.kernel_cache REQUEST.json``: build one module."""
    with open(argv[0]) as fh:
        items = [tuple(i) for i in json.load(fh)]
    os.unlink(argv[0])
    ok = build(items)
    if not ok:
        print(_stats.get("error", "kernel cache build failed"), file=sys.stderr)
    return 0 if ok else 1


MAX_MODULES = 128


def _prune(d: str) -> None:
    """Keep the newest MAX_MODULES modules (one per compiled program)."""
    mods = sorted((f for f in os.listdir(d) if f.startswith("tk_") and f.endswith(".json")),
                  key=lambda f: os.path.getmtime(os.path.join(d, f)))
    for f in mods[:-MAX_MODULES]:
        stem = f[:-len(".json")]
        for g in os.listdir(d):
            if g.startswith(stem):
                try:
                    os.unlink(os.path.join(d, g))
                except OSError:
                    pass


def _noop(*args, **kwargs):
    return lambda f: f


def _numpy_error_flags(base):
    """pycc's compile flags with NumPy's error model (the JIT kernels' ``error_model``)."""
    class NumpyErrorFlags(base):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.error_model = "numpy"
    return NumpyErrorFlags


def clear_memory_index() -> None:
    """Forget what this process read from the index (tests point TAIJI_CACHE_DIR elsewhere)."""
    global _index
    with _lock:
        _index = None
        _loaded.clear()


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
