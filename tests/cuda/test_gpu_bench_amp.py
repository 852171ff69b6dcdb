"""benchmarks/gpu_bench.py's AMP table on the CPU: its ratios, reuse of the first table's
float32 results, the time budget, and a quick dry run of the AMP contenders (taiji's float16
autocast + GradScaler eager and jit, PyTorch's AMP) so the GPU run cannot fail on them."""
from __future__ import annotations

import importlib.util
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import gpu_bench as G  # noqa: E402


def test_amp_table_ratios_and_notes():
    cases = [G.Case("mlp b512", "mlp", 512), G.Case("cnn b64", "cnn", 64)]
    rs = [G.Result("mlp b512", "taiji jit", 1000.0, 2.30),
          G.Result("mlp b512", "taiji amp jit", 1500.0, 2.31),
          G.Result("mlp b512", "taiji amp eager", 300.0, 2.31),
          G.Result("mlp b512", "pytorch eager", 800.0, 2.30),
          G.Result("mlp b512", "pytorch amp", 600.0, 2.32),
          G.Result("cnn b64", "taiji jit", 200.0, 2.3),
          G.Result("cnn b64", "taiji amp jit", note="failed: RuntimeError: boom"),
          G.Result("cnn b64", "pytorch amp", note=G.BUDGET_NOTE)]
    text = G.amp_table(rs, cases)
    mlp = next(ln for ln in text.splitlines() if ln.startswith("mlp b512"))
    assert "1,000.0/s" in mlp and "1,500.0/s" in mlp and "300.0/s" in mlp
    assert mlp.split()[-3:] == ["1.50x", "0.75x", "2.50x"]  # amp/fp32 taiji, torch; vs torch
    cnn = next(ln for ln in text.splitlines() if ln.startswith("cnn b64"))
    assert cnn.split()[-3:] == ["-", "-", "-"]
    assert "note: cnn b64 / taiji amp jit: failed: RuntimeError: boom" in text
    assert "time budget (--budget) was spent: cnn b64 / pytorch amp" in text
    assert "mlp b512: 1.0e-02" in text  # first-loss spread of the AMP contenders


def test_budget_skips_with_a_note():
    case = G.Case("mlp b64", "mlp", 64)
    out = G.run_case(case, "cpu", None, 0.1, 1, False, {}, names=("taiji jit",), deadline=0.0)
    assert out[0].note == G.BUDGET_NOTE and out[0].steps_per_s is None


def test_quick_amp_dry_run_on_cpu(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert G.main(["--device", "cpu", "--quick", "--no-cnn", "--only", "taiji jit",
                   "taiji amp jit", "taiji amp eager", "pytorch eager", "pytorch amp",
                   "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "AMP: float16 autocast + GradScaler" in text
    amp_part = text[text.index("AMP: float16"):]
    row = next(ln for ln in amp_part.splitlines() if ln.startswith("mlp b64")).split()
    assert "-" not in row[2:4]  # taiji fp32 jit and taiji amp jit were measured
    data = json.loads(out.read_text())
    got = {r["contender"]: r for r in data["results"]}
    assert data["amp_cases"] == ["mlp b64"]
    for name in ("taiji amp jit", "taiji amp eager"):
        assert got[name]["steps_per_s"] > 0, got[name]
        # float16 products: the first loss is the float32 one to float16 rounding
        assert abs(got[name]["first_loss"] - got["taiji jit"]["first_loss"]) < 1e-2
    if importlib.util.find_spec("torch") is not None:
        assert got["pytorch amp"]["steps_per_s"] > 0, got["pytorch amp"]
