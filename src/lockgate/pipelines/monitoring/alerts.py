"""Alerts on a monitoring violation: what a person is told, and how it reaches them.

An :class:`Alert` is one monitoring run's bad news. A :class:`Notifier` delivers it somewhere
(a webhook here; SNS in :mod:`lockgate.aws.sns`) and says what happened in one line. Delivery
never fails the monitoring run: the report is already written, and a channel that is down is
logged, not raised.

:func:`post_webhook` is built so a dead or slow receiver cannot hold the job: every attempt has
a timeout, retries back off exponentially with jitter, a ``Retry-After`` is honoured only if it
fits, and nothing runs past the overall ``budget``. An attempt abandoned at its deadline may
still land later, so a receiver can see an alert twice; its ``run_id`` tells the copies apart.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from lockgate import __version__
from lockgate.errors import ConfigError

_SHOWN_FEATURES = 5
_BODY_SNIPPET = 200
_RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Alert:
    """A monitoring run that found a violation."""

    endpoint: str
    env: str
    run: str
    """The monitoring run's id."""
    verdict: str
    """What the run concluded, e.g. "drift" or "quality"."""
    drifted: Sequence[str]
    """The features found drifted."""
    violations: int
    report: str
    """Where the report is (a store URI or key)."""
    time: datetime

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready data; ``text`` is :meth:`one_line` for chat webhooks."""
        return {
            "source": "lockgate",
            "text": self.one_line(),
            "endpoint": self.endpoint,
            "env": self.env,
            "run_id": self.run,
            "verdict": self.verdict,
            "drifted_features": list(self.drifted),
            "violations": self.violations,
            "report": self.report,
            "time": _iso(self.time),
            "lockgate_version": __version__,
        }

    def one_line(self) -> str:
        """The alert as one log line (ASCII punctuation, at most five features named)."""
        shown = ", ".join(self.drifted[:_SHOWN_FEATURES])
        hidden = len(self.drifted) - _SHOWN_FEATURES
        drift = f"; drifted: {shown}" + (f" (+{hidden} more)" if hidden > 0 else "")
        plural = "" if self.violations == 1 else "s"
        text = (
            f"lockgate monitoring: {self.verdict} on endpoint {self.endpoint} ({self.env}), "
            f"{self.violations} violation{plural}{drift if shown else ''}; run {self.run} "
            f"at {_iso(self.time)}; report {self.report}"
        )
        return " ".join(text.split())


class Notifier(Protocol):
    """Somewhere an alert is delivered.

    ``notify`` never raises for a failed delivery: it returns one line saying what happened
    (delivered or not, and why), for the run's log.
    """

    def notify(self, alert: Alert) -> str:
        """Deliver ``alert``; one line on what happened."""


@dataclass(frozen=True)
class WebhookResult:
    """What :func:`post_webhook` did."""

    delivered: bool
    attempts: int
    status: int | None
    """The last HTTP status received, None if no answer came."""
    error: str | None
    """Why the last attempt failed, one line; None once delivered."""
    target: str
    """``scheme://host[:port]`` of the webhook: its path may hold a secret, so it is not shown."""

    def describe(self) -> str:
        """One line for the log."""
        tries = f"{self.attempts} attempt{'' if self.attempts == 1 else 's'}"
        if self.delivered:
            return f"webhook {self.target}: delivered (HTTP {self.status}) after {tries}"
        return f"webhook {self.target}: not delivered after {tries}: {self.error}"


class WebhookNotifier:
    """Posts alerts as JSON to an http(s) URL (Slack-style webhooks read the ``text`` key)."""

    def __init__(self, url: str, *, budget: float = 20.0) -> None:
        """Raises ConfigError if ``url`` is not an http:// or https:// URL."""
        self.target = webhook_target(url)
        self._url = url
        self._budget = budget

    def notify(self, alert: Alert) -> str:
        """POST the alert with retries, at most ``budget`` seconds; what happened."""
        return post_webhook(self._url, alert, budget=self._budget).describe()

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.target!r})"


