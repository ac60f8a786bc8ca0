"""The training pipeline: a dataset version in, a registered model package out.

``train`` validates the configuration before any trial, runs (or resumes) the study, picks the
best trial (ties to the cheaper one), retrains it on train+validation, scores it once on the
untouched test split, packages it with the data version's exact transformer, registers it
(``status=pending_approval``), publishes it under ``models/<model>/<version>/`` and writes the
study's HTML report.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna

from lockgate import durations
from lockgate.config import TrainConfig, current_user
from lockgate.errors import ConfigError
from lockgate.pipelines.data.versions import (
    TRANSFORMER,
    Manifest,
    load_split,
    read_verified,
)
from lockgate.pipelines.runs import Trigger, recorded_run
from lockgate.pipelines.training.compute import Compute, LocalProcesses
from lockgate.pipelines.training.families import FAMILIES, predict_output
from lockgate.pipelines.training.metrics import (
    METRICS,
    default_metric,
    metrics_for,
    score,
    validate_metric,
)
from lockgate.pipelines.training.package import (
    PackageInfo,
    build_package,
    load_package,
    package_prefix,
    package_sha256,
    read_package_from_store,
    set_package_version,
    write_package_to_store,
)
from lockgate.pipelines.training.space import SearchSpace, split_params
from lockgate.pipelines.training.study import (
    StudyPlan,
    TrainingError,
    best_trial,
    create_or_resume,
    finished_count,
)
from lockgate.pipelines.training.study_report import trial_counts, write_study_report
from lockgate.ports.store import Store, sha256_file
from lockgate.ports.tracking import Registry, Tracker

log = logging.getLogger("lockgate.training")

Say = Callable[[str], None]


@dataclass
class TrainResult:
    """What a training run produced."""

    study_name: str
    trials: dict[str, int]
    best_trial: int
    best_value: float
    metric: str
    test_metrics: dict[str, float]
    model_name: str
    model_version: int
    package_uri: str
    report_path: Path
    seconds: float


def parse_duration(text: str | None) -> float | None:
    """A study's timeout (``"15m"``, ``"90s"``, ``"1h"``...) in seconds; None: no limit."""
    try:
        return durations.parse_duration(text, "timeout")
    except ConfigError as exc:
        raise TrainingError(str(exc)) from None


def plan_study(
    manifest: Manifest,
    train: TrainConfig,
    storage: str,
    work_dir: Path,
    trials: int,
    timeout: float | None,
    tracker_factory: Callable[[], Tracker] | None = None,
) -> StudyPlan:
    """Validate the search and build the plan, before anything runs.

    Raises:
        ConfigError: unknown family, empty range, a metric not valid for the task, ...
    """
    metric = train.metric or default_metric(manifest.task)
    validate_metric(metric, manifest.task)
    space = SearchSpace.from_config(train, manifest.task)
    study_name = f"{manifest.dataset}-{manifest.version}"
    return StudyPlan(
        study_name=study_name,
        storage=storage,
        space=space,
        metric=metric,
        direction=METRICS[metric].direction,
        seed=train.seed,
        sampler=train.sampler,
        pruning=train.pruning,
        classes=manifest.classes,
        data_dir=work_dir / "data",
        work_dir=work_dir,
        trials=trials,
        deadline=None if timeout is None else time.time() + timeout,
        tracker_factory=tracker_factory,
        data_prefix=f"processed/{manifest.dataset}/{manifest.version}/",
    )


def stage_channels(store: Store, manifest: Manifest, data_dir: Path) -> None:
    """Put the train and validation splits where the trial containers read them."""
    prefix = f"processed/{manifest.dataset}/{manifest.version}/"
    for split in ("train", "validation"):
        folder = data_dir / split
        target = folder / f"{split}.safetensors"
        if target.exists() and target.stat().st_size == manifest.files[target.name].size:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        store.get_file(prefix + target.name, target)
        if sha256_file(target) != manifest.files[target.name].sha256:
            target.unlink()
            raise TrainingError(
                f"{target.name} does not match its manifest; prepare the data again"
            )


