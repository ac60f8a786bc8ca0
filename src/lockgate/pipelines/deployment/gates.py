"""Promotion gates: what a model version must pass to be released into an environment.

Every gate is checked (not just up to the first failure) so a refusal lists everything that is
missing at once. The evidence -- the standing decision, the champion comparison, where the
package served before -- is gathered by the promotion; checking is a pure function of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lockgate.config import GatesConfig
from lockgate.pipelines.deployment.approvals import Decision
from lockgate.pipelines.deployment.releases import Release
from lockgate.pipelines.deployment.served import ServedSummary
from lockgate.pipelines.training.metrics import METRICS


@dataclass(frozen=True)
class Candidate:
    """The model version asking to be promoted, as its package describes it."""

    model: str
    version: int
    package_sha256: str
    metrics: dict[str, float]
    metric: str
    """The metric its study optimised (the champion comparison uses it)."""
    trained_by: str | None
    data_version: str
    transformer_sha256: str


@dataclass(frozen=True)
class ChampionScore:
    """The candidate against the environment's current release, on the same test data."""

    champion_version: int
    metric: str
    champion: float
    candidate: float
    test_data: str
    """Which test data both were scored on, for the record."""


@dataclass(frozen=True)
class Evidence:
    """What the gates look at."""

    now: datetime
    decisions: list[Decision] = field(default_factory=list)
    """The decisions in force for the environment (see ``approvals.in_force``)."""
    champion: ChampionScore | None = None
    served_release: Release | None = None
    """The first release of this package in the ``served_in`` environment, if any."""
    served_hours: float = 0.0
    """How long the package has been current there, all stints together."""
    served: ServedSummary = field(default_factory=ServedSummary)


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict, as printed on refusal and kept in the release record."""

    gate: str
    passed: bool
    detail: str

    def as_record(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "detail": self.detail}


def check_gates(
    env: str, gates: GatesConfig, candidate: Candidate, evidence: Evidence
) -> list[GateResult]:
    """Every gate of ``env`` for ``candidate``; a rejection in force always fails."""
    results = [_not_rejected(env, evidence.decisions)]
    if gates.approval or gates.approver_not_trainer:
        results.append(_approval(env, candidate, evidence.decisions))
    if gates.approver_not_trainer:
        results.append(_four_eyes(candidate, evidence.decisions))
    for metric, floor in sorted(gates.min_metrics.items()):
        results.append(_threshold(candidate, metric, floor, at_least=True))
    for metric, ceiling in sorted(gates.max_metrics.items()):
        results.append(_threshold(candidate, metric, ceiling, at_least=False))
    if gates.max_regression is not None:
        results.append(_champion(env, gates.max_regression, evidence.champion))
    if gates.served_in:
        results.append(_served(gates, evidence))
    return results


def _not_rejected(env: str, decisions: list[Decision]) -> GateResult:
    rejections = [decision for decision in decisions if decision.verdict == "rejected"]
    if rejections:
        decision = rejections[-1]
        scope = f"for {decision.env}" if decision.env else "for every environment"
        note = f": {decision.note}" if decision.note else ""
        return GateResult(
            "not rejected",
            False,
            f"rejected {scope} by {decision.by}{note}; approve it again to lift that",
        )
    return GateResult("not rejected", True, f"no rejection in force for {env}")


def _approvals(decisions: list[Decision]) -> list[Decision]:
    return [decision for decision in decisions if decision.verdict == "approved"]


def _approval(env: str, candidate: Candidate, decisions: list[Decision]) -> GateResult:
    approvals = _approvals(decisions)
    if approvals:
        names = ", ".join(sorted({decision.by for decision in approvals}))
        return GateResult("approval", True, f"approved for {env} by {names}")
    return GateResult(
        "approval",
        False,
        f"needs an approval for {env}: lockgate approve {candidate.model} {candidate.version} "
        f"--env {env} --by NAME",
    )


def _four_eyes(candidate: Candidate, decisions: list[Decision]) -> GateResult:
    gate = "approver is not the trainer"
    approvals = _approvals(decisions)
    if not approvals:
        return GateResult(gate, False, "no approval to check")
    if not candidate.trained_by:
        return GateResult(
            gate, False, "the package does not say who trained it, so four eyes cannot be shown"
        )
    others = sorted({d.by for d in approvals if d.by != candidate.trained_by})
    if not others:
        return GateResult(
            gate,
            False,
            f"approved by {candidate.trained_by}, who trained it; someone else must approve",
        )
    return GateResult(
        gate, True, f"approved by {', '.join(others)}, trained by {candidate.trained_by}"
    )


def _threshold(candidate: Candidate, metric: str, bound: float, *, at_least: bool) -> GateResult:
    gate = f"{metric} {'>=' if at_least else '<='} {bound:g}"
    value = candidate.metrics.get(metric)
    if value is None:
        have = ", ".join(sorted(candidate.metrics)) or "none"
        return GateResult(gate, False, f"the package has no test {metric} (it has: {have})")
    passed = value >= bound if at_least else value <= bound
    return GateResult(gate, passed, f"test {metric} is {value:.4f}")


def _champion(env: str, allowed: float, score: ChampionScore | None) -> GateResult:
    gate = f"not worse than the {env} champion by more than {allowed:g}"
    if score is None:
        return GateResult(gate, True, f"{env} has no release yet")
    if math.isnan(score.champion) or math.isnan(score.candidate):
        missing = f"version {score.champion_version}" if math.isnan(score.champion) else "it"
        return GateResult(
            gate, False, f"{missing} has no test {score.metric} to compare on {score.test_data}"
        )
    direction = METRICS[score.metric].direction if score.metric in METRICS else "maximize"
    worse_by = (
        score.champion - score.candidate
        if direction == "maximize"
        else score.candidate - score.champion
    )
    detail = (
        f"{score.metric} {score.candidate:.4f} vs version {score.champion_version}'s "
        f"{score.champion:.4f} on {score.test_data}"
    )
    return GateResult(gate, worse_by <= allowed, detail)


def _served(gates: GatesConfig, evidence: Evidence) -> GateResult:
    where = gates.served_in
    gate = f"served in {where}"
    release = evidence.served_release
    if release is None:
        return GateResult(
            gate, False, f"this package was never released to {where}; promote it there first"
        )
    hours = evidence.served_hours
    served = evidence.served
    problems = []
    if hours < gates.min_served_hours:
        problems.append(f"{hours:.1f} h of the {gates.min_served_hours:g} h required")
    if served.requests < gates.min_served_requests:
        problems.append(f"{served.requests} of the {gates.min_served_requests} requests required")
    if served.errors:
        problems.append(f"{served.errors} server error(s)")
    detail = (
        f"current in {where} for {hours:.1f} h since release #{release.seq}, "
        f"{served.requests} request(s) answered, {served.errors} server error(s)"
    )
    if problems:
        return GateResult(gate, False, f"{detail}: " + "; ".join(problems))
    return GateResult(gate, True, detail)
