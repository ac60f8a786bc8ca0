"""The model package: one self-contained folder that predicts from raw feature rows.

Layout (what ``models/<model>/<version>/`` holds in the store)::

    model.pkl         the fitted model, pickled; ``predict`` gives class indices or values
    transformer.pkl   the exact bytes of its data version's transformer.pkl
    schema.json       the data version's schema (columns, target, feature names, classes)
    package.json      what the package is (name, version, dataset, data version, family,
                      params, metrics on test, library versions) and ``files``: the sha256
                      and size of every other file

Loading needs lockgate and its core dependencies only (NumPy, pyarrow, scikit-learn): no
MLflow, no Optuna. Every file is checked against ``package.json`` *before* anything is
unpickled, so a changed or truncated file is refused instead of executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

import lockgate
from lockgate.errors import IntegrityError, LockgateError, ObjectNotFound
from lockgate.pipelines.ledger import json_bytes
from lockgate.ports.store import Store, write_atomically

PACKAGE_FORMAT = 1
"""Bumped when a package's layout or package.json changes incompatibly."""
PACKAGE_JSON = "package.json"
MODEL_FILE = "model.pkl"
TRANSFORMER_FILE = "transformer.pkl"
SCHEMA_FILE = "schema.json"
REQUIRED_FILES = (MODEL_FILE, TRANSFORMER_FILE, SCHEMA_FILE)


@dataclass(frozen=True)
class PackageInfo:
    """What the training pipeline knows about a model, for its ``package.json``.

    The task, target, classes and feature count come from the schema, not from here, so they
    cannot disagree with the data version.
    """

    name: str
    """The registered model name (defaults to the dataset name upstream)."""
    dataset: str
    data_version: str
    family: str
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    """Scores on the untouched test split."""
    version: int | None = None
    """The registry's version number; None until registered (see :func:`set_package_version`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Anything else worth keeping with the model (trial number, training seconds, ...)."""


def package_prefix(name: str, version: int) -> str:
    """The store prefix of version ``version`` of model ``name``."""
    return f"models/{name}/{version}/"


def build_package(
    folder: Path,
    *,
    model: Any,
    transformer_bytes: bytes,
    schema: Mapping[str, Any],
    info: PackageInfo,
) -> Path:
    """Write a model package into ``folder`` (created; it must not exist or be empty).

    The files are written in a temp folder beside ``folder`` and renamed into place, so a crash
    never leaves half a package.

    Returns:
        ``folder``.

    Raises:
        FileExistsError: ``folder`` exists and is not empty.
        ValueError: ``schema`` lacks ``task`` or ``feature_names``.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; a model package needs a folder of its own")
    if "task" not in schema or "feature_names" not in schema:
        raise ValueError("schema must be a data version's schema.json (task, feature_names)")
    contents = {
        MODEL_FILE: pickle.dumps(model, protocol=5),
        TRANSFORMER_FILE: transformer_bytes,
        SCHEMA_FILE: json_bytes(dict(schema)),
    }
    document = {
        "format": PACKAGE_FORMAT,
        "name": info.name,
        "version": info.version,
        "dataset": info.dataset,
        "data_version": info.data_version,
        "task": schema["task"],
        "target": schema.get("target"),
        "classes": schema.get("classes"),
        "n_features": len(schema["feature_names"]),
        "family": info.family,
        "params": _plain(dict(info.params)),
        "metrics": {key: float(value) for key, value in info.metrics.items()},
        "transformer_sha256": hashlib.sha256(transformer_bytes).hexdigest(),
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "library_versions": _library_versions(),
        "extra": _plain(dict(info.extra)),
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in contents.items()
        },
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".lockgate-package-", dir=folder.parent))
    try:
        for name, data in contents.items():
            (staging / name).write_bytes(data)
        (staging / PACKAGE_JSON).write_bytes(json_bytes(document))
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def read_package_json(folder: Path) -> dict[str, Any]:
    """``package.json`` of the package in ``folder``, checked for shape but not verified.

    Raises:
        IntegrityError: it is missing or not a package description.
    """
    path = Path(folder) / PACKAGE_JSON
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"{folder} is not a model package: it has no {PACKAGE_JSON}") from None
    return _parse_description(raw, str(path))


def verify_package(folder: Path) -> dict[str, Any]:
    """Check every file of the package against ``package.json``.

    Returns:
        The package.json document.

    Raises:
        IntegrityError: a listed file is missing, or its size or sha256 differs.
    """
    document = read_package_json(folder)
    for name in document["files"]:
        _read_verified(Path(folder), name, document)
    return document


def package_sha256(folder: Path) -> str:
    """A stable digest of the package's content, for release records.

    It covers ``package.json``'s file list (each file's name, sha256 and size), not
    package.json itself, so setting the registry version after registration does not change it.
    """
    return package_sha256_of(read_package_json(folder))


def package_sha256_of(document: Mapping[str, Any]) -> str:
    """:func:`package_sha256` from a package.json document already read."""
    return hashlib.sha256(json_bytes(document["files"])).hexdigest()


def set_package_version(folder: Path, version: int) -> None:
    """Record the registry's version number in ``package.json`` (after registration)."""
    document = read_package_json(folder)
    document["version"] = int(version)
    write_atomically(Path(folder) / PACKAGE_JSON, [json_bytes(document)])


