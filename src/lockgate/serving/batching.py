"""Micro-batching: requests that arrive together are answered by one model call.

For one row, almost all of a prediction's cost is fixed per call (each Arrow kernel, the
TF-IDF vectorizer, scikit-learn's input checks, one pass per tree), so eight single-row
requests cost about what one does when answered together. No request waits for company:
the first one of an idle server is answered at once, and whatever arrives while the model is
busy forms the next batch.

Small batches run on the event loop itself: a thread hop costs more than they take, and
with the GIL a thread would not run beside the loop anyway. A large batch (a big CSV) runs
in a worker thread so that /ping and /metrics stay answerable meanwhile.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lockgate.pipelines.deployment.payload import Rows
from lockgate.serving.model import Outcome, ServedModel

INLINE_ROWS = 256
"""Batches up to this many rows are predicted on the event loop."""


@dataclass(frozen=True)
class _Job:
    model: ServedModel
    rows: Rows
    future: asyncio.Future[Outcome]


class Batcher:
    """Queues requests and answers them in batches, one batch at a time."""

    def __init__(self, inline_rows: int = INLINE_ROWS) -> None:
        self.inline_rows = inline_rows
        self._queue: list[_Job] = []
        self._drainer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lockgate-predict")

    async def answer(self, model: ServedModel, rows: Rows) -> Outcome:
        """``model``'s answer to ``rows``, predicted together with whatever else is queued."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.append(_Job(model, rows, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    def close(self) -> None:
        """Stop the worker thread (after any batch it is running)."""
        self._executor.shutdown(wait=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        jobs: list[_Job] = []
        try:
            while self._queue:
                # One more pass of the loop first: requests whose bytes have already arrived
                # are parsed in it and join this batch instead of waiting for the next.
                await asyncio.sleep(0)
                jobs, self._queue = self._queue, []
                try:
                    if sum(job.rows.count for job in jobs) <= self.inline_rows:
                        outcomes = _answer(jobs)
                    else:
                        outcomes = await loop.run_in_executor(self._executor, _answer, jobs)
                except Exception as exc:  # a bug, not a bad request: those requests get a 500
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                for job, outcome in zip(jobs, outcomes, strict=True):
                    if not job.future.done():
                        job.future.set_result(outcome)
        finally:
            self._drainer = None
            for job in (*jobs, *self._queue):  # only when cancelled: the server is stopping
                job.future.cancel()
            self._queue = []


def _answer(jobs: list[_Job]) -> list[Outcome]:
    """Answer ``jobs`` in order, one model call per package (a swap may split a batch)."""
    outcomes: dict[int, Outcome] = {}
    by_model: dict[int, list[int]] = {}
    for index, job in enumerate(jobs):
        by_model.setdefault(id(job.model), []).append(index)
    for indices in by_model.values():
        model = jobs[indices[0]].model
        answers = model.answer([jobs[i].rows for i in indices])
        outcomes.update(zip(indices, answers, strict=True))
    return [outcomes[index] for index in range(len(jobs))]
