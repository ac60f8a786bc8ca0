"""The object store on S3: store key ``k`` is the object ``prefix + k`` in the URI's bucket.

``put_if_absent`` is an S3 conditional write (``If-None-Match: *``), which S3 makes atomic
across writers. Big files move in parts through boto3's transfer manager. Every botocore error
is turned into :class:`lockgate.errors.StoreError` (or ``ObjectNotFound``) with a message that
says what to check, so a user never reads a botocore traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)

from lockgate.aws.errors import unanswered
from lockgate.errors import ObjectNotFound, StoreError
from lockgate.ports.store import ObjectInfo, Progress, Store

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
"""S3 refuses multipart parts smaller than this (except the last one)."""
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
DEFAULT_PART_SIZE = 16 * MIB
CONFLICT_ATTEMPTS = 5
"""How often ``put_if_absent`` sends its write when S3 answers 409 ConditionalRequestConflict."""
CONFLICT_BACKOFF = 0.05
"""Seconds before the first resend after a 409; doubled for each further one."""
TEMP_PREFIX = ".lockgate-tmp-"

_BUCKET_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,253}[a-zA-Z0-9]")
_KEY_MISSING = frozenset({"NoSuchKey"})
_KEY_OR_BUCKET_MISSING = frozenset({"404", "NotFound"})  # a HEAD answer has no body to tell
_BUCKET_MISSING = frozenset({"NoSuchBucket"})
_DENIED = frozenset({"403", "AccessDenied", "Forbidden", "AllAccessDisabled"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
)
_PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})
_CONDITIONAL_CONFLICT = frozenset({"ConditionalRequestConflict"})


class S3Store(Store):
    """S3 bucket store (``s3://bucket`` or ``s3://bucket/prefix``).

    Keys are validated like the local folder store's (no empty, ``.`` or ``..`` parts, no
    leading ``/``), so a key that works on a laptop works on S3 and the other way round.
    """

    def __init__(
        self,
        uri: str,
        client: Any | None = None,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int | None = None,
    ) -> None:
        """Open the store at ``uri``; no request is sent until the first operation.

        Args:
            uri: ``s3://bucket`` or ``s3://bucket/prefix``; the prefix gets a trailing ``/``.
            client: a boto3 S3 client. By default one is built from the environment:
                ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``/``AWS_REGION``, ``AWS_ENDPOINT_URL``
                (or ``AWS_ENDPOINT_URL_S3``) and the usual credential chain.
            multipart_threshold: files at least this big are uploaded and downloaded in parts.
            part_size: size of each part; by default the threshold, at most 16 MiB.

        Raises:
            StoreError: ``uri`` is not an S3 URI with a valid bucket name and prefix.
            ValueError: a size is below S3's minimum part size of 5 MiB.
        """
        self.bucket, self.prefix = _parse_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        part_size = min(multipart_threshold, DEFAULT_PART_SIZE) if part_size is None else part_size
        if min(multipart_threshold, part_size) < MIN_PART_SIZE:
            raise ValueError(f"S3 multipart parts must be at least {MIN_PART_SIZE} bytes")
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=part_size
        )
        self._client: Any = client if client is not None else _client_from_environment()
        self._bucket_seen = False

    # -- writes ----------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> ObjectInfo:
        name = self._name(key)
        with self._translated("write", key):
            response = self._client.put_object(Bucket=self.bucket, Key=name, Body=data)
        return ObjectInfo(
            key=key,
            size=len(data),
            etag=_unquote(response["ETag"]),
            last_modified=_server_time(response),
        )

    def put_if_absent(self, key: str, data: bytes) -> bool:
        name = self._name(key)
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                self._client.put_object(Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*")
            except ClientError as exc:
                code = _code(exc)
                if code in _PRECONDITION_FAILED:
                    return False
                if code not in _CONDITIONAL_CONFLICT:
                    raise self._client_error(exc, "write", key) from exc
                # 409: a concurrent operation (e.g. a delete) raced this write, so whether an
                # object is there is unknown; S3 asks to send the write again.
                if attempt == CONFLICT_ATTEMPTS:
                    raise StoreError(
                        f"writing '{key}' in {self.uri} kept conflicting with concurrent writes "
                        f"(409 ConditionalRequestConflict {attempt} times); try again"
                    ) from exc
                time.sleep(CONFLICT_BACKOFF * 2 ** (attempt - 1))
            except BotoCoreError as exc:
                raise self._botocore_error(exc, "write", key) from exc
            else:
                return True
        raise AssertionError("unreachable")  # pragma: no cover

    def put_file(self, key: str, path: Path, progress: Progress | None = None) -> ObjectInfo:
        """Upload a local file, in parts when it reaches the multipart threshold.

        ``progress`` is called from boto3's worker threads, one call at a time; a retried part
        reports a negative count so the total stays right.
        """
        name = self._name(key)
        with self._translated("upload", key):
            self._client.upload_file(
                str(path),
                self.bucket,
                name,
                Config=self._transfer,
                Callback=_one_at_a_time(progress),
            )
        return self.head(key)

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._translated("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=name)

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        name = self._name(key)
        with self._translated("read", key):
            body = self._client.get_object(Bucket=self.bucket, Key=name)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        return data

    def get_file(self, key: str, dest: Path, progress: Progress | None = None) -> ObjectInfo:
        """Download an object to ``dest`` through a temp file beside it, renamed into place.

        Returns the object's info as read just before the download. ``progress`` is called as
        in :meth:`put_file`.
        """
        name = self._name(key)
        info = self.head(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, self._translated("download", key):
                self._client.download_fileobj(
                    self.bucket,
                    name,
                    out,
                    Config=self._transfer,
                    Callback=_one_at_a_time(progress),
                )
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return info

    def head(self, key: str) -> ObjectInfo:
        name = self._name(key)
        with self._translated("read", key):
            response = self._client.head_object(Bucket=self.bucket, Key=name)
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=_unquote(response["ETag"]),
            last_modified=response["LastModified"].astimezone(UTC),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order.

        "Folder" markers (keys ending in ``/``, as the S3 console creates) are not objects here.
        """
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix))
        while True:
            with self._translated("list", prefix):
                page = next(pages, None)
            if page is None:
                return
            for item in page.get("Contents", ()):
                key = item["Key"][len(self.prefix) :]
                if not key or key.endswith("/"):
                    continue
                yield ObjectInfo(
                    key=key,
                    size=int(item["Size"]),
                    etag=_unquote(item["ETag"]),
                    last_modified=item["LastModified"].astimezone(UTC),
                )

    # -- keys and errors -------------------------------------------------------------------

    def _name(self, key: str) -> str:
        """The S3 object name of a store key."""
        _check_key(key, f"is not a valid object key for {self.uri}")
        return self.prefix + key

    @contextlib.contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """Turn botocore's exceptions into lockgate's inside the block."""
        try:
            yield
        except _ProgressInterrupted as exc:
            raise exc.original from None
        except ClientError as exc:
            raise self._client_error(exc, action, key) from exc
        except S3UploadFailedError as exc:
            # boto3 wraps the ClientError of an upload; the code is on the original.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError):
                raise self._client_error(cause, action, key) from exc
            raise StoreError(f"could not {action} '{key}' in {self.uri}: {exc}") from exc
        except BotoCoreError as exc:
            raise self._botocore_error(exc, action, key) from exc

    def _client_error(self, exc: Any, action: str, key: str) -> StoreError:
        code = _code(exc)
        if code in _KEY_MISSING:
            return ObjectNotFound(self.uri, key)
        if code in _KEY_OR_BUCKET_MISSING:
            return self._missing(key)
        if code in _BUCKET_MISSING:
            return self._no_bucket()
        if code in _DENIED:
            return StoreError(
                f"access denied to {action} '{key}' in {self.uri}: check the credentials "
                "(AWS_PROFILE) and the bucket policy (S3 also answers 403 for a missing key "
                "when s3:ListBucket is not allowed)"
            )
        if code in _BAD_CREDENTIALS:
            return StoreError(
                f"S3 rejected the AWS credentials ({code}) for {self.uri}: refresh them "
                "(aws sso login) or check AWS_PROFILE / AWS_ACCESS_KEY_ID"
            )
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        return StoreError(f"S3 refused to {action} '{key}' in {self.uri}: {code} {message}".strip())

    def _botocore_error(self, exc: Exception, action: str, key: str) -> StoreError:
        return StoreError(
            unanswered(
                exc,
                doing=f"to {action} '{key}' in {self.uri}",
                reach=f"S3 to {action} '{key}' in {self.uri}",
                failed=f"{action} '{key}' in {self.uri}",
            )
        )

    def _missing(self, key: str) -> StoreError:
        """The error for a 404 that may mean a missing key or a missing bucket."""
        if not self._bucket_seen:
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) in _KEY_OR_BUCKET_MISSING | _BUCKET_MISSING:
                    return self._no_bucket()
            except BotoCoreError:
                pass  # cannot tell; the key was reported missing, so say that
            else:
                self._bucket_seen = True
        return ObjectNotFound(self.uri, key)

    def _no_bucket(self) -> StoreError:
        return StoreError(
            f"bucket '{self.bucket}' does not exist or is not reachable: check the store URI "
            f"{self.uri}, AWS_ENDPOINT_URL and the credentials' account"
        )


