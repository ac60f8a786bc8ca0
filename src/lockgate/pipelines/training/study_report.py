"""A study gathered for people: its trials as rows and counts, and its HTML report.

This reads an Optuna study back into the plain data :mod:`lockgate.pipelines.training.report`
renders (parameter importances included), for the training pipeline, ``lockgate runs`` and
``lockgate report study``.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna

from lockgate.pipelines.data.versions import Manifest
from lockgate.pipelines.training.report import write_report
from lockgate.pipelines.training.report_data import Evaluation, StudyReport, TrialRow
from lockgate.pipelines.training.study import StudyPlan


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """How many of ``study``'s trials are in each state (``complete``, ``pruned``, ...)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    return counts


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """Every trial of ``study`` as a report row; a trial without a final value (pruned,
    running, failed) shows the last one it reported, if any."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = trial.value
        if value is None and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        duration = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else None
        )
        state = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAIL"}.get(
            trial.state.name, "RUNNING"
        )
        rows.append(
            TrialRow(
                number=trial.number,
                state=state,
                value=None if value is None else float(value),
                params=dict(trial.params),
                duration_s=duration,
                family=str(trial.params.get("family")) if trial.params else None,
                error=trial.user_attrs.get("error"),
            )
        )
    return rows


def write_study_report(
    study: optuna.Study,
    plan: StudyPlan,
    manifest: Manifest,
    best: optuna.trial.FrozenTrial | None,
    test_value: float | None,
    y_test: np.ndarray | None,
    output: np.ndarray | None,
    report_dir: Path,
) -> Path:
    """Render the study's HTML report to ``report_dir/<study>.html``.

    Args:
        best: the best trial, if there is one yet.
        test_value: ``best``'s score on the test split, with the truth ``y_test`` and the
            model's ``output`` on it; the report's evaluation section needs all four.

    Returns:
        The report's path.
    """
    rows = trial_rows(study)
    importances: dict[str, float] = {}
    complete = [row for row in rows if row.state == "COMPLETE"]
    if len(complete) >= 3:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "few trials per regime": the report says so
                found = optuna.importance.get_param_importances(study)
            importances = {name: float(value) for name, value in found.items()}
        except (RuntimeError, ValueError, ZeroDivisionError):
            importances = {}  # too few distinct values to attribute anything
    evaluation = None
    if best is not None and y_test is not None and output is not None and test_value is not None:
        classification = manifest.task == "classification"
        evaluation = Evaluation(
            task=manifest.task,
            metric=plan.metric,
            value=test_value,
            y_true=y_test,
            y_pred=np.argmax(output, axis=1) if classification else output,
            y_score=output if classification else None,
            classes=manifest.classes,
        )
    best_row = next((row for row in rows if best is not None and row.number == best.number), None)
    report = StudyReport(
        study_name=plan.study_name,
        dataset=manifest.dataset,
        data_version=manifest.version,
        metric=plan.metric,
        direction=plan.direction,
        trials=rows,
        importances=importances,
        best=best_row,
        evaluation=evaluation,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return write_report(report, report_dir / f"{plan.study_name}.html")
