"""Primitives that pay for themselves in neural networks: softmax and log_softmax along one
axis. As compositions they cost ~10 primitive calls each way; as primitives they cost one
forward and a short VJP (``g - softmax * sum(g)``), in eager mode and in compiled graphs."""
from __future__ import annotations

from taiji._core.primitive import Primitive
from taiji._prims._util import moveaxis_to_front
from taiji._prims.reduce import reduce_sum
from taiji.backends import backend_for_xp

softmax = Primitive("softmax")
log_softmax = Primitive("log_softmax")


def _check(x, *, axis):
    if not x.dtype.is_floating_point:
        raise TypeError(f"softmax: expected a floating tensor, got {x.dtype}")
    if not 0 <= axis < max(x.ndim, 1):
        raise IndexError(f"softmax: dimension {axis} out of range for shape {list(x.shape)}")
    return x


@softmax.def_impl
def _softmax_impl(xp, x, *, axis):
    if x.ndim == 0:
        return xp.ones_like(x)
    e = x - x.max(axis=axis, keepdims=True)
    xp.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


@log_softmax.def_impl
def _log_softmax_impl(xp, x, *, axis):
    if x.ndim == 0:
        return xp.zeros_like(x)
    z = x - x.max(axis=axis, keepdims=True)
    s = xp.exp(z).sum(axis=axis, keepdims=True)
    z -= xp.log(s)
    return z


softmax.def_shape(_check)
log_softmax.def_shape(_check)


@softmax.def_vjp
def _softmax_vjp(g, ins, out, *, axis):
    gy = g * out
    return (gy - out * reduce_sum(gy, axes=(axis,), keepdims=True),)


@log_softmax.def_vjp
def _log_softmax_vjp(g, ins, out, *, axis):
    return (g - out.exp() * reduce_sum(g, axes=(axis,), keepdims=True),)


@softmax.def_jvp
def _softmax_jvp(ts, ins, out, *, axis):
    t = ts[0]
    return out * (t - reduce_sum(out * t, axes=(axis,), keepdims=True))


@log_softmax.def_jvp
def _log_softmax_jvp(ts, ins, out, *, axis):
    t = ts[0]
    return t - reduce_sum(out.exp() * t, axes=(axis,), keepdims=True)


softmax.def_batch(lambda ins, dims, *, axis: (
    softmax(moveaxis_to_front(ins[0], dims[0]), axis=axis + 1), 0))
log_softmax.def_batch(lambda ins, dims, *, axis: (
    log_softmax(moveaxis_to_front(ins[0], dims[0]), axis=axis + 1), 0))

# ---------------------------------------------------------------- softmax cross-entropy
# cross_entropy(logits, class indices) as one primitive: the composite (log_softmax, gather,
# masks, mean) costs a dozen primitive calls each way; this one costs one forward and one
# backward (``softmax - onehot``, scaled), the form every framework uses. Its gradient is a
# primitive too, with a VJP in primitives, so double backward still works.

softmax_xent = Primitive("softmax_cross_entropy")
softmax_xent_grad = Primitive("softmax_cross_entropy_grad")


# many rows of a handful of classes: row sums go column by column (see _XentParts); the
# native cross-entropy (compiler/native_xent.py) follows the same rule, bit for bit
XENT_COLUMN_CLASSES, XENT_COLUMN_ROWS = 32, 128
XENT_OUT_OF_BOUNDS = ("cross_entropy: a target is out of bounds (expected class indices in "
                      "[0, C) or ignore_index)")


class _XentParts:
    """What the loss and its gradient share: shifted logits ``z``, ``e = exp(z)``, row sums
    ``s``, and which rows count. The same arithmetic serves the loss, the gradient and the
    merged primitive, so all three agree bit for bit."""

    __slots__ = ("z", "e", "s", "valid", "safe", "count", "all_valid", "flat")

    def __init__(self, xp, logits, labels, ignore_index):
        n, c = logits.shape
        # device arrays (CuPy): no column loop (a launch per column) and no host round trips
        # (each a sync, and CUDA graph capture forbids them): the count stays on the device
        host = getattr(xp, "__name__", "") == "numpy"
        if host and c <= XENT_COLUMN_CLASSES and n >= XENT_COLUMN_ROWS:
            # many rows of a handful of classes: reduce over columns, which NumPy vectorises
            # down the rows (per-row reductions of 10 values cost ~2.5x more at 512 rows)
            m = logits[:, 0].copy()
            for j in range(1, c):
                xp.maximum(m, logits[:, j], out=m)
            z = logits - m[:, None]
            e = xp.exp(z)
            s = e[:, 0].copy()
            for j in range(1, c):
                s += e[:, j]
        else:
            z = logits - logits.max(axis=1, keepdims=True)
            e = xp.exp(z)
            s = e.sum(axis=1)
        valid = labels != ignore_index
        self.all_valid = bool(valid.all()) if host else False
        safe = labels if self.all_valid else xp.where(valid, labels, 0)
        if host and n:  # (a device check would wait for the device: PyTorch's asserts there)
            lo, hi = int(safe.min()), int(safe.max())
            if lo < 0 or hi >= c:
                raise IndexError(f"{XENT_OUT_OF_BOUNDS}: got {lo if lo < 0 else hi} with C = "
                                 f"{c} classes and ignore_index = {ignore_index}")
        self.z, self.e, self.s, self.valid, self.safe = z, e, s, valid, safe
        self.count = n if self.all_valid else int(valid.sum()) if host else \
            valid.sum(dtype=logits.dtype)
        self.flat = safe + xp.arange(n, dtype=safe.dtype) * c  # row-major index of each label