def _parse_uri(uri: str) -> tuple[str, str]:
    """The bucket and the key prefix ("" or ending in '/') of an ``s3://`` URI."""
    scheme, separator, rest = uri.partition("://")
    if scheme != "s3" or not separator:
        raise StoreError(f"'{uri}' is not an S3 store URI; use s3://bucket or s3://bucket/prefix")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET_NAME.fullmatch(bucket):
        raise StoreError(
            f"'{bucket}' in '{uri}' is not an S3 bucket name; use 3-63 lowercase letters, "
            "digits, '.' and '-'"
        )
    prefix = prefix.removesuffix("/")
    if not prefix:
        return bucket, ""
    _check_key(prefix, f"in '{uri}' is not a valid key prefix")
    return bucket, prefix + "/"


def _check_key(key: str, problem: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise StoreError(
            f"'{key}' {problem}; use '/'-separated names without empty, '.' or '..' parts"
        )


def _client_from_environment() -> Any:
    session = boto3.session.Session()
    # botocore reads AWS_ENDPOINT_URL(_S3) and the profile's endpoint_url itself; AWS_REGION is
    # what Lambda and SageMaker set, which botocore alone does not read.
    return session.client("s3", region_name=session.region_name or os.environ.get("AWS_REGION"))


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unquote(etag: str) -> str:
    return etag.strip('"')


def _server_time(response: dict[str, Any]) -> datetime:
    """When S3 answered (its Date header), close to the LastModified it recorded."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        with contextlib.suppress(TypeError, ValueError):
            return parsedate_to_datetime(date).astimezone(UTC)
    return datetime.now(UTC)


def _one_at_a_time(progress: Progress | None) -> Callable[[int], None] | None:
    """``progress`` behind a lock: boto3 calls back from several threads at once."""
    return None if progress is None else _Reporter(progress)


class _ProgressInterrupted(Exception):
    """Carries a non-``Exception`` raised by a progress callback out of boto3's threads."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class _Reporter:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._lock = threading.Lock()

    def __call__(self, moved: int) -> None:
        with self._lock:
            try:
                self._progress(moved)
            except Exception:
                raise
            except BaseException as exc:
                # s3transfer's workers swallow a KeyboardInterrupt or SystemExit and carry on,
                # which ends in a download with holes and no error; an Exception stops them.
                raise _ProgressInterrupted(exc) from exc
