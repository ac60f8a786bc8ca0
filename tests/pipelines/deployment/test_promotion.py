"""Promotion through dev -> staging -> prod: gates, copies, release records, races, rollback."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.dummy import DummyClassifier

from lockgate.config import GatesConfig
from lockgate.errors import LockgateError
from lockgate.pipelines.deployment.approvals import record_decision
from lockgate.pipelines.deployment.live import PromotionFailed
from lockgate.pipelines.deployment.promotion import (
    GatesRefused,
    PromotionConflict,
    promote,
    rollback,
)
from lockgate.pipelines.deployment.releases import read_history
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.runs import Trigger, recent_runs
from lockgate.pipelines.training.package import (
    package_sha256,
    package_sha256_of,
    read_package_from_store,
)
from tests.pipelines.deployment.conftest import RecordingEndpoint, World


def approve(
    world: World, version: int, env: str | None, by: str, verdict: str = "approved"
) -> None:
    """Record a decision about ``version`` (published first, as training would, if need be)."""
    prefix = f"models/churn/{version}/package.json"
    if not world.home.store.exists(prefix):
        world.publish(version)
    sha = package_sha256_of(json.loads(world.home.store.get(prefix)))
    record_decision(
        Ledger(world.home.store),
        "churn",
        version,
        verdict,  # type: ignore[arg-type]
        env=env,
        by=by,
        note="looks right",
        package_sha256=sha,
    )


def to(world: World, env: str, version: int, **kwargs: object):  # type: ignore[no-untyped-def]
    return promote(
        world.home,
        world.envs[env],
        "churn",
        version,
        by="releaser",
        environments=world.envs,
        **kwargs,  # type: ignore[arg-type]
    )


def test_dev_takes_a_registered_package_without_approval_and_records_the_release(
    world: World,
) -> None:
    sha = world.publish(1)
    outcome = to(world, "dev", 1)

    assert outcome.release is not None and outcome.release.seq == 0
    record = outcome.release.record
    assert record["action"] == "promote"
    assert record["package_sha256"] == sha
    assert record["data_version"] == world.prepared.manifest.version
    assert record["transformer_sha256"] == world.prepared.manifest.files["transformer.pkl"].sha256
    assert record["metrics"]["roc_auc"] > 0.6
    assert record["by"] == "releaser" and record["trained_by"] == "trainer"
    assert record["approvals"] == []
    assert {gate["gate"]: gate["passed"] for gate in record["gates"]} == {
        "not rejected": True,
        "loads and predicts": True,
    }
    # The endpoint was asked to serve exactly that package, and the alias points at it.
    assert [request.package_sha256 for request in world.endpoints["dev"].requests] == [sha]
    assert world.registries["dev"].aliases[("churn", "dev")] == 1
    assert read_history(world.home.ledger, "dev").current().package_sha256 == sha  # type: ignore[union-attr]


def test_staging_refuses_without_approval_and_changes_nothing(world: World) -> None:
    world.publish(1)
    with pytest.raises(GatesRefused) as refused:
        to(world, "staging", 1)

    message = str(refused.value)
    assert "churn version 1 cannot be promoted to staging" in message
    assert "needs an approval for staging: lockgate approve churn 1 --env staging" in message
    staging = world.envs["staging"].store
    # No copy, no release: only the record of the refused run.
    assert [info.key for info in staging.list("") if not info.key.startswith("ledger/runs/")] == []
    assert world.endpoints["staging"].requests == []


def test_an_approved_promotion_copies_the_package_verified_and_registers_it_there(
    world: World, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    approve(world, 1, "staging", "alice")
    outcome = to(world, "staging", 1)

    assert outcome.copied
    staging = world.envs["staging"]
    copy = read_package_from_store(staging.store, "models/churn/1/", tmp_path / "copy")
    original = read_package_from_store(world.home.store, "models/churn/1/", tmp_path / "orig")
    for name in ("model.pkl", "transformer.pkl", "schema.json", "package.json"):
        assert (copy / name).read_bytes() == (original / name).read_bytes()
    assert package_sha256(copy) == outcome.release.record["package_sha256"]  # type: ignore[union-attr]
    # staging has its own registry: the package is registered there, the alias follows.
    (registered,) = world.registries["staging"].versions("churn")
    assert registered.source.endswith("/models/churn/1/")
    assert registered.tags["lockgate.home_version"] == "1"
    assert world.registries["staging"].aliases[("churn", "staging")] == registered.version
    approvals = outcome.release.record["approvals"]  # type: ignore[union-attr]
    assert [(item["verdict"], item["by"], item["env"]) for item in approvals] == [
        ("approved", "alice", "staging")
    ]


def test_prod_needs_someone_else_than_the_trainer_and_a_staging_release(world: World) -> None:
    approve(world, 1, "prod", "trainer")  # the trainer approving their own model
    with pytest.raises(GatesRefused) as refused:
        to(world, "prod", 1)
    failing = {result.gate for result in refused.value.results if not result.passed}
    assert failing == {"approver is not the trainer", "served in staging"}
    assert "approved by trainer, who trained it; someone else must approve" in str(refused.value)
    assert "never released to staging; promote it there first" in str(refused.value)

    approve(world, 1, "staging", "alice")
    staged = to(world, "staging", 1)
    with pytest.raises(GatesRefused, match="0 of the 1 requests required"):
        to(world, "prod", 1)  # released to staging is not the same as served there
    Ledger(world.envs["staging"].store).append(
        "serving",
        "staging",
        {
            "server_id": "s",
            "package_sha256": staged.release.record["package_sha256"],  # type: ignore[union-attr]
            "requests": 1,
            "errors": 0,
            "rejected": 0,
        },
    )
    approve(world, 1, "prod", "bob")
    outcome = to(world, "prod", 1)
    assert outcome.release is not None
    passed = {gate["gate"]: gate["detail"] for gate in outcome.release.record["gates"]}
    assert passed["approver is not the trainer"] == "approved by bob, trained by trainer"
    assert passed["served in staging"].startswith("current in staging for 0.0 h since release #0")


def test_served_in_counts_requests_and_server_errors(world: World) -> None:
    world.envs["prod"].gates = GatesConfig(served_in="staging", min_served_requests=100)
    approve(world, 1, "staging", "alice")
    outcome = to(world, "staging", 1)
    sha = outcome.release.record["package_sha256"]  # type: ignore[union-attr]
    ledger = Ledger(world.envs["staging"].store)

    def report(server: str, requests: int, errors: int) -> None:
        ledger.append(
            "serving",
            "staging",
            {"server_id": server, "package_sha256": sha, "requests": requests, "errors": errors},
        )

    report("a", 40, 0)
    report("a", 70, 0)  # cumulative: server a answered 70 in all
    ledger.append(
        "serving",
        "staging",
        {"server_id": "c", "package_sha256": sha, "requests": 500, "errors": 0, "rejected": 500},
    )  # refused requests (4xx) are not serving
    with pytest.raises(GatesRefused, match="70 of the 100 requests required"):
        to(world, "prod", 1)
    report("b", 30, 2)
    with pytest.raises(GatesRefused, match="2 server error"):
        to(world, "prod", 1)
    report("b", 31, 0)  # a later record of server b replaces its earlier counts
    assert to(world, "prod", 1).release is not None


def test_metric_thresholds_refuse_with_one_line_per_failing_gate(world: World) -> None:
    world.envs["dev"].gates = GatesConfig(
        min_metrics={"roc_auc": 0.99, "accuracy": 0.1}, max_metrics={"log_loss": 0.01, "rmse": 1}
    )
    world.publish(1)
    with pytest.raises(GatesRefused) as refused:
        to(world, "dev", 1)
    lines = str(refused.value).splitlines()[1:]
    assert len(lines) == 3  # accuracy >= 0.1 passes
    assert any(line.startswith("  - roc_auc >= 0.99: test roc_auc is 0.") for line in lines)
    assert any(line.startswith("  - log_loss <= 0.01: test log_loss is ") for line in lines)
    assert any(
        "has no test rmse (it has: accuracy, f1, log_loss, roc_auc)" in line for line in lines
    )
    assert list(world.home.store.list("ledger/releases/")) == []


def test_a_candidate_worse_than_the_champion_on_the_same_test_data_is_refused(
    world: World,
) -> None:
    world.envs["dev"].gates = GatesConfig(max_regression=0.02)
    world.publish(1)
    to(world, "dev", 1)
    world.publish(2, model=DummyClassifier(strategy="prior"))
    with pytest.raises(GatesRefused) as refused:
        to(world, "dev", 2)
    detail = str(refused.value)
    assert "not worse than the dev champion by more than 0.02" in detail
    assert "roc_auc 0.5000 vs version 1's 0." in detail
    assert f"on the test split of data version {world.prepared.manifest.version}" in detail
    assert read_history(world.home.ledger, "dev").current().version == 1  # type: ignore[union-attr]


def test_a_rejection_without_env_blocks_every_environment_until_approved_again(
    world: World,
) -> None:
    approve(world, 1, None, "bob", verdict="rejected")
    with pytest.raises(GatesRefused, match="rejected for every environment by bob: looks right"):
        to(world, "dev", 1)
    approve(world, 1, "dev", "alice")
    assert to(world, "dev", 1).release is not None
    with pytest.raises(GatesRefused, match="rejected for every environment"):
        to(world, "staging", 1)


def test_two_promotions_racing_for_one_environment_one_wins(world: World) -> None:
    world.publish(1)
    world.publish(2, model=DummyClassifier(strategy="prior"))
    both_checked = threading.Barrier(2, timeout=60)

    def say(message: str) -> None:
        if message.startswith("checking the gates"):
            both_checked.wait()  # both have read the same tail before either appends

    results: dict[int, object] = {}

    def run(version: int) -> None:
        try:
            results[version] = to(world, "dev", version, say=say)
        except LockgateError as exc:
            results[version] = exc

    threads = [threading.Thread(target=run, args=(version,)) for version in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    conflicts = [r for r in results.values() if isinstance(r, PromotionConflict)]
    assert len(conflicts) == 1
    assert "another release of dev landed while this one was prepared" in str(conflicts[0])
    history = read_history(world.home.ledger, "dev")
    assert len(history.entries) == 1  # one release, nothing half-written
    winner = history.current()
    assert winner is not None
    assert [request.version for request in world.endpoints["dev"].requests] == [winner.version]


def test_rollback_is_a_new_release_of_the_previous_package(world: World) -> None:
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    sha1 = world.publish(1)
    sha2 = world.publish(2, model=DummyClassifier(strategy="prior"))
    to(world, "dev", 1, now=start)
    to(world, "dev", 2, now=start + timedelta(hours=1))
    outcome = rollback(
        world.home, by="oncall", note="v2 misbehaves", now=start + timedelta(hours=2)
    )

    assert outcome.release is not None
    assert outcome.release.action == "rollback"
    assert outcome.release.package_sha256 == sha1
    assert outcome.release.record["by"] == "oncall"
    history = read_history(world.home.ledger, "dev")
    assert [r.version for r in history.releases()] == [1, 2, 1]  # nothing deleted
    assert history.at(start + timedelta(minutes=90)).package_sha256 == sha2  # type: ignore[union-attr]
    assert history.at(start + timedelta(minutes=30)).package_sha256 == sha1  # type: ignore[union-attr]
    assert history.at(start - timedelta(minutes=1)) is None
    assert world.endpoints["dev"].serving == sha1
    assert world.registries["dev"].aliases[("churn", "dev")] == 1


def test_rollback_without_an_earlier_release_says_so(world: World) -> None:
    with pytest.raises(LockgateError, match="dev has no earlier release to roll back to"):
        rollback(world.home, by="oncall")
    world.publish(1)
    to(world, "dev", 1)
    with pytest.raises(LockgateError, match=r"current: churn version 1"):
        rollback(world.home, by="oncall")


def test_a_package_failing_on_the_endpoint_is_marked_failed_and_the_old_one_stays(
    world: World,
) -> None:
    sha1 = world.publish(1)
    world.publish(2, model=DummyClassifier(strategy="prior"))
    to(world, "dev", 1)
    world.endpoints["dev"].fail_with = "warm-up prediction failed: boom"
    with pytest.raises(PromotionFailed) as failed:
        to(world, "dev", 2)

    assert "release #1 of dev failed on the endpoint and is marked failed" in str(failed.value)
    assert "churn version 1 (release #0) serves" in str(failed.value)
    history = read_history(world.home.ledger, "dev")
    assert [(r.version, r.failed) for r in history.releases()] == [
        (1, None),
        (2, "warm-up prediction failed: boom"),
    ]
    assert history.current().package_sha256 == sha1  # type: ignore[union-attr]
    assert world.registries["dev"].aliases[("churn", "dev")] == 1


def test_promoting_what_already_serves_does_nothing(world: World) -> None:
    world.publish(1)
    to(world, "dev", 1)
    again = to(world, "dev", 1)
    assert again.release is None
    assert again.current is not None and again.current.seq == 0
    assert len(read_history(world.home.ledger, "dev").entries) == 1


def test_served_in_counts_the_hours_since_the_release_there(world: World) -> None:
    world.envs["prod"].gates = GatesConfig(served_in="staging", min_served_hours=24)
    released = datetime(2026, 11, 2, 9, tzinfo=UTC)
    approve(world, 1, "staging", "alice")
    to(world, "staging", 1, now=released)

    with pytest.raises(GatesRefused, match=r"6\.0 h of the 24 h required"):
        to(world, "prod", 1, now=released + timedelta(hours=6))
    outcome = to(world, "prod", 1, now=released + timedelta(hours=25))
    assert outcome.release is not None
    assert outcome.release.released_at == released + timedelta(hours=25)


def test_rolling_back_twice_goes_two_steps_back(world: World) -> None:
    shas = [world.publish(1), world.publish(2, model=DummyClassifier(strategy="prior"))]
    shas.append(world.publish(3, model=DummyClassifier(strategy="most_frequent")))
    for version in (1, 2, 3):
        to(world, "dev", version)
    first = rollback(world.home, by="oncall")
    second = rollback(world.home, by="oncall")
    assert [first.release.package_sha256, second.release.package_sha256] == shas[1::-1]  # type: ignore[union-attr]
    assert second.release.record["rolled_back_to"] == 0  # type: ignore[union-attr]
    assert second.release.record["gates"] == [] and second.release.record["approvals"] == []  # type: ignore[union-attr]
    with pytest.raises(LockgateError, match="no earlier release to roll back to"):
        rollback(world.home, by="oncall")


def test_rollback_refuses_a_version_rejected_since(world: World) -> None:
    world.publish(1)
    world.publish(2, model=DummyClassifier(strategy="prior"))
    to(world, "dev", 1)
    to(world, "dev", 2)
    approve(world, 1, "dev", "bob", verdict="rejected")
    with pytest.raises(LockgateError, match=r"churn version 1 \(release #0\) was rejected by bob"):
        rollback(world.home, by="oncall", home=world.home)
    assert read_history(world.home.ledger, "dev").current().version == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("error", [LockgateError("timed out"), KeyboardInterrupt()])
def test_any_endpoint_failure_marks_the_release_failed(world: World, error: BaseException) -> None:
    world.publish(1)
    world.publish(2, model=DummyClassifier(strategy="prior"))
    to(world, "dev", 1)

    def deploy(request: object) -> object:
        raise error

    world.endpoints["dev"].deploy = deploy  # type: ignore[method-assign]
    with pytest.raises((PromotionFailed, KeyboardInterrupt)):
        to(world, "dev", 2)
    history = read_history(world.home.ledger, "dev")
    assert [r.failed is None for r in history.releases()] == [True, False]
    assert history.current().version == 1  # type: ignore[union-attr]
    # Promoting it again retries the deployment instead of claiming it already serves.
    world.endpoints["dev"].deploy = RecordingEndpoint().deploy  # type: ignore[method-assign]
    assert to(world, "dev", 2).release is not None


def test_a_package_that_cannot_predict_is_refused_before_anything_is_recorded(
    world: World,
) -> None:
    from sklearn.linear_model import LogisticRegression

    from tests.serving.models import BreaksWhenLoaded

    world.publish(1, model=BreaksWhenLoaded(LogisticRegression(max_iter=500)))
    with pytest.raises(GatesRefused, match="loads and predicts: FloatingPointError"):
        to(world, "dev", 1)
    assert list(world.home.store.list("ledger/releases/")) == []
    assert world.endpoints["dev"].requests == []


def test_hours_in_staging_count_only_while_the_package_was_current(world: World) -> None:
    world.envs["prod"].gates = GatesConfig(served_in="staging", min_served_hours=24)
    released = datetime(2026, 11, 2, 9, tzinfo=UTC)
    world.publish(2, model=DummyClassifier(strategy="prior"))
    approve(world, 1, "staging", "alice")
    approve(world, 2, "staging", "alice")
    to(world, "staging", 1, now=released)
    to(world, "staging", 2, now=released + timedelta(minutes=30))  # v1 replaced after 30 min
    with pytest.raises(GatesRefused, match=r"0\.5 h of the 24 h required"):
        to(world, "prod", 1, now=released + timedelta(hours=48))


def test_one_approval_by_someone_else_is_enough_whoever_approved_after(world: World) -> None:
    world.envs["prod"].gates = GatesConfig(approver_not_trainer=True)
    approve(world, 1, "prod", "alice")
    approve(world, 1, "prod", "trainer")  # the trainer's own approval does not undo alice's
    outcome = to(world, "prod", 1)
    passed = {g["gate"]: g["detail"] for g in outcome.release.record["gates"]}  # type: ignore[union-attr]
    assert passed["approver is not the trainer"] == "approved by alice, trained by trainer"


def test_promoting_the_current_release_again_repairs_an_endpoint_serving_other_bytes(
    world: World,
) -> None:
    sha = world.publish(1)
    to(world, "dev", 1)
    world.endpoints["dev"].serving = "someone-else's-package"
    again = to(world, "dev", 1)
    assert again.release is None
    assert world.endpoints["dev"].serving == sha
    assert [request.package_sha256 for request in world.endpoints["dev"].requests] == [sha, sha]


def test_a_promotion_is_a_deployment_run_recorded_in_the_target_environment(
    world: World,
) -> None:
    approve(world, 1, "staging", "alice")
    outcome = to(world, "staging", 1)

    (view,) = recent_runs(world.envs["staging"].store, "deployment")
    record = view.record
    assert view.state == "succeeded"
    assert record["env"] == "staging"
    assert record["trigger"] == {"kind": "command", "detail": "releaser"}
    assert record["inputs"] == {
        "action": "promote",
        "model": "churn",
        "version": 1,
        "from_env": "dev",
    }
    assert record["outputs"] == {
        "release_seq": outcome.release.seq,  # type: ignore[union-attr]
        "state": "released",
        "endpoint": "serving",
    }
    assert recent_runs(world.home.store, "deployment") == []  # dev only lent the package

    again = to(world, "staging", 1, trigger=Trigger("demo", "lockgate demo"))
    assert again.release is None
    latest = recent_runs(world.envs["staging"].store, "deployment")[-1].record
    assert latest["trigger"] == {"kind": "demo", "detail": "lockgate demo"}
    assert latest["outputs"]["state"] == "already_serving"


def test_a_refused_promotion_is_a_failed_run_naming_the_gates_and_what_passes_them(
    world: World,
) -> None:
    approve(world, 1, "prod", "trainer")
    with pytest.raises(GatesRefused):
        to(world, "prod", 1)

    (view,) = recent_runs(world.envs["prod"].store, "deployment")
    assert view.state == "failed"
    assert view.record["error"] == (
        "refused by the gates of prod: approver is not the trainer, served in staging"
    )
    hint = view.record["hint"]
    assert "approver is not the trainer: approved by trainer, who trained it; someone else" in hint
    assert "served in staging: this package was never released to staging; promote it" in hint
    assert view.record["outputs"] == {}


def test_a_rollback_is_a_deployment_run_saying_what_it_went_back_to(world: World) -> None:
    world.publish(1)
    world.publish(2, model=DummyClassifier(strategy="prior"))
    to(world, "dev", 1)
    to(world, "dev", 2)
    outcome = rollback(world.home, by="oncall")
    with pytest.raises(LockgateError, match="no earlier release"):
        rollback(world.envs["staging"], by="oncall")

    runs = recent_runs(world.home.store, "deployment")
    assert [view.state for view in runs] == ["succeeded"] * 3
    record = runs[-1].record
    assert record["trigger"] == {"kind": "command", "detail": "oncall"}
    assert record["inputs"] == {
        "action": "rollback",
        "from_env": "dev",
        "model": "churn",
        "version": 1,
    }
    assert record["outputs"]["release_seq"] == outcome.release.seq == 2  # type: ignore[union-attr]
    assert record["outputs"]["state"] == "rolled_back"
    (failed,) = recent_runs(world.envs["staging"].store, "deployment")
    assert failed.state == "failed"
    assert failed.record["error"] == "staging has no earlier release to roll back to"
