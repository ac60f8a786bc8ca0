"""An Optuna study over a dataset version: parallel workers, resumable, tracked.

Each trial is one run of the SageMaker training contract (:mod:`.entrypoint`) in a folder of
its own under the environment's work tree, with the hyperparameters as strings and the
dataset's splits as channels, exactly as a training job would see them. The study lives in
Optuna storage (a journal file by default, safe for several processes; any RDB URL, e.g.
PostgreSQL, for several machines), so a killed run restarted with the same data version
continues the same study: finished trials are kept, and trials whose worker process died are
marked failed before new ones start.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from lockgate.errors import LockgateError
from lockgate.pipelines.training.entrypoint import (
    ContainerPaths,
    run,
    trial_hyperparameters,
)
from lockgate.pipelines.training.space import SearchSpace
from lockgate.ports.tracking import RunState, Tracker
from lockgate.processes import alive

log = logging.getLogger("lockgate.training")
# Heartbeats and fail_stale_trials are what make RDB studies resumable; the "experimental"
# label on them is Optuna's to manage, not a user's concern.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

JOURNAL = "journal:"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WORKER_ATTR = "lockgate.worker"
ERROR_ATTR = "error"


class TrainingError(LockgateError):
    """A study could not run, or none of its trials completed."""


@dataclass(frozen=True)
class StudyPlan:
    """Everything a worker process needs to run trials of one study (picklable)."""

    study_name: str
    storage: str
    """``journal:/path/to/file`` or an Optuna RDB URL."""
    space: SearchSpace
    metric: str
    direction: str
    seed: int
    sampler: str
    pruning: bool
    classes: list[str] | None
    data_dir: Path
    """Holds ``train/`` and ``validation/`` channel folders (one safetensors file each)."""
    work_dir: Path
    trials: int
    """The study's total trial budget (finished trials of earlier runs count)."""
    deadline: float | None
    """Wall-clock time (``time.time()``) after which no new trial starts."""
    tracker_factory: Callable[[], Tracker] | None = None
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    data_prefix: str = ""
    """The data version's folder in the store (``processed/<dataset>/<version>/``), where
    compute that does not share this machine's disk reads the channels."""


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna storage for ``url``: ``journal:<file>`` or an RDB URL (heartbeat enabled)."""
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len(JOURNAL) :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=15, grace_period=60)
    except Exception as exc:  # SQLAlchemy raises many kinds; the user needs one line
        # The URL may come from a secret: its password must reach no message, log or record.
        shown = without_password(url)
        reason = str(exc).replace(url, shown)
        raise TrainingError(f"cannot open the Optuna storage {shown}: {reason}") from None


def without_password(url: str) -> str:
    """``url`` with its password masked (``***``), as it may be shown to a user."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show only its scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def sampler_for(plan: StudyPlan, worker: int) -> optuna.samplers.BaseSampler:
    """TPE (or random) with a fixed seed; each worker its own seed so they do not repeat."""
    seed = plan.seed + worker
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def pruner_for(plan: StudyPlan) -> optuna.pruners.BasePruner:
    if not plan.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)


def create_or_resume(plan: StudyPlan, user_attrs: dict[str, Any]) -> optuna.Study:
    """Create the study, or load it to continue; fails trials whose worker died."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # lockgate reports progress itself
    storage = open_storage(plan.storage)
    study = optuna.create_study(
        study_name=plan.study_name,
        storage=storage,
        direction="maximize" if plan.direction == "maximize" else "minimize",
        sampler=sampler_for(plan, 0),
        pruner=pruner_for(plan),
        load_if_exists=True,
    )
    existing = study.direction.name.lower()
    if existing != plan.direction:
        raise TrainingError(
            f"study '{plan.study_name}' was created to {existing} a metric; it cannot now "
            f"{plan.direction} '{plan.metric}' (use another study name)"
        )
    for key, value in user_attrs.items():
        study.set_user_attr(key, value)
    fail_dead_trials(study)
    return study


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark failed the running trials whose worker process on this host is gone.

    Trials of workers on other hosts are left to the RDB heartbeat (``fail_stale_trials``).
    """
    host = socket.gethostname()
    failed = []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        worker_host, _, pid = worker.rpartition(":")
        if worker_host != host or not pid.isdigit() or alive(int(pid)):
            continue
        storage.set_trial_user_attr(
            trial._trial_id, ERROR_ATTR, "the worker process died (the run was interrupted)"
        )
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        failed.append(trial.number)
    optuna.storages.fail_stale_trials(study)
    return failed


def finished_count(study: optuna.Study) -> int:
    states = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    return len(study.get_trials(deepcopy=False, states=states))


def run_workers(
    plan: StudyPlan, workers: int, progress: Callable[[optuna.Study], None] | None = None
) -> None:
    """Run trials until the budget or the deadline: in this process, or ``workers`` processes."""
    if workers <= 1:
        work(plan, 0)
        return
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        context.Process(target=work, args=(plan, index, threads), name=f"lockgate-worker-{index}")
        for index in range(workers)
    ]
    # OpenMP and BLAS size their thread pools from the environment when they load, in the child,
    # before any code of ours could limit them; K workers x all cores of spinning OpenMP threads
    # made trials ten times slower. The children inherit these variables at start.
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    try:
        for process in processes:
            process.start()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    study = optuna.load_study(study_name=plan.study_name, storage=open_storage(plan.storage))
    try:
        while any(process.is_alive() for process in processes):
            for process in processes:
                process.join(timeout=1.0 / workers)
            if progress is not None:
                progress(study)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=30)
    crashed = [p.name for p in processes if p.exitcode not in (0, None)]
    if crashed:
        log.warning("worker(s) %s ended with an error", ", ".join(crashed))


