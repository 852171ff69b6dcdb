"""Structural primitives: reshape, transpose, broadcast, slice, pad, concatenate, flip,
and the indexing family (take, take_along_axis, scatter_add, index_add)."""
from __future__ import annotations

import math

from taiji import _dtypes as dt
from taiji._core.primitive import Primitive, ShapedArray
from taiji._prims._util import broadcast_shapes, moveaxis_to_front
from taiji._prims._batching import loop_batch
from taiji._prims.elementwise import unbroadcast
from taiji.backends import backend_for_xp

# ---------------------------------------------------------------- reshape

reshape = Primitive("reshape")
reshape.def_impl(lambda xp, x, *, shape: x.reshape(shape))


@reshape.def_shape
def _reshape_shape(x, *, shape):
    if math.prod(shape) != math.prod(x.shape):
        raise RuntimeError(f"reshape: shape {list(shape)} is invalid for input of shape "
                           f"{list(x.shape)} ({math.prod(x.shape)} elements)")
    return ShapedArray(tuple(shape), x.dtype)


reshape.def_vjp(lambda g, ins, out, *, shape: (g.reshape(ins[0].shape),))
reshape.def_jvp(lambda ts, ins, out, *, shape: ts[0].reshape(shape))
reshape.def_batch(lambda ins, dims, *, shape: (
    reshape(moveaxis_to_front(ins[0], dims[0]),
            shape=(ins[0].shape[dims[0]],) + tuple(shape)), 0))

# ---------------------------------------------------------------- transpose

transpose = Primitive("transpose")
transpose.def_impl(lambda xp, x, *, perm: x.transpose(perm))


@transpose.def_shape
def _transpose_shape(x, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise RuntimeError(f"permute: dims {list(perm)} are not a permutation of the "
                           f"{x.ndim} dimension(s) of a tensor of shape {list(x.shape)}")
    return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype)


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


transpose.def_vjp(lambda g, ins, out, *, perm: (transpose(g, perm=_inverse(perm)),))
transpose.def_jvp(lambda ts, ins, out, *, perm: transpose(ts[0], perm=perm))
transpose.def_batch(lambda ins, dims, *, perm: (
    transpose(moveaxis_to_front(ins[0], dims[0]), perm=(0,) + tuple(p + 1 for p in perm)), 0))

# ---------------------------------------------------------------- broadcast_to

broadcast_to = Primitive("broadcast_to")
broadcast_to.def_impl(lambda xp, x, *, shape: xp.broadcast_to(x, shape))


@broadcast_to.def_shape
def _broadcast_shape(x, *, shape):
    if len(shape) < x.ndim or broadcast_shapes(x.shape, shape, op="expand") != tuple(shape):
        raise RuntimeError(f"expand: the expanded size {list(shape)} must match the existing "
                           f"size {list(x.shape)} at each non-singleton dimension")
    return ShapedArray(tuple(shape), x.dtype)


broadcast_to.def_vjp(lambda g, ins, out, *, shape: (unbroadcast(g, ins[0].shape),))
broadcast_to.def_jvp(lambda ts, ins, out, *, shape: broadcast_to(ts[0], shape=shape))


@broadcast_to.def_batch
def _broadcast_batch(ins, dims, *, shape):
    x = moveaxis_to_front(ins[0], dims[0])
    lead = len(shape) - (x.ndim - 1)
    x = x.reshape((x.shape[0],) + (1,) * lead + x.shape[1:])
    return broadcast_to(x, shape=(x.shape[0],) + tuple(shape)), 0

# ---------------------------------------------------------------- slice and pad
# slice takes normalised (start, stop, step) per dim, step >= 1. pad takes (lo, hi, interior)
# per dim, all >= 0; interior padding makes pad the exact transpose of a strided slice.


slice_ = Primitive("slice")
slice_.def_impl(lambda xp, x, *, spec: x[tuple(slice(a, b, c) for a, b, c in spec)])


