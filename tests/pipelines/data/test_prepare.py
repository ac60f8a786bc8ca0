"""The data pipeline end to end on a folder store: versions, quarantine, crashes, real data."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

from lockgate.config import DatasetConfig
from lockgate.errors import DataVersionError, IntegrityError
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import prepare
from lockgate.pipelines.data.versions import (
    latest_version,
    list_versions,
    load_split,
    load_transformer,
    read_manifest,
    version_prefix,
)
from lockgate.pipelines.runs import recent_runs

CsvFactory = Callable[..., Path]


def upload(store: FileStore, path: Path, name: str | None = None) -> None:
    store.put_file(f"raw/churn/{name or path.name}", path)


def test_version_has_every_file_and_a_manifest_with_their_sha256(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    upload(file_store, churn_csv("jan.csv", rows=3000, seed=1))
    upload(file_store, churn_csv("feb.csv.gz", rows=1000, seed=2, gzip=True))
    result = prepare(file_store, "churn", churn_config)
    assert result.status == "committed"
    assert result.version is not None
    prefix = version_prefix("churn", result.version)
    keys = {info.key[len(prefix) :] for info in file_store.list(prefix)}
    assert keys == {
        "train.safetensors",
        "validation.safetensors",
        "test.safetensors",
        "transformer.pkl",
        "schema.json",
        "baseline/statistics.json",
        "baseline/constraints.json",
        "manifest.json",
    }
    manifest = read_manifest(file_store, "churn", result.version)
    for name, digest in manifest.files.items():
        assert hashlib.sha256(file_store.get(prefix + name)).hexdigest() == digest.sha256
    assert manifest.rows == {"train": 2800, "validation": 600, "test": 600, "total": 4000}
    assert [s.key for s in manifest.sources] == ["raw/churn/feb.csv.gz", "raw/churn/jan.csv"]
    assert [s.rows for s in manifest.sources] == [1000, 3000]
    assert all(s.etag == file_store.head(s.key).etag for s in manifest.sources)
    assert manifest.classes == ["0", "1"]
    assert manifest.lockgate_version
    x, y = load_split(file_store, manifest, "train")
    assert x.dtype == np.float32 and x.shape == (2800, manifest.n_features)
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert np.isfinite(x).all()
    schema = json.loads(file_store.get(prefix + "schema.json"))
    assert len(schema["feature_names"]) == manifest.n_features
    assert "customer_id" not in " ".join(schema["feature_names"])


def test_split_is_stratified(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    upload(file_store, churn_csv(rows=4000))
    manifest = read_manifest(
        file_store, "churn", str(prepare(file_store, "churn", churn_config).version)
    )
    rates = [
        load_split(file_store, manifest, split)[1].mean()
        for split in ("train", "validation", "test")
    ]
    assert max(rates) - min(rates) < 0.01


def test_second_run_on_the_same_files_does_nothing(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    upload(file_store, churn_csv())
    first = prepare(file_store, "churn", churn_config)
    before = {info.key: info.etag for info in file_store.list("processed/")}
    second = prepare(file_store, "churn", churn_config)
    assert second.status == "exists"
    assert second.version == first.version
    assert {info.key: info.etag for info in file_store.list("processed/")} == before


def test_new_upload_makes_a_new_version_of_all_files(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    upload(file_store, churn_csv("a.csv", rows=1000, seed=1))
    first = prepare(file_store, "churn", churn_config)
    upload(file_store, churn_csv("b.csv", rows=1000, seed=2))
    second = prepare(file_store, "churn", churn_config)
    assert second.status == "committed" and second.version != first.version
    assert [m.version for m in list_versions(file_store, "churn")] == [
        first.version,
        second.version,
    ]
    assert latest_version(file_store, "churn").rows["total"] == 2000


def test_changing_the_prep_config_makes_a_new_version(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    upload(file_store, churn_csv())
    first = prepare(file_store, "churn", churn_config)
    changed = churn_config.model_copy(
        update={"prep": churn_config.prep.model_copy(update={"seed": 1})}
    )
    assert prepare(file_store, "churn", changed).version != first.version


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty.csv": (b"", "empty"),
    "header-only.csv": (
        b"customer_id,signup_date,tenure_months,monthly_charges,total_charges,support_calls,"
        b"plan,payment_method,region,contract,last_ticket_text,churned\n",
        "no_rows",
    ),
    "junk.csv": (bytes(range(256)) * 4, "binary"),
    "latin1.csv": (
        "customer_id,signup_date,tenure_months,monthly_charges,total_charges,support_calls,"
        "plan,payment_method,region,contract,last_ticket_text,churned\n"
        "C1,2025-01-01,3,50.0,150.0,1,basic,card,north,month-to-month,facture erronée,1\n".encode(
            "latin-1"
        ),
        "encoding",
    ),
    "no-target.csv": (b"customer_id,tenure_months\nC1,3\n", "missing_column"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_quarantined_untouched_and_the_rest_is_prepared(
    name: str, file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    content, rule = BAD_FILES[name]
    upload(file_store, churn_csv("good.csv", rows=500))
    file_store.put(f"raw/churn/{name}", content)
    raw_etag = file_store.head(f"raw/churn/{name}").etag
    result = prepare(file_store, "churn", churn_config)
    assert result.status == "committed"
    (item,) = result.quarantined
    assert item.key == f"raw/churn/{name}" and item.rule == rule
    assert file_store.get(item.location + name) == content
    error = json.loads(file_store.get(item.location + "error.json"))
    assert error["file"] == f"raw/churn/{name}"
    assert error["rule"] == rule
    assert error["message"]
    assert file_store.get(f"raw/churn/{name}") == content
    assert file_store.head(f"raw/churn/{name}").etag == raw_etag
    manifest = read_manifest(file_store, "churn", str(result.version))
    assert [q.key for q in manifest.quarantined] == [f"raw/churn/{name}"]
    assert manifest.rows["total"] == 500


def test_unparseable_values_error_names_row_column_and_value(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    table = pacsv.read_csv(churn_csv(rows=200))
    tenure = table.column("tenure_months").cast(pa.string()).to_pylist()
    tenure[4] = "twelve"
    tenure[9] = "n/k"
    tenure[11] = "?"
    table = table.set_column(2, "tenure_months", pa.array(tenure))
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out)
    file_store.put("raw/churn/typo.csv", out.getvalue().to_pybytes())
    result = prepare(file_store, "churn", churn_config)
    assert result.status == "all_quarantined" and result.version is not None
    (item,) = result.quarantined
    error = json.loads(file_store.get(item.location + "error.json"))
    assert error["rule"] == "unparseable_values"
    assert (error["column"], error["row"], error["value"]) == ("tenure_months", 5, "twelve")
    assert "3 of 200" in error["message"]
    with pytest.raises(DataVersionError, match="no committed version"):
        latest_version(file_store, "churn")


def test_no_raw_files(file_store: FileStore, churn_config: DatasetConfig) -> None:
    assert prepare(file_store, "churn", churn_config).status == "no_raw_files"


def test_a_command_run_is_recorded_with_who_ran_it_and_what_to_do_when_it_fails(
    file_store: FileStore,
    churn_config: DatasetConfig,
    churn_csv: CsvFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCKGATE_USER", "alice")
    prepare(file_store, "churn", churn_config)
    upload(file_store, churn_csv(rows=400))
    committed = prepare(file_store, "churn", churn_config)
    prepare(file_store, "churn", churn_config)  # nothing new: the version exists

    empty, made, again = recent_runs(file_store, "data")
    assert [view.state for view in (empty, made, again)] == ["failed", "succeeded", "succeeded"]
    assert empty.record["trigger"] == {"kind": "command", "detail": "alice"}
    assert empty.record["inputs"] == {"dataset": "churn", "raw_objects": 0, "raw_keys": []}
    assert empty.record["error"] == "no files under raw/churn/"
    assert empty.record["hint"] == (
        "upload its files under raw/churn/: lockgate put FILE --dataset churn"
    )
    assert made.record["inputs"]["raw_keys"] == ["raw/churn/churn.csv"]
    assert made.record["outputs"]["version"] == committed.version
    assert made.record["outputs"]["rows"]["total"] == 400
    assert again.record["outputs"]["status"] == "exists"
    assert again.record["outputs"]["version"] == committed.version


def test_a_run_reading_many_files_counts_them_without_listing_them(
    file_store: FileStore, churn_config: DatasetConfig
) -> None:
    for number in range(21):
        file_store.put(f"raw/churn/{number:02d}.csv", b"not,a\ncsv")
    prepare(file_store, "churn", churn_config)
    (view,) = recent_runs(file_store, "data")
    assert view.record["inputs"] == {"dataset": "churn", "raw_objects": 21}
    assert view.record["outputs"]["quarantined"] == 21
    assert view.record["hint"].endswith(
        "and 18 more under quarantine/churn/. Fix the file(s) and upload them to raw/churn/ again"
    )


CRASH = """
import os, signal, sys
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import prepare
from lockgate.config import DatasetConfig
store = FileStore(sys.argv[1])
config = DatasetConfig.model_validate_json(sys.argv[2])
def die(key, data):
    if key.endswith("manifest.json"):
        os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError(key)
