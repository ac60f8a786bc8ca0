"""The training pipeline end to end: study, tracking, best model, package, registry, report."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from lockgate.config import DatasetConfig, TrainConfig
from lockgate.errors import ConfigError
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import prepare
from lockgate.pipelines.data.versions import Manifest, read_manifest
from lockgate.pipelines.runs import TRIGGER_ENV, Trigger, recent_runs
from lockgate.pipelines.training.package import load_package, read_package_from_store
from lockgate.pipelines.training.pipeline import parse_duration, train
from lockgate.pipelines.training.study import TrainingError, open_storage
from lockgate.tracking.mlflow_tracker import MlflowRegistry, MlflowTracker, local_tracking_uri

sys.path.insert(0, str(Path(__file__).parents[2]))
from postgres import postgres_server

FAST = TrainConfig(
    families={
        "logistic": {},
        "hist_gradient_boosting": {"max_iter": [20, 60]},
        "random_forest": {"n_estimators": [10, 40]},
    },
    seed=7,
)


@pytest.fixture
def version(
    file_store: FileStore, churn_config: DatasetConfig, churn_csv: Callable[..., Path]
) -> Manifest:
    file_store.put_file("raw/churn/a.csv", churn_csv(rows=1500))
    result = prepare(file_store, "churn", churn_config)
    return read_manifest(file_store, "churn", str(result.version))


def run_train(
    store: FileStore,
    manifest: Manifest,
    env: Path,
    storage: str,
    config: TrainConfig = FAST,
    **kwargs: object,
) -> object:
    uri, artifacts = local_tracking_uri(env)
    return train(
        store,
        manifest,
        config,
        storage=storage,
        work_dir=env / "work",
        report_dir=env / "reports",
        tracker_factory=functools.partial(MlflowTracker, uri, artifacts),
        registry=MlflowRegistry(uri),
        **kwargs,  # type: ignore[arg-type]
    )


def test_study_registers_a_package_that_predicts_raw_rows(
    file_store: FileStore, version: Manifest, tmp_path: Path, churn_csv: Callable[..., Path]
) -> None:
    env = tmp_path / "env"
    result = run_train(file_store, version, env, f"journal:{env / 'journal.log'}", trials=6)
    assert result.trials == {"complete": 6} or sum(result.trials.values()) == 6  # type: ignore[attr-defined]
    assert result.model_version == 1  # type: ignore[attr-defined]
    assert 0.5 < result.test_metrics["roc_auc"] <= 1.0  # type: ignore[attr-defined]

    package = load_package(read_package_from_store(file_store, "models/churn/1/", tmp_path / "pkg"))
    import pyarrow.csv as pacsv

    rows = pacsv.read_csv(churn_csv("new.csv", rows=20, seed=99)).to_pylist()
    labels = package.predict(rows)
    assert set(labels.tolist()) <= {"0", "1"} and len(labels) == 20

    report = Path(result.report_path)  # type: ignore[attr-defined]
    html = report.read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html

    uri, _ = local_tracking_uri(env)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("churn")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(trials) == 6
    assert all(r.data.tags["lockgate.data_version"] == version.version for r in trials)
    assert all(r.data.tags["lockgate.transformer_sha256"] for r in trials)
    (model_version,) = client.search_model_versions("name='churn'")
    assert model_version.tags["status"] == "pending_approval"
    assert model_version.tags["lockgate.package_uri"].endswith("models/churn/1/")


def test_rerun_continues_the_study_and_registers_the_same_best(
    file_store: FileStore, version: Manifest, tmp_path: Path
) -> None:
    env = tmp_path / "env"
    storage = f"journal:{env / 'journal.log'}"
    run_train(file_store, version, env, storage, trials=3)
    second = run_train(file_store, version, env, storage, trials=5)
    study = optuna.load_study(study_name=second.study_name, storage=open_storage(storage))  # type: ignore[attr-defined]
    assert len(study.trials) == 5  # 3 kept, 2 more


KILLED_RUN = textwrap.dedent(
    """
    import functools, sys
    from pathlib import Path
    from lockgate.local.file_store import FileStore
    from lockgate.pipelines.data.versions import read_manifest
    from lockgate.pipelines.training.pipeline import train
    from lockgate.config import TrainConfig
    from lockgate.tracking.mlflow_tracker import MlflowRegistry, MlflowTracker, local_tracking_uri
    store = FileStore(sys.argv[1]); env = Path(sys.argv[2])
    manifest = read_manifest(store, "churn", sys.argv[3])
    uri, artifacts = local_tracking_uri(env)
    config = TrainConfig.model_validate_json(sys.argv[4])
    train(store, manifest, config, storage=sys.argv[5], work_dir=env / "work",
          report_dir=env / "reports",
          tracker_factory=functools.partial(MlflowTracker, uri, artifacts),
          registry=MlflowRegistry(uri), trials=200)
    """
)


def test_killed_run_resumes_keeping_finished_trials_and_failing_the_dead_one(
    file_store: FileStore, version: Manifest, tmp_path: Path
) -> None:
    env = tmp_path / "env"
    storage = f"journal:{env / 'journal.log'}"
    slow = TrainConfig(families={"random_forest": {"n_estimators": [150, 300]}}, seed=3)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_RUN,
            file_store.uri,
            str(env),
            version.version,
            slow.model_dump_json(),
            storage,
        ],
    )
    try:
        deadline = time.monotonic() + 120
        finished: list[optuna.trial.FrozenTrial] = []
        while time.monotonic() < deadline:
            try:
                study = optuna.load_study(
                    study_name=f"churn-{version.version}", storage=open_storage(storage)
                )
            except KeyError:
                time.sleep(0.2)
                continue
            finished = [t for t in study.trials if t.state.is_finished()]
            running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
            if len(finished) >= 2 and running:
                break
            time.sleep(0.1)
        assert len(finished) >= 2, "the run did not finish two trials in time"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    # What the kill left, read after it: a trial may have ended between the look and the kill.
    killed = optuna.load_study(study_name=f"churn-{version.version}", storage=open_storage(storage))
    finished = [t for t in killed.trials if t.state.is_finished()]
    running = [t.number for t in killed.trials if t.state == optuna.trial.TrialState.RUNNING]

    budget = len(finished) + 2
    result = run_train(file_store, version, env, storage, config=slow, trials=budget)
    study = optuna.load_study(study_name=result.study_name, storage=open_storage(storage))  # type: ignore[attr-defined]
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    dead = [
        t.number for t in study.trials if "worker process died" in str(t.user_attrs.get("error"))
    ]
    assert dead == running
    kept = {t.number: t.value for t in finished}
    assert all(study.trials[number].value == value for number, value in kept.items())
    assert result.model_version == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TrainConfig(families={"xgboost": {}}), "xgboost"),
        (TrainConfig(metric="rmse"), "not valid for classification"),
        (TrainConfig(families={"logistic": {"C": [10.0, 1.0]}}), "logistic"),
        (TrainConfig(families={"linear": {}}), "linear"),
    ],
)
def test_bad_configuration_is_refused_before_any_trial(
    file_store: FileStore, version: Manifest, tmp_path: Path, config: TrainConfig, message: str
) -> None:
    env = tmp_path / "env"
    storage = f"journal:{env / 'journal.log'}"
    with pytest.raises(ConfigError, match=message):
        run_train(file_store, version, env, storage, config=config, trials=2)
    assert optuna.get_all_study_summaries(open_storage(storage)) == []


def test_study_where_every_trial_fails_reports_the_first_error(
    file_store: FileStore, version: Manifest, tmp_path: Path
) -> None:
    env = tmp_path / "env"
    storage = f"journal:{env / 'journal.log'}"
    staged = env / "work" / "data" / "train" / "train.safetensors"
    staged.parent.mkdir(parents=True)
    size = version.files["train.safetensors"].size
    staged.write_bytes(b"\x00" * size)  # same size as the real file: staged, then unreadable
    with pytest.raises(TrainingError, match=r"no trial completed; first error: trial 0: "):
        run_train(file_store, version, env, storage, trials=3)


def test_two_workers_share_a_study_in_postgresql(
    file_store: FileStore, version: Manifest, tmp_path: Path
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="lockgate-pg-"))
    folder.chmod(0o755)
    with postgres_server(folder) as url:
        env = tmp_path / "env"
        result = run_train(file_store, version, env, url, trials=6, workers=2)
        study = optuna.load_study(study_name=result.study_name, storage=url)  # type: ignore[attr-defined]
        finished = [t for t in study.trials if t.state.is_finished()]
        assert len(finished) >= 6
        workers = {t.user_attrs.get("lockgate.worker") for t in study.trials}
        assert len(workers) == 2  # two processes wrote trials into the same study


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("15m", 900.0), ("1h", 3600.0), ("2h30m", 9000.0), ("45", 45.0), (None, None)],
)
def test_durations(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0s", "5x"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(TrainingError, match="timeout"):
        parse_duration(text)


def test_a_study_is_a_recorded_run_naming_the_registered_model(
    file_store: FileStore, version: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `lockgate up` starts `lockgate train` with what started it in the environment.
    monkeypatch.setenv(TRIGGER_ENV, f"new-version:churn {version.version}")
    env = tmp_path / "env"
    config = TrainConfig(families={"logistic": {}}, seed=7)
    result = run_train(
        file_store, version, env, f"journal:{env / 'journal.log'}", config=config, trials=2
    )

    (view,) = recent_runs(file_store, "training")
    record = view.record
    assert view.state == "succeeded"
    assert record["trigger"] == {"kind": "new-version", "detail": f"churn {version.version}"}
    assert record["inputs"] == {
        "dataset": "churn",
        "data_version": version.version,
        "trials": 2,
        "workers": 1,
    }
    outputs = record["outputs"]
    assert (outputs["model"], outputs["model_version"]) == ("churn", 1)
    assert outputs["study"] == result.study_name == f"churn-{version.version}"  # type: ignore[attr-defined]
    assert outputs["best_trial"] == result.best_trial  # type: ignore[attr-defined]
    assert outputs["metric"] == "roc_auc" and 0.5 < outputs["test_value"] <= 1.0
    assert Path(outputs["report"]).is_file()
    assert outputs["package"].endswith("models/churn/1/")


def test_a_refused_configuration_is_a_failed_run(
    file_store: FileStore, version: Manifest, tmp_path: Path
) -> None:
    env = tmp_path / "env"
    config = TrainConfig(families={"logistic": {}}, metric="rmse")
    with pytest.raises(ConfigError, match="rmse"):
        run_train(
            file_store,
            version,
            env,
            f"journal:{env / 'journal.log'}",
            config=config,
            trigger=Trigger("request", "drift in prod"),
        )
    (view,) = recent_runs(file_store, "training")
    assert view.state == "failed"
    assert view.record["trigger"] == {"kind": "request", "detail": "drift in prod"}
    assert "rmse" in view.record["error"] and "ConfigError" not in view.record["error"]
    assert view.record["hint"].startswith("`lockgate train` resumes the study")


def test_an_unreachable_storage_is_named_without_its_password() -> None:
    """The URL may come from a secret; the error lands in the run record and the terminal."""
    from lockgate.pipelines.training.study import TrainingError, open_storage

    url = "postgresql+psycopg://lockgate:S3cretPw@127.0.0.1:1/optuna"
    with pytest.raises(TrainingError) as raised:
        open_storage(url)
    assert "S3cretPw" not in str(raised.value)
    assert "lockgate:***@127.0.0.1:1/optuna" in str(raised.value)
