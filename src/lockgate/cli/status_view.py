"""What ``lockgate status`` found, and how it reads: one screen of text, or one JSON document.

:mod:`lockgate.cli.status` gathers a :class:`Snapshot`; this module only shapes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console

if TYPE_CHECKING:
    from lockgate.pipelines.deployment.releases import Release

COLOURS = {"succeeded": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
ENDPOINT_COLOURS = {"serving": "green", "starting": "cyan", "backoff": "yellow", "failed": "red"}
_DONE = {"promote": "promoted", "rollback": "rolled back"}


@dataclass(frozen=True)
class Runtime:
    """What ``.lockgate/up.json`` says about ``lockgate up``."""

    state_file: str
    running: bool
    up: dict[str, Any] | None
    """The file's content; None when there is no file."""
    last_seen: datetime | None = None
    note: str | None = None
    """Something odd worth a line (a live pid whose heartbeat stopped, another host)."""

    def endpoints(self) -> dict[str, dict[str, Any]]:
        """The endpoints ``up`` supervises, by environment (none unless it runs)."""
        found = (self.up or {}).get("endpoints") if self.running else None
        if not isinstance(found, dict):
            return {}
        return {str(env): value for env, value in found.items() if isinstance(value, dict)}


@dataclass(frozen=True)
class Endpoint:
    """What serves an environment's release, as far as this machine can tell."""

    state: str
    """starting, serving, backoff, failed, stopped (from ``up``); serving or not serving
    (a ``lockgate serve`` of its own); not queried (a SageMaker endpoint)."""
    url: str | None = None
    source: str | None = None
    """``up``, ``serve`` or ``sagemaker``."""
    pid: int | None = None
    restarts: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Served:
    """A release, in the words status uses."""

    seq: int
    action: str
    model: str
    version: int
    by: str
    since: datetime
    package_sha256: str
    failed: str | None

    @classmethod
    def of(cls, release: Release) -> Served:
        return cls(
            release.seq,
            release.action,
            release.model,
            release.version,
            release.by,
            release.released_at,
            release.package_sha256,
            release.failed,
        )


@dataclass(frozen=True)
class Deployed:
    """An environment's current release (None: nothing released) and its endpoint."""

    env: str
    store: str
    release: Served | None
    endpoint: Endpoint
    last_failed: Served | None = None
    """The newest release, when it never served (its failure is news)."""
    error: str | None = None
    """Why the release stream could not be read."""


@dataclass(frozen=True)
class NextRun:
    """When monitoring of an environment runs next; ``due`` None: nothing released there."""

    env: str
    last_run: datetime | None
    due: datetime | None
    due_now: bool
    known: bool = True
    """False: the environment's releases could not be read."""


@dataclass(frozen=True)
class Schedules:
    """Monitoring's schedule per environment, and retrain requests no study has taken yet."""

    expression: str
    description: str | None
    error: str | None
    environments: list[NextRun]
    retrain_requests: list[dict[str, Any]]
    """Each pending request's record, with its ``seq`` and ``at``."""
    requests_error: str | None = None


@dataclass(frozen=True)
class RunRow:
    """One run as status shows it: its last record, its state now, what it produced."""

    record: dict[str, Any]
    state: str
    """As it stands now: a ``running`` record whose process is gone is ``interrupted``."""
    outcome: str

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id"))


@dataclass(frozen=True)
class Snapshot:
    """Everything ``lockgate status`` shows, read at ``now``."""

    now: datetime
    config: str
    env: str
    count: int
    runtime: Runtime
    pipelines: dict[str, list[RunRow]]
    """Per pipeline, its last ``count`` runs from every environment's store, newest first."""
    deployed: list[Deployed]
    schedule: Schedules
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """The ``--json`` document: the fields above; each run is its record with its state
        as it stands now (``recorded_state``: what the record says) and its outcome."""
        document = asdict(self)
        document["pipelines"] = {
            pipeline: [
                {
                    **row.record,
                    "state": row.state,
                    "recorded_state": row.record.get("state"),
                    "outcome": row.outcome,
                }
                for row in rows
            ]
            for pipeline, rows in self.pipelines.items()
        }
        document["deployed"] = {item["env"]: item for item in document["deployed"]}
        return json.dumps(document, indent=2, default=_json_value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value)


# -- text --------------------------------------------------------------------------------------


