"""Promotion and rollback: release a model package into an environment, behind its gates.

A promotion, in order (each step safe to repeat, the ledger append the only commitment):

1. read the package from the home environment's store (``models/<model>/<version>/``), verified;
2. read the target's release stream once -- its tail is what step 5 will be conditional on;
3. check every gate (on the evidence of :mod:`~lockgate.pipelines.deployment.evidence`); a
   failure refuses with one line per failing gate and changes nothing;
4. copy the package, byte for byte, into the target's store and verify its sha256 there
   (:mod:`~lockgate.pipelines.deployment.copying`); register it in the target's registry when
   that is not the home registry;
5. append the release record to ``ledger/releases/<env>/`` *after the tail read in step 2*: of
   two promotions racing for one environment exactly one lands, the other is refused;
6. point the registry alias ``<env>`` at it and hot-swap the environment's endpoint
   (:mod:`~lockgate.pipelines.deployment.live`); if the new package fails there, the old one
   keeps serving, a ``failed`` record marks the release as never served, the alias goes back,
   and ``PromotionFailed`` is raised.

The copied package of a refused racer stays in the target store (and, with a registry of its
own, its registered version there): it is immutable and complete (verified), so it is not half
of anything, and the next promotion of it reuses both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate.config import GatesConfig
from lockgate.errors import LockgateError, ObjectNotFound
from lockgate.pipelines.deployment.approvals import decisions, in_force
from lockgate.pipelines.deployment.copying import local_copy, publish_baseline, publish_package
from lockgate.pipelines.deployment.evidence import (
    champion_score,
    loads_and_predicts,
    read_candidate,
    with_served_in,
)
from lockgate.pipelines.deployment.gates import Evidence, GateResult, check_gates
from lockgate.pipelines.deployment.live import go_live, resync
from lockgate.pipelines.deployment.releases import RELEASES, Release, read_history
from lockgate.pipelines.ledger import Ledger, LedgerConflict
from lockgate.pipelines.runs import Trigger, recorded_run
from lockgate.pipelines.training.package import package_prefix, package_sha256
from lockgate.ports.endpoint import Deployment, Endpoint
from lockgate.ports.store import Store
from lockgate.ports.tracking import Registry

Say = Callable[[str], None]


class GatesRefused(LockgateError):
    """A gate failed; nothing was copied, recorded or deployed."""

    def __init__(self, env: str, model: str, version: int, results: list[GateResult]) -> None:
        self.results = results
        lines = [f"{model} version {version} cannot be promoted to {env}:"]
        lines += [f"  - {result.gate}: {result.detail}" for result in results if not result.passed]
        super().__init__("\n".join(lines))


class PromotionConflict(LockgateError):
    """Another release of the environment landed while this one was being prepared."""


@dataclass
class Environment:
    """One environment, with the adapters promotion needs."""

    name: str
    store: Store
    registry: Registry
    registry_uri: str
    """Identifies the registry: a package is registered again only in a different one."""
    work_dir: Path
    """A local folder for verified package copies (what a local endpoint loads)."""
    gates: GatesConfig = field(default_factory=GatesConfig)
    endpoint: Endpoint | None = None
    endpoint_name: str = ""
    image_digests: Mapping[str, str] = field(default_factory=dict)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.store)


@dataclass(frozen=True)
class Outcome:
    """What a promotion or rollback did."""

    release: Release | None
    """The new release; None when the package already served there (nothing to do)."""
    gates: list[GateResult]
    deployment: Deployment | None
    copied: bool = False
    current: Release | None = None
    """What serves in the environment now."""


def promote(
    home: Environment,
    target: Environment,
    model: str,
    version: int,
    *,
    by: str,
    note: str = "",
    environments: Mapping[str, Environment] | None = None,
    now: datetime | None = None,
    say: Say = lambda _message: None,
    trigger: Trigger | None = None,
) -> Outcome:
    """Release ``model`` version ``version`` (registered in ``home``) into ``target``.

    It is one ``deployment`` run recorded in ``target``'s store; a refusal is a failed run
    naming the gates that failed.

    Args:
        environments: every configured environment by name, for the ``served_in`` gate.
        trigger: what started it (default: ``by``'s command).

    Raises:
        lockgate.errors.ObjectNotFound: the home store has no such package.
        GatesRefused: a gate failed (nothing changed but the run record).
        PromotionConflict: another release of ``target`` landed first (nothing released).
        PromotionFailed: the endpoint could not serve the new package; the old one serves.
    """
    inputs = {"action": "promote", "model": model, "version": version, "from_env": home.name}
    return _recorded(
        target,
        inputs,
        trigger or Trigger.command(by),
        lambda: _promote(home, target, model, version, by, note, environments, now, say),
    )


def _promote(
    home: Environment,
    target: Environment,
    model: str,
    version: int,
    by: str,
    note: str,
    environments: Mapping[str, Environment] | None,
    now: datetime | None,
    say: Say,
) -> Outcome:
    now = now or datetime.now(UTC)
    prefix = package_prefix(model, version)
    try:
        local = local_copy(home.store, prefix, target.work_dir)
    except ObjectNotFound:
        raise LockgateError(
            f"no {model} version {version} in {home.name} ({home.store.uri}); see `lockgate models`"
        ) from None
    say(f"read {model} version {version} from {home.name}, every file verified")
    candidate, info = read_candidate(model, version, local)
    digest = candidate.package_sha256
    history = read_history(target.ledger, target.name)
    current = history.current()
    if current is not None and current.package_sha256 == digest:
        say(f"{model} version {version} already serves in {target.name} (release #{current.seq})")
        return Outcome(None, [], resync(target, current, local, say), current=current)
    found = decisions(home.ledger, model, version)
    evidence = Evidence(
        now=now,
        decisions=in_force(found, target.name, digest),
        champion=champion_score(
            home.store,
            target.store,
            target.work_dir,
            current,
            local,
            candidate,
            str(info["dataset"]),
        )
        if target.gates.max_regression is not None
        else None,
    )
    if target.gates.served_in:
        before = _environment(environments, target.gates.served_in)
        evidence = with_served_in(evidence, before.ledger, before.name, digest)
    say(f"checking the gates of {target.name}")
    results = [
        *check_gates(target.name, target.gates, candidate, evidence),
        loads_and_predicts(local),
    ]
    if not all(result.passed for result in results):
        raise GatesRefused(target.name, model, version, results)
    copied = publish_package(home.store, target.store, target.name, local, prefix, say)
    publish_baseline(
        home.store, home.name, target.store, str(info.get("dataset")), candidate.data_version, say
    )
    registry_version = _register(home, target, model, version, prefix, digest, say)
    record = {
        "action": "promote",
        "model": model,
        "version": version,
        "registry_version": registry_version,
        "package_sha256": digest,
        "package_prefix": prefix,
        "package_uri": target.store.uri.rstrip("/") + "/" + prefix,
        "dataset": info.get("dataset"),
        "data_version": candidate.data_version,
        "transformer_sha256": candidate.transformer_sha256,
        "family": info.get("family"),
        "metric": candidate.metric,
        "metrics": candidate.metrics,
        "image_digests": dict(target.image_digests),
        "git_commit": info.get("extra", {}).get("git_commit"),
        "trained_by": candidate.trained_by,
        "approvals": [decision.as_record() for decision in evidence.decisions],
        "gates": [result.as_record() for result in results],
        "by": by,
        "note": note,
        "from_env": home.name,
        "previous": current.seq if current else None,
        "endpoint": target.endpoint_name,
    }
    release = _append(target, history.tail, record, now=now)
    say(f"recorded release #{release.seq} of {target.name}")
    deployment = go_live(target, release, local, say)
    return Outcome(release, results, deployment, copied, current=release)


def rollback(
    target: Environment,
    *,
    by: str,
    note: str = "",
    home: Environment | None = None,
    now: datetime | None = None,
    say: Say = lambda _message: None,
    trigger: Trigger | None = None,
) -> Outcome:
    """Release again the package that served before the current one.

    No gate is checked (it is the way back to what passed them), except that a version
    rejected since, for this environment, is refused when ``home``'s ledger is given. It is
    one ``deployment`` run recorded in ``target``'s store.

    Args:
        trigger: what started it (default: ``by``'s command).

    Raises:
        LockgateError: there is nothing to roll back to, or that version was rejected.
        PromotionConflict: another release of ``target`` landed meanwhile.
        PromotionFailed: the endpoint could not serve the older package.
    """
    return _recorded(
        target,
        {"action": "rollback", "from_env": target.name},
        trigger or Trigger.command(by),
        lambda: _rollback(target, by, note, home, now, say),
    )


def _rollback(
    target: Environment,
    by: str,
    note: str,
    home: Environment | None,
    now: datetime | None,
    say: Say,
) -> Outcome:
    history = read_history(target.ledger, target.name)
    current = history.current()
    previous = history.previous()
    if current is None or previous is None:
        raise LockgateError(
            f"{target.name} has no earlier release to roll back to"
            + (f" (current: {current.model} version {current.version})" if current else "")
        )
    say(
        f"rolling {target.name} back from {current.model} version {current.version} to "
        f"version {previous.version} (release #{previous.seq})"
    )
    if home is not None:
        found = in_force(
            decisions(home.ledger, previous.model, previous.version),
            target.name,
            previous.package_sha256,
        )
        rejected = [decision for decision in found if decision.verdict == "rejected"]
        if rejected:
            raise LockgateError(
                f"{previous.model} version {previous.version} (release #{previous.seq}) was "
                f"rejected by {rejected[-1].by} since; promote another version instead"
            )
    local = local_copy(target.store, previous.package_prefix, target.work_dir)
    if package_sha256(local) != previous.package_sha256:
        raise LockgateError(
            f"{previous.package_prefix} in {target.name} no longer matches release "
            f"#{previous.seq}; refusing to roll back to different bytes"
        )
    record = dict(previous.record)
    record.update(
        {
            "action": "rollback",
            "by": by,
            "note": note,
            "previous": current.seq,
            "rolled_back_to": previous.seq,
            # Nothing was checked now; the release rolled back to holds what it passed.
            "approvals": [],
            "gates": [],
        }
    )
    release = _append(target, history.tail, record, now=now)
    say(f"recorded release #{release.seq} of {target.name}")
    deployment = go_live(target, release, local, say)
    return Outcome(release, [], deployment, current=release)


def _recorded(
    target: Environment, inputs: dict[str, Any], trigger: Trigger, work: Callable[[], Outcome]
) -> Outcome:
    """``work`` as one deployment run of ``target``, recorded in its store."""
    with recorded_run(target.store, "deployment", trigger, inputs, env=target.name) as run:
        try:
            outcome = work()
        except GatesRefused as refused:
            failed = [result for result in refused.results if not result.passed]
            run.fail(
                f"refused by the gates of {target.name}: "
                + ", ".join(result.gate for result in failed),
                "; ".join(f"{result.gate}: {result.detail}" for result in failed)
                + "; then promote it again",
            )
            refusal = refused
        else:
            release = outcome.release or outcome.current
            if release is not None:
                run.inputs.setdefault("model", release.model)
                run.inputs.setdefault("version", release.version)
            run.outputs = _outputs(outcome)
            return outcome
    # Raised once the run is recorded failed: its error names the gates, its hint the fixes.
    raise refusal


def _outputs(outcome: Outcome) -> dict[str, Any]:
    release = outcome.release
    if release is None:
        state = "already_serving"
        release = outcome.current
    else:
        state = "rolled_back" if release.action == "rollback" else "released"
    return {
        "release_seq": release.seq if release is not None else None,
        "state": state,
        "endpoint": outcome.deployment.state if outcome.deployment is not None else None,
    }


def _append(
    target: Environment, tail: int | None, record: dict[str, Any], now: datetime | None = None
) -> Release:
    try:
        entry = target.ledger.append(RELEASES, target.name, record, after=tail, now=now)
    except LedgerConflict:
        latest = read_history(target.ledger, target.name).current()
        landed = (
            f" (release #{latest.seq}: {latest.model} version {latest.version} by {latest.by})"
            if latest
            else ""
        )
        raise PromotionConflict(
            f"another release of {target.name} landed while this one was prepared{landed}; "
            "nothing was released: look at `lockgate history` and run the command again"
        ) from None
    return Release(target.name, entry.seq, entry.recorded_at, entry.record)


def _register(
    home: Environment,
    target: Environment,
    model: str,
    version: int,
    prefix: str,
    digest: str,
    say: Say,
) -> int:
    if target.registry_uri == home.registry_uri:
        return version
    registered = target.registry.register(
        model,
        target.store.uri.rstrip("/") + "/" + prefix,
        None,
        {
            "lockgate.package_sha256": digest,
            "lockgate.home_env": home.name,
            "lockgate.home_version": str(version),
        },
    )
    say(f"registered as {model} version {registered} in {target.name}'s registry")
    return registered


def _environment(environments: Mapping[str, Environment] | None, name: str) -> Environment:
    if not environments or name not in environments:
        raise LockgateError(
            f"the gate 'served_in = {name}' names an environment that is not configured"
        )
    return environments[name]
