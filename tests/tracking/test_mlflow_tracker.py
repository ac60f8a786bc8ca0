"""The MLflow adapters against a real SQLite-backed MLflow in a temp folder."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from lockgate.ports.tracking import (
    DATA_VERSION_TAG,
    ERROR_TAG,
    GIT_COMMIT_TAG,
    KIND_TAG,
    PARENT_RUN_TAG,
    STATUS_TAG,
    STUDY_TAG,
    TRANSFORMER_TAG,
    TRIAL_TAG,
    TrackingError,
)
from lockgate.tracking.mlflow_tracker import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
    MlflowRegistry,
    MlflowTracker,
    batches,
    local_tracking_uri,
)

STUDY_TAGS = {
    DATA_VERSION_TAG: "dv-0123456789abcdef",
    TRANSFORMER_TAG: "ab" * 32,
    GIT_COMMIT_TAG: "deadbeef",
}
PARAMS: dict[str, str | int | float] = {
    "family": "hist_gradient_boosting",
    "hist_gradient_boosting.max_iter": 200,
    "hist_gradient_boosting.learning_rate": 0.05,
    "hist_gradient_boosting.max_leaf_nodes": 31,
    "hist_gradient_boosting.l2_regularization": 0.001,
    "hist_gradient_boosting.min_samples_leaf": 20,
    "lockgate.seed": 42,
    "lockgate.metric": "roc_auc",
    "lockgate.task": "classification",
    "lockgate.fit_seconds": 1.25,
}
METRICS = {"roc_auc": 0.81, "log_loss": 0.45, "accuracy": 0.79, "f1": 0.6, "fit_seconds": 1.2}
SERIES = {
    "validation_roc_auc": [0.5 + step / 200 for step in range(50)],
    "validation_loss": [1.0 - step / 100 for step in range(50)],
    "train_loss": [0.9 - step / 100 for step in range(50)],
}


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its schema, created once (migrations take seconds)."""
    folder = tmp_path_factory.mktemp("mlflow-template")
    tracking_uri, _ = local_tracking_uri(folder)
    MlflowClient(tracking_uri=tracking_uri).search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def env_dir(tmp_path: Path, empty_database: Path) -> Path:
    """An environment folder holding a fresh copy of the empty tracking database."""
    folder = tmp_path / "env"
    folder.mkdir()
    shutil.copyfile(empty_database, folder / "mlflow.db")
    return folder


@pytest.fixture
def tracker(env_dir: Path) -> MlflowTracker:
    return MlflowTracker(*local_tracking_uri(env_dir))


@pytest.fixture
def client(env_dir: Path) -> MlflowClient:
    """A plain MLflow client, to read back what the adapters wrote."""
    return MlflowClient(tracking_uri=local_tracking_uri(env_dir)[0])


def test_local_tracking_uri_is_sqlite_and_artifacts_in_the_environment(tmp_path: Path) -> None:
    tracking_uri, artifacts = local_tracking_uri(tmp_path / "env")
    assert tracking_uri == f"sqlite:///{tmp_path / 'env' / 'mlflow.db'}"
    assert tracking_uri.startswith("sqlite:////")
    assert artifacts == (tmp_path / "env" / "mlartifacts").as_uri()
    # Without an explicit artifact root, a SQLite tracker keeps artifacts beside its database.
    assert MlflowTracker(tracking_uri).artifact_root == artifacts


def test_study_and_trials_are_nested_runs_with_params_metrics_series_and_tags(
    tracker: MlflowTracker, client: MlflowClient, env_dir: Path
) -> None:
    parent = tracker.start_study("churn", "churn-dv-0123", STUDY_TAGS)
    trial = tracker.start_trial(parent, 7, PARAMS, {"lockgate.family": "hist_gradient_boosting"})
    tracker.log_trial(trial, METRICS, SERIES, "FINISHED")
    tracker.finish_study(parent, {"best_roc_auc": 0.81, "trials": 1}, "FINISHED")

    study_run = client.get_run(parent)
    assert study_run.info.status == "FINISHED"
    assert study_run.info.run_name == "churn-dv-0123"
    assert study_run.data.tags[STUDY_TAG] == "churn-dv-0123"
    assert study_run.data.tags[KIND_TAG] == "study"
    assert study_run.data.metrics == {"best_roc_auc": 0.81, "trials": 1.0}
    experiment = client.get_experiment(study_run.info.experiment_id)
    assert experiment.name == "churn"
    assert experiment.artifact_location == (env_dir / "mlartifacts" / "churn").as_uri()

    run = client.get_run(trial)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == study_run.info.experiment_id
    assert run.info.run_name == "trial-7"
    tags = run.data.tags
    assert tags[PARENT_RUN_TAG] == parent
    assert tags[TRIAL_TAG] == "7"
    assert tags[KIND_TAG] == "trial"
    assert tags[STUDY_TAG] == "churn-dv-0123"
    for key, value in STUDY_TAGS.items():  # inherited from the study
        assert tags[key] == value
    assert tags["lockgate.family"] == "hist_gradient_boosting"
    assert ERROR_TAG not in tags
    assert run.data.params == {key: str(value) for key, value in PARAMS.items()}
    assert run.data.metrics["roc_auc"] == pytest.approx(0.81)
    for key, values in SERIES.items():
        history = sorted(client.get_metric_history(trial, key), key=lambda metric: metric.step)
        assert [metric.step for metric in history] == list(range(50))
        assert [metric.value for metric in history] == pytest.approx(values)
    # The UI nests the trial under its study: searching by parent finds exactly it.
    children = client.search_runs(
        [study_run.info.experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent}'"
    )
    assert [child.info.run_id for child in children] == [trial]


