"""PyTorch's type promotion: dtype-dtype table, dimensioned vs zero-dim tensors vs Python
scalars (weak types), and the dtypes ops actually return."""
import itertools

import pytest

import taiji
from taiji import _dtypes

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
          "float32", "float64"]
SCALARS = [True, 3, 2.5]
OPS = ["add", "sub", "mul", "div", "floor_divide", "remainder", "maximum", "pow"]


def _torch():
    return pytest.importorskip("torch", reason="torch is the promotion reference; "
                                               "not installed")


def _mk(lib, name, zero_dim):
    # values valid for every dtype and op (no zero divisors, no negative powers of ints)
    return lib.full(() if zero_dim else (3,), 1, dtype=getattr(lib, name))


def _name(d):
    return str(d).split(".")[-1]


def _skip_invalid(op, *names):
    # ops PyTorch itself rejects for these inputs
    if op == "sub" and "bool" in names:
        return True
    if op in ("floor_divide", "remainder", "pow") and all(n == "bool" for n in names):
        return True
    return False


# ---------------------------------------------------------------- torch-free expectations

KEY_EXPECTATIONS = [
    # (a, b, promote_types)
    ("bool", "bool", "bool"),
    ("bool", "uint8", "uint8"),
    ("bool", "float16", "float16"),
    ("uint8", "int8", "int16"),
    ("uint8", "int16", "int16"),
    ("int8", "int64", "int64"),
    ("int32", "float16", "float16"),
    ("int64", "bfloat16", "bfloat16"),
    ("float16", "bfloat16", "float32"),
    ("float16", "float32", "float32"),
    ("bfloat16", "float64", "float64"),
    ("int64", "float32", "float32"),
]


@pytest.mark.parametrize("a,b,want", KEY_EXPECTATIONS)
def test_promote_types_key_table(a, b, want):
    A, B = getattr(taiji, a), getattr(taiji, b)
    assert taiji.promote_types(A, B) is getattr(taiji, want)
    assert taiji.promote_types(B, A) is getattr(taiji, want)  # symmetric


def test_promote_types_is_symmetric_and_idempotent():
    for a, b in itertools.product(DTYPES, DTYPES):
        A, B = getattr(taiji, a), getattr(taiji, b)
        assert taiji.promote_types(A, B) is taiji.promote_types(B, A), (a, b)
    for a in DTYPES:
        assert taiji.promote_types(getattr(taiji, a), getattr(taiji, a)) is getattr(taiji, a)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_python_scalars_are_weak():
    i8 = taiji.tensor([1, 2], dtype=taiji.int8)
    assert (i8 + 1000).dtype is taiji.int8          # int scalar never widens an int tensor
    assert (i8 * 2.5).dtype is taiji.float32        # float scalar: default float dtype
    assert (i8 + True).dtype is taiji.int8
    h = taiji.tensor([1.0], dtype=taiji.float16)
    assert (h * 2.5).dtype is taiji.float16         # float scalar never widens a float tensor
    big = h + 10 ** 6
    assert big.dtype is taiji.float16 and big.item() == float("inf")  # overflows, as torch
    b = taiji.tensor([True])
    assert (b + 1).dtype is taiji.int64
    assert (b + 1.5).dtype is taiji.float32
    assert (b & True).dtype is taiji.bool
    assert (2 + i8).dtype is taiji.int8             # reflected ops too
    assert (1.5 - i8).dtype is taiji.float32


def test_zero_dim_tensors_rank_below_dimensioned():
    i32 = taiji.tensor([1, 2], dtype=taiji.int32)
    assert (i32 + taiji.tensor(5)).dtype is taiji.int32          # 0-d int64: same category
    assert (i32 + taiji.tensor(5.0, dtype=taiji.float64)).dtype is taiji.float64  # category up
    f16 = taiji.tensor([1.0], dtype=taiji.float16)
    assert (f16 + taiji.tensor(2.0, dtype=taiji.float64)).dtype is taiji.float16
    # two zero-dim tensors promote normally
    assert (taiji.tensor(1, dtype=taiji.int8) + taiji.tensor(1)).dtype is taiji.int64
    # a zero-dim tensor outranks a Python scalar
    assert (taiji.tensor(1, dtype=taiji.int16) + 7).dtype is taiji.int16
    assert (taiji.tensor(1.0, dtype=taiji.float64) + 7.5).dtype is taiji.float64