def post_webhook(
    url: str,
    alert: Alert,
    *,
    attempts: int = 4,
    first_delay: float = 0.5,
    timeout: float = 5.0,
    budget: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WebhookResult:
    """POST ``alert.as_dict()`` as JSON to ``url``; never raises for a failed delivery.

    Connection errors, timeouts, 408, 429 and 5xx are retried up to ``attempts`` times in all,
    waiting ``first_delay`` doubled each time (jittered between half and all of it) or the
    ``Retry-After`` the server asked for, if longer. Other answers (4xx, redirects) are final.
    Each attempt is cut off after ``timeout`` seconds and nothing runs past ``budget``: a retry
    that would not fit is not made.

    Raises:
        ConfigError: ``url`` is not an http:// or https:// URL.
    """
    target = webhook_target(url)
    body = json.dumps(alert.as_dict()).encode()
    deadline = clock() + budget
    outcome = _Outcome(error=f"no attempt fitted in the {budget:g} s budget")
    tried = 0
    while tried < attempts:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        tried += 1
        outcome = _attempt(url, body, min(timeout, remaining))
        if outcome.status is not None and 200 <= outcome.status < 300:
            return WebhookResult(True, tried, outcome.status, None, target)
        if not outcome.retryable or tried == attempts:
            break
        delay = first_delay * 2 ** (tried - 1) * (0.5 + _jitter.random() / 2)
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        if delay >= deadline - clock():
            outcome.error += f"; a retry in {delay:.1f} s would pass the {budget:g} s budget"
            break
        sleep(delay)
    return WebhookResult(False, tried, outcome.status, outcome.error, target)


def webhook_target(url: str) -> str:
    """``scheme://host[:port]`` of a webhook URL, to name it without its secret path.

    Raises:
        ConfigError: ``url`` is not an http:// or https:// URL with a host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        given = f"a {scheme}: URL" if scheme else "not a URL"
        raise ConfigError(
            f"webhook_url is {given}; set it to an http:// or https:// URL "
            "(e.g. https://hooks.example.com/...) in [monitor] of lockgate.toml"
        )
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        raise ConfigError(f"webhook_url for {parts.hostname} has an invalid port") from None
    return f"{scheme}://{parts.hostname}{port}"


_jitter = random.SystemRandom()


@dataclass
class _Outcome:
    status: int | None = None
    error: str = ""
    retryable: bool = True
    retry_after: float | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A POST redirected would be resent as a GET or refused; report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _attempt(url: str, body: bytes, timeout: float) -> _Outcome:
    """One POST, given up after ``timeout`` seconds even if the server trickles bytes."""
    results: list[_Outcome] = []
    worker = threading.Thread(
        target=lambda: results.append(_post(url, body, timeout)), name="webhook", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if results:
        return results[0]
    return _Outcome(error=f"no answer within {timeout:.3g} s")


def _post(url: str, body: bytes, timeout: float) -> _Outcome:
    request = urllib.request.Request(  # noqa: S310 (webhook_target allowed only http and https)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"lockgate/{__version__}"},
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            return _Outcome(status=response.status)
    except urllib.error.HTTPError as answer:
        with answer:
            return _refusal(answer)
    except urllib.error.URLError as exc:
        return _Outcome(error=f"cannot connect: {_one_line(exc.reason)}")
    except TimeoutError:
        return _Outcome(error=f"no answer within {timeout:.3g} s")
    except (OSError, http.client.HTTPException) as exc:
        return _Outcome(error=f"connection failed: {_one_line(exc) or type(exc).__name__}")
    except Exception as exc:  # a delivery failure must not end the monitoring run
        return _Outcome(error=f"{type(exc).__name__}: {_one_line(exc)}", retryable=False)


def _refusal(answer: urllib.error.HTTPError) -> _Outcome:
    status = answer.code
    if 300 <= status < 400:
        where = urlsplit(answer.headers.get("Location", "")).hostname or "elsewhere"
        return _Outcome(
            status,
            f"HTTP {status} redirects to {where}; set webhook_url to the final URL",
            retryable=False,
        )
    try:
        snippet = _one_line(answer.read(_BODY_SNIPPET).decode("utf-8", "replace"))
    except (OSError, http.client.HTTPException):
        snippet = ""
    error = f"HTTP {status} {answer.reason}".rstrip() + (f": {snippet}" if snippet else "")
    retryable = status in _RETRIED_STATUSES or status >= 500
    return _Outcome(status, error, retryable, _retry_after(answer.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())
