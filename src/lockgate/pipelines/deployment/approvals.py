"""Approvals and rejections of a model version, kept in the home environment's ledger.

A decision is a record in ``ledger/approvals/<model>.v<version>/``: who decided, for which
environment (or for all, a rejection without ``--env``), why, and the package it was about.
Decisions are never edited: a rejection is lifted by a later approval, and every record stays
on file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from lockgate.errors import LockgateError
from lockgate.pipelines.ledger import Entry, Ledger

APPROVALS = "approvals"
Verdict = Literal["approved", "rejected"]


@dataclass(frozen=True)
class Decision:
    """One approval or rejection."""

    model: str
    version: int
    verdict: Verdict
    env: str | None
    """The environment it is for; None: every environment (a rejection without ``--env``)."""
    by: str
    note: str
    package_sha256: str
    at: datetime
    seq: int = -1

    def applies_to(self, env: str) -> bool:
        return self.env is None or self.env == env

    def as_record(self) -> dict[str, Any]:
        """The decision as it is copied into a release record."""
        return {
            "verdict": self.verdict,
            "env": self.env,
            "by": self.by,
            "note": self.note,
            "package_sha256": self.package_sha256,
            "at": self.at.isoformat(timespec="seconds"),
        }


def approvals_scope(model: str, version: int) -> str:
    return f"{model}.v{int(version)}"


def record_decision(
    ledger: Ledger,
    model: str,
    version: int,
    verdict: Verdict,
    *,
    env: str | None,
    by: str,
    note: str,
    package_sha256: str,
    now: datetime | None = None,
) -> Decision:
    """Append an approval or rejection of ``model`` version ``version``.

    Raises:
        LockgateError: ``by`` is empty (a decision without a name is worth nothing on audit).
    """
    if not by.strip():
        raise LockgateError("say who decides: --by NAME (or set LOCKGATE_USER)")
    entry = ledger.append(
        APPROVALS,
        approvals_scope(model, version),
        {
            "model": model,
            "version": int(version),
            "verdict": verdict,
            "env": env,
            "by": by.strip(),
            "note": note,
            "package_sha256": package_sha256,
        },
        now=now,
    )
    return _decision(entry)


def decisions(ledger: Ledger, model: str, version: int) -> list[Decision]:
    """Every decision about ``model`` version ``version``, oldest first."""
    return [
        _decision(entry) for entry in ledger.entries(APPROVALS, approvals_scope(model, version))
    ]


def in_force(found: list[Decision], env: str, package_sha256: str) -> list[Decision]:
    """The decisions in force for ``env``: those that apply to it and are about this very
    package (an approval of other bytes under the same version number does not count), after
    the last rejection; a rejection that is the latest decision is in force alone."""
    relevant = [d for d in found if d.applies_to(env) and d.package_sha256 == package_sha256]
    for index in range(len(relevant) - 1, -1, -1):
        if relevant[index].verdict == "rejected":
            return relevant[index:] if index == len(relevant) - 1 else relevant[index + 1 :]
    return relevant


def _decision(entry: Entry) -> Decision:
    record = entry.record
    return Decision(
        model=str(record["model"]),
        version=int(record["version"]),
        verdict=record["verdict"],
        env=record.get("env"),
        by=str(record["by"]),
        note=str(record.get("note") or ""),
        package_sha256=str(record["package_sha256"]),
        at=entry.recorded_at,
        seq=entry.seq,
    )
