"""benchmarks/gpu_bench.py's own logic on the CPU: the table, the bar's verdicts, skipping a
missing peer, and a quick dry run of the whole script (the GPU run is benchmarks/gpu.sh)."""
from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import gpu_bench as G  # noqa: E402


def test_table_ratios_and_verdicts():
    cases = [G.Case("mlp b64", "mlp", 64), G.Case("cnn b64", "cnn", 64)]
    rs = [G.Result("mlp b64", "taiji jit", 3000.0, 2.3),
          G.Result("mlp b64", "jax jit", 1000.0, 2.3),
          G.Result("mlp b64", "taiji eager", 500.0, 2.3),
          G.Result("mlp b64", "pytorch eager", 600.0, 2.3),
          G.Result("cnn b64", "taiji jit", 900.0, 2.3), G.Result("cnn b64", "jax jit", 1000.0),
          G.Result("cnn b64", "pytorch eager", note="skipped: torch is not installed")]
    text, ok = G.table(rs, cases, ["header"])
    lines = text.splitlines()
    mlp = next(ln for ln in lines if ln.startswith("mlp b64"))
    assert "3.00x" in mlp and "0.83x" in mlp
    assert "jit PASS (>= 2.0x)" in mlp and "eager FAIL (>= 1.0x)" in mlp
    cnn = next(ln for ln in lines if ln.startswith("cnn b64"))
    assert "0.90x" in cnn and "jit FAIL (>= 1.0x)" in cnn and "eager" not in cnn.split("x")[-1]
    assert not ok
    rs2 = [r for r in rs if r.contender != "taiji eager" and r.case == "mlp b64"]
    assert G.table(rs2, cases[:1], [])[1]


def test_quick_dry_run_on_cpu(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert G.main(["--device", "cpu", "--quick", "--no-cnn", "--only", "taiji jit",
                   "taiji eager", "cupy (hand)", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "quick dry run" in text and "mlp b64" in text
    data = json.loads(out.read_text())
    got = {r["contender"]: r for r in data["results"]}
    assert got["taiji jit"]["steps_per_s"] > 0 and got["taiji eager"]["steps_per_s"] > 0
    # every contender starts from the same weights and batch: the same first loss
    assert abs(got["taiji jit"]["first_loss"] - got["cupy (hand)"]["first_loss"]) < 1e-5


def test_missing_gpu_is_reported():
    import taiji
    if taiji.cuda.is_available():
        pytest.skip("a GPU is available here")
    assert G.main(["--quick"]) == 2


def test_profile_dry_run_on_cpu(capsys):
    """benchmarks/gpu_profile.py runs its step and eager profiles on the CPU (no kernels
    table there: it needs a GPU that PyTorch sees, and says so)."""
    import re
    import gpu_profile as P
    assert P.main(["--device", "cpu", "--quick", "--cases", "mlp b8", "--kernels"]) == 0
    out = capsys.readouterr().out
    assert "== mlp b8" in out and "kernels: not profiled" in out
    step = float(re.search(r"jit step\s+([\d.]+) us", out).group(1))
    eager = float(re.search(r"eager step\s+([\d.]+) us", out).group(1))
    assert step > 0 and eager > 0
    assert "ncalls" in out  # the eager host profile's table