def train(
    store: Store,
    manifest: Manifest,
    train_config: TrainConfig,
    *,
    storage: str,
    work_dir: Path,
    report_dir: Path,
    tracker_factory: Callable[[], Tracker],
    registry: Registry,
    trials: int | None = None,
    workers: int | None = None,
    timeout: str | None = None,
    model_name: str | None = None,
    say: Say | None = None,
    trigger: Trigger | None = None,
    compute: Compute | None = None,
) -> TrainResult:
    """Run (or resume) the study of ``manifest``'s data version and register its best model.

    The run is recorded in ``store``'s ledger (``ledger/runs/training/``); if anything raises,
    it is recorded failed and the exception goes on.

    Args:
        trigger: what started it (default: ``LOCKGATE_TRIGGER``, else a user's command).
        compute: where the trials run (default: worker processes on this machine).
    """
    started = time.perf_counter()
    say = say or (lambda message: None)
    budget = trials or train_config.trials
    inputs = {
        "dataset": manifest.dataset,
        "data_version": manifest.version,
        "trials": budget,
        "workers": workers or train_config.workers,
    }
    with recorded_run(store, "training", trigger or Trigger.from_environment(), inputs) as run:
        plan = plan_study(
            manifest,
            train_config,
            storage,
            work_dir,
            budget,
            parse_duration(timeout if timeout is not None else train_config.timeout),
            tracker_factory,
        )
        model = model_name or train_config.model_name or manifest.dataset
        tracker = tracker_factory()
        transformer_sha = manifest.files[TRANSFORMER].sha256
        tags = {
            "lockgate.dataset": manifest.dataset,
            "lockgate.data_version": manifest.version,
            "lockgate.transformer_sha256": transformer_sha,
            "lockgate.metric": plan.metric,
        }
        commit = git_commit()
        if commit:
            tags["lockgate.git_commit"] = commit
        parent = tracker.start_study(manifest.dataset, plan.study_name, tags)
        plan = replace(plan, parent_run_id=parent, tags=tags)
        study = create_or_resume(
            plan,
            {"dataset": manifest.dataset, "data_version": manifest.version, "metric": plan.metric},
        )
        done = finished_count(study)
        say(
            f"study {plan.study_name}: {done} of {budget} trials done, "
            f"{max(budget - done, 0)} to run on {workers or train_config.workers} worker(s)"
        )
        stage_channels(store, manifest, plan.data_dir)
        if done < budget:
            last = [-1]

            def progress(current: optuna.Study) -> None:
                count = finished_count(current)
                if count != last[0]:
                    last[0] = count
                    say(f"{count}/{budget} trials finished")

            (compute or LocalProcesses()).run_trials(
                plan, workers or train_config.workers, progress
            )
        best = best_trial(study)
        family = best.params.get("family")
        say(f"best: trial {best.number} ({family}) {plan.metric}={best.value:.4f}")
        result = _finalize(
            store,
            manifest,
            study,
            plan,
            best,
            model,
            tracker,
            registry,
            parent,
            report_dir,
            started,
            say,
        )
        run.outputs = {
            "model": result.model_name,
            "model_version": result.model_version,
            "study": result.study_name,
            "best_trial": result.best_trial,
            "best_value": result.best_value,
            "metric": result.metric,
            "test_value": result.test_metrics.get(result.metric),
            "package": result.package_uri,
            "report": str(result.report_path),
        }
    return result


