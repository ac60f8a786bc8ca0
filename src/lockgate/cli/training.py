"""Commands of the training pipeline: train, runs, report, ui."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from lockgate.cli.app import Context, app
from lockgate.cli.output import console, err, stage
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.config import Settings
    from lockgate.pipelines.runs import Trigger
    from lockgate.pipelines.training.pipeline import TrainResult
    from lockgate.ports.store import Store

report_app = typer.Typer(help="Reports: study.", no_args_is_help=True)
app.add_typer(report_app, name="report")


def _training_modules() -> None:
    # lockgate keeps tracking data where the user points it; MLflow's usage telemetry is off
    # unless the user turns it on themselves.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow  # noqa: F401
        import optuna  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ConfigError(f"training needs '{exc.name}': pip install 'lockgate[train]'") from None


def storage_url(settings: Settings) -> str:
    """The Optuna storage: lockgate.toml's ``train.storage``, else a journal file."""
    if settings.file.train.storage:
        return settings.file.train.storage
    return "journal:" + str(settings.env_dir / "optuna" / "journal.log")


def tracking(settings: Settings) -> tuple[str, str | None]:
    from lockgate.tracking.mlflow_tracker import local_tracking_uri

    if settings.tracking_uri:
        return settings.tracking_uri, None
    uri, artifacts = local_tracking_uri(settings.env_dir)
    settings.env_dir.mkdir(parents=True, exist_ok=True)
    return uri, artifacts


@app.command("train")
def train_command(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Dataset to train on.")] = None,
    data_version: Annotated[
        str | None, typer.Option(help="Dataset version (default: the latest).")
    ] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Trials in the study.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel worker processes.")] = None,
    timeout: Annotated[str | None, typer.Option(help="Wall-clock budget: 90s, 15m, 1h.")] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="Environment to train in [default: the global --env]"),
    ] = None,
) -> None:
    """Search model families with Optuna, then register the best model (pending approval).

    In an environment with ``[envs.<env>.training] compute = "sagemaker"`` the trials run as
    SageMaker training jobs.
    """
    context: Context = ctx.obj
    if env is not None:
        context.env = env  # as the global --env: settings, store, logs and tracking follow
    settings = context.settings(dataset)
    store = context.open_store(settings)
    result = run_training(settings, store, data_version, trials, workers, timeout)
    print_training(result)


def run_training(
    settings: Settings,
    store: Store,
    data_version: str | None = None,
    trials: int | None = None,
    workers: int | None = None,
    timeout: str | None = None,
    trigger: Trigger | None = None,
) -> TrainResult:
    """The training pipeline on the settings' dataset, with this environment's adapters.

    Args:
        trigger: what started the run (default: ``LOCKGATE_TRIGGER``, else this command).
    """
    _training_modules()
    from lockgate.pipelines.data.versions import latest_version, read_manifest
    from lockgate.pipelines.training.pipeline import train
    from lockgate.tracking.mlflow_tracker import MlflowRegistry, MlflowTracker

    name, _ = settings.dataset()
    compute, storage = None, storage_url(settings)
    if settings.env_config().training.compute == "sagemaker":  # its settings checked first
        compute, storage = _sagemaker(settings, storage)
    manifest = (
        read_manifest(store, name, data_version) if data_version else latest_version(store, name)
    )
    uri, artifacts = tracking(settings)
    return train(
        store,
        manifest,
        settings.file.train,
        storage=storage,
        work_dir=settings.env_dir / "work" / f"{manifest.dataset}-{manifest.version}",
        report_dir=settings.env_dir / "reports",
        tracker_factory=functools.partial(MlflowTracker, uri, artifacts),
        registry=MlflowRegistry(uri),
        trials=trials,
        workers=workers,
        timeout=timeout,
        say=stage,
        trigger=trigger,
        compute=compute,
    )


def _sagemaker(settings: Settings, storage: str) -> tuple[Any, str]:
    """SageMaker compute, and the study storage (the secret's URL when one is named)."""
    from lockgate.wiring import aws_module

    module = aws_module("training_setup", "training on SageMaker")
    return module.sagemaker_training(settings, stage), module.secret_storage(settings) or storage


def print_training(result: TrainResult) -> None:
    """What a user needs after a study: the registered model and where to look."""
    counts = ", ".join(f"{count} {state}" for state, count in sorted(result.trials.items()))
    console.print(
        f"[green]registered[/green] {result.model_name} version {result.model_version} "
        f"(pending approval): test {result.metric}={result.test_metrics[result.metric]:.4f}"
    )
    console.print(f"study {result.study_name}: {counts}; best trial {result.best_trial}")
    console.print(f"package: {result.package_uri}")
    console.print(f"report:  {result.report_path}")
    console.print("tracking: lockgate ui  (MLflow on http://127.0.0.1:5000)")


