"""``taiji.save`` / ``taiji.load``: checkpoints as safetensors files, never pickle.

A checkpoint is one `safetensors <https://github.com/huggingface/safetensors>`_ file:

* 8 bytes: little-endian unsigned length ``N`` of the header;
* ``N`` bytes: a UTF-8 JSON header ``{name: {"dtype", "shape", "data_offsets"}, ...,
  "__metadata__": {str: str}}`` (padded with spaces to a multiple of 8);
* the raw little-endian bytes of every tensor, back to back.

The nested Python structure around the tensors (dicts, lists, tuples, numbers, strings,
bools, None) is stored as a JSON string under ``__metadata__["taiji.structure"]``; tensors
appear in it as references by name. Loading parses JSON and copies bytes: it never executes
anything from the file, so a checkpoint from a stranger is as safe as a CSV.

The format is written and read here, without the ``safetensors`` package (one small, fully
specified format is cheaper to own than a dependency, and the library must load files on
machines without Rust wheels); the tests check interoperability with it both ways.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
from typing import Any, Callable

import numpy as np

from taiji import _dtypes as dt
from taiji.tensor import Tensor

__all__ = ["save", "load", "SerializationError"]

_FORMAT = "taiji"
_STRUCT_KEY = "taiji.structure"
_VERSION_KEY = "taiji.format_version"
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors limit

# safetensors dtype names <-> taiji dtypes
_TO_ST = {dt.float64: "F64", dt.float32: "F32", dt.float16: "F16", dt.bfloat16: "BF16",
          dt.int64: "I64", dt.int32: "I32", dt.int16: "I16", dt.int8: "I8", dt.uint8: "U8",
          dt.uint32: "U32", dt.bool_: "BOOL"}
_FROM_ST = {v: k for k, v in _TO_ST.items()}


class SerializationError(Exception):
    """A checkpoint file is truncated, corrupted, foreign, or the object cannot be saved."""


# ---------------------------------------------------------------- structure encoding
#
# JSON values stand for themselves where JSON keeps their Python type (None, bools, ints,
# finite floats, strings, lists). Everything else is a one-key object whose key starts with
# "$": {"$tensor": name}, {"$ndarray": name}, {"$tuple": [...]}, {"$dict": [[k, v], ...]}
# (keeps key types and order), {"$float": "nan"|"inf"|"-inf"}, {"$dtype": "float32"}.

def _encode(obj, tensors: dict, names: dict, path: str):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"$float": repr(obj)}
    if isinstance(obj, Tensor):
        return {"$tensor": _add_tensor(obj._concrete("taiji.save()"), tensors, names, path,
                                       obj)}
    if isinstance(obj, np.ndarray):
        return {"$ndarray": _add_tensor(obj, tensors, names, path, obj)}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors, names, path)
    if isinstance(obj, dt.DType):
        return {"$dtype": obj.name}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
                raise SerializationError(
                    f"taiji.save: dict key {k!r} at '{path}' has type {type(k).__name__}; "
                    f"keys must be str, int, float, bool, None or tuples of those")
            items.append([_encode(k, tensors, names, path),
                          _encode(v, tensors, names, f"{path}.{k}" if path else str(k))])
        return {"$dict": items}
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, tensors, names, f"{path}.{i}" if path else str(i))
                           for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, names, f"{path}.{i}" if path else str(i))
                for i, v in enumerate(obj)]
    raise SerializationError(
        f"taiji.save: cannot save an object of type {type(obj).__name__} at "
        f"'{path or '<root>'}'; checkpoints hold tensors, NumPy arrays, numbers, strings, "
        f"bools, None and dicts/lists/tuples of those (no pickle). Save its state_dict() "
        f"instead.")


def _add_tensor(arr: np.ndarray, tensors: dict, names: dict, path: str, owner) -> str:
    if id(owner) in names:  # the same tensor twice: store once, reference twice
        return names[id(owner)][0]
    d = dt.from_np(arr.dtype) if arr.dtype in dt._BY_NP else None
    if d is None or d not in _TO_ST:
        raise SerializationError(f"taiji.save: array at '{path}' has unsupported dtype "
                                 f"{arr.dtype}")
    name = path or "tensor"
    base, i = name, 1
    while name in tensors or name == "__metadata__":
        name, i = f"{base}__{i}", i + 1
    tensors[name] = (d, arr if arr.flags.c_contiguous else arr.copy(order="C"))
    names[id(owner)] = (name, owner)  # keep ``owner`` alive so its id is not reused
    return name


def _decode(node, tensors: dict, fname: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, tensors, fname) for v in node]
    if isinstance(node, dict) and len(node) == 1:
        (tag, val), = node.items()
        if tag in ("$tensor", "$ndarray"):
            if not isinstance(val, str) or val not in tensors:
                raise SerializationError(f"{fname}: the structure refers to tensor {val!r}, "
                                         f"which is not in the file")
            arr = tensors[val]
            return arr if tag == "$ndarray" else _as_tensor(arr)
        if tag == "$tuple" and isinstance(val, list):
            return tuple(_decode(v, tensors, fname) for v in val)
        if tag == "$dict" and isinstance(val, list):
            out = {}
            for kv in val:
                if not (isinstance(kv, list) and len(kv) == 2):
                    raise SerializationError(f"{fname}: malformed dict entry {kv!r} in the "
                                             f"structure metadata")
                out[_decode(kv[0], tensors, fname)] = _decode(kv[1], tensors, fname)
            return out
        if tag == "$float" and val in ("nan", "inf", "-inf"):
            return float(val)
        if tag == "$dtype" and isinstance(val, str) and val in dt._BY_NAME:
            return dt._BY_NAME[val]
    raise SerializationError(f"{fname}: unknown node {str(node)[:80]!r} in the structure "
                             f"metadata (written by a newer taiji, or corrupted)")


def _as_tensor(arr: np.ndarray) -> Tensor:
    from taiji._ops import const
    return const(arr)


# ---------------------------------------------------------------- writing

def _serialize(tensors: dict, metadata: dict) -> list:
    header: dict = {"__metadata__": metadata}
    offset = 0
    chunks = []
    for name, (d, arr) in tensors.items():
        le = arr.astype(arr.dtype.newbyteorder("<"), copy=False) if arr.dtype.byteorder == ">" \
            else arr
        nbytes = le.nbytes
        header[name] = {"dtype": _TO_ST[d], "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + nbytes]}
        chunks.append(le)
        offset += nbytes
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False,
                    allow_nan=False).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    return [struct.pack("<Q", len(hb)), hb] + chunks


def _write_chunks(f, chunks) -> None:
    for c in chunks:
        if isinstance(c, np.ndarray):
            if c.size:
                f.write(memoryview(c.reshape(-1).view(np.uint8)))
        else:
            f.write(c)


def save(obj: Any, f, *, metadata: dict | None = None) -> None:
    """Save ``obj`` (nested dicts/lists/tuples of tensors, arrays, numbers, strings, bools,
    None) to ``f`` as a safetensors file.

    The write is atomic: the data goes to a temporary file in the same directory, is flushed
    and fsync'ed, then renamed over ``f``; a crash mid-save leaves the previous file intact.
    A flat ``dict[str, Tensor]`` (a model's ``state_dict()``) keeps its keys as the tensor
    names, so ``safetensors.torch.load_file`` reads it as the same dict.

    Args:
        obj: what to save, e.g. ``{"model": model.state_dict(), "optim":
            opt.state_dict(), "rng": taiji.get_rng_state(), "epoch": 3}``.
        f: a path (str or os.PathLike) or a writable binary file object.
        metadata: extra ``str -> str`` entries for the header's ``__metadata__``.

    Raises:
        SerializationError: ``obj`` holds something that is not data (a module, a function,
            a custom class): save its ``state_dict()`` instead.

    Example:
        >>> taiji.save({"model": model.state_dict(), "step": 100}, "ckpt.safetensors")
        >>> ckpt = taiji.load("ckpt.safetensors")
    """
    tensors: dict = {}
    names: dict = {}
    flat = isinstance(obj, dict) and all(
        isinstance(k, str) and not k.startswith("__") and isinstance(v, Tensor)
        for k, v in obj.items())
    if flat:
        for k, v in obj.items():
            _add_tensor(v._concrete("taiji.save()"), tensors, names, k, v)
    structure = _encode(obj, tensors, names, "")
    meta = {"format": "pt", _VERSION_KEY: "1",
            _STRUCT_KEY: json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SerializationError("taiji.save: metadata must map str to str")
            meta[k] = v
    chunks = _serialize(tensors, meta)
    if hasattr(f, "write"):
        _write_chunks(f, chunks)
        return
    path = os.fspath(f)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            _write_chunks(out, chunks)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort: not every OS allows this)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ---------------------------------------------------------------- reading

def _foreign_hint(head: bytes) -> str:
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return (" It looks like a Python pickle (e.g. an old torch.save file); taiji never "
                "loads pickle. Convert it with safetensors.torch.save_file in a trusted "
                "environment.")
    if head[:4] == b"PK\x03\x04":
        return (" It looks like a zip archive (torch.save's format, which holds a pickle); "
                "taiji never loads pickle. Convert it with safetensors.torch.save_file in a "
                "trusted environment.")
    if head[:6] == b"\x93NUMPY":
        return " It looks like a NumPy .npy file; read it with numpy.load."
    return ""


def _parse(buf, fname: str) -> tuple[dict, dict]:
    """(header entries by name, metadata); validates every offset against ``buf``."""
    size = len(buf)
    head = bytes(buf[:16])
    if size < 8:
        raise SerializationError(f"{fname}: not a taiji/safetensors checkpoint: the file has "
                                 f"{size} bytes, fewer than the 8-byte header length (empty "
                                 f"or truncated).{_foreign_hint(head)}")
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_HEADER or n + 8 > size:
        raise SerializationError(
            f"{fname}: not a valid taiji/safetensors checkpoint: the header claims {n} bytes "
            f"but the file has {size - 8} after the length field (truncated, corrupted or a "
            f"different format).{_foreign_hint(head)}")
    raw = bytes(buf[8:8 + n])
    if not raw.lstrip()[:1] == b"{":
        raise SerializationError(f"{fname}: not a valid taiji/safetensors checkpoint: the "
                                 f"header is not a JSON object.{_foreign_hint(head)}")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SerializationError(f"{fname}: corrupted checkpoint: the JSON header does not "
                                 f"parse ({e})") from None
    if not isinstance(header, dict):
        raise SerializationError(f"{fname}: corrupted checkpoint: the header is not a JSON "
                                 f"object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SerializationError(f"{fname}: corrupted checkpoint: __metadata__ must map "
                                 f"strings to strings")
    data_len = size - 8 - n
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise SerializationError(f"{fname}: corrupted checkpoint: entry {name!r} needs "
                                     f"dtype, shape and data_offsets")
        st, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if st not in _FROM_ST:
            raise SerializationError(
                f"{fname}: tensor {name!r} has dtype {st!r}, which taiji does not support "
                f"(supported: {', '.join(_FROM_ST)})")
        if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
            raise SerializationError(f"{fname}: corrupted checkpoint: tensor {name!r} has an "
                                     f"invalid shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2
                and all(type(o) is int for o in offs) and 0 <= offs[0] <= offs[1]):
            raise SerializationError(f"{fname}: corrupted checkpoint: tensor {name!r} has "
                                     f"invalid data_offsets {offs!r}")
        if offs[1] > data_len:
            raise SerializationError(
                f"{fname}: truncated or corrupted checkpoint: tensor {name!r} needs bytes "
                f"{offs[0]}..{offs[1]} but the data section has only {data_len} bytes")
        want = math.prod(shape) * _FROM_ST[st].itemsize
        if offs[1] - offs[0] != want:
            raise SerializationError(
                f"{fname}: corrupted checkpoint: tensor {name!r} of shape {shape} and dtype "
                f"{st} needs {want} bytes, but its data_offsets span {offs[1] - offs[0]}")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    end = 0
    for b, e, name in spans:
        if b != end:
            what = "overlaps another tensor" if b < end else "leaves a gap before it"
            raise SerializationError(f"{fname}: corrupted checkpoint: tensor {name!r} {what} "
                                     f"(data_offsets [{b}, {e}])")
        end = e
    if end != data_len:
        raise SerializationError(f"{fname}: corrupted checkpoint: {data_len - end} trailing "
                                 f"bytes after the last tensor")
    return header, meta


def _read_all(f, fname: str) -> bytes:
    if hasattr(f, "read"):
        return f.read()
    try:
        with open(f, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"taiji.load: no such file: '{fname}'") from None


def _mapper(map_location) -> Callable[[Tensor], Tensor] | None:
    if map_location is None:
        return None
    if callable(map_location):
        return lambda t: map_location(t, "cpu")
    if isinstance(map_location, dict):
        target = map_location.get("cpu", None)
        return None if target is None else (lambda t: t.to(target))
    return lambda t: t.to(map_location)


def load(f, map_location=None, weights_only: bool = True, *, mmap: bool | None = None) -> Any:
    """Load an object saved by ``taiji.save`` (or any safetensors file).

    Only data is read: the JSON header is parsed and tensor bytes are copied; nothing from
    the file is executed, whatever ``weights_only`` says. A safetensors file without taiji's
    structure metadata (e.g. written by ``safetensors.torch.save_file``) loads as a flat
    ``dict[str, Tensor]`` in file order.

    Args:
        f: a path or a readable binary file object.
        map_location: where to put the tensors: None (the CPU), a device or device string
            (``"cuda"``), ``{"cpu": device}``, or a callable ``fn(tensor, "cpu")``.
        weights_only: accepted for PyTorch compatibility; taiji always loads data only.
        mmap: accepted for PyTorch compatibility; ignored.

    Returns:
        The saved object, with tensors as ``taiji.Tensor`` and NumPy arrays as arrays.

    Raises:
        SerializationError: the file is truncated, corrupted, or not a safetensors file
            (a pickle, random bytes, a wrong header); the message names the file.

    Example:
        >>> ckpt = taiji.load("ckpt.safetensors")
        >>> model.load_state_dict(ckpt["model"])
    """
    fname = getattr(f, "name", None) if hasattr(f, "read") else os.fspath(f)
    fname = str(fname) if fname is not None else "<file object>"
    buf = _read_all(f, fname)
    header, meta = _parse(buf, fname)
    base = 8 + struct.unpack("<Q", buf[:8])[0]
    arrays = {}
    for name, info in header.items():
        d = _FROM_ST[info["dtype"]]
        b, e = info["data_offsets"]
        a = np.frombuffer(buf, dtype=d.np.newbyteorder("<"), count=(e - b) // d.itemsize,
                          offset=base + b).reshape(info["shape"])
        if d is dt.bool_ and a.size and a.view(np.uint8).max() > 1:
            raise SerializationError(f"{fname}: corrupted checkpoint: bool tensor {name!r} "
                                     f"holds bytes other than 0 and 1")
        arrays[name] = a.astype(d.np, copy=True)  # own, writable, native byte order
    if _STRUCT_KEY in meta:
        try:
            structure = json.loads(meta[_STRUCT_KEY])
        except json.JSONDecodeError as e:
            raise SerializationError(f"{fname}: corrupted checkpoint: the structure metadata "
                                     f"does not parse ({e})") from None
        obj = _decode(structure, arrays, fname)
    else:
        order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
        obj = {k: _as_tensor(arrays[k]) for k in order}
    fn = _mapper(map_location)
    if fn is not None:
        obj = _map_tensors(obj, fn)
    return obj


def _map_tensors(obj, fn):
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_map_tensors(v, fn) for v in obj)
    if isinstance(obj, list):
        return [_map_tensors(v, fn) for v in obj]
    return obj


def _bytes(obj: Any) -> bytes:
    """``obj`` serialised to bytes (for tests and in-memory transport)."""
    b = io.BytesIO()
    save(obj, b)
    return b.getvalue()
