"""The 'nccl' backend on a real GPU: a 1-rank NCCL group (CuPy's NCCL, created locally, no MPI)
runs the collectives and a DistributedDataParallel training step, eager and under taiji.jit,
which must equal plain single-GPU training. Marked ``cuda``; skipped, with the reason, where
CUDA, CuPy or the NCCL library is missing. benchmarks/gpu.sh runs this file as its own step
and says whether NCCL ran."""
from __future__ import annotations

import numpy as np
import pytest

import taiji
import taiji.distributed as dist
import taiji.distributed.functional as DF
import taiji.nn.functional as F
from taiji.distributed._backend import nccl_unavailable_reason
from taiji.nn.parallel import DistributedDataParallel as DDP
from device_cases import host, mlp, program_of

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not dist.is_nccl_available(),
                       reason=f"NCCL not available: {nccl_unavailable_reason()}"),
]


@pytest.fixture
def group(monkeypatch):
    """A 1-rank NCCL group (MPI launcher variables cleared: the group is created locally)."""
    from taiji.distributed import _backend
    for k in _backend._WORLD_SIZE_VARS:
        monkeypatch.delenv(k, raising=False)
    flags = taiji.backends.cuda.matmul
    old = flags.allow_tf32
    flags.allow_tf32 = False  # exact float32 products: DDP and plain runs compare tightly
    dist.init_process_group("nccl")
    yield dist._prims.backend()
    dist.destroy_process_group()
    flags.allow_tf32 = old


def test_collectives_on_a_one_rank_group(group):
    import cupy
    assert dist.get_backend() == "nccl" and dist.get_world_size() == 1
    assert group.mpi is None and group.comm is not None
    a = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    for op in ("sum", "avg", "max", "min"):
        t = taiji.tensor(a, device="cuda")
        dist.all_reduce(t, op=op)
        assert type(t._data) is cupy.ndarray
        np.testing.assert_array_equal(host(t), a)
    for dtype in (taiji.float16, taiji.float64, taiji.int64, taiji.int32, taiji.int16,
                  taiji.uint8, taiji.bool):
        src = (a > 0) if dtype is taiji.bool else np.abs(a)
        t = taiji.tensor(src, device="cuda").to(dtype)
        dist.all_reduce(t, op="max")
        assert t.dtype is dtype
        np.testing.assert_array_equal(host(t), src.astype(dtype.np))
    t = taiji.tensor(a, device="cuda")
    dist.broadcast(t, src=0)
    np.testing.assert_array_equal(host(t), a)
    outs = [taiji.zeros(3, 4, device="cuda")]
    dist.all_gather(outs, taiji.tensor(a, device="cuda"))
    np.testing.assert_array_equal(host(outs[0]), a)
    out = taiji.zeros(3, 4, device="cuda")
    dist.reduce_scatter_tensor(out, taiji.tensor(a, device="cuda"))
    np.testing.assert_array_equal(host(out), a)
    x = taiji.tensor(a, device="cuda")
    np.testing.assert_array_equal(host(DF.all_reduce(x.T)), a.T)  # non-contiguous
    np.testing.assert_array_equal(host(DF.all_gather(x[:, ::2], dim=1)), a[:, ::2])
    w = taiji.tensor(a, device="cuda", requires_grad=True)
    (DF.all_reduce(w) * 2.0).sum().backward()
    np.testing.assert_array_equal(host(w.grad), np.full((3, 4), 2.0, np.float32))
    f = taiji.jit(lambda v: DF.all_reduce(v * 2.0, "avg"))
    for _ in range(4):  # compile, capture as a CUDA graph (NCCL inside), replay
        np.testing.assert_array_equal(host(f(x)), 2 * a)
    dist.barrier()
    with pytest.raises(TypeError, match="moves CUDA tensors, but all_reduce got a CPU"):
        dist.all_reduce(taiji.ones(3))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_one_rank_ddp_step_equals_single_gpu_training(group, compiled):
    rng = np.random.default_rng(0)
    x = taiji.tensor(rng.standard_normal((32, 20)).astype(np.float32), device="cuda")
    y = taiji.tensor(rng.integers(0, 5, 32), device="cuda")

    def run(wrap):
        taiji.manual_seed(0)
        net = mlp().cuda()
        model = DDP(net, bucket_cap_mb=0.001) if wrap else net  # (several buckets)
        opt = taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        f = taiji.jit(step) if compiled else step
        losses = [float(f(x, y)) for _ in range(4)]
        return losses, [host(p) for p in net.parameters()], f

    got, pgot, f = run(True)
    ref, pref, g = run(False)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    for a, b in zip(pgot, pref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if compiled:
        assert "all_reduce(" in f.lower(x, y).as_text()
        prog = program_of(f)
        # (shown with -s: whether NCCL ran inside a captured CUDA graph)
        print(f"\nNCCL DDP jit step: program mode {prog.mode!r}"
              + (f" ({prog.fallback_reason})" if prog.fallback_reason else ""))
