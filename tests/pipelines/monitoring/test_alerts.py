"""Alerts and the webhook that delivers them, against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lockgate import __version__
from lockgate.errors import ConfigError
from lockgate.pipelines.monitoring.alerts import (
    Alert,
    Notifier,
    WebhookNotifier,
    post_webhook,
)

HOOK_PATH = "/services/T000/B000/s3cr3t"

ALERT = Alert(
    endpoint="churn-prod",
    env="prod",
    run="20261126T105608-4f2a",
    verdict="drift",
    drifted=("tenure", "monthly_charges", "plan", "region", "age", "income", "device"),
    violations=9,
    report="s3://lockgate-prod/monitoring/reports/churn-prod/20261126T105608-4f2a/report.html",
    time=datetime(2026, 11, 26, 10, 56, 8, tzinfo=UTC),
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Hook:
    """A webhook receiver answering from a script (then 200), recording what it received."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.received: list[Received] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hook.received.append(
                    Received("POST", self.path, dict(self.headers), self.rfile.read(length))
                )
                answer = hook.script.pop(0) if hook.script else Answer(200, body=b"ok")
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{HOOK_PATH}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    thread = threading.Thread(target=receiver.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


# -- the alert -------------------------------------------------------------------------------


def test_the_alert_log_line_is_one_line_with_what_an_operator_needs() -> None:
    line = ALERT.one_line()

    assert "\n" not in line
    assert line == (
        "lockgate monitoring: drift on endpoint churn-prod (prod), 9 violations; drifted: "
        "tenure, monthly_charges, plan, region, age (+2 more); run 20261126T105608-4f2a at "
        "2026-11-26T10:56:08Z; report "
        "s3://lockgate-prod/monitoring/reports/churn-prod/20261126T105608-4f2a/report.html"
    )


def test_an_alert_without_drifted_features_does_not_mention_drift() -> None:
    alert = Alert("churn-dev", "dev", "r1", "quality", (), 1, "monitoring/reports/x", ALERT.time)

    assert "drifted" not in alert.one_line()
    assert "quality on endpoint churn-dev (dev), 1 violation; run r1" in alert.one_line()


def test_the_alert_as_json_carries_every_field_and_a_chat_text() -> None:
    data = json.loads(json.dumps(ALERT.as_dict()))

    assert data["endpoint"] == "churn-prod"
    assert data["env"] == "prod"
    assert data["run_id"] == "20261126T105608-4f2a"
    assert data["verdict"] == "drift"
    assert data["drifted_features"] == list(ALERT.drifted)
    assert data["violations"] == 9
    assert data["report"] == ALERT.report
    assert data["time"] == "2026-11-26T10:56:08Z"
    assert data["text"] == ALERT.one_line()


# -- delivery --------------------------------------------------------------------------------


def test_a_webhook_receives_the_alert_as_json(hook: Hook, fake: FakeTime) -> None:
    result = post_webhook(hook.url, ALERT, sleep=fake.sleep, clock=fake.clock)

    assert result.delivered
    assert (result.attempts, result.status, result.error) == (1, 200, None)
    [received] = hook.received
    assert received.path == HOOK_PATH
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"] == f"lockgate/{__version__}"
    assert json.loads(received.body) == ALERT.as_dict()


def test_server_errors_are_retried_with_growing_jittered_delays(hook: Hook, fake: FakeTime) -> None:
    hook.script = [Answer(503), Answer(502), Answer(500)]

    result = post_webhook(hook.url, ALERT, first_delay=0.5, sleep=fake.sleep, clock=fake.clock)

    assert result.delivered
    assert result.attempts == 4
    assert len(hook.received) == 4
    first, second, third = fake.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert 1.0 <= third <= 2.0


@pytest.mark.parametrize("status", [408, 429])
def test_timeout_and_too_many_requests_answers_are_retried(
    hook: Hook, fake: FakeTime, status: int
) -> None:
    hook.script = [Answer(status)]

    result = post_webhook(hook.url, ALERT, sleep=fake.sleep, clock=fake.clock)

    assert result.delivered
    assert result.attempts == 2


def test_retry_after_is_honoured_when_it_fits_the_budget(hook: Hook, fake: FakeTime) -> None:
    hook.script = [Answer(429, {"Retry-After": "7"})]

    result = post_webhook(hook.url, ALERT, budget=20, sleep=fake.sleep, clock=fake.clock)

    assert result.delivered
    assert fake.sleeps == [7.0]


def test_a_retry_after_beyond_the_budget_ends_the_delivery_at_once(
    hook: Hook, fake: FakeTime
) -> None:
    hook.script = [Answer(503, {"Retry-After": "120"})]

    result = post_webhook(hook.url, ALERT, budget=20, sleep=fake.sleep, clock=fake.clock)

    assert not result.delivered
    assert result.attempts == 1
    assert result.status == 503
    assert fake.sleeps == []
    assert "a retry in 120.0 s would pass the 20 s budget" in str(result.error)


def test_retries_stop_before_the_budget_is_spent(hook: Hook, fake: FakeTime) -> None:
    hook.script = [Answer(500)] * 20

    result = post_webhook(
        hook.url, ALERT, attempts=20, first_delay=1.0, budget=10, sleep=fake.sleep, clock=fake.clock
    )

    assert not result.delivered
    assert sum(fake.sleeps) <= 10
    assert result.attempts == len(fake.sleeps) + 1 < 20
    assert "would pass the 10 s budget" in str(result.error)


def test_a_client_error_is_not_retried_and_its_answer_is_reported(
    hook: Hook, fake: FakeTime
) -> None:
    hook.script = [Answer(400, body=b'{"error": "invalid_payload"}\n')]

    result = post_webhook(hook.url, ALERT, sleep=fake.sleep, clock=fake.clock)

    assert not result.delivered
    assert (result.attempts, result.status) == (1, 400)
    assert result.error == 'HTTP 400 Bad Request: {"error": "invalid_payload"}'
    assert len(hook.received) == 1


def test_a_redirect_is_not_followed(hook: Hook, fake: FakeTime) -> None:
    hook.script = [Answer(302, {"Location": "https://elsewhere.example/hook"})]

    result = post_webhook(hook.url, ALERT, sleep=fake.sleep, clock=fake.clock)

    assert not result.delivered
    assert result.attempts == 1
    assert (
        result.error == "HTTP 302 redirects to elsewhere.example; set webhook_url to the final URL"
    )


def test_an_unreachable_webhook_is_retried_then_reported_without_raising(fake: FakeTime) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket is closed

    result = post_webhook(
        f"http://127.0.0.1:{port}/hook", ALERT, sleep=fake.sleep, clock=fake.clock
    )

    assert not result.delivered
    assert result.attempts == 4
    assert result.status is None
    assert str(result.error).startswith("cannot connect:")
    assert len(fake.sleeps) == 3


def test_a_server_that_never_answers_is_given_up_on_after_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are queued and never answered
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"

        result = post_webhook(url, ALERT, attempts=1, timeout=0.2)

    assert not result.delivered
    assert result.error == "no answer within 0.2 s"


def test_a_server_that_trickles_its_answer_cannot_hold_the_job_past_the_timeout() -> None:
    def trickle(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(20):  # a header, one byte every 50 ms, for 1 s; then it stops
                try:
                    connection.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.05)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        server = threading.Thread(target=trickle, args=(listener,), daemon=True)
        server.start()

        result = post_webhook(
            f"http://127.0.0.1:{listener.getsockname()[1]}/hook", ALERT, attempts=1, timeout=0.3
        )
        server.join()

    assert not result.delivered
    assert result.error == "no answer within 0.3 s"


@pytest.mark.parametrize(
    ("url", "given"),
    [
        ("ftp://hooks.example.com/x", "a ftp: URL"),
        ("file:///etc/passwd", "a file: URL"),
        ("hooks.example.com/services/s3cr3t", "not a URL"),
        ("https:///no-host", "a https: URL"),
    ],
)
def test_only_http_urls_are_accepted(url: str, given: str) -> None:
    with pytest.raises(ConfigError) as error:
        post_webhook(url, ALERT)
    with pytest.raises(ConfigError):
        WebhookNotifier(url)

    assert f"webhook_url is {given}; set it to an http:// or https:// URL" in str(error.value)
    assert "s3cr3t" not in str(error.value)


def test_the_webhook_notifier_reports_delivery_without_the_secret_path(hook: Hook) -> None:
    notifier: Notifier = WebhookNotifier(hook.url)
    host = hook.url.removesuffix(HOOK_PATH)

    said = notifier.notify(ALERT)

    assert said == f"webhook {host}: delivered (HTTP 200) after 1 attempt"
    assert "s3cr3t" not in said + repr(notifier)
    assert json.loads(hook.received[0].body)["run_id"] == ALERT.run


def test_the_webhook_notifier_reports_a_refusal_in_one_line(hook: Hook) -> None:
    hook.script = [Answer(404, body=b"no such hook")]

    said = WebhookNotifier(hook.url).notify(ALERT)

    assert said.endswith("not delivered after 1 attempt: HTTP 404 Not Found: no such hook")
