"""The disk cache of fused kernels: a second process loads the first one's machine code and
computes the same bits; broken cache files are ignored, never crash a run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from taiji.compiler import fusion, kernel_cache

pytestmark = pytest.mark.skipif(not fusion._numba_available(), reason="numba is not installed")

SCRIPT = r"""
import json, sys
import numpy as np
import taiji
from taiji import nn, optim
from taiji.compiler import fusion, kernel_cache
taiji.manual_seed(0)
model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
opt = optim.Adam(model.parameters(), lr=1e-2)

@taiji.jit
def step(x, y):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss

rng = np.random.default_rng(0)
x = taiji.tensor(rng.standard_normal((32, 20)).astype(np.float32))
y = taiji.tensor(rng.integers(0, 3, 32))
step(x, y)                      # NumPy tier while kernels compile (or load)
step(x, y)                      # .grad exists now: the steady-state variant compiles
assert fusion.wait_for_kernels(300)
regions = [e.params["region"] for e in step.lower(x, y).graph.eqns if e.prim.name == "fused"]
# (a region that writes over an input runs as its in-place variant)
origins = sorted({r.kernel_origin for g in regions for r in (g, *g._variants.values())} - {None})
losses = [step(x, y).item() for _ in range(3)]
w = model[0].weight.detach().numpy()
assert fusion.wait_for_kernels(300)
print(json.dumps({"origins": origins, "losses": losses, "w": w.tobytes().hex(),
                  "stats": kernel_cache._stats}))
"""


def _run(tmp_path):
    env = dict(os.environ, TAIJI_CACHE_DIR=str(tmp_path), TAIJI_KERNEL_CACHE="1",
               TAIJI_FUSION="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_kernels_from_disk_with_identical_results(tmp_path):
    first = _run(tmp_path)
    assert first["origins"] == ["jit"]
    kdir = tmp_path / "kernels"
    modules = sorted(p.name for p in kdir.glob("tk_*.json")) if kdir.exists() else []
    if not modules:
        # the build needs a C compiler and Python's headers (numba.pycc links a C wrapper)
        pytest.skip("no kernel module was built here (no C compiler or Python headers?)")
    assert not list(kdir.glob(".request-*")) and not list(kdir.glob(".build-*"))
    index = json.loads((kdir / modules[0]).read_text())
    assert (kdir / index["module"]).exists() and index["kernels"]
    second = _run(tmp_path)
    assert second["origins"] == ["disk"] and second["stats"]["loaded"] > 0
    assert second["losses"] == first["losses"]       # bit for bit: same floats
    assert second["w"] == first["w"]


def test_broken_cache_files_are_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("TAIJI_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kernel_cache, "enabled", True)
    kernel_cache.clear_memory_index()
    kdir = tmp_path / "kernels"
    kdir.mkdir()
    (kdir / "tk_a.json").write_text("{not json")
    (kdir / "tk_b.json").write_text(json.dumps({"module": "tk_b.so", "kernels": {"k1": "kernel_0"}}))
    (kdir / "tk_b.so").write_bytes(b"\x7fELF truncated")
    try:
        assert kernel_cache.load("k1") is None      # a module that will not import
        assert kernel_cache.load("nope") is None
    finally:
        kernel_cache.clear_memory_index()


def test_key_depends_on_source_and_signature():
    a = np.zeros((4, 5), np.float32)
    sig = kernel_cache.signature([a, np.zeros(1, np.float64), np.zeros(3, bool)])
    assert sig == "void(i8, i8, f4[:, ::1], f8[::1], b1[::1])"
    assert kernel_cache.key("src", sig) != kernel_cache.key("src2", sig)
    assert kernel_cache.key("src", sig) != kernel_cache.key("src", sig.replace("f8", "f4"))
