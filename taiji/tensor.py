"""The eager `Tensor`: a payload (a backend array, or a tracer under a transform), autograd
fields, and PyTorch's methods and operators, all forwarding to the shared op layer."""
from __future__ import annotations

import builtins

import numpy as np

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji import _indexing as I
from taiji._core import primitive as _primitive
from taiji._core.interpreters import STATE
from taiji._prims import elementwise as E
from taiji._prims import structure as S
from taiji._prims._util import swap_last_perm

_BY_NP = dt._BY_NP
_REVERSED = [tuple(range(n - 1, -1, -1)) for n in range(8)]


class Tensor:
    """A multi-dimensional array with autograd, PyTorch's API.

    Create tensors with ``taiji.tensor``, ``taiji.zeros``, ``taiji.from_numpy`` and friends.

    Example:
        >>> x = taiji.tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([2., 4.])
    """

    __slots__ = ("_data", "_requires_grad", "_grad", "_node", "_out_idx", "_version",
                 "_hooks", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # NumPy defers binary operators to Tensor

    @staticmethod
    def _from_payload(payload, requires_grad=False) -> "Tensor":
        # every op's output goes through here: _init_fields' body is spelled out rather than
        # called, to save a call per op on the eager hot path
        t = object.__new__(Tensor)
        t._data = payload
        t._requires_grad = requires_grad
        t._grad = None
        t._node = None
        t._out_idx = 0
        t._version = 0
        t._hooks = None
        t._retains_grad = False
        return t

    def __init__(self, data=None, *, dtype=None, requires_grad=False):
        from taiji._creation import tensor as _tensor
        src = _tensor([] if data is None else data, dtype=dtype)
        self._init_fields(src._data)
        if requires_grad:
            self.requires_grad_(True)

    def _init_fields(self, payload) -> None:
        """Set every field of a fresh tensor (constructors of Tensor and its subclasses)."""
        self._data = payload
        self._requires_grad = False
        self._grad = None
        self._node = None
        self._out_idx = 0
        self._version = 0
        self._hooks = None
        self._retains_grad = False

    # ------------------------------------------------------------ metadata
    @property
    def dtype(self) -> dt.DType:
        d = self._data.dtype
        return _BY_NP[d] if d.__class__ is not dt.DType else d

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return len(self._data.shape)

    def dim(self) -> int:
        return len(self._data.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        n = 1
        for s in self._data.shape:
            n *= s
        return n

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def device(self):
        from taiji._device import device_of
        return device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def grad(self):
        """The accumulated gradient (None until a backward pass reaches this leaf)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        interp = STATE.interp
        if interp is not None and hasattr(interp, "note_grad_write"):
            interp.note_grad_write(self)  # jit: this assignment is implicit output state
        self._grad = value

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Make this leaf record operations for autograd (PyTorch's requires_grad_)."""
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, "
                               f"got {self.dtype}; convert with .float() first")
        if not requires_grad and self._node is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def data(self) -> "Tensor":
        return Tensor._from_payload(self._data)

    @data.setter
    def data(self, value: "Tensor"):
        self._data = value._data

    @property
    def T(self) -> "Tensor":
        nd = len(self._data.shape)
        if nd < 2:
            return self
        return S.transpose(self, perm=_REVERSED[nd] if nd < 8 else tuple(range(nd - 1, -1, -1)))

    @property
    def mT(self) -> "Tensor":
        if self.ndim < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of "
                               f"matrices. Got {self.ndim}-D tensor.")
        return S.transpose(self, perm=swap_last_perm(len(self._data.shape)))

    @property
    def H(self):
        return self.T

    # ------------------------------------------------------------ conversion
    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The data as a NumPy array (shares memory on the CPU)."""
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return self._concrete("numpy()")

    def _concrete(self, what: str):
        d = self._data
        if type(d) is np.ndarray:
            return d
        if hasattr(d, "concrete_value"):  # e.g. a jvp tracer: its primal is known
            return d.concrete_value(what)
        if hasattr(d, "concrete_error"):
            d.concrete_error(what)
        from taiji.backends import backend_of_array
        return backend_of_array(d).to_host(d)

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        a = self._concrete("item()")
        if a.size != 1:
            raise RuntimeError(f"a Tensor with {a.size} elements cannot be converted to Scalar")
        return a.reshape(()).item() if a.dtype.kind != "V" else float(a.reshape(()))

    def tolist(self):
        a = self._concrete("tolist()")
        if a.dtype == dt.bfloat16.np:
            a = a.astype(np.float32)
        return a.tolist()

    def __array__(self, dtype=None, copy=None):
        a = self._concrete("np.asarray()")
        return a if dtype is None else a.astype(dtype)

    def __bool__(self) -> bool:
        a = self._concrete("bool()")
        if a.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous "
                               f"(shape {list(a.shape)}); use .any() or .all()")
        return bool(a.reshape(()))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(O.unbind(self, 0))

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        from taiji._printing import tensor_repr
        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self.ndim == 0 and isinstance(self._data, np.ndarray):
            return format(self.item(), spec)
        return repr(self)

    # ------------------------------------------------------------ dtype / device moves
    def to(self, *args, **kwargs) -> "Tensor":
        """Convert dtype and/or device: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
        ``to(other_tensor)``."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, dt.DType) or (isinstance(a, type) and a in (float, int, bool)):
                dtype = a
            elif a is not None:
                try:
                    dtype = dt.to_dtype(a) if not isinstance(a, str) or a in dt._BY_NAME else None
                except TypeError:
                    dtype = None
                if dtype is None:
                    device = a
        out = self
        if device is not None:
            from taiji._device import to_device
            out = to_device(out, device)
        if dtype is not None:
            out = O.to(out, dtype)
        return out

    def type(self, dtype=None):
        if dtype is None:
            return f"taiji.{self.dtype.name}"
        return self.to(dtype)

    def float(self):
        return O.to(self, dt.float32)

    def double(self):
        return O.to(self, dt.float64)

    def half(self):
        return O.to(self, dt.float16)

    def bfloat16(self):
        return O.to(self, dt.bfloat16)

    def long(self):
        return O.to(self, dt.int64)

    def int(self):
        return O.to(self, dt.int32)

    def short(self):
        return O.to(self, dt.int16)

    def bool(self):
        return O.to(self, dt.bool_)

    def byte(self):
        return O.to(self, dt.uint8)

    def char(self):
        return O.to(self, dt.int8)

    def cpu(self) -> "Tensor":
        """This tensor on the CPU (itself when it is there)."""
        return self.to("cpu")

    def cuda(self, device=None, non_blocking: bool = False) -> "Tensor":
        """This tensor on a GPU: the current one, or ``device`` (an index, 'cuda:N' or a
        taiji.device)."""
        return self.to(_cuda_device(device))

    # ------------------------------------------------------------ autograd
    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut from the autograd graph."""
        return Tensor._from_payload(self._data)

    def detach_(self) -> "Tensor":
        self._node = None
        self._requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad`` (see taiji.autograd)."""
        from taiji.autograd import backward
        backward([self], None if gradient is None else [gradient], retain_graph,
                 create_graph, inputs=inputs)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle with ``remove()``."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        from taiji.autograd import _add_hook
        return _add_hook(self, hook)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._node is not None:
            from taiji.autograd import _retain
            _retain(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    # ------------------------------------------------------------ in-place machinery
    def _assign(self, new: "Tensor") -> "Tensor":
        """Make ``new`` the value of this tensor in place (version bump). Eager tensors
        outside autograd are written into their buffer so views see the change; otherwise
        the tensor is rebound to the new value and its graph node."""
        if self._requires_grad and self._node is None and STATE.grad_enabled:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        if new.dtype is not self.dtype:
            if new.dtype.is_floating_point and not self.dtype.is_floating_point:
                raise RuntimeError(f"result type {new.dtype.name} can't be cast to the desired "
                                   f"output type {self.dtype.name}")
            new = O.to(new, self.dtype)
        if new.shape != self.shape:
            if O.broadcast_shapes(new.shape, self.shape) != self.shape:
                raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the "
                                   f"broadcast shape {list(new.shape)}")
            new = O.expand(new, self.shape)
        if (STATE.interp is None and not new._requires_grad and type(self._data) is np.ndarray
                and type(new._data) is np.ndarray and self._data.flags.writeable):
            np.copyto(self._data, new._data)
        elif STATE.interp is None and (type(self._data) is not np.ndarray or type(
                new._data) is not np.ndarray) and _device_write(self, new):
            pass
        else:
            self._data = new._data
            self._node = new._node
            self._out_idx = new._out_idx
            if new._requires_grad:
                self._requires_grad = True
        self._version += 1
        return self

    def _pre(self) -> "Tensor":
        """``self`` as the input of the op an in-place method records: a separate Tensor
        object with the current value and graph position, so that op's node keeps the
        pre-update value when ``self`` is rebound by ``_assign`` (PyTorch saves the original
        operand, so ``y.mul_(x)`` differentiates like ``y * x``). Nodes recorded earlier keep
        ``self`` itself, so their version check still catches the in-place change."""
        if self._node is None:
            return self
        t = Tensor._from_payload(self._data, self._requires_grad)
        t._node, t._out_idx, t._version = self._node, self._out_idx, self._version
        return t

    def _fast_inplace(self, ufunc, other) -> bool:
        """Eager in-place arithmetic straight into the buffer (no temporary) when no graph
        or trace is involved and dtypes already agree."""
        if STATE.interp is not None or (STATE.grad_enabled and (
                self._requires_grad or (isinstance(other, Tensor) and other._requires_grad))):
            return False
        d = self._data
        if type(d) is not np.ndarray or not d.flags.writeable:
            return False
        if isinstance(other, Tensor):
            o = other._data
            if type(o) is not np.ndarray or o.dtype != d.dtype:
                return False
        elif isinstance(other, builtins.float) and d.dtype.kind == "f":
            o = other
        elif isinstance(other, builtins.int) and not isinstance(other, builtins.bool):
            o = other
        else:
            return False
        try:
            ufunc(d, o, out=d)
        except (TypeError, ValueError):
            return False  # e.g. broadcasting into a smaller buffer: let the slow path explain
        self._version += 1
        return True

    def add_(self, other, *, alpha=1):
        if alpha == 1 and self._fast_inplace(np.add, other):
            return self
        return self._assign(O.add(self._pre(), other, alpha=alpha))

    def sub_(self, other, *, alpha=1):
        if alpha == 1 and self._fast_inplace(np.subtract, other):
            return self
        return self._assign(O.sub(self._pre(), other, alpha=alpha))

    def mul_(self, other):
        if self._fast_inplace(np.multiply, other):
            return self
        return self._assign(O.mul(self._pre(), other))

    def div_(self, other, *, rounding_mode=None):
        if rounding_mode is None and self.dtype.is_floating_point and \
                self._fast_inplace(np.true_divide, other):
            return self
        return self._assign(O.div(self._pre(), other, rounding_mode=rounding_mode))

    def pow_(self, e):
        return self._assign(O.pow(self._pre(), e))

    def clamp_(self, min=None, max=None):
        return self._assign(O.clamp(self._pre(), min, max))

    clip_ = clamp_

    def zero_(self):
        return self._assign(O.scalar(0, self.dtype))

    def fill_(self, value):
        v = value if isinstance(value, Tensor) else O.scalar(value, self.dtype)
        return self._assign(O.to(v, self.dtype))

    def copy_(self, src, non_blocking=False):
        """Copy ``src`` into this tensor (broadcasting, dtype conversion)."""
        if not isinstance(src, Tensor):
            src = O.as_tensor_arg(src)
        if src.device != self.device:
            src = src.to(self.device)
        return self._assign(src)

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        from taiji.random import _uniform_like
        with _no_grad():
            return self._assign(_uniform_like(self, a, b, generator))

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        from taiji.random import _normal_like
        with _no_grad():
            return self._assign(_normal_like(self, mean, std, generator))

    def bernoulli_(self, p=0.5, *, generator=None):
        from taiji.random import _uniform_like
        with _no_grad():
            return self._assign(O.to(_uniform_like(self, 0.0, 1.0, generator) < p, self.dtype))

    def exponential_(self, lambd=1.0, *, generator=None):
        from taiji.random import _uniform_like
        with _no_grad():
            u = _uniform_like(self, 0.0, 1.0, generator)
            return self._assign(-O.log1p(-u) / lambd)

    def masked_fill_(self, mask, value):
        return self._assign(I.masked_fill(self._pre(), mask, value))

    def scatter_(self, dim, index, src=None, value=None, reduce=None):
        return self._assign(I.scatter(self._pre(), dim, index, src, value, reduce))

    def scatter_add_(self, dim, index, src):
        return self._assign(I.scatter_add(self._pre(), dim, index, src))

    def index_add_(self, dim, index, source, *, alpha=1):
        return self._assign(I.index_add(self._pre(), dim, index, source, alpha=alpha))

    def lerp_(self, end, weight):
        return self._assign(O.lerp(self._pre(), end, weight))

    def set_(self, source):
        self._data = source._data
        self._version += 1
        return self

    # ------------------------------------------------------------ operators
    def __add__(self, o):
        if o.__class__ is Tensor and o._data.dtype is self._data.dtype:
            return E.add(self, o)
        return O.add(self, o)

    def __radd__(self, o):
        return O.add(o, self)

    def __sub__(self, o):
        if o.__class__ is Tensor and o._data.dtype is self._data.dtype:
            return E.sub(self, o)
        return O.sub(self, o)

    def __rsub__(self, o):
        return O.sub(o, self)

    def __mul__(self, o):
        if o.__class__ is Tensor and o._data.dtype is self._data.dtype:
            return E.mul(self, o)
        return O.mul(self, o)

    def __rmul__(self, o):
        return O.mul(o, self)

    def __truediv__(self, o):
        return O.div_(self, o)

    def __rtruediv__(self, o):
        return O.div_(o, self)

    def __floordiv__(self, o):
        return O.floor_divide(self, o)

    def __rfloordiv__(self, o):
        return O.floor_divide(o, self)

    def __mod__(self, o):
        return O.remainder(self, o)

    def __rmod__(self, o):
        return O.remainder(o, self)

    def __pow__(self, o):
        return O.pow(self, o)

    def __rpow__(self, o):
        return O.pow(o, self)

    def __matmul__(self, o):
        return O.matmul(self, o)

    def __rmatmul__(self, o):
        return O.matmul(O.as_tensor_arg(o), self)

    def __neg__(self):
        return E.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return O.abs(self)

    def __invert__(self):
        return E.invert(self)

    def __and__(self, o):
        return O.bitwise_and(self, o)

    __rand__ = __and__

    def __or__(self, o):
        return O.bitwise_or(self, o)

    __ror__ = __or__

    def __xor__(self, o):
        return O.bitwise_xor(self, o)

    __rxor__ = __xor__

    def __eq__(self, o):
        return O.eq(self, o)

    def __ne__(self, o):
        return O.ne(self, o)

    def __lt__(self, o):
        return O.lt(self, o)

    def __le__(self, o):
        return O.le(self, o)

    def __gt__(self, o):
        return O.gt(self, o)

    def __ge__(self, o):
        return O.ge(self, o)

    def __iadd__(self, o):
        return self.add_(o)

    def __isub__(self, o):
        return self.sub_(o)

    def __imul__(self, o):
        return self.mul_(o)

    def __itruediv__(self, o):
        return self.div_(o)

    def __getitem__(self, idx):
        return I.getitem(self, idx)

    def __setitem__(self, idx, value):
        I.setitem(self, idx, value)

    # ------------------------------------------------------------ creation helpers
    def zeros_like(self):
        return O.const(_zeros(self))

    def ones_like(self):
        # (not ``_zeros(self) + 1``: on a 0-d array that gives a NumPy scalar, not an array)
        return O.const(_zeros(self, ones=True))

    def new_zeros(self, *size, dtype=None):
        from taiji._creation import zeros
        return zeros(*size, dtype=dtype or self.dtype, device=self.device)

    def new_ones(self, *size, dtype=None):
        from taiji._creation import ones
        return ones(*size, dtype=dtype or self.dtype, device=self.device)

    def new_full(self, size, fill_value, dtype=None):
        from taiji._creation import full
        return full(size, fill_value, dtype=dtype or self.dtype, device=self.device)

    def new_empty(self, *size, dtype=None):
        return self.new_zeros(*size, dtype=dtype)

    def new_tensor(self, data, dtype=None):
        from taiji._creation import tensor
        return tensor(data, dtype=dtype or self.dtype, device=self.device)


