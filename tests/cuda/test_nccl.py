"""The 'nccl' backend's logic on the CPU: a 1-rank group on the fake CUDA device
(tests/cuda/fake_cuda.py) with a fake NCCL (tests/cuda/fake_nccl.py) that records every call
and reads the device addresses it is given. The 2-rank version runs under mpirun in
tests/distributed/test_distributed.py; the real thing on a GPU is test_nccl_gpu.py."""
from __future__ import annotations

import numpy as np
import pytest

import taiji
import taiji.distributed as dist
import taiji.distributed.functional as DF
import taiji.nn.functional as F
from taiji.distributed import _backend
from taiji.nn.parallel import DistributedDataParallel as DDP
from device_cases import host, mlp
from fake_nccl import FakeNccl


@pytest.fixture
def nccl(fake_cuda, monkeypatch):
    """A fake NCCL behind ``init_process_group('nccl')`` (on the fake CUDA device)."""
    fake = FakeNccl(seed=0)
    monkeypatch.setattr(_backend, "_import_nccl", lambda: fake)
    yield fake
    dist.destroy_process_group()


def test_a_one_rank_group_needs_no_mpi(nccl, monkeypatch):
    for k in _backend._WORLD_SIZE_VARS:
        monkeypatch.delenv(k, raising=False)
    assert dist.is_nccl_available()
    dist.init_process_group("nccl", world_size=1, rank=0)
    assert dist.get_backend() == "nccl" and dist.get_world_size() == 1 and dist.get_rank() == 0
    b = dist._prims.backend()
    assert isinstance(b, dist.NCCLBackend) and b.mpi is None and b.device_type == "cuda"
    comm, = nccl.communicators
    assert (comm.ndev, comm.rank, len(comm.uid)) == (1, 0, 128)
    assert b.allgather_object({"a": 1}) == [{"a": 1}]
    dist.destroy_process_group()
    assert comm.destroyed and not dist.is_initialized()


# (dtype, NCCL dtype the fake records, values)
DTYPES = [
    (taiji.float32, FakeNccl.NCCL_FLOAT32, [1.5, -2.0, 3.25]),
    (taiji.float16, FakeNccl.NCCL_FLOAT16, [1.5, -2.0, 3.25]),
    (taiji.float64, FakeNccl.NCCL_FLOAT64, [1.5, -2.0, 3.25]),
    (taiji.int64, FakeNccl.NCCL_INT64, [1, -2, 3]),
    (taiji.int32, FakeNccl.NCCL_INT32, [1, -2, 3]),
    (taiji.uint8, FakeNccl.NCCL_UINT8, [1, 2, 3]),
    (taiji.int8, FakeNccl.NCCL_INT8, [1, -2, 3]),
    (taiji.int16, FakeNccl.NCCL_INT32, [1, -2, 3]),      # no 16-bit integers in NCCL
    (taiji.bool, FakeNccl.NCCL_UINT8, [True, False, True]),
]


@pytest.mark.parametrize("dtype,code,values", DTYPES, ids=[d[0].name for d in DTYPES])
def test_dtypes_ops_counts_and_values(nccl, dtype, code, values):
    dist.init_process_group("nccl")
    ops = ["sum", "max", "min"] + (["avg"] if dtype.is_floating_point else [])
    for op in ops:
        t = taiji.tensor(values, dtype=dtype, device="cuda")
        nccl.calls.clear()
        dist.all_reduce(t, op=op)
        assert nccl.calls == [("allReduce", 3, code, "sum" if op == "avg" else op, 0)]
        assert t.dtype is dtype and t.is_cuda and t.tolist() == values
    if not dtype.is_floating_point:
        with pytest.raises(TypeError, match="AVG needs a floating tensor"):
            dist.all_reduce(taiji.tensor(values, dtype=dtype, device="cuda"), op="avg")
    nccl.calls.clear()
    out = taiji.zeros(3, dtype=dtype, device="cuda")
    dist.all_gather_into_tensor(out, taiji.tensor(values, dtype=dtype, device="cuda"))
    assert nccl.calls == [("allGather", 3, code, 0)] and out.tolist() == values
    nccl.calls.clear()
    t = taiji.tensor(values, dtype=dtype, device="cuda")
    dist.broadcast(t, src=0)
    assert nccl.calls == [("broadcast", 3, code, 0, 0)] and t.tolist() == values