def _slice_len(a, b, c):
    return max(0, (b - a + c - 1) // c)


@slice_.def_shape
def _slice_shape(x, *, spec):
    return ShapedArray(tuple(_slice_len(*s) for s in spec), x.dtype)


@slice_.def_vjp
def _slice_vjp(g, ins, out, *, spec):
    x = ins[0]
    cfg = []
    for (a, b, c), n, m in zip(spec, x.shape, g.shape):
        last = a + (m - 1) * c if m else a
        cfg.append((a, n - last - 1 if m else n - a, c - 1 if m > 1 else 0))
    return (pad(g, cfg=tuple(cfg), value=0.0),)


slice_.def_jvp(lambda ts, ins, out, *, spec: slice_(ts[0], spec=spec))
slice_.def_batch(lambda ins, dims, *, spec: (
    slice_(moveaxis_to_front(ins[0], dims[0]),
           spec=((0, ins[0].shape[dims[0]], 1),) + tuple(spec)), 0))

pad = Primitive("pad")


@pad.def_impl
def _pad_impl(xp, x, *, cfg, value):
    shape = tuple(lo + hi + n + max(n - 1, 0) * it for (lo, hi, it), n in zip(cfg, x.shape))
    out = xp.full(shape, value, dtype=x.dtype)
    out[tuple(slice(lo, lo + n + max(n - 1, 0) * it, it + 1)
              for (lo, hi, it), n in zip(cfg, x.shape))] = x
    return out


@pad.def_shape
def _pad_shape(x, *, cfg, value):
    if len(cfg) != x.ndim or any(v < 0 for c in cfg for v in c):
        raise ValueError(f"pad: expected {x.ndim} non-negative (lo, hi, interior) triples, "
                         f"got {cfg}")
    return ShapedArray(tuple(lo + hi + n + max(n - 1, 0) * it
                             for (lo, hi, it), n in zip(cfg, x.shape)), x.dtype)


@pad.def_vjp
def _pad_vjp(g, ins, out, *, cfg, value):
    x = ins[0]
    spec = tuple((lo, lo + n + max(n - 1, 0) * it, it + 1) for (lo, hi, it), n in zip(cfg, x.shape))
    return (slice_(g, spec=spec),)


pad.def_jvp(lambda ts, ins, out, *, cfg, value: pad(ts[0], cfg=cfg, value=0.0))
pad.def_batch(lambda ins, dims, *, cfg, value: (
    pad(moveaxis_to_front(ins[0], dims[0]), cfg=((0, 0, 0),) + tuple(cfg), value=value), 0))

# ---------------------------------------------------------------- concatenate

concatenate = Primitive("concatenate")
concatenate.def_impl(lambda xp, *xs, axis: xp.concatenate(xs, axis=axis))


@concatenate.def_shape
def _concat_shape(*xs, axis):
    x0 = xs[0]
    for i, x in enumerate(xs[1:], 1):
        if x.dtype is not x0.dtype:
            raise TypeError(f"cat: all tensors must have one dtype, got {x0.dtype} and "
                            f"{x.dtype} (tensor {i})")
        if x.ndim != x0.ndim or any(a != b for k, (a, b) in enumerate(zip(x.shape, x0.shape))
                                    if k != axis):
            raise RuntimeError(
                f"cat: sizes of tensors must match except in dimension {axis}: tensor 0 has "
                f"shape {list(x0.shape)}, tensor {i} has shape {list(x.shape)}")
    shape = list(x0.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return ShapedArray(tuple(shape), x0.dtype)


@concatenate.def_vjp
def _concat_vjp(g, ins, out, *, axis):
    res, start = [], 0
    for x in ins:
        n = x.shape[axis]
        spec = tuple((start, start + n, 1) if k == axis else (0, s, 1)
                     for k, s in enumerate(g.shape))
        res.append(slice_(g, spec=spec) if x.requires_grad else None)
        start += n
    return tuple(res)


@concatenate.def_jvp
def _concat_jvp(ts, ins, out, *, axis):
    if all(t is None for t in ts):
        return None
    return concatenate(*[t if t is not None else x.zeros_like() for t, x in zip(ts, ins)],
                       axis=axis)


@concatenate.def_batch
def _concat_batch(ins, dims, *, axis):
    size = next(t.shape[d] for t, d in zip(ins, dims) if d is not None)
    args = [moveaxis_to_front(t, d) if d is not None else
            t.unsqueeze(0).expand((size,) + t.shape) for t, d in zip(ins, dims)]
    return concatenate(*args, axis=axis + 1), 0

# ---------------------------------------------------------------- flip

flip = Primitive("flip")
flip.def_impl(lambda xp, x, *, dims: xp.flip(x, dims))
flip.def_shape(lambda x, *, dims: x)
flip.def_vjp(lambda g, ins, out, *, dims: (flip(g, dims=dims),))
flip.def_jvp(lambda ts, ins, out, *, dims: flip(ts[0], dims=dims))
flip.def_batch(lambda ins, dims_, *, dims: (
    flip(moveaxis_to_front(ins[0], dims_[0]), dims=tuple(d + 1 for d in dims)), 0))

# ---------------------------------------------------------------- indexing family


def _check_index(op, idx):
    if idx.dtype.is_floating_point or idx.dtype is dt.bool_:
        raise TypeError(f"{op}: indices must be an integer tensor, got {idx.dtype}")


take = Primitive("take")  # out = x.take(idx, axis): x.shape[:a] + idx.shape + x.shape[a+1:]
take.def_impl(lambda xp, x, idx, *, axis: xp.take(x, idx, axis=axis))


@take.def_shape
def _take_shape(x, idx, *, axis):
    _check_index("index", idx)
    return ShapedArray(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)


@take.def_vjp
def _take_vjp(g, ins, out, *, axis):
    x, idx = ins
    return index_add(x.zeros_like(), idx, g, axis=axis), None


take.def_jvp(lambda ts, ins, out, *, axis: None if ts[0] is None else
             take(ts[0], ins[1], axis=axis))


@take.def_batch
def _take_batch(ins, dims, *, axis):
    (x, idx), (dx, di) = ins, dims
    if di is None:
        return take(moveaxis_to_front(x, dx), idx, axis=axis + 1), 0
    idx = moveaxis_to_front(idx, di)
    if dx is None:  # the index's batch axis lands where the indexed axis was
        return take(x, idx, axis=axis), axis
    # both batched: flatten (batch, axis) into one axis and offset each row's indices
    x = moveaxis_to_front(x, dx).movedim(axis + 1, 1)
    b, n = x.shape[0], x.shape[1]
    rest = x.shape[2:]
    import numpy as np
    from taiji._ops import const
    flat = x.reshape((b * n,) + rest)
    offs = const((np.arange(b) * n).astype(idx.dtype.np).reshape((b,) + (1,) * (idx.ndim - 1)),
                 idx)
    idx = idx + (idx < 0).to(idx.dtype) * n + offs  # negative indices count from the end
    out = take(flat, idx, axis=0)  # (b, *idx, *x.shape[:axis], *x.shape[axis+1:])
    k = idx.ndim - 1
    if axis:  # move the leading dims of x back in front of the index dims
        perm = (0,) + tuple(range(1 + k, 1 + k + axis)) + tuple(range(1, 1 + k)) + \
            tuple(range(1 + k + axis, out.ndim))
        out = transpose(out, perm=perm)
    return out, 0


index_add = Primitive("index_add")  # x with src added at idx along axis (src shaped like take)


@index_add.def_impl
def _index_add_impl(xp, x, idx, src, *, axis):
    out = x.copy()
    pre = (slice(None),) * axis
    backend_for_xp(xp).add_at(out, pre + (idx,), src)  # np.add.at; CuPy's differs
    return out


@index_add.def_shape
def _index_add_shape(x, idx, src, *, axis):
    _check_index("index_add", idx)
    want = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    if src.shape != want:
        raise RuntimeError(f"index_add: source shape {list(src.shape)} does not match "
                           f"{list(want)} (input {list(x.shape)}, index {list(idx.shape)}, "
                           f"dim {axis})")
    return x


index_add.def_vjp(lambda g, ins, out, *, axis: (g, None, take(g, ins[1], axis=axis)))


@index_add.def_jvp
def _index_add_jvp(ts, ins, out, *, axis):
    tx, _, ts_ = ts
    if tx is None and ts_ is None:
        return None
    tx = tx if tx is not None else out.zeros_like()
    ts_ = ts_ if ts_ is not None else ins[2].zeros_like()
    return index_add(tx, ins[1], ts_, axis=axis)


@index_add.def_batch
def _index_add_batch(ins, dims, *, axis):
    (x, idx, src), (dx, di, ds) = ins, dims
    if di is not None:
        return loop_batch(index_add)(ins, dims, axis=axis)
    size = x.shape[dx] if dx is not None else src.shape[ds]
    x = moveaxis_to_front(x, dx) if dx is not None else \
        x.unsqueeze(0).expand((size,) + tuple(x.shape))
    src = moveaxis_to_front(src, ds) if ds is not None else \
        src.unsqueeze(0).expand((size,) + tuple(src.shape))
    return index_add(x, idx, src, axis=axis + 1), 0

take_along_axis = Primitive("take_along_axis")  # torch.gather
take_along_axis.def_impl(lambda xp, x, idx, *, axis: xp.take_along_axis(x, idx, axis=axis))


@take_along_axis.def_shape
def _tal_shape(x, idx, *, axis):
    _check_index("gather", idx)
    if idx.ndim != x.ndim:
        raise RuntimeError(f"gather: index tensor must have the same number of dimensions as "
                           f"input ({x.ndim}), got {idx.ndim}")
    for k, (a, b) in enumerate(zip(x.shape, idx.shape)):
        if k != axis and a != b:
            raise RuntimeError(f"gather: size of index {list(idx.shape)} must match input "
                               f"{list(x.shape)} except at dimension {axis}; differs at {k}")
    return ShapedArray(idx.shape, x.dtype)


take_along_axis.def_vjp(lambda g, ins, out, *, axis: (
    scatter_add(ins[0].zeros_like(), ins[1], g, axis=axis), None))
take_along_axis.def_jvp(lambda ts, ins, out, *, axis: None if ts[0] is None else
                        take_along_axis(ts[0], ins[1], axis=axis))


@take_along_axis.def_batch
def _tal_batch(ins, dims, *, axis):
    (x, idx), (dx, di) = ins, dims
    size = x.shape[dx] if dx is not None else idx.shape[di]
    x = moveaxis_to_front(x, dx) if dx is not None else x.unsqueeze(0).expand((size,) + x.shape)
    idx = (moveaxis_to_front(idx, di) if di is not None
           else idx.unsqueeze(0).expand((size,) + idx.shape))
    return take_along_axis(x, idx, axis=axis + 1), 0


scatter_add = Primitive("scatter_add")  # torch.scatter_add: out[idx[i]][j] += src[i][j]


def _along_index(xp, idx, axis):
    # (aranges rather than xp.indices(sparse=True), which CuPy lacks)
    nd = idx.ndim
    return tuple(idx if k == axis else
                 xp.arange(n).reshape((1,) * k + (n,) + (1,) * (nd - k - 1))
                 for k, n in enumerate(idx.shape))


@scatter_add.def_impl
def _scatter_add_impl(xp, x, idx, src, *, axis):
    out = x.copy()
    if idx.shape != src.shape:
        src = src[tuple(slice(0, n) for n in idx.shape)]
    backend_for_xp(xp).add_at(out, _along_index(xp, idx, axis), src)
    return out


@scatter_add.def_shape
def _scatter_add_shape(x, idx, src, *, axis):
    _check_index("scatter_add", idx)
    if not (idx.ndim == x.ndim == src.ndim):
        raise RuntimeError(f"scatter_add: index, input and src must have the same number of "
                           f"dimensions, got {idx.ndim}, {x.ndim}, {src.ndim}")
    return x


@scatter_add.def_vjp
def _scatter_add_vjp(g, ins, out, *, axis):
    x, idx, src = ins
    gs = take_along_axis(g, idx, axis=axis) if src.requires_grad else None
    if gs is not None and gs.shape != src.shape:
        gs = pad(gs, cfg=tuple((0, s - n, 0) for s, n in zip(src.shape, gs.shape)), value=0.0)
    return g, None, gs


scatter_add.def_jvp(lambda ts, ins, out, *, axis: None if ts[0] is None and ts[2] is None else
                    scatter_add(ts[0] if ts[0] is not None else out.zeros_like(), ins[1],
                                ts[2] if ts[2] is not None else ins[2].zeros_like(), axis=axis))
@scatter_add.def_batch
def _scatter_add_batch(ins, dims, *, axis):
    size = next(t.shape[d] for t, d in zip(ins, dims) if d is not None)
    args = [moveaxis_to_front(t, d) if d is not None else
            t.unsqueeze(0).expand((size,) + tuple(t.shape)) for t, d in zip(ins, dims)]
    return scatter_add(*args, axis=axis + 1), 0

for _p in (reshape, transpose, broadcast_to, slice_, pad, concatenate, flip):
    _p.vjp_reads_inputs = False