def work(plan: StudyPlan, worker: int, threads: int | None = None) -> None:
    """One worker: trials of the study until the budget is spent or the deadline passes.

    Args:
        threads: BLAS/OpenMP threads per worker; several workers on one machine get one each,
            so K workers do not fight over the cores with K x cores threads.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if threads is not None:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(threads)
    study = optuna.load_study(
        study_name=plan.study_name,
        storage=open_storage(plan.storage),
        sampler=sampler_for(plan, worker),
        pruner=pruner_for(plan),
    )
    tracker = plan.tracker_factory() if plan.tracker_factory is not None else None
    budget = optuna.study.MaxTrialsCallback(plan.trials, states=None)
    objective = _Objective(plan, tracker)
    while finished_count(study) + _running(study) < plan.trials:
        timeout = None if plan.deadline is None else plan.deadline - time.time()
        if timeout is not None and timeout <= 0:
            break
        study.optimize(
            objective,
            n_trials=1,
            timeout=timeout,
            catch=(Exception,),
            callbacks=[budget],
            gc_after_trial=False,
        )


def _running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


class _Objective:
    """Runs one trial through the training contract and reports it to Optuna and tracking."""

    def __init__(self, plan: StudyPlan, tracker: Tracker | None) -> None:
        self.plan = plan
        self.tracker = tracker
        self.tracking_seconds = 0.0

    def __call__(self, trial: optuna.Trial) -> float:
        plan = self.plan
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        params = plan.space.suggest(trial)
        trial.set_user_attr("family", str(params["family"]))
        folder = plan.work_dir / "trials" / f"{trial.number:05d}"
        paths = container_paths(folder, plan.data_dir)
        hyperparameters = trial_hyperparameters(
            plan.space, params, plan.metric, plan.seed, plan.classes
        )
        paths.input_config_dir.mkdir(parents=True, exist_ok=True)
        paths.hyperparameters_file.write_text(json.dumps(hyperparameters, indent=2))
        run_id = None
        self.tracking_seconds = 0.0
        if self.tracker is not None and plan.parent_run_id is not None:
            clock = time.perf_counter()
            run_id = self.tracker.start_trial(
                plan.parent_run_id, trial.number, params, dict(plan.tags)
            )
            self.tracking_seconds += time.perf_counter() - clock
            trial.set_user_attr("run_id", run_id)

        def report(step: int, value: float) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        outcome = run(paths, report=report)
        trial.set_user_attr("seconds", round(outcome.seconds, 4))
        model_file = paths.model_dir / "model.pkl"
        if model_file.exists():
            trial.set_user_attr("model_bytes", model_file.stat().st_size)
            trial.set_user_attr("model_dir", str(paths.model_dir))
        series = {
            plan.metric: [step[plan.metric] for step in outcome.history if plan.metric in step]
        }
        if outcome.status == "failed":
            trial.set_user_attr(ERROR_ATTR, outcome.reason or "failed")
            self._log(run_id, {}, series, "FAILED", outcome.reason)
            raise TrialFailed(outcome.reason or "the trial failed")
        if outcome.status == "pruned":
            self._log(run_id, {"seconds": outcome.seconds}, series, "KILLED", None)
            raise optuna.TrialPruned(f"pruned at step {outcome.pruned_at_step}")
        assert outcome.value is not None  # noqa: S101 - completed trials have a value
        self._log(
            run_id,
            {plan.metric: outcome.value, "seconds": outcome.seconds},
            series,
            "FINISHED",
            None,
        )
        # What tracking cost this trial, for `bench/train.py` (target: under 5 % of a trial).
        trial.set_user_attr("tracking_seconds", round(self.tracking_seconds, 5))
        return outcome.value

    def _log(
        self,
        run_id: str | None,
        metrics: dict[str, float],
        series: dict[str, list[float]],
        state: RunState,
        error: str | None,
    ) -> None:
        if self.tracker is not None and run_id is not None:
            clock = time.perf_counter()
            self.tracker.log_trial(run_id, metrics, series, state, error)
            self.tracking_seconds += time.perf_counter() - clock


class TrialFailed(Exception):
    """A trial's container run failed; its reason is recorded on the trial."""


def container_paths(folder: Path, data_dir: Path) -> ContainerPaths:
    """A SageMaker-shaped tree under ``folder`` whose channels point at ``data_dir``."""
    return ContainerPaths(
        model_dir=folder / "model",
        input_config_dir=folder / "input" / "config",
        channels={name: data_dir / name for name in ("train", "validation")},
        output_dir=folder / "output",
        output_data_dir=folder / "output" / "data",
    )


def first_error(study: optuna.Study) -> str | None:
    """The recorded error of the earliest failed trial."""
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    for trial in sorted(failed, key=lambda t: t.number):
        error = trial.user_attrs.get(ERROR_ATTR)
        if error:
            return f"trial {trial.number}: {error}"
    return f"trial {failed[0].number} failed" if failed else None


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best completed trial; ties go to the cheaper one (training time, model size)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        error = first_error(study)
        raise TrainingError("no trial completed" + (f"; first error: {error}" if error else ""))
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(
        complete,
        key=lambda t: (
            sign * float(t.value or 0.0),
            float(t.user_attrs.get("seconds", 0.0)),
            int(t.user_attrs.get("model_bytes", 0)),
            t.number,
        ),
    )
