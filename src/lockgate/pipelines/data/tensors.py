"""Write and read safetensors files without copying the arrays.

The format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw bytes. Writing it directly lets a feature matrix go from
memory to disk in one pass (the safetensors package would first copy it into a bytes object);
files are read back with the safetensors package, which is what trainers use.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np

DTYPES = {
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("uint8"): "U8",
}


def write_safetensors(
    path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> str:
    """Write ``tensors`` to ``path`` in safetensors format; returns the file's sha256."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    arrays = []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype not in DTYPES:
            raise TypeError(f"tensor '{name}' has dtype {array.dtype}, which is not supported")
        header[name] = {
            "dtype": DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
        arrays.append(array)
    encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    encoded += b" " * (-len(encoded) % 8)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for part in (struct.pack("<Q", len(encoded)), encoded):
            digest.update(part)
            out.write(part)
        for array in arrays:
            if array.size:
                view = memoryview(array.reshape(-1).view(np.uint8))
                digest.update(view)
                out.write(view)
    return digest.hexdigest()


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor in a safetensors file, as numpy arrays."""
    from safetensors.numpy import load_file

    loaded: dict[str, np.ndarray] = load_file(str(path))
    return loaded
