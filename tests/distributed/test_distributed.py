"""2-rank tests: each runs tests/distributed/_worker.py under the launcher (mpirun) with a
timeout and checks its output. Skipped, with the reason, without mpi4py or mpirun."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import taiji
import taiji.distributed as dist
from taiji.distributed.launch import main as launch_main, mpirun_command

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_worker.py")
TIMEOUT = 120

needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or shutil.which("mpirun") is None,
    reason="needs mpi4py and mpirun (pip install taiji[dist]; apt-get install openmpi-bin)")


def run(*args, n=2):
    cmd = [sys.executable, "-m", "taiji.distributed.launch", "-n", str(n), WORKER, *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    return p.returncode, p.stdout + p.stderr, time.perf_counter() - t0


def ok(name, *args, pre=()):
    rc, out, _ = run(*pre, name, *args)
    assert rc == 0, out[-4000:]
    for r in range(2):
        assert f"OK {name} rank {r}" in out, out[-4000:]
    return out


@needs_mpi
def test_collectives_match_numpy_and_have_gradients():
    ok("collectives")


@needs_mpi
def test_ddp_equals_single_process_eager_jit_and_no_sync():
    ok("ddp")


@needs_mpi
def test_unused_parameter_error_names_parameters_and_ranks():
    out = ok("unused")
    assert "'b.weight' (no gradient on rank 0)" in out
    assert "'a.weight' (no gradient on rank 1)" in out
    assert "find_unused_parameters=True" in out


@needs_mpi
def test_mismatched_shapes_name_ranks_and_shapes():
    out = ok("mismatch")
    assert "rank 0: shape [2, 3]" in out and "rank 1: shape [3, 3]" in out


@needs_mpi
def test_a_failing_rank_takes_the_job_down_quickly():
    rc, out, secs = run("fail")
    assert rc != 0
    assert "rank 1 failed: ValueError: boom on purpose" in out
    assert secs < 60


@needs_mpi
def test_checkpoint_from_two_ranks_resumes_on_one(tmp_path):
    import sys as _s
    _s.path.insert(0, HERE)
    from _common import mlp, params, reference
    path = str(tmp_path / "ckpt.safetensors")
    ok("ckpt", path)
    state = taiji.load(path)
    model = mlp()
    model.load_state_dict(state["model"])
    opt = taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.load_state_dict(state["opt"])
    reference(3, model, opt, start=2)  # one more step, now on a world of one
    ref, _ = reference(3)
    for a, b in zip(params(model), params(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_world_of_one_without_init():
    assert not dist.is_initialized()
    assert dist.get_rank() == 0 and dist.get_world_size() == 1
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.all_reduce(taiji.ones(2))


def test_nccl_says_cuda_is_missing():
    with pytest.raises(ValueError, match="unknown backend"):
        dist.init_process_group(backend="gloo2")
    if dist.is_nccl_available():
        pytest.skip("NCCL is available here (tests/cuda/test_nccl_gpu.py runs it)")
    with pytest.raises(RuntimeError, match="CUDA/NCCL is not available") as ei:
        dist.init_process_group(backend="nccl")
    assert "backend='mpi'" in str(ei.value) and not dist.is_initialized()


# ---------------------------------------------------------------- NCCL logic, two ranks
# The 'nccl' backend on the fake CUDA device with a fake NCCL whose data moves through MPI
# (tests/cuda/fake_nccl.py): rank/size from MPI, the unique-id exchange, counts, dtypes, ops,
# gradients, jit and DDP, as a GPU run would exercise them.

@needs_mpi
@pytest.mark.parametrize("scenario", ["collectives", "ddp", "unused"])
def test_nccl_backend_on_two_ranks_with_a_fake_nccl(scenario):
    out = ok(scenario, pre=("--fake-nccl",))
    if scenario == "unused":
        assert "'b.weight' (no gradient on rank 0)" in out


@needs_mpi
def test_cuda_tensors_on_the_mpi_backend_are_a_clear_error():
    out = ok("wrong_device")
    assert "the 'mpi' process group moves host (CPU) tensors, but all_reduce got a tensor " \
           "on cuda:0" in out
    assert "DistributedDataParallel (parameter 'weight') got a tensor on cuda:0" in out


def test_launcher_command_line(capsys):
    if shutil.which("mpirun") is None:
        with pytest.raises(FileNotFoundError, match="mpirun"):
            mpirun_command(2, ["x.py"])
        return
    cmd = mpirun_command(2, ["train.py", "--lr", "0.1"])
    assert cmd[1:3] == ["-n", "2"] and cmd[-3:] == ["train.py", "--lr", "0.1"]
    assert "--worker" in cmd
    assert launch_main(["-n", "3", "--dry-run", "t.py"]) == 0
    assert " -n 3 " in capsys.readouterr().out


def test_compiler_never_merges_or_folds_collectives():
    from taiji.distributed._prims import all_reduce_p, all_gather_p
    assert all_reduce_p.effectful and all_gather_p.effectful
