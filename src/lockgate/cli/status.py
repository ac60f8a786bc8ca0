"""``lockgate status``: is ``up`` running, what ran, what serves, what runs next.

Everything is read, nothing is changed: ``.lockgate/up.json`` (written by ``lockgate up``), the
run records and release streams in every environment's store, the endpoint state files and the
retrain requests of the home ledger. A store that cannot be read is a warning, not a failure:
status is what a user runs when something is wrong.

A run's outcome is derived from its record's outputs (and its pipeline's own top-level fields,
such as monitoring's verdict) knowing no more of a pipeline than the few names below; a
pipeline or a record it does not recognise shows its first output values instead.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from lockgate.cli.app import Context, app
from lockgate.cli.output import err
from lockgate.cli.status_view import (
    Deployed,
    Endpoint,
    NextRun,
    RunRow,
    Runtime,
    Schedules,
    Served,
    Snapshot,
    parse_time,
    print_status,
)
from lockgate.errors import LockgateError
from lockgate.local.up_state import STALE_AFTER
from lockgate.processes import alive

if TYPE_CHECKING:
    from pathlib import Path

    from lockgate.config import Settings
    from lockgate.pipelines.runs import RunView
    from lockgate.ports.store import Store

SCHEDULE_DEPTH = 20
"""Monitoring runs read per store to find each environment's last one."""
REQUESTS, TRAINING = "requests", "training"
"""The retrain request stream (as in lockgate.pipelines.monitoring.job, which imports NumPy)."""
RECORD_FIELDS = frozenset(
    {"run_id", "pipeline", "env", "trigger", "inputs", "state", "started", "ended", "seconds"}
    | {"outputs", "error", "hint", "host", "pid"}
)
"""The fields every run record has; any other top-level field is the pipeline's own."""
UNREADABLE = (LockgateError, OSError, ValueError, KeyError, TypeError)
"""What reading a store or a record can raise: a missing bucket, a torn or foreign record."""


@app.command("status")
def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document with everything, for scripts.")
    ] = False,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Runs shown per pipeline.")] = 5,
) -> None:
    """What runs, what ran, what serves and what runs next, in every environment."""
    context: Context = ctx.obj
    snapshot = gather(context.settings(), runs, datetime.now(UTC))
    if as_json:
        typer.echo(snapshot.to_json())
    else:
        print_status(snapshot)
    for warning in snapshot.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}")


def gather(settings: Settings, count: int, now: datetime) -> Snapshot:
    """Read everything ``lockgate status`` shows; unreadable parts become warnings."""
    warnings: list[str] = []
    envs = list(settings.env_names)
    if settings.env not in envs:
        envs.insert(0, settings.env)
    stores = _Stores(warnings)
    from lockgate.local.up_state import state_path

    runtime = read_runtime(state_path(settings), now)
    found = _runs(settings, envs, stores, count)
    deployed = [_deployed(settings, env, stores, runtime) for env in envs]
    schedule = _schedule(settings, deployed, found["monitoring"], runtime, stores, now)
    return Snapshot(
        now=now,
        config=str(settings.config_path.resolve()),
        env=settings.env,
        count=count,
        runtime=runtime,
        pipelines={
            pipeline: [
                RunRow(view.record, view.state, outcome(view.record)) for view in views[:count]
            ]
            for pipeline, views in found.items()
        },
        deployed=deployed,
        schedule=schedule,
        warnings=warnings,
    )


class _Stores:
    """Each store URI opened once; one that cannot be opened is said once, then skipped."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings
        self._open: dict[str, Store | None] = {}

    def get(self, uri: str) -> Store | None:
        if uri not in self._open:
            from lockgate.wiring import open_store

            try:
                self._open[uri] = open_store(uri)
            except UNREADABLE as exc:
                self.warn(f"cannot open the store {uri}: {exc}")
                self._open[uri] = None
        return self._open[uri]

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


# -- runtime -----------------------------------------------------------------------------------


def read_runtime(path: Path, now: datetime) -> Runtime:
    """Is ``up`` running: its pid alive on this host and its heartbeat under 30 s old.

    On another host (a shared project folder) the pid cannot be asked, so the heartbeat alone
    decides. An ``up`` that stopped cleanly says so (``stopped``) in its last state file.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Runtime(str(path), running=False, up=None)
    except (OSError, ValueError) as exc:
        return Runtime(str(path), running=False, up={}, note=f"cannot read {path}: {exc}")
    if not isinstance(document, dict):
        return Runtime(str(path), running=False, up={}, note=f"{path} is not a JSON object")
    heartbeat = parse_time(document.get("heartbeat"))
    stopped = parse_time(document.get("stopped"))
    seen = stopped or heartbeat or parse_time(document.get("started"))
    fresh = heartbeat is not None and (now - heartbeat).total_seconds() < STALE_AFTER
    if stopped is not None:
        return Runtime(str(path), running=False, up=document, last_seen=seen)
    pid = document.get("pid")
    host = document.get("host")
    here = host in (None, socket.gethostname())
    running_pid = alive(pid) if here and isinstance(pid, int) else None
    note = None
    if running_pid and not fresh:
        note = (
            f"pid {pid} is alive but wrote no heartbeat for over {STALE_AFTER:g} s: "
            "`lockgate up` may be stuck, or the pid now belongs to another process"
        )
    elif running_pid is None and not here:
        note = f"`lockgate up` ran on {host}; judged by its heartbeat alone"
    running = fresh and running_pid is not False
    return Runtime(str(path), running, document, last_seen=seen, note=note)


