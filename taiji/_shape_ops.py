"""Shape operations (reshape, permute, expand, cat, stack, split, pad, ...), written in
primitives; part of the op layer (taiji._ops re-exports them)."""
from __future__ import annotations

import builtins
import math
from typing import Sequence

import numpy as np

from taiji import _dtypes as dt
from taiji._prims import structure as S
from taiji._ops import _dims, const, logical_or, scalar, to, where

def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    if len(shape) == 1 and shape[0] is None:
        return ()
    return tuple(int(s) for s in shape)


def _infer(shape, numel, op="view"):
    shape = list(shape)
    if shape.count(-1) > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred (-1), got {shape}")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or numel % rest:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // rest
    if math.prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


def reshape(x, *shape):
    """``x`` with a new shape of the same size; one dimension may be -1."""
    shape = _infer(_shape_arg(shape), x.numel(), "reshape")
    if shape == x.shape:
        return x
    return S.reshape(x, shape=shape)


view = reshape


def view_as(x, other):
    return reshape(x, other.shape)


def reshape_as(x, other):
    return reshape(x, other.shape)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = _dims(x, start_dim)[0], _dims(x, end_dim)[0]
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x, dim, sizes):
    d = _dims(x, dim)[0]
    sizes = _infer(sizes, x.shape[d], "unflatten")
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def squeeze(x, dim=None):
    """Remove size-1 dimensions (all, or those named by ``dim``)."""
    if dim is None:
        axes = [i for i, n in enumerate(x.shape) if n == 1]
    else:
        axes = [a for a in _dims(x, dim) if x.shape[a] == 1]
    if not axes:
        return x
    return S.reshape(x, shape=tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x, dim):
    nd = x.ndim + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}]"
                         f", but got {dim})")
    d = dim % nd
    return S.reshape(x, shape=x.shape[:d] + (1,) + x.shape[d:])


def permute(x, *dims):
    dims = _shape_arg(dims)
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {x.ndim} is not equal to len(dims) = {len(dims)}"
                           .replace("(sparse_coo)", ""))
    perm = tuple(d % x.ndim for d in dims) if x.ndim else ()
    if perm == tuple(range(x.ndim)):
        return x
    return S.transpose(x, perm=perm)


def transpose(x, dim0, dim1):
    if x.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return x
    a, b = _dims(x, dim0)[0], _dims(x, dim1)[0]
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


swapaxes = swapdims = transpose


def named(out, name: str):
    """Show ``out``'s grad_fn under PyTorch's name for the composite that made it."""
    node = out._node
    if node is not None:
        node.display = name
    return out


def t(x):
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return named(transpose(x, 0, 1), "T") if x.ndim == 2 else x


