"""The model package, built from a real prepared churn version and a fitted model."""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression

from lockgate.config import DatasetConfig, PrepConfig
from lockgate.errors import IntegrityError, LockgateError
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import prepare
from lockgate.pipelines.data.versions import (
    Manifest,
    load_split,
    read_manifest,
    read_verified,
)
from lockgate.pipelines.training.package import (
    MODEL_FILE,
    PACKAGE_JSON,
    SCHEMA_FILE,
    TRANSFORMER_FILE,
    PackageInfo,
    build_package,
    load_package,
    package_prefix,
    package_sha256,
    read_package_from_store,
    set_package_version,
    write_package_to_store,
)
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv

TEST_METRICS = {"roc_auc": 0.8, "accuracy": 0.78}


@dataclass(frozen=True)
class Built:
    """A prepared churn version and a package built from it."""

    store: FileStore
    manifest: Manifest
    transformer_bytes: bytes
    schema: dict[str, Any]
    model: LogisticRegression
    package: Path
    raw_csv: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Prepared once per module (the conftest fixtures are per test; preparing takes a second)."""
    root = tmp_path_factory.mktemp("package")
    store = FileStore((root / "store").as_uri())
    config = DatasetConfig(
        target=CHURN_TARGET,
        task="classification",
        columns=dict(CHURN_COLUMNS),  # type: ignore[arg-type]
        prep=PrepConfig(text_max_features=32),
    )
    raw_csv = write_churn_csv(root / "data" / "churn.csv", 2000, seed=7)
    store.put_file("raw/churn/churn.csv", raw_csv)
    result = prepare(store, "churn", config)
    assert result.version is not None
    manifest = read_manifest(store, "churn", result.version)
    X, y = load_split(store, manifest, "train")
    model = LogisticRegression(max_iter=1000).fit(X, y)
    transformer_bytes = read_verified(store, manifest, "transformer.pkl")
    schema = json.loads(read_verified(store, manifest, "schema.json"))
    package = build_package(
        root / "package",
        model=model,
        transformer_bytes=transformer_bytes,
        schema=schema,
        info=_info(manifest),
    )
    return Built(store, manifest, transformer_bytes, schema, model, package, raw_csv)


@pytest.fixture
def package(built: Built, tmp_path: Path) -> Path:
    """A private copy of the built package, free to tamper with."""
    return Path(shutil.copytree(built.package, tmp_path / "package"))


def test_package_json_describes_the_model_and_every_file(built: Built) -> None:
    document = json.loads((built.package / PACKAGE_JSON).read_bytes())
    files = {path.name for path in built.package.iterdir()}
    assert files == {MODEL_FILE, TRANSFORMER_FILE, SCHEMA_FILE, PACKAGE_JSON}
    assert set(document["files"]) == files - {PACKAGE_JSON}
    for name, digest in document["files"].items():
        data = (built.package / name).read_bytes()
        assert digest == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    # The transformer is the data version's file, byte for byte.
    assert (built.package / TRANSFORMER_FILE).read_bytes() == built.transformer_bytes
    assert document["transformer_sha256"] == built.manifest.files["transformer.pkl"].sha256
    assert json.loads((built.package / SCHEMA_FILE).read_bytes()) == built.schema
    assert document["name"] == "churn"
    assert document["version"] is None
    assert document["dataset"] == "churn"
    assert document["data_version"] == built.manifest.version
    assert document["task"] == "classification"
    assert document["classes"] == ["0", "1"]
    assert document["n_features"] == built.manifest.n_features
    assert document["family"] == "logistic"
    assert document["params"] == {"C": 1.0, "class_weight": None, "layers": [64, 32]}
    assert document["metrics"] == TEST_METRICS
    assert document["extra"] == {"trial": 12}
    assert set(document["library_versions"]) == {
        "lockgate",
        "python",
        "numpy",
        "scikit-learn",
        "pyarrow",
    }


def test_loads_without_mlflow_optuna_or_training_code_and_predicts_original_labels(
    built: Built, tmp_path: Path
) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import csv, json, sys

            BLOCKED = ("mlflow", "optuna", "torch", "lockgate.tracking")
            ALLOWED = ("lockgate.pipelines.training", "lockgate.pipelines.training.package")

            class Blocker:
                def find_spec(self, name, path=None, target=None):
                    training = name.startswith("lockgate.pipelines.training")
                    if name.startswith(BLOCKED) or (training and name not in ALLOWED):
                        raise ImportError(f"{name} must not be imported to load a package")
                    return None

            sys.meta_path.insert(0, Blocker())
            from lockgate.pipelines.training.package import load_package

            package = load_package(sys.argv[1])
            with open(sys.argv[2], newline="") as handle:
                rows = list(csv.DictReader(handle))
            labels = package.predict(rows).tolist()
            proba = package.predict_proba(rows).tolist()
            json.dump({"labels": labels, "proba": proba, "truth": [r["churned"] for r in rows]},
                      sys.stdout)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(built.package), str(built.raw_csv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    labels, truth = answer["labels"], answer["truth"]
    assert set(labels) == {"0", "1"}
    assert np.mean(np.asarray(labels) == np.asarray(truth)) > 0.75
    # The same rows, read as an Arrow table in this process, give the same answers.
    table = pacsv.read_csv(built.raw_csv)
    loaded = load_package(built.package)
    assert loaded.predict(table).tolist() == labels
    np.testing.assert_allclose(loaded.predict_proba(table), answer["proba"], rtol=1e-6)
    expected = built.model.predict(loaded.features(table))
    assert labels == [["0", "1"][index] for index in expected]


def test_every_input_form_gives_the_same_predictions(built: Built) -> None:
    loaded = load_package(built.package)
    table = pacsv.read_csv(built.raw_csv).slice(0, 200)
    with built.raw_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:200]
    expected = loaded.predict(table)
    assert loaded.predict(rows).tolist() == expected.tolist()
    assert loaded.predict(table.to_pydict()).tolist() == expected.tolist()
    assert loaded.predict(table.to_pandas()).tolist() == expected.tolist()
    proba = loaded.predict_proba(rows)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert loaded.name == "churn"
    assert loaded.task == "classification"
    assert loaded.classes == ["0", "1"]


@pytest.mark.parametrize("name", [MODEL_FILE, TRANSFORMER_FILE, SCHEMA_FILE])
def test_a_changed_or_missing_file_is_refused(package: Path, name: str) -> None:
    data = bytearray((package / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (package / name).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"{name} has sha256"):
        load_package(package)
    (package / name).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        load_package(package)


def test_a_tampered_pickle_is_never_unpickled(package: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    (package / MODEL_FILE).write_bytes(pickle.dumps(_Exploit(str(marker))))
    with pytest.raises(IntegrityError):
        load_package(package)
    assert not marker.exists()


def test_a_damaged_package_json_is_refused(package: Path) -> None:
    (package / PACKAGE_JSON).write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        load_package(package)
    (package / PACKAGE_JSON).unlink()
    with pytest.raises(IntegrityError, match=r"no package\.json"):
        load_package(package)


def test_a_file_entry_that_escapes_the_folder_is_refused(package: Path) -> None:
    document = json.loads((package / PACKAGE_JSON).read_bytes())
    document["files"]["../outside.pkl"] = {"sha256": "0" * 64, "size": 1}
    (package / PACKAGE_JSON).write_text(json.dumps(document))
    with pytest.raises(IntegrityError, match="cannot hold"):
        load_package(package)


def test_package_sha256_is_stable_and_survives_setting_the_version(
    package: Path, built: Built, tmp_path: Path
) -> None:
    digest = package_sha256(package)
    assert digest == package_sha256(built.package)
    set_package_version(package, 3)
    assert package_sha256(package) == digest
    assert load_package(package).version == 3
    other = build_package(
        tmp_path / "other",
        model=LogisticRegression(C=0.01).fit(*load_split(built.store, built.manifest, "train")),
        transformer_bytes=built.transformer_bytes,
        schema=built.schema,
        info=_info(built.manifest),
    )
    assert package_sha256(other) != digest


def test_store_round_trip_writes_package_json_last_and_is_immutable(
    built: Built, package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore((tmp_path / "store").as_uri())
    set_package_version(package, 3)
    prefix = package_prefix("churn", 3)
    written: list[str] = []
    put_file, put_if_absent = store.put_file, store.put_if_absent
    monkeypatch.setattr(
        store, "put_file", lambda key, path: written.append(key) or put_file(key, path)
    )
    monkeypatch.setattr(
        store, "put_if_absent", lambda key, data: written.append(key) or put_if_absent(key, data)
    )
    write_package_to_store(store, package, prefix)
    assert written[-1] == "models/churn/3/package.json"
    assert sorted(written) == sorted(
        prefix + name for name in (MODEL_FILE, TRANSFORMER_FILE, SCHEMA_FILE, PACKAGE_JSON)
    )
    write_package_to_store(store, package, prefix)  # the same package again: nothing to do

    copy = read_package_from_store(store, prefix, tmp_path / "opt-ml-model")
    loaded = load_package(copy)
    assert loaded.version == 3
    rows = pacsv.read_csv(built.raw_csv).slice(0, 50)
    assert loaded.predict(rows).tolist() == load_package(package).predict(rows).tolist()
    assert package_sha256(copy) == package_sha256(package)

    set_package_version(package, 4)  # a different package.json for the same place
    with pytest.raises(LockgateError, match="already holds a different model package"):
        write_package_to_store(store, package, prefix)

    store.put(prefix + MODEL_FILE, b"not the model")
    with pytest.raises(IntegrityError):
        read_package_from_store(store, prefix, tmp_path / "second-copy")
    store.delete(prefix + MODEL_FILE)
    with pytest.raises(IntegrityError, match="missing from the store"):
        read_package_from_store(store, prefix, tmp_path / "third-copy")


def test_a_regression_package_predicts_values(built: Built, tmp_path: Path) -> None:
    X, _ = load_split(built.store, built.manifest, "train")
    model = DummyRegressor(strategy="constant", constant=42.5).fit(X, np.zeros(len(X)))
    schema = {**built.schema, "task": "regression", "classes": None}
    folder = build_package(
        tmp_path / "regression",
        model=model,
        transformer_bytes=built.transformer_bytes,
        schema=schema,
        info=_info(built.manifest),
    )
    loaded = load_package(folder)
    with built.raw_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:5]
    values = loaded.predict(rows)
    assert values.dtype == np.float64
    assert values.tolist() == [42.5] * 5
    with pytest.raises(ValueError, match="regression"):
        loaded.predict_proba(rows)


def test_build_refuses_a_folder_that_is_not_empty(built: Built, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_package(
            tmp_path / "busy",
            model=built.model,
            transformer_bytes=built.transformer_bytes,
            schema=built.schema,
            info=_info(built.manifest),
        )
    assert [path.name for path in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def _info(manifest: Manifest) -> PackageInfo:
    return PackageInfo(
        name="churn",
        dataset="churn",
        data_version=manifest.version,
        family="logistic",
        params={"C": np.float64(1.0), "class_weight": None, "layers": (64, 32)},
        metrics=TEST_METRICS,
        extra={"trial": np.int64(12)},
    )


class _Exploit:
    """Unpickling this writes a file: what a tampered model.pkl could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).write_text, ("pwned",))