# -- runs --------------------------------------------------------------------------------------


def _runs(
    settings: Settings, envs: list[str], stores: _Stores, count: int
) -> dict[str, list[RunView]]:
    """Per pipeline, its recent runs over every distinct store, newest first: ``count`` of
    each, and more of monitoring's (each environment's last one sets its schedule)."""
    from lockgate.pipelines.runs import PIPELINES, recent_runs

    found: dict[str, dict[str, tuple[datetime, int, RunView]]] = {name: {} for name in PIPELINES}
    for uri in dict.fromkeys(settings.for_env(env).store_uri for env in envs):
        store = stores.get(uri)
        if store is None:
            continue
        for pipeline, views in found.items():
            depth = max(count, SCHEDULE_DEPTH) if pipeline == "monitoring" else count
            try:
                # Ties (runs started in the same millisecond) keep the ledger's order.
                for order, view in enumerate(recent_runs(store, pipeline, depth)):
                    views.setdefault(view.run_id, (_started(view), order, view))
            except UNREADABLE as exc:
                stores.warn(f"cannot read the {pipeline} runs in {uri}: {exc}")
    return {
        pipeline: [view for _, _, view in sorted(views.values(), key=lambda x: x[:2], reverse=True)]
        for pipeline, views in found.items()
    }


def _started(view: RunView) -> datetime:
    return parse_time(view.record.get("started")) or datetime.min.replace(tzinfo=UTC)


# -- deployed ----------------------------------------------------------------------------------


def _deployed(settings: Settings, env: str, stores: _Stores, runtime: Runtime) -> Deployed:
    from lockgate.pipelines.deployment.releases import read_history
    from lockgate.pipelines.ledger import Ledger

    uri = settings.for_env(env).store_uri
    endpoint = _endpoint(settings, env, runtime)
    store = stores.get(uri)
    if store is None:
        return Deployed(env, uri, None, endpoint, error=f"cannot open the store {uri}")
    try:
        history = read_history(Ledger(store), env)
        releases = history.releases()
    except UNREADABLE as exc:
        stores.warn(f"cannot read the releases of {env} in {uri}: {exc}")
        return Deployed(env, uri, None, endpoint, error=f"cannot read its releases: {exc}")
    newest = releases[-1] if releases else None
    failed = newest if newest is not None and newest.failed is not None else None
    current = history.current()
    return Deployed(
        env,
        uri,
        Served.of(current) if current else None,
        endpoint,
        last_failed=Served.of(failed) if failed else None,
    )


def _endpoint(settings: Settings, env: str, runtime: Runtime) -> Endpoint:
    """From ``up`` when it runs and supervises one; else a ``lockgate serve`` of its own."""
    from lockgate.cli.serving import state_file
    from lockgate.local.endpoint import read_state

    supervised = runtime.endpoints().get(env)
    if supervised is not None:
        pid = supervised.get("pid")
        restarts = supervised.get("restarts")
        return Endpoint(
            state=str(supervised.get("state") or "unknown"),
            url=_text(supervised.get("url")),
            source="up",
            pid=pid if isinstance(pid, int) else None,
            restarts=restarts if isinstance(restarts, int) else None,
            error=_text(supervised.get("last_error")),
        )
    try:
        config = settings.env_config(env).endpoint
    except LockgateError:
        config = None
    if config is not None and config.kind == "sagemaker":
        return Endpoint("not queried", url=settings.endpoint_name(env), source="sagemaker")
    served = read_state(state_file(settings, env))
    if served is None:
        return Endpoint("not serving")
    return Endpoint("serving", url=served.url, source="serve", pid=served.pid)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- schedule ----------------------------------------------------------------------------------


