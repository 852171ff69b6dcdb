"""Tensor creation, metadata, conversions, casts and repr (PyTorch's semantics)."""
import numpy as np
import pytest

import taiji

ALL_DTYPES = [taiji.float16, taiji.bfloat16, taiji.float32, taiji.float64, taiji.int8,
              taiji.uint8, taiji.int16, taiji.int32, taiji.int64, taiji.bool]


def _torch():
    return pytest.importorskip("torch", reason="torch is the reference for repr/casts; "
                                               "not installed")


def _tdt(torch, d):
    return getattr(torch, d.name)


# ---------------------------------------------------------------- taiji.tensor


def test_tensor_infers_pytorch_dtypes():
    assert taiji.tensor([1, 2, 3]).dtype is taiji.int64
    assert taiji.tensor([1.0, 2.0]).dtype is taiji.float32
    assert taiji.tensor([1, 2.5]).dtype is taiji.float32
    assert taiji.tensor([True, False]).dtype is taiji.bool
    assert taiji.tensor(3).dtype is taiji.int64
    assert taiji.tensor(3.0).dtype is taiji.float32


def test_tensor_from_numpy_keeps_numpy_dtype():
    assert taiji.tensor(np.arange(3, dtype=np.int32)).dtype is taiji.int32
    assert taiji.tensor(np.arange(3, dtype=np.float64)).dtype is taiji.float64
    assert taiji.tensor(np.float64(2.0)).dtype is taiji.float64
    assert taiji.tensor(np.int16(2)).dtype is taiji.int16


def test_tensor_copies_its_data():
    a = np.arange(3.0)
    t = taiji.tensor(a)
    a[0] = 100.0
    assert t.tolist() == [0.0, 1.0, 2.0]


def test_tensor_values_shape_and_metadata():
    t = taiji.tensor([[1, 2, 3], [4, 5, 6]], dtype=taiji.float64)
    assert t.shape == (2, 3)
    assert t.size() == (2, 3)
    assert t.size(1) == 3 and t.size(-2) == 2
    assert t.ndim == 2 and t.dim() == 2
    assert t.numel() == 6
    assert t.dtype is taiji.float64
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert t.device == taiji.device("cpu")
    assert str(t.device) == "cpu"
    assert not t.requires_grad and t.is_leaf and t.grad_fn is None


def test_tensor_requires_grad_and_device_kwargs():
    t = taiji.tensor([1.0, 2.0], requires_grad=True, device="cpu")
    assert t.requires_grad and t.is_leaf and t.grad is None
    assert t.device.type == "cpu"
    assert taiji.zeros(2, device=taiji.device("cpu")).device == "cpu"


def test_tensor_from_nested_tensors():
    t = taiji.tensor([taiji.tensor([1.0, 2.0]), taiji.tensor([3.0, 4.0])])
    assert t.shape == (2, 2)
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_zero_dim_and_empty():
    s = taiji.tensor(2.5)
    assert s.shape == () and s.ndim == 0 and s.numel() == 1
    e = taiji.tensor([])
    assert e.shape == (0,) and e.dtype is taiji.float32 and e.numel() == 0


# ---------------------------------------------------------------- filled creation


@pytest.mark.parametrize("fn,val", [(taiji.zeros, 0.0), (taiji.ones, 1.0)])
def test_zeros_ones_size_forms(fn, val):
    for t in (fn(2, 3), fn((2, 3)), fn([2, 3])):
        assert t.shape == (2, 3)
        assert t.dtype is taiji.float32
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), val, np.float32))
    t = fn(4, dtype=taiji.int32)
    assert t.dtype is taiji.int32 and t.tolist() == [int(val)] * 4
    assert fn(()).shape == ()
    r = fn(3, requires_grad=True)
    assert r.requires_grad and r.is_leaf


def test_empty_shape_and_dtype():
    t = taiji.empty(2, 5, dtype=taiji.float64)
    assert t.shape == (2, 5) and t.dtype is taiji.float64


def test_full_infers_dtype_from_fill_value():
    assert taiji.full((2,), 3).dtype is taiji.int64
    assert taiji.full((2,), 3.0).dtype is taiji.float32
    assert taiji.full((2,), True).dtype is taiji.bool
    t = taiji.full((2, 2), 7.5, dtype=taiji.float64)
    assert t.dtype is taiji.float64 and t.tolist() == [[7.5, 7.5], [7.5, 7.5]]


