"""The state behind the endpoint's routes: the package serving now, and what was counted.

The package is swapped by assigning :attr:`Service.current` (one reference, atomic for the
event loop); a request keeps the package it started with until it is answered.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from pathlib import Path
from time import perf_counter
from typing import Any, TypeGuard

from starlette.requests import Request
from starlette.responses import Response

import lockgate
from lockgate.pipelines.deployment.payload import JSON, RequestRejected, media_type, parse_rows
from lockgate.pipelines.training.package import package_sha256
from lockgate.ports.endpoint import DeploymentFailed
from lockgate.serving.batching import Batcher
from lockgate.serving.capture import Capture
from lockgate.serving.metrics import Metrics
from lockgate.serving.model import Answer, ModelFailed, ServedModel, load_served
from lockgate.serving.records import Recorder
from lockgate.serving.responses import error_body, render, response_type

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker's limit on a real-time request's payload."""
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
"""SageMaker passes the caller's InferenceId in this header."""


class Service:
    """The package serving now, how to answer with it, swap it, and what was counted."""

    def __init__(
        self,
        current: ServedModel | None,
        *,
        token: str | None,
        max_body_bytes: int,
        capture: Capture | None = None,
    ) -> None:
        self.current = current
        # One tally per package for the life of the process: a package swapped out and back
        # in (a rollback) counts on, so its last serving record is its total here.
        self._tallies = {} if current is None else {current.sha256: current.tally}
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.capture = capture
        self.metrics = Metrics()
        self.batcher = Batcher()
        self.recorder: Recorder | None = None
        """Set by the caller, given a store and an environment (it reads :attr:`current`)."""
        self._swapping = asyncio.Lock()

    async def invoke(self, request: Request) -> Response:
        """Answer one ``POST /invocations``; whatever goes wrong is answered, never raised."""
        started = perf_counter()
        model = self.current
        inference_id = request.headers.get(INFERENCE_ID_HEADER) or uuid.uuid4().hex
        body, rows = b"", 0
        try:
            if model is None:
                raise RequestRejected(
                    503, "no model is loaded yet; wait for GET /ping to answer 200"
                )
            media = media_type(request.headers.get("content-type"))
            if media is None:
                raise RequestRejected(
                    415,
                    f"content type '{request.headers.get('content-type', '')}' is not supported; "
                    "send text/csv, application/json or application/jsonlines",
                )
            kind = response_type(request.headers.get("accept"), media)
            body = await self._body(request)
            parsed = parse_rows(body, media, model.columns)
            outcome = await self.batcher.answer(model, parsed)
            if not isinstance(outcome, Answer):
                raise outcome
            head = {
                "inference_id": inference_id,
                "model": model.name,
                "model_version": model.version,
            }
            payload = render(kind, parsed, outcome, model.ids, model.classes, head)
            status, rows = 200, parsed.count
        except RequestRejected as exc:
            status, payload, kind = exc.status, error_body(exc.message), JSON
        except ModelFailed as exc:
            log.error("%s", exc)
            status, payload, kind = 500, error_body(str(exc)), JSON
        except Exception as exc:  # a bug must still answer, and be counted as an error
            log.exception("prediction request failed")
            status, kind = 500, JSON
            payload = error_body(f"internal error: {type(exc).__name__}: {exc}")
        self.metrics.observe(status, perf_counter() - started, rows)
        if model is not None:
            self._count(model, status)
        if status == 200 and self.capture is not None:
            self.capture.offer(inference_id, request.headers["content-type"], body, kind, payload)
        return Response(payload, status, {"x-inference-id": inference_id}, kind)

    async def _body(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestRejected(413, f"the body is {declared} bytes; the limit is {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestRejected(413, f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body.strip():
            raise RequestRejected(400, "the request body is empty; send at least one row")
        return body

    @staticmethod
    def _count(model: ServedModel, status: int) -> None:
        tally = model.tally
        tally.requests += 1
        if status >= 500:
            tally.errors += 1
        elif status >= 400:
            tally.rejected += 1

    async def swap(self, model_dir: Path, release: dict[str, Any]) -> ServedModel:
        """Serve the package in ``model_dir`` from now on (see :func:`create_app`).

        The package already serving is not reloaded: the endpoint just serves it as
        ``release`` from now on (same release: nothing changes).

        Raises:
            RequestRejected: 409, ``release`` is older (a lower ``seq``) than the release
                serving: two promotions overlapped and this one's swap arrived last.
            DeploymentFailed: it cannot be loaded or warmed up; the current one still serves.
        """
        async with self._swapping:
            current = self.current
            if current is not None:
                _check_order(current.release, release)
            try:
                sha256 = await asyncio.to_thread(package_sha256, model_dir)
            except Exception as exc:
                raise DeploymentFailed(
                    f"cannot read the model package in {model_dir}: {exc}"
                ) from exc
            if current is not None and current.sha256 == sha256:
                if release and release != current.release:
                    current.release = dict(release)
                return current
            loaded = await asyncio.to_thread(load_served, model_dir, release)
            loaded.tally = self._tallies.setdefault(loaded.sha256, loaded.tally)
            self.current = loaded
            if current is not None and self.recorder is not None:
                self.recorder.retire(current)
            log.info(
                "now serving %s version %s (%s)", loaded.name, loaded.version, loaded.sha256[:12]
            )
            return loaded

    def check_token(self, given: str | None) -> None:
        if self.token is None:
            raise RequestRejected(
                403, "swapping is disabled: the server was started without a token"
            )
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            raise RequestRejected(403, "wrong or missing X-Lockgate-Token")

    def version(self) -> dict[str, Any]:
        model = self.current
        document: dict[str, Any] = {"lockgate_version": lockgate.__version__}
        if model is None:
            return {"model": None, **document}
        return {
            "model": model.name,
            "version": model.version,
            "package_sha256": model.sha256,
            "data_version": model.package.info.get("data_version"),
            "release": model.release,
            "loaded_at": model.loaded_at.isoformat(timespec="milliseconds"),
            **document,
        }

    def metrics_text(self) -> str:
        model = self.current
        labels = None
        if model is not None:
            labels = {
                "model": model.name,
                "version": str(model.version),
                "package_sha256": model.sha256,
            }
        dropped = self.capture.dropped if self.capture is not None else 0
        return self.metrics.render(labels, dropped)

    def start(self) -> None:
        if self.capture is not None:
            self.capture.start()
        if self.recorder is not None:
            self.recorder.start()

    def stop(self) -> None:
        """Flush capture, write the final serving records, stop the worker thread."""
        self.batcher.close()
        if self.capture is not None:
            self.capture.close()
        if self.recorder is not None:
            self.recorder.close()


def _check_order(serving: dict[str, Any], release: dict[str, Any]) -> None:
    """Refuse a release older than the one serving, when both carry their ledger ``seq``."""
    served, wanted = serving.get("seq"), release.get("seq")
    if _is_seq(served) and _is_seq(wanted) and wanted < served:
        raise RequestRejected(
            409,
            f"release #{wanted} is older than release #{served} which this endpoint serves; "
            "not swapped, the newer release serves on",
        )


def _is_seq(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
