"""Errors a user can hit. Each message says what went wrong and what to do."""

from __future__ import annotations


class LockgateError(Exception):
    """Base of every error lockgate reports to a user (printed in one line, exit 1)."""


class ConfigError(LockgateError):
    """lockgate.toml, a ``LOCKGATE_*`` variable or a flag is invalid."""


class StoreError(LockgateError):
    """The object store refused or failed an operation."""


class ObjectNotFound(StoreError):
    """The key does not exist in the store."""

    def __init__(self, uri: str, key: str) -> None:
        super().__init__(f"no object '{key}' in store {uri}; list what is there with `lockgate ls`")
        self.key = key


class EventError(LockgateError):
    """An event does not have the shape AWS sends."""


class DataVersionError(LockgateError):
    """A committed dataset version is missing, incomplete or was tampered with."""


class IntegrityError(DataVersionError):
    """A file's sha256 does not match the one its manifest records."""
