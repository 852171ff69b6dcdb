"""Run on every rank by tests/distributed/test_distributed.py:
``python -m taiji.distributed.launch -n 2 _worker.py [--fake-nccl] SCENARIO [ARGS]``.
Each scenario prints ``OK <scenario> rank <r>`` when its checks pass.

``--fake-nccl`` runs the scenario on CUDA tensors of the fake device (tests/cuda/fake_cuda.py)
over the 'nccl' backend with a fake NCCL (tests/cuda/fake_nccl.py) whose data moves through
MPI: taiji's NCCL logic, multi-rank, without a GPU."""
from __future__ import annotations

import os
import sys

import numpy as np

import taiji
import taiji.distributed as dist
import taiji.distributed.functional as DF
import taiji.nn as nn
import taiji.nn.functional as F
from taiji.nn.parallel import DistributedDataParallel as DDP

from _common import B, batch, mlp, params, reference, shard


DEV = "cpu"  # where the scenarios' tensors live ("cuda": the fake device, with --fake-nccl)


def T(a, **kw):
    """``taiji.tensor(a)`` on the scenario's device."""
    return taiji.tensor(a, device=DEV, **kw)


def H(t) -> np.ndarray:
    """A tensor's values on the host."""
    return t.detach().cpu().numpy()


def close(a, b, what, rtol=1e-5, atol=1e-6):
    if not np.allclose(a, b, rtol=rtol, atol=atol):
        raise AssertionError(f"{what}: {np.asarray(a).ravel()[:5]} != {np.asarray(b).ravel()[:5]}")


def collectives(r, n):
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    xs = [base * (k + 1) - k for k in range(n)]  # rank k's input
    for op, ref in (("sum", sum(xs)), ("avg", sum(xs) / n), ("max", np.max(xs, 0)),
                    ("min", np.min(xs, 0))):
        t = T(xs[r])
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op.upper()))
        close(H(t), ref, f"all_reduce {op}")
    t = T(xs[r])
    dist.broadcast(t, src=1)
    close(H(t), xs[1], "broadcast")
    outs = [taiji.zeros(2, 3, device=DEV) for _ in range(n)]
    dist.all_gather(outs, T(xs[r]))
    for k in range(n):
        close(H(outs[k]), xs[k], "all_gather list")
    out = taiji.zeros(2 * n, 3, device=DEV)
    dist.all_gather_into_tensor(out, T(xs[r]))
    close(H(out), np.concatenate(xs), "all_gather_into_tensor")
    big = [np.concatenate([x, x + 1]) for x in xs]  # (2n, 3) on every rank
    out = taiji.zeros(2, 3, device=DEV)
    dist.reduce_scatter_tensor(out, T(big[r]))
    close(H(out), sum(big)[2 * r:2 * r + 2], "reduce_scatter_tensor")
    ints = T(np.array([r, 10 * r], np.int64))
    dist.all_reduce(ints)
    assert H(ints).tolist() == [sum(range(n)), 10 * sum(range(n))], ints
    # gradients: d/dx_r sum(all_reduce(x) * c_r) = sum_k c_k
    cs = [np.full((2, 3), k + 2.0, np.float32) for k in range(n)]
    x = T(xs[r], requires_grad=True)
    (DF.all_reduce(x) * T(cs[r])).sum().backward()
    close(H(x.grad), sum(cs), "all_reduce vjp")
    # all_gather's vjp is reduce_scatter: grad x_r = sum_k (c_k)[rows of r]
    cg = [np.arange(2 * n * 3, dtype=np.float32).reshape(2 * n, 3) * (k + 1) for k in range(n)]
    x = T(xs[r], requires_grad=True)
    (DF.all_gather(x) * T(cg[r])).sum().backward()
    close(H(x.grad), sum(cg)[2 * r:2 * r + 2], "all_gather vjp")
    x = T(big[r], requires_grad=True)
    (DF.reduce_scatter(x) * T(cs[r])).sum().backward()
    close(H(x.grad), np.concatenate(cs), "reduce_scatter vjp")
    x = T(xs[r], requires_grad=True)
    (DF.broadcast(x, src=0) * T(cs[r])).sum().backward()
    close(H(x.grad), sum(cs) if r == 0 else 0 * cs[0], "broadcast vjp")
    # jit: the collective is a primitive in the graph; vmap; jvp
    f = taiji.jit(lambda a: DF.all_reduce(a * 2.0) + DF.all_reduce(a * 2.0))
    close(H(f(T(xs[r]))), 4 * sum(xs), "jit all_reduce (twice, not merged)")
    text = f.lower(T(xs[r])).as_text()
    assert text.count("all_reduce(") == 2, text
    v = taiji.vmap(lambda a: DF.all_gather(a))(T(xs[r]))
    close(H(v), np.concatenate([x[:, None, :] for x in xs], 1).reshape(2, 3 * n),
          "vmap all_gather")
    _, t = taiji.jvp(lambda a: DF.all_reduce(a, "max"), (T(xs[r]),),
                     (taiji.ones(2, 3, device=DEV),))
    close(H(t), np.ones((2, 3)), "jvp all_reduce max")
    g = taiji.grad(lambda a: DF.all_reduce(a, "avg").sum())(T(xs[r]))
    close(H(g), np.ones((2, 3)), "grad all_reduce avg")


def DS(step, r):
    """Rank r's shard of the global batch of ``step``, on the scenario's device."""
    return tuple(t.to(DEV) for t in shard(*batch(step), r))


