"""A store that is a folder laid out like a bucket: the object at key ``a/b.csv`` is ``ROOT/a/b.csv``.

Writes go to a temp file in the target folder and are renamed into place, so a reader never
sees half an object; ``put_if_absent`` links the temp file to its name, which fails atomically
if the name exists (POSIX ``link``). ETags are MD5 of the content like S3's single-part ETag,
cached beside the data in ``ROOT/.lockgate-meta/`` and revalidated by size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from lockgate.errors import ObjectNotFound, StoreError
from lockgate.ports.store import CHUNK, LocalPaths, ObjectInfo, Progress, Store, copy_stream

RESERVED = ".lockgate"
"""Names starting with this are the store's own (temp files, ETag cache), never objects."""


class FileStore(Store, LocalPaths):
    """Local folder store (``file:///abs/path``)."""

    def __init__(self, uri: str) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise StoreError(f"'{uri}' is not a local store URI; use file:///absolute/path")
        self.root = Path(unquote(parsed.path))
        self.uri = self.root.as_uri()
        self.bucket = str(self.root)
        self.prefix = ""
        self._meta = self.root / (RESERVED + "-meta")

    # -- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or any(part in ("", ".", "..") for part in parts)
            or parts[0].startswith(RESERVED)
            or "\x00" in key
        ):
            raise StoreError(f"'{key}' is not a valid object key for {self.uri}")
        return self.root.joinpath(*parts)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(self.uri, key)
        return path

    # -- writes ----------------------------------------------------------------------------

    def _write_temp(self, key: str, chunks: Iterator[bytes]) -> tuple[Path, Path, str]:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"cannot write '{key}': a parent of it is an object in {self.uri}"
            ) from None
        fd, tmp = tempfile.mkstemp(prefix=RESERVED + "-tmp-", dir=dest.parent)
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    md5.update(chunk)
                    out.write(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), dest, md5.hexdigest()

    def put(self, key: str, data: bytes) -> ObjectInfo:
        return self._commit(*self._write_temp(key, iter([data])), key=key)

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> ObjectInfo:
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    yield chunk
                    if progress is not None:
                        progress(len(chunk))

        return self._commit(*self._write_temp(key, chunks()), key=key)

    def _commit(self, tmp: Path, dest: Path, etag: str, *, key: str) -> ObjectInfo:
        if dest.is_dir():
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write '{key}': it is a prefix of other objects in {self.uri}")
        os.replace(tmp, dest)
        return self._remember(key, dest, etag)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        tmp, dest, etag = self._write_temp(key, iter([data]))
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self._remember(key, dest, etag)
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        (self._meta / (key + ".json")).unlink(missing_ok=True)

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        try:
            return self.local_path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(self.uri, key) from None

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> ObjectInfo:
        info = self.head(key)
        copy_stream(self.local_path(key), Path(dest))
        if progress is not None:
            progress(info.size)
        return info

    def head(self, key: str) -> ObjectInfo:
        return self._info(key, self.local_path(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not start.is_dir():
            return
        keys: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if rel == "." else rel + "/"
            dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED)]
            for name in filenames:
                if name.startswith(RESERVED):
                    continue
                key = base + name
                if key.startswith(prefix):
                    keys.append((key, Path(dirpath) / name))
        for key, path in sorted(keys):
            try:
                yield self._info(key, path)
            except ObjectNotFound:
                continue  # deleted while listing, as S3 may also show

    # -- ETags -----------------------------------------------------------------------------

    def _remember(self, key: str, path: Path, etag: str) -> ObjectInfo:
        stat = path.stat()
        meta = self._meta / (key + ".json")
        meta.parent.mkdir(parents=True, exist_ok=True)
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "etag": etag}
        fd, tmp = tempfile.mkstemp(prefix=RESERVED + "-tmp-", dir=meta.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(record, out)
        os.replace(tmp, meta)
        return _object_info(key, stat.st_size, etag, stat.st_mtime)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(self.uri, key) from None
        meta = self._meta / (key + ".json")
        try:
            record = json.loads(meta.read_text())
            if record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
                return _object_info(key, stat.st_size, record["etag"], stat.st_mtime)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache, or a stale one: the file was placed or changed by hand
        md5 = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                md5.update(chunk)
        return self._remember(key, path, md5.hexdigest())


def _object_info(key: str, size: int, etag: str, mtime: float) -> ObjectInfo:
    return ObjectInfo(
        key=key, size=size, etag=etag, last_modified=datetime.fromtimestamp(mtime, tz=UTC)
    )
