"""Compute: where a study's trials run.

The training pipeline plans a study, then hands it to a :class:`Compute`; it reads the outcome
from the study's Optuna storage, so how and where the trials ran makes no difference to what
comes after (best trial, refit, package, registry). Two adapters exist: worker processes on
this machine (:class:`LocalProcesses`) and SageMaker training jobs
(``lockgate.aws.sagemaker_training.SageMakerTraining``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import optuna

from lockgate.pipelines.training.study import StudyPlan, run_workers

Progress = Callable[[optuna.Study], None]


class Compute(Protocol):
    """Runs trials of a planned study until its budget or deadline.

    Contract: trials are recorded in the study's storage (``plan.storage``) as Optuna trials,
    completed with the validation metric, pruned, or failed with an ``error`` user attribute.
    Running again with the same plan continues the study: finished trials are kept and
    ``plan.trials`` counts them. ``progress`` is called now and then with the study, from the
    calling thread. A trial's failure is recorded, not raised; what is raised means no trial
    could be run at all.
    """

    def run_trials(self, plan: StudyPlan, workers: int, progress: Progress | None = None) -> None:
        """Run trials of ``plan`` with up to ``workers`` at once."""


class LocalProcesses:
    """Trials as worker processes on this machine (one process when ``workers`` is 1)."""

    def run_trials(self, plan: StudyPlan, workers: int, progress: Progress | None = None) -> None:
        run_workers(plan, workers, progress)
