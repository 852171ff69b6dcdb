"""``taiji.autocast``: automatic mixed precision regions (PyTorch's ``torch.autocast``).

Inside an autocast region, the op-layer entry points of the ops named in :data:`POLICY`
cast their floating inputs before computing:

- ``"lower"``  ops (matmul, linear, conv, einsum, attention) run in the region's low-precision
  dtype (bfloat16 or float16): float32 inputs are cast down;
- ``"fp32"``   ops (softmax, log_softmax, exp/log/pow, sums, norms, layer/group norm, losses)
  run in float32: float16 / bfloat16 inputs are cast up;
- everything else follows its inputs: binary ops, ``cat``, ``stack``, ``where`` promote to the
  widest floating type (taiji's ordinary promotion, PyTorch's ``promote`` policy).

float64 tensors, integer tensors and non-tensor arguments are never cast (as in PyTorch).
The casts are ordinary ``convert`` ops recorded by autograd, whose VJP casts back, so the
gradients of float32 parameters stay float32. Under ``taiji.jit`` the casts are traced into
the graph, and the autocast state at call time is part of the compiled-signature key.

The hooks sit at the top of each listed op (``x, w = ac.cast("linear", x, w)``, guarded by
``if STATE.autocast is not None``): with autocast off the cost is that one attribute check.

**Differences from PyTorch, on purpose.** PyTorch has one list for CUDA and a shorter one
for CPU. taiji applies one table on every device: PyTorch's CUDA lists (a superset), so a
model behaves the same on CPU and GPU. On CPU this means softmax / log_softmax / exp / log /
pow / sum / prod / cumsum / norm / layer_norm / group_norm run in float32 where PyTorch's
CPU autocast lets them follow their (low-precision) input. ``einsum`` is "lower" (CUDA's
choice). Ops built on matmul (``dot``, ``mv``, ``tensordot``, ``bilinear``) produce the
low-precision dtype because their matmul does. ``batch_norm`` keeps its input's dtype and
normalises in float32 (what cuDNN's mixed batch norm does). ``cache_enabled`` is accepted
and ignored: under ``jit`` common-subexpression elimination already shares weight casts.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from taiji import _dtypes as dt
from taiji._core.interpreters import STATE

LOWER, FP32, PROMOTE = "lower", "fp32", "promote"

#: The autocast policy: op name -> "lower" | "fp32" | "promote". The one place it is defined.
POLICY: dict[str, str] = {
    # run in the autocast dtype (PyTorch: lower_precision_fp)
    **{k: LOWER for k in (
        "matmul", "mm", "bmm", "linear", "conv1d", "conv2d", "conv_transpose2d", "einsum",
        "scaled_dot_product_attention",
    )},
    # run in float32 (PyTorch CUDA: fp32 and fp32_set_opt_dtype; CPU: the loss subset)
    **{k: FP32 for k in (
        "exp", "log", "log1p", "expm1", "log2", "log10", "pow", "reciprocal", "rsqrt", "tan",
        "softplus", "softmax", "log_softmax", "logsumexp", "sum", "prod", "cumsum", "cumprod",
        "norm", "layer_norm", "group_norm", "cosine_similarity",
        "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
        "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
        "cosine_embedding_loss", "margin_ranking_loss", "soft_margin_loss",
        "hinge_embedding_loss", "poisson_nll_loss", "gaussian_nll_loss", "triplet_margin_loss",
        "multi_margin_loss",
    )},
    # widest input type (taiji's ordinary promotion already does this; listed for the docs)
    **{k: PROMOTE for k in ("add", "sub", "mul", "div", "where", "cat", "stack", "atan2",
                            "lerp", "scatter_add", "index_put")},
}

_LOW = ("float16", "bfloat16")
_DEFAULT_DTYPE = {"cpu": dt.bfloat16, "cuda": dt.float16}
_DEVICE_TYPES = ("cpu", "cuda")


class AutocastState:
    """The autocast policy in force on this thread: device type -> low-precision dtype."""

    __slots__ = ("dtypes", "key", "_single")

    def __init__(self, dtypes: dict):
        self.dtypes = dtypes
        self.key = tuple(sorted((d, t.name) for d, t in dtypes.items()))
        self._single = dtypes.get("cpu") if tuple(dtypes) == ("cpu",) else None

    def _target(self, x) -> Any:
        """The low-precision dtype for tensor ``x``'s device (None: its device is off)."""
        if self._single is not None:
            p = x._data
            if type(p).__module__ == "numpy" or not hasattr(p, "__array__"):
                return self._single  # host arrays and tracers: the CPU entry
        try:
            return self.dtypes.get(x.device.type)
        except Exception:  # pragma: no cover - a payload without a device
            return self.dtypes.get("cpu")

    def cast(self, op: str, *args) -> tuple:
        """``args`` cast per ``POLICY[op]`` (non-tensors and ineligible tensors unchanged)."""
        from taiji._ops import Tensor, to
        policy = POLICY[op]
        out = []
        if policy == PROMOTE:
            ts = [a for a in args if isinstance(a, Tensor) and a.dtype.is_floating_point]
            if not ts:
                return args
            widest = ts[0].dtype
            for t in ts[1:]:
                widest = dt.promote_types(widest, t.dtype)
            return tuple(to(a, widest) if isinstance(a, Tensor) and
                         a.dtype.is_floating_point else a for a in args)
        for a in args:
            if isinstance(a, Tensor) and a.dtype.is_floating_point and \
                    a.dtype is not dt.float64:
                target = self._target(a)
                if target is not None:
                    if policy == LOWER:
                        a = to(a, target)
                    elif a.dtype.name in _LOW:
                        a = to(a, dt.float32)
            out.append(a)
        return tuple(out)


