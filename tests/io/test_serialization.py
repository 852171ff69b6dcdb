"""taiji.save / taiji.load: round trips, atomic writes, bad files, safetensors interop."""
import io
import json
import os
import pickle
import struct

import numpy as np
import pytest

import taiji
from taiji import SerializationError


def _eq(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8))


def _model():
    taiji.manual_seed(0)
    return taiji.nn.Sequential(taiji.nn.Linear(3, 4), taiji.nn.ReLU(), taiji.nn.Linear(4, 2))


def test_round_trip_nested(tmp_path):
    m = _model()
    opt = taiji.optim.Adam(m.parameters(), 1e-3)
    m(taiji.randn(5, 3)).sum().backward()
    opt.step()
    sched = taiji.optim.lr_scheduler.StepLR(opt, 2)
    obj = {"model": m.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
           "rng": taiji.get_rng_state(), "epoch": 3, "step": 10 ** 15, "name": "run-1",
           "flags": [True, False, None], "tup": (1, 2.5, "x"), "inf": float("-inf"),
           "nan": float("nan"), 7: "int key", (1, 2): "tuple key",
           "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
           "dtypes": [taiji.float16, taiji.bfloat16],
           "bf": taiji.tensor([1.5, -2.0], dtype=taiji.bfloat16),
           "b": taiji.tensor([True, False]), "empty": taiji.zeros(0, 3),
           "scalar": taiji.tensor(2.0)}
    p = tmp_path / "ck.safetensors"
    taiji.save(obj, p)
    back = taiji.load(p)
    assert list(back) == list(obj)
    for k, v in obj["model"].items():
        assert _eq(back["model"][k].numpy(), v.numpy())
    st = back["opt"]["state"]
    assert set(st) == {0, 1, 2, 3}  # int keys survive
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["sched"] == sched.state_dict()
    assert _eq(back["rng"].numpy(), obj["rng"].numpy()) and back["rng"].dtype == taiji.uint32
    assert back["epoch"] == 3 and back["step"] == 10 ** 15 and back["name"] == "run-1"
    assert back["flags"] == [True, False, None] and back["tup"] == (1, 2.5, "x")
    assert back["inf"] == float("-inf") and np.isnan(back["nan"])
    assert back[7] == "int key" and back[(1, 2)] == "tuple key"
    assert isinstance(back["arr"], np.ndarray) and _eq(back["arr"], obj["arr"])
    assert back["dtypes"] == [taiji.float16, taiji.bfloat16]
    assert back["bf"].dtype == taiji.bfloat16 and _eq(back["bf"].numpy(), obj["bf"].numpy())
    assert back["b"].dtype == taiji.bool and back["empty"].shape == (0, 3)
    assert back["scalar"].shape == () and back["scalar"].item() == 2.0
    # the loaded optimizer state restores into a fresh optimizer
    opt2 = taiji.optim.Adam(_model().parameters(), 1e-3)
    opt2.load_state_dict(back["opt"])