def _finalize(
    store: Store,
    manifest: Manifest,
    study: optuna.Study,
    plan: StudyPlan,
    best: optuna.trial.FrozenTrial,
    model_name: str,
    tracker: Tracker,
    registry: Registry,
    parent: str,
    report_dir: Path,
    started: float,
    say: Say,
) -> TrainResult:
    family_name, params = split_params(best.params)
    x_test, y_test = load_split(store, manifest, "test")
    n_classes = len(manifest.classes or []) if manifest.task == "classification" else 0
    registered = _registered(registry, model_name, plan.study_name, best.number)
    if registered is not None:
        # The same study already registered this trial: nothing new to package or register.
        version, package_uri = registered
        say(f"trial {best.number} is already registered as {model_name} version {version}")
        local = read_package_from_store(
            store, package_prefix(model_name, version), plan.work_dir / "registered" / str(version)
        )
        model = load_package(local).model
        output = predict_output(model, x_test, manifest.task, n_classes)
        test_metrics = _test_metrics(manifest, y_test, output)
        report_path = write_study_report(
            study, plan, manifest, best, test_metrics[plan.metric], y_test, output, report_dir
        )
        return _result(
            study, plan, best, test_metrics, model_name, version, package_uri, report_path, started
        )
    family = FAMILIES[family_name]
    x_train, y_train = load_split(store, manifest, "train")
    x_val, y_val = load_split(store, manifest, "validation")
    x_fit = np.concatenate([x_train, x_val])
    y_fit = np.concatenate([y_train, y_val])
    say(f"retraining trial {best.number} on train+validation ({len(y_fit)} rows)")
    fitted = family.fit(
        params, manifest.task, plan.seed, x_fit, y_fit, x_fit, y_fit, plan.metric, manifest.classes
    )
    output = predict_output(fitted.model, x_test, manifest.task, n_classes)
    test_metrics = _test_metrics(manifest, y_test, output)
    say(f"test {plan.metric}={test_metrics[plan.metric]:.4f} (scored once, on the test split)")
    schema = json.loads(read_verified(store, manifest, "schema.json"))
    trained_by = current_user()
    folder = plan.work_dir / "packages" / f"trial-{best.number:05d}"
    if folder.exists():
        shutil.rmtree(folder)
    build_package(
        folder,
        model=fitted.model,
        transformer_bytes=read_verified(store, manifest, TRANSFORMER),
        schema=schema,
        info=PackageInfo(
            name=model_name,
            dataset=manifest.dataset,
            data_version=manifest.version,
            family=family_name,
            params=dict(best.params),
            metrics=test_metrics,
            extra={
                "study": plan.study_name,
                "trial": best.number,
                "seconds": fitted.seconds,
                "trained_by": trained_by,
                "metric": plan.metric,
                "git_commit": plan.tags.get("lockgate.git_commit"),
            },
        ),
    )
    source = tracker.log_artifact(parent, folder, f"package/trial-{best.number:05d}")
    digest = package_sha256(folder)
    version = registry.register(
        model_name,
        source,
        parent,
        {
            "status": "pending_approval",
            "lockgate.data_version": manifest.version,
            "lockgate.package_sha256": digest,
            "lockgate.study": plan.study_name,
            "lockgate.trial": str(best.number),
            "lockgate.trained_by": trained_by,
        },
    )
    set_package_version(folder, version)
    prefix = package_prefix(model_name, version)
    write_package_to_store(store, folder, prefix)
    package_uri = store.uri.rstrip("/") + "/" + prefix
    registry.set_tag(model_name, version, "lockgate.package_uri", package_uri)
    say(f"registered {model_name} version {version} (pending approval) at {package_uri}")
    report_path = write_study_report(
        study, plan, manifest, best, test_metrics[plan.metric], y_test, output, report_dir
    )
    tracker.log_artifact(parent, report_path, "report")
    tracker.finish_study(
        parent,
        {f"test_{name}": value for name, value in test_metrics.items()}
        | {"best_validation": float(best.value or 0.0)},
        "FINISHED",
    )
    return _result(
        study, plan, best, test_metrics, model_name, version, package_uri, report_path, started
    )


def _result(
    study: optuna.Study,
    plan: StudyPlan,
    best: optuna.trial.FrozenTrial,
    test_metrics: dict[str, float],
    model_name: str,
    version: int,
    package_uri: str,
    report_path: Path,
    started: float,
) -> TrainResult:
    return TrainResult(
        study_name=plan.study_name,
        trials=trial_counts(study),
        best_trial=best.number,
        best_value=float(best.value or 0.0),
        metric=plan.metric,
        test_metrics=test_metrics,
        model_name=model_name,
        model_version=version,
        package_uri=package_uri,
        report_path=report_path,
        seconds=time.perf_counter() - started,
    )


def _test_metrics(manifest: Manifest, y_test: np.ndarray, output: np.ndarray) -> dict[str, float]:
    return {
        name: float(score(name, y_test, output, manifest.classes))
        for name in metrics_for(manifest.task)
    }


def _registered(
    registry: Registry, model_name: str, study_name: str, trial: int
) -> tuple[int, str] | None:
    """The version (and package URI) this study's ``trial`` was registered as, if any."""
    for record in registry.versions(model_name):
        tags = record.tags
        if tags.get("lockgate.study") == study_name and tags.get("lockgate.trial") == str(trial):
            uri = tags.get("lockgate.package_uri")
            if uri:
                return record.version, uri
    return None


def git_commit() -> str | None:
    """The current git commit, if lockgate runs inside a repository."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as a user runs it
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None
