"""The logic the Store port gives every adapter for free, on a minimal in-memory adapter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lockgate.errors import ObjectNotFound
from lockgate.ports.store import ObjectInfo, Store


class MemoryStore(Store):
    """Implements only the six abstract operations, as a new adapter would start."""

    def __init__(self) -> None:
        self.uri, self.bucket, self.prefix = "memory://", "mem", "team/"
        self.objects: dict[str, bytes] = {}

    def _info(self, key: str) -> ObjectInfo:
        data = self.objects[key]
        return ObjectInfo(key, len(data), str(hash(data)), datetime.now(UTC))

    def put(self, key: str, data: bytes) -> ObjectInfo:
        self.objects[key] = data
        return self._info(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = data
        return True

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise ObjectNotFound(self.uri, key)
        return self.objects[key]

    def head(self, key: str) -> ObjectInfo:
        self.get(key)
        return self._info(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter([self._info(k) for k in sorted(self.objects) if k.startswith(prefix)])

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


def test_file_transfers_and_exists_come_with_the_port(tmp_path: Path) -> None:
    store = MemoryStore()
    source = tmp_path / "in.csv"
    source.write_bytes(b"a,b\n1,2\n")
    moved: list[int] = []
    info = store.put_file("raw/in.csv", source, progress=moved.append)
    assert info.size == 8 and moved == [8]
    assert store.exists("raw/in.csv") and not store.exists("raw/other.csv")
    dest = tmp_path / "out" / "copy.csv"
    store.get_file("raw/in.csv", dest, progress=moved.append)
    assert dest.read_bytes() == b"a,b\n1,2\n" and moved == [8, 8]
    assert [p.name for p in dest.parent.iterdir()] == ["copy.csv"]  # no temp file left
    with pytest.raises(ObjectNotFound):
        store.get_file("raw/missing.csv", tmp_path / "missing.csv")
    assert not (tmp_path / "missing.csv").exists()


def test_event_keys_are_mapped_into_the_store() -> None:
    store = MemoryStore()
    assert store.event_key("mem", "team/raw/a.csv") == "raw/a.csv"
    assert store.event_key("mem", "other/raw/a.csv") is None
    assert store.event_key("another-bucket", "team/raw/a.csv") is None
    assert repr(store) == "MemoryStore('memory://')"
