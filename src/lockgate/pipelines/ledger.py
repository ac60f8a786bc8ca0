"""The ledger: append-only, numbered records in a store, never rewritten.

Each stream (``ledger/<kind>/<scope>/``, e.g. ``ledger/releases/prod/``) is a sequence of JSON
records named by a zero-padded number. A record is appended with put-if-absent on the next
number, so of two writers that read the same tail exactly one appends; the other gets
:class:`LedgerConflict` and, for an unconditional append, simply retries on the new tail.
That gives promotion its rule -- two promotions racing for one environment, one wins -- and
makes "what was current at time T" a read of the last record written before T.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lockgate.errors import LockgateError
from lockgate.ports.store import Store


def json_bytes(document: Any) -> bytes:
    """Canonical JSON: sorted keys, so the same content is the same bytes (and sha256)."""
    buffer = io.StringIO()
    json.dump(document, buffer, indent=2, sort_keys=True, ensure_ascii=False)
    buffer.write("\n")
    return buffer.getvalue().encode()


WIDTH = 12
RETRIES = 20


class LedgerConflict(LockgateError):
    """Another writer appended to the stream first; nothing was written."""


@dataclass(frozen=True)
class Entry:
    """One ledger record and where it sits in its stream."""

    kind: str
    scope: str
    seq: int
    recorded_at: datetime
    record: dict[str, Any]

    @property
    def key(self) -> str:
        return stream_prefix(self.kind, self.scope) + f"{self.seq:0{WIDTH}d}.json"


def stream_prefix(kind: str, scope: str) -> str:
    for part, what in ((kind, "kind"), (scope, "scope")):
        if not part or "/" in part or part.startswith("."):
            raise ValueError(f"ledger {what} '{part}' cannot be part of a key")
    return f"ledger/{kind}/{scope}/"


class Ledger:
    """Append-only streams of records in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def entries(self, kind: str, scope: str) -> list[Entry]:
        """Every record of the stream, oldest first."""
        return self.recent(kind, scope, None)

    def recent(self, kind: str, scope: str, count: int | None) -> list[Entry]:
        """The last ``count`` records of the stream (all if None), oldest first.

        Only those records are read: the listing alone says which they are.
        """
        prefix = stream_prefix(kind, scope)
        numbered = sorted(
            (int(name[:-5]), info.key)
            for name, info in ((info.key[len(prefix) :], info) for info in self.store.list(prefix))
            if name.endswith(".json") and name[:-5].isdigit()
        )
        if count is not None:
            numbered = numbered[-count:] if count > 0 else []
        found = []
        for seq, key in numbered:
            document = json.loads(self.store.get(key))
            found.append(
                Entry(
                    kind,
                    scope,
                    seq,
                    datetime.fromisoformat(document["recorded_at"]),
                    document["record"],
                )
            )
        return found

    def tail(self, kind: str, scope: str) -> int | None:
        """The last record's number, from the listing alone (no record is read)."""
        prefix = stream_prefix(kind, scope)
        numbers = [
            int(name[:-5])
            for name in (info.key[len(prefix) :] for info in self.store.list(prefix))
            if name.endswith(".json") and name[:-5].isdigit()
        ]
        return max(numbers) if numbers else None

    def latest(self, kind: str, scope: str) -> Entry | None:
        entries = self.entries(kind, scope)
        return entries[-1] if entries else None

    def at(self, kind: str, scope: str, when: datetime) -> Entry | None:
        """The last record written at or before ``when`` (what was current then)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = None
        for entry in self.entries(kind, scope):
            if entry.recorded_at <= when:
                current = entry
        return current

    def append(
        self,
        kind: str,
        scope: str,
        record: Mapping[str, Any],
        *,
        after: int | None = -1,
        now: datetime | None = None,
    ) -> Entry:
        """Append ``record`` to the stream.

        Args:
            after: the sequence number the caller read last (``None``: the stream must be
                empty). The append happens only if that is still the tail, else
                :class:`LedgerConflict`. The default ``-1`` appends after whatever the tail is.

        Raises:
            LedgerConflict: the stream moved on since ``after``, or concurrent writers kept
                winning for :data:`RETRIES` attempts.
        """
        conditional = after != -1
        for _attempt in range(RETRIES):
            tail_seq = self.tail(kind, scope)
            if conditional and tail_seq != after:
                raise LedgerConflict(
                    f"ledger/{kind}/{scope} has moved on (now at {tail_seq}, expected {after}): "
                    "another change won; look again and retry"
                )
            entry = Entry(
                kind,
                scope,
                0 if tail_seq is None else tail_seq + 1,
                now or datetime.now(UTC),
                dict(record),
            )
            document = {
                "recorded_at": entry.recorded_at.isoformat(timespec="microseconds"),
                "record": entry.record,
            }
            if self.store.put_if_absent(entry.key, json_bytes(document)):
                return entry
            if conditional:
                raise LedgerConflict(
                    f"ledger/{kind}/{scope}: another writer appended entry {entry.seq} first; "
                    "look again and retry"
                )
        raise LedgerConflict(f"ledger/{kind}/{scope}: gave up after {RETRIES} contended appends")