def test_like_functions_keep_shape_dtype():
    base = taiji.ones(2, 3, dtype=taiji.int32)
    z = taiji.zeros_like(base)
    assert z.shape == (2, 3) and z.dtype is taiji.int32 and z.tolist() == [[0] * 3] * 2
    o = taiji.ones_like(base, dtype=taiji.float64)
    assert o.dtype is taiji.float64 and o.tolist() == [[1.0] * 3] * 2
    f = taiji.full_like(base, 9)
    assert f.dtype is taiji.int32 and f.tolist() == [[9] * 3] * 2
    g = taiji.zeros_like(taiji.ones(2), requires_grad=True)
    assert g.requires_grad


def test_negative_size_raises():
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        taiji.zeros(2, -1)


# ---------------------------------------------------------------- ranges


def test_arange_matches_torch_forms():
    assert taiji.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert taiji.arange(5).dtype is taiji.int64
    assert taiji.arange(2, 8, 2).tolist() == [2, 4, 6]
    assert taiji.arange(10, 0, -3).tolist() == [10, 7, 4, 1]
    t = taiji.arange(1, 2, 0.25)
    assert t.dtype is taiji.float32 and t.tolist() == [1.0, 1.25, 1.5, 1.75]
    assert taiji.arange(0, 1, 0.1).shape == (10,)  # PyTorch: ceil((end-start)/step)
    assert taiji.arange(3, dtype=taiji.float64).dtype is taiji.float64
    assert taiji.arange(0).shape == (0,)


def test_arange_against_torch():
    torch = _torch()
    for args in [(0, 1, 0.1), (-3, 3, 0.7), (5, -5, -1.5), (1.5, 4)]:
        np.testing.assert_allclose(taiji.arange(*args).numpy(), torch.arange(*args).numpy(),
                                   rtol=1e-6, err_msg=str(args))


def test_linspace_and_eye():
    t = taiji.linspace(0, 1, 5)
    assert t.dtype is taiji.float32
    np.testing.assert_allclose(t.numpy(), [0.0, 0.25, 0.5, 0.75, 1.0])
    assert taiji.linspace(-1, 1, 1).tolist() == [-1.0]
    assert taiji.linspace(2, 3, 3, dtype=taiji.float64).dtype is taiji.float64
    e = taiji.eye(3)
    assert e.dtype is taiji.float32
    np.testing.assert_array_equal(e.numpy(), np.eye(3))
    np.testing.assert_array_equal(taiji.eye(2, 3).numpy(), np.eye(2, 3))
    assert taiji.eye(2, dtype=taiji.int64).tolist() == [[1, 0], [0, 1]]


def test_random_creation_shapes_dtypes():
    assert taiji.rand(2, 3).shape == (2, 3) and taiji.rand(2).dtype is taiji.float32
    assert taiji.randn((4,), dtype=taiji.float64).dtype is taiji.float64
    assert taiji.randint(0, 10, (3, 2)).dtype is taiji.int64
    assert taiji.randint(0, 10, (3, 2)).shape == (3, 2)
    assert taiji.randperm(5).dtype is taiji.int64
    assert taiji.rand(3, requires_grad=True).requires_grad


# ---------------------------------------------------------------- numpy interop


def test_from_numpy_shares_memory_both_ways():
    a = np.arange(3.0)
    t = taiji.from_numpy(a)
    assert t.dtype is taiji.float64
    a[0] = 7.0
    assert t.tolist() == [7.0, 1.0, 2.0]
    t.add_(1)
    np.testing.assert_array_equal(a, [8.0, 2.0, 3.0])
    t.numpy()[2] = -1.0
    assert a[2] == -1.0


def test_from_numpy_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected np.ndarray"):
        taiji.from_numpy([1, 2])


def test_numpy_roundtrip_each_dtype():
    for d in ALL_DTYPES:
        t = taiji.tensor([0, 1, 1], dtype=d)
        a = t.numpy()
        assert isinstance(a, np.ndarray) and a.dtype == d.np, d
        assert a.astype(np.float64).tolist() == [0.0, 1.0, 1.0]