def print_status(snapshot: Snapshot) -> None:
    """The one screen: runtime, pipelines, what serves, what is next."""
    console.print(
        f"[bold]lockgate status[/bold] of {escape(str(snapshot.config))} "
        f"(home environment {escape(snapshot.env)}) at {when(snapshot.now)}"
    )
    console.print()
    _print_runtime(snapshot.runtime, snapshot.now)
    console.print()
    last = "last run" if snapshot.count == 1 else f"last {snapshot.count} runs each"
    console.print(f"[bold]pipelines[/bold] ({last}, newest first)")
    for pipeline, rows in snapshot.pipelines.items():
        _print_runs(pipeline, rows, snapshot.now)
    console.print()
    console.print("[bold]deployed[/bold]")
    width = max((len(item.env) for item in snapshot.deployed), default=0)
    for item in snapshot.deployed:
        console.print(f"  {escape(item.env.ljust(width))}  {_deployed_line(item)}")
    console.print()
    _print_schedule(snapshot.schedule, snapshot.runtime.running)


def _print_runtime(runtime: Runtime, now: datetime) -> None:
    document = runtime.up
    if document is None:
        console.print("runtime: [yellow]not running[/yellow] — start it with `lockgate up`")
        return
    if not runtime.running:
        seen = f"last seen {when(runtime.last_seen)}" if runtime.last_seen else "never seen"
        ago = f", {_ago(runtime.last_seen, now)}" if runtime.last_seen else ""
        console.print(
            f"runtime: [yellow]not running[/yellow] ({seen}{ago}) — start it with `lockgate up`"
        )
    else:
        started = parse_time(document.get("started"))
        since = f" since {when(started)}" if started else ""
        console.print(
            f"runtime: [green]running[/green] (`lockgate up`, pid {document.get('pid')} on "
            f"{escape(str(document.get('host') or '?'))}{since}; heartbeat "
            f"{_ago(runtime.last_seen, now)})"
        )
        details = []
        if document.get("store"):
            details.append(f"watching {document['store']}")
        if document.get("interval") is not None:
            details.append(f"polling every {document['interval']} s")
        if document.get("workers") is not None:
            details.append(f"{document['workers']} worker(s)")
        if details:
            console.print(f"  {escape(', '.join(details))}")
        queue = document.get("queue")
        if isinstance(queue, dict):
            console.print(f"  queue: {escape(_queue_words(queue))}")
    if runtime.note:
        console.print(f"  [yellow]note:[/yellow] {escape(runtime.note)}")


def _queue_words(queue: dict[str, Any]) -> str:
    """``up``'s work queue: what waits, what runs, how much is done."""
    waiting, running = queue.get("waiting"), queue.get("running")
    text = f"{queue.get('queued', 0)} waiting"
    if isinstance(waiting, list) and waiting:
        text += f" ({', '.join(map(str, waiting))})"
    text += "; running: " + (", ".join(map(str, running)) if running else "nothing")
    counts = [f"{queue[key]} {key}" for key in ("done", "failed") if queue.get(key)]
    return text + (f"; {', '.join(counts)} since it started" if counts else "")


def _print_runs(pipeline: str, rows: list[RunRow], now: datetime) -> None:
    if not rows:
        console.print(f"{pipeline}: no runs yet")
        return
    table = Table(title=pipeline, title_justify="left")
    for column in ("started (UTC)", "env", "trigger", "state", "duration", "outcome"):
        table.add_column(column, justify="right" if column == "duration" else "left")
    for row in rows:
        record = row.record
        colour = COLOURS.get(row.state, "white")
        table.add_row(
            when(parse_time(record.get("started")), zone=False),
            escape(str(record.get("env") or "-")),
            escape(_trigger(record.get("trigger"))),
            f"[{colour}]{escape(row.state)}[/{colour}]",
            _duration(row, now),
            escape(row.outcome),
        )
    console.print(table)
    for row in rows:
        if row.state not in ("failed", "interrupted"):
            continue
        record = row.record
        error = record.get("error")
        if not error and record.get("state") == "running":
            error = (
                f"its process (pid {record.get('pid')} on {record.get('host')}) ended without "
                "recording an outcome (killed or crashed)"
            )
        colour = COLOURS[row.state]
        started = when(parse_time(record.get("started")))
        console.print(
            f"  [{colour}]{row.state}[/{colour}] {escape(row.run_id)} ({started}): "
            f"{escape(str(error or 'no error recorded'))}"
        )
        hint = record.get("hint") or f"run the {pipeline} pipeline again"
        console.print(f"    what to do: {escape(str(hint))}")


