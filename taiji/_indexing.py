"""Indexing: __getitem__ / __setitem__ (NumPy/PyTorch semantics), gather, scatter,
index_select, masked_fill, one_hot, sort, argsort, topk. Written in primitives."""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from taiji import _dtypes as dt
from taiji._core.interpreters import STATE
from taiji._prims import elementwise as E, structure as S, reduce as R
from taiji import _ops as O


def _is_concrete(t) -> bool:
    return isinstance(t._data, np.ndarray) or type(t._data).__module__.startswith("cupy")


def _host(t) -> np.ndarray:
    """A concrete tensor's values on the host (index bookkeeping runs in NumPy)."""
    return t._concrete("indexing")


def _index_tensor(v, like=None):
    """An index entry (list, ndarray, Tensor) as an integer or bool Tensor, on the device of
    the indexed tensor ``like`` (CPU index tensors may index GPU ones, as in PyTorch)."""
    if isinstance(v, O.Tensor):
        if v.dtype.is_floating_point:
            raise IndexError(f"tensors used as indices must be long, int, byte or bool "
                             f"tensors, got {v.dtype}")
        if like is not None and type(v._data) is not type(like._data) and \
                v.device != like.device:
            v = v.to(like.device)
        return v
    arr = np.asarray(v)
    if arr.dtype == object or arr.dtype.kind == "f":
        raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, "
                         f"got {arr.dtype}")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    return O.const(arr, like)


