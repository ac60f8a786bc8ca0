"""Training benchmark: lockgate studies vs a bare Optuna loop, on the demo data.

Prepares the demo's churn data (2 x 20,000 rows) once, then runs, on the same dataset version:

* a bare Optuna loop: in-memory storage, the same search space, sampler, seed and pruner,
  each trial fitting the family on in-memory arrays; no files, no tracking, no packaging;
* `lockgate train` with 1 worker and with 2 workers (journal storage, the container contract
  per trial, MLflow tracking, then best-model packaging and registration).

Prints trials per minute of each, the 2-worker speed-up, lockgate's per-trial overhead over the
bare loop, and the best validation and test metric reached. Usage:
``python bench/train.py [--trials 16]``
"""

from __future__ import annotations

import argparse
import functools
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from lockgate.config import DatasetConfig, TrainConfig
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import prepare
from lockgate.pipelines.data.versions import load_split, read_manifest
from lockgate.pipelines.training.families import FAMILIES, TrialPruned, evaluate
from lockgate.pipelines.training.pipeline import train
from lockgate.pipelines.training.space import SearchSpace, split_params
from lockgate.pipelines.training.study import StudyPlan, pruner_for, sampler_for
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET, write_churn_csv
from lockgate.tracking.mlflow_tracker import MlflowRegistry, MlflowTracker, local_tracking_uri

CONFIG = TrainConfig(seed=42)


def bare_loop(
    space: SearchSpace, arrays: dict[str, np.ndarray], trials: int, classes: list[str]
) -> tuple[float, float]:
    """Seconds and best value of a plain Optuna loop over the same space."""
    plan = StudyPlan(
        "bare",
        "",
        space,
        "roc_auc",
        "maximize",
        CONFIG.seed,
        CONFIG.sampler,
        CONFIG.pruning,
        classes,
        Path("."),
        Path("."),
        trials,
        None,
    )
    study = optuna.create_study(
        direction="maximize", sampler=sampler_for(plan, 0), pruner=pruner_for(plan)
    )

    def objective(trial: optuna.Trial) -> float:
        family, params = split_params(space.suggest(trial))

        def report(step: int, value: float) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        try:
            fitted = FAMILIES[family].fit(
                params,
                "classification",
                CONFIG.seed,
                arrays["x_train"],
                arrays["y_train"],
                arrays["x_val"],
                arrays["y_val"],
                "roc_auc",
                classes,
                report,
            )
        except TrialPruned:
            raise optuna.TrialPruned() from None
        return evaluate(
            fitted.model, arrays["x_val"], arrays["y_val"], "roc_auc", "classification", classes
        )

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - started, study.best_value


def lockgate_run(
    store: FileStore, manifest: object, env: Path, trials: int, workers: int
) -> tuple[float, float, float]:
    """Seconds, best validation value and test value of `lockgate train`."""
    uri, artifacts = local_tracking_uri(env)
    started = time.perf_counter()
    result = train(
        store,
        manifest,
        CONFIG,  # type: ignore[arg-type]
        storage=f"journal:{env / 'journal.log'}",
        work_dir=env / "work",
        report_dir=env / "reports",
        tracker_factory=functools.partial(MlflowTracker, uri, artifacts),
        registry=MlflowRegistry(uri),
        trials=trials,
        workers=workers,
    )
    seconds = time.perf_counter() - started
    from lockgate.pipelines.training.study import open_storage

    study = optuna.load_study(
        study_name=result.study_name, storage=open_storage(f"journal:{env / 'journal.log'}")
    )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    tracking = sum(float(t.user_attrs.get("tracking_seconds", 0.0)) for t in complete)
    trial_time = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in complete
        if t.datetime_complete and t.datetime_start
    )
    return seconds, result.best_value, result.test_metrics["roc_auc"], tracking / trial_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="lockgate-bench-train-"))
    try:
        files = [
            write_churn_csv(root / f"churn-2026-{month}.csv", 20_000, seed=seed)
            for month, seed in (("01", 7), ("02", 8))
        ]
        config = DatasetConfig(target=CHURN_TARGET, columns=dict(CHURN_COLUMNS))  # type: ignore[arg-type]

        def prepared(name: str) -> tuple[FileStore, object]:
            """Each run its own environment (store + registry), as environments are."""
            store = FileStore((root / name / "store").as_uri())
            for path in files:
                store.put_file(f"raw/churn/{path.name}", path)
            version = str(prepare(store, "churn", config).version)
            return store, read_manifest(store, "churn", version)

        store, manifest = prepared("one")
        x_train, y_train = load_split(store, manifest, "train")  # type: ignore[arg-type]
        x_val, y_val = load_split(store, manifest, "validation")  # type: ignore[arg-type]
        arrays = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
        space = SearchSpace.from_config(CONFIG, "classification")
        classes = list(manifest.classes or [])  # type: ignore[attr-defined]

        bare_s, bare_best = bare_loop(space, arrays, args.trials, classes)
        one_s, one_best, one_test, share = lockgate_run(
            store, manifest, root / "one", args.trials, 1
        )
        store_two, manifest_two = prepared("two")
        two_s, two_best, two_test, _ = lockgate_run(
            store_two, manifest_two, root / "two", args.trials, 2
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    n = args.trials
    print(f"\n{n} trials on {len(y_train)} training rows x {x_train.shape[1]} features")
    print(f"{'run':<30}{'seconds':>9}{'trials/min':>12}{'best val':>10}{'test':>8}")
    print(
        f"{'bare Optuna loop (in memory)':<30}{bare_s:>9.1f}{60 * n / bare_s:>12.1f}"
        f"{bare_best:>10.4f}{'-':>8}"
    )
    print(
        f"{'lockgate train, 1 worker':<30}{one_s:>9.1f}{60 * n / one_s:>12.1f}"
        f"{one_best:>10.4f}{one_test:>8.4f}"
    )
    print(
        f"{'lockgate train, 2 workers':<30}{two_s:>9.1f}{60 * n / two_s:>12.1f}"
        f"{two_best:>10.4f}{two_test:>8.4f}"
    )
    print(f"\n2 workers / 1 worker throughput: {one_s / two_s:.2f}  (target >= 1.6)")
    overhead = (one_s - bare_s) / n
    print(
        f"lockgate overhead per trial (1 worker, storage + contract files + tracking + "
        f"packaging, spread over {n} trials): {overhead:.2f} s = "
        f"{100 * (one_s - bare_s) / bare_s:.0f}% of the bare loop  (target < 10%)"
    )
    print(f"MLflow tracking share of a completed trial's time: {100 * share:.1f}%  (target < 5%)")


if __name__ == "__main__":
    main()
