"""DType objects, conversion from NumPy / Python types, and PyTorch's type promotion.

A `DType` wraps the NumPy dtype that stores it (bfloat16 comes from ml_dtypes). Promotion
follows PyTorch: categories bool < integer < floating; within a category the wider type wins;
tensors with dimensions outrank zero-dim tensors, which outrank Python scalars ("weak" types),
and a lower-ranked operand only matters when its category is higher.
"""
from __future__ import annotations

import builtins

import ml_dtypes
import numpy as np

__all__ = [
    "DType", "float16", "bfloat16", "float32", "float64", "int8", "uint8", "int16", "int32",
    "int64", "uint32", "bool", "half", "float", "double", "long", "int", "short", "to_dtype",
    "promote_types", "result_type", "get_default_dtype", "set_default_dtype",
]


class DType:
    """A tensor element type, e.g. ``taiji.float32``."""

    __slots__ = ("name", "np", "itemsize", "is_floating_point", "is_signed", "_cat", "_rank")

    def __init__(self, name: str, np_dtype, cat: builtins.int, rank: builtins.int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.is_floating_point = cat == 2
        self.is_signed = name not in ("uint8", "bool")
        self._cat = cat      # 0 bool, 1 integer, 2 floating
        self._rank = rank    # order within the category

    @property
    def is_complex(self) -> builtins.bool:
        return False

    def __repr__(self) -> str:
        return f"taiji.{self.name}"

    def __reduce__(self):
        return (to_dtype, (self.name,))


bool_ = DType("bool", np.bool_, 0, 0)
uint8 = DType("uint8", np.uint8, 1, 0)
int8 = DType("int8", np.int8, 1, 0)
int16 = DType("int16", np.int16, 1, 1)
int32 = DType("int32", np.int32, 1, 2)
int64 = DType("int64", np.int64, 1, 3)
uint32 = DType("uint32", np.uint32, 1, 3)  # random keys and bits
float16 = DType("float16", np.float16, 2, 0)
bfloat16 = DType("bfloat16", ml_dtypes.bfloat16, 2, 0)
float32 = DType("float32", np.float32, 2, 1)
float64 = DType("float64", np.float64, 2, 2)

# PyTorch's aliases
bool = bool_  # noqa: A001 - the name PyTorch users write
half, float, double = float16, float32, float64  # noqa: A001
short, int, long = int16, int32, int64  # noqa: A001

ALL = (bool_, uint8, int8, int16, int32, int64, uint32, float16, bfloat16, float32, float64)
_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "long": int64,
                 "int": int32, "short": int16, "bool_": bool_})

_default_float = float32


def casts_through_float32(src, dst) -> bool:
    """Whether a cast from NumPy dtype ``src`` to ``dst`` goes through float32 (exact):
    bfloat16 to an integer type, which ml_dtypes 0.7 saturates (-3.0 to uint8 gives 0)
    where NumPy's float casts and PyTorch wrap around (253)."""
    return src == bfloat16.np and np.dtype(dst).kind in "iu"


def astype(x, npd):
    """``x.astype(npd)`` (no copy when it already is), through float32 where
    ``casts_through_float32`` says so."""
    if casts_through_float32(x.dtype, npd):
        x = x.astype(np.float32)
    return x.astype(npd, copy=False)


def get_default_dtype() -> DType:
    """The dtype of floating tensors made from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(d) -> None:
    """Set the default floating dtype (float32 or float64, as in PyTorch)."""
    global _default_float
    d = to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {d}")
    _default_float = d


def to_dtype(d) -> DType:
    """Convert a DType, NumPy dtype, dtype name or Python type to a taiji DType."""
    if isinstance(d, DType):
        return d
    if d is builtins.float:
        return _default_float
    if d is builtins.int:
        return int64
    if d is builtins.bool:
        return bool_
    if isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d]
    try:
        return _BY_NP[np.dtype(d)]
    except (TypeError, KeyError):
        raise TypeError(
            f"unsupported dtype {d!r}; expected one of "
            f"{', '.join(x.name for x in ALL)}") from None


def from_np(npd) -> DType:
    """The DType of a NumPy dtype (float64 arrays stay float64, like torch.from_numpy)."""
    try:
        return _BY_NP[npd]
    except KeyError:
        raise TypeError(f"NumPy dtype {npd} has no taiji equivalent; expected one of "
                        f"{', '.join(x.name for x in ALL)}") from None


def promote_types(a: DType, b: DType) -> DType:
    """The smallest dtype both ``a`` and ``b`` convert to without losing their category."""
    if a is b:
        return a
    if a._cat != b._cat:
        return a if a._cat > b._cat else b
    if a._cat == 2:
        if {a.name, b.name} == {"float16", "bfloat16"}:
            return float32
        return a if a._rank > b._rank else b
    if a._cat == 0:
        return a
    return _BY_NP[np.promote_types(a.np, b.np)]


def _scalar_dtype(x) -> DType:
    if isinstance(x, builtins.bool):
        return bool_
    if isinstance(x, builtins.int):
        return int64
    if isinstance(x, builtins.float):
        return _default_float
    raise TypeError(f"expected a tensor or a Python number, got {type(x).__name__}")


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    # c10's combine_categories: a lower-priority operand matters only across categories
    if higher is None:
        return lower
    if lower is None or higher._cat == 2:
        return higher
    if higher._cat == 0 or lower._cat == 2:
        return promote_types(higher, lower)
    return higher


def result_type(*operands) -> DType:
    """PyTorch's result type of ``operands`` (tensors, NumPy arrays or Python scalars)."""
    dim = zero = wrapped = None
    for x in operands:
        if isinstance(x, (builtins.bool, builtins.int, builtins.float)):
            d = _scalar_dtype(x)
            wrapped = d if wrapped is None else promote_types(wrapped, d)
            continue
        d = x.dtype if isinstance(x.dtype, DType) else from_np(x.dtype)
        if x.ndim == 0:
            zero = d if zero is None else promote_types(zero, d)
        else:
            dim = d if dim is None else promote_types(dim, d)
    out = _combine(dim, _combine(zero, wrapped))
    if out is None:
        raise TypeError("result_type: no operands")
    return out
