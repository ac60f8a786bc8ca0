"""Metrics agree with scikit-learn on binary, multiclass and regression outputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.linear_model import LinearRegression, LogisticRegression

from lockgate.errors import ConfigError
from lockgate.pipelines.training.metrics import (
    METRICS,
    default_metric,
    metrics_for,
    score,
    validate_metric,
)

from .conftest import Splits


def probabilities(splits: Splits) -> np.ndarray:
    model = LogisticRegression(max_iter=1000).fit(splits.X_train, splits.y_train)
    return np.asarray(model.predict_proba(splits.X_val))


def test_binary_metrics_match_sklearn(binary: Splits) -> None:
    proba = probabilities(binary)
    y = binary.y_val
    labels = proba.argmax(axis=1)
    assert score("roc_auc", y, proba, binary.classes) == pytest.approx(
        sk.roc_auc_score(y, proba[:, 1])
    )
    assert score("f1", y, proba, binary.classes) == pytest.approx(sk.f1_score(y, labels))
    assert score("log_loss", y, proba, binary.classes) == pytest.approx(sk.log_loss(y, proba))
    assert score("accuracy", y, proba, binary.classes) == pytest.approx(
        sk.accuracy_score(y, labels)
    )


def test_binary_accepts_the_positive_class_probability_alone(binary: Splits) -> None:
    proba = probabilities(binary)
    assert score("roc_auc", binary.y_val, proba[:, 1], binary.classes) == pytest.approx(
        score("roc_auc", binary.y_val, proba, binary.classes)
    )


def test_multiclass_metrics_match_sklearn(three_class: Splits) -> None:
    proba = probabilities(three_class)
    y = three_class.y_val
    labels = proba.argmax(axis=1)
    classes = three_class.classes
    assert score("roc_auc", y, proba, classes) == pytest.approx(
        sk.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    assert score("f1", y, proba, classes) == pytest.approx(sk.f1_score(y, labels, average="macro"))
    assert score("log_loss", y, proba, classes) == pytest.approx(sk.log_loss(y, proba))
    assert score("accuracy", y, proba, classes) == pytest.approx(sk.accuracy_score(y, labels))


def test_regression_metrics_match_sklearn(regression: Splits) -> None:
    model = LinearRegression().fit(regression.X_train, regression.y_train)
    predicted = model.predict(regression.X_val)
    y = regression.y_val
    assert score("rmse", y, predicted) == pytest.approx(
        np.sqrt(sk.mean_squared_error(y, predicted))
    )
    assert score("mae", y, predicted) == pytest.approx(sk.mean_absolute_error(y, predicted))
    assert score("r2", y, predicted) == pytest.approx(sk.r2_score(y, predicted))


def test_directions_say_which_way_is_better() -> None:
    maximized = {name for name, metric in METRICS.items() if metric.direction == "maximize"}
    assert maximized == {"roc_auc", "f1", "accuracy", "r2"}
    assert METRICS["rmse"].better(1.0, than=2.0)
    assert METRICS["roc_auc"].better(0.9, than=0.8)


def test_defaults_and_metrics_per_task() -> None:
    assert default_metric("classification") == "roc_auc"
    assert default_metric("regression") == "rmse"
    assert metrics_for("classification") == ["roc_auc", "f1", "log_loss", "accuracy"]
    assert metrics_for("regression") == ["rmse", "mae", "r2"]


def test_a_metric_of_the_other_task_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as error:
        validate_metric("rmse", "classification")
    assert str(error.value) == (
        "metric 'rmse' is not valid for classification; "
        "choose one of: roc_auc, f1, log_loss, accuracy"
    )


def test_an_unknown_metric_or_task_is_refused() -> None:
    with pytest.raises(ConfigError, match="metric 'auc' is not known; for regression"):
        validate_metric("auc", "regression")
    with pytest.raises(ConfigError, match="task 'ranking' is not supported"):
        validate_metric("rmse", "ranking")


def test_probabilities_of_the_wrong_width_are_an_error(three_class: Splits) -> None:
    proba = probabilities(three_class)
    with pytest.raises(ValueError, match=r"shape \(rows, 4\)"):
        score("roc_auc", three_class.y_val, proba, ["a", "b", "c", "d"])
