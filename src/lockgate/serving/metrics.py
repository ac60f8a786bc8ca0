"""Request counters and a latency histogram in Prometheus' text exposition format.

Plain integers and floats, updated only on the event loop's thread, so no lock is needed
and a request pays a few additions. Background threads only read them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Latency histogram bucket bounds, seconds."""


class Metrics:
    """What /metrics reports about /invocations."""

    def __init__(self) -> None:
        self.by_status: Counter[int] = Counter()
        self.errors = 0
        self.rows = 0
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe(self, status: int, seconds: float, rows: int) -> None:
        """Count one answered request."""
        self.by_status[status] += 1
        if status >= 500:
            self.errors += 1
        self.rows += rows
        self.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def render(self, model_labels: dict[str, str] | None, capture_dropped: int = 0) -> str:
        """The exposition text; ``model_labels`` (model, version, package_sha256) is the
        package serving now, or None before one is loaded."""
        lines = [
            "# HELP lockgate_requests_total Prediction requests answered, by HTTP status.",
            "# TYPE lockgate_requests_total counter",
        ]
        lines += [
            f'lockgate_requests_total{{code="{code}"}} {count}'
            for code, count in sorted(self.by_status.items())
        ]
        lines += [
            "# HELP lockgate_errors_total Prediction requests answered with a server error (5xx).",
            "# TYPE lockgate_errors_total counter",
            f"lockgate_errors_total {self.errors}",
            "# HELP lockgate_rows_predicted_total Rows predicted.",
            "# TYPE lockgate_rows_predicted_total counter",
            f"lockgate_rows_predicted_total {self.rows}",
            "# HELP lockgate_request_duration_seconds Time to answer a prediction request.",
            "# TYPE lockgate_request_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*BUCKETS, "+Inf"), self.bucket_counts, strict=True):
            cumulative += count
            lines.append(f'lockgate_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines += [
            f"lockgate_request_duration_seconds_sum {self.latency_sum}",
            f"lockgate_request_duration_seconds_count {cumulative}",
            "# HELP lockgate_capture_dropped_total Data-capture records dropped (store down).",
            "# TYPE lockgate_capture_dropped_total counter",
            f"lockgate_capture_dropped_total {capture_dropped}",
        ]
        if model_labels is not None:
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in model_labels.items())
            lines += [
                "# HELP lockgate_model_info The model package serving now.",
                "# TYPE lockgate_model_info gauge",
                f"lockgate_model_info{{{labels}}} 1",
            ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