class autocast:
    """Run the ops of a region in mixed precision (PyTorch's ``torch.autocast``).

    Args:
        device_type: "cpu" or "cuda": the device whose tensors the region affects.
        dtype: the low-precision dtype, ``taiji.bfloat16`` (CPU default) or
            ``taiji.float16`` (CUDA default; on CUDA the only choice: CuPy has no bfloat16,
            so an enabled ``autocast("cuda", dtype=taiji.bfloat16)`` is a ValueError). On
            CUDA, float16 matrix products go to cuBLAS (tensor cores, float32 accumulation).
        enabled: ``False`` turns autocast off inside the region (for a nested region that
            must run in full precision).
        cache_enabled: accepted for PyTorch compatibility; ignored.

    Works as a context manager and as a decorator; regions nest (the inner one wins, and the
    outer one is restored on exit). See the module docstring and :data:`POLICY` for what runs
    in which dtype.

    Example:
        >>> with taiji.autocast("cpu", dtype=taiji.bfloat16):
        ...     y = taiji.nn.functional.linear(x, w)      # bfloat16
        ...     loss = taiji.nn.functional.cross_entropy(y, t)  # float32
    """

    def __init__(self, device_type: str = "cpu", dtype=None, enabled: bool = True,
                 cache_enabled: bool | None = None):
        if not isinstance(device_type, str):
            raise TypeError(f"autocast: device_type must be a string such as 'cpu' or 'cuda', "
                            f"got {type(device_type).__name__}")
        device_type = device_type.split(":")[0]
        if device_type not in _DEVICE_TYPES:
            raise ValueError(f"autocast: unsupported device_type {device_type!r} (expected one "
                             f"of {', '.join(_DEVICE_TYPES)})")
        d = _DEFAULT_DTYPE[device_type] if dtype is None else dt.to_dtype(dtype)
        if d.name not in _LOW:
            raise ValueError(f"autocast: dtype must be taiji.bfloat16 or taiji.float16, got "
                             f"{d.name}")
        if device_type == "cuda" and d.name == "bfloat16" and enabled:
            raise ValueError(
                "autocast(device_type='cuda', dtype=taiji.bfloat16): bfloat16 tensors cannot "
                "live on the GPU (taiji's CUDA backend is CuPy, which has no bfloat16). Use "
                "dtype=taiji.float16 (the CUDA default; with a taiji.amp.GradScaler), or "
                "autocast('cpu', dtype=taiji.bfloat16) for CPU tensors")
        self.device_type = device_type
        self.fast_dtype = d
        self.enabled = bool(enabled)
        self.cache_enabled = cache_enabled
        self._prev: list = []

    def __enter__(self) -> "autocast":
        prev = STATE.autocast
        self._prev.append(prev)
        dtypes = dict(prev.dtypes) if prev is not None else {}
        if self.enabled:
            dtypes[self.device_type] = self.fast_dtype
        else:
            dtypes.pop(self.device_type, None)
        STATE.autocast = AutocastState(dtypes) if dtypes else None
        return self

    def __exit__(self, *exc) -> bool:
        STATE.autocast = self._prev.pop()
        return False

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self.enabled, self.cache_enabled):
                return fn(*args, **kwargs)
        return wrapper

    def __repr__(self) -> str:
        return (f"autocast(device_type={self.device_type!r}, dtype=taiji.{self.fast_dtype.name}, "
                f"enabled={self.enabled})")


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is on for ``device_type`` ("cpu" / "cuda"); with no argument,
    whether it is on for any device."""
    ac = STATE.autocast
    if ac is None:
        return False
    return True if device_type is None else device_type.split(":")[0] in ac.dtypes


def get_autocast_dtype(device_type: str = "cpu"):
    """The low-precision dtype autocast uses for ``device_type``: the active region's, or the
    default (bfloat16 on CPU, float16 on CUDA) outside any region."""
    dev = device_type.split(":")[0]
    ac = STATE.autocast
    if ac is not None and dev in ac.dtypes:
        return ac.dtypes[dev]
    if dev not in _DEFAULT_DTYPE:
        raise ValueError(f"get_autocast_dtype: unsupported device_type {device_type!r}")
    return _DEFAULT_DTYPE[dev]


def policy_of(op: str) -> str:
    """The autocast policy of op ``op``: "lower", "fp32" or "promote" (unlisted ops follow
    their inputs, which is "promote")."""
    return POLICY.get(op, PROMOTE)


def fp32_op(name: str) -> Callable:
    """Decorator for a composite op on the float32 list (the losses): under autocast, its
    tensor arguments are cast per ``POLICY[name]`` before it runs; otherwise one check."""
    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            ac = STATE.autocast
            if ac is not None:
                args = ac.cast(name, *args)
                if kwargs:
                    kwargs = dict(zip(kwargs, ac.cast(name, *kwargs.values())))
            return fn(*args, **kwargs)
        return wrapper
    return deco