def test_numpy_on_requires_grad_raises_torch_message():
    t = taiji.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError) as ei:
        t.numpy()
    assert str(ei.value) == ("Can't call numpy() on Tensor that requires grad. Use "
                             "tensor.detach().numpy() instead.")
    np.testing.assert_array_equal(t.detach().numpy(), [1.0])


def test_numpy_message_equals_torch():
    torch = _torch()
    with pytest.raises(RuntimeError) as theirs:
        torch.tensor([1.0], requires_grad=True).numpy()
    with pytest.raises(RuntimeError) as ours:
        taiji.tensor([1.0], requires_grad=True).numpy()
    assert str(ours.value) == str(theirs.value)


def test_item_and_tolist_python_types():
    assert taiji.tensor(3).item() == 3 and type(taiji.tensor(3).item()) is int
    assert type(taiji.tensor(2.5).item()) is float and taiji.tensor(2.5).item() == 2.5
    assert taiji.tensor(True).item() is True
    assert taiji.tensor([[4.0]]).item() == 4.0
    assert taiji.tensor(2.5, dtype=taiji.bfloat16).item() == 2.5
    assert type(taiji.tensor(2.5, dtype=taiji.bfloat16).item()) is float
    assert taiji.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    lst = taiji.tensor([0.5, 1.5], dtype=taiji.bfloat16).tolist()
    assert lst == [0.5, 1.5] and all(type(v) is float for v in lst)
    assert taiji.tensor(5).tolist() == 5
    with pytest.raises(RuntimeError, match="3 elements cannot be converted to Scalar"):
        taiji.tensor([1, 2, 3]).item()