def test_integer_true_division_gives_default_float():
    assert (taiji.tensor([3]) / taiji.tensor([2])).dtype is taiji.float32
    assert (taiji.tensor([3]) / 2).tolist() == [1.5]
    assert (taiji.tensor([7]) // 2).dtype is taiji.int64
    assert (taiji.tensor([7]) // 2).tolist() == [3]
    assert (taiji.tensor([True]) / taiji.tensor([True])).dtype is taiji.float32


def test_comparisons_return_bool():
    a, b = taiji.tensor([1, 2]), taiji.tensor([1.5, 2.0])
    for r in (a == b, a != b, a < b, a <= b, a > b, a >= b, a < 1.5):
        assert r.dtype is taiji.bool
    assert (a < b).tolist() == [True, False]
    assert (a == 2).tolist() == [False, True]


def test_result_type_helper():
    rt = _dtypes.result_type
    assert rt(taiji.tensor([1], dtype=taiji.int8), 3.0) is taiji.float32
    assert rt(taiji.tensor([1], dtype=taiji.int8), taiji.tensor(1000)) is taiji.int8
    assert rt(2, 3) is taiji.int64
    assert rt(2, 3.0) is taiji.float32
    assert rt(True, False) is taiji.bool


def test_default_dtype_governs_float_scalars():
    taiji.set_default_dtype(taiji.float64)
    try:
        assert (taiji.tensor([1, 2]) * 0.5).dtype is taiji.float64
        assert (taiji.tensor([1.0], dtype=taiji.float32) * 0.5).dtype is taiji.float32
    finally:
        taiji.set_default_dtype(taiji.float32)


def test_promoted_values_are_computed_in_result_dtype():
    u = taiji.tensor([200], dtype=taiji.uint8)
    i = taiji.tensor([100], dtype=taiji.int8)
    r = u + i
    assert r.dtype is taiji.int16 and r.tolist() == [300]
    assert (u + 100).tolist() == [44]  # weak scalar: wraps in uint8 like PyTorch


# ---------------------------------------------------------------- against torch


def test_promote_types_matches_torch_all_pairs():
    torch = _torch()
    for a, b in itertools.product(DTYPES, DTYPES):
        want = _name(torch.promote_types(getattr(torch, a), getattr(torch, b)))
        assert taiji.promote_types(getattr(taiji, a), getattr(taiji, b)).name == want, (a, b)


@pytest.mark.parametrize("zero", [(False, False), (False, True), (True, False), (True, True)],
                         ids=["dim-dim", "dim-0d", "0d-dim", "0d-0d"])
def test_tensor_tensor_result_type_matches_torch(zero):
    torch = _torch()
    za, zb = zero
    for a, b in itertools.product(DTYPES, DTYPES):
        want = _name(torch.result_type(_mk(torch, a, za), _mk(torch, b, zb)))
        got = _dtypes.result_type(_mk(taiji, a, za), _mk(taiji, b, zb)).name
        assert got == want, (a, za, b, zb)


@pytest.mark.parametrize("zero", [False, True], ids=["dim", "0d"])
def test_tensor_scalar_result_type_matches_torch(zero):
    torch = _torch()
    for a, s in itertools.product(DTYPES, SCALARS):
        want = _name(torch.result_type(_mk(torch, a, zero), s))
        assert _dtypes.result_type(_mk(taiji, a, zero), s).name == want, (a, s)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("zero", [(False, False), (False, True), (True, False)],
                         ids=["dim-dim", "dim-0d", "0d-dim"])
def test_op_output_dtypes_match_torch_tensor_tensor(op, zero):
    torch = _torch()
    za, zb = zero
    for a, b in itertools.product(DTYPES, DTYPES):
        if _skip_invalid(op, a, b):
            continue
        want = getattr(torch, op)(_mk(torch, a, za), _mk(torch, b, zb))
        got = getattr(taiji, op)(_mk(taiji, a, za), _mk(taiji, b, zb))
        assert got.dtype.name == _name(want.dtype), (op, a, za, b, zb)
        assert got.shape == tuple(want.shape), (op, a, za, b, zb)


@pytest.mark.parametrize("op", [o for o in OPS if o != "maximum"])  # torch: tensors only
def test_op_output_dtypes_match_torch_tensor_scalar(op):
    torch = _torch()
    for a, s, zero in itertools.product(DTYPES, SCALARS, [False, True]):
        if _skip_invalid(op, a, "bool" if s is True else "x") or \
                (op == "sub" and s is True):
            continue
        want = getattr(torch, op)(_mk(torch, a, zero), s)
        got = getattr(taiji, op)(_mk(taiji, a, zero), s)
        assert got.dtype.name == _name(want.dtype), (op, a, s, zero)


def test_operator_dtypes_match_torch_with_reflected_scalars():
    torch = _torch()
    cases = [lambda x: 2 - x, lambda x: 3 * x, lambda x: 1.5 / x, lambda x: 2 ** x,
             lambda x: 7 // x, lambda x: 2.5 + x, lambda x: x ** 2, lambda x: x ** 0.5,
             lambda x: -x, lambda x: abs(x)]
    for a in DTYPES:
        if a == "bool":
            continue
        for i, f in enumerate(cases):
            want = f(_mk(torch, a, False))
            got = f(_mk(taiji, a, False))
            assert got.dtype.name == _name(want.dtype), (a, i)
