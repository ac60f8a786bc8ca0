"""Promotion and rollback: release a model package into an environment, behind its gates.

A promotion, in order (each step safe to repeat, the ledger append the only commitment):

1. read the package from the home environment's store (``models/<model>/<version>/``), verified;
2. read the target's release stream once -- its tail is what step 5 will be conditional on;
3. check every gate; a failure refuses with one line per failing gate and changes nothing;
4. copy the package, byte for byte, into the target's store and verify its sha256 there;
   register it in the target's registry when that is not the home registry;
5. append the release record to ``ledger/releases/<env>/`` *after the tail read in step 2*: of
   two promotions racing for one environment exactly one lands, the other is refused;
6. point the registry alias ``<env>`` at it and hot-swap the environment's endpoint; if the new
   package fails there, the old one keeps serving, a ``failed`` record marks the release as
   never served, the alias goes back, and :class:`PromotionFailed` is raised.

The copied package of a refused racer stays in the target store (and, with a registry of its
own, its registered version there): it is immutable and complete (verified), so it is not half
of anything, and the next promotion of it reuses both.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lockgate.config import GatesConfig
from lockgate.errors import LockgateError, ObjectNotFound
from lockgate.pipelines.data.versions import load_split, read_manifest, read_verified
from lockgate.pipelines.deployment.approvals import decisions, in_force
from lockgate.pipelines.deployment.gates import (
    Candidate,
    ChampionScore,
    Evidence,
    GateResult,
    check_gates,
)
from lockgate.pipelines.deployment.releases import RELEASES, Release, read_history
from lockgate.pipelines.deployment.served import served
from lockgate.pipelines.ledger import Ledger, LedgerConflict
from lockgate.pipelines.runs import Trigger, recorded_run
from lockgate.pipelines.training.families import predict_output
from lockgate.pipelines.training.metrics import default_metric, score
from lockgate.pipelines.training.package import (
    load_package,
    package_prefix,
    package_sha256,
    read_package_from_store,
    verify_package,
    write_package_to_store,
)
from lockgate.ports.endpoint import Deployment, DeployRequest, Endpoint
from lockgate.ports.store import Store
from lockgate.ports.tracking import Registry, TrackingError

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


class PromotionFailed(LockgateError):
    """The release was recorded but its package failed on the endpoint; it is marked failed."""


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
    info = verify_package(local)
    digest = package_sha256(local)
    candidate = Candidate(
        model=model,
        version=version,
        package_sha256=digest,
        metrics={key: float(value) for key, value in info.get("metrics", {}).items()},
        metric=str(info.get("extra", {}).get("metric") or default_metric(str(info["task"]))),
        trained_by=info.get("extra", {}).get("trained_by"),
        data_version=str(info["data_version"]),
        transformer_sha256=str(info["transformer_sha256"]),
    )
    history = read_history(target.ledger, target.name)
    current = history.current()
    if current is not None and current.package_sha256 == digest:
        say(f"{model} version {version} already serves in {target.name} (release #{current.seq})")
        return Outcome(None, [], _resync(target, current, local, say), current=current)
    found = decisions(home.ledger, model, version)
    evidence = Evidence(
        now=now,
        decisions=in_force(found, target.name, digest),
        champion=_champion(home, target, current, local, candidate, info)
        if target.gates.max_regression is not None
        else None,
    )
    if target.gates.served_in:
        before = _environment(environments, target.gates.served_in)
        before_history = read_history(before.ledger, before.name)
        evidence = replace(
            evidence,
            served_release=before_history.first_served(digest),
            served_hours=before_history.hours_current(digest, now),
            served=served(before.ledger, before.name, digest),
        )
    say(f"checking the gates of {target.name}")
    results = [*check_gates(target.name, target.gates, candidate, evidence), _loads(local)]
    if not all(result.passed for result in results):
        raise GatesRefused(target.name, model, version, results)
    copied = _publish(home, target, local, prefix, say)
    _publish_baseline(home, target, str(info.get("dataset")), candidate.data_version, say)
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
    deployment = _go_live(target, release, current, local, say)
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
    deployment = _go_live(target, release, current, local, say)
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


def _go_live(
    target: Environment,
    release: Release,
    current: Release | None,
    local: Path,
    say: Say,
) -> Deployment | None:
    """Alias and endpoint. If the endpoint does not take the package -- for any reason,
    Ctrl-C included -- the release is marked failed, so the ledger never claims a package
    serves that did not, and the alias goes back to what the ledger says serves."""
    _alias(target, release, say)
    if target.endpoint is None:
        return None
    say(f"deploying to endpoint {target.endpoint_name}")
    try:
        return target.endpoint.deploy(_request(target, release, local))
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        target.ledger.append(
            RELEASES,
            target.name,
            {"action": "failed", "release_seq": release.seq, "error": error},
        )
        # Re-read: another release may have landed while this one was deploying.
        serving = read_history(target.ledger, target.name).current()
        if serving is not None:
            _alias(target, serving, say)
        if not isinstance(exc, LockgateError):
            raise
        kept = (
            f"{serving.model} version {serving.version} (release #{serving.seq}) serves"
            if serving
            else "nothing serves there"
        )
        raise PromotionFailed(
            f"release #{release.seq} of {target.name} failed on the endpoint and is marked "
            f"failed; {kept}: {error}"
        ) from None


def _resync(target: Environment, current: Release, local: Path, say: Say) -> Deployment | None:
    """Deploy the current release again if the endpoint runs and serves other bytes (it was
    started, or changed, behind the ledger's back)."""
    if target.endpoint is None:
        return None
    status = target.endpoint.status()
    if status.state != "serving" or status.package_sha256 in (None, current.package_sha256):
        return status
    say(f"endpoint {target.endpoint_name} serves other bytes; deploying release #{current.seq}")
    try:
        return target.endpoint.deploy(_request(target, current, local))
    except LockgateError as exc:
        raise PromotionFailed(
            f"endpoint {target.endpoint_name} does not serve release #{current.seq} of "
            f"{target.name} and could not be brought back to it: {exc}"
        ) from None


def _request(target: Environment, release: Release, local: Path) -> DeployRequest:
    return DeployRequest(
        env=target.name,
        endpoint_name=target.endpoint_name,
        model=release.model,
        version=release.version,
        package_sha256=release.package_sha256,
        package_dir=local,
        package_prefix=release.package_prefix,
        release_seq=release.seq,
    )


def _loads(local: Path) -> GateResult:
    """The package loads and predicts one row of missing values here, before it is recorded:
    a package that cannot is refused even when no endpoint runs to find out."""
    gate = "loads and predicts"
    try:
        package = load_package(local)
        package.predict([{}])
    except Exception as exc:  # any failure of the model's own code is the finding
        return GateResult(gate, False, f"{type(exc).__name__}: {exc}")
    return GateResult(gate, True, "one row of missing values predicted")


def _alias(target: Environment, release: Release, say: Say) -> None:
    version = int(release.record.get("registry_version") or release.version)
    try:
        target.registry.set_alias(release.model, target.name, version)
    except TrackingError as exc:
        # The ledger is the record of what serves; the alias is a convenience for MLflow users.
        say(f"warning: the registry alias '{target.name}' was not moved: {exc}")


def local_copy(store: Store, prefix: str, work_dir: Path) -> Path:
    """A verified local copy of the package under ``prefix`` (reused when already there)."""
    folder = Path(work_dir) / "packages" / prefix.strip("/").replace("/", "-")
    if folder.exists():
        try:
            verify_package(folder)
            if _same_description(store, prefix, folder):
                return folder
        except LockgateError:
            pass
        shutil.rmtree(folder)
    staging = Path(tempfile.mkdtemp(prefix=".package-", dir=_mkdir(folder.parent)))
    try:
        read_package_from_store(store, prefix, staging)
        try:
            staging.rename(folder)
        except OSError:
            # Another process (a promotion, `serve`) made the same copy first: use theirs.
            verify_package(folder)
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _same_description(store: Store, prefix: str, folder: Path) -> bool:
    return store.get(prefix.rstrip("/") + "/package.json") == (folder / "package.json").read_bytes()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _publish(home: Environment, target: Environment, local: Path, prefix: str, say: Say) -> bool:
    """Copy the package into the target store and verify it there; False if it is the same
    store."""
    if home.store.uri.rstrip("/") == target.store.uri.rstrip("/"):
        return False
    say(f"copying {prefix} to {target.name} ({target.store.uri})")
    write_package_to_store(target.store, local, prefix)
    with tempfile.TemporaryDirectory(prefix="lockgate-verify-") as scratch:
        copy = read_package_from_store(target.store, prefix, Path(scratch) / "package")
        if package_sha256(copy) != package_sha256(local):
            raise LockgateError(f"{prefix} in {target.name} differs from the package promoted")
    say(f"verified the sha256 of every file of {prefix} in {target.name}")
    return True


BASELINE_FILES = ("baseline/statistics.json", "baseline/constraints.json")


def baseline_prefix(dataset: str, data_version: str) -> str:
    """Where a release's baseline lives in an environment's store other than the home one
    (the home store has it under ``processed/``)."""
    return f"monitoring/baselines/{dataset}/{data_version}/"


def _publish_baseline(
    home: Environment, target: Environment, dataset: str, data_version: str, say: Say
) -> None:
    """Copy the data version's baseline (verified against its manifest) beside the package,
    so the target's monitoring reads it from its own store."""
    if home.store.uri.rstrip("/") == target.store.uri.rstrip("/"):
        return
    try:
        manifest = read_manifest(home.store, dataset, data_version)
        for name in BASELINE_FILES:
            target.store.put(
                baseline_prefix(dataset, data_version) + name.split("/", 1)[1],
                read_verified(home.store, manifest, name),
            )
    except ObjectNotFound:
        say(f"warning: no baseline of {dataset} {data_version} in {home.name}; not monitored")


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


def _champion(
    home: Environment,
    target: Environment,
    current: Release | None,
    local: Path,
    candidate: Candidate,
    info: dict[str, Any],
) -> ChampionScore | None:
    """The candidate and the current release scored on the candidate's test split.

    When both use the same transformer (same features) both models predict that split. When
    they do not, the raw test rows would be needed, which a dataset version does not keep; the
    recorded test metrics are compared instead and the record says so.
    """
    if current is None:
        return None
    champion_dir = local_copy(target.store, current.package_prefix, target.work_dir)
    champion_info = verify_package(champion_dir)
    metric = candidate.metric
    if champion_info["transformer_sha256"] != candidate.transformer_sha256:
        return ChampionScore(
            champion_version=current.version,
            metric=metric,
            champion=float(champion_info["metrics"].get(metric, np.nan)),
            candidate=float(candidate.metrics.get(metric, np.nan)),
            test_data="each one's own test split (different features; recorded metrics)",
        )
    manifest = read_manifest(home.store, str(info["dataset"]), candidate.data_version)
    x_test, y_test = load_split(home.store, manifest, "test")
    classes = manifest.classes
    n_classes = len(classes or [])
    values = []
    for folder in (champion_dir, local):
        package = load_package(folder)
        output = predict_output(package.model, x_test, package.task, n_classes)
        values.append(score(metric, y_test, output, classes))
    return ChampionScore(
        champion_version=current.version,
        metric=metric,
        champion=values[0],
        candidate=values[1],
        test_data=f"the test split of data version {candidate.data_version}",
    )


def _environment(environments: Mapping[str, Environment] | None, name: str) -> Environment:
    if not environments or name not in environments:
        raise LockgateError(
            f"the gate 'served_in = {name}' names an environment that is not configured"
        )
    return environments[name]
