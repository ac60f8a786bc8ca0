"""How much a package has served in an environment, from the endpoint's serving records.

A running endpoint appends to ``ledger/serving/<env>/`` in its environment's store, every
minute, at a hot swap (for the package swapped out) and at shutdown, a record with these keys:

``server_id``        one id per server process
``endpoint``         the endpoint's name
``package_sha256``   the package served
``model``, ``version``, ``release_seq``
``requests``         requests received for that package since the server loaded it (cumulative)
``errors``           of those, answered with a server error (5xx)
``rejected``         of those, refused as the client's mistake (4xx)
``since``, ``until`` ISO times: when the server loaded the package, when the record was written

Counts are cumulative per (server, package), so the last record of each pair is its total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lockgate.pipelines.ledger import Ledger

SERVING = "serving"


@dataclass(frozen=True)
class ServedSummary:
    """What the endpoints of one environment report for one package."""

    requests: int = 0
    """Requests answered with predictions (2xx)."""
    errors: int = 0
    """Requests answered with a server error (5xx)."""
    first_seen: datetime | None = None
    last_seen: datetime | None = None


def served(ledger: Ledger, env: str, package_sha256: str) -> ServedSummary:
    """The totals over every server process of ``env`` for ``package_sha256``."""
    last: dict[str, dict[str, object]] = {}
    for entry in ledger.entries(SERVING, env):
        record = entry.record
        if record.get("package_sha256") != package_sha256:
            continue
        last[str(record.get("server_id"))] = record
    if not last:
        return ServedSummary()
    since = [_time(record.get("since")) for record in last.values()]
    until = [_time(record.get("until")) for record in last.values()]
    return ServedSummary(
        requests=sum(
            max(
                _count(record.get("requests"))
                - _count(record.get("errors"))
                - _count(record.get("rejected")),
                0,
            )
            for record in last.values()
        ),
        errors=sum(_count(record.get("errors")) for record in last.values()),
        first_seen=min((t for t in since if t is not None), default=None),
        last_seen=max((t for t in until if t is not None), default=None),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