def test_layouts_and_functional_collectives(nccl):
    """Non-contiguous inputs are packed before NCCL reads their addresses; gradients, jit and
    vmap go through the same backend."""
    dist.init_process_group("nccl")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = taiji.tensor(a, device="cuda")
    np.testing.assert_array_equal(host(DF.all_reduce(x.T)), a.T)   # a transposed view
    np.testing.assert_array_equal(host(DF.all_gather(x[:, 1::2], dim=1)), a[:, 1::2])
    np.testing.assert_array_equal(host(DF.reduce_scatter(x, dim=1)), a)
    w = taiji.tensor(a, device="cuda", requires_grad=True)
    (DF.all_reduce(w) * 3.0).sum().backward()
    assert w.grad.is_cuda and host(w.grad).tolist() == np.full((3, 4), 3.0).tolist()
    f = taiji.jit(lambda v: DF.all_reduce(v * 2.0, "avg"))
    for _ in range(3):  # (compile, capture as a CUDA graph, replay)
        np.testing.assert_array_equal(host(f(x)), 2 * a)
    n = len(nccl.calls)
    f(x)
    assert len(nccl.calls) == n + 1  # one NCCL call per replay of the compiled step
    assert "all_reduce(" in f.lower(x).as_text()
    v = taiji.vmap(lambda r: DF.all_gather(r))(x)
    np.testing.assert_array_equal(host(v), a)
    dist.barrier()
    assert nccl.calls[-1][:3] == ("allReduce", 1, FakeNccl.NCCL_FLOAT32)


def test_cpu_tensors_are_a_clear_error(nccl):
    dist.init_process_group("nccl")
    with pytest.raises(TypeError) as ei:
        dist.all_reduce(taiji.ones(3))
    msg = str(ei.value)
    assert "the 'nccl' process group moves CUDA tensors, but all_reduce got a CPU tensor" \
        in msg and ".cuda()" in msg and "backend='mpi'" in msg
    with pytest.raises(TypeError, match="DistributedDataParallel \\(parameter '0.weight'\\) "
                                        "got a CPU tensor"):
        DDP(mlp())
    with pytest.raises(TypeError, match="NCCL cannot move bfloat16"):
        b = dist._prims.backend()
        b.allreduce(taiji.ones(2, dtype=taiji.bfloat16).to("cuda")._data, "sum")


def test_unavailable_nccl_library_is_named(fake_cuda, monkeypatch):
    def missing():
        raise ImportError("CuPy is installed but cannot load the NCCL library; "
                          + _backend.NCCL_HINT)
    monkeypatch.setattr(_backend, "_import_nccl", missing)
    assert not dist.is_nccl_available()
    with pytest.raises(RuntimeError) as ei:
        dist.init_process_group("nccl")
    assert "CUDA/NCCL is not available" in str(ei.value)
    assert "nvidia-nccl-cu12" in str(ei.value) and not dist.is_initialized()


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_one_rank_ddp_equals_plain_training(nccl, compiled):
    """DDP over a 1-rank NCCL group trains exactly as the plain model on the device."""
    dist.init_process_group("nccl")
    rng = np.random.default_rng(0)
    x = taiji.tensor(rng.standard_normal((8, 20)).astype(np.float32), device="cuda")
    y = taiji.tensor(rng.integers(0, 5, 8), device="cuda")

    def run(wrap):
        taiji.manual_seed(0)
        net = mlp().to("cuda")
        model = DDP(net, bucket_cap_mb=0.0005) if wrap else net  # (several buckets)
        opt = taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        f = taiji.jit(step) if compiled else step
        losses = [float(f(x, y)) for _ in range(3)]
        return losses, [host(p) for p in net.parameters()], f

    nccl.calls.clear()
    got, pgot, f = run(True)
    assert sum(c[0] == "allReduce" for c in nccl.calls) >= 2  # the gradients went through
    ref, pref, _ = run(False)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    for a, b in zip(pgot, pref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    if compiled:
        assert "all_reduce(" in f.lower(x, y).as_text()