def _expand_index(x, idx):
    """Normalise an index to a list of entries covering x's dims: ('slice', (a,b,c)),
    ('new',), ('int', i) or ('adv', Tensor) (bool masks become integer arrays)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    entries = []
    for v in idx:
        if v is None or v is Ellipsis or isinstance(v, slice):
            entries.append(v)
        elif isinstance(v, (bool, np.bool_)):
            entries.append(("boolscalar", bool(v)))
        elif isinstance(v, (int, np.integer)):
            entries.append(int(v))
        elif isinstance(v, O.Tensor) and v.ndim == 0 and not v.dtype.is_floating_point \
                and v.dtype is not dt.bool_ and _is_concrete(v):
            entries.append(int(v.item()))
        else:
            t = _index_tensor(v, x)
            if t.dtype is dt.bool_:
                if not _is_concrete(t):
                    raise IndexError(
                        "boolean mask indexing gives a data-dependent shape, which cannot be "
                        "traced; use taiji.where(mask, x, other) or masked_fill instead")
                nz = np.nonzero(_host(t))
                entries.append(("mask", t.ndim, [O.const(a.astype(np.int64), x) for a in nz]))
            else:
                entries.append(t)
    used = sum(1 if isinstance(e, (int, slice, O.Tensor)) else
               e[1] if isinstance(e, tuple) and e[0] == "mask" else 0 for e in entries)
    if used > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim} "
                         f"(got {used} indexed dimensions)")
    n_ell = sum(1 for e in entries if e is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    out = []
    for e in entries:
        if e is Ellipsis:
            out.extend([slice(None)] * (x.ndim - used))
        elif isinstance(e, tuple) and e[0] == "mask":
            out.extend(e[2])
        else:
            out.append(e)
    if n_ell == 0:
        out.extend([slice(None)] * (x.ndim - used))
    return out


def _int_first(idx, x=None):
    """PyTorch applies integer indices before advanced ones: ``x[1, :, [0, 2]]`` is
    ``x[1][:, [0, 2]]`` (NumPy would put the broadcast dims first). Returns the two passes,
    or None when the index mixes no ints with arrays."""
    if not isinstance(idx, tuple):
        return None
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
    def is_adv(v):
        return not (v is None or v is Ellipsis or isinstance(v, (slice, bool, np.bool_))
                    or is_int(v))
    if not any(is_int(v) for v in idx) or not any(is_adv(v) for v in idx):
        return None
    first, second = [], []
    for v in idx:
        if is_int(v):
            first.append(v)
        elif v is None or isinstance(v, (bool, np.bool_)):
            second.append(v)
        elif v is Ellipsis or isinstance(v, slice):
            first.append(v if v is Ellipsis else slice(None))
            second.append(v)
        else:
            t = _index_tensor(v, x)
            first.extend([slice(None)] * (t.ndim if t.dtype is dt.bool_ else 1))
            second.append(t)
    return tuple(first), tuple(second)


def getitem(x, idx):
    """``x[idx]``: ints, slices (step > 0), None, Ellipsis, integer arrays, bool masks."""
    passes = _int_first(idx, x)
    if passes is not None:
        return getitem(getitem(x, passes[0]), passes[1])
    entries = _expand_index(x, idx)
    has_adv = any(isinstance(e, O.Tensor) for e in entries)
    spec, squeeze_dims, new_dims, adv = [], [], [], []
    dim = 0
    out_pos = 0
    for e in entries:
        if e is None:
            new_dims.append(out_pos)
            out_pos += 1
            continue
        if isinstance(e, tuple) and e[0] == "boolscalar":
            new_dims.append(out_pos)
            out_pos += 1
            if not e[1]:
                raise IndexError("indexing with False is not supported")
            continue
        n = x.shape[dim]
        if isinstance(e, int):
            if not -n <= e < n:
                raise IndexError(f"index {e} is out of bounds for dimension {dim} with size {n}")
            if has_adv:
                adv.append((out_pos, O.scalar(e % n, dt.int64)))
                spec.append((0, n, 1))
                out_pos += 1
            else:
                spec.append((e % n, e % n + 1, 1))
                squeeze_dims.append(out_pos)
                out_pos += 1
        elif isinstance(e, slice):
            a, b, c = e.indices(n)
            if c <= 0:
                raise ValueError("step must be greater than zero")
            spec.append((a, max(a, b), c))
            out_pos += 1
        else:
            adv.append((out_pos, e))
            spec.append((0, n, 1))
            out_pos += 1
        dim += 1
    y = x
    if _spec_changed(spec, x):
        y = S.slice_(y, spec=tuple(spec))
    # positions in y (before squeezing/new axes): recompute with new axes removed
    shape = list(y.shape)
    for p in sorted(new_dims):
        shape.insert(p, 1)
    if new_dims:
        y = S.reshape(y, shape=tuple(shape))
    if adv:
        return O.named(_advanced(y, adv), "Index")
    if squeeze_dims:
        y = S.reshape(y, shape=tuple(n for i, n in enumerate(y.shape) if i not in squeeze_dims))
        return O.named(y, "Select")
    if y is not x:
        return O.named(y, "Unsqueeze" if y.shape != x.shape and not _spec_changed(spec, x)
                       else "Slice")
    return y


def _spec_changed(spec, x) -> bool:
    """Does slice ``spec`` select less than the whole of ``x``?"""
    return any(s != (0, n, 1) for s, n in zip(spec, x.shape))


def _advanced(y, adv):
    """Apply integer-array indices at dims ``[p for p, _ in adv]`` of ``y`` (NumPy rules)."""
    dims = [p for p, _ in adv]
    idx = [O.to(t, dt.int64) for _, t in adv]
    bshape = O.broadcast_shapes(*[t.shape for t in idx])
    sizes = [y.shape[d] for d in dims]
    for t, n, d in zip(idx, sizes, dims):
        if _is_concrete(t) and t.numel():
            a = _host(t)
            if a.max() >= n or a.min() < -n:
                bad = int(a.max()) if a.max() >= n else int(a.min())
                raise IndexError(f"index {bad} is out of bounds for dimension {d} with size {n}")
    lin = None
    for t, n in zip(idx, sizes):
        t = O.remainder(t, n)  # negative indices count from the end
        lin = t if lin is None else lin * n + t
    lin = O.expand(lin, bshape) if lin.shape != bshape else lin
    rest = [i for i in range(y.ndim) if i not in dims]
    yt = O.permute(y, dims + rest)
    yt = S.reshape(yt, shape=(math.prod(sizes),) + tuple(y.shape[i] for i in rest))
    out = S.take(yt, lin, axis=0)  # shape: bshape + rest
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    if adjacent and dims[0] != 0:
        nb = len(bshape)
        order = list(range(nb, nb + dims[0])) + list(range(nb)) + \
            list(range(nb + dims[0], out.ndim))
        out = O.permute(out, order)
    return out


def _grad_inplace_ok(x, value):
    return not (STATE.grad_enabled and (x.requires_grad or
                                        (isinstance(value, O.Tensor) and value.requires_grad)))


def setitem(x, idx, value):
    """``x[idx] = value``. Eager tensors outside autograd are written in place (views see
    it); otherwise the update is functional and differentiable."""
    if STATE.interp is None and _grad_inplace_ok(x, value) and _is_concrete(x):
        if isinstance(value, O.Tensor) and type(value._data) is not type(x._data):
            value = value.to(x.device)  # a value from another device is copied over
        v = value._data if isinstance(value, O.Tensor) else value
        passes = _int_first(idx, x)
        if passes is None:
            x._data[_np_index(idx, x)] = v
        else:  # ints first (a NumPy view), then the advanced part: PyTorch's order
            x._data[_np_index(passes[0], x)][_np_index(passes[1], x)] = v
        x._version += 1
        return
    pos = getitem(O.const(np.arange(x.numel(), dtype=np.int64).reshape(x.shape), x), idx)
    if not isinstance(value, O.Tensor):
        value = O.scalar(value, x.dtype, x)
    value = O.expand(O.to(value, x.dtype), pos.shape)
    flat = S.reshape(x, shape=(x.numel(),))
    new = index_put_flat(flat, S.reshape(pos, shape=(pos.numel(),)),
                         S.reshape(value, shape=(pos.numel(),)))
    x._assign(S.reshape(new, shape=x.shape))


def _np_index(idx, x=None):
    """``idx`` for the payload of ``x`` (index tensors moved to x's device)."""
    if isinstance(idx, tuple):
        return tuple(_np_index(i, x) for i in idx)
    if isinstance(idx, O.Tensor):
        return _index_tensor(idx, x)._data
    return idx


def index_put_flat(flat, pos, values):
    """``flat`` with ``values`` written at positions ``pos`` (1-D), differentiably:
    the old entries are masked out and the new ones added."""
    hit = S.index_add(flat.zeros_like(), pos, values.ones_like(), axis=0) if \
        flat.dtype.is_floating_point else None
    if hit is None:  # integer/bool data: no gradient needed, select on a hit mask
        mask = S.index_add(O.const(np.zeros(flat.shape, np.int8), flat), pos,
                           O.const(np.ones(pos.shape, np.int8), flat), axis=0)
        placed = S.index_add(flat.zeros_like(), pos, values, axis=0)
        return E.select(O.to(mask, dt.bool_), placed, flat)
    keep = E.select(O.to(hit, dt.bool_), flat.zeros_like(), flat)
    # duplicate positions: the last write wins, as in NumPy
    last = _last_occurrence(pos)
    vals = values if last is None else values * last
    return keep + S.index_add(flat.zeros_like(), pos, vals, axis=0)


def _last_occurrence(pos):
    if not _is_concrete(pos):
        return None
    p = _host(pos)
    if len(np.unique(p)) == len(p):
        return None
    keep = np.zeros(len(p), dtype=bool)
    _, first_rev = np.unique(p[::-1], return_index=True)
    keep[len(p) - 1 - first_rev] = True
    return O.const(keep.astype(np.float32), pos)


def gather(x, dim, index):
    """torch.gather: ``out[i][j] = x[index[i][j]][j]`` along ``dim``."""
    d = O._dims(x, dim)[0]
    return S.take_along_axis(x, O.to(index, dt.int64), axis=d)


def take_along_dim(x, indices, dim=None):
    if dim is None:
        return S.take_along_axis(O.reshape(x, -1), O.to(O.reshape(indices, -1), dt.int64), axis=0)
    d = O._dims(x, dim)[0]
    idx = O.to(indices, dt.int64)
    shape = list(O.broadcast_shapes(tuple(n if i != d else 1 for i, n in enumerate(x.shape)),
                                    tuple(n if i != d else 1 for i, n in enumerate(idx.shape))))
    xs = list(shape)
    xs[d] = x.shape[d]
    ish = list(shape)
    ish[d] = idx.shape[d]
    return S.take_along_axis(O.expand(x, xs), O.expand(idx, ish), axis=d)



def scatter_add(x, dim, index, src):
    """torch.scatter_add: ``out[index[i][j]][j] += src[i][j]`` along ``dim``."""
    d = O._dims(x, dim)[0]
    return S.scatter_add(x, O.to(index, dt.int64), O.to(src, x.dtype), axis=d)


def scatter(x, dim, index, src=None, value=None, reduce=None):
    """torch.scatter: write ``src`` (or ``value``) at ``index`` along ``dim``."""
    d = O._dims(x, dim)[0]
    index = O.to(index, dt.int64)
    if src is None:
        src = O.expand(O.scalar(value, x.dtype, x), index.shape)
    elif not isinstance(src, O.Tensor):
        src = O.expand(O.scalar(src, x.dtype, x), index.shape)
    src = O.to(src, x.dtype)
    if src.shape != index.shape:
        src = S.slice_(src, spec=tuple((0, n, 1) for n in index.shape))
    if reduce == "add":
        return S.scatter_add(x, index, src, axis=d)
    if reduce is not None:
        raise ValueError(f"scatter: reduce must be None or 'add', got {reduce!r}")
    hit = S.scatter_add(O.const(np.zeros(x.shape, np.int32), x), index,
                        O.const(np.ones(index.shape, np.int32), x), axis=d)
    # duplicate targets: one write wins (the last, as in NumPy), never their sum
    keep = _scatter_last(index, d)
    if keep is not None:
        src = E.select(keep, src, src.zeros_like())
    placed = S.scatter_add(x.zeros_like(), index, src, axis=d)
    return E.select(O.to(hit, dt.bool_), placed, x)


def _scatter_last(index, d):
    """Bool mask over ``index``: True at the last write to each target (None: no repeats)."""
    if not _is_concrete(index) or index.ndim == 0:
        return None
    idx = _host(index)
    coords = list(np.indices(idx.shape))
    coords[d] = idx
    span = [int(max(c.max(), 0)) + 1 if c.size else 1 for c in coords]
    pos = np.ravel_multi_index(tuple(c.reshape(-1) for c in coords), span).reshape(-1)
    if len(np.unique(pos)) == len(pos):
        return None
    keep = np.zeros(len(pos), dtype=bool)
    _, first_rev = np.unique(pos[::-1], return_index=True)
    keep[len(pos) - 1 - first_rev] = True
    return O.const(keep.reshape(idx.shape), index)


def index_select(x, dim, index):
    d = O._dims(x, dim)[0]
    if index.ndim > 1:
        raise IndexError(f"index_select(): Index is supposed to be a vector, got {index.ndim}D")
    n = x.shape[d]
    if _is_concrete(index) and index.numel():
        a = _host(index)
        if a.max() >= n or a.min() < 0:
            raise IndexError(f"index_select(): index out of range in self (dimension {d} has "
                             f"size {n}, got index {int(a.max() if a.max() >= n else a.min())})")
    return S.take(x, O.to(index, dt.int64), axis=d)


def index_add(x, dim, index, source, *, alpha=1):
    d = O._dims(x, dim)[0]
    src = source if alpha == 1 else source * alpha
    return S.index_add(x, O.to(index, dt.int64), O.to(src, x.dtype), axis=d)


def masked_fill(x, mask, value):
    """``x`` with ``value`` where ``mask`` is True (broadcasting)."""
    v = value if isinstance(value, O.Tensor) else O.scalar(value, x.dtype)
    return E.select(O.to(mask, dt.bool_), O.to(v, x.dtype), x)


def masked_select(x, mask):
    return getitem(O.expand(x, O.broadcast_shapes(x.shape, mask.shape)),
                   O.expand(mask, O.broadcast_shapes(x.shape, mask.shape)))


def nonzero(x, as_tuple=False):
    if not _is_concrete(x):
        raise RuntimeError("nonzero() has a data-dependent shape and cannot be traced")
    nz = np.nonzero(_host(x))
    if as_tuple:
        return tuple(O.const(a.astype(np.int64), x) for a in nz)
    return O.const(np.stack(nz, axis=1).astype(np.int64), x)


def one_hot(tensor, num_classes=-1):
    """Integer class indices -> int64 one-hot vectors on a new last dimension."""
    if tensor.dtype.is_floating_point:
        raise RuntimeError("one_hot is only applicable to index tensor")
    if num_classes < 0:
        if not _is_concrete(tensor):
            raise RuntimeError("one_hot: pass num_classes under a transform (the count would "
                               "depend on the data)")
        num_classes = int(_host(tensor).max()) + 1 if tensor.numel() else 0
    classes = O.const(np.arange(num_classes, dtype=np.int64), tensor)
    return O.to(E.eq(O.unsqueeze(O.to(tensor, dt.int64), -1), classes), dt.int64)


SortResult = namedtuple("SortResult", ["values", "indices"])


def argsort(x, dim=-1, descending=False, stable=True):
    if x.ndim == 0:
        return O.scalar(0, dt.int64)
    return R.argsort(x, axis=O._dims(x, dim)[0], descending=descending)


def sort(x, dim=-1, descending=False, stable=True):
    """(values, indices) sorted along ``dim``; gradients flow through the values."""
    if x.ndim == 0:
        return SortResult(x, O.scalar(0, dt.int64))
    d = O._dims(x, dim)[0]
    idx = R.argsort(x, axis=d, descending=descending)
    return SortResult(S.take_along_axis(x, idx, axis=d), idx)


def topk(x, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (or smallest) entries along ``dim`` and their indices."""
    d = O._dims(x, dim)[0] if x.ndim else 0
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {d} of size {n}")
    idx = R.argsort(x, axis=d, descending=largest)
    idx = O.narrow(idx, d, 0, k)
    return SortResult(S.take_along_axis(x, idx, axis=d), idx)


def kthvalue(x, k, dim=-1, keepdim=False):
    d = O._dims(x, dim)[0]
    v, i = sort(x, d)
    v, i = O.select(v, d, k - 1), O.select(i, d, k - 1)
    if keepdim:
        v, i = O.unsqueeze(v, d), O.unsqueeze(i, d)
    return SortResult(v, i)


def median(x, dim=None, keepdim=False):
    if dim is None:
        v, _ = sort(O.reshape(x, -1))
        return O.select(v, 0, (x.numel() - 1) // 2)
    n = x.shape[O._dims(x, dim)[0]]
    return kthvalue(x, (n - 1) // 2 + 1, dim, keepdim)
