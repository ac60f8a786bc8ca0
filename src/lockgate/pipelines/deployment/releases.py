"""The release stream of an environment: what serves there, and what served there when.

``ledger/releases/<env>/`` in the environment's own store holds, append-only:

* ``promote`` and ``rollback`` records -- a release: the package (sha256, data version,
  transformer sha256, metrics), the approvals and gate results it passed, who released it;
* ``failed`` records -- release ``release_seq`` never served (its package failed to load or
  to answer on the endpoint, which kept the previous release).

The current release is the last promote/rollback record not marked failed. A rollback is a new
release of an older package; nothing is ever deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lockgate.pipelines.ledger import Entry, Ledger

RELEASES = "releases"
RELEASE_ACTIONS = ("promote", "rollback")


@dataclass(frozen=True)
class Release:
    """One release of an environment, as recorded."""

    env: str
    seq: int
    released_at: datetime
    record: dict[str, Any]
    failed: str | None = None
    """Why it never served, or None."""

    @property
    def action(self) -> str:
        return str(self.record["action"])

    @property
    def model(self) -> str:
        return str(self.record["model"])

    @property
    def version(self) -> int:
        return int(self.record["version"])

    @property
    def package_sha256(self) -> str:
        return str(self.record["package_sha256"])

    @property
    def package_prefix(self) -> str:
        return str(self.record["package_prefix"])

    @property
    def by(self) -> str:
        return str(self.record.get("by") or "")


@dataclass(frozen=True)
class ReleaseHistory:
    """Every record of an environment's release stream, read once."""

    env: str
    entries: list[Entry]

    @property
    def tail(self) -> int | None:
        """The last record's number (what a conditional append must name)."""
        return self.entries[-1].seq if self.entries else None

    def releases(self) -> list[Release]:
        """Every release, oldest first, each with ``failed`` set if it never served."""
        failed: dict[int, str] = {}
        for entry in self.entries:
            if entry.record.get("action") == "failed":
                failed[int(entry.record["release_seq"])] = str(entry.record.get("error") or "")
        return [
            Release(self.env, entry.seq, entry.recorded_at, entry.record, failed.get(entry.seq))
            for entry in self.entries
            if entry.record.get("action") in RELEASE_ACTIONS
        ]

    def served(self) -> list[Release]:
        """The releases that served, oldest first (failed ones left out)."""
        return [release for release in self.releases() if release.failed is None]

    def current(self) -> Release | None:
        """What serves now: the latest release that did not fail."""
        served = self.served()
        return served[-1] if served else None

    def previous(self) -> Release | None:
        """What a rollback goes back to: what served before the current package took over.

        A rollback record points at the release it re-released, so rolling back twice goes
        two steps back, not back and forth.
        """
        current = self.current()
        if current is None:
            return None
        by_seq = {release.seq: release for release in self.releases()}
        node: Release | None = current
        for _step in range(len(by_seq)):
            assert node is not None  # noqa: S101 - the loop returns before it can be None
            origin = by_seq.get(_int(node.record.get("rolled_back_to")), node)
            before = by_seq.get(_int(origin.record.get("previous")))
            if before is None:
                return None
            if before.failed is None and before.package_sha256 != current.package_sha256:
                return before
            node = before
        return None

    def hours_current(self, package_sha256: str, now: datetime) -> float:
        """How long ``package_sha256`` has been the current release here, in hours, all
        stints together (a release that was replaced stops counting when it was)."""
        served = self.served()
        total = 0.0
        for index, release in enumerate(served):
            if release.package_sha256 != package_sha256:
                continue
            end = served[index + 1].released_at if index + 1 < len(served) else now
            total += max((end - release.released_at).total_seconds(), 0.0)
        return total / 3600

    def at(self, when: datetime) -> Release | None:
        """What served at ``when``: the latest successful release recorded by then."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        found = None
        for release in self.served():
            if release.released_at <= when:
                found = release
        return found

    def first_served(self, package_sha256: str) -> Release | None:
        """The first successful release of ``package_sha256`` here, if any."""
        for release in self.served():
            if release.package_sha256 == package_sha256:
                return release
        return None


def read_history(ledger: Ledger, env: str) -> ReleaseHistory:
    """The release stream of ``env`` in ``ledger`` (its own store's ledger)."""
    return ReleaseHistory(env, ledger.entries(RELEASES, env))


def _int(value: object) -> int:
    """A record's release number, or -1 (no release has it) when absent or malformed."""
    return value if isinstance(value, int) else -1
