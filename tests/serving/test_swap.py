"""Hot swap: a new package takes over only once it answered; a failed one changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from lockgate.pipelines.training.package import MODEL_FILE, package_sha256
from lockgate.serving.app import create_app
from tests.serving.conftest import (
    TOKEN,
    Packages,
    Running,
    Sample,
    assert_close,
    expected_probabilities,
    serving,
)


def csv_answer(server: Running, sample: Sample) -> list[list[str]]:
    reply = server.predict(sample.csv(3), "text/csv")
    assert reply.status == 200, reply.body
    return reply.csv()


def test_a_server_without_a_model_is_not_ready_until_a_swap_loads_one(
    packages: Packages, sample: Sample
) -> None:
    with serving(create_app(token=TOKEN)) as server:
        assert server.call("GET", "/ping").status == 503
        refused = server.predict(sample.csv(1), "text/csv")
        assert refused.status == 503
        assert "no model is loaded" in refused.error
        assert server.call("GET", "/version").json()["model"] is None

        reply = server.swap(packages.logistic, {"seq": 1}, TOKEN)
        assert reply.status == 200, reply.body
        assert reply.json()["version"] == 1
        assert server.call("GET", "/ping").status == 200
        assert server.predict(sample.csv(1), "text/csv").status == 200


def test_a_swap_switches_predictions_and_version(packages: Packages, sample: Sample) -> None:
    app = create_app(packages.logistic, release={"seq": 1}, token=TOKEN)
    with serving(app) as server:
        before = csv_answer(server, sample)
        reply = server.swap(packages.boosted, {"seq": 2, "env": "dev"}, TOKEN)
        assert reply.status == 200, reply.body
        document = reply.json()
        assert (document["model"], document["version"]) == ("churn", 2)
        assert document["package_sha256"] == package_sha256(packages.boosted)
        assert document["release"] == {"seq": 2, "env": "dev"}
        assert server.call("GET", "/version").json() == document

        after = csv_answer(server, sample)
        json_reply = server.predict(sample.records(1))
        assert json_reply.json()["model_version"] == 2

    expected = expected_probabilities(packages.boosted, sample.records(3))
    assert_close([[float(p) for p in line[2:]] for line in after], expected)
    assert [line[2:] for line in before] != [line[2:] for line in after]


def test_swapping_to_the_package_already_served_reloads_nothing(packages: Packages) -> None:
    with serving(create_app(packages.logistic, release={"seq": 1}, token=TOKEN)) as server:
        before = server.call("GET", "/version").json()
        reply = server.swap(packages.logistic, {"seq": 1}, TOKEN)
        assert reply.status == 200
        assert reply.json() == before  # same load time, same release: nothing changed

        # The same package released again (#9): served as that release from now on, so a
        # late swap of a release between the two is known to be older.
        reply = server.swap(packages.logistic, {"seq": 9}, TOKEN)
        assert reply.status == 200
        assert reply.json() == {**before, "release": {"seq": 9}}
        assert server.swap(packages.boosted, {"seq": 5}, TOKEN).status == 409


def test_an_older_release_arriving_after_a_newer_one_is_refused(
    packages: Packages, sample: Sample
) -> None:
    with serving(create_app(packages.logistic, release={"seq": 1}, token=TOKEN)) as server:
        assert server.swap(packages.boosted, {"seq": 3}, TOKEN).status == 200
        after = csv_answer(server, sample)

        late = server.swap(packages.fragile, {"seq": 2}, TOKEN)
        assert late.status == 409
        assert late.error.startswith(
            "release #2 is older than release #3 which this endpoint serves"
        )
        document = server.call("GET", "/version").json()
        assert (document["version"], document["release"]) == (2, {"seq": 3})
        assert csv_answer(server, sample) == after

        # Without a seq on either side the order is unknown: the swap goes ahead.
        assert server.swap(packages.logistic, {"env": "dev"}, TOKEN).status == 200
        assert server.call("GET", "/version").json()["version"] == 1


def test_a_swap_needs_the_servers_token(packages: Packages) -> None:
    with serving(create_app(packages.logistic, token=TOKEN)) as server:
        for token in (None, "wrong"):
            reply = server.swap(packages.boosted, token=token)
            assert reply.status == 403
            assert "X-Lockgate-Token" in reply.error
        assert server.call("GET", "/version").json()["version"] == 1
    with serving(create_app(packages.logistic)) as server:
        reply = server.swap(packages.boosted, token=TOKEN)
        assert reply.status == 403
        assert "disabled" in reply.error


def test_a_malformed_swap_request_is_400(packages: Packages) -> None:
    with serving(create_app(packages.logistic, token=TOKEN)) as server:
        headers = {"X-Lockgate-Token": TOKEN, "Content-Type": "application/json"}
        for body in (b"{", b"{}", b'{"model_dir": "/x", "release": 3}'):
            reply = server.call("POST", "/lockgate/swap", body, headers)
            assert reply.status == 400
            assert reply.error


def test_a_damaged_package_is_refused_and_the_old_one_serves_on(
    packages: Packages, sample: Sample, tmp_path: Path
) -> None:
    damaged = shutil.copytree(packages.boosted, tmp_path / "damaged")
    model = damaged / MODEL_FILE
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    missing = tmp_path / "nothing-here"
    with serving(create_app(packages.logistic, token=TOKEN)) as server:
        before = csv_answer(server, sample)
        reply = server.swap(damaged, token=TOKEN)
        assert reply.status == 409
        assert "changed after the package was built" in reply.error
        reply = server.swap(missing, token=TOKEN)
        assert reply.status == 409
        assert str(missing) in reply.error
        assert server.call("GET", "/ping").status == 200
        assert server.call("GET", "/version").json()["version"] == 1
        assert csv_answer(server, sample) == before


def test_a_package_that_fails_its_warm_up_is_refused(packages: Packages, sample: Sample) -> None:
    with serving(create_app(packages.logistic, token=TOKEN)) as server:
        before = csv_answer(server, sample)
        reply = server.swap(packages.breaks, token=TOKEN)
        assert reply.status == 409
        assert "version 4" in reply.error and "warm-up" in reply.error
        assert server.call("GET", "/version").json()["version"] == 1
        assert csv_answer(server, sample) == before