def movedim(x, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [s % x.ndim for s in src]
    dst = [d % x.ndim for d in dst]
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(x, order)


moveaxis = movedim


def expand(x, *sizes):
    """Broadcast ``x`` to ``sizes`` without copying; -1 keeps a dimension."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({x.ndim})")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    if shape == x.shape:
        return x
    return S.broadcast_to(x, shape=shape)


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, tuple(shape))


def broadcast_shapes(*shapes):
    from taiji._prims._util import broadcast_shapes as bs
    return bs(*[tuple(s) for s in shapes], op="broadcast_shapes")


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*[t.shape for t in tensors])
    return tuple(expand(t, shape) for t in tensors)


def cat(tensors: Sequence, dim=0):
    """Concatenate along ``dim`` (dtypes are promoted, as in PyTorch)."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    d = tensors[0].dtype
    for t_ in tensors[1:]:
        if t_.dtype is not d:
            d = dt.promote_types(d, t_.dtype)
    tensors = [to(t_, d) for t_ in tensors]
    if len(tensors) == 1:
        return tensors[0]
    axis = _dims(tensors[0], dim)[0]
    return S.concatenate(*tensors, axis=axis)


concat = concatenate = cat


def stack(tensors: Sequence, dim=0):
    """Join equally shaped tensors along a new dimension ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    s0 = tensors[0].shape
    for i, t_ in enumerate(tensors[1:], 1):
        if t_.shape != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} "
                               f"at entry 0 and {list(t_.shape)} at entry {i}")
    nd = len(s0) + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}]"
                         f", but got {dim})")
    return cat([unsqueeze(t_, dim) for t_ in tensors], dim)


def hstack(tensors):
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([t_ if t_.ndim > 1 else unsqueeze(t_, 0) for t_ in tensors], 0)


def narrow(x, dim, start, length):
    d = _dims(x, dim)[0]
    n = x.shape[d]
    if start < 0:
        start += n
    if not (0 <= start and start + length <= n and length >= 0):
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                         f"({n}) of dim {d}")
    spec = tuple((start, start + length, 1) if i == d else (0, s, 1)
                 for i, s in enumerate(x.shape))
    return S.slice_(x, spec=spec)


def select(x, dim, index):
    d = _dims(x, dim)[0]
    n = x.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{list(x.shape)} at dimension {d}")
    return squeeze(narrow(x, d, index % n, 1), d)


def split(x, split_size_or_sections, dim=0):
    """Split into chunks of a size, or of the listed sizes, along ``dim``."""
    d = _dims(x, dim)[0]
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise RuntimeError(f"split expects split_size be positive, got {step}")
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got split_sizes="
                               f"{sizes}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(x, d, start, s))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    n = x.shape[_dims(x, dim)[0]]
    return split(x, builtins.max(1, -(-n // chunks)), dim)


def tensor_split(x, sections, dim=0):
    n = x.shape[_dims(x, dim)[0]]
    q, r = divmod(n, sections)
    return split(x, [q + 1] * r + [q] * (sections - r), dim)


def unbind(x, dim=0):
    d = _dims(x, dim)[0]
    return tuple(select(x, d, i) for i in range(x.shape[d]))


def flip(x, dims):
    dims = _dims(x, dims)
    return S.flip(x, dims=dims) if dims else x


def fliplr(x):
    return flip(x, 1)


def flipud(x):
    return flip(x, 0)


def roll(x, shifts, dims=None):
    """Shift elements cyclically along ``dims`` (flattened when None)."""
    if dims is None:
        return reshape(roll(reshape(x, -1), shifts, 0), x.shape)
    if isinstance(shifts, int):
        shifts, dims = (shifts,), (dims,) if isinstance(dims, int) else dims
    for s, d in zip(shifts, dims):
        d = _dims(x, d)[0]
        n = x.shape[d]
        s %= n
        if s:
            x = cat([narrow(x, d, n - s, s), narrow(x, d, 0, n - s)], d)
    return x


def repeat(x, *sizes):
    """Tile ``x`` ``sizes`` times along each dimension (torch.Tensor.repeat)."""
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    x = reshape(x, (1,) * (len(sizes) - x.ndim) + x.shape)
    # insert a broadcast axis before each dim, expand, then merge
    inter = []
    for n in x.shape:
        inter += [1, n]
    y = reshape(x, inter)
    big = []
    for r, n in zip(sizes, x.shape):
        big += [r, n]
    y = expand(y, big)
    return reshape(y, tuple(r * n for r, n in zip(sizes, x.shape)))


def tile(x, dims):
    dims = tuple(dims)
    if len(dims) < x.ndim:
        dims = (1,) * (x.ndim - len(dims)) + dims
    return repeat(x, dims)


def repeat_interleave(x, repeats, dim=None):
    if dim is None:
        x, dim = reshape(x, -1), 0
    d = _dims(x, dim)[0]
    y = unsqueeze(x, d + 1)
    shape = list(y.shape)
    shape[d + 1] = repeats
    y = expand(y, shape)
    return flatten(y, d, d + 1)


def pad(x, pad, mode="constant", value=0.0):
    """F.pad: ``pad`` lists (left, right) pairs from the last dimension backwards; negative
    amounts crop."""
    if mode != "constant":
        from taiji.nn.functional import _pad_mode
        return _pad_mode(x, pad, mode)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of amounts covering at most {x.ndim} "
                         f"dimensions, got {len(pad)}")
    cfg = [(0, 0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        cfg[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1], 0)
    crop = [(builtins.max(-lo, 0), n - builtins.max(-hi, 0), 1)
            for (lo, hi, _), n in zip(cfg, x.shape)]
    if builtins.any(c != (0, n, 1) for c, n in zip(crop, x.shape)):
        x = S.slice_(x, spec=tuple(crop))
    cfg = tuple((builtins.max(lo, 0), builtins.max(hi, 0), 0) for lo, hi, _ in cfg)
    if builtins.any(c != (0, 0, 0) for c in cfg):
        x = S.pad(x, cfg=cfg, value=value)
    return x


def contiguous(x, memory_format=None):
    return x


def clone(x, memory_format=None):
    """A copy with its own storage (differentiable)."""
    return x + scalar(0, x.dtype) if x.dtype is not dt.bool_ else logical_or(x, False)


def tril(x, diagonal=0):
    r, c = x.shape[-2:]
    mask = const(np.tri(r, c, diagonal, dtype=bool), x)
    return where(mask, x, x.zeros_like())


def triu(x, diagonal=0):
    r, c = x.shape[-2:]
    mask = const(~np.tri(r, c, diagonal - 1, dtype=bool))
    return where(mask, x, x.zeros_like())
