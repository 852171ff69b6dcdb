"""Loss functions (PyTorch's semantics for ``reduction``, ``weight``, ``ignore_index`` ...),
written with the op layer: stable (log-softmax primitive, log-sum-exp forms) and free of
Python control flow on tensor values, so they compile under ``jit``."""
from __future__ import annotations

import math

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji._prims import nn as NN
from taiji import _indexing as I
from taiji._prims import structure as S
from taiji.tensor import Tensor
from taiji.amp.autocast_mode import fp32_op  # taiji.amp: losses run in float32

_REDUCTIONS = ("none", "mean", "sum")


def _legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return O.mean(loss)
    if reduction == "sum":
        return O.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction!r} is not a valid value for reduction (expected one of "
                     f"{', '.join(_REDUCTIONS)})")


def _check_same(input, target, name):
    if input.shape != target.shape:
        raise ValueError(f"{name}: target size {list(target.shape)} must be the same as input "
                         f"size {list(input.shape)}")


def _nll(logp: Tensor, target: Tensor, weight, ignore_index, reduction, label_smoothing=0.0,
         name="nll_loss"):
    """Negative log-likelihood of class indices given log-probabilities (class dim 1)."""
    if logp.ndim == 1:  # unbatched (C,) with a 0-d target
        logp, target = O.unsqueeze(logp, 0), O.unsqueeze(target, 0)
    c = logp.shape[1]
    if target.dtype.is_floating_point:
        raise RuntimeError(f"{name}: expected class indices of an integer dtype, got "
                           f"{target.dtype}")
    expect = (logp.shape[0],) + tuple(logp.shape[2:])
    if tuple(target.shape) != expect:
        raise ValueError(f"{name}: expected target of size {list(expect)} for input of size "
                         f"{list(logp.shape)}, got {list(target.shape)}")
    target = O.to(target, dt.int64)
    valid = target != ignore_index
    safe = O.where(valid, target, O.scalar(0, dt.int64))
    picked = O.squeeze(I.gather(logp, 1, O.unsqueeze(safe, 1)), 1)
    zero = O.scalar(0.0, logp.dtype)
    if weight is not None:
        wt = O.where(valid, S.take(weight, safe, axis=0), zero)
    else:
        wt = O.to(valid, logp.dtype)
    loss = -picked * wt
    if label_smoothing > 0.0:
        if weight is not None:
            wshape = (1, c) + (1,) * (logp.ndim - 2)
            smooth = -O.sum(logp * O.reshape(weight, wshape), 1)
        else:
            smooth = -O.sum(logp, 1)
        smooth = O.where(valid, smooth, zero)
        loss = loss * (1.0 - label_smoothing) + smooth * (label_smoothing / c)
    if reduction == "mean":
        return O.sum(loss) / O.sum(wt)
    return _reduce(loss, reduction)


@fp32_op("nll_loss")
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: ``-input[i, target[i]]`` (input holds log-probabilities).

    With ``reduction='mean'`` the sum is divided by the total weight of non-ignored targets.
    """
    return _nll(input, target, weight, ignore_index, _legacy(size_average, reduce, reduction))


@fp32_op("cross_entropy")
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits ``input`` (N, C, ...) against class indices (N, ...) or class
    probabilities (N, C, ...), PyTorch's ``F.cross_entropy``.

    Args:
        input: unnormalised scores; the class dimension is 1 (or 0 for unbatched (C,)).
        target: integer class indices, or floating probabilities shaped like ``input``.
        weight: per-class rescaling (C,).
        ignore_index: target value that contributes nothing (indices only).
        reduction: 'none' | 'mean' | 'sum'.
        label_smoothing: mix the target with the uniform distribution by this amount.

    Example:
        >>> F.cross_entropy(taiji.randn(8, 5), taiji.randint(5, (8,)))
    """
    reduction = _legacy(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if (input.ndim == 2 and not target.dtype.is_floating_point and weight is None
            and label_smoothing == 0.0 and target.ndim == 1
            and target.shape[0] == input.shape[0] and input.dtype.is_floating_point):
        # the common case as one primitive (softmax - onehot backward): see _prims/nn.py
        return NN.softmax_xent(input, O.to(target, dt.int64), ignore_index=ignore_index,
                               reduction=reduction)
    cdim = 0 if input.ndim == 1 else 1
    logp = O.log_softmax(input, cdim)
    if target.dtype.is_floating_point:
        _check_same(input, target, "cross_entropy")
        c = input.shape[cdim]
        if label_smoothing > 0.0:
            target = target * (1.0 - label_smoothing) + label_smoothing / c
        prod = logp * target
        if weight is not None:
            wshape = (c,) if cdim == 0 else (1, c) + (1,) * (input.ndim - 2)
            prod = prod * O.reshape(weight, wshape)
        loss = -O.sum(prod, cdim)
        if reduction == "mean":
            n = loss.numel()
            return O.sum(loss) * (1.0 / n) if n else O.sum(loss) / 0.0
        return _reduce(loss, reduction)
    return _nll(logp, target, weight, ignore_index, reduction, label_smoothing, "cross_entropy")


@fp32_op("binary_cross_entropy")
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """-(t log x + (1 - t) log(1 - x)), logs clamped at -100 like PyTorch."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_same(input, target, "binary_cross_entropy")
    lx = O.clamp_min(O.log(input), -100.0)
    l1x = O.clamp_min(O.log(1.0 - input), -100.0)
    loss = -(target * lx + (1.0 - target) * l1x)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@fp32_op("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None, size_average=None,
                                     reduce=None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross entropy in one stable expression (optional ``pos_weight``)."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_same(input, target, "binary_cross_entropy_with_logits")
    sp = O.log1p(O.exp(-O.abs(input))) + O.maximum(-input, 0.0)  # softplus(-x)
    if pos_weight is not None:
        lw = (pos_weight - 1.0) * target + 1.0
        loss = (1.0 - target) * input + lw * sp
    else:
        loss = (1.0 - target) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@fp32_op("mse_loss")
def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
             reduction: str = "mean", weight=None) -> Tensor:
    """(input - target)^2, reduced."""
    d = input - target
    return _reduce(d * d, _legacy(size_average, reduce, reduction))


@fp32_op("l1_loss")
def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
            reduction: str = "mean") -> Tensor:
    """|input - target|, reduced."""
    return _reduce(O.abs(input - target), _legacy(size_average, reduce, reduction))


@fp32_op("smooth_l1_loss")
def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta."""
    reduction = _legacy(size_average, reduce, reduction)
    d = O.abs(input - target)
    if beta == 0.0:
        return _reduce(d, reduction)
    loss = O.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction)


