"""PyTorch-style random creation (rand, randn, randint, randperm, ...) over the global or a
given `taiji.Generator`. With ``device='cuda'`` and no generator the draw runs on the GPU
from that GPU's default generator (its state lives there, as in PyTorch); a CPU generator's
draw is made on the CPU and moved."""
from __future__ import annotations

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji import random as R
from taiji._creation import _size
from taiji.autograd import no_grad

__all__ = ["rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
           "normal", "bernoulli", "multinomial"]


def _key(generator, device):
    """The key for one draw: from ``generator``, else from ``device``'s default generator."""
    return R._gen(generator, device).next_key()


def _finish(t, device, requires_grad):
    if device is not None:
        t = t.to(device)
    if requires_grad:
        t = t.detach().requires_grad_(True)
    return t


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """Uniform samples in [0, 1) of ``size``."""
    with no_grad():
        t = R.uniform(_key(generator, device), _size(size), R._float_dtype(dtype))
    return _finish(t, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> O.Tensor:
    """Standard normal samples of ``size``."""
    with no_grad():
        t = R.normal(_key(generator, device), _size(size), R._float_dtype(dtype))
    return _finish(t, device, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False) -> O.Tensor:
    """Integers uniform in [low, high): ``randint(10, (3,))`` or ``randint(2, 10, (3,))``."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint() missing required argument 'size'")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    d = dt.to_dtype(dtype) if dtype is not None else dt.int64
    t = R.randint(_key(generator, device), tuple(size), low, high, d)
    return _finish(t, device, requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None) -> O.Tensor:
    """A random permutation of 0..n-1."""
    t = R.permutation(_key(generator, device), int(n))
    if dtype is not None:
        t = t.to(dtype)
    return _finish(t, device, False)


def rand_like(t, *, dtype=None, generator=None) -> O.Tensor:
    return rand(t.shape, dtype=dtype or t.dtype, generator=generator, device=t.device)


def randn_like(t, *, dtype=None, generator=None) -> O.Tensor:
    return randn(t.shape, dtype=dtype or t.dtype, generator=generator, device=t.device)


def randint_like(t, low, high=None, *, dtype=None, generator=None) -> O.Tensor:
    return randint(low, high, t.shape, dtype=dtype or t.dtype, generator=generator,
                   device=t.device)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None,
           device=None) -> O.Tensor:
    """Normal samples with tensor or scalar ``mean`` / ``std`` (on their device)."""
    ts = [x for x in (mean, std) if isinstance(x, O.Tensor)]
    if size is None:
        size = O.broadcast_shapes(*[x.shape for x in ts]) if ts else ()
    if device is None and ts:
        device = ts[0].device
    with no_grad():
        z = randn(tuple(size), generator=generator, dtype=dtype, device=device)
        return z * std + mean


def bernoulli(p, *, generator=None) -> O.Tensor:
    """0/1 samples with probabilities ``p`` (a float tensor), in p's dtype."""
    with no_grad():
        u = R.uniform(_key(generator, p.device), p.shape, p.dtype)
        return O.to(u < p, p.dtype)


def multinomial(probs, num_samples, replacement=False, *, generator=None) -> O.Tensor:
    """Indices sampled from the rows of ``probs`` (Gumbel top-k without replacement)."""
    with no_grad():
        logp = O.log(probs / O.sum(probs, -1, keepdim=True))
        if replacement:
            u = R.uniform(_key(generator, probs.device), logp.shape[:-1] + (num_samples,),
                          dt.float64)
            return _inverse_cdf(O.cumsum(O.to(O.exp(logp), dt.float64), -1), u)
        u = R.uniform(_key(generator, probs.device), logp.shape, dt.float64)
        gumbel = -O.log(-O.log(u + 1e-20) + 1e-20)
        from taiji._indexing import topk
        return topk(O.to(logp, dt.float64) + gumbel, num_samples, -1).indices


def _inverse_cdf(cdf, u):
    """Index of the first cdf entry above each uniform in ``u`` (shape [..., samples])."""
    u = u * O.narrow(cdf, -1, cdf.shape[-1] - 1, 1)
    hits = O.unsqueeze(cdf, -2) <= O.unsqueeze(u, -1)  # [..., samples, classes]
    return O.sum(hits, -1).clamp(max=cdf.shape[-1] - 1)