store.put_if_absent = die
prepare(store, "churn", config)
"""


def test_crash_before_the_manifest_leaves_no_version_and_a_rerun_commits(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    upload(file_store, churn_csv(rows=800))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, file_store.uri, churn_config.model_dump_json()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr.decode()
    written = {info.key.rsplit("/", 1)[-1]: info.etag for info in file_store.list("processed/")}
    assert "train.safetensors" in written and "manifest.json" not in written
    assert list_versions(file_store, "churn") == []
    result = prepare(file_store, "churn", churn_config)
    assert result.status == "committed"
    manifest = read_manifest(file_store, "churn", str(result.version))
    prefix = version_prefix("churn", str(result.version))
    # The rerun wrote the same bytes the crashed run left behind.
    assert file_store.head(prefix + "train.safetensors").etag == written["train.safetensors"]
    load_split(file_store, manifest, "test")


def test_same_inputs_give_byte_identical_versions(
    tmp_path: Path, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    data = churn_csv(rows=1500)
    digests = []
    for name in ("one", "two"):
        store = FileStore((tmp_path / name).as_uri())
        upload(store, data)
        manifest = read_manifest(store, "churn", str(prepare(store, "churn", churn_config).version))
        digests.append({name: digest.sha256 for name, digest in manifest.files.items()})
    assert digests[0] == digests[1]


def test_tampered_transformer_is_refused_before_unpickling(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    upload(file_store, churn_csv(rows=500))
    manifest = (
        latest_version(file_store, "churn") if prepare(file_store, "churn", churn_config) else None
    )
    assert manifest is not None
    transformer = load_transformer(file_store, manifest)
    assert transformer.n_features_out_ == manifest.n_features
    key = version_prefix("churn", manifest.version) + "transformer.pkl"
    file_store.put(key, file_store.get(key) + b"\x00")
    with pytest.raises(IntegrityError, match="refusing to load"):
        load_transformer(file_store, manifest)
    file_store.delete(key)
    with pytest.raises(IntegrityError, match="missing"):
        load_transformer(file_store, manifest)


def test_transformer_applies_to_raw_rows_as_an_endpoint_receives_them(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: CsvFactory
) -> None:
    path = churn_csv(rows=1000)
    upload(file_store, path)
    manifest = read_manifest(
        file_store, "churn", str(prepare(file_store, "churn", churn_config).version)
    )
    transformer = load_transformer(file_store, manifest)
    rows = pacsv.read_csv(path).to_pylist()
    features = transformer.transform(
        [{k: str(v) if v is not None else None for k, v in row.items()} for row in rows[:5]]
    )
    assert features.shape == (5, manifest.n_features)
    assert np.isfinite(features).all()


def _sklearn_dataset(loader: Callable[..., object], target: str) -> pa.Table:
    bunch = loader(as_frame=False)
    names = [str(name).replace(" ", "_") for name in bunch.feature_names]  # type: ignore[attr-defined]
    columns = {name: bunch.data[:, i] for i, name in enumerate(names)}  # type: ignore[attr-defined]
    columns[target] = bunch.target  # type: ignore[attr-defined]
    return pa.table(columns)


@pytest.mark.parametrize(
    ("loader_name", "task", "score_floor"),
    [
        ("load_breast_cancer", "classification", 0.95),
        ("load_wine", "classification", 0.9),
        ("load_diabetes", "regression", 0.2),
    ],
)
def test_real_scikit_learn_datasets_prepare_into_learnable_tensors(
    tmp_path: Path, loader_name: str, task: str, score_floor: float
) -> None:
    import sklearn.datasets

    table = _sklearn_dataset(getattr(sklearn.datasets, loader_name), "label")
    store = FileStore((tmp_path / "store").as_uri())
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    store.put("raw/real/data.csv", sink.getvalue().to_pybytes())
    config = DatasetConfig(
        target="label",
        task=task,  # type: ignore[arg-type]
        columns={name: "numeric" for name in table.column_names if name != "label"},
    )
    result = prepare(store, "real", config)
    assert result.status == "committed", result.message
    manifest = read_manifest(store, "real", str(result.version))
    x_train, y_train = load_split(store, manifest, "train")
    x_test, y_test = load_split(store, manifest, "test")
    if task == "classification":
        model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
        predicted = model.predict(x_test)
        score = accuracy_score(y_test, predicted)
        if len(np.unique(y_train)) == 2:
            assert roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]) > 0.95
    else:
        score = r2_score(y_test, LinearRegression().fit(x_train, y_train).predict(x_test))
        assert y_train.dtype == np.float32
    assert score > score_floor
