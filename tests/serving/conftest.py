"""Real churn packages, real uvicorn servers on 127.0.0.1, and a plain HTTP client.

Packages are built once per session; each server runs in a thread of the test process on a
port the OS picks, and is stopped (gracefully, as on SIGTERM) when its ``with`` block ends.
Every wait is bounded.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from lockgate.config import DatasetConfig, PrepConfig
from lockgate.local.file_store import FileStore
from lockgate.pipelines.data import prepare
from lockgate.pipelines.data.versions import load_split, read_manifest, read_verified
from lockgate.pipelines.training.package import PackageInfo, build_package, load_package
from lockgate.sample.churn import CHURN_COLUMNS, CHURN_TARGET
from lockgate.serving.service import Service
from tests.cli.conftest import wait_until
from tests.packages import Prepared, make_package, prepare_churn
from tests.serving.models import BreaksWhenLoaded, Fragile

START_WAIT = 60.0
"""Seconds a server may take to bind (a loaded CI machine is slow)."""
COLUMNS = list(CHURN_COLUMNS)
"""The churn package's columns in schema order, id first: what headerless CSV lists."""
FEATURES = [name for name, kind in CHURN_COLUMNS.items() if kind != "id"]
TOKEN = secrets.token_urlsafe(16)
"""The swap token of the servers tests start."""


@dataclass(frozen=True)
class Packages:
    """Churn model packages built from one prepared dataset version."""

    prepared: Prepared
    logistic: Path
    """Version 1: a logistic regression."""
    boosted: Path
    """Version 2: gradient-boosted trees (what the benchmark serves)."""
    fragile: Path
    """Version 3: raises on out-of-range features (a 500 for some requests only)."""
    breaks: Path
    """Version 4: fails every prediction once loaded (fails its warm-up)."""


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    root = tmp_path_factory.mktemp("serving-packages")
    prepared = prepare_churn(root, rows=800)
    return Packages(
        prepared,
        make_package(prepared, root / "logistic", version=1),
        make_package(
            prepared,
            root / "boosted",
            model=HistGradientBoostingClassifier(max_iter=20, random_state=0),
            version=2,
        ),
        make_package(
            prepared, root / "fragile", model=Fragile(LogisticRegression(max_iter=500)), version=3
        ),
        make_package(
            prepared,
            root / "breaks",
            model=BreaksWhenLoaded(LogisticRegression(max_iter=500)),
            version=4,
        ),
    )


@pytest.fixture(scope="session")
def regression_package(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression package: ``total_charges`` from the other churn columns (ridge)."""
    root = tmp_path_factory.mktemp("regression")
    store = FileStore((root / "store").as_uri())
    store.put_file("raw/charges/churn.csv", packages.prepared.raw_csv)
    config = DatasetConfig(
        target="total_charges",
        task="regression",
        columns={n: k for n, k in CHURN_COLUMNS.items() if n != "total_charges"},
        prep=PrepConfig(text_max_features=16),
    )
    version = prepare(store, "charges", config).version
    assert version is not None
    manifest = read_manifest(store, "charges", version)
    features, target = load_split(store, manifest, "train")
    return build_package(
        root / "package",
        model=Ridge().fit(features, target),
        transformer_bytes=read_verified(store, manifest, "transformer.pkl"),
        schema=json.loads(read_verified(store, manifest, "schema.json")),
        info=PackageInfo("charges", "charges", manifest.version, "Ridge", {}, {}, version=1),
    )


@dataclass(frozen=True)
class Sample:
    """Rows of the raw churn CSV the packages were trained on (target dropped)."""

    rows: list[dict[str, str]]

    def csv(self, count: int, *, columns: Sequence[str] = COLUMNS, header: bool = False) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(columns)
        writer.writerows([row[name] for name in columns] for row in self.rows[:count])
        return out.getvalue().encode()

    def records(self, count: int, columns: Sequence[str] = COLUMNS) -> list[dict[str, Any]]:
        """Rows as JSON records, numbers as numbers and empty fields as null."""
        return [{name: _typed(name, row[name]) for name in columns} for row in self.rows[:count]]

    def ids(self, count: int) -> list[str]:
        return [row["customer_id"] for row in self.rows[:count]]


def _typed(name: str, value: str) -> Any:
    if value == "":
        return None
    return float(value) if CHURN_COLUMNS[name] == "numeric" else value


@pytest.fixture(scope="session")
def sample(packages: Packages) -> Sample:
    with packages.prepared.raw_csv.open(encoding="utf-8", newline="") as handle:
        rows = [
            {name: value for name, value in row.items() if name != CHURN_TARGET}
            for row in csv.DictReader(handle)
        ]
    # The rows with a missing value and a ticket text first: requests use the first few.
    rows.sort(key=lambda row: (row["monthly_charges"] != "", row["last_ticket_text"] == ""))
    return Sample(rows[:50])


def assert_close(got: Any, expected: Any) -> None:
    """Probabilities equal but for float rounding (the same features, the same model)."""
    np.testing.assert_allclose(np.asarray(got, float), np.asarray(expected, float), rtol=1e-9)


def expected_probabilities(package: Path, records: list[dict[str, Any]]) -> list[list[float]]:
    """What the package itself predicts for ``records`` (its own, lenient, code path)."""
    return [list(map(float, row)) for row in load_package(package).predict_proba(records)]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str:
        document = self.json()
        assert set(document) == {"error"}, document
        return str(document["error"])

    def csv(self) -> list[list[str]]:
        return list(csv.reader(io.StringIO(self.body.decode())))


@dataclass(frozen=True)
class Running:
    """A server running in this process."""

    url: str
    host: str
    port: int
    app: FastAPI

    @property
    def service(self) -> Service:
        service: Service = self.app.state.service
        return service

    def call(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(
                method,
                path,
                body=body,
                headers=dict(headers or {}),
                encode_chunked=body is not None and not isinstance(body, bytes),
            )
            response = connection.getresponse()
            return Reply(
                response.status,
                {key.lower(): value for key, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def predict(
        self, body: bytes | Any, content_type: str | None = None, accept: str | None = None
    ) -> Reply:
        """POST /invocations; anything but bytes is sent as JSON."""
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        headers = {"Content-Type": content_type or "text/csv"}
        if accept is not None:
            headers["Accept"] = accept
        return self.call("POST", "/invocations", body, headers)

    def swap(self, model_dir: Path, release: Any = None, token: str | None = None) -> Reply:
        body = json.dumps({"model_dir": str(model_dir), "release": release or {}}).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["X-Lockgate-Token"] = token
        return self.call("POST", "/lockgate/swap", body, headers)


@contextmanager
def serving(app: FastAPI) -> Iterator[Running]:
    """Serve ``app`` on 127.0.0.1 (a free port) in a thread; stop it gracefully on leaving."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), START_WAIT, "the server to bind")
    assert server.started, "the server stopped during start-up"
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield Running(f"http://{host}:{port}", host, port, app)
    finally:
        server.should_exit = True
        thread.join(START_WAIT)
        assert not thread.is_alive(), "the server did not stop"


def metric_values(text: str) -> dict[str, float]:
    """Prometheus exposition text as ``{'name{labels}': value}``; fails on a malformed line."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        assert name and not name.endswith(" "), f"malformed metric line: {line!r}"
        values[name] = float(value)
    return values
