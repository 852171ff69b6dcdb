"""`taiji bench --quick`: the side-by-side suite (benchmarks/suite.py) runs end to end with
taiji and NumPy only, skips the peers with a visible note when they are missing, and writes
JSON of the documented shape. A smoke test, never a timing test: no speed is asserted.

PyTorch and JAX are hidden from the run by stub packages that raise ImportError, so the test
neither needs them nor pays for importing them; background numba kernels are turned off
(TAIJI_FUSION=0) so the jit contender costs seconds, not minutes.
"""
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (ROOT / "benchmarks" / "suite.py").is_file(),
                                reason="needs the source checkout's benchmarks/")

TAIJI_AND_NUMPY = ("numpy", "taiji eager", "taiji jit")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture
def no_peers(tmp_path):
    """A PYTHONPATH entry where `import torch` / `import jax` fail as if not installed."""
    stubs = tmp_path / "stubs"
    for name in ("torch", "jax"):
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(
            f"raise ImportError('{name} hidden by test_bench', name='{name}')\n")
    return str(stubs)


def test_bench_quick_taiji_and_numpy(tmp_path, no_peers):
    out = tmp_path / "bench.json"
    env = dict(os.environ, TAIJI_FUSION="0",
               PYTHONPATH=os.pathsep.join([no_peers, os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "taiji.cli", "bench", "--quick",
                        "--workloads", "mlp", "--batches", "64",
                        "--only", *TAIJI_AND_NUMPY, "pytorch eager", "jax jit",
                        "--json", str(out)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    # the missing peers are skipped with a note that says how to get them
    assert "note: skipping pytorch eager: torch is not installed" in p.stdout
    assert "note: skipping jax jit: jax is not installed" in p.stdout
    assert "pip install -e .[bench]" in p.stdout
    assert "roofline:" in p.stdout and "taiji jit:" in p.stdout

    data = json.loads(out.read_text())
    assert set(data) >= {"meta", "roofline", "results", "targets", "summary_markdown"}
    assert data["meta"]["quick"] is True
    # the machine class is on record: ratios move with it
    assert isinstance(data["meta"]["cpu"], str) and data["meta"]["cpu"]
    assert f"CPUs ({data['meta']['cpu']})" in p.stdout
    assert _positive(data["roofline"]["gflops"])
    [res] = data["results"]
    assert res["name"] == "mlp/train/b64" and res["kind"] == "train" and res["batch"] == 64
    assert res["unit"] == "steps/s" and _positive(res["flops_per_step"])
    assert set(res["contenders"]) == set(TAIJI_AND_NUMPY)
    assert set(res["skipped"]) == {"pytorch eager", "jax jit"}
    for name, c in res["contenders"].items():
        for key in ("steps_per_s", "items_per_s", "gflops", "pct_peak", "first_call_s",
                    "ready_s"):
            assert _positive(c[key]), (name, key, c[key])
        assert len(c["samples"]) == 1 and c["spread"] >= 0
        assert math.isfinite(c["first_value"]) and math.isfinite(c["second_value"])  # losses
        rss = c["rss"]  # measured in a fresh process per contender
        assert _positive(rss["peak_rss_mib"]) and rss["peak_rss_mib"] >= rss["base_rss_mib"]
        assert _positive(rss["first_call_s"])
    # each taiji mode against each peer that ran (here only NumPy)
    assert set(res["ratios"]) == {"taiji eager", "taiji jit"}
    for mode, r in res["ratios"].items():
        assert set(r) == {"numpy"} and _positive(r["numpy"]), (mode, r)
    # every target is listed; those needing a missing peer say "not measured" (None)
    by_name = {t["target"]: t for t in data["targets"]}
    assert by_name["mlp/train/b64: taiji jit / pytorch eager"]["met"] is None
    first = [t for n, t in by_name.items() if "first compile" in n]
    assert len(first) == 1 and _positive(first[0]["value"]) and first[0]["met"] in (True, False)
    assert "| mlp/train/b64 |" in data["summary_markdown"]


def test_mlp_train_script_is_the_suite():
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mlp_train.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "--only" in p.stdout and "--batches" in p.stdout


def test_bench_rejects_an_unknown_contender(tmp_path):
    p = subprocess.run([sys.executable, "-m", "taiji.cli", "bench", "--only", "tensorflow"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and "unknown contender" in p.stderr



SETTLE = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import _harness
idle = _harness.settle()
stop = time.perf_counter() + 0.15
def spin():
    while time.perf_counter() < stop:
        pass
t = threading.Thread(target=spin)
t.start()
waited = _harness.settle(limit=2.0)
t.join()
print(idle, waited)
"""


def test_settle_waits_for_a_spinning_thread_and_not_when_idle():
    """The suite starts each contender once the previous one's worker threads stop spinning
    (OpenBLAS's spin ~0.1 s after their last call): a thread spinning for 0.15 s holds
    ``settle`` until it stops; an idle process passes at once. (A fresh process: this one's
    own threads may be busy.)"""
    p = subprocess.run([sys.executable, "-c", SETTLE, str(ROOT / "benchmarks")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    idle, waited = map(float, p.stdout.split())
    assert idle < 0.1, idle  # one or two windows
    assert 0.12 <= waited < 1.0, waited


def test_step_profile_stamps_the_native_segments():
    """benchmarks/step_profile.py (a developer's tool): a compiled step's native build with a
    cycle-counter stamp after each line; its table names the segments' products and the
    Python between them, with times."""
    pytest.importorskip("numba")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_profile.py"),
                        "--case", "mlp/train/b32", "--steps", "5", "--min-us", "0",
                        "--data-limit", "512"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("mlp/train/b32: ") and "steps/s" in lines[0], lines[:3]
    rows = [ln.split(None, 2) for ln in lines[1:-1]]
    assert all(float(r[0]) >= 0 and float(r[1]) >= 0 for r in rows), rows
    what = [r[2] for r in rows]
    assert any(w.startswith("_seg0: ") and "gemm_float32(" in w for w in what), what
    assert any(w.startswith("py: ") for w in what), what
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_profile.py"),
                        "--case", "mlp/infer/b1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "expected a training case" in p.stderr