def pick_study(storage: Any, summaries: list[Any], name: str | None) -> Any:
    """The named study, else the most recently started one."""
    import optuna

    chosen = (
        name
        or max(
            summaries, key=lambda s: s.datetime_start.timestamp() if s.datetime_start else 0.0
        ).study_name
    )
    try:
        return optuna.load_study(study_name=chosen, storage=storage)
    except KeyError:
        raise ConfigError(f"no study named '{chosen}'; see `lockgate runs`") from None


@app.command("runs")
def runs_command(
    ctx: typer.Context,
    study: Annotated[str | None, typer.Option(help="Study name (default: the newest).")] = None,
    limit: Annotated[int, typer.Option(help="Trials to show, best first.")] = 20,
) -> None:
    """Studies and their trials: state, metric, parameters, duration."""
    _training_modules()
    import optuna
    from rich.table import Table

    from lockgate.pipelines.training.study import open_storage
    from lockgate.pipelines.training.study_report import trial_rows

    context: Context = ctx.obj
    settings = context.settings()
    storage = open_storage(storage_url(settings))
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=True)
    if not summaries:
        err.print("no study yet; run `lockgate train`")
        return
    table = Table("study", "trials", "best", "started", box=None)
    for summary in summaries:
        best = summary.best_trial.value if summary.best_trial else None
        started = (
            summary.datetime_start.strftime("%Y-%m-%d %H:%M") if summary.datetime_start else ""
        )
        table.add_row(
            summary.study_name,
            str(summary.n_trials),
            "-" if best is None else f"{best:.4f}",
            started,
        )
    console.print(table)
    loaded = pick_study(storage, summaries, study)
    chosen = loaded.study_name
    rows = trial_rows(loaded)
    maximize = loaded.direction == optuna.study.StudyDirection.MAXIMIZE
    rows.sort(key=lambda r: (r.value is None, -(r.value or 0.0) if maximize else (r.value or 0.0)))
    trials = Table(
        "trial",
        "state",
        loaded.user_attrs.get("metric", "value"),
        "family",
        "params",
        "seconds",
        box=None,
    )
    for row in rows[:limit]:
        params = ", ".join(
            f"{k.split('.', 1)[-1]}={v}" for k, v in row.params.items() if k != "family"
        )
        trials.add_row(
            str(row.number),
            row.state.lower(),
            "-" if row.value is None else f"{row.value:.4f}",
            row.family or "-",
            escape(params if not row.error else f"error: {row.error}"),
            "-" if row.duration_s is None else f"{row.duration_s:.1f}",
        )
    console.print(f"\nstudy {chosen}")
    console.print(trials)


@report_app.command("study")
def report_study(
    ctx: typer.Context,
    study: Annotated[str | None, typer.Argument(help="Study name (default: the newest).")] = None,
) -> None:
    """Write a self-contained HTML report of a study and print its path."""
    _training_modules()
    import optuna

    from lockgate.pipelines.data.versions import read_manifest
    from lockgate.pipelines.training.pipeline import plan_study
    from lockgate.pipelines.training.study import open_storage
    from lockgate.pipelines.training.study_report import write_study_report

    context: Context = ctx.obj
    settings = context.settings()
    storage_text = storage_url(settings)
    storage = open_storage(storage_text)
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        raise ConfigError("no study yet; run `lockgate train`")
    loaded = pick_study(storage, summaries, study)
    chosen = loaded.study_name
    store = context.open_store(settings)
    manifest = read_manifest(
        store, str(loaded.user_attrs["dataset"]), str(loaded.user_attrs["data_version"])
    )
    plan = plan_study(
        manifest, settings.file.train, storage_text, settings.env_dir / "work" / chosen, 1, None
    )
    path = write_study_report(
        loaded, plan, manifest, None, None, None, None, settings.env_dir / "reports"
    )
    console.print(str(path))


@app.command("ui")
def ui_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Open the MLflow UI on 127.0.0.1 over this environment's tracking store."""
    _training_modules()
    context: Context = ctx.obj
    uri, _ = tracking(context.settings())
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    console.print(f"MLflow UI on http://127.0.0.1:{port} (tracking {uri}); Ctrl-C to stop")
    os.execv(  # noqa: S606 - replaces this process with the MLflow server, by design
        mlflow,
        [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
    )
