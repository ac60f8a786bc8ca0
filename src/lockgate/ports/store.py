"""The object store port: bytes in, bytes out, by key.

Every pipeline talks to the others only through a ``Store``; the layout of its keys is the
contract in DESIGN.md (``raw/``, ``processed/``, ``quarantine/``, ...). Adapters move bytes;
the logic shared by all of them lives here, above the interface.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from lockgate.errors import ObjectNotFound

Progress = Callable[[int], None]
"""Called with the number of bytes moved since the previous call."""

CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` and ``list`` tell about one object."""

    key: str
    size: int
    etag: str
    """Opaque version tag, unquoted; changes whenever the content changes (S3: MD5 or multipart)."""
    last_modified: datetime


class Store(ABC):
    """An object store addressed by ``/``-separated keys.

    Contract, for every adapter (checked by one test suite run against each):

    * ``put`` replaces an object atomically: a reader sees the old bytes or the new, never a part.
    * ``put_if_absent`` is atomic across processes and machines: of two writers of the same key
      exactly one gets ``True``.
    * ``get``, ``head``, ``get_file`` raise :class:`lockgate.errors.ObjectNotFound` for a
      missing key.
    * ``list`` yields every object under a prefix in key order; a prefix is a string prefix,
      not a folder, as in S3.
    * ``delete`` is idempotent: deleting a missing key is not an error.
    * Anything else the backend refuses raises :class:`lockgate.errors.StoreError`.
    """

    uri: str
    """Where the store is, as the user wrote it (``file:///...``, ``s3://bucket/prefix``)."""
    bucket: str
    """The bucket name events carry for this store."""
    prefix: str
    """The key prefix within the bucket that this store's keys sit under ("" or ending in '/')."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> ObjectInfo:
        """Write ``data`` at ``key``, replacing any object there."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` only if no object is there; ``False`` if one was."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """The object's size, ETag and time, without reading it."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    # Shared logic above the interface: adapters may override these to stream.

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> ObjectInfo:
        """Upload a local file. Adapters stream big files (S3: multipart)."""
        data = Path(path).read_bytes()
        info = self.put(key, data)
        if progress is not None:
            progress(len(data))
        return info

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> ObjectInfo:
        """Download an object to ``dest`` atomically (a temp file renamed into place)."""
        info = self.head(key)
        data = self.get(key)
        write_atomically(Path(dest), [data])
        if progress is not None:
            progress(len(data))
        return info

    def exists(self, key: str) -> bool:
        """Whether an object is at ``key``."""
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def event_key(self, bucket: str, key: str) -> str | None:
        """The store key an S3 event's (bucket, key) refers to, or None if outside this store."""
        if bucket != self.bucket or not key.startswith(self.prefix):
            return None
        return key[len(self.prefix) :]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


@runtime_checkable
class LocalPaths(Protocol):
    """Optional ability: the store can hand out a local path to read an object in place."""

    def local_path(self, key: str) -> Path:
        """A path whose content is the object's bytes (valid until the object is replaced)."""


@runtime_checkable
class Staging(Protocol):
    """Optional ability: big files are written on the store's own disk and moved in, not copied.

    ``commit_staged`` takes ownership of a file created in ``staging_dir()`` and publishes it at
    ``key`` atomically (a rename), using the sha256 the writer already computed as the basis of
    its ETag, so a large file is written once and hashed once.
    """

    def staging_dir(self) -> Path:
        """A private folder on the store's filesystem for files about to be committed."""

    def commit_staged(self, key: str, path: Path, sha256: str) -> ObjectInfo:
        """Move ``path`` (from ``staging_dir()``, content hashing to ``sha256``) to ``key``."""


def write_atomically(dest: Path, chunks: list[bytes] | Iterator[bytes]) -> None:
    """Write ``chunks`` to a temp file beside ``dest`` and rename it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lockgate-tmp-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_stream(source: Path, dest: Path) -> None:
    """Copy a file atomically into place (used by adapters for local downloads)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lockgate-tmp-", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
