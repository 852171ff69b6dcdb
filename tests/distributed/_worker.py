"""Run on every rank by tests/distributed/test_distributed.py:
``python -m taiji.distributed.launch -n 2 _worker.py SCENARIO [ARGS]``.
Each scenario prints ``OK <scenario> rank <r>`` when its checks pass."""
from __future__ import annotations

import sys

import numpy as np

import taiji
import taiji.distributed as dist
import taiji.distributed.functional as DF
import taiji.nn as nn
import taiji.nn.functional as F
from taiji.nn.parallel import DistributedDataParallel as DDP

from _common import B, batch, mlp, params, reference, shard


def close(a, b, what, rtol=1e-5, atol=1e-6):
    if not np.allclose(a, b, rtol=rtol, atol=atol):
        raise AssertionError(f"{what}: {np.asarray(a).ravel()[:5]} != {np.asarray(b).ravel()[:5]}")


def collectives(r, n):
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    xs = [base * (k + 1) - k for k in range(n)]  # rank k's input
    for op, ref in (("sum", sum(xs)), ("avg", sum(xs) / n), ("max", np.max(xs, 0)),
                    ("min", np.min(xs, 0))):
        t = taiji.tensor(xs[r])
        dist.all_reduce(t, op=getattr(dist.ReduceOp, op.upper()))
        close(t.numpy(), ref, f"all_reduce {op}")
    t = taiji.tensor(xs[r])
    dist.broadcast(t, src=1)
    close(t.numpy(), xs[1], "broadcast")
    outs = [taiji.zeros(2, 3) for _ in range(n)]
    dist.all_gather(outs, taiji.tensor(xs[r]))
    for k in range(n):
        close(outs[k].numpy(), xs[k], "all_gather list")
    out = taiji.zeros(2 * n, 3)
    dist.all_gather_into_tensor(out, taiji.tensor(xs[r]))
    close(out.numpy(), np.concatenate(xs), "all_gather_into_tensor")
    big = [np.concatenate([x, x + 1]) for x in xs]  # (2n, 3) on every rank
    out = taiji.zeros(2, 3)
    dist.reduce_scatter_tensor(out, taiji.tensor(big[r]))
    close(out.numpy(), sum(big)[2 * r:2 * r + 2], "reduce_scatter_tensor")
    ints = taiji.tensor(np.array([r, 10 * r], np.int64))
    dist.all_reduce(ints)
    assert ints.numpy().tolist() == [sum(range(n)), 10 * sum(range(n))], ints
    # gradients: d/dx_r sum(all_reduce(x) * c_r) = sum_k c_k
    cs = [np.full((2, 3), k + 2.0, np.float32) for k in range(n)]
    x = taiji.tensor(xs[r], requires_grad=True)
    (DF.all_reduce(x) * taiji.tensor(cs[r])).sum().backward()
    close(x.grad.numpy(), sum(cs), "all_reduce vjp")
    # all_gather's vjp is reduce_scatter: grad x_r = sum_k (c_k)[rows of r]
    cg = [np.arange(2 * n * 3, dtype=np.float32).reshape(2 * n, 3) * (k + 1) for k in range(n)]
    x = taiji.tensor(xs[r], requires_grad=True)
    (DF.all_gather(x) * taiji.tensor(cg[r])).sum().backward()
    close(x.grad.numpy(), sum(cg)[2 * r:2 * r + 2], "all_gather vjp")
    x = taiji.tensor(big[r], requires_grad=True)
    (DF.reduce_scatter(x) * taiji.tensor(cs[r])).sum().backward()
    close(x.grad.numpy(), np.concatenate(cs), "reduce_scatter vjp")
    x = taiji.tensor(xs[r], requires_grad=True)
    (DF.broadcast(x, src=0) * taiji.tensor(cs[r])).sum().backward()
    close(x.grad.numpy(), sum(cs) if r == 0 else 0 * cs[0], "broadcast vjp")
    # jit: the collective is a primitive in the graph; vmap; jvp
    f = taiji.jit(lambda a: DF.all_reduce(a * 2.0) + DF.all_reduce(a * 2.0))
    close(f(taiji.tensor(xs[r])).numpy(), 4 * sum(xs), "jit all_reduce (twice, not merged)")
    text = f.lower(taiji.tensor(xs[r])).as_text()
    assert text.count("all_reduce(") == 2, text
    v = taiji.vmap(lambda a: DF.all_gather(a))(taiji.tensor(xs[r]))
    close(v.numpy(), np.concatenate([x[:, None, :] for x in xs], 1).reshape(2, 3 * n),
          "vmap all_gather")
    _, t = taiji.jvp(lambda a: DF.all_reduce(a, "max"), (taiji.tensor(xs[r]),),
                     (taiji.ones(2, 3),))
    close(t.numpy(), np.ones((2, 3)), "jvp all_reduce max")
    g = taiji.grad(lambda a: DF.all_reduce(a, "avg").sum())(taiji.tensor(xs[r]))
    close(g.numpy(), np.ones((2, 3)), "grad all_reduce avg")