def _cuda_device(device) -> str:
    """'cuda' or 'cuda:N' from ``.cuda(device)``'s argument."""
    if device is None:
        return "cuda"
    if isinstance(device, builtins.int):
        return f"cuda:{device}"
    return str(device)


def _device_write(t, new) -> bool:
    """Eager ``t._assign(new)`` where a payload is not a NumPy array: a value made on another
    device (a fill value, a random draw on the CPU) is moved onto ``t``'s device, then
    written into ``t``'s buffer when that is a plain array (so views, and compiled CUDA
    programs that hold the buffer, see the change). False: a tracer; rebind instead."""
    from taiji._device import _is_concrete, _move, device_of
    p, q = t._data, new._data
    if not (_is_concrete(p) and _is_concrete(q)):
        return False
    dev = device_of(p)
    if device_of(q) != dev:
        if new._requires_grad:
            raise RuntimeError(f"an in-place operation on a {dev} tensor got a value on "
                               f"{device_of(q)} that requires grad; move it with "
                               f".to('{dev}') first")
        q = _move(q, dev)
    writable = p.flags.writeable if type(p) is np.ndarray else p.flags.c_contiguous
    if writable and not new._requires_grad:  # (contiguous: not a stride-0 broadcast view)
        from taiji.backends import backend_of_array
        backend_of_array(p).copyto(p, q)
    else:
        t._data = q
        t._node, t._out_idx = new._node, new._out_idx
        if new._requires_grad:
            t._requires_grad = True
    return True


