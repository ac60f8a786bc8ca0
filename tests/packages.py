"""Real model packages for deployment and serving tests: churn data prepared, a model fitted.

Preparing a dataset version takes about a second, so tests build one per module (or session)
with :func:`prepare_churn` and as many packages from it as they need with :func:`make_package`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.linear_model import LogisticRegression

from lockgate.config import DatasetConfig, PrepConfig
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import prepare
from lockgate.pipelines.data.versions import Manifest, load_split, read_manifest, read_verified
from lockgate.pipelines.training.metrics import metrics_for, score
from lockgate.pipelines.training.package import PackageInfo, build_package, set_package_version
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv


@dataclass(frozen=True)
class Prepared:
    """A prepared churn dataset version in a folder store."""

    store: FileStore
    manifest: Manifest
    raw_csv: Path


def prepare_churn(root: Path, rows: int = 1500, seed: int = 7) -> Prepared:
    """Upload a churn CSV to ``root``/store and prepare it into a dataset version."""
    store = FileStore((root / "store").as_uri())
    config = DatasetConfig(
        target=CHURN_TARGET,
        task="classification",
        columns=dict(CHURN_COLUMNS),  # type: ignore[arg-type]
        prep=PrepConfig(text_max_features=16),
    )
    raw_csv = write_churn_csv(root / "data" / "churn.csv", rows, seed=seed)
    store.put_file("raw/churn/churn.csv", raw_csv)
    result = prepare(store, "churn", config)
    assert result.version is not None
    return Prepared(store, read_manifest(store, "churn", result.version), raw_csv)


def make_package(
    prepared: Prepared,
    folder: Path,
    *,
    model: Any = None,
    version: int | None = 1,
    name: str = "churn",
    trained_by: str = "trainer",
) -> Path:
    """Build a package in ``folder``: ``model`` (default a logistic regression) fitted on the
    train split, scored on the test split, as ``name`` version ``version``."""
    store, manifest = prepared.store, prepared.manifest
    x_train, y_train = load_split(store, manifest, "train")
    x_test, y_test = load_split(store, manifest, "test")
    fitted = (model if model is not None else LogisticRegression(max_iter=500)).fit(
        x_train, y_train
    )
    output = fitted.predict_proba(x_test)
    classes = manifest.classes
    metrics = {
        metric: score(metric, y_test, output, classes) for metric in metrics_for("classification")
    }
    build_package(
        folder,
        model=fitted,
        transformer_bytes=read_verified(store, manifest, "transformer.pkl"),
        schema=json.loads(read_verified(store, manifest, "schema.json")),
        info=PackageInfo(
            name=name,
            dataset=manifest.dataset,
            data_version=manifest.version,
            family=type(fitted).__name__,
            params={},
            metrics=metrics,
            extra={"trained_by": trained_by},
        ),
    )
    if version is not None:
        set_package_version(folder, version)
    return folder
