"""Each example in examples/ runs a short version (--limit, 1-2 epochs) and learns.

Fashion-MNIST examples use the real files when taiji finds them ($TAIJI_DATA, ~/.cache/taiji,
/usr/share/datasets/fashion-mnist) and otherwise the sample committed in the package.
"""
import math
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def run(name: str, *args: str, timeout: float = 120) -> str:
    p = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    return p.stdout


def floats(pattern: str, text: str) -> list:
    return [float(v) for v in re.findall(pattern, text)]


@pytest.mark.parametrize("name,args,chance", [
    ("mlp_pytorch_style.py", ["--epochs", "1", "--limit", "1000"], 10.0),
    ("mlp_jax_style.py", ["--epochs", "2", "--limit", "1000"], 10.0),
    ("cnn_pytorch_style.py", ["--epochs", "1", "--limit", "384"], 10.0),
    ("cnn_jax_style.py", ["--epochs", "1", "--limit", "384"], 10.0),
])
def test_fashion_mnist_examples_beat_chance(name, args, chance):
    out = run(name, *args)
    (acc,) = floats(r"Test Accuracy: ([\d.]+)%", out)
    assert acc > 2 * chance, out
    assert floats(r"steps/s: ([\d.]+)", out)[0] > 0


def test_mlp_jax_style_loss_decreases():
    out = run("mlp_jax_style.py", "--epochs", "2", "--limit", "640")
    losses = floats(r"train loss: ([\d.]+)", out)
    assert len(losses) == 2 and losses[1] < losses[0], out


@pytest.mark.parametrize("name", ["linear_regression_pytorch_style.py",
                                  "linear_regression_jax_style.py"])
def test_linear_regression_recovers_weights(name):
    out = run(name, "--epochs", "3", "--limit", "1000")
    mse = floats(r"MSE: ([\d.]+)", out)
    assert len(mse) == 3 and mse[-1] < mse[0] and mse[-1] < 0.1, out
    (w_err,) = floats(r"max \|w - w_true\|: ([\d.]+)", out)
    assert w_err < 0.2, out


@pytest.mark.parametrize("name", ["recommender_pytorch_style.py", "recommender_jax_style.py"])
def test_recommender_reports_auc(name):
    out = run(name, "--epochs", "2", "--limit", "3000")
    m = re.search(r"Test AUC: ([\d.]+) \(popularity baseline: ([\d.]+)\)", out)
    assert m, out
    auc, pop = float(m.group(1)), float(m.group(2))
    assert 0.5 < auc <= 1.0 and not math.isnan(pop), out
    losses = floats(r"(?:mean loss|train loss): ([\d.]+)", out)
    assert losses[-1] < losses[0], out
