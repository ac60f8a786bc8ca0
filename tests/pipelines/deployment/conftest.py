"""Environments for promotion tests: folder stores, an in-memory registry, a recording endpoint.

The registry and endpoint are fakes on purpose: the MLflow registry and the endpoint server
have their own suites; here what matters is what promotion asks of them, and in which order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from lockgate.config import GatesConfig
from lockgate.local.file_store import FileStore
from lockgate.pipelines.deployment.promotion import Environment
from lockgate.pipelines.training.package import package_prefix, write_package_to_store
from lockgate.ports.endpoint import Deployment, DeploymentFailed, DeployRequest
from lockgate.ports.tracking import ModelVersionRecord
from tests.packages import Prepared, make_package, prepare_churn


class MemoryRegistry:
    """Versions numbered per name, tags and aliases, in memory."""

    def __init__(self) -> None:
        self.models: dict[str, list[ModelVersionRecord]] = {}
        self.aliases: dict[tuple[str, str], int] = {}

    def register(
        self, name: str, source_uri: str, run_id: str | None, tags: Mapping[str, str]
    ) -> int:
        versions = self.models.setdefault(name, [])
        for record in versions:
            if record.source == source_uri:
                record.tags.update(tags)
                return record.version
        record = ModelVersionRecord(name, len(versions) + 1, dict(tags), "READY", None, source_uri)
        versions.append(record)
        return record.version

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.models[name][version - 1].tags[key] = value

    def versions(self, name: str) -> list[ModelVersionRecord]:
        return list(self.models.get(name, []))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.aliases[(name, alias)] = version


@dataclass
class RecordingEndpoint:
    """Remembers what it was asked to deploy; fails when told to."""

    requests: list[DeployRequest] = field(default_factory=list)
    fail_with: str | None = None
    serving: str | None = None

    def deploy(self, request: DeployRequest) -> Deployment:
        self.requests.append(request)
        if self.fail_with:
            raise DeploymentFailed(self.fail_with)
        self.serving = request.package_sha256
        return Deployment("serving", "http://127.0.0.1:1", package_sha256=request.package_sha256)

    def status(self) -> Deployment:
        if self.serving is None:
            return Deployment("not_running", "http://127.0.0.1:1")
        return Deployment("serving", "http://127.0.0.1:1", package_sha256=self.serving)


@dataclass
class World:
    """dev (the home: training registers there), staging and prod, each with its own store,
    registry and endpoint."""

    prepared: Prepared
    envs: dict[str, Environment]
    endpoints: dict[str, RecordingEndpoint]
    registries: dict[str, MemoryRegistry]

    @property
    def home(self) -> Environment:
        return self.envs["dev"]

    def publish(self, version: int, model: object = None, trained_by: str = "trainer") -> str:
        """Build and register version ``version`` in dev, as training does; its sha256."""
        from lockgate.pipelines.training.package import package_sha256

        kind = type(model).__name__ if model is not None else "default"
        folder = self.prepared.raw_csv.parent.parent / "built" / f"{version}-{kind}-{trained_by}"
        if not folder.exists():
            make_package(self.prepared, folder, model=model, version=version, trained_by=trained_by)
        write_package_to_store(self.home.store, folder, package_prefix("churn", version))
        self.registries["dev"].register(
            "churn", f"run:/{version}", None, {"status": "pending_approval"}
        )
        return package_sha256(folder)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    return prepare_churn(tmp_path_factory.mktemp("churn"), rows=1200)


@pytest.fixture
def world(prepared: Prepared, tmp_path: Path) -> World:
    envs: dict[str, Environment] = {}
    endpoints: dict[str, RecordingEndpoint] = {}
    registries: dict[str, MemoryRegistry] = {}
    for name in ("dev", "staging", "prod"):
        endpoints[name] = RecordingEndpoint()
        registries[name] = MemoryRegistry()
        store = prepared.store if name == "dev" else FileStore((tmp_path / name).as_uri())
        envs[name] = Environment(
            name=name,
            store=store,
            registry=registries[name],
            registry_uri=f"memory://{name}",
            work_dir=tmp_path / "work" / name,
            gates=GatesConfig.default_for(name),
            endpoint=endpoints[name],
            endpoint_name=f"lockgate-{name}",
        )
    # dev's store is shared by the module's tests: give each test a clean ledger and models.
    for prefix in ("ledger/", "models/"):
        for info in prepared.store.list(prefix):
            prepared.store.delete(info.key)
    return World(prepared, envs, endpoints, registries)


@pytest.fixture
def bad_model() -> Callable[[], DummyClassifier]:
    """A model that always predicts the majority class (roc_auc 0.5)."""
    return lambda: DummyClassifier(strategy="prior")
