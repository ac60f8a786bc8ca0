"""Write and read safetensors files without holding or copying whole arrays.

The format is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw bytes in header order. The header depends only on shapes,
so a feature matrix can be streamed to disk in row chunks as it is computed, with hashing and
writing on a background thread while the next chunk is transformed. Files are read back with
the safetensors package, which is what trainers use.
"""

from __future__ import annotations

import hashlib
import json
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np

DTYPES = {
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("uint8"): "U8",
}


class SafetensorsWriter:
    """Streams tensors of known shapes into one safetensors file.

    Tensors are written in name order, each as one or more row chunks appended with
    :meth:`write`. hashlib and file writes release the GIL, so they overlap with the caller's
    work on the next chunk.

    Args:
        path: the file to create.
        layout: name -> (dtype, shape) of every tensor the file will hold.
        metadata: string pairs stored in the header's ``__metadata__``.
    """

    def __init__(
        self,
        path: Path,
        layout: dict[str, tuple[np.dtype[np.generic], tuple[int, ...]]],
        metadata: dict[str, str] | None = None,
    ) -> None:
        header: dict[str, object] = {}
        if metadata:
            header["__metadata__"] = dict(metadata)
        offset = 0
        self._remaining: list[tuple[str, int]] = []
        for name in sorted(layout):
            dtype, shape = np.dtype(layout[name][0]), tuple(layout[name][1])
            if dtype not in DTYPES:
                raise TypeError(f"tensor '{name}' has dtype {dtype}, which is not supported")
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            header[name] = {
                "dtype": DTYPES[dtype],
                "shape": list(shape),
                "data_offsets": [offset, offset + nbytes],
            }
            offset += nbytes
            self._remaining.append((name, nbytes))
        encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
        encoded += b" " * (-len(encoded) % 8)
        self.size = 8 + len(encoded) + offset
        self._digest = hashlib.sha256()
        self._file = open(path, "wb")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safetensors")
        self._pending: Future[None] | None = None
        self._submit(struct.pack("<Q", len(encoded)) + encoded)

    def _submit(self, data: bytes | memoryview) -> None:
        if self._pending is not None:
            self._pending.result()  # at most one chunk in flight: bounded memory
        self._pending = self._pool.submit(self._consume, data)

    def _consume(self, data: bytes | memoryview) -> None:
        self._digest.update(data)
        self._file.write(data)

    def write(self, name: str, chunk: np.ndarray) -> None:
        """Append ``chunk`` (rows of tensor ``name``); tensors must come in name order."""
        if not self._remaining or self._remaining[0][0] != name:
            expected = self._remaining[0][0] if self._remaining else "nothing"
            raise ValueError(f"expected a chunk of '{expected}', got '{name}'")
        data = np.ascontiguousarray(chunk).reshape(-1).view(np.uint8).data
        left = self._remaining[0][1] - data.nbytes
        if left < 0:
            raise ValueError(f"more data for '{name}' than its shape holds")
        self._remaining[0] = (name, left)
        if left == 0:
            self._remaining.pop(0)
        if data.nbytes:
            self._submit(data)

    def close(self) -> str:
        """Finish the file; returns its sha256. Raises if a tensor is incomplete."""
        try:
            if self._pending is not None:
                self._pending.result()
            if self._remaining:
                raise ValueError(f"tensor '{self._remaining[0][0]}' is incomplete")
        finally:
            self._pool.shutdown()
            self._file.close()
        return self._digest.hexdigest()

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self._pool.shutdown()
            self._file.close()


def write_safetensors(
    path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> str:
    """Write whole ``tensors`` to ``path`` in safetensors format; returns the file's sha256."""
    layout = {name: (array.dtype, tuple(array.shape)) for name, array in tensors.items()}
    with SafetensorsWriter(path, layout, metadata) as writer:
        for name in sorted(tensors):
            writer.write(name, tensors[name])
        return writer.close()


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor in a safetensors file, as numpy arrays."""
    from safetensors.numpy import load_file

    loaded: dict[str, np.ndarray] = load_file(str(path))
    return loaded