def test_header_layout_and_bf16(tmp_path):
    p = tmp_path / "w.safetensors"
    taiji.save({"w": taiji.ones(2, 3, dtype=taiji.bfloat16), "b": taiji.zeros(3)}, p)
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["w"] == {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}
    assert header["b"]["dtype"] == "F32" and header["b"]["data_offsets"] == [12, 24]
    meta = header["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values())
    json.loads(meta["taiji.structure"])
    assert len(raw) == 8 + n + 24


def test_shared_tensor_stored_once(tmp_path):
    t = taiji.arange(4)
    taiji.save({"a": t, "b": [t, t]}, tmp_path / "s")
    back = taiji.load(tmp_path / "s")
    assert np.array_equal(back["b"][1].numpy(), [0, 1, 2, 3])


def test_file_objects_and_map_location():
    buf = io.BytesIO()
    taiji.save({"x": taiji.ones(2)}, buf)
    buf.seek(0)
    out = taiji.load(buf, map_location="cpu")
    assert out["x"].tolist() == [1.0, 1.0]
    buf.seek(0)
    seen = []
    taiji.load(buf, map_location=lambda t, loc: seen.append(loc) or t)
    assert seen == ["cpu"]


def test_unsavable_object_names_the_path(tmp_path):
    with pytest.raises(SerializationError, match=r"Linear.*'model'"):
        taiji.save({"model": taiji.nn.Linear(2, 2)}, tmp_path / "x")
    assert not os.listdir(tmp_path)  # nothing written, no temp file left


def test_atomic_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "ck"
    taiji.save({"v": taiji.tensor([1.0])}, p)
    import taiji.serialization as S

    def boom(f, chunks):
        f.write(b"partial")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(S, "_write_chunks", boom)
    with pytest.raises(OSError, match="disk full"):
        taiji.save({"v": taiji.tensor([2.0])}, p)
    monkeypatch.undo()
    assert taiji.load(p)["v"].tolist() == [1.0]
    assert os.listdir(tmp_path) == ["ck"]


def _good_bytes():
    buf = io.BytesIO()
    taiji.save({"w": taiji.arange(6, dtype=taiji.float32).reshape(2, 3), "b": taiji.ones(2)},
               buf)
    return buf.getvalue()


def _with_header(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


@pytest.mark.parametrize("name,blob,words", [
    ("empty", b"", "fewer than the 8-byte"),
    ("random", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
     "header claims"),
    ("pickle", pickle.dumps({"w": [1.0, 2.0]}), "pickle"),
    ("torchzip", b"PK\x03\x04" + b"\0" * 64, "zip archive"),
    ("truncated", None, "truncated"),
    ("notjson", struct.pack("<Q", 6) + b"{nope}", "does not parse"),
    ("notobject", struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ("oob", _with_header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                         b"\0" * 4), "only 4 bytes"),
    ("shape", _with_header({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
                           b"\0" * 8), "needs 12 bytes"),
    ("overlap", _with_header({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                              "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}},
                             b"\0" * 6), "overlaps"),
    ("dtype", _with_header({"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}},
                           b"\0" * 8), "does not support"),
    ("trailing", _with_header({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}},
                              b"\0" * 3), "trailing"),
    ("badstruct", _with_header({"__metadata__": {"taiji.structure": '{"$evil": 1}'}}, b""),
     "unknown node"),
    ("missingref", _with_header({"__metadata__": {"taiji.structure": '{"$tensor": "zz"}'}},
                                b""), "not in the file"),
])
def test_bad_files_raise_serialization_error(tmp_path, name, blob, words):
    if blob is None:
        blob = _good_bytes()[:-5]
    p = tmp_path / f"{name}.bin"
    p.write_bytes(blob)
    with pytest.raises(SerializationError) as e:
        taiji.load(p)
    assert str(p) in str(e.value) and words in str(e.value)


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    p = tmp_path / "evil.pt"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(SerializationError):
        taiji.load(p, weights_only=False)
    assert not marker.exists()


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        taiji.load(tmp_path / "nope")


# ---------------------------------------------------------------- interop with PyTorch

torch = pytest.importorskip("torch", reason="PyTorch not installed: interop tests skipped")
st_torch = pytest.importorskip("safetensors.torch",
                               reason="safetensors not installed: interop tests skipped")


def test_torch_state_dict_loads_into_taiji_model(tmp_path):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    p = tmp_path / "torch.safetensors"
    st_torch.save_file(tm.state_dict(), str(p))
    sd = taiji.load(p)
    assert isinstance(sd, dict) and set(sd) == set(tm.state_dict())
    m = _model()
    m.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    want = tm(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(m(taiji.tensor(x)).numpy(force=True), want, rtol=1e-6, atol=1e-6)


def test_taiji_file_loads_into_torch(tmp_path):
    m = _model()
    p = tmp_path / "taiji.safetensors"
    taiji.save(m.state_dict(), p)
    sd = st_torch.load_file(str(p))
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    tm.load_state_dict(sd)
    for k, v in m.state_dict().items():
        assert np.array_equal(sd[k].numpy(), v.numpy())
    # bf16 and nested checkpoints are readable by safetensors too
    taiji.save({"a": {"b": taiji.ones(2, dtype=taiji.bfloat16)}}, p)
    out = st_torch.load_file(str(p))
    assert out["a.b"].dtype == torch.bfloat16
