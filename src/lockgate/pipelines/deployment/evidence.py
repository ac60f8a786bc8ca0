"""What a promotion's gates judge, gathered before anything is copied or recorded.

The candidate as its package describes it, the champion comparison, what the package served
in the ``served_in`` environment, and whether it loads and predicts here at all. The gates
themselves (:mod:`lockgate.pipelines.deployment.gates`) are a pure function of this evidence.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lockgate.pipelines.data.versions import load_split, read_manifest
from lockgate.pipelines.deployment.copying import local_copy
from lockgate.pipelines.deployment.gates import Candidate, ChampionScore, Evidence, GateResult
from lockgate.pipelines.deployment.releases import Release, read_history
from lockgate.pipelines.deployment.served import served
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.training.families import predict_output
from lockgate.pipelines.training.metrics import default_metric, score
from lockgate.pipelines.training.package import load_package, package_sha256, verify_package
from lockgate.ports.store import Store


def read_candidate(model: str, version: int, local: Path) -> tuple[Candidate, dict[str, Any]]:
    """The package in ``local`` (verified) as the candidate the gates judge.

    Returns:
        The candidate, and the package's description (``package.json``) it was read from.

    Raises:
        LockgateError: a file of the package does not match its description.
    """
    info = verify_package(local)
    candidate = Candidate(
        model=model,
        version=version,
        package_sha256=package_sha256(local),
        metrics={key: float(value) for key, value in info.get("metrics", {}).items()},
        metric=str(info.get("extra", {}).get("metric") or default_metric(str(info["task"]))),
        trained_by=info.get("extra", {}).get("trained_by"),
        data_version=str(info["data_version"]),
        transformer_sha256=str(info["transformer_sha256"]),
    )
    return candidate, info


def champion_score(
    home: Store,
    target: Store,
    work_dir: Path,
    current: Release | None,
    local: Path,
    candidate: Candidate,
    dataset: str,
) -> ChampionScore | None:
    """The candidate and the current release scored on the candidate's test split.

    When both use the same transformer (same features) both models predict that split. When
    they do not, the raw test rows would be needed, which a dataset version does not keep; the
    recorded test metrics are compared instead and the record says so.

    Args:
        home: the store holding the candidate's data version (its test split).
        target: the environment's store, holding the current release's package.
        work_dir: the local folder for the current release's package copy.
        current: the environment's current release; None: there is no champion.
        local: the candidate's verified package copy.
        dataset: the dataset the candidate was trained on.
    """
    if current is None:
        return None
    champion_dir = local_copy(target, current.package_prefix, work_dir)
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
    manifest = read_manifest(home, dataset, candidate.data_version)
    x_test, y_test = load_split(home, manifest, "test")
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


def with_served_in(evidence: Evidence, ledger: Ledger, env: str, digest: str) -> Evidence:
    """``evidence`` with what the package ``digest`` did in ``env`` (its ledger ``ledger``):
    its first release there, its hours as the current release up to ``evidence.now``, and
    what the endpoints there report serving."""
    history = read_history(ledger, env)
    return replace(
        evidence,
        served_release=history.first_served(digest),
        served_hours=history.hours_current(digest, evidence.now),
        served=served(ledger, env, digest),
    )


def loads_and_predicts(local: Path) -> GateResult:
    """The package loads and predicts one row of missing values here, before it is recorded:
    a package that cannot is refused even when no endpoint runs to find out."""
    gate = "loads and predicts"
    try:
        package = load_package(local)
        package.predict([{}])
    except Exception as exc:  # any failure of the model's own code is the finding
        return GateResult(gate, False, f"{type(exc).__name__}: {exc}")
    return GateResult(gate, True, "one row of missing values predicted")