def test_a_failed_trial_is_failed_with_its_error(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    parent = tracker.start_study("churn", "s", {})
    trial = tracker.start_trial(parent, 0, {"family": "random_forest"}, {})
    tracker.log_trial(trial, {}, {}, "FAILED", error="ValueError: max_depth must be >= 1")
    run = client.get_run(trial)
    assert run.info.status == "FAILED"
    assert run.data.tags[ERROR_TAG] == "ValueError: max_depth must be >= 1"
    assert run.data.params == {"family": "random_forest"}
    killed = tracker.start_trial(parent, 1, {}, {})
    tracker.log_trial(killed, {}, {}, "KILLED", error="worker died")
    assert client.get_run(killed).info.status == "KILLED"


def test_resuming_a_study_continues_its_parent_run(env_dir: Path, client: MlflowClient) -> None:
    first = MlflowTracker(*local_tracking_uri(env_dir))
    parent = first.start_study("churn", "churn-study", {DATA_VERSION_TAG: "dv-1"})
    first.finish_study(parent, {}, "KILLED")
    other = first.start_study("churn", "another-study", {})

    # A new process (a new tracker) resuming the study finds the same run and reopens it.
    again = MlflowTracker(*local_tracking_uri(env_dir))
    assert again.start_study("churn", "churn-study", {GIT_COMMIT_TAG: "cafe"}) == parent
    assert other != parent
    run = client.get_run(parent)
    assert run.info.status == "RUNNING"
    assert run.data.tags[GIT_COMMIT_TAG] == "cafe"
    assert run.data.tags[DATA_VERSION_TAG] == "dv-1"
    # Its trials still inherit the study's tags in a process that never started the study.
    worker = MlflowTracker(*local_tracking_uri(env_dir))
    trial = worker.start_trial(parent, 3, {}, {})
    worker.log_trial(trial, {"roc_auc": 0.7}, {}, "FINISHED")
    assert client.get_run(trial).data.tags[DATA_VERSION_TAG] == "dv-1"
    parents = client.search_runs(
        [run.info.experiment_id],
        f"tags.`{STUDY_TAG}` = 'churn-study' and tags.`{KIND_TAG}` = 'study'",
    )
    assert len(parents) == 1


def test_a_trial_is_three_backend_calls_with_one_log_batch(
    tracker: MlflowTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tracker.start_study("churn", "s", STUDY_TAGS)
    calls: list[str] = []
    for name in ("create_run", "log_batch", "set_terminated"):
        original = getattr(MlflowClient, name)

        def spy(
            self: MlflowClient,
            *args: Any,
            _name: str = name,
            _original: Any = original,
            **kwargs: Any,
        ) -> Any:
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, name, spy)
    for name in ("log_metric", "log_param", "set_tag", "get_run", "search_runs"):
        monkeypatch.setattr(MlflowClient, name, _forbidden(name))

    trial = tracker.start_trial(parent, 0, PARAMS, {})
    tracker.log_trial(trial, METRICS, SERIES, "FINISHED")
    assert calls == ["create_run", "log_batch", "set_terminated"]


def test_large_trials_are_split_within_mlflow_batch_limits(
    tracker: MlflowTracker, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tracker.start_study("churn", "s", {})
    sizes: list[tuple[int, int, int]] = []
    original = MlflowClient.log_batch

    def spy(
        self: MlflowClient,
        run_id: str,
        metrics: Any = (),
        params: Any = (),
        tags: Any = (),
        **kwargs: Any,
    ) -> Any:
        sizes.append((len(metrics), len(params), len(tags)))
        return original(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", spy)
    params = {f"p{index}": index for index in range(150)}
    series = {"loss": [float(step) for step in range(2500)]}
    trial = tracker.start_trial(parent, 0, params, {})
    tracker.log_trial(trial, {"final": 1.0}, series, "FINISHED", error="x" * 10_000)
    assert sizes == [(899, 100, 1), (950, 50, 0), (652, 0, 0)]
    run = client.get_run(trial)
    assert len(run.data.params) == 150
    assert len(client.get_metric_history(trial, "loss")) == 2500
    assert len(run.data.tags[ERROR_TAG]) == 8000  # MLflow's longest tag value


def test_batches_respect_every_limit() -> None:
    metrics = [Metric(f"m{i % 7}", 1.0, 0, i) for i in range(2345)]
    params = [Param(f"p{i}", "v") for i in range(250)]
    tags = [RunTag(f"t{i}", "v") for i in range(120)]
    chunks = list(batches(metrics, params, tags))
    for batch_metrics, batch_params, batch_tags in chunks:
        assert len(batch_metrics) <= MAX_METRICS_PER_BATCH
        assert len(batch_params) <= MAX_PARAMS_PER_BATCH
        assert len(batch_tags) <= MAX_TAGS_PER_BATCH
        assert len(batch_metrics) + len(batch_params) + len(batch_tags) <= MAX_ENTITIES_PER_BATCH
    assert [m for chunk in chunks for m in chunk[0]] == metrics
    assert [p for chunk in chunks for p in chunk[1]] == params
    assert [t for chunk in chunks for t in chunk[2]] == tags
    assert len(chunks) == 3
    assert list(batches([], [], [])) == []


def test_a_final_metric_with_a_series_is_the_runs_latest_value(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    parent = tracker.start_study("churn", "s", {})
    trial = tracker.start_trial(parent, 0, {}, {})
    tracker.log_trial(
        trial, {"roc_auc": 0.74, "seconds": 2.0}, {"roc_auc": [0.7, 0.75]}, "FINISHED"
    )
    history = sorted(client.get_metric_history(trial, "roc_auc"), key=lambda m: m.step)
    assert [(metric.step, metric.value) for metric in history] == [(0, 0.7), (1, 0.75), (2, 0.74)]
    assert client.get_run(trial).data.metrics == {"roc_auc": 0.74, "seconds": 2.0}


def test_log_artifact_returns_the_uri_of_the_logged_folder(
    tracker: MlflowTracker, tmp_path: Path
) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "package.json").write_text("{}")
    (package / "model.pkl").write_bytes(b"model")
    parent = tracker.start_study("churn", "s", {})
    uri = tracker.log_artifact(parent, package, "candidates")
    assert uri.endswith(f"/{parent}/artifacts/candidates/package")
    logged = Path(unquote(urlparse(uri).path))
    assert (logged / "model.pkl").read_bytes() == b"model"
    single = tracker.log_artifact(parent, package / "package.json")
    assert Path(unquote(urlparse(single).path)).read_text() == "{}"


def test_registering_numbers_versions_and_keeps_their_tags(
    tracker: MlflowTracker, env_dir: Path
) -> None:
    parent = tracker.start_study("churn", "s", {})
    registry = MlflowRegistry(local_tracking_uri(env_dir)[0])
    assert registry.versions("churn") == []
    pending = {STATUS_TAG: "pending_approval", DATA_VERSION_TAG: "dv-1"}
    first = registry.register("churn", "file:///models/a", parent, pending)
    second = registry.register("churn", "file:///models/b", parent, pending)
    assert (first, second) == (1, 2)
    # A retried registration of the same package does not make a third version.
    assert registry.register("churn", "file:///models/b", parent, pending) == 2
    registry.set_tag("churn", 1, STATUS_TAG, "approved")
    versions = registry.versions("churn")
    assert [record.version for record in versions] == [1, 2]
    assert versions[0].tags == {STATUS_TAG: "approved", DATA_VERSION_TAG: "dv-1"}
    assert versions[1].tags[STATUS_TAG] == "pending_approval"
    assert versions[1].source == "file:///models/b"
    assert versions[1].run_id == parent
    assert versions[1].status == "READY"
    assert versions[0].created_at is not None
    assert registry.register("other", "file:///models/c", None, {}) == 1
    with pytest.raises(TrackingError, match="version 9 of model 'churn'"):
        registry.set_tag("churn", 9, STATUS_TAG, "approved")


def test_an_unknown_scheme_is_one_line_tracking_error() -> None:
    for action in (
        lambda: MlflowTracker("foo://nowhere").start_study("churn", "s", {}),
        lambda: MlflowRegistry("foo://nowhere").versions("churn"),
    ):
        with pytest.raises(TrackingError) as caught:
            action()
        assert "\n" not in str(caught.value)
        assert "foo://nowhere" in str(caught.value)


def test_an_unreachable_server_fails_fast_in_one_line() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(TrackingError, match="unreachable") as caught:
        MlflowTracker(f"http://user:secret@127.0.0.1:{port}").start_study("churn", "s", {})
    assert time.perf_counter() - started < 10  # MLflow alone retries for minutes
    message = str(caught.value)
    assert "\n" not in message
    assert "secret" not in message
    with pytest.raises(TrackingError, match="unreachable"):
        MlflowRegistry(f"http://127.0.0.1:{port}").register("churn", "file:///x", None, {})


def test_a_deleted_experiment_is_refused_with_a_way_out(
    tracker: MlflowTracker, client: MlflowClient
) -> None:
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(TrackingError, match="deleted; restore it"):
        tracker.start_study("gone", "s", {})


def _forbidden(name: str) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"MlflowClient.{name} was called while tracking a trial")

    return fail