def ddp(r, n, steps=3):
    ref, _ = reference(steps)
    model = DDP(mlp(), bucket_cap_mb=0.1)  # several buckets
    opt = taiji.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for s in range(steps):
        x, y = shard(*batch(s), r)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for a, b in zip(params(model), params(ref)):
        close(a, b, "DDP vs single process", rtol=1e-4, atol=1e-5)
    # the same under taiji.jit: one compiled step with all_reduce in the graph
    jm = DDP(mlp(), bucket_cap_mb=0.1)
    jopt = taiji.optim.SGD(jm.parameters(), lr=0.1, momentum=0.9)

    @taiji.jit
    def step(x, y):
        jopt.zero_grad()
        loss = F.cross_entropy(jm(x), y)
        loss.backward()
        jopt.step()
        return loss
    for s in range(steps):
        step(*shard(*batch(s), r))
    text = step.lower(*shard(*batch(0), r)).as_text()
    assert "all_reduce(" in text, "no all_reduce in the compiled DDP step"
    for a, b in zip(params(jm), params(model)):
        close(a, b, "DDP under jit vs eager DDP", rtol=1e-4, atol=1e-5)
    # no_sync: accumulate two micro-batches, sync on the second
    am = DDP(mlp())
    aopt = taiji.optim.SGD(am.parameters(), lr=0.1)
    ref2 = mlp()
    ropt = taiji.optim.SGD(ref2.parameters(), lr=0.1)
    aopt.zero_grad()
    ropt.zero_grad()
    with am.no_sync():
        F.cross_entropy(am(shard(*batch(0), r)[0]), shard(*batch(0), r)[1]).backward()
    g_local = am.module[0].weight.grad.detach().numpy().copy()
    F.cross_entropy(am(shard(*batch(1), r)[0]), shard(*batch(1), r)[1]).backward()
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
    m = DDP(TwoBranch())
    x = taiji.ones(3, 4)
    try:
        m(x, use_b=(r == 1)).sum().backward()
    except RuntimeError as e:
        print(f"UNUSED-ERROR rank {r}: {e}", flush=True)
    else:
        raise AssertionError("no error for parameters unused on some ranks")
    m2 = DDP(TwoBranch(), find_unused_parameters=True)
    m2(x, use_b=(r == 1)).sum().backward()
    g = m2.module.b.weight.grad.detach().numpy()
    close(g, np.full((2, 4), 3.0 / n), "find_unused_parameters=True averages with zeros")
    m3 = DDP(TwoBranch())  # every rank skips b: fine, b keeps no grad
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


if __name__ == "__main__":
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    name = sys.argv[1]
    globals()[name](rank, world, *sys.argv[2:])
    print(f"OK {name} rank {rank}", flush=True)
    dist.destroy_process_group()