class ModelPackage:
    """A loaded, verified model package.

    Attributes:
        folder: where it was loaded from.
        info: its ``package.json``.
        schema: its ``schema.json``.
        model: the fitted model (predicts class indices or values from features).
        transformer: the fitted transformer (raw rows to float32 features).
    """

    def __init__(
        self,
        folder: Path,
        info: dict[str, Any],
        schema: dict[str, Any],
        model: Any,
        transformer: Any,
    ) -> None:
        self.folder = folder
        self.info = info
        self.schema = schema
        self.model = model
        self.transformer = transformer

    @property
    def name(self) -> str:
        """The registered model name."""
        return str(self.info["name"])

    @property
    def version(self) -> int | None:
        """The registry's version number, or None if the package was never registered."""
        version = self.info.get("version")
        return None if version is None else int(version)

    @property
    def task(self) -> str:
        """``classification`` or ``regression``."""
        return str(self.info["task"])

    @property
    def classes(self) -> list[str] | None:
        """Class labels in index order (classification), else None."""
        classes = self.info.get("classes")
        return None if classes is None else list(classes)

    def features(self, rows: Any) -> np.ndarray:
        """The float32 feature matrix of raw ``rows`` (list of dicts, dict of columns, Arrow
        table or pandas DataFrame); unknown columns are ignored, missing ones count as null."""
        return np.asarray(self.transformer.transform(rows), dtype=np.float32)

    def predict(self, rows: Any) -> np.ndarray:
        """Predictions for raw ``rows``: the original class labels (classification, an object
        array of str) or float64 values (regression)."""
        output = self.model.predict(self.features(rows))
        if self.task != "classification":
            return np.asarray(output, dtype=np.float64)
        labels = np.asarray(self.classes, dtype=object)
        return labels[np.asarray(output, dtype=np.int64)]

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities for raw ``rows``, ``(rows, len(classes))``, columns in the
        order of ``classes`` (a class the model never saw has probability 0).

        Raises:
            ValueError: the package is a regression model.
        """
        if self.task != "classification" or self.classes is None:
            raise ValueError(f"model '{self.name}' is a regression model; it has no probabilities")
        proba = np.asarray(self.model.predict_proba(self.features(rows)), dtype=np.float64)
        seen = np.asarray(getattr(self.model, "classes_", np.arange(proba.shape[1])))
        if proba.shape[1] == len(self.classes) and np.array_equal(seen, np.arange(proba.shape[1])):
            return proba
        full = np.zeros((len(proba), len(self.classes)))
        full[:, seen.astype(np.int64)] = proba
        return full

    def __repr__(self) -> str:
        return f"ModelPackage({self.name!r}, version={self.version}, folder={str(self.folder)!r})"


def load_package(folder: Path) -> ModelPackage:
    """Load the package in ``folder``, verifying every file before unpickling any.

    Raises:
        IntegrityError: a file is missing, or differs from what ``package.json`` records.
    """
    folder = Path(folder)
    document = read_package_json(folder)
    data = {name: _read_verified(folder, name, document) for name in document["files"]}
    try:
        schema = json.loads(data[SCHEMA_FILE])
    except ValueError:
        raise IntegrityError(f"{folder / SCHEMA_FILE} is not valid JSON") from None
    # Both pickles were just checked against package.json, and only these bytes are loaded.
    transformer = pickle.loads(data[TRANSFORMER_FILE])  # noqa: S301
    model = pickle.loads(data[MODEL_FILE])  # noqa: S301
    return ModelPackage(folder, document, schema, model, transformer)


def write_package_to_store(store: Store, folder: Path, prefix: str) -> None:
    """Publish the package in ``folder`` under ``prefix`` (e.g. ``models/churn/3/``).

    The package is verified first, its files are uploaded, and ``package.json`` goes last with
    put-if-absent: a reader that finds package.json finds the whole package. Idempotent:
    publishing the same package again does nothing.

    Raises:
        IntegrityError: the local package is damaged.
        LockgateError: ``prefix`` already holds a different package (packages are immutable).
    """
    folder = Path(folder)
    prefix = _as_prefix(prefix)
    document = verify_package(folder)
    description = (folder / PACKAGE_JSON).read_bytes()
    _refuse_other_package(store, prefix, description)
    for name in sorted(document["files"]):
        store.put_file(prefix + name, folder / name)
    if not store.put_if_absent(prefix + PACKAGE_JSON, description):
        _refuse_other_package(store, prefix, description)  # a concurrent writer got there first


def read_package_from_store(store: Store, prefix: str, dest: Path) -> Path:
    """Download the package under ``prefix`` into ``dest`` and verify it.

    Returns:
        ``dest``, ready for :func:`load_package`.

    Raises:
        lockgate.errors.ObjectNotFound: there is no package under ``prefix``.
        IntegrityError: a listed file is missing from the store or differs from package.json.
    """
    prefix = _as_prefix(prefix)
    dest = Path(dest)
    description = store.get(prefix + PACKAGE_JSON)
    document = _parse_description(description, prefix + PACKAGE_JSON)
    dest.mkdir(parents=True, exist_ok=True)
    # package.json goes last, as in the store: no stale description while files change.
    (dest / PACKAGE_JSON).unlink(missing_ok=True)
    for name in sorted(document["files"]):
        try:
            store.get_file(prefix + name, dest / name)
        except ObjectNotFound:
            raise IntegrityError(
                f"{prefix}{name} is listed in {prefix}{PACKAGE_JSON} but missing from the store"
            ) from None
    write_atomically(dest / PACKAGE_JSON, [description])
    verify_package(dest)
    return dest


def _parse_description(raw: bytes, where: str) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(raw)
    except ValueError:
        raise IntegrityError(f"{where} is not valid JSON; the package is damaged") from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict) or not all(isinstance(item, dict) for item in files.values()):
        raise IntegrityError(f"{where} does not describe a model package (no 'files' list)")
    version = document.get("format")
    if not isinstance(version, int):
        raise IntegrityError(f"{where} has no package format number; the package is damaged")
    if version > PACKAGE_FORMAT:
        raise LockgateError(
            f"{where} has package format {version}, newer than this lockgate "
            f"({lockgate.__version__}) reads; upgrade lockgate"
        )
    for name in document["files"]:
        _check_name(name, where)
    missing = [name for name in REQUIRED_FILES if name not in document["files"]]
    if missing:
        raise IntegrityError(f"{where} does not list {', '.join(missing)}; the package is damaged")
    return document


def _read_verified(folder: Path, name: str, document: Mapping[str, Any]) -> bytes:
    expected = document["files"][name]
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"{path} is listed in {PACKAGE_JSON} but missing; the package is incomplete"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != expected.get("size") or actual != expected.get("sha256"):
        raise IntegrityError(
            f"{path} has sha256 {actual[:12]}…, {PACKAGE_JSON} says "
            f"{str(expected.get('sha256'))[:12]}…: the file was changed after the package was "
            "built; refusing to load it"
        )
    return data


def _refuse_other_package(store: Store, prefix: str, description: bytes) -> None:
    try:
        existing = store.get(prefix + PACKAGE_JSON)
    except ObjectNotFound:
        return
    if existing != description:
        raise LockgateError(
            f"{prefix} already holds a different model package; packages are immutable, "
            "register a new version instead"
        )


def _check_name(name: str, where: str) -> None:
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts or name == PACKAGE_JSON:
        raise IntegrityError(f"{where} lists the file '{name}', which a package cannot hold")


def _as_prefix(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


def _library_versions() -> dict[str, str]:
    import pyarrow
    import sklearn

    return {
        "lockgate": lockgate.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "pyarrow": pyarrow.__version__,
    }


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars and tuples turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
