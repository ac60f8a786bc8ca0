"""Each scikit-learn family learns, reproduces, pickles, and stops when told to."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from lockgate.errors import ConfigError
from lockgate.pipelines.training.families import (
    FAMILIES,
    FitResult,
    TrialPruned,
    evaluate,
    predict_output,
)
from lockgate.pipelines.training.metrics import score

from .conftest import Splits

# Small trees and few rounds keep the suite fast; defaults apply to everything else.
QUICK: dict[str, dict[str, Any]] = {
    "logistic": {},
    "linear": {},
    "hist_gradient_boosting": {"max_iter": 40},
    "random_forest": {"n_estimators": 25},
}
CLASSIFIERS = ["logistic", "hist_gradient_boosting", "random_forest"]
REGRESSORS = ["linear", "hist_gradient_boosting", "random_forest"]
ITERATIVE = ["hist_gradient_boosting", "random_forest"]


def fit(family: str, data: Splits, metric: str, **options: Any) -> FitResult:
    return FAMILIES[family].fit(
        {**QUICK[family], **options.pop("params", {})},
        data.task,
        options.pop("seed", 7),
        data.X_train,
        data.y_train,
        data.X_val,
        data.y_val,
        metric,
        data.classes,
        **options,
    )


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_binary_classifiers_beat_chance_on_validation(family: str, binary: Splits) -> None:
    result = fit(family, binary, "roc_auc")
    auc = evaluate(
        result.model, binary.X_val, binary.y_val, "roc_auc", "classification", ["a", "b"]
    )
    assert auc > 0.8  # a constant scorer has 0.5
    assert result.history[-1]["roc_auc"] == pytest.approx(auc)
    assert result.seconds > 0


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_three_class_classifiers_beat_the_majority_class(family: str, three_class: Splits) -> None:
    result = fit(family, three_class, "accuracy")
    majority = np.bincount(three_class.y_val).max() / len(three_class.y_val)
    accuracy = float(np.mean(result.model.predict(three_class.X_val) == three_class.y_val))
    assert accuracy > majority + 0.2
    proba = result.model.predict_proba(three_class.X_val)
    assert proba.shape == (len(three_class.y_val), 3)
    assert score("roc_auc", three_class.y_val, proba, three_class.classes) > 0.8


@pytest.mark.parametrize("family", REGRESSORS)
def test_regressors_beat_predicting_the_mean(family: str, regression: Splits) -> None:
    result = fit(family, regression, "rmse")
    baseline = float(np.sqrt(np.mean((regression.y_val - regression.y_train.mean()) ** 2)))
    assert result.history[-1]["rmse"] < 0.7 * baseline


@pytest.mark.parametrize("family", ITERATIVE)
def test_iterative_families_report_every_step(family: str, binary: Splits) -> None:
    reported: list[tuple[int, float]] = []

    def report(step: int, value: float) -> bool:
        reported.append((step, value))
        return False

    result = fit(family, binary, "log_loss", report=report)
    assert [step for step, _ in reported] == [1, 2, 3, 4, 5]
    assert [value for _, value in reported] == [entry["log_loss"] for entry in result.history]
    size = "max_iter" if family == "hist_gradient_boosting" else "n_estimators"
    total = QUICK[family][size]
    assert [entry[size] for entry in result.history] == [total * k // 5 for k in range(1, 6)]


@pytest.mark.parametrize(
    ("family", "data"), [(f, "binary") for f in ITERATIVE] + [(f, "regression") for f in ITERATIVE]
)
def test_a_report_saying_stop_at_step_2_prunes_after_2_steps(
    family: str, data: str, request: pytest.FixtureRequest
) -> None:
    splits: Splits = request.getfixturevalue(data)
    steps: list[int] = []

    def report(step: int, value: float) -> bool:
        steps.append(step)
        return step == 2

    with pytest.raises(TrialPruned) as pruned:
        fit(family, splits, "roc_auc" if splits.task == "classification" else "mae", report=report)
    assert steps == [1, 2]
    assert pruned.value.step == 2
    assert str(pruned.value) == "pruned at step 2"
    assert [entry["step"] for entry in pruned.value.history] == [1, 2]
    again = pickle.loads(pickle.dumps(pruned.value))  # noqa: S301 - as a worker pool sends it
    assert (again.step, again.history) == (2, pruned.value.history)


@pytest.mark.parametrize("family", ["logistic", "linear"])
def test_one_step_families_never_ask_to_stop(
    family: str, binary: Splits, regression: Splits
) -> None:
    data = binary if family == "logistic" else regression
    calls: list[int] = []
    result = fit(
        family,
        data,
        "f1" if family == "logistic" else "r2",
        report=lambda step, value: calls.append(step) or True,
    )
    assert calls == []
    assert len(result.history) == 1


@pytest.mark.parametrize("family", ["hist_gradient_boosting", "random_forest", "logistic"])
def test_the_same_seed_gives_the_same_model(family: str, three_class: Splits) -> None:
    first = fit(family, three_class, "log_loss", seed=3)
    second = fit(family, three_class, "log_loss", seed=3)
    np.testing.assert_array_equal(
        first.model.predict_proba(three_class.X_val), second.model.predict_proba(three_class.X_val)
    )
    assert [e["log_loss"] for e in first.history] == [e["log_loss"] for e in second.history]


@pytest.mark.parametrize("family", CLASSIFIERS)
def test_fitted_models_pickle_and_predict_the_same(family: str, binary: Splits) -> None:
    model = fit(family, binary, "roc_auc").model
    restored = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own object
    np.testing.assert_array_equal(restored.predict(binary.X_val), model.predict(binary.X_val))
    np.testing.assert_array_equal(
        restored.predict_proba(binary.X_val), model.predict_proba(binary.X_val)
    )


def test_a_class_missing_from_training_gets_probability_zero(three_class: Splits) -> None:
    keep = three_class.y_train != 2
    model = (
        FAMILIES["logistic"]
        .fit(
            {},
            "classification",
            0,
            three_class.X_train[keep],
            three_class.y_train[keep],
            three_class.X_val,
            three_class.y_val,
            "log_loss",
            three_class.classes,
        )
        .model
    )
    output = predict_output(model, three_class.X_val, "classification", 3)
    assert output.shape == (len(three_class.X_val), 3)
    assert np.all(output[:, 2] == 0)


def test_a_family_refuses_the_other_task_and_unknown_parameters(regression: Splits) -> None:
    with pytest.raises(ConfigError, match="family 'logistic' is for classification only"):
        fit("logistic", regression, "rmse")
    with pytest.raises(ConfigError, match="family 'linear' has no parameter 'C'"):
        fit("linear", regression, "rmse", params={"C": 1.0})


def test_every_family_declares_defaults_for_its_parameters() -> None:
    for family in FAMILIES.values():
        assert set(family.defaults) == set(family.params)
        assert family.iterative == (family.name not in {"logistic", "linear"})
