"""Retrain requests: what monitoring leaves in an environment's ledger when it finds drift.

`lockgate up` takes open requests up (a study on the latest data version); on AWS, where no
`up` runs, a user or a workflow runs `lockgate train`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lockgate.pipelines.ledger import Ledger
from lockgate.pipelines.monitoring.job import REQUESTS, TRAINING
from lockgate.ports.store import Store


def ledger_requests(store: Store, env: str, next_step: str) -> Callable[[dict[str, Any]], str]:
    """A ``retrain`` callable for :func:`~.job.run_monitoring`: it appends the request to
    ``store``'s ledger and says where it went and ``next_step``."""

    def retrain(request: dict[str, Any]) -> str:
        entry = Ledger(store).append(REQUESTS, TRAINING, request)
        where = f"ledger/{REQUESTS}/{TRAINING}/ #{entry.seq} in {env}"
        return f"retrain requested ({where}); {next_step}"

    return retrain
