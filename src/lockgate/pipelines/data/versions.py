"""Dataset versions: their ids, manifests, and verified loading.

A version is ``processed/<dataset>/<version>/``; it exists only once its ``manifest.json``
does (written last, put-if-absent). The id is derived from the dataset name, the raw objects'
keys and ETags and the preparation config, so a duplicate event computes the same id, finds
the manifest and does nothing.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from lockgate.config import DatasetConfig
from lockgate.errors import DataVersionError, IntegrityError, ObjectNotFound
from lockgate.ports.store import Store

PREP_FORMAT = 1
"""Bumped when preparation would write different files for the same inputs."""
MANIFEST = "manifest.json"
TRANSFORMER = "transformer.pkl"


class SourceFile(BaseModel):
    """A raw object a version was built from."""

    key: str
    etag: str
    size: int
    rows: int
    malformed_rows: int = 0


class QuarantinedFile(BaseModel):
    """A raw object left out of the version, and where its copy and error.json are."""

    key: str
    etag: str
    rule: str
    message: str
    location: str


class FileDigest(BaseModel):
    sha256: str
    size: int


class Manifest(BaseModel):
    """``manifest.json``: what a committed dataset version holds and where it came from."""

    model_config = ConfigDict(extra="allow")

    format: int
    dataset: str
    version: str
    created_at: str
    lockgate_version: str
    task: str
    target: str
    sources: list[SourceFile]
    quarantined: list[QuarantinedFile]
    rows: dict[str, int]
    dropped_rows: dict[str, int]
    n_features: int
    classes: list[str] | None = None
    files: dict[str, FileDigest]
    prep: dict[str, Any]


def version_id(dataset: str, sources: list[tuple[str, str]], config: DatasetConfig) -> str:
    """The content-derived id of the version built from ``sources`` (key, ETag) with ``config``."""
    identity = {
        "format": PREP_FORMAT,
        "dataset": dataset,
        "sources": sorted(sources),
        "config": config.model_dump(mode="json"),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return "dv-" + digest[:16]


def version_prefix(dataset: str, version: str) -> str:
    return f"processed/{dataset}/{version}/"


def read_manifest(store: Store, dataset: str, version: str) -> Manifest:
    """The manifest of a committed version.

    Raises:
        DataVersionError: the version does not exist (no manifest) or its manifest is invalid.
    """
    key = version_prefix(dataset, version) + MANIFEST
    try:
        raw = store.get(key)
    except ObjectNotFound:
        raise DataVersionError(
            f"dataset '{dataset}' has no committed version '{version}'; "
            "see `lockgate data versions`"
        ) from None
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise DataVersionError(f"{key} is not a valid manifest: {exc.errors()[0]['msg']}") from None


def list_versions(store: Store, dataset: str) -> list[Manifest]:
    """Committed versions of ``dataset``, oldest first."""
    manifests = []
    for info in store.list(f"processed/{dataset}/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[3] == MANIFEST:
            try:
                manifests.append(read_manifest(store, dataset, parts[2]))
            except DataVersionError:
                continue  # a foreign or damaged file is not a version; `versions` skips it
    return sorted(manifests, key=lambda manifest: (manifest.created_at, manifest.version))


def latest_version(store: Store, dataset: str) -> Manifest:
    """The newest committed version.

    Raises:
        DataVersionError: there is none yet.
    """
    versions = list_versions(store, dataset)
    if not versions:
        raise DataVersionError(
            f"dataset '{dataset}' has no committed version yet; upload with `lockgate put` "
            "and run `lockgate data prep`"
        )
    return versions[-1]


def read_verified(store: Store, manifest: Manifest, name: str) -> bytes:
    """A file of the version, after checking its sha256 against the manifest.

    Raises:
        IntegrityError: the file is missing, or its content is not what the manifest records.
    """
    key = version_prefix(manifest.dataset, manifest.version) + name
    expected = manifest.files.get(name)
    if expected is None:
        raise IntegrityError(f"{name} is not listed in the manifest of {manifest.version}")
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise IntegrityError(
            f"{key} is listed in its manifest but missing from the store"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.sha256:
        raise IntegrityError(
            f"{key} has sha256 {actual[:12]}…, its manifest says {expected.sha256[:12]}…: "
            "the file was changed after the version was committed; refusing to load it"
        )
    return data


def load_transformer(store: Store, manifest: Manifest) -> Any:
    """The fitted transformer, unpickled only after its sha256 matches the manifest."""
    data = read_verified(store, manifest, TRANSFORMER)
    return pickle.loads(data)  # noqa: S301 - verified against the committed manifest


def load_split(store: Store, manifest: Manifest, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of one split, verified against the manifest."""
    from safetensors.numpy import load

    tensors = load(read_verified(store, manifest, f"{split}.safetensors"))
    return tensors["X"], tensors["y"]
