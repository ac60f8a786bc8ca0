"""Retrain requests land in the environment's ledger, where `lockgate up` finds them."""

from __future__ import annotations

from pathlib import Path

from lockgate.local.file_store import FileStore
from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.monitoring.job import REQUESTS, TRAINING
from lockgate.pipelines.monitoring.retrain import ledger_requests


def test_each_request_is_appended_and_the_message_says_where_and_what_next(
    tmp_path: Path,
) -> None:
    store = FileStore((tmp_path / "store").as_uri())
    retrain = ledger_requests(store, "staging", "run `lockgate train`")

    first = retrain({"dataset": "churn", "reason": "drift in tenure"})
    second = retrain({"dataset": "churn", "reason": "drift in plan"})

    entries = Ledger(store).recent(REQUESTS, TRAINING, 10)
    assert [entry.record["reason"] for entry in entries][-2:] == [
        "drift in tenure",
        "drift in plan",
    ]
    assert first.startswith(f"retrain requested (ledger/{REQUESTS}/{TRAINING}/ #")
    assert "in staging); run `lockgate train`" in second
    assert first != second  # each names its own entry
