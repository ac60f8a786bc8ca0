"""Builds adapters from configuration: the one place that knows which class serves which URI.

Adapters are named by import path so that choosing the local folder never imports boto3.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import cast
from urllib.parse import urlparse

from lockgate.errors import ConfigError, StoreError
from lockgate.ports.store import Store

STORE_SCHEMES: dict[str, str] = {
    "file": "lockgate.local.file_store:FileStore",
    "s3": "lockgate.aws.s3_store:S3Store",
}


def open_store(uri: str) -> Store:
    """The store adapter for ``uri``, chosen by its scheme.

    Raises:
        ConfigError: the scheme is unknown (the message lists the valid ones), or the adapter's
            optional dependencies are not installed.
    """
    scheme = urlparse(uri).scheme
    target = STORE_SCHEMES.get(scheme)
    if target is None:
        valid = ", ".join(f"{name}://" for name in STORE_SCHEMES)
        raise ConfigError(f"store URI '{uri}' has no known scheme; use one of: {valid}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra = {"s3": "aws"}.get(scheme, scheme)
        raise ConfigError(
            f"the {scheme}:// store needs '{exc.name}': pip install 'lockgate[{extra}]'"
        ) from None
    try:
        return cast(Store, getattr(module, class_name)(uri))
    except StoreError as exc:
        raise ConfigError(str(exc)) from None


def aws_module(name: str, needed_for: str) -> ModuleType:
    """``lockgate.aws.<name>``, imported by name: only choosing AWS ever loads boto3.

    Raises:
        ConfigError: ``needed_for`` ("SageMaker endpoints") needs the ``aws`` extra, which is
            not installed.
    """
    try:
        return importlib.import_module(f"lockgate.aws.{name}")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{needed_for} needs '{exc.name}': pip install 'lockgate[aws]'") from None


def lean_arrow_memory() -> None:
    """Make Arrow hand freed memory back to the OS at once (jemalloc, no decay).

    Arrow's default allocator keeps freed blocks for reuse, which after parsing a large file
    holds several times the table's size. Entry points (CLI, Lambda) call this once; it is a
    process-wide setting, so library code never does.
    """
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pa.ArrowNotImplementedError):
        pass  # a pyarrow built without jemalloc keeps its default pool