def _trigger(trigger: Any) -> str:
    if isinstance(trigger, dict):
        text = f"{trigger.get('kind', '')} {trigger.get('detail', '')}".strip()
    else:
        text = str(trigger or "")
    return text if len(text) <= 40 else text[:39] + "…"


def _duration(row: RunRow, now: datetime) -> str:
    seconds = row.record.get("seconds")
    if row.state == "running":
        started = parse_time(row.record.get("started"))
        return f"{_span((now - started).total_seconds())} so far" if started else "-"
    if isinstance(seconds, int | float):
        return _span(float(seconds))
    return "-"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    return f"{hours // 24} d {hours % 24} h"


def _deployed_line(item: Deployed) -> str:
    if item.error:
        return f"[yellow]unknown[/yellow]: {escape(item.error)}"
    release = item.release
    if release is None:
        text = "nothing released"
    else:
        text = (
            f"[bold]{escape(release.model)} v{release.version}[/bold] (release "
            f"#{release.seq}, {_DONE.get(release.action, release.action)} by "
            f"{escape(release.by or '?')}, since {when(release.since)})"
        )
    text += f"; endpoint: {_endpoint_words(item.endpoint)}"
    if item.last_failed is not None:
        text += (
            f"\n    [red]release #{item.last_failed.seq} failed[/red] "
            f"({escape(item.last_failed.model)} v{item.last_failed.version}): "
            f"{escape(item.last_failed.failed or '')}"
        )
    return text


def _endpoint_words(endpoint: Endpoint) -> str:
    colour = ENDPOINT_COLOURS.get(endpoint.state, "yellow")
    text = f"[{colour}]{escape(endpoint.state)}[/{colour}]"
    if endpoint.url:
        text += f" at {escape(endpoint.url)}"
    details = []
    if endpoint.source == "up":
        details.append("by `lockgate up`")
    elif endpoint.source == "serve":
        details.append("`lockgate serve`")
    elif endpoint.source == "sagemaker":
        details.append("SageMaker; see the AWS console")
    if endpoint.pid is not None:
        details.append(f"pid {endpoint.pid}")
    if endpoint.restarts:
        details.append(f"{endpoint.restarts} restart(s)")
    if details:
        text += f" ({escape(', '.join(details))})"
    if endpoint.error:
        text += f": {escape(endpoint.error)}"
    return text


def _print_schedule(schedule: Schedules, up_running: bool) -> None:
    if schedule.error:
        console.print(f"[bold]next monitoring[/bold]: [red]{escape(schedule.error)}[/red]")
    else:
        console.print(
            f"[bold]next monitoring[/bold] ({escape(schedule.expression)}: "
            f"{escape(schedule.description or '')})"
        )
        width = max((len(item.env) for item in schedule.environments), default=0)
        for item in schedule.environments:
            name = escape(item.env.ljust(width))
            if not item.known:
                console.print(f"  {name}  [yellow]unknown[/yellow]: its releases cannot be read")
                continue
            if item.due is None:
                console.print(f"  {name}  nothing released: not monitored")
                continue
            last = f"last run {when(item.last_run)}" if item.last_run else "never run"
            due = f"at {when(item.due)}"
            if item.due_now:
                due = "due now" + ("" if up_running else " (start `lockgate up` to run it)")
            console.print(f"  {name}  {last}; next: {due}")
    if schedule.requests_error:
        console.print(f"retrain requests: [yellow]unknown[/yellow]: {schedule.requests_error}")
    elif not schedule.retrain_requests:
        console.print("retrain requests: none pending")
    else:
        taker = "`lockgate up` starts the study" if up_running else "start `lockgate up`"
        console.print(
            f"retrain requests: [yellow]{len(schedule.retrain_requests)} pending[/yellow] "
            f"({taker}, or run `lockgate train`)"
        )
        for request in schedule.retrain_requests:
            console.print(
                f"  #{request['seq']} {escape(str(request.get('reason') or 'requested'))} in "
                f"{escape(str(request.get('env') or '?'))} at {when(request['at'])}"
            )


# -- time --------------------------------------------------------------------------------------


def when(moment: datetime | None, *, zone: bool = True) -> str:
    """``moment`` as a reader wants it: UTC to the second, e.g. 2026-05-01 12:03:04 UTC."""
    if moment is None:
        return "-"
    text = f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    return text + " UTC" if zone else text


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    return "just now" if seconds < 1 else f"{_span(seconds)} ago"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from a record (UTC if it has no offset), None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
