"""A store that is a folder laid out like a bucket: key ``a/b.csv`` is the file ``ROOT/a/b.csv``.

Writes go to a temp file in the target folder and are renamed into place, so a reader never
sees half an object; ``put_if_absent`` links the temp file to its name, which fails atomically
if the name exists (POSIX ``link``). ETags are content-derived (the first 32 hex digits of the
sha256, which hashes twice as fast as S3's MD5 here), cached beside the data in
``ROOT/.lockgate-meta/`` and revalidated by size and mtime, so a file placed by hand gets one.
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
from lockgate.ports.store import (
    CHUNK,
    LocalPaths,
    ObjectInfo,
    Progress,
    Staging,
    Store,
    copy_stream,
)

RESERVED = ".lockgate"
"""Names starting with this are the store's own (temp files, ETag cache), never objects."""


class FileStore(Store, LocalPaths, Staging):
    """Local folder store (``file:///abs/path``)."""

    def __init__(self, uri: str) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise StoreError(f"'{uri}' is not a local store URI; use file:///absolute/path")
        self.root = Path(unquote(parsed.path))
        if not self.root.is_absolute():
            raise StoreError(f"'{uri}' is a relative path; use file:///absolute/path")
        self.uri = self.root.as_uri()
        self.bucket = str(self.root)
        self.prefix = ""
        self._meta = self.root / (RESERVED + "-meta")

    # -- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if (
            not key
            or any(part in ("", ".", "..") or part.startswith(RESERVED) for part in parts)
            or "\x00" in key
        ):
            raise StoreError(f"'{key}' is not a valid object key for {self.uri}")
        return self.root.joinpath(*parts)

    def _meta_path(self, key: str) -> Path:
        # Flat names: the cache of "a" and of "a/b" can never collide as file and folder.
        return self._meta / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(self.uri, key)
        return path

    # -- writes ----------------------------------------------------------------------------

    def _parent(self, key: str) -> Path:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"cannot write '{key}': a parent of it is an object in {self.uri}"
            ) from None
        return dest

    def _write_temp(self, key: str, chunks: Iterator[bytes]) -> tuple[Path, Path, str]:
        dest = self._parent(key)
        fd, tmp = tempfile.mkstemp(prefix=RESERVED + "-tmp-", dir=dest.parent)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), dest, _etag(digest.hexdigest())

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
        # The stat of our own file, taken before it is published: a concurrent writer's later
        # rename cannot make us record its content under our ETag.
        stat = tmp.stat()
        os.replace(tmp, dest)
        return self._remember(key, stat, etag)

    def staging_dir(self) -> Path:
        folder = self.root / (RESERVED + "-staging")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def commit_staged(self, key: str, path: Path, sha256: str) -> ObjectInfo:
        return self._commit(Path(path), self._parent(key), _etag(sha256), key=key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        tmp, dest, etag = self._write_temp(key, iter([data]))
        try:
            stat = tmp.stat()
            os.link(tmp, dest)
        except FileExistsError:
            if dest.is_dir():
                raise StoreError(
                    f"cannot write '{key}': it is a prefix of other objects in {self.uri}"
                ) from None
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self._remember(key, stat, etag)
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            return  # only a prefix of other objects: there is no object of that name
        path.unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)
        # Drop folders the delete emptied, so the name can later be an object again.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

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
        parts = folder.split("/") if folder else []
        if any(part in ("", ".", "..") or part.startswith(RESERVED) for part in parts):
            return  # no valid key is under such a prefix
        start = self.root.joinpath(*parts)
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

    def _remember(self, key: str, stat: os.stat_result, etag: str) -> ObjectInfo:
        record = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "inode": stat.st_ino,
            "etag": etag,
        }
        try:  # best effort: a read-only store still answers, hashing again next time
            self._meta.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=RESERVED + "-tmp-", dir=self._meta)
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
            os.replace(tmp, self._meta_path(key))
        except OSError:
            pass
        return _object_info(key, stat.st_size, etag, stat.st_mtime)

    def _info(self, key: str, path: Path) -> ObjectInfo:
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(self.uri, key) from None
        try:
            record = json.loads(self._meta_path(key).read_text())
            if (record["size"], record["mtime_ns"], record.get("inode")) == (
                stat.st_size,
                stat.st_mtime_ns,
                stat.st_ino,
            ):
                return _object_info(key, stat.st_size, record["etag"], stat.st_mtime)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache, or a stale one: the file was placed or changed by hand
        try:
            with open(path, "rb") as handle:
                stat = os.fstat(handle.fileno())  # the file we hash, even if replaced meanwhile
                digest = hashlib.sha256()
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    digest.update(chunk)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(self.uri, key) from None
        return self._remember(key, stat, _etag(digest.hexdigest()))


def _etag(sha256: str) -> str:
    return sha256[:32]


def _object_info(key: str, size: int, etag: str, mtime: float) -> ObjectInfo:
    return ObjectInfo(
        key=key, size=size, etag=etag, last_modified=datetime.fromtimestamp(mtime, tz=UTC)
    )
