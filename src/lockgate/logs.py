"""lockgate's structured logs: one JSON object per line, one schema for every pipeline.

Every record has the keys of :data:`SCHEMA`::

    {"time": "2026-11-26T12:40:32.123456+00:00", "level": "info", "env": "dev",
     "pipeline": "data", "run_id": "data-20261126T124032Z-1a2b3c", "event": "version.committed",
     "message": "committed churn dv-...", "fields": {"rows": 20000}, "logger": "lockgate.data",
     "pid": 4242}

Locally they go to daily files ``<env dir>/logs/lockgate-YYYY-MM-DD.jsonl`` (UTC), which every
lockgate process of the environment appends to (``up``, the endpoints, the commands); on AWS
they go to stdout, where CloudWatch Logs picks each line up as one JSON event. The terminal
shows the same records as readable lines.

A record's pipeline and run id come from :func:`log_context`, set by the run that is going on
(see :mod:`lockgate.pipelines.runs`); its event and fields from :func:`event`'s arguments or
``extra={"event": ..., "fields": {...}}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

ROOT = "lockgate"
"""The logger every lockgate module logs under (``lockgate.data``, ``lockgate.runtime``...)."""

SCHEMA = ("time", "level", "env", "pipeline", "run_id", "event", "message", "fields")
"""The keys every line has (plus ``logger`` and ``pid``), in the order they are written."""

PIPELINES = ("data", "training", "deployment", "monitoring", "runtime")
"""The values of ``pipeline``: the four pipelines, and ``runtime`` for ``lockgate up`` itself."""

FILE_PREFIX = "lockgate-"
FILE_SUFFIX = ".jsonl"

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}

_context: ContextVar[Mapping[str, str | None] | None] = ContextVar(
    "lockgate_log_context", default=None
)
_process_defaults: dict[str, str | None] = {"env": None, "pipeline": None}


@contextlib.contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """Within the block, records carry these ``pipeline``/``run_id``/``env`` values.

    Context variables are per thread (and per asyncio task): a job's thread sets its own.
    """
    token = _context.set({**(_context.get() or {}), **values})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str | None]:
    """The process defaults overlaid with the block's :func:`log_context`."""
    return {**_process_defaults, **(_context.get() or {})}


def event(logger: logging.Logger, level: int, name: str, message: str, /, **fields: Any) -> None:
    """Log ``message`` as event ``name`` with structured ``fields``.

    The first four parameters are positional-only, so a field may be called ``name``,
    ``message``, ``level`` or ``logger`` (a model's name, say) without a TypeError.
    """
    logger.log(level, message, extra={"event": name, "fields": fields})


def to_record(record: logging.LogRecord) -> dict[str, Any]:
    """The JSON document of one log record, in :data:`SCHEMA` order."""
    context = current_context()
    fields = getattr(record, "fields", None)
    document: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
        "level": record.levelname.lower(),
        "env": getattr(record, "env", None) or context.get("env"),
        "pipeline": getattr(record, "pipeline", None) or context.get("pipeline"),
        "run_id": getattr(record, "run_id", None) or context.get("run_id"),
        "event": getattr(record, "event", None) or "log",
        "message": record.getMessage(),
        "fields": dict(fields) if isinstance(fields, Mapping) else {},
        "logger": record.name,
        "pid": record.process,
    }
    if record.exc_info and record.exc_info[1] is not None:
        failure = record.exc_info[1]
        document["fields"]["exception"] = f"{type(failure).__name__}: {failure}"
    return document


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of :data:`SCHEMA` JSON."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(to_record(record), default=str, ensure_ascii=False)


class DailyJsonFiles(logging.Handler):
    """Appends each record to ``<folder>/lockgate-<UTC date>.jsonl``.

    Each line is one ``write`` on a file opened with ``O_APPEND``, so the processes of one
    environment can share the files without interleaving lines, and a day's file starts
    without any rotation step. Files older than ``retention_days`` are deleted when the
    handler is created.
    """

    def __init__(self, folder: Path, retention_days: int = 14, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.setFormatter(JsonFormatter())
        prune(folder, retention_days)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8")
            day = datetime.fromtimestamp(record.created, UTC).date()
            path = self.folder / f"{FILE_PREFIX}{day.isoformat()}{FILE_SUFFIX}"
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line)
            finally:
                os.close(descriptor)
        except Exception:  # logging must never take the pipeline down
            self.handleError(record)


