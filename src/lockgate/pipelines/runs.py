"""Pipeline run records: every run of every pipeline, whatever started it, in the ledger.

A run appends two records to ``ledger/runs/<pipeline>/``: one when it starts (state
``running``) and one when it ends (``succeeded``, ``failed`` or ``interrupted``) that repeats
the first and adds the outcome. A run whose process died between the two is left with only the
first; :func:`recent_runs` reports it as ``interrupted`` once that process is gone, and
:func:`close_abandoned` writes the missing end record (``lockgate up`` does at start).

The records are what ``lockgate status`` reads, on a laptop and on AWS alike: a Lambda, a
command and ``lockgate up`` write the same shape.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from lockgate.errors import LockgateError
from lockgate.logs import current_context, event, log_context
from lockgate.pipelines.ledger import Ledger
from lockgate.ports.store import Store
from lockgate.processes import alive

log = logging.getLogger("lockgate.runs")

RUNS = "runs"
PIPELINES = ("data", "training", "deployment", "monitoring")
RUN_ID_ENV = "LOCKGATE_RUN_ID"
"""Set by whoever starts a pipeline in another process (``up`` starting a study) so it knows
the run's id and can record the run as interrupted if it has to stop it."""
TRIGGER_ENV = "LOCKGATE_TRIGGER"
"""``kind:detail`` -- what started a run in another process (see :class:`Trigger`)."""

State = Literal["running", "succeeded", "failed", "interrupted"]
TriggerKind = Literal["upload", "new-version", "schedule", "command", "lambda", "request", "demo"]


@dataclass(frozen=True)
class Trigger:
    """What started a run: an upload (its keys), a new dataset version, a schedule, a user's
    command, a Lambda invocation (its request id), a retrain request, the demo."""

    kind: TriggerKind
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}

    def describe(self) -> str:
        return f"{self.kind} {self.detail}".strip()

    @classmethod
    def command(cls, user: str | None = None) -> Trigger:
        from lockgate.config import current_user

        return cls("command", user or current_user())

    @classmethod
    def parse(cls, text: str) -> Trigger:
        """``kind:detail`` as written to :data:`TRIGGER_ENV`."""
        kind, _, detail = text.partition(":")
        if kind not in TriggerKind.__args__:  # type: ignore[attr-defined]
            raise LockgateError(f"unknown run trigger '{text}'")
        return cls(kind, detail)  # type: ignore[arg-type]

    @classmethod
    def from_environment(cls, default: Trigger | None = None) -> Trigger:
        text = os.environ.get(TRIGGER_ENV)
        if text:
            return cls.parse(text)
        return default or cls.command()


