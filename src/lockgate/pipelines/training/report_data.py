"""The plain data a study report renders: its trials, its test-split evaluation, the study.

The training pipeline gathers them (:mod:`lockgate.pipelines.training.study_report` reads an
Optuna study back into them) and :mod:`lockgate.pipelines.training.report` renders them, so
the page is tested without Optuna or MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report shows it.

    Attributes:
        number: Optuna trial number.
        state: ``COMPLETE``, ``PRUNED``, ``FAIL`` or ``RUNNING``.
        value: Objective value; ``None`` when the trial has none (failed, running, often
            pruned). A pruned trial's value, if given, is its last reported one.
        params: Sampled hyperparameters, in the order they were suggested.
        duration_s: Wall time in seconds; ``None`` while running.
        family: Model family; ``None`` when the trial failed before choosing one.
        error: What a failed trial raised.
    """

    number: int
    state: str
    value: float | None
    params: dict[str, str | int | float]
    duration_s: float | None
    family: str | None
    error: str | None = None


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The best model scored once on the untouched test split.

    Attributes:
        task: ``classification`` or ``regression``.
        metric: Name of the study's metric.
        value: That metric on the test split.
        y_true: True targets; for classification, class indices (whole numbers).
        y_pred: Predictions, in the same form as ``y_true``.
        y_score: Class probabilities ``(rows, classes)`` in class-index order (for two
            classes a 1-D positive-class score is accepted too); ``None`` for regression.
        classes: Class names in index order; ``None`` for regression (names become ``0..k-1``).
    """

    task: str
    metric: str
    value: float
    y_true: npt.NDArray[Any]
    y_pred: npt.NDArray[Any]
    y_score: npt.NDArray[Any] | None = None
    classes: list[str] | None = None


@dataclass(frozen=True)
class StudyReport:
    """Everything the report shows about one study.

    Attributes:
        study_name: Optuna study name.
        dataset: Dataset the study trained on.
        data_version: Dataset version id.
        metric: Metric optimised on the validation split.
        direction: ``maximize`` or ``minimize``; anything else raises ``ValueError``.
        trials: Every trial of the study, in any state.
        importances: Parameter name to importance; empty when too few trials to compute.
        best: The best trial as the pipeline selected it (ties broken by cost), if any.
        evaluation: The best model on the test split, once it has been scored.
        created_at: When the report was made; the only time the page shows.
    """

    study_name: str
    dataset: str
    data_version: str
    metric: str
    direction: str
    trials: list[TrialRow]
    importances: dict[str, float]
    best: TrialRow | None
    evaluation: Evaluation | None
    created_at: str

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', not {self.direction!r}")

    def ranked(self) -> list[TrialRow]:
        """Complete trials with a finite value, best first (ties: lower trial number)."""
        sign = -1.0 if self.direction == "maximize" else 1.0
        complete = [t for t in self.trials if t.state == "COMPLETE" and has_value(t)]
        return sorted(complete, key=lambda t: (sign * value_or_nan(t), t.number))


def has_value(trial: TrialRow) -> bool:
    """Whether ``trial`` has a finite objective value."""
    return trial.value is not None and math.isfinite(trial.value)


def value_or_nan(trial: TrialRow) -> float:
    """``trial``'s objective value, or NaN when it has none."""
    return float(trial.value) if trial.value is not None else math.nan
