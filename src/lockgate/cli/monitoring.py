"""Commands of the monitoring pipeline: monitor run/reports/schedule, labels put."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.app import app
from lockgate.cli.output import console, err, stage
from lockgate.cli.serving import EnvOption
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.config import Settings
    from lockgate.pipelines.monitoring.alerts import Notifier
    from lockgate.pipelines.monitoring.job import MonitorResult
    from lockgate.pipelines.runs import Trigger
    from lockgate.ports.store import Store

monitor_app = typer.Typer(
    help="The monitoring pipeline: data quality, drift, model quality.", no_args_is_help=True
)
labels_app = typer.Typer(help="Ground truth for model-quality monitoring.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
app.add_typer(labels_app, name="labels")


def _env(ctx: typer.Context, env: str | None) -> tuple[Settings, str, Store]:
    from lockgate.cli.serving import named_env
    from lockgate.wiring import open_store

    settings, name = named_env(ctx, env)
    return settings, name, open_store(settings.for_env(name).store_uri)


def notifiers(settings: Settings) -> list[Notifier]:
    """The webhook and SNS topic of lockgate.toml's [monitor] table, as configured."""
    from lockgate.pipelines.monitoring.alerts import WebhookNotifier

    config = settings.file.monitor
    found: list[Notifier] = []
    if config.webhook_url:
        found.append(WebhookNotifier(config.webhook_url))
    if config.sns_topic_arn:
        from lockgate.wiring import aws_module

        module = aws_module("sns", "monitor.sns_topic_arn")
        found.append(module.sns_notifier(config.sns_topic_arn))
    return found


def request_retrain(settings: Settings) -> Any:
    """A callable that records a retrain request in the home environment's ledger."""
    from lockgate.pipelines.monitoring.retrain import ledger_requests
    from lockgate.wiring import open_store

    return ledger_requests(
        open_store(settings.store_uri),
        settings.env,
        "`lockgate up` starts the study, or run `lockgate train`",
    )


def monitor_env(
    settings: Settings,
    env: str,
    store: Store,
    window: str | None = None,
    trigger: Trigger | None = None,
    now: datetime | None = None,
) -> MonitorResult:
    """One monitoring run of ``env``'s endpoint, with lockgate.toml's settings.

    Args:
        trigger: what started the run (default: a user's command).
    """
    from lockgate.durations import parse_duration
    from lockgate.pipelines.monitoring.job import run_monitoring

    config = settings.file.monitor
    what = "--window" if window else "monitor.window"
    seconds = parse_duration(window or config.window, what)
    if seconds is None:
        raise ConfigError(f"{what} is empty; give a duration like 14d, 12h or 30m")
    return run_monitoring(
        store,
        env,
        settings.endpoint_name(env),
        config,
        window=timedelta(seconds=seconds),
        work_dir=settings.for_env(env).env_dir / "monitoring",
        now=now,
        trigger=trigger,
        notifiers=notifiers(settings),
        retrain=request_retrain(settings),
        say=stage,
    )


def print_result(result: MonitorResult) -> None:
    colour = {"ok": "green", "no_data": "yellow"}.get(result.verdict, "red")
    drifted = f"; drifted: {', '.join(result.drifted)}" if result.drifted else ""
    console.print(
        f"[{colour}]{result.verdict}[/{colour}] run {result.run}: {result.rows} row(s), "
        f"{result.violations} violation(s){escape(drifted)}"
    )
    for message in result.messages:
        console.print(f"  note: {escape(message)}")
    for line in result.alerts:
        console.print(f"  {escape(line)}")
    console.print(f"report: {result.prefix}report.html")
    if result.html is not None:
        console.print(f"        {result.html}")


@monitor_app.command("run")
def monitor_run(
    ctx: typer.Context,
    env: EnvOption = None,
    window: Annotated[
        str | None, typer.Option(help="How far back to read traffic: 14d, 12h, 30m")
    ] = None,
) -> None:
    """One monitoring run now; exit 0 = no violation, 3 = drift or violations found."""
    from lockgate.pipelines.runs import Trigger

    settings, name, store = _env(ctx, env)
    result = monitor_env(settings, name, store, window, trigger=Trigger.command())
    print_result(result)
    raise typer.Exit(result.exit_code)


@monitor_app.command("reports")
def monitor_reports(ctx: typer.Context, env: EnvOption = None) -> None:
    """Past monitoring runs: time, window, rows, verdict, drifted features."""
    from lockgate.pipelines.monitoring.job import past_runs

    _settings, name, store = _env(ctx, env)
    runs = [run for run in past_runs(store) if run.get("env") == name]
    if not runs:
        console.print(
            f"no monitoring runs in {name} yet; run one: lockgate monitor run --env {name}"
        )
        return
    table = Table(title=f"monitoring runs of {name}")
    for column in ("run", "window (UTC)", "rows", "verdict", "drifted features", "report"):
        table.add_column(column)
    for run in runs:
        window = (run.get("inputs") or {}).get("window") or {}
        span = f"{str(window.get('start', ''))[:16]} .. {str(window.get('end', ''))[:16]}"
        table.add_row(
            escape(str(run.get("run"))),
            span.replace("T", " "),
            str(run.get("rows")),
            str(run.get("verdict")),
            escape(", ".join(run.get("drifted") or []) or "-"),
            escape(str((run.get("outputs") or {}).get("report", "")) + "report.html"),
        )
    console.print(table)


@monitor_app.command("schedule")
def monitor_schedule(ctx: typer.Context, env: EnvOption = None) -> None:
    """The schedule in force and when the next run is due."""
    from lockgate.pipelines.monitoring.job import past_runs
    from lockgate.pipelines.monitoring.schedule import Schedule

    settings, name, store = _env(ctx, env)
    expression = settings.file.monitor.schedule
    schedule = Schedule.parse(expression)
    runs = [run for run in past_runs(store) if run.get("env") == name]
    last = datetime.fromisoformat(runs[-1]["ended"]) if runs else None
    now = datetime.now(UTC)
    due = schedule.next_run(last, now)
    console.print(f"schedule: {expression} ({schedule.describe()}), from lockgate.toml [monitor]")
    console.print(f"last run: {last.isoformat(timespec='seconds') if last else 'never'}")
    console.print(
        f"next run: {due.isoformat(timespec='seconds')}"
        + (" (due now; `lockgate up` runs it)" if due <= now else "")
    )


@labels_app.command("put")
def labels_put(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV or JSONL: inference_id, the target, ids")],
    env: EnvOption = None,
) -> None:
    """Store ground truth, joined to captured predictions by inference id at the next run."""
    from lockgate.pipelines.monitoring.labels import put_labels, read_label_file

    settings, name, store = _env(ctx, env)
    target = settings.dataset()[1].target
    id_columns = [n for n, kind in settings.dataset()[1].columns.items() if kind == "id"]
    labels = read_label_file(path, target, id_columns)
    key = put_labels(store, settings.endpoint_name(name), labels, datetime.now(UTC))
    console.print(f"stored {len(labels)} label(s) for {settings.endpoint_name(name)} at {key}")
    err.print("they are joined to predictions at the next `lockgate monitor run`")