def ddp(r, n, steps=3):
    ref, _ = reference(steps)
    model = DDP(mlp().to(DEV), bucket_cap_mb=0.1)  # several buckets
    opt = taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for s in range(steps):
        x, y = DS(s, r)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for a, b in zip(params(model), params(ref)):
        close(a, b, "DDP vs single process", rtol=1e-4, atol=1e-5)
    # the same under taiji.jit: one compiled step with all_reduce in the graph
    jm = DDP(mlp().to(DEV), bucket_cap_mb=0.1)
    jopt = taiji.optim.SGD(jm.parameters(), lr=0.1, momentum=0.9)

    @taiji.jit
    def step(x, y):
        jopt.zero_grad()
        loss = F.cross_entropy(jm(x), y)
        loss.backward()
        jopt.step()
        return loss
    for s in range(steps):
        step(*DS(s, r))
    text = step.lower(*DS(0, r)).as_text()
    assert "all_reduce(" in text, "no all_reduce in the compiled DDP step"
    for a, b in zip(params(jm), params(model)):
        close(a, b, "DDP under jit vs eager DDP", rtol=1e-4, atol=1e-5)
    # no_sync: accumulate two micro-batches, sync on the second
    am = DDP(mlp().to(DEV))
    aopt = taiji.optim.SGD(am.parameters(), lr=0.1)
    ref2 = mlp()
    ropt = taiji.optim.SGD(ref2.parameters(), lr=0.1)
    aopt.zero_grad()
    ropt.zero_grad()
    with am.no_sync():
        F.cross_entropy(am(DS(0, r)[0]), DS(0, r)[1]).backward()
    g_local = am.module[0].weight.grad.detach().numpy().copy()
    F.cross_entropy(am(DS(1, r)[0]), DS(1, r)[1]).backward()
    for s in (0, 1):
        x, y = batch(s)
        F.cross_entropy(ref2(taiji.tensor(x)), taiji.tensor(y)).backward()
    aopt.step()
    ropt.step()
    full = taiji.tensor(batch(0)[0][r * B:(r + 1) * B])
    assert not np.allclose(g_local, 0) and full.shape[0] == B
    for a, b in zip(params(am), params(ref2)):
        close(a, b, "no_sync accumulation", rtol=1e-4, atol=1e-5)


class TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(4, 2)

    def forward(self, x, use_b: bool):
        return self.b(x) if use_b else self.a(x)


def unused(r, n):
    taiji.manual_seed(0)
    m = DDP(TwoBranch().to(DEV))
    x = taiji.ones(3, 4, device=DEV)
    try:
        m(x, use_b=(r == 1)).sum().backward()
    except RuntimeError as e:
        print(f"UNUSED-ERROR rank {r}: {e}", flush=True)
    else:
        raise AssertionError("no error for parameters unused on some ranks")
    m2 = DDP(TwoBranch().to(DEV), find_unused_parameters=True)
    m2(x, use_b=(r == 1)).sum().backward()
    g = H(m2.module.b.weight.grad)
    close(g, np.full((2, 4), 3.0 / n), "find_unused_parameters=True averages with zeros")
    m3 = DDP(TwoBranch().to(DEV))  # every rank skips b: fine, b keeps no grad
    m3(x, use_b=False).sum().backward()
    assert m3.module.b.weight.grad is None


def mismatch(r, n):
    try:
        dist.all_reduce(taiji.ones(r + 2, 3))
    except RuntimeError as e:
        print(f"MISMATCH-ERROR rank {r}: {e}", flush=True)
    else:
        raise AssertionError("no error for mismatched shapes")


def fail(r, n):
    if r == 1:
        raise ValueError("boom on purpose")
    t = taiji.ones(3)
    for _ in range(1000):  # rank 0 would wait forever for rank 1
        dist.all_reduce(t)


def ckpt(r, n, path):
    model = DDP(mlp())
    opt = taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for s in range(2):
        x, y = shard(*batch(s), r)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    if r == 0:
        taiji.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    dist.barrier()


def wrong_device(r, n):
    """CUDA tensors (the fake device) given to the MPI group: a clear error, no copy."""
    _fake_cuda()
    g = taiji.ones(3, device="cuda")
    for call in (lambda: dist.all_reduce(g), lambda: DDP(nn.Linear(2, 2).to("cuda"))):
        try:
            call()
        except TypeError as e:
            assert "backend='nccl'" in str(e) and "cuda:0" in str(e), e
            print(f"DEVICE-ERROR rank {r}: {e}", flush=True)
        else:
            raise AssertionError("no error for a CUDA tensor on the MPI backend")


def _fake_cuda():
    """Register the fake CUDA device (tests/cuda/fake_cuda.py) as 'cuda'."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cuda"))
    from fake_cuda import FakeCudaBackend
    from taiji import backends
    backends.register_backend("cuda", FakeCudaBackend())


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--fake-nccl":
        args = args[1:]
        _fake_cuda()
        from fake_nccl import FakeNccl
        from taiji.distributed import _backend
        fake = FakeNccl()
        _backend._import_nccl = lambda: fake
        DEV = "cuda"
        dist.init_process_group("nccl")
        assert dist.get_backend() == "nccl" and fake.communicators[0].ndev == 2
    else:
        dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    name = args[0]
    globals()[name](rank, world, *args[1:])
    print(f"OK {name} rank {rank}", flush=True)
    dist.destroy_process_group()