class TerminalFormatter(logging.Formatter):
    """``12:40:32 warning data [run] message key=value`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        document = to_record(record)
        return human_line(document)


def human_line(document: Mapping[str, Any], *, show_env: bool = False) -> str:
    """One readable line for a :data:`SCHEMA` document (the terminal, ``lockgate logs``).

    Times are UTC. ``show_env`` puts the record's environment after the level, for output
    that mixes environments.
    """
    time = str(document.get("time", ""))[:19].replace("T", " ")
    where = document.get("pipeline") or document.get("logger") or "-"
    env = f" {document.get('env') or '-'}" if show_env else ""
    run = f" [{document['run_id']}]" if document.get("run_id") else ""
    fields = document.get("fields")
    pairs = fields.items() if isinstance(fields, Mapping) else ()
    extra = "".join(f" {key}={value}" for key, value in pairs)
    level = str(document.get("level") or "?")
    return f"{time} {level:<7}{env} {where}{run} {document.get('message', '')}{extra}"


def log_folder(env_dir: Path) -> Path:
    """The environment's log folder: ``<env dir>/logs``."""
    return env_dir / "logs"


def log_files(folder: Path, since: date | None = None) -> list[Path]:
    """The daily files in ``folder``, oldest first, from ``since``'s day on."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"):
        day = _file_day(path)
        if day is not None and (since is None or day >= since):
            found.append((day, path))
    return [path for _, path in sorted(found)]


def prune(folder: Path, retention_days: int, today: date | None = None) -> list[Path]:
    """Delete the daily files older than ``retention_days``; the ones deleted."""
    cutoff = (today or datetime.now(UTC).date()) - timedelta(days=retention_days)
    removed = []
    for path in log_files(folder):
        day = _file_day(path)
        if day is not None and day < cutoff:
            with contextlib.suppress(OSError):  # another process pruned it first
                path.unlink()
                removed.append(path)
    return removed


def _file_day(path: Path) -> date | None:
    stem = path.name[len(FILE_PREFIX) : -len(FILE_SUFFIX)]
    try:
        return date.fromisoformat(stem)
    except ValueError:
        return None


_OURS = "_lockgate_handler"


def configure(
    *,
    folder: Path | None = None,
    file_level: str = "info",
    terminal_level: int | None = logging.ERROR,
    retention_days: int = 14,
    json_stream: TextIO | None = None,
    env: str | None = None,
    pipeline: str | None = None,
) -> None:
    """Route the ``lockgate`` loggers: JSON lines to ``folder`` (and/or ``json_stream``, e.g.
    stdout on AWS), readable lines to stderr at ``terminal_level`` (None: not at all).

    Calling it again replaces the handlers it installed before; other handlers are left alone.

    Args:
        env, pipeline: the process's defaults for records logged outside any
            :func:`log_context` (an endpoint process is ``deployment`` all its life).
    """
    _process_defaults.update(env=env, pipeline=pipeline)
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        if getattr(handler, _OURS, False):
            logger.removeHandler(handler)
            handler.close()
    levels = []
    if folder is not None:
        files = DailyJsonFiles(folder, retention_days, LEVELS[file_level])
        setattr(files, _OURS, True)
        logger.addHandler(files)
        levels.append(files.level)
    if json_stream is not None:
        stream = logging.StreamHandler(json_stream)
        stream.setFormatter(JsonFormatter())
        stream.setLevel(LEVELS[file_level])
        setattr(stream, _OURS, True)
        logger.addHandler(stream)
        levels.append(stream.level)
    if terminal_level is not None:
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setFormatter(TerminalFormatter())
        terminal.setLevel(terminal_level)
        setattr(terminal, _OURS, True)
        logger.addHandler(terminal)
        levels.append(terminal_level)
    logger.setLevel(min(levels) if levels else logging.WARNING)
    logger.propagate = False


def read_lines(folder: Path, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The records in ``folder``'s daily files at or after ``since``, oldest file first.

    A line that is not a JSON object (a file cut short by a crash) is skipped.
    """
    cutoff = since.astimezone(UTC).isoformat(timespec="microseconds") if since else None
    for path in log_files(folder, since.astimezone(UTC).date() if since else None):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    document = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(document, dict):
                    continue
                if cutoff is not None and str(document.get("time", "")) < cutoff:
                    continue
                yield document