def _schedule(
    settings: Settings,
    deployed: list[Deployed],
    monitoring: list[RunView],
    runtime: Runtime,
    stores: _Stores,
    now: datetime,
) -> Schedules:
    """When each released environment is monitored next, as ``up`` would decide it."""
    from lockgate.pipelines.monitoring.schedule import RateSchedule, Schedule

    expression = settings.file.monitor.schedule
    pending, requests_error = _pending_requests(settings, stores)
    try:
        schedule = Schedule.parse(expression)
    except LockgateError as exc:
        return Schedules(expression, None, str(exc), [], pending, requests_error)
    # `up` counts a cron never run from when it started; a rate never run is due at once.
    started = parse_time((runtime.up or {}).get("started")) if runtime.running else None
    never = None if isinstance(schedule, RateSchedule) else started
    envs = []
    for item in deployed:
        if item.release is None:
            envs.append(NextRun(item.env, None, None, due_now=False, known=item.error is None))
            continue
        last = _last_monitored(monitoring, item.env)
        try:
            due = schedule.next_run(last or never, now)
        except LockgateError as exc:
            return Schedules(expression, schedule.describe(), str(exc), [], pending, requests_error)
        envs.append(NextRun(item.env, last, due, due_now=due <= now))
    return Schedules(expression, schedule.describe(), None, envs, pending, requests_error)


def _last_monitored(monitoring: list[RunView], env: str) -> datetime | None:
    """When the last monitoring run of ``env`` that succeeded ended (what ``up`` counts)."""
    ends = [
        parse_time(view.record.get("ended"))
        for view in monitoring
        if view.state == "succeeded" and view.record.get("env") == env
    ]
    return max((end for end in ends if end is not None), default=None)


def _pending_requests(
    settings: Settings, stores: _Stores
) -> tuple[list[dict[str, Any]], str | None]:
    """The home ledger's retrain requests that no study has handled yet."""
    from lockgate.pipelines.ledger import Ledger

    store = stores.get(settings.store_uri)
    if store is None:
        return [], f"cannot open the store {settings.store_uri}"
    try:
        ledger = Ledger(store)
        handled = {
            entry.record.get("request") for entry in ledger.entries(REQUESTS, TRAINING + "-handled")
        }
        requests = ledger.entries(REQUESTS, TRAINING)
    except UNREADABLE as exc:
        stores.warn(f"cannot read the retrain requests in {settings.store_uri}: {exc}")
        return [], str(exc)
    pending = [
        {**entry.record, "seq": entry.seq, "at": entry.recorded_at}
        for entry in requests
        if entry.seq not in handled
    ]
    return pending, None


# -- outcome of a run --------------------------------------------------------------------------


def outcome(record: dict[str, Any]) -> str:
    """A few words on what a run produced: from its outputs, else its pipeline's own fields,
    else its inputs (a deployment names the model it promoted there)."""
    outputs = record.get("outputs")
    outputs = outputs if isinstance(outputs, dict) else {}
    inputs = record.get("inputs")
    found = {
        **(inputs if isinstance(inputs, dict) else {}),
        **{key: value for key, value in record.items() if key not in RECORD_FIELDS},
        **outputs,
    }
    describe = _OUTCOMES.get(str(record.get("pipeline")))
    return (describe(found, record) if describe else "") or _first_values(outputs)


def _data(found: dict[str, Any], record: dict[str, Any]) -> str:
    if not found.get("version") and not found.get("status"):
        return ""
    details = [str(found.get("status") or "")]
    if isinstance(found.get("rows"), int):
        details.append(f"{found['rows']} rows")
    quarantined = found.get("quarantined")
    quarantined = len(quarantined) if isinstance(quarantined, list) else quarantined
    if isinstance(quarantined, int) and quarantined:
        details.append(f"{quarantined} quarantined")
    named = " ".join(str(found.get(key) or "") for key in ("dataset", "version")).strip()
    return f"{named} ({', '.join(filter(None, details))})".strip()


def _training(found: dict[str, Any], record: dict[str, Any]) -> str:
    if found.get("model_version") is None:
        return ""
    text = f"{found.get('model') or ''} v{found['model_version']}".strip()
    metric = found.get("metric")
    value = found.get("test_value", found.get("best_value"))
    if metric and isinstance(value, int | float):
        text += f" {metric}={value:.4f}"
    return text


def _deployment(found: dict[str, Any], record: dict[str, Any]) -> str:
    if found.get("version") is None:
        return ""
    text = f"{found.get('model') or ''} v{found['version']} → {record.get('env') or '?'}"
    seq = found.get("release_seq")
    if isinstance(seq, int):
        text += f" (#{seq})"
    state = found.get("state")
    if state == "rolled_back":
        return "rollback: " + text
    if state == "already_serving":
        return text + ", already serving"
    return text


def _monitoring(found: dict[str, Any], record: dict[str, Any]) -> str:
    if not found.get("verdict"):
        return ""
    text = str(found["verdict"])
    drifted = found.get("drifted")
    if isinstance(drifted, list) and drifted:
        text += ": " + ", ".join(map(str, drifted[:3])) + (" ..." if len(drifted) > 3 else "")
    if isinstance(found.get("rows"), int):
        text += f" ({found['rows']} rows)"
    return text


_OUTCOMES = {
    "data": _data,
    "training": _training,
    "deployment": _deployment,
    "monitoring": _monitoring,
}


def _first_values(outputs: dict[str, Any], count: int = 3) -> str:
    shown = [
        f"{key}={value}"
        for key, value in outputs.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    ]
    return ", ".join(shown[:count])
