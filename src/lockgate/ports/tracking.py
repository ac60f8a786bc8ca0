"""The tracking and registry ports: where studies, trials and model versions are recorded.

A study is one parent run; each Optuna trial is a run nested under it. The training pipeline
talks to these two protocols only; the MLflow adapters live in :mod:`lockgate.tracking`, so a
pipeline never imports MLflow and a test can pass an in-memory fake.

Tag keys shared by writers (the training pipeline) and readers (reports, ``lockgate runs``)
are defined here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from lockgate.errors import LockgateError

RunState = Literal["FINISHED", "FAILED", "KILLED"]
"""How a trial or study ended."""

ParamValue = str | int | float
"""A hyperparameter value as trackers store it (they keep its string form)."""

PARENT_RUN_TAG = "mlflow.parentRunId"
"""The tag that nests a trial's run under its study's run (MLflow's own key)."""
KIND_TAG = "lockgate.kind"
"""``study`` on a study's parent run, ``trial`` on a trial's run."""
STUDY_TAG = "lockgate.study"
"""The Optuna study name, on the parent run and on every trial run."""
TRIAL_TAG = "lockgate.trial"
"""The Optuna trial number, on a trial run."""
ERROR_TAG = "lockgate.error"
"""Why a trial failed, on a FAILED or KILLED trial run."""
DATASET_TAG = "lockgate.dataset"
DATA_VERSION_TAG = "lockgate.data_version"
TRANSFORMER_TAG = "lockgate.transformer_sha256"
GIT_COMMIT_TAG = "lockgate.git_commit"
STATUS_TAG = "status"
"""A registered model version's approval status (``pending_approval``, ``approved``, ...)."""


class TrackingError(LockgateError):
    """The tracking server or model registry is unreachable, misconfigured or refused a write.

    Defined with the port, not the adapter, so a pipeline can catch it without importing MLflow.
    """


class Tracker(Protocol):
    """Records studies and their trials.

    Contract, for every adapter:

    * Every method raises :class:`TrackingError` with a one-line message when the backend is
      unreachable, misconfigured or refuses a write; nothing else escapes for backend failures.
    * ``start_study`` is idempotent per (experiment, study name): the first call creates the
      parent run, later calls (a resumed study) return the same run id and reopen it. It is
      not atomic across processes: the coordinating process calls it once and hands the id to
      its workers.
    * A trial's parameters, metrics, series and error are written together by ``log_trial``
      at the trial's end, in as few backend calls as the backend's limits allow.
    """

    def start_study(self, experiment: str, study_name: str, tags: Mapping[str, str]) -> str:
        """Open the parent run of ``study_name`` in ``experiment``, creating either if missing.

        Args:
            experiment: the experiment (a group of studies, e.g. the dataset name).
            study_name: the Optuna study name; tagged :data:`STUDY_TAG` on the run.
            tags: more tags for the parent run (data version, transformer sha256, git commit);
                on a resumed study they are written again, replacing older values.

        Returns:
            The parent run id.
        """
        ...

    def start_trial(
        self,
        parent_run_id: str,
        trial_number: int,
        params: Mapping[str, ParamValue],
        tags: Mapping[str, str],
    ) -> str:
        """Open a run for one trial, nested under the study's parent run.

        The run is tagged :data:`PARENT_RUN_TAG`, :data:`KIND_TAG` and :data:`TRIAL_TAG`, and
        inherits the parent's ``lockgate.*`` tags (study, data version, ...); ``tags`` add to
        or override those. ``params`` are held by this tracker and written by ``log_trial``.

        Returns:
            The trial's run id.
        """
        ...

    def log_trial(
        self,
        run_id: str,
        metrics: Mapping[str, float],
        series: Mapping[str, list[float]],
        state: RunState,
        error: str | None = None,
    ) -> None:
        """Write a trial's results and close its run with ``state``.

        Args:
            run_id: a run id returned by ``start_trial`` on this tracker.
            metrics: final values, at step 0; a key that also has a series is logged at the
                step after the series' last, so it is the run's latest (displayed) value.
            series: per-step values (e.g. a validation metric per epoch), ``series[k][i]`` at
                step ``i``.
            state: how the trial ended.
            error: why it failed; tagged :data:`ERROR_TAG`.
        """
        ...

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> str:
        """Copy a file or folder into the run's artifacts (under ``artifact_path`` if given).

        Returns:
            The URI of the logged file or folder (what a model registry takes as a source).
        """
        ...

    def finish_study(self, run_id: str, metrics: Mapping[str, float], state: RunState) -> None:
        """Write the study's summary metrics and close its parent run with ``state``."""
        ...


@dataclass(frozen=True)
class ModelVersionRecord:
    """One registered version of a model."""

    name: str
    version: int
    tags: dict[str, str] = field(default_factory=dict)
    status: str = ""
    """The registry's own status of the version (MLflow: ``READY`` once created)."""
    created_at: datetime | None = None
    source: str = ""
    run_id: str | None = None


class Registry(Protocol):
    """Numbers model versions and keeps their tags (approval status, release links).

    Contract, for every adapter:

    * Backend failures raise :class:`TrackingError` with a one-line message.
    * ``register`` creates the named model on first use. Versions are numbered 1, 2, 3, ...
      per name by the registry, never reused. Registering the same ``source_uri`` again returns
      the existing version (after setting ``tags`` on it), so a retried registration does not
      make a second version.
    * ``set_tag`` on a version that does not exist raises ``TrackingError``.
    """

    def register(
        self, name: str, source_uri: str, run_id: str | None, tags: Mapping[str, str]
    ) -> int:
        """Register ``source_uri`` (a model package's location) as a new version of ``name``.

        Returns:
            The version number.
        """
        ...

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Set (or replace) one tag of a version."""
        ...

    def versions(self, name: str) -> list[ModelVersionRecord]:
        """Every version of ``name``, oldest first; empty if the model was never registered."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` (an environment's name) at ``version``, moving it if it is set."""
        ...
