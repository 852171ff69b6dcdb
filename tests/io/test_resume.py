"""Exact resume: N steps, save, load in a new process, M steps == N+M uninterrupted steps."""
import os
import subprocess
import sys

import numpy as np
import pytest

import taiji

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import resume_script as R  # noqa: E402


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_in_new_process_is_bitwise_exact(tmp_path, workers):
    n, m = 10, 13  # 7 batches per epoch: the save is mid-epoch, the resume crosses epochs
    model, opt, sched, loader = R.build(workers)
    R.train(model, opt, sched, loader, n + m)
    want = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    model, opt, sched, loader = R.build(workers)
    R.train(model, opt, sched, loader, n)
    ckpt = tmp_path / "ckpt.safetensors"
    taiji.save(R.checkpoint(model, opt, sched, loader), ckpt)
    del loader

    out = tmp_path / "params.safetensors"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(HERE)), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, os.path.join(HERE, "resume_script.py"), str(ckpt),
                        str(m), str(out), str(workers)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    got = taiji.load(out)
    assert set(got) == set(want)
    for k in want:
        assert got[k].numpy().tobytes() == want[k].tobytes(), k
    # and training did move the parameters (the test is not vacuous)
    model0, *_ = R.build(workers)
    assert any(not np.array_equal(model0.state_dict()[k].numpy(), want[k]) for k in want)
