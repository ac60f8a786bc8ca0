"""``.lockgate/up.json``: what a running ``lockgate up`` is doing, for ``lockgate status`` and
for the next ``up`` (one per project; endpoints a killed one left serving are taken over).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.processes import alive

if TYPE_CHECKING:
    from lockgate.config import Settings

STALE_AFTER = 30.0
"""A state file whose heartbeat is older than this belongs to an ``up`` that is gone."""


def state_path(settings: Settings) -> Path:
    """``<project>/.lockgate/up.json``: what the running ``up`` is doing."""
    return settings.root / ".lockgate" / "up.json"


def read_up_state(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def live_up(path: Path) -> dict[str, Any] | None:
    """The state of an ``up`` that runs now on this host, else None."""
    state = read_up_state(path)
    if state is None or state.get("stopped") or state.get("host") != socket.gethostname():
        return None
    try:
        beat = datetime.fromisoformat(str(state["heartbeat"]))
        pid = int(state["pid"])
    except (KeyError, ValueError, TypeError):
        return None
    if not alive(pid) or datetime.now(UTC) - beat > timedelta(seconds=STALE_AFTER):
        return None
    return state


def write_up_state(path: Path, document: dict[str, Any], stopped: bool = False) -> None:
    """Replace ``path`` atomically with ``document`` plus the heartbeat (and ``stopped``)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    document = {**document, "heartbeat": now}
    if stopped:
        document["stopped"] = now
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
    os.replace(temporary, path)
