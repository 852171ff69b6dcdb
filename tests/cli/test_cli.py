"""The `taiji` command: train (both modes) writes checkpoints, metrics and a plot; --resume
continues bitwise; Ctrl-C saves and exits cleanly; bad input is one line and a non-zero exit.

Runs `python -m taiji.cli` (the console script `taiji` calls the same `main`). Fashion-MNIST
comes from the real files when taiji finds them, else the sample committed in the package.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import taiji


def taiji_cli(*args: str, timeout: float = 120, cwd=None):
    return subprocess.run([sys.executable, "-m", "taiji.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def params(path) -> dict:
    return {k: v.numpy() for k, v in taiji.load(str(path))["model"].items()}


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_train_mlp_writes_checkpoints_metrics_and_plot(tmp_path, mode):
    ck, metrics, plot = tmp_path / "ck", tmp_path / "m.jsonl", tmp_path / "p.png"
    p = taiji_cli("train", "mlp", "--mode", mode, "--epochs", "2", "--limit", "512",
                  "--checkpoint-dir", str(ck), "--metrics", str(metrics), "--plot", str(plot))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "summary: model=mlp mode=" + mode in p.stdout and "steps/s=" in p.stdout
    assert "step" in p.stderr  # the tqdm progress bar
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert rows[1]["test_acc"] > 0.3
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("mlp-epoch001.safetensors", "mlp-epoch002.safetensors",
                 "mlp-last.safetensors"):
        assert (ck / name).is_file()
    assert set(params(ck / "mlp-last.safetensors")) >= {"fc1.weight", "fc3.bias"}


def test_resume_continues_bitwise(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["train", "mlp", "--epochs", "2", "--limit", "256", "--no-progress",
            "--mode", "jit"]
    p = taiji_cli(*args, "--checkpoint-dir", str(a))
    assert p.returncode == 0, p.stderr[-3000:]
    b.mkdir()
    shutil.copy(a / "mlp-epoch001.safetensors", b / "mlp-last.safetensors")
    p = taiji_cli(*args, "--checkpoint-dir", str(b), "--resume")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resumed from" in p.stdout
    want, got = params(a / "mlp-epoch002.safetensors"), params(b / "mlp-epoch002.safetensors")
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    ck = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "taiji.cli", "train", "linear", "--epochs",
                             "100000", "--limit", "256", "--no-progress", "--checkpoint-dir",
                             str(ck)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 60
        while not (ck / "linear-epoch001.safetensors").exists() and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "checkpoint saved" in err
    ckpt = taiji.load(str(ck / "linear-interrupted.safetensors"))
    assert ckpt["config"]["model"] == "linear"


def one_line_error(p):
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taiji: error:"), p.stderr
    return lines[0]


def test_unknown_model():
    assert "resnet" in one_line_error(taiji_cli("train", "resnet"))


def test_missing_data(tmp_path):
    line = one_line_error(taiji_cli("train", "mlp", "--data-dir", str(tmp_path / "nowhere")))
    assert "Fashion-MNIST" in line


def test_unwritable_checkpoint_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_line_error(taiji_cli("train", "linear", "--limit", "64", "--checkpoint-dir",
                                    str(blocker / "ck")))
    assert "not writable" in line


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(os.urandom(100))
    line = one_line_error(taiji_cli("train", "linear", "--limit", "64", "--resume", str(bad)))
    assert "corrupt" in line


def test_resume_missing_checkpoint(tmp_path):
    line = one_line_error(taiji_cli("train", "linear", "--limit", "64", "--checkpoint-dir",
                                    str(tmp_path), "--resume"))
    assert "no checkpoint" in line


def test_info_prints_versions():
    p = taiji_cli("info")
    assert p.returncode == 0, p.stderr
    for word in ("taiji", "numpy", "BLAS", "threads", "FashionMNIST", "devices"):
        assert word in p.stdout
    assert taiji.__version__ in p.stdout


def test_recommender_and_linear_train(tmp_path):
    p = taiji_cli("train", "recommender", "--epochs", "1", "--limit", "2000", "--no-progress",
                  "--plot", str(tmp_path / "r.png"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "test_auc=" in p.stdout and "popularity_auc=" in p.stdout
    p = taiji_cli("train", "linear", "--epochs", "2", "--limit", "512", "--no-progress",
                  "--mode", "jit")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "test_mse=" in p.stdout


def test_amp_flag_trains(tmp_path):
    for amp, mode in (("bf16", "eager"), ("fp16", "jit")):
        r = taiji_cli("train", "mlp", "--amp", amp, "--mode", mode, "--limit", "256",
                      "--epochs", "1", "--no-progress", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "summary: model=mlp" in r.stdout


def test_distributed_flag_runs_two_ranks(tmp_path):
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install taiji[dist])")
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun is not installed (apt-get install openmpi-bin)")
    r = taiji_cli("train", "mlp", "--distributed", "--limit", "256", "--epochs", "1",
                  "--no-progress", "--checkpoint-dir", str(tmp_path / "ck"), timeout=240,
                  cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("summary: model=mlp") == 1  # only rank 0 reports
    assert (tmp_path / "ck" / "mlp-last.safetensors").exists()


def test_launch_subcommand_dry_run(tmp_path):
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun is not installed (apt-get install openmpi-bin)")
    r = taiji_cli("launch", "-n", "2", "--dry-run", "script.py", "--x", "1", cwd=tmp_path)
    assert r.returncode == 0 and "mpirun" in r.stdout and "script.py --x 1" in r.stdout