@dataclass
class Run:
    """A run being recorded; the pipeline adds its outputs and, if it fails without raising
    (every upload quarantined), says so with :meth:`fail`."""

    run_id: str
    pipeline: str
    trigger: Trigger
    inputs: dict[str, Any]
    env: str | None
    started: datetime
    outputs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Pipeline-specific top-level fields of the end record (monitoring's verdict...)."""
    error: str | None = None
    hint: str | None = None

    def fail(self, error: str, hint: str | None = None) -> None:
        self.error = error
        self.hint = hint

    def start_record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "env": self.env,
            "trigger": self.trigger.to_json(),
            "inputs": self.inputs,
            "state": "running",
            "started": self.started.isoformat(timespec="milliseconds"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }


def new_run_id(pipeline: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{pipeline}-{stamp}-{secrets.token_hex(3)}"


@contextmanager
def recorded_run(
    store: Store,
    pipeline: str,
    trigger: Trigger,
    inputs: Mapping[str, Any] | None = None,
    *,
    env: str | None = None,
    run_id: str | None = None,
) -> Iterator[Run]:
    """Record the run of the block: a ``running`` record now, the outcome at the end.

    The block's exception is recorded (``failed``; ``interrupted`` for Ctrl-C) and
    raised again. Log records inside the block carry the pipeline
    and run id. ``env`` defaults to the process's (see :func:`lockgate.logs.configure`).
    A ledger that cannot be written is logged, never fatal: the pipeline's own
    work matters more than its record.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline '{pipeline}'")
    run = Run(
        run_id=run_id or os.environ.pop(RUN_ID_ENV, None) or new_run_id(pipeline),
        pipeline=pipeline,
        trigger=trigger,
        inputs=dict(inputs or {}),
        # Not named: the environment the process works in (the CLI's --env, a Lambda's).
        env=env or current_context().get("env"),
        started=datetime.now(UTC),
    )
    ledger = Ledger(store)
    clock = time.perf_counter()
    with log_context(pipeline=pipeline, run_id=run.run_id, **({"env": env} if env else {})):
        _append(ledger, pipeline, run.start_record())
        event(log, logging.INFO, "run.started", f"{pipeline} run started by {trigger.describe()}")
        state: State = "succeeded"
        unexpected = False
        try:
            yield run
        except KeyboardInterrupt:
            state = "interrupted"
            run.error = run.error or "stopped before it finished"
            run.hint = run.hint or _hint(pipeline, env)
            raise
        except BaseException as exc:
            state = "failed"
            unexpected = not isinstance(exc, LockgateError)
            run.error = describe_error(exc)
            run.hint = run.hint or _hint(pipeline, env)
            raise
        finally:
            if state == "succeeded" and run.error is not None:
                state = "failed"
            seconds = round(time.perf_counter() - clock, 3)
            finish(ledger, run, state, seconds, unexpected=unexpected)


def describe_error(exc: BaseException) -> str:
    """A user error's own message; anything else with its type, which is then news."""
    return str(exc) if isinstance(exc, LockgateError) else f"{type(exc).__name__}: {exc}"


def finish(
    ledger: Ledger,
    run: Run,
    state: State,
    seconds: float | None = None,
    *,
    unexpected: bool = False,
) -> None:
    """Append ``run``'s end record, and log the outcome.

    A failure is logged as an error only when ``unexpected`` (a bug, an outage); a user's
    mistake or a rejected upload is a warning: the command that hit it says so in its own
    one line, and the record keeps it.
    """
    ended = datetime.now(UTC)
    if seconds is None:
        seconds = round((ended - run.started).total_seconds(), 3)
    record = {
        **run.start_record(),
        **run.extra,
        "state": state,
        "outputs": run.outputs,
        "ended": ended.isoformat(timespec="milliseconds"),
        "seconds": seconds,
        "error": run.error,
        "hint": run.hint,
    }
    _append(ledger, run.pipeline, record)
    level = (
        logging.ERROR if unexpected else logging.INFO if state == "succeeded" else logging.WARNING
    )
    message = f"{run.pipeline} run {state} in {seconds:.2f}s"
    if run.error:
        message += f": {run.error}"
    event(log, level, f"run.{state}", message, **{**_flat(run.outputs), "seconds": seconds})


def _flat(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in outputs.items() if isinstance(value, str | int | float)}


def _append(ledger: Ledger, pipeline: str, record: Mapping[str, Any]) -> None:
    try:
        ledger.append(RUNS, pipeline, record)
    except Exception as exc:  # any store failure, translated or not: the record is never fatal
        log.warning(
            "could not record the %s run in %s: %s",
            pipeline,
            ledger.store.uri,
            describe_error(exc),
        )


_HINTS = {
    "data": "fix the file (see quarantine/ and its error.json) and upload it again, "
    "or run `lockgate data prep`",
    "training": "`lockgate train` resumes the study; `lockgate logs --pipeline training` says more",
    "deployment": "`lockgate history --env ENV` shows what serves; retry the promotion",
    "monitoring": "`lockgate monitor run --env ENV` runs it again",
}


def _hint(pipeline: str, env: str | None = None) -> str:
    return _HINTS[pipeline].replace("ENV", env) if env else _HINTS[pipeline]


@dataclass(frozen=True)
class RunView:
    """What is known of one run: its last record, and its state as it stands now."""

    record: dict[str, Any]
    state: str

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id"))

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(str(self.record["started"]))


def recent_runs(store: Store, pipeline: str, count: int = 20) -> list[RunView]:
    """The last ``count`` runs of ``pipeline`` recorded in ``store``, oldest first.

    A run whose last record says ``running`` is ``interrupted`` if its process is known to be
    gone (same host, no such pid), else ``running``.
    """
    latest: dict[str, dict[str, Any]] = {}
    for entry in Ledger(store).recent(RUNS, pipeline, count * 2):
        run_id = entry.record.get("run_id")
        if run_id:
            latest[str(run_id)] = entry.record
    views = [RunView(record, _state_now(record)) for record in latest.values()]
    views.sort(key=lambda view: str(view.record.get("started")))
    return views[-count:]


def _state_now(record: Mapping[str, Any]) -> str:
    state = str(record.get("state"))
    if state == "running" and _process_gone(record):
        return "interrupted"
    return state


def _process_gone(record: Mapping[str, Any]) -> bool:
    if record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    return isinstance(pid, int) and not alive(pid)


def close_abandoned(store: Store, pipeline: str, count: int = 50) -> list[str]:
    """Write the end record (``interrupted``) of this host's runs whose process died without
    one; their run ids."""
    closed = []
    ledger = Ledger(store)
    for view in recent_runs(store, pipeline, count):
        if view.record.get("state") != "running" or view.state != "interrupted":
            continue
        record = {
            **view.record,
            "state": "interrupted",
            "ended": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "seconds": None,
            "error": "its process ended without recording an outcome (killed or crashed)",
            "hint": _hint(pipeline, view.record.get("env")),
            "outputs": view.record.get("outputs", {}),
        }
        _append(ledger, pipeline, record)
        closed.append(view.run_id)
    return closed


def interrupted(store: Store, pipeline: str, run_id: str, reason: str) -> None:
    """Record ``run_id`` (started in another process that was stopped) as interrupted."""
    for view in recent_runs(store, pipeline, 50):
        if view.run_id == run_id and view.record.get("state") == "running":
            ended = datetime.now(UTC)
            record = {
                **view.record,
                "state": "interrupted",
                "outputs": view.record.get("outputs", {}),
                "ended": ended.isoformat(timespec="milliseconds"),
                "seconds": round((ended - view.started).total_seconds(), 3),
                "error": reason,
                "hint": _hint(pipeline, view.record.get("env")),
            }
            _append(Ledger(store), pipeline, record)
            return