@fp32_op("huber_loss")
def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean",
               delta: float = 1.0, weight=None) -> Tensor:
    """0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta)."""
    d = O.abs(input - target)
    loss = O.where(d <= delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss, reduction)


@fp32_op("kl_div")
def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) pointwise: ``target * (log target - input)``; input holds
    log-probabilities. ``reduction='batchmean'`` divides the sum by the batch size."""
    reduction = _legacy(size_average, reduce, reduction)
    if log_target:
        loss = O.exp(target) * (target - input)
    else:
        pos = target > 0
        safe = O.where(pos, target, O.scalar(1.0, target.dtype))
        loss = O.where(pos, target * O.log(safe), O.scalar(0.0, target.dtype)) - target * input
    if reduction == "batchmean":
        return O.sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


@fp32_op("cosine_embedding_loss")
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor,
                          margin: float = 0.0, size_average=None, reduce=None,
                          reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) for target 1; max(0, cos(x1, x2) - margin) for target -1."""
    eps = 1e-12
    dim = input1.ndim - 1
    prod = O.sum(input1 * input2, dim)
    m1 = O.sum(input1 * input1, dim) + eps
    m2 = O.sum(input2 * input2, dim) + eps
    cos = prod / O.sqrt(m1 * m2)
    zero = O.scalar(0.0, cos.dtype)
    pos = O.where(target == 1, 1.0 - cos, zero)
    neg = O.where(target == -1, O.clamp_min(cos - margin, 0.0), zero)
    return _reduce(pos + neg, _legacy(size_average, reduce, reduction))


@fp32_op("margin_ranking_loss")
def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """max(0, -target * (x1 - x2) + margin)."""
    loss = O.clamp_min(-target * (input1 - input2) + margin, 0.0)
    return _reduce(loss, _legacy(size_average, reduce, reduction))


@fp32_op("soft_margin_loss")
def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None,
                     reduction: str = "mean") -> Tensor:
    """log(1 + exp(-y x))."""
    return _reduce(O.softplus(-target * input), _legacy(size_average, reduce, reduction))


@fp32_op("hinge_embedding_loss")
def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0,
                         size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    zero = O.scalar(0.0, input.dtype)
    loss = O.where(target == 1, input, zero) + \
        O.where(target == -1, O.clamp_min(margin - input, 0.0), zero)
    return _reduce(loss, _legacy(size_average, reduce, reduction))


@fp32_op("poisson_nll_loss")
def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True,
                     full: bool = False, size_average=None, eps: float = 1e-8, reduce=None,
                     reduction: str = "mean") -> Tensor:
    loss = O.exp(input) - target * input if log_input else input - target * O.log(input + eps)
    if full:
        st = target * O.log(O.clamp_min(target, 1.0)) - target + \
            0.5 * O.log(2 * math.pi * O.clamp_min(target, 1.0))
        loss = loss + O.where(target > 1, st, O.scalar(0.0, st.dtype))
    return _reduce(loss, _legacy(size_average, reduce, reduction))


@fp32_op("gaussian_nll_loss")
def gaussian_nll_loss(input: Tensor, target: Tensor, var: Tensor, full: bool = False,
                      eps: float = 1e-6, reduction: str = "mean") -> Tensor:
    v = O.clamp_min(var, eps)
    loss = 0.5 * (O.log(v) + (input - target) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


@fp32_op("triplet_margin_loss")
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor,
                        margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean") -> Tensor:
    from taiji.nn.functional import pairwise_distance
    dp = pairwise_distance(anchor, positive, p, eps)
    dn = pairwise_distance(anchor, negative, p, eps)
    if swap:
        dn = O.minimum(dn, pairwise_distance(positive, negative, p, eps))
    return _reduce(O.clamp_min(dp - dn + margin, 0.0), _legacy(size_average, reduce, reduction))


@fp32_op("multi_margin_loss")
def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Tensor | None = None, size_average=None, reduce=None,
                      reduction: str = "mean") -> Tensor:
    c = input.shape[1]
    t = O.to(target, dt.int64)
    xy = I.gather(input, 1, O.unsqueeze(t, 1))
    m = O.clamp_min(input - xy + margin, 0.0)
    if p == 2:
        m = m * m
    if weight is not None:
        m = m * O.unsqueeze(S.take(weight, t, axis=0), 1)
    notself = I.one_hot(t, c) == 0
    loss = O.sum(O.where(notself, m, O.scalar(0.0, m.dtype)), 1) / c
    return _reduce(loss, _legacy(size_average, reduce, reduction))