def test_python_number_protocols():
    assert float(taiji.tensor([2.5])) == 2.5
    assert int(taiji.tensor(7)) == 7
    assert [10, 20, 30][taiji.tensor(1)] == 20
    assert bool(taiji.tensor(1.0)) and not bool(taiji.tensor(0))
    assert len(taiji.zeros(4, 2)) == 4
    assert [r.tolist() for r in taiji.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(taiji.tensor([1, 2]))
    with pytest.raises(TypeError):
        len(taiji.tensor(1.0))


# ---------------------------------------------------------------- casts


def test_cast_methods_dtypes():
    t = taiji.tensor([1.7, -1.7, 0.0])
    assert t.float().dtype is taiji.float32
    assert t.double().dtype is taiji.float64
    assert t.half().dtype is taiji.float16
    assert t.bfloat16().dtype is taiji.bfloat16
    assert t.long().dtype is taiji.int64 and t.long().tolist() == [1, -1, 0]  # truncation
    assert t.int().dtype is taiji.int32 and t.int().tolist() == [1, -1, 0]
    assert t.bool().dtype is taiji.bool and t.bool().tolist() == [True, True, False]
    assert t.to(taiji.float64).dtype is taiji.float64
    assert t.to(dtype=taiji.int16).dtype is taiji.int16
    assert t.to("cpu", taiji.float64).dtype is taiji.float64
    assert t.to(taiji.zeros(1, dtype=taiji.int8)).dtype is taiji.int8
    assert t.to("cpu").dtype is taiji.float32


def test_cast_to_same_dtype_values_unchanged():
    t = taiji.tensor([1.0, 2.0])
    assert t.float().tolist() == [1.0, 2.0]


@pytest.mark.parametrize("dst", [taiji.uint8, taiji.int8, taiji.int32])
def test_bfloat16_to_integer_wraps_as_float32_does_eager_and_compiled(dst):
    # (ml_dtypes 0.7 saturates bfloat16 -> uint8: -3.0 gave 0; NumPy's float casts and
    # PyTorch give 253)
    vals = [-3.0, 0.0, 1.0, 2.0, 100.0, -128.0, 255.0]
    want = np.array(vals, np.float32).astype(dst.np)
    x = taiji.tensor(vals).to(taiji.bfloat16)
    assert np.array_equal(x.to(dst).numpy(), want)
    assert np.array_equal(taiji.jit(lambda t: (t * 1.0).to(dst))(x).numpy(), want)


@pytest.mark.parametrize("src", ALL_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dst", ALL_DTYPES, ids=lambda d: d.name)
def test_casts_match_torch(src, dst):
    torch = _torch()
    vals = [0.0, 1.0, 3.0, 100.0, 250.0] if src in (taiji.uint8, taiji.bool) else \
        [-3.0, 0.0, 1.0, 2.0, 100.0]
    if src is taiji.bool:
        vals = [0.0, 1.0, 1.0, 0.0, 1.0]
    if src is taiji.int8:
        vals = [-3.0, 0.0, 1.0, 2.0, 100.0]
    ours = taiji.tensor(vals).to(src).to(dst)
    theirs = torch.tensor(vals).to(_tdt(torch, src)).to(_tdt(torch, dst))
    assert ours.dtype is dst
    np.testing.assert_array_equal(ours.to(taiji.float64).numpy(),
                                  theirs.to(torch.float64).numpy())


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_float_rounding_of_half_and_bfloat16_matches_torch():
    torch = _torch()
    vals = [1 / 3, 0.1, 65504.0, 1e-3, -2.71828, 3.14159265, 1e5]
    for d in (taiji.float16, taiji.bfloat16):
        ours = taiji.tensor(vals).to(d).to(taiji.float64).numpy()
        theirs = torch.tensor(vals).to(_tdt(torch, d)).to(torch.float64).numpy()
        np.testing.assert_array_equal(ours, theirs, err_msg=d.name)


def test_bfloat16_known_values():
    # bfloat16 keeps 8 mantissa bits: 1/3 -> 0.333984375, 257 -> 256
    t = taiji.tensor([1 / 3, 257.0]).bfloat16()
    assert t.tolist() == [0.333984375, 256.0]
    assert taiji.tensor([1 / 3]).half().item() == 0.333251953125


def test_type_method():
    t = taiji.tensor([1.5])
    assert t.type() == "taiji.float32"
    assert t.type(taiji.float64).dtype is taiji.float64


def test_element_size_and_is_floating_point():
    assert taiji.zeros(1, dtype=taiji.float64).element_size() == 8
    assert taiji.zeros(1, dtype=taiji.bfloat16).element_size() == 2
    assert taiji.zeros(1).is_floating_point()
    assert not taiji.zeros(1, dtype=taiji.int32).is_floating_point()


def test_default_dtype_switch():
    assert taiji.get_default_dtype() is taiji.float32
    taiji.set_default_dtype(taiji.float64)
    try:
        assert taiji.tensor([1.5]).dtype is taiji.float64
        assert taiji.zeros(2).dtype is taiji.float64
    finally:
        taiji.set_default_dtype(taiji.float32)
    assert taiji.tensor([1.5]).dtype is taiji.float32
    with pytest.raises(TypeError, match="floating"):
        taiji.set_default_dtype(taiji.int32)


def test_dtype_repr_and_lookup():
    assert repr(taiji.float32) == "taiji.float32"
    assert taiji.float is taiji.float32 and taiji.double is taiji.float64
    assert taiji.half is taiji.float16 and taiji.long is taiji.int64
    assert taiji.int is taiji.int32
    assert taiji.tensor([1]).to(float).dtype is taiji.float32


# ---------------------------------------------------------------- repr


def _same_repr(ours, theirs):
    assert repr(ours) == repr(theirs).replace("torch.", "taiji.")


REPR_CASES = [
    ("[1.0, 2.0]", {}),
    ("[1.5, -20.25, 3.0]", {}),
    ("[[1.5, -20.25], [3.0, 4.0]]", {}),
    ("[-1.0, 2.0]", {}),
    ("3.5", {}),
    ("[1e-5, 1.0]", {}),
    ("1e10", {}),
    ("[float('nan'), 1.0, float('inf')]", {}),
    ("[1, 2, 3]", {}),
    ("[-1, 10]", {}),
    ("5", {}),
    ("[True, False]", {}),
    ("[1, 2]", {"dtype": "int32"}),
    ("[1.0, 2.0]", {"dtype": "float64"}),
    ("[0.1, 2.0]", {"dtype": "bfloat16"}),
    ("[1.5]", {"dtype": "float16"}),
    ("[]", {}),
    ("[1.0, 2000.0]", {}),
    ("[0.5, 600.0]", {}),
    ("[0.0, 1e-5]", {}),
    ("[float('nan'), -1.5]", {}),
]


@pytest.mark.parametrize("src,kw", REPR_CASES, ids=[c[0] + str(c[1]) for c in REPR_CASES])
def test_repr_matches_torch(src, kw):
    torch = _torch()
    data = eval(src)
    ours = taiji.tensor(data, **{k: getattr(taiji, v) for k, v in kw.items()})
    theirs = torch.tensor(data, **{k: getattr(torch, v) for k, v in kw.items()})
    _same_repr(ours, theirs)


def test_repr_requires_grad_and_grad_fn_match_torch():
    torch = _torch()
    _same_repr(taiji.tensor([[1.0, 2.0]], requires_grad=True),
               torch.tensor([[1.0, 2.0]], requires_grad=True))
    _same_repr(taiji.tensor([1.0, 2.0], dtype=taiji.float64, requires_grad=True),
               torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True))
    x, tx = taiji.tensor([1.5, 2.0], requires_grad=True), torch.tensor([1.5, 2.0],
                                                                        requires_grad=True)
    _same_repr(x * 2, tx * 2)
    _same_repr(x + 1, tx + 1)


def test_repr_known_strings():
    assert repr(taiji.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(taiji.tensor([1, 2], dtype=taiji.int32)) == "tensor([1, 2], dtype=taiji.int32)"
    assert repr(taiji.tensor(True)) == "tensor(True)"
    assert repr(taiji.zeros(2, 0)) == "tensor([], size=(2, 0))"
    x = taiji.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(x * 3) == "tensor([3., 6.], grad_fn=<MulBackward0>)"
    assert str(taiji.tensor([[1.0, 2.0], [3.0, 4.0]])) == \
        "tensor([[1., 2.],\n        [3., 4.]])"


def test_repr_large_tensor_summarised_like_torch():
    torch = _torch()
    _same_repr(taiji.arange(2000), torch.arange(2000))
    data = np.linspace(-5, 5, 1500).astype(np.float32)
    _same_repr(taiji.from_numpy(data), torch.from_numpy(data))
    grid = np.arange(1600.0, dtype=np.float32).reshape(40, 40)
    _same_repr(taiji.from_numpy(grid), torch.from_numpy(grid))


def test_format_of_scalar_tensor():
    assert f"{taiji.tensor(1.23456):.2f}" == "1.23"


# ---------------------------------------------------------------- devices


def test_device_object():
    d = taiji.device("cpu")
    assert d.type == "cpu" and d.index is None
    assert repr(d) == "device(type='cpu')"
    assert taiji.device("cuda:1").index == 1 and str(taiji.device("cuda:1")) == "cuda:1"
    assert d == "cpu"
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        taiji.device("tpu")
    with pytest.raises(RuntimeError, match="Invalid device string"):
        taiji.device("cuda:x")


def test_unavailable_device_raises_clearly():
    if taiji.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="'cuda' was requested, but CUDA is not available "
                                           "here: .*CuPy.*Use device='cpu'"):
        taiji.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        taiji.tensor([1.0]).to("cuda")


def test_relu_on_numpy_reads_a_shared_read_only_zero_buffer():
    from taiji._prims._util import zeros_view
    z = zeros_view((3, 4), np.float32)
    assert z.shape == (3, 4) and z.dtype == np.float32 and not z.any()
    assert not z.flags.writeable
    with pytest.raises(ValueError):
        z[0, 0] = 1.0
    big = zeros_view((300, 1000), np.float64)  # grows the float64 buffer; float32's stays
    assert big.shape == (300, 1000) and not big.any()
    assert np.shares_memory(zeros_view((2,), np.float32), z)
    # strided, integer and empty inputs, NaN and signed zeros: NumPy's maximum(x, 0)
    x = np.float32([[np.nan, -0.0, -np.inf, 2.5], [0.0, -1.0, np.inf, 3.0]])
    for a in (x, x.T, x[:, ::2]):
        got = taiji.relu(taiji.from_numpy(a)).numpy()
        assert np.array_equal(got.view(np.uint32), np.maximum(a, np.float32(0)).view(np.uint32))
    assert taiji.relu(taiji.tensor([-3, 0, 4])).tolist() == [0, 0, 4]
    assert taiji.relu(taiji.zeros(0, 5)).shape == (0, 5)
