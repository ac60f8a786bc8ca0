"""MLflow implementations of :class:`~lockgate.ports.tracking.Tracker` and ``Registry``.

Only the training commands import this module (MLflow takes seconds to import). Every write is
batched: a trial costs three backend calls however many values it logs (``create_run``, one
``log_batch`` per 1000 values, ``set_terminated``), where ``log_metric`` per value costs
milliseconds each. No MLflow model flavour is used: a lockgate model package is a plain folder,
logged as artifacts and registered by its artifact URI.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse, urlunparse

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lockgate.ports.tracking import (
    ERROR_TAG,
    KIND_TAG,
    PARENT_RUN_TAG,
    STUDY_TAG,
    TRIAL_TAG,
    ModelVersionRecord,
    ParamValue,
    Registry,
    RunState,
    Tracker,
    TrackingError,
)

# MLflow's documented limits for one log_batch call (mlflow.utils.validation).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_TAG_VALUE = 8000
REACHABILITY_TIMEOUT = 5.0
"""Seconds to wait for an HTTP tracking server to answer before calling it unreachable."""

# MLflow announces its SQLite schema migrations at INFO on first use of a new database; that
# is noise on a user's terminal, not news.
for _name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def local_tracking_uri(env_dir: Path) -> tuple[str, str]:
    """The tracking URI and artifact root of an environment's embedded MLflow.

    Returns:
        ``(sqlite:///<env_dir>/mlflow.db, file://<env_dir>/mlartifacts)``, absolute.
    """
    env_dir = Path(env_dir).resolve()
    return f"sqlite:///{env_dir / 'mlflow.db'}", (env_dir / "mlartifacts").as_uri()


class MlflowTracker:
    """Tracks studies and trials in MLflow (implements :class:`~lockgate.ports.tracking.Tracker`).

    Args:
        tracking_uri: any MLflow tracking URI: ``sqlite:///...`` (see
            :func:`local_tracking_uri`), ``http(s)://`` server, a database URL.
        artifact_root: where new experiments keep their artifacts, as a URI. Defaults to the
            ``mlartifacts`` folder beside a SQLite database, and to the server's own default
            for any other backend.

    The MLflow client is created on first use, so constructing a tracker costs nothing; an
    ``http(s)`` server is probed once then, so an unreachable one fails in seconds instead of
    after MLflow's minutes of retries.
    """

    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root or _default_artifact_root(tracking_uri)
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}
        self._parents: dict[str, tuple[str, dict[str, str]]] = {}
        self._artifact_uris: dict[str, str] = {}
        self._pending_params: dict[str, list[Param]] = {}

    def start_study(self, experiment: str, study_name: str, tags: Mapping[str, str]) -> str:
        """See :meth:`lockgate.ports.tracking.Tracker.start_study`."""
        all_tags = {**tags, STUDY_TAG: study_name, KIND_TAG: "study"}
        with self._errors(f"start study '{study_name}'"):
            client = self._mlflow()
            experiment_id = self._experiment_id(experiment)
            found = client.search_runs(
                [experiment_id],
                filter_string=(
                    f"tags.`{STUDY_TAG}` = {_quoted(study_name)} AND tags.`{KIND_TAG}` = 'study'"
                ),
                max_results=1,
                order_by=["attributes.start_time ASC"],
            )
            if found:
                run = found[0]
                self._log_batch(run.info.run_id, [], [], _tags(all_tags))
                if run.info.status != "RUNNING":
                    client.update_run(run.info.run_id, status="RUNNING")
            else:
                run = client.create_run(experiment_id, tags=all_tags, run_name=study_name)
        run_id = str(run.info.run_id)
        self._artifact_uris[run_id] = run.info.artifact_uri
        self._parents[run_id] = (experiment_id, _inheritable(all_tags))
        return run_id

    def start_trial(
        self,
        parent_run_id: str,
        trial_number: int,
        params: Mapping[str, ParamValue],
        tags: Mapping[str, str],
    ) -> str:
        """See :meth:`lockgate.ports.tracking.Tracker.start_trial`."""
        with self._errors(f"start trial {trial_number}"):
            client = self._mlflow()
            if parent_run_id not in self._parents:
                parent = client.get_run(parent_run_id)
                self._parents[parent_run_id] = (
                    parent.info.experiment_id,
                    _inheritable(parent.data.tags),
                )
            experiment_id, inherited = self._parents[parent_run_id]
            run_tags = {
                **inherited,
                **tags,
                KIND_TAG: "trial",
                PARENT_RUN_TAG: parent_run_id,
                TRIAL_TAG: str(trial_number),
            }
            run = client.create_run(experiment_id, tags=run_tags, run_name=f"trial-{trial_number}")
        run_id = str(run.info.run_id)
        self._artifact_uris[run_id] = run.info.artifact_uri
        self._pending_params[run_id] = [Param(key, str(value)) for key, value in params.items()]
        return run_id

    def log_trial(
        self,
        run_id: str,
        metrics: Mapping[str, float],
        series: Mapping[str, list[float]],
        state: RunState,
        error: str | None = None,
    ) -> None:
        """See :meth:`lockgate.ports.tracking.Tracker.log_trial`."""
        now = int(time.time() * 1000)
        values = [
            Metric(key, float(value), now, len(series.get(key, ())))
            for key, value in metrics.items()
        ]
        values += [
            Metric(key, float(value), now, step)
            for key, steps in series.items()
            for step, value in enumerate(steps)
        ]
        tags = [RunTag(ERROR_TAG, error[:MAX_TAG_VALUE])] if error else []
        params = self._pending_params.pop(run_id, [])
        with self._errors(f"record the results of run {run_id}"):
            self._log_batch(run_id, values, params, tags)
            self._mlflow().set_terminated(run_id, state)

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> str:
        """See :meth:`lockgate.ports.tracking.Tracker.log_artifact`."""
        local_path = Path(local_path)
        with self._errors(f"log artifact {local_path.name} to run {run_id}"):
            client = self._mlflow()
            client.log_artifact(run_id, str(local_path), artifact_path)
            if run_id not in self._artifact_uris:
                self._artifact_uris[run_id] = client.get_run(run_id).info.artifact_uri
        parts = [self._artifact_uris[run_id].rstrip("/")]
        if artifact_path:
            parts.append(artifact_path.strip("/"))
        return "/".join([*parts, local_path.name])

    def finish_study(self, run_id: str, metrics: Mapping[str, float], state: RunState) -> None:
        """See :meth:`lockgate.ports.tracking.Tracker.finish_study`."""
        now = int(time.time() * 1000)
        values = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
        with self._errors(f"finish study run {run_id}"):
            self._log_batch(run_id, values, [], [])
            self._mlflow().set_terminated(run_id, state)

    # -- helpers ---------------------------------------------------------------------------

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            _check_reachable(self.tracking_uri)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        client = self._mlflow()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if self.artifact_root:
                location = f"{self.artifact_root.rstrip('/')}/{_folder_name(name)}"
            try:
                experiment_id = client.create_experiment(name, artifact_location=location)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(name)  # a concurrent creator won
            else:
                self._experiments[name] = experiment_id
                return experiment_id
        if experiment is None or experiment.lifecycle_stage != "active":
            raise TrackingError(
                f"MLflow experiment '{name}' at {_display(self.tracking_uri)} is deleted; "
                "restore it (`mlflow experiments restore`) or use another experiment name"
            )
        self._experiments[name] = experiment.experiment_id
        return experiment.experiment_id

    def _log_batch(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        client = self._mlflow()
        for batch_metrics, batch_params, batch_tags in batches(metrics, params, tags):
            client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        with translate_errors(action, self.tracking_uri):
            yield


class MlflowRegistry:
    """The MLflow model registry (implements :class:`~lockgate.ports.tracking.Registry`).

    Args:
        tracking_uri: the MLflow tracking URI.
        registry_uri: the registry's URI when it is not the tracking server's.
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self._client: MlflowClient | None = None

    def register(
        self, name: str, source_uri: str, run_id: str | None, tags: Mapping[str, str]
    ) -> int:
        """See :meth:`lockgate.ports.tracking.Registry.register`."""
        for record in self.versions(name):
            if record.source == source_uri:
                for key, value in tags.items():
                    self.set_tag(name, record.version, key, value)
                return record.version
        with self._errors(f"register a version of model '{name}'"):
            client = self._mlflow()
            try:
                client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            created = client.create_model_version(name, source_uri, run_id=run_id, tags=dict(tags))
        return int(created.version)

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        """See :meth:`lockgate.ports.tracking.Registry.set_tag`."""
        with self._errors(f"tag version {version} of model '{name}'"):
            self._mlflow().set_model_version_tag(name, str(version), key, value)

    def versions(self, name: str) -> list[ModelVersionRecord]:
        """See :meth:`lockgate.ports.tracking.Registry.versions`."""
        records: list[ModelVersionRecord] = []
        with self._errors(f"list the versions of model '{name}'"):
            client = self._mlflow()
            token: str | None = None
            while True:
                page = client.search_model_versions(
                    f"name = {_quoted(name)}", max_results=1000, page_token=token
                )
                for found in page:
                    created = found.creation_timestamp
                    records.append(
                        ModelVersionRecord(
                            name=found.name,
                            version=int(found.version),
                            tags=dict(found.tags),
                            status=str(found.status),
                            created_at=(
                                datetime.fromtimestamp(created / 1000, UTC) if created else None
                            ),
                            source=found.source or "",
                            run_id=found.run_id or None,
                        )
                    )
                token = page.token
                if not token:
                    break
        return sorted(records, key=lambda record: record.version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """See :meth:`lockgate.ports.tracking.Registry.set_alias`."""
        with self._errors(f"point alias '{alias}' of model '{name}' at version {version}"):
            self._mlflow().set_registered_model_alias(name, alias, str(version))

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of ``name`` and the versions they point at (empty if none or unknown)."""
        with self._errors(f"read the aliases of model '{name}'"):
            try:
                model = self._mlflow().get_registered_model(name)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return {}
                raise
        return {alias: int(version) for alias, version in (model.aliases or {}).items()}

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            _check_reachable(self.tracking_uri)
            if self.registry_uri != self.tracking_uri:
                _check_reachable(self.registry_uri)
            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
        return self._client

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        with translate_errors(action, self.registry_uri):
            yield


def batches(
    metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]
) -> Iterator[tuple[list[Metric], list[Param], list[RunTag]]]:
    """Split values into as few ``log_batch`` calls as MLflow's per-call limits allow.

    Yields nothing when there is nothing to log.
    """
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        batch_params, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
        batch_tags, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
        room = min(
            MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(batch_params) - len(batch_tags)
        )
        batch_metrics, metrics = metrics[:room], metrics[room:]
        yield batch_metrics, batch_params, batch_tags


@contextmanager
def translate_errors(action: str, uri: str) -> Iterator[None]:
    """Turn what MLflow, its HTTP client or its database driver raise into one-line
    :class:`TrackingError` messages saying what failed and where."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        # SQLAlchemy errors escape some MLflow store paths unwrapped; any other type is a bug.
        if not isinstance(exc, MlflowException | OSError) and not type(exc).__module__.startswith(
            "sqlalchemy"
        ):
            raise
        message = f"could not {action} in MLflow at {_display(uri)}: {_brief(exc)}"
        password = urlparse(uri).password
        if password:
            message = message.replace(password, "***")
        raise TrackingError(message) from exc


def _check_reachable(uri: str) -> None:
    """Fail fast on an HTTP tracking server that does not answer at all."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    try:
        # Any HTTP answer, even 401/404, means a server is there; only no answer is an error.
        with urllib.request.urlopen(  # noqa: S310 - the scheme is checked above
            uri.rstrip("/") + "/health", timeout=REACHABILITY_TIMEOUT
        ):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise TrackingError(
            f"MLflow tracking server {_display(uri)} is unreachable ({reason}); start it, or "
            "fix tracking_uri in lockgate.toml / LOCKGATE_TRACKING_URI"
        ) from None


def _default_artifact_root(tracking_uri: str) -> str | None:
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite" or not parsed.path or parsed.path == "/:memory:":
        return None
    # sqlite:////abs/path has path //abs/path; sqlite:///rel/path has /rel/path.
    path = Path(unquote(parsed.path[1:]))
    return (path.resolve().parent / "mlartifacts").as_uri()


def _inheritable(tags: Mapping[str, str]) -> dict[str, str]:
    """The study's ``lockgate.*`` tags a trial run carries too (not the run kind)."""
    return {
        key: value for key, value in tags.items() if key.startswith("lockgate.") and key != KIND_TAG
    }


def _tags(tags: Mapping[str, str]) -> list[RunTag]:
    return [RunTag(key, value) for key, value in tags.items()]


def _quoted(value: str) -> str:
    """``value`` as a string literal of MLflow's search filter grammar."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise TrackingError(f"name {value!r} has both quote characters; MLflow cannot search for it")


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def _display(uri: str) -> str:
    """``uri`` without any password in it, for messages."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    host = parsed.hostname or ""
    netloc = f"{parsed.username}:***@{host}" + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=netloc))


def _brief(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, MlflowException) else str(exc)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


if TYPE_CHECKING:  # mypy proves the adapters implement the ports

    def _implements(tracker: MlflowTracker, registry: MlflowRegistry) -> tuple[Tracker, Registry]:
        return tracker, registry