def _xent_loss(xp, p: _XentParts, dtype, reduction):
    picked = p.z.reshape(-1).take(p.flat)
    loss = xp.log(p.s) - picked
    if not p.all_valid:
        loss *= p.valid
    if reduction == "none":
        return loss.astype(dtype, copy=False)
    total = loss.sum(dtype=dtype)
    if reduction == "sum":
        return xp.asarray(total, dtype=dtype)
    if not isinstance(p.count, int):  # a device count (none valid: 0/0, NaN as below)
        return xp.asarray(total / p.count, dtype=dtype)
    return xp.asarray(total / dtype.type(p.count) if p.count else xp.nan, dtype=dtype)


def _xent_dlogits(xp, p: _XentParts, g, dtype, reduction):
    """(softmax - onehot) * g, with g divided by the count for 'mean' (d overwrites e)."""
    d = p.e
    d /= p.s[:, None]
    d.reshape(-1)[p.flat] -= 1
    if p.all_valid:
        w = g if reduction != "mean" else g / dtype.type(p.count)
        if reduction == "none":
            w = w[:, None]
        d *= xp.asarray(w, dtype=dtype)
        return d
    w = p.valid.astype(dtype)
    if reduction == "mean":
        c = p.count
        w /= c if not isinstance(c, int) else dtype.type(c) if c else dtype.type(0.0)
    w = w * g
    d *= w[:, None]
    return d.astype(dtype, copy=False)


@softmax_xent.def_impl
def _xent_impl(xp, logits, labels, *, ignore_index, reduction):
    # (CUDA: two or three kernels instead of about twenty array ops)
    both = backend_for_xp(xp).softmax_xent_with_grad(logits, labels, None, ignore_index,
                                                     reduction, "loss")
    if both is not None:
        return both[0]
    p = _XentParts(xp, logits, labels, ignore_index)
    return _xent_loss(xp, p, logits.dtype, reduction)


def _xent_shape(logits, labels, *, ignore_index, reduction):
    if not logits.dtype.is_floating_point or labels.dtype.is_floating_point:
        raise TypeError(f"cross_entropy: expected float logits and integer labels, got "
                        f"{logits.dtype} and {labels.dtype}")
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy: expected logits (N, C) and labels (N,), got "
                         f"{list(logits.shape)} and {list(labels.shape)}")
    from taiji._core.primitive import ShapedArray
    return ShapedArray(labels.shape if reduction == "none" else (), logits.dtype)


softmax_xent.def_shape(_xent_shape)


@softmax_xent.def_vjp
def _xent_vjp(g, ins, out, *, ignore_index, reduction):
    logits, labels = ins
    return (softmax_xent_grad(logits, labels, g, ignore_index=ignore_index,
                              reduction=reduction), None)


@softmax_xent.def_jvp
def _xent_jvp(ts, ins, out, *, ignore_index, reduction):
    logits, labels = ins
    if ts[0] is None:
        return None
    d = softmax_xent_grad(logits, labels, out.ones_like(), ignore_index=ignore_index,
                          reduction=reduction)
    per = reduce_sum(d * ts[0], axes=(1,), keepdims=False)
    return per if reduction == "none" else reduce_sum(per, axes=(0,), keepdims=False)


softmax_xent.def_batch(lambda ins, dims, **p: _loop(softmax_xent, ins, dims, p))


@softmax_xent_grad.def_impl
def _xent_grad_impl(xp, logits, labels, g, *, ignore_index, reduction):
    both = backend_for_xp(xp).softmax_xent_with_grad(logits, labels, g, ignore_index,
                                                     reduction, "grad")
    if both is not None:
        return both[1]
    p = _XentParts(xp, logits, labels, ignore_index)
    return _xent_dlogits(xp, p, g, logits.dtype, reduction)