def _zeros(t, ones=False):
    """A zero (or one) array shaped like ``t`` on its device, even while ``t`` is traced."""
    from taiji._device import backend_for_payload
    xp = backend_for_payload(t._data).xp
    return (xp.ones if ones else xp.zeros)(t.shape, dtype=t.dtype.np)


class _no_grad:
    def __enter__(self):
        self.prev = STATE.grad_enabled
        STATE.grad_enabled = False

    def __exit__(self, *a):
        STATE.grad_enabled = self.prev


# Methods that forward straight to the op layer (self is the first argument).
_METHODS = """
add sub mul div true_divide floor_divide remainder pow maximum minimum atan2 eq ne lt le gt ge
logical_and logical_or logical_xor logical_not bitwise_not bitwise_and bitwise_or bitwise_xor
where exp log log1p expm1 log2 log10 sqrt rsqrt sin cos tan tanh sigmoid erf neg abs sign relu
isnan isinf isfinite floor ceil trunc round reciprocal square clamp clip clamp_min clamp_max
nan_to_num lerp sum mean var std prod amax amin max min argmax argmin all any logsumexp norm
cumsum cumprod softmax log_softmax reshape view view_as reshape_as flatten unflatten squeeze
unsqueeze permute transpose swapaxes swapdims t movedim moveaxis expand expand_as broadcast_to
narrow select split chunk tensor_split unbind flip fliplr flipud roll repeat tile
repeat_interleave contiguous clone tril triu matmul mm bmm dot inner mv outer
""".split()
_ALIASES = {"negative": "neg", "subtract": "sub", "multiply": "mul", "divide": "div",
            "greater": "gt", "less": "lt", "greater_equal": "ge", "less_equal": "le",
            "absolute": "abs", "arctan2": "atan2", "fmax": "maximum", "fmin": "minimum"}
