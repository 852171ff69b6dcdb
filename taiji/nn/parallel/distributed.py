"""DistributedDataParallel: data parallelism over the default process group.

Every rank holds a full replica; each computes gradients on its own shard of the batch and
the gradients are averaged (bucketed all-reduce) before the optimizer step, so all replicas
stay identical.

How gradients are averaged
    Parameters are grouped into buckets (reverse registration order, ~``bucket_cap_mb`` each,
    one dtype per bucket, flattened into one buffer). A gradient hook on each parameter marks
    it ready; when a bucket is full (and every bucket before it has been sent, so all ranks
    issue them in the same order) its all-reduce starts as MPI ``Iallreduce``; the rest are
    sent, and all are awaited, in a callback that ``backward()`` runs once every ``.grad`` is
    written (``taiji.autograd.queue_callback``). taiji's engine hands leaf gradients to hooks
    at the end of the backward pass, so the overlap with backward compute is nominal today;
    non-blocking sends still overlap packing one bucket with sending the previous.

    Each bucket carries one extra number per parameter: 1 if this rank produced a gradient.
    After the sum, a count strictly between 0 and world size means ranks disagree about which
    parameters were used: with ``find_unused_parameters=False`` (default) every rank raises
    an error naming those parameters and the ranks that missed them; with ``True`` a missing
    gradient counts as zero (PyTorch's behaviour). Parameters no rank used keep ``.grad``.

Under ``taiji.jit``
    The hooks see traced gradients: the callback then emits ``all_reduce`` primitives (one per
    bucket) into the traced graph, so forward, backward, all-reduce and optimizer update
    compile into one program. Which parameters have gradients is known at trace time and is
    compared across ranks then.

state_dict
    ``ddp.state_dict()`` is the wrapped module's (no ``module.`` prefix, unlike PyTorch), so a
    checkpoint loads into a plain model on any world size; ``load_state_dict`` accepts keys
    with or without the prefix.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from taiji.nn.module import Module

__all__ = ["DistributedDataParallel"]


class _Bucket:
    __slots__ = ("index", "params", "sizes", "dtype", "numel")

    def __init__(self, index, params, dtype):
        self.index, self.params, self.dtype = index, params, dtype
        self.sizes = [int(np.prod(p.shape, dtype=np.int64)) for _, p in params]
        self.numel = sum(self.sizes)


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training across the ranks of the default group.

    Args:
        module: the model (the same architecture on every rank), on the group's device
            type: the CPU for 'mpi', this process's GPU for 'nccl' (else a clear error).
        device_ids, output_device, dim, gradient_as_bucket_view, static_graph,
            process_group: accepted for PyTorch compatibility (the default group).
        broadcast_buffers: copy buffers (BatchNorm statistics) from rank 0 at each forward.
        bucket_cap_mb: bucket size for the gradient all-reduce (default 25 MB).
        find_unused_parameters: count a gradient missing on some ranks as zero instead of
            raising an error that names the parameters.

    Example:
        >>> dist.init_process_group("mpi")                           # doctest: +SKIP
        >>> model = DistributedDataParallel(Net())                    # doctest: +SKIP
        >>> loss = loss_fn(model(x), y); loss.backward(); opt.step()   # doctest: +SKIP
    """

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None,
                 dim: int = 0, broadcast_buffers: bool = True, process_group: Any = None,
                 bucket_cap_mb: float = 25.0, find_unused_parameters: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False):
        super().__init__()
        from taiji.distributed._prims import backend
        self.module = module
        b = backend()
        object.__setattr__(self, "_ddp_backend", b)
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        for n, p in named:  # the group's device type (MPI: CPU, NCCL: CUDA), clearly
            b.check_array(p._data, f"DistributedDataParallel (parameter {n!r})")
        self._check_same_model(b, named)
        # replicas start equal: rank 0's parameters and buffers everywhere
        from taiji._device import backend_for_payload
        for _, t in list(module.named_parameters()) + list(module.named_buffers()):
            if b.size > 1:
                backend_for_payload(t._data).copyto(t._data, b.broadcast(t._data, 0))
        cap = max(1, int(bucket_cap_mb * 1024 * 1024))
        buckets, cur, cur_bytes = [], {}, {}
        for n, p in reversed(named):  # gradients arrive roughly in reverse order
            key = p.dtype.name
            cur.setdefault(key, []).append((n, p))
            cur_bytes[key] = cur_bytes.get(key, 0) + p._data.nbytes
            if cur_bytes[key] >= cap:
                buckets.append(_Bucket(len(buckets), cur.pop(key), p.dtype))
                cur_bytes[key] = 0
        for key, ps in cur.items():
            buckets.append(_Bucket(len(buckets), ps, ps[0][1].dtype))
        where = {}
        for bk in buckets:
            for j, (_, p) in enumerate(bk.params):
                where[id(p)] = (bk.index, j)
        object.__setattr__(self, "_ddp_buckets", buckets)
        object.__setattr__(self, "_ddp_where", where)
        object.__setattr__(self, "_ddp_handles", [p.register_hook(self._make_hook(p))
                                                   for _, p in named])
        self._reset()

    # ------------------------------------------------------------ setup helpers
    @staticmethod
    def _check_same_model(b, named):
        if b.size == 1:
            return
        mine = tuple((n, tuple(p.shape), p.dtype.name) for n, p in named)
        all_ = b.allgather_object(mine)
        bad = [r for r, m in enumerate(all_) if m != all_[0]]
        if bad:
            diff = sorted(set(all_[bad[0]]) ^ set(all_[0]))[:4]
            raise RuntimeError(f"DistributedDataParallel: the model differs across ranks "
                               f"(rank 0 vs rank {bad[0]}; first differences: {diff}); every "
                               f"rank must build the same model")

    def _reset(self) -> None:
        object.__setattr__(self, "_ddp_ready", {})      # id(param) -> accumulated grad
        object.__setattr__(self, "_ddp_count", [0] * len(self._ddp_buckets))
        object.__setattr__(self, "_ddp_next", 0)        # first bucket not yet sent
        object.__setattr__(self, "_ddp_work", [])       # (bucket, Work) in flight
        object.__setattr__(self, "_ddp_queued", False)
        object.__setattr__(self, "_ddp_traced", False)

    # ------------------------------------------------------------ hooks
    def _make_hook(self, p):
        def hook(g):
            if not self.require_backward_grad_sync:
                return None
            from taiji.autograd import no_grad, queue_callback
            if not self._ddp_queued:
                object.__setattr__(self, "_ddp_queued", True)
                queue_callback(self._finish)
            with no_grad():
                acc = g if p.grad is None else p.grad + g.to(p.grad.dtype)
            self._ddp_ready[id(p)] = acc
            if type(acc._data) is not np.ndarray:
                # traced, or a device array (NCCL): averaged by all_reduce primitives
                object.__setattr__(self, "_ddp_traced", True)
                return None
            bi, _ = self._ddp_where[id(p)]
            self._ddp_count[bi] += 1
            while (self._ddp_next < len(self._ddp_buckets) and
                   self._ddp_count[self._ddp_next] == len(self._ddp_buckets[self._ddp_next].params)):
                self._launch(self._ddp_buckets[self._ddp_next])
            return None
        return hook

    def _launch(self, bk: _Bucket) -> None:
        """Flatten bucket ``bk`` (zeros for missing gradients, then presence flags) and start
        its all-reduce."""
        ready = self._ddp_ready
        npdt = bk.dtype.np
        parts, flags = [], np.zeros(len(bk.params), npdt)
        for j, ((_, p), n) in enumerate(zip(bk.params, bk.sizes)):
            acc = ready.get(id(p))
            if acc is None:
                parts.append(np.zeros(n, npdt))
            else:
                parts.append(np.asarray(acc._data, npdt).reshape(-1))
                flags[j] = 1
        parts.append(flags)
        flat = np.concatenate(parts)
        self._ddp_work.append((bk, self._ddp_backend.iallreduce(flat, "sum")))
        object.__setattr__(self, "_ddp_next", bk.index + 1)

    def _finish(self) -> None:
        """End of backward: send the remaining buckets, wait, write the averaged ``.grad``."""
        try:
            if self._ddp_traced:
                self._finish_traced()
            else:
                self._finish_eager()
        finally:
            self._reset()

    def _finish_eager(self) -> None:
        from taiji.tensor import Tensor
        while self._ddp_next < len(self._ddp_buckets):
            self._launch(self._ddp_buckets[self._ddp_next])
        size = self._ddp_backend.size
        disagree = []
        for bk, work in self._ddp_work:
            flat = work.wait()
            counts = flat[bk.numel:]
            off = 0
            for (name, p), n, c in zip(bk.params, bk.sizes, counts):
                c = int(round(float(c)))
                if c == 0:
                    pass  # no rank used it: .grad stays as it was, everywhere
                elif c < size and not self.find_unused_parameters:
                    disagree.append(name)
                else:
                    g = flat[off:off + n].reshape(p.shape) / np.asarray(size, flat.dtype)
                    p.grad = Tensor._from_payload(g.astype(flat.dtype, copy=False))
                off += n
        if disagree:
            self._raise_unused(disagree)

    def _finish_traced(self) -> None:
        import taiji
        from taiji.autograd import no_grad
        from taiji.distributed._prims import all_reduce_p
        ready = self._ddp_ready
        names = {id(p): n for bk in self._ddp_buckets for n, p in bk.params}
        b = self._ddp_backend
        mine = sorted(names[k] for k in ready)
        everyone = b.allgather_object(mine) if b.size > 1 else [mine]
        have = {}
        for r, ns in enumerate(everyone):
            for n in ns:
                have.setdefault(n, set()).add(r)
        disagree = [n for n, rs in have.items() if len(rs) < b.size]
        if disagree and not self.find_unused_parameters:
            self._raise_unused(sorted(disagree), everyone)
        with no_grad():
            for bk in self._ddp_buckets:
                used = [(p, n) for (name, p), n in zip(bk.params, bk.sizes) if name in have]
                if not used:
                    continue
                parts = [ready[id(p)].reshape(-1) if id(p) in ready else
                         taiji.zeros(n, dtype=bk.dtype, device=p.device) for p, n in used]
                flat = all_reduce_p(taiji.cat(parts) if len(parts) > 1 else parts[0],
                                    op="avg")
                off = 0
                for p, n in used:
                    p.grad = flat[off:off + n].reshape(p.shape)
                    off += n

    def _raise_unused(self, names: list, everyone: list | None = None) -> None:
        b = self._ddp_backend
        if everyone is None:  # eager: the sums said who disagrees; ask who had what
            mine = sorted(n for bk in self._ddp_buckets for n, p in bk.params
                          if id(p) in self._ddp_ready)
            everyone = b.allgather_object(mine)
        missing = []
        for n in names:
            ranks = [r for r, ns in enumerate(everyone) if n not in ns]
            missing.append(f"{n!r} (no gradient on rank{'s' if len(ranks) > 1 else ''} "
                           f"{', '.join(map(str, ranks))})")
        raise RuntimeError(
            "DistributedDataParallel: these parameters received a gradient on some ranks but "
            f"not on others in this backward pass: {'; '.join(missing)}. The ranks would "
            "diverge. Make forward use the same parameters on every rank, or pass "
            "find_unused_parameters=True to DistributedDataParallel to count a missing "
            "gradient as zero.")

    # ------------------------------------------------------------ public API
    def forward(self, *args, **kwargs):
        """Run the wrapped module (after syncing buffers from rank 0)."""
        if self.broadcast_buffers and self._ddp_backend.size > 1 and self.training:
            from taiji.autograd import no_grad
            from taiji.distributed._prims import broadcast_p
            with no_grad():
                for buf in self.module.buffers():
                    buf._assign(broadcast_p(buf, src=0))
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (no all-reduce) inside this block; the first backward
        after it averages the accumulated gradients.

        Example:
            >>> with ddp.no_sync():                     # doctest: +SKIP
            ...     loss_fn(ddp(x1), y1).backward()
            >>> loss_fn(ddp(x2), y2).backward()         # averages the sum of both
        """
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def state_dict(self, *args, **kwargs):
        """The wrapped module's state dict (keys without a ``module.`` prefix)."""
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load into the wrapped module; keys may carry PyTorch's ``module.`` prefix."""
        sd = {(k[7:] if k.startswith("module.") else k): v for k, v in state_dict.items()}
        return self.module.load_state_dict(sd, strict=strict, assign=assign)
