# SPDX-License-Identifier: MIT
"""safetensors files with numpy alone (no safetensors package): the
container libsdflow's model files use (docs/model-files.md).

``read(path_or_bytes)`` returns ``(tensors, metadata)``: a dict of numpy
arrays (little-endian float64 / float32, read-only views copied to native
arrays) and the ``__metadata__`` dict of strings. ``write(path, tensors,
metadata)`` writes float64/float32 arrays; float64 tensors are laid out
first so every tensor is aligned to its element size, and the header is
padded with spaces so the data starts 8-byte aligned, as libsdflow
requires."""

import json
import struct

import numpy as np

_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4")}
_NAMES = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32"}


def loads(raw):
    """Parses bytes of a safetensors file: (tensors, metadata)."""
    raw = bytes(raw)
    if len(raw) < 8:
        raise ValueError("shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError("header length %d runs past the end" % n)
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, e in header.items():
        dt = _DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=dt).reshape(e["shape"])
        tensors[name] = arr.astype(dt.newbyteorder("="), copy=True)
    return tensors, meta


def read(path):
    with open(path, "rb") as f:
        return loads(f.read())


def dumps(tensors, metadata=None):
    """Bytes of a safetensors file from a dict of float64/float32 arrays."""
    items = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = np.dtype(a.dtype).newbyteorder("<")
        if dt not in _NAMES:
            raise TypeError("tensor %s: dtype %s (only float64 and float32)" % (name, a.dtype))
        items.append((name, a.astype(dt, copy=False)))
    items.sort(key=lambda it: -it[1].dtype.itemsize)  # F64 first: aligned offsets
    header, off = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, a in items:
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(a.tobytes() for _, a in items)


def write(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(dumps(tensors, metadata))