for _name in _METHODS:
    setattr(Tensor, _name, getattr(O, _name))
for _alias, _name in _ALIASES.items():
    setattr(Tensor, _alias, getattr(O, _name))
for _name in ("gather", "scatter", "scatter_add", "index_select", "index_add", "masked_fill",
              "masked_select", "nonzero", "sort", "argsort", "topk", "kthvalue", "median",
              "take_along_dim"):
    setattr(Tensor, _name, getattr(I, _name))


def _tensor_where(self, condition, y):
    """PyTorch's ``x.where(condition, y)``: x where condition holds, else y."""
    return O.where(condition, self, y)


Tensor.where = _tensor_where
Tensor.sum_to_size = lambda self, *size: E.unbroadcast(self, O._shape_arg(size))
Tensor.gelu = O.gelu
Tensor.silu = O.silu
Tensor.softplus = O.softplus
Tensor.relu_ = lambda self: self._assign(O.relu(self._pre()))
Tensor.sigmoid_ = lambda self: self._assign(O.sigmoid(self._pre()))
Tensor.tanh_ = lambda self: self._assign(O.tanh(self._pre()))
Tensor.exp_ = lambda self: self._assign(O.exp(self._pre()))
Tensor.sqrt_ = lambda self: self._assign(O.sqrt(self._pre()))
Tensor.neg_ = lambda self: self._assign(O.neg(self._pre()))
Tensor.abs_ = lambda self: self._assign(O.abs(self._pre()))

O.Tensor = Tensor
_primitive.Tensor = Tensor
