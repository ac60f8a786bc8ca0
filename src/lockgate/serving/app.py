"""The endpoint application: SageMaker's container contract for one lockgate model package.

Routes:

* ``GET /ping``: 200 once a package is loaded and answered its warm-up prediction, else 503.
* ``POST /invocations``: predictions for CSV (with or without a header), JSON or JSON Lines
  rows; ``Accept`` picks a JSON or CSV answer. Every refusal is a 4xx with ``{"error": ...}``
  naming the problem; a model that fails is a 500, counted as an error.
* ``GET /metrics``: Prometheus text (requests by status, errors, rows, latency, model info).
* ``GET /version``: the package serving, its release and the lockgate version.
* ``POST /lockgate/swap``: ``{"model_dir": ..., "release": {...}}`` with the server's
  ``X-Lockgate-Token``: load that package beside the current one and switch once it answered
  its warm-up (200 and the /version document); if it cannot, 409 and the old one serves on.
  A release older than the one serving (a lower ``release.seq``: promotions that overlapped)
  is refused with 409 too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

import lockgate
from lockgate.pipelines.deployment.payload import RequestRejected
from lockgate.pipelines.monitoring.capture import DEFAULT_VARIANT
from lockgate.ports.endpoint import DeploymentFailed
from lockgate.ports.store import Store
from lockgate.serving.capture import Capture
from lockgate.serving.model import load_served
from lockgate.serving.records import Recorder, new_server_id
from lockgate.serving.service import DEFAULT_MAX_BODY_BYTES, Service

TOKEN_HEADER = "x-lockgate-token"  # noqa: S105 - a header name, not a secret


def create_app(
    model_dir: Path | str | None = None,
    *,
    release: dict[str, Any] | None = None,
    token: str | None = None,
    store: Store | None = None,
    env: str | None = None,
    endpoint_name: str = "lockgate",
    variant: str = DEFAULT_VARIANT,
    capture_percent: float = 100.0,
    capture_flush_seconds: float = 5.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    stats_interval: float = 60.0,
    server_id: str | None = None,
) -> FastAPI:
    """The endpoint application.

    Args:
        model_dir: the package to serve, loaded and warmed up here (so a broken package fails
            before the server binds); None starts without one (/ping answers 503 until a swap).
        release: the release record being served, reported by /version and serving records.
        token: the secret ``POST /lockgate/swap`` needs in ``X-Lockgate-Token``; None
            disables swapping.
        store: where data capture and serving records go (None: neither is written).
        env: the environment; with ``store``, serving records go to ``ledger/serving/<env>/``.
        endpoint_name, variant: capture files go under
            ``monitoring/capture/<endpoint_name>/<variant>/``.
        capture_percent: the share of successful predictions captured (0 disables capture).
        capture_flush_seconds: the longest a captured request waits before it is written.
        max_body_bytes: larger requests are refused with 413.
        stats_interval: seconds between checks for serving records to write.
        server_id: this server in serving records (default: host, pid and a random part).

    Raises:
        DeploymentFailed: ``model_dir`` cannot be loaded or fails its warm-up prediction.
    """
    current = None if model_dir is None else load_served(Path(model_dir), release)
    capture = None
    if store is not None and capture_percent > 0:
        capture = Capture(
            store,
            endpoint_name,
            variant=variant,
            percent=capture_percent,
            flush_seconds=capture_flush_seconds,
        )
    service = Service(current, token=token, max_body_bytes=max_body_bytes, capture=capture)
    if store is not None and env is not None:
        service.recorder = Recorder(
            store,
            env,
            endpoint_name,
            server_id or new_server_id(),
            lambda: service.current,
            interval=stats_interval,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = FastAPI(
        title="lockgate endpoint",
        version=lockgate.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.service = service

    @app.get("/ping")
    async def ping() -> Response:
        if service.current is None:
            return _error(503, "no model is loaded yet")
        return JSONResponse({"status": "ready"})

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        return await service.invoke(request)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics_text(), media_type="text/plain; version=0.0.4")

    @app.get("/version")
    async def version() -> Response:
        return JSONResponse(service.version())

    @app.post("/lockgate/swap")
    async def swap(request: Request) -> Response:
        try:
            service.check_token(request.headers.get(TOKEN_HEADER))
            model_dir, release = _swap_request(await request.body())
            await service.swap(model_dir, release)
        except RequestRejected as exc:
            return _error(exc.status, exc.message)
        except DeploymentFailed as exc:
            return _error(409, str(exc))
        return JSONResponse(service.version())

    return app


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status)


def _swap_request(body: bytes) -> tuple[Path, dict[str, Any]]:
    try:
        document = json.loads(body)
    except ValueError:
        raise RequestRejected(400, "the swap request is not valid JSON") from None
    model_dir = document.get("model_dir") if isinstance(document, dict) else None
    if not isinstance(model_dir, str) or not model_dir:
        raise RequestRejected(400, 'send {"model_dir": "/path/to/package", "release": {...}}')
    release = document.get("release") or {}
    if not isinstance(release, dict):
        raise RequestRejected(400, "'release' must be a JSON object")
    return Path(model_dir), release