softmax_xent_grad.def_shape(lambda logits, labels, g, **p: logits)


def _xent_weights(labels, g, ignore_index, reduction):
    """w[i] = g * valid[i] (/ count for 'mean'), in primitives (for double backward)."""
    from taiji._prims.elementwise import convert, ne, mul, div
    valid = convert(ne(labels, _int_scalar(labels, ignore_index)), dtype=g.dtype)
    if reduction == "mean":
        g = div(g, reduce_sum(valid, axes=(0,), keepdims=False))
    return mul(valid, g)


@softmax_xent_grad.def_vjp
def _xent_grad_vjp(h, ins, out, *, ignore_index, reduction):
    # out = (softmax(x) - onehot) * w[:, None]: linear in g, and in x its derivative is
    # w * (s * h - s * sum(s * h)) row by row
    logits, labels, g = ins
    s = softmax(logits, axis=1)
    w = _xent_weights(labels, g, ignore_index, reduction).reshape((-1, 1))
    hs = h * s
    gx = (hs - s * reduce_sum(hs, axes=(1,), keepdims=True)) * w
    unit = softmax_xent_grad(logits, labels, g.ones_like(), ignore_index=ignore_index,
                             reduction=reduction)
    gg = reduce_sum(h * unit, axes=(1,), keepdims=False)
    if reduction != "none":
        gg = reduce_sum(gg, axes=(0,), keepdims=False)
    return gx, None, gg


@softmax_xent_grad.def_jvp
def _xent_grad_jvp(ts, ins, out, *, ignore_index, reduction):
    logits, labels, g = ins
    total = None
    if ts[0] is not None:
        s = softmax(logits, axis=1)
        w = _xent_weights(labels, g, ignore_index, reduction).reshape((-1, 1))
        ts_ = ts[0] * s
        total = (ts_ - s * reduce_sum(ts_, axes=(1,), keepdims=True)) * w
    if ts[2] is not None:
        unit = softmax_xent_grad(logits, labels, g.ones_like(), ignore_index=ignore_index,
                                 reduction=reduction)
        t = ts[2] if reduction != "none" else ts[2].reshape((-1, 1))
        term = unit * t
        total = term if total is None else total + term
    return total


softmax_xent_grad.def_batch(lambda ins, dims, **p: _loop(softmax_xent_grad, ins, dims, p))


def _loop(prim, ins, dims, params):
    from taiji._prims._batching import loop_batch
    return loop_batch(prim)(ins, dims, **params)


def _int_scalar(like, value):
    from taiji._ops import scalar
    return scalar(value, like.dtype, like)


# The loss and its gradient share every expensive step (max, exp, row sums). When a compiled
# graph holds both for the same logits (a training step), the merge_softmax_xent pass binds
# this one primitive instead: one softmax for the step rather than two.
softmax_xent_with_grad = Primitive("softmax_cross_entropy_with_grad", multiple_results=True)


@softmax_xent_with_grad.def_impl
def _xent_both_impl(xp, logits, labels, g, *, ignore_index, reduction):
    both = backend_for_xp(xp).softmax_xent_with_grad(logits, labels, g, ignore_index,
                                                     reduction, "both")
    if both is not None:
        return both
    p = _XentParts(xp, logits, labels, ignore_index)
    loss = _xent_loss(xp, p, logits.dtype, reduction)  # reads z; the gradient overwrites e
    return loss, _xent_dlogits(xp, p, g, logits.dtype, reduction)


@softmax_xent_with_grad.def_shape
def _xent_both_shape(logits, labels, g, *, ignore_index, reduction):
    return (_xent_shape(logits, labels, ignore_index=ignore_index, reduction=reduction),
            logits)


@softmax_xent_with_grad.def_vjp
def _xent_both_vjp(cts, ins, outs, **p):
    # the sum of the two parts' VJPs (re-binding a compiled graph, e.g. grad(jit(f)))
    gl, gd = cts
    gx = gg = None
    if gl is not None:
        gx = _xent_vjp(gl, ins[:2], outs[0], **p)[0]
    if gd is not None:
        hx, _, gg = _xent_grad_vjp(gd, ins, outs[1], **p)
        gx = hx if gx is None else gx + hx
    return gx, None, gg  # (integer labels get no cotangent)


@softmax_xent_with_grad.def_jvp
def _xent_both_jvp(ts, ins, outs, **p):
    return (_xent_jvp(ts[:2], ins[:2], outs[0], **p), _xent_grad_jvp(ts, ins, outs[1], **p))


@softmax_xent_with_grad.def_batch
def _xent_both_batch(ins, dims, **p):
    from taiji._prims._batching import loop_batch
    return loop_batch(softmax_xent_with_grad)(ins, dims, **p)
